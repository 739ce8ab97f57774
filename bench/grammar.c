/*
 * Grammar mask speed: the time to compute which tokens may come next
 * (engine_grammar_mask) at every byte of a tool-call-shaped JSON text, with
 * the 32,000-token SentencePiece vocabulary of a random model written here,
 * synthetic 32,000- and 65,536-piece vocabularies with longer pieces (2 to 16
 * bytes, like large BPE vocabularies) and, when present, the shipped
 * models/agentd-small.gguf vocabulary.
 * Positions are grouped by where they fall (inside a string, in structure,
 * in a number), since strings let most of the vocabulary through and cost
 * the most. Prints microseconds per mask: mean, median, 99th percentile, max.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"

static const char *schema_text =
	"{\"type\":\"object\",\"properties\":{\"name\":{\"const\":\"search\"},\"arguments\":{\"type\":"
	"\"object\","
	"\"properties\":{\"query\":{\"type\":\"string\",\"maxLength\":200},\"collections\":{\"type\":"
	"\"array\","
	"\"items\":{\"type\":\"string\"},\"maxItems\":4},\"limit\":{\"type\":\"integer\"},\"mode\":{\"enum\":"
	"["
	"\"fts\",\"vector\",\"hybrid\"]},\"threshold\":{\"type\":\"number\"}},\"required\":[\"query\"],"
	"\"additionalProperties\":false}},\"required\":[\"name\",\"arguments\"],\"additionalProperties\":"
	"false}";

static const char *doc_text =
	"{\"name\": \"search\", \"arguments\": {\"query\": \"travel policy for meals and hotels within the "
	"city "
	"limits, caf\xc3\xa9 receipts \\\"2024\\\"\", \"collections\": [\"hr\", \"finance\"], \"limit\": 10, "
	"\"mode\": \"hybrid\", \"threshold\": 0.75}}";

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void report(const char *vocab, const char *what, double *us, size_t n)
{
	if (!n)
		return;
	qsort(us, n, sizeof *us, cmp_double);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += us[i];
	printf("%-22s %-10s positions %4zu  mean %8.1f us  median %8.1f us  p99 %8.1f us  max %8.1f us\n",
	       vocab, what, n, sum / (double)n, us[n / 2], us[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1],
	       us[n - 1]);
}

static int run(const char *label, const engine_tokenizer *tok, engine_grammar_vocab *given)
{
	engine_grammar_vocab *v = given;
	int64_t t0 = ag_monotonic_ns();
	if (!v && engine_grammar_vocab_new(&v, tok))
		return 1;
	int64_t t1 = ag_monotonic_ns();
	if (!given)
		printf("%-22s vocabulary %zu tokens, trie built in %.1f ms\n", label,
		       engine_grammar_vocab_size(v), (double)(t1 - t0) / 1e6);
	json_t *schema = json_loads(schema_text, 0, NULL);
	engine_grammar *g;
	if (engine_grammar_compile(&g, schema, NULL)) {
		fprintf(stderr, "%s\n", ag_error_last());
		return 1;
	}
	json_decref(schema);
	engine_grammar_matcher *m;
	engine_grammar_matcher_new(&m, g);
	size_t n_vocab = engine_grammar_vocab_size(v), len = strlen(doc_text);
	uint32_t *mask = ag_malloc(((n_vocab + 31) / 32) * sizeof *mask);
	double *in_string = ag_malloc(len * sizeof(double)), *structure = ag_malloc(len * sizeof(double)),
	       *number = ag_malloc(len * sizeof(double)), *all = ag_malloc(len * sizeof(double));
	size_t ns = 0, nst = 0, nn = 0, na = 0;
	bool quoted = false, escaped = false;
	int32_t eos = tok ? engine_token_eos(tok) : 0;
	size_t allowed_in_string = 0;
	for (size_t i = 0; i <= len; i++) {
		int reps = 5;
		int64_t a = ag_monotonic_ns();
		for (int r = 0; r < reps; r++)
			engine_grammar_mask(m, v, &eos, 1, mask);
		double us = (double)(ag_monotonic_ns() - a) / 1e3 / reps;
		all[na++] = us;
		char c = i < len ? doc_text[i] : '\0';
		if (quoted && i > 0 && doc_text[i - 1] != '"') {
			in_string[ns++] = us;
			size_t k = 0;
			for (size_t w = 0; w < (n_vocab + 31) / 32; w++)
				k += (size_t)__builtin_popcount(mask[w]);
			allowed_in_string = k > allowed_in_string ? k : allowed_in_string;
		} else if (c >= '0' && c <= '9' && !quoted) {
			number[nn++] = us;
		} else {
			structure[nst++] = us;
		}
		if (i == len)
			break;
		if (engine_grammar_matcher_feed(m, doc_text + i, 1)) {
			fprintf(stderr, "byte %zu: %s\n", i, ag_error_last());
			return 1;
		}
		if (quoted && !escaped && c == '"')
			quoted = false;
		else if (!quoted && c == '"')
			quoted = true;
		escaped = quoted && !escaped && c == '\\';
	}
	report(label, "all", all, na);
	report(label, "in-string", in_string, ns);
	report(label, "structure", structure, nst);
	report(label, "number", number, nn);
	printf("%-22s most tokens allowed inside a string: %zu of %zu\n", label, allowed_in_string, n_vocab);
	ag_free(mask);
	ag_free(in_string);
	ag_free(structure);
	ag_free(number);
	ag_free(all);
	engine_grammar_matcher_free(m);
	engine_grammar_free(g);
	engine_grammar_vocab_free(v);
	return 0;
}

static int run_model(const char *label, const char *path)
{
	engine_model *model;
	engine_tokenizer *tok;
	if (engine_model_load(&model, path))
		return 1;
	if (engine_tokenizer_create(&tok, engine_model_vocab(model))) {
		engine_model_free(model);
		return 1;
	}
	int rc = run(label, tok, NULL);
	engine_tokenizer_free(tok);
	engine_model_free(model);
	return rc;
}

/* A synthetic vocabulary shaped like a large real one: the 256 bytes, then pieces of 2 to 16
 * bytes (mean about 6) of letters, digits, punctuation and spaces, half starting with a
 * space, some with a quote or a brace inside, as BPE vocabularies have. */
static int run_synthetic(size_t n_vocab)
{
	char **pieces = ag_calloc(n_vocab, sizeof *pieces);
	size_t *lens = ag_calloc(n_vocab, sizeof *lens);
	static const char alphabet[] = "etaoinshrdlucmfwypvbgkjqxzETAOINSHRDLU0123456789.,;:-_/()'";
	uint64_t x = 88172645463325252ULL;
	for (size_t i = 0; i < n_vocab; i++) {
		char *p = ag_malloc(17);
		size_t len;
		if (i < 256) {
			p[0] = (char)i;
			len = 1;
		} else {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			len = 2 + (size_t)(x % 100 < 70 ? x % 6 : x % 15);
			for (size_t k = 0; k < len; k++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				p[k] = alphabet[x % (sizeof alphabet - 1)];
			}
			if (x % 2)
				p[0] = ' ';
			if (x % 29 == 0)
				p[len - 1] = '"';
			if (x % 31 == 0)
				p[0] = '{';
		}
		pieces[i] = p;
		lens[i] = len;
	}
	engine_grammar_vocab *v;
	int64_t t0 = ag_monotonic_ns();
	int rc = engine_grammar_vocab_new_pieces(&v, (const char *const *)pieces, lens, n_vocab);
	char label[32];
	snprintf(label, sizeof label, "synthetic-%zu", n_vocab);
	if (!rc)
		printf("%-22s vocabulary %zu pieces, trie built in %.1f ms\n", label, n_vocab,
		       (double)(ag_monotonic_ns() - t0) / 1e6);
	if (!rc)
		rc = run(label, NULL, v);
	for (size_t i = 0; i < n_vocab; i++)
		ag_free(pieces[i]);
	ag_free(pieces);
	ag_free(lens);
	return rc;
}

int main(void)
{
	ag_alloc_init();
	char path[] = "/tmp/bench-grammar-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return 1;
	engine_jamba_random p;
	engine_jamba_random_init(&p);
	p.n_vocab = 32000;
	p.n_embd = 32;
	p.n_layer = 1;
	p.n_ff = 32;
	p.attn_period = 1;
	p.attn_offset = 0;
	p.n_expert = 1;
	if (engine_jamba_random_write(&p, path) || run_model("random-32000", path)) {
		fprintf(stderr, "%s\n", ag_error_last());
		remove(path);
		return 1;
	}
	remove(path);
	if (run_synthetic(32000) || run_synthetic(65536))
		fprintf(stderr, "synthetic: %s\n", ag_error_last());
	if (access("models/agentd-small.gguf", R_OK) == 0 &&
	    run_model("agentd-small", "models/agentd-small.gguf"))
		fprintf(stderr, "agentd-small: %s\n", ag_error_last());
	return 0;
}
