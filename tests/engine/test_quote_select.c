/* Whole-sentence quote selection (engine/local_select.c) on a random model: when a quote
 * opens, the sentence forced is the one whose tokens (with the closing quote and the
 * required marker) have the highest mean log-probability, scored here one token at a time
 * on a plain fork of the state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/local_internal.h"

static const char *const sentences[] = {"Alpha beta gamma.", "Delta epsilon zeta eta.", "Theta iota.",
					"Kappa lambda mu nu xi."};

static double log_softmax_at(const float *logits, size_t n, int32_t tok)
{
	double m = logits[0];
	for (size_t i = 1; i < n; i++)
		if (logits[i] > m)
			m = logits[i];
	double sum = exp(logits[0] - m);
	for (size_t i = 1; i < n; i++)
		sum += exp(logits[i] - m);
	return logits[tok] - m - log(sum);
}

/* Mean log-probability of toks from state s (whose next-token logits are first), one decode at a time. */
static double mean_logp(engine_model *m, const engine_state *s, const float *first, const int32_t *toks,
			size_t n)
{
	size_t nv = engine_model_config(m)->n_vocab;
	float *logits = malloc(nv * sizeof *logits);
	memcpy(logits, first, nv * sizeof *logits);
	engine_state *f;
	assert_int_equal(engine_state_fork(&f, s), 0);
	double sum = 0;
	for (size_t i = 0; i < n; i++) {
		sum += log_softmax_at(logits, nv, toks[i]);
		if (i + 1 < n)
			assert_int_equal(engine_decode(m, f, toks[i], logits), 0);
	}
	engine_state_free(f);
	free(logits);
	return sum / (double)n;
}

/* A random model written to a temporary GGUF (its path kept in path) and opened. */
static engine_local *random_model(char *path, size_t size, const char *name, int seed)
{
	const char *dir = getenv("TEST_TMPDIR");
	snprintf(path, size, "%s/%s", dir ? dir : "/tmp", name);
	engine_jamba_random p;
	engine_jamba_random_init(&p);
	p.seed = seed;
	assert_int_equal(engine_jamba_random_write(&p, path), 0);
	engine_local *l;
	assert_int_equal(engine_local_open(&l, path, 1), 0);
	return l;
}

/* A state after prompt, whose last character opens the quote; the constraint has seen the
 * opening and is ready to select. The next-token logits go to *logits (the caller frees). */
static engine_state *open_quote(engine_local *l, local_constraint *c, const char *prompt, float **logits)
{
	engine_model *m = engine_local_model(l);
	int32_t *toks;
	size_t n;
	assert_int_equal(
		engine_tokenize(engine_local_tokenizer(l), prompt, strlen(prompt), true, false, &toks, &n),
		0);
	engine_state *s;
	assert_int_equal(engine_state_new(&s, m), 0);
	*logits = malloc(engine_model_config(m)->n_vocab * sizeof **logits);
	assert_int_equal(engine_prefill(m, s, toks, n, *logits), 0);
	engine_quote_matcher_reset(c->quote);
	c->quote_fed = 0;
	assert_int_equal(local_constraint_accept(c, toks[n - 1], "\"", 1), 0);
	assert_true(c->select_pending);
	c->select_pending = false;
	ag_free(toks);
	return s;
}

/* One quote opened after prompt and chosen: the forced text must be a whole sentence of a source
 * with its closing quote and marker, and score highest by the rule (each sentence scored alone,
 * one decode at a time: mean log-probability plus LOCAL_RELEVANCE_WEIGHT * rel[k]); the mask
 * then allows exactly the next forced token. Returns the sentence chosen. */
static int select_and_check(engine_local *l, local_constraint *c, const char *prompt, const double *rel)
{
	engine_model *m = engine_local_model(l);
	size_t nv = engine_model_config(m)->n_vocab;
	float *logits;
	engine_state *s = open_quote(l, c, prompt, &logits);
	assert_int_equal(local_quote_select(l, s, logits, c), 0);
	assert_non_null(c->forced);
	char *text;
	size_t len;
	assert_int_equal(
		engine_detokenize(engine_local_tokenizer(l), c->forced, c->n_forced, false, &text, &len), 0);
	int which = -1;
	for (int k = 0; k < 4; k++) {
		char want[64];
		snprintf(want, sizeof want, "%s\" [%d]", sentences[k], 1 + (k >= 2));
		if (strcmp(text, want) == 0 || (text[0] == ' ' && strcmp(text + 1, want) == 0))
			which = k;
	}
	if (which < 0)
		fail_msg("forced text is no sentence: '%s'", text);
	double best = -INFINITY;
	double got = mean_logp(m, s, logits, c->forced, c->n_forced) + LOCAL_RELEVANCE_WEIGHT * rel[which];
	for (int k = 0; k < 4; k++) {
		int32_t *st;
		size_t sn;
		assert_int_equal(local_quote_tokens(l, sentences[k], strlen(sentences[k]),
						    1 + (size_t)(k >= 2), &st, &sn),
				 0);
		assert_non_null(st);
		double score = mean_logp(m, s, logits, st, sn) + LOCAL_RELEVANCE_WEIGHT * rel[k];
		if (score > best)
			best = score;
		ag_free(st);
	}
	assert_true(got >= best - 1e-9);
	float *lg = calloc(nv, sizeof *lg);
	bool none;
	assert_int_equal(local_constraint_mask(c, lg, nv, &none), 0);
	size_t finite = 0;
	for (size_t i = 0; i < nv; i++)
		finite += isfinite(lg[i]) != 0;
	assert_int_equal(finite, 1);
	assert_true(isfinite(lg[c->forced[0]]));
	free(lg);
	ag_free(text);
	ag_free(c->forced);
	c->forced = NULL;
	c->n_forced = c->forced_at = 0;
	free(logits);
	engine_state_free(s);
	return which;
}

/* Sentences 0 and 1 in source 1, 2 and 3 in source 2, chosen after several prompts (so the
 * choice is not the same sentence by luck of one); with a question, how many of its words
 * each sentence holds weighs in. Returns how often each sentence was chosen in chosen[4]. */
static void choose_over_prompts(const char *question, int trials, int *chosen)
{
	char path[512];
	engine_local *l = random_model(path, sizeof path, "quote-select.gguf", 5);
	char doc0[128], doc1[128];
	snprintf(doc0, sizeof doc0, "%s %s", sentences[0], sentences[1]);
	snprintf(doc1, sizeof doc1, "%s\n%s", sentences[2], sentences[3]);
	json_t *sources = json_pack("[s, s]", doc0, doc1);
	engine_chat_request req = {
		.quote_sources = sources, .quote_cite_required = true, .quote_question = question};
	local_constraint c;
	assert_int_equal(local_constraint_init(&c, l, &req, false), 0);
	size_t lens[4];
	for (int k = 0; k < 4; k++)
		lens[k] = strlen(sentences[k]);
	double rel[4];
	local_quote_relevance(question, sentences, lens, 4, rel);
	for (int k = 0; k < 4; k++)
		chosen[k] = 0;
	for (int trial = 0; trial < trials; trial++) {
		char prompt[64];
		snprintf(prompt, sizeof prompt, "Question %d: which one? Answer: \"", trial * 7);
		chosen[select_and_check(l, &c, prompt, rel)]++;
	}
	local_constraint_free(&c);
	json_decref(sources);
	engine_local_free(l);
	remove(path);
}

static void test_forces_the_likeliest_sentence(void **state)
{
	(void)state;
	int chosen[4];
	choose_over_prompts(NULL, 6, chosen);
	print_message("sentences chosen over 6 prompts: %d %d %d %d\n", chosen[0], chosen[1], chosen[2],
		      chosen[3]);
}

/* After "Answer: \"" over sources (with question, or NULL), the forced text is want. */
static void expect_forced(engine_local *l, json_t *sources, const char *question, const char *want)
{
	engine_chat_request req = {
		.quote_sources = sources, .quote_cite_required = true, .quote_question = question};
	local_constraint c;
	assert_int_equal(local_constraint_init(&c, l, &req, false), 0);
	float *logits;
	engine_state *s = open_quote(l, &c, "Answer: \"", &logits);
	assert_int_equal(local_quote_select(l, s, logits, &c), 0);
	assert_non_null(c.forced);
	char *text;
	size_t len;
	assert_int_equal(
		engine_detokenize(engine_local_tokenizer(l), c.forced, c.n_forced, false, &text, &len), 0);
	assert_string_equal(text[0] == ' ' ? text + 1 : text, want);
	ag_free(text);
	free(logits);
	engine_state_free(s);
	local_constraint_free(&c);
}

/* A single sentence to go on to is forced whole, with its marker: the mask alone would let the
 * model close the quote at any word. */
static void test_forces_the_only_sentence(void **state)
{
	(void)state;
	char path[512];
	engine_local *l = random_model(path, sizeof path, "quote-select-one.gguf", 6);
	json_t *sources = json_pack("[s]", sentences[3]);
	char want[64];
	snprintf(want, sizeof want, "%s\" [1]", sentences[3]);
	expect_forced(l, sources, NULL, want);
	json_decref(sources);
	engine_local_free(l);
	remove(path);
}

/* The share of the question's words a text holds, rarer words weighing more. */
static void test_relevance(void **state)
{
	(void)state;
	const char *texts[] = {"The Opal lamp costs $48.", "The Topaz desk costs $30.",
			       "Staff get 30 days of leave.", "OPAL LAMPS: see the catalog."};
	size_t lens[4];
	for (int i = 0; i < 4; i++)
		lens[i] = strlen(texts[i]);
	double rel[4];
	local_quote_relevance("How much does the Opal lamp cost?", texts, lens, 4, rel);
	/* "opal" and "lamp" (in two texts) weigh more than "the" (in three) and "cost" (two, one of
	 * them with the Opal lamp): the first holds every shared word, the second "the" and "cost". */
	assert_true(fabs(rel[0] - 1.0) < 1e-12);
	assert_true(rel[1] > 0 && rel[1] < rel[3]);
	assert_true(rel[2] == 0);
	assert_true(rel[3] > rel[1] && rel[3] < rel[0]); /* case and plural folded: "OPAL LAMPS" */
	/* No question, or no word in common: no relevance at all. */
	local_quote_relevance(NULL, texts, lens, 4, rel);
	for (int i = 0; i < 4; i++)
		assert_true(rel[i] == 0);
	local_quote_relevance("Who leads Finance?", texts, lens, 4, rel);
	for (int i = 0; i < 4; i++)
		assert_true(rel[i] == 0);
	/* Lengths are honoured: text past lens[i] is not looked at. */
	lens[0] = strlen("The Opal");
	local_quote_relevance("lamp", texts, lens, 4, rel);
	assert_true(rel[0] == 0 && rel[3] > 0);
}

/* With a question whose words only sentence 3 holds, sentence 3 is forced after every prompt,
 * and by the rule (select_and_check). */
static void test_question_weighs_in(void **state)
{
	(void)state;
	const char *question = "What comes after kappa and lambda?";
	size_t lens[4];
	for (int k = 0; k < 4; k++)
		lens[k] = strlen(sentences[k]);
	double rel[4];
	local_quote_relevance(question, sentences, lens, 4, rel);
	assert_true(rel[3] == 1.0 && rel[0] == 0 && rel[1] == 0 && rel[2] == 0);
	int chosen[4];
	choose_over_prompts(question, 3, chosen);
	assert_int_equal(chosen[3], 3);
}

/* More sentences than are scored: the ones the question names are kept, wherever they are
 * (in order, the 48 first would be scored and the answer, the 60th, never offered). */
static void test_relevant_sentence_beyond_the_cap(void **state)
{
	(void)state;
	char path[512];
	engine_local *l = random_model(path, sizeof path, "quote-select-many.gguf", 7);
	ag_buf doc = AG_BUF_INIT;
	for (int i = 0; i < 59; i++)
		assert_int_equal(ag_buf_printf(&doc, "Filler sentence number %d is here. ", i), 0);
	assert_int_equal(ag_buf_printf(&doc, "The Quantum router costs $310."), 0);
	json_t *sources = json_pack("[s%]", doc.data, doc.len);
	expect_forced(l, sources, "How much does the Quantum router cost?",
		      "The Quantum router costs $310.\" [1]");
	json_decref(sources);
	ag_buf_free(&doc);
	engine_local_free(l);
	remove(path);
}

/* Which sources a quote may come from (local_quote_gate). */
static void gate(const char *question, const char *const *texts, size_t n, const char *want)
{
	size_t lens[8] = {0};
	bool ok[8] = {false};
	for (size_t i = 0; i < n; i++)
		lens[i] = strlen(texts[i]);
	local_quote_gate(question, texts, lens, n, ok);
	char got[9] = {0};
	for (size_t i = 0; i < n; i++)
		got[i] = ok[i] ? 'y' : 'n';
	assert_string_equal(got, want);
}

static void test_gate(void **state)
{
	(void)state;
	const char *const people[] = {"Vilma Thorne is based in the Quito office.",
				      "Ronja Thorne is based in the Quito office.",
				      "Every Opal lamp is covered by a 2-year warranty."};
	gate("In which office is Vilma Thorne based?", people, 3, "ynn"); /* both names beat one */
	gate("In which office is Pia Yilmaz based?", people, 3, "nnn");   /* nobody named is there */
	gate("Where do the Thorne family work?", people, 3, "yyn");
	gate("In which office is Pia Thorne based?", people, 3, "nnn"); /* a name is all its words */
	gate("Thanks! Please say where Vilma Thorne works.", people, 3,
	     "ynn"); /* "Please" opens a sentence */
	gate(NULL, people, 3, "yyy");
	gate("What is it?", people, 3, "yyy"); /* nothing but function words: nothing to judge by */
	/* A word most sources hold (here the boilerplate "out of date") says nothing. */
	const char *const dates[] = {
		"The vendor fair will take place on June 10. Printed copies may be out of date.",
		"The volunteer day will take place on May 2. Printed copies may be out of date.",
		"Hotel stays in Oslo are capped at $240. Printed copies may be out of date."};
	gate("On what date does the open house happen?", dates, 3, "nnn");
	gate("On what date does the vendor fair happen?", dates, 3, "ynn");
	/* One source: any word of the question it holds will do. */
	const char *const leave[] = {"Employees get 30 days of paid leave each year."};
	gate("How many days of paid leave do employees get?", leave, 1, "y");
	gate("How much is 17 + 5?", leave, 1, "n");
	/* Two things named, one in each source: both may be quoted. */
	const char *const prices[] = {"The list price of the Opal lamp is $48.", "The Topaz desk costs $310.",
				      "Staff get 30 days of leave."};
	gate("What is the price difference between the Opal lamp and the Topaz desk?", prices, 3, "yyn");
	/* Lengths are honoured: text past lens[i] is not looked at. */
	gate("Who is based in Quito?", people, 3, "yyn");
	size_t lens[3] = {strlen("Vilma Thorne is based"), strlen(people[1]), strlen(people[2])};
	bool ok[3];
	local_quote_gate("Who is based in Quito?", people, lens, 3, ok);
	assert_true(!ok[0] && ok[1] && !ok[2]);
}

/* No source speaks of what the question asks about: no token may open a quote; with a
 * question one of them answers, the opening quote is allowed. */
static void test_gated_sources_open_no_quote(void **state)
{
	(void)state;
	char path[512];
	engine_local *l = random_model(path, sizeof path, "quote-gate.gguf", 9);
	size_t nv = engine_model_config(engine_local_model(l))->n_vocab;
	json_t *sources =
		json_pack("[s, s]", "The Quantum router costs $310.", "Staff get 30 days of leave.");
	const char *questions[] = {"How much does the Falcon lamp cost?",
				   "How much does the Quantum router cost?"};
	for (int k = 0; k < 2; k++) {
		engine_chat_request req = {.quote_sources = sources,
					   .quote_cite_required = true,
					   .quote_question = questions[k]};
		local_constraint c;
		assert_int_equal(local_constraint_init(&c, l, &req, false), 0);
		float *lg = calloc(nv, sizeof *lg);
		bool none;
		assert_int_equal(local_constraint_mask(&c, lg, nv, &none), 0);
		assert_false(none);
		size_t open_allowed = 0;
		for (int32_t t = 0; t < (int32_t)nv; t++) {
			char *text;
			size_t len;
			if (engine_detokenize(engine_local_tokenizer(l), &t, 1, false, &text, &len) != 0)
				continue;
			const char *at = len && text[0] == ' ' ? text + 1 : text;
			open_allowed += at < text + len && *at == '"' && isfinite(lg[t]);
			ag_free(text);
		}
		if (k == 0)
			assert_int_equal(open_allowed, 0);
		else
			assert_true(open_allowed > 0);
		free(lg);
		local_constraint_free(&c);
	}
	json_decref(sources);
	engine_local_free(l);
	remove(path);
}

int main(void)
{
	ag_alloc_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forces_the_likeliest_sentence),
		cmocka_unit_test(test_forces_the_only_sentence),
		cmocka_unit_test(test_relevance),
		cmocka_unit_test(test_question_weighs_in),
		cmocka_unit_test(test_relevant_sentence_beyond_the_cap),
		cmocka_unit_test(test_gate),
		cmocka_unit_test(test_gated_sources_open_no_quote),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
