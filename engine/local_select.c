/*
 * Choosing what a quote says by whole sentences. Token by token, a small model
 * that opens a quote must commit to a sentence on its first word or two, and
 * "The ..." opens half the sentences of a document: greedy decoding then often
 * copies the wrong one faithfully. Here, as soon as a quote opens, every way it
 * can go on to the end of a sentence of the sources (the verbatim-quote
 * matcher's completions) is scored by the model itself: the mean log-probability
 * of its tokens, the closing quote and (when required) the marker naming its
 * document, on forks of the sequence's state, advanced together in batched
 * passes. The best is then forced token by token, so the answer quotes the
 * sentence the model finds likeliest as a whole. (The mean, not the sum: summed,
 * short filler sentences win.) When the request names the question the quote
 * answers, each sentence's score adds LOCAL_RELEVANCE_WEIGHT times the share of the
 * question's words it holds (local_relevance.c): the model decides that it
 * quotes and starts the choice, the question's words settle which sentence.
 */
#include "engine/grammar_internal.h"
#include "engine/local_internal.h"

#include <math.h>
#include <string.h>

#define MAX_CANDIDATES 48
#define MAX_LISTED     256 /* sentences looked at; the most relevant MAX_CANDIDATES are scored */
#define MAX_TOKENS     96  /* longer sentences are not offered whole */
#define PASS           16  /* forks advanced per batched pass */

typedef struct candidate {
	int32_t *toks;
	size_t n;
	double logp;
	engine_state *fork;
} candidate;

static double log_prob(const float *logits, size_t n_vocab, int32_t tok)
{
	size_t top = 0;
	for (size_t i = 1; i < n_vocab; i++)
		if (logits[i] > logits[top])
			top = i;
	double sum = 1.0; /* the largest, exp(0) */
	for (size_t i = 0; i < n_vocab; i++)
		if (i != top)
			sum += exp((double)(logits[i] - logits[top]));
	return (double)(logits[tok] - logits[top]) - log(sum);
}

/* Longest pieces first, along the vocabulary's trie: for a vocabulary whose tokenizer puts
 * a space before what it tokenizes, where the text goes on from the middle of a line. */
static int munch(const engine_grammar_vocab *v, const char *text, size_t len, candidate *c)
{
	c->toks = ag_malloc((len ? len : 1) * sizeof *c->toks);
	if (!c->toks)
		return ag_error_set(AG_ENOMEM, "out of memory choosing a quote");
	c->n = 0;
	for (size_t at = 0; at < len;) {
		size_t node = SIZE_MAX, best = SIZE_MAX, best_len = 0, first = 0, end = v->n_nodes;
		for (size_t k = at; k < len; k++) {
			size_t j = first;
			while (j < end && v->byte[j] != (uint8_t)text[k])
				j = v->end[j];
			if (j >= end)
				break;
			node = j;
			if (v->tok_n[node]) {
				best = node;
				best_len = k - at + 1;
			}
			first = node + 1;
			end = v->end[node];
		}
		if (best == SIZE_MAX) { /* a byte no token spells */
			ag_free(c->toks);
			c->toks = NULL;
			c->n = 0;
			return 0;
		}
		c->toks[c->n++] = v->toks[v->tok_at[best]];
		at += best_len;
	}
	return 0;
}

/* The tokens of text + '"' (+ " [marker]" when marker > 0): the tokenizer's, if they spell
 * exactly that, else the longest pieces. */
static int tokens_of(engine_local *l, const char *text, size_t len, size_t marker, ag_buf *scratch,
		     candidate *c)
{
	ag_buf_clear(scratch);
	int rc = ag_buf_append(scratch, text, len);
	if (!rc)
		rc = ag_buf_putc(scratch, '"');
	if (!rc && marker)
		rc = ag_buf_printf(scratch, " [%zu]", marker);
	if (!rc)
		rc = engine_tokenize(l->tok, scratch->data, scratch->len, false, false, &c->toks, &c->n);
	if (rc)
		return rc;
	ag_buf piece = AG_BUF_INIT;
	for (size_t i = 0; i < c->n && !rc; i++)
		rc = engine_token_piece(l->tok, c->toks[i], false, &piece);
	bool exact = !rc && piece.len == scratch->len && memcmp(piece.data, scratch->data, piece.len) == 0;
	ag_buf_free(&piece);
	if (!rc && !exact) {
		ag_free(c->toks);
		rc = munch(l->gvocab, scratch->data, scratch->len, c);
	}
	if (!rc && c->n > MAX_TOKENS) {
		ag_free(c->toks);
		c->toks = NULL;
		c->n = 0;
	}
	return rc;
}

int local_quote_tokens(engine_local *l, const char *text, size_t len, size_t marker, int32_t **toks,
		       size_t *n)
{
	candidate c = {0};
	ag_buf scratch = AG_BUF_INIT;
	int rc = tokens_of(l, text, len, marker, &scratch, &c);
	ag_buf_free(&scratch);
	*toks = c.toks;
	*n = c.n;
	return rc;
}

static double score(const candidate *c, double relevance)
{
	return c->logp / (double)c->n + LOCAL_RELEVANCE_WEIGHT * relevance;
}

/* Keeps the MAX_CANDIDATES most relevant of n listed sentences, in their order (with no
 * question, all relevances are 0 and the first ones stay); returns how many are kept. */
static size_t keep_most_relevant(const char **texts, size_t *lens, uint32_t *srcs, double *rel, size_t n)
{
	if (n <= MAX_CANDIDATES)
		return n;
	bool keep[MAX_LISTED];
	for (size_t i = 0; i < n; i++) {
		size_t above = 0; /* listed sentences that rank before i */
		for (size_t j = 0; j < n; j++)
			above += rel[j] > rel[i] || (rel[j] == rel[i] && j < i);
		keep[i] = above < MAX_CANDIDATES;
	}
	size_t kept = 0;
	for (size_t i = 0; i < n; i++)
		if (keep[i]) {
			texts[kept] = texts[i];
			lens[kept] = lens[i];
			srcs[kept] = srcs[i];
			rel[kept++] = rel[i];
		}
	return kept;
}

int local_quote_select(engine_local *l, engine_state *s, const float *logits, local_constraint *c)
{
	const char *texts[MAX_LISTED];
	size_t lens[MAX_LISTED];
	uint32_t srcs[MAX_LISTED];
	double rel[MAX_LISTED];
	size_t n = engine_quote_matcher_completions(c->quote, texts, lens, srcs, MAX_LISTED);
	local_quote_relevance(c->question, texts, lens, n, rel);
	n = keep_most_relevant(texts, lens, srcs, rel, n);
	/* With a marker required, it is part of what is scored and written: the document the model
	 * means to cite weighs in the choice of the sentence. */
	bool marker = engine_quote_matcher_cite_required(c->quote);
	if (n == 0)
		return 0;
	size_t n_vocab = engine_model_config(l->model)->n_vocab;
	candidate cand[MAX_CANDIDATES];
	memset(cand, 0, sizeof cand);
	ag_buf scratch = AG_BUF_INIT;
	float *rows = NULL;
	int rc = 0;
	size_t longest = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if ((rc = tokens_of(l, texts[i], lens[i], marker ? srcs[i] + 1 : 0, &scratch, &cand[i])) ||
		    !cand[i].n)
			continue;
		/* One way to a sentence's end is forced too: left to the mask, which lets a quote
		 * close at any word, the model closed "...paid leave each" one word short. */
		if (n == 1)
			break;
		cand[i].logp = log_prob(logits, n_vocab, cand[i].toks[0]);
		if (cand[i].n > 1)
			rc = engine_state_fork(&cand[i].fork, s);
		if (cand[i].n > longest)
			longest = cand[i].n;
	}
	if (!rc && longest > 1 && !(rows = ag_malloc(PASS * n_vocab * sizeof *rows)))
		rc = ag_error_set(AG_ENOMEM, "out of memory choosing a quote");
	/* Step j feeds each fork its token j and scores its token j + 1. */
	for (size_t j = 0; j + 1 < longest && !rc; j++) {
		engine_state *batch[PASS];
		int32_t toks[PASS];
		size_t who[PASS], nb = 0;
		for (size_t i = 0; i <= n && !rc; i++) {
			if (i < n && cand[i].fork && cand[i].n > j + 1) {
				batch[nb] = cand[i].fork;
				toks[nb] = cand[i].toks[j];
				who[nb++] = i;
			}
			if (nb == PASS || (i == n && nb)) {
				rc = engine_decode_batch(l->model, batch, toks, nb, rows);
				for (size_t b = 0; b < nb && !rc; b++) {
					candidate *k = &cand[who[b]];
					k->logp += log_prob(rows + b * n_vocab, n_vocab, k->toks[j + 1]);
				}
				nb = 0;
			}
		}
	}
	size_t best = n;
	for (size_t i = 0; i < n && !rc; i++)
		if (cand[i].n && (best == n || score(&cand[i], rel[i]) > score(&cand[best], rel[best])))
			best = i;
	if (!rc && best < n) {
		ag_free(c->forced);
		c->forced = cand[best].toks;
		c->n_forced = cand[best].n;
		c->forced_at = 0;
		cand[best].toks = NULL;
	}
	for (size_t i = 0; i < n; i++) {
		ag_free(cand[i].toks);
		engine_state_free(cand[i].fork);
	}
	ag_free(rows);
	ag_buf_free(&scratch);
	return rc;
}
