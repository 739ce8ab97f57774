/* Ablation measurements through agentd's engine (issue #14, models/ABLATION.md):
 * for one GGUF and a file of held-out token-id sequences with scored spans
 * (models/train/ablation_data.py write_eval), computes with engine_prefill and
 * engine_decode
 *   - per-task accuracy: a span counts as right when the argmax of every one of
 *     its tokens, given the true tokens before it, is that token. That is exactly
 *     "greedy decoding from the span's start reproduces the span", without
 *     generating past a first mistake;
 *   - mean cross-entropy (nats a token) over the language sequences' tokens and
 *     over all task-answer tokens;
 *   - decode tokens/s at 1K, 8K and 32K tokens of context: the attention caches
 *     filled with engine_state_fill_synthetic (as bench/engine.c: prefilling 32K
 *     would dwarf the run), then rounds of timed decode taken in turns over the
 *     three contexts, the median round reported (this VM is noisy);
 *   - the state bytes per sequence at those contexts (engine_state_serialize).
 * Prints one JSON object on one line.
 *
 * Data file: one sequence a line, `kind n t1 .. tn m s1 e1 .. sm em` with kind
 * lang | mqar | fewshot | copy and [s, e) the scored token positions (s >= 1:
 * token s is predicted from the logits after token s - 1).
 *
 *   build/bench/ablation --model F.gguf --data F.txt [--steps N] [--rounds N]
 *                        [--threads N] [--max-per-kind N]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

enum { K_LANG, K_MQAR, K_FEWSHOT, K_COPY, N_KINDS };
static const char *const kind_names[N_KINDS] = {"lang", "mqar", "fewshot", "copy"};

typedef struct seq {
	int kind;
	int32_t *tok;
	size_t n;
	size_t *span; /* 2 * n_span: [s, e) pairs, sorted, disjoint */
	size_t n_span;
} seq;

typedef struct tally {
	double nll;      /* summed cross-entropy, nats */
	size_t n_tok;    /* scored tokens */
	size_t n_right;  /* scored tokens whose argmax was right */
	size_t n_span;   /* spans */
	size_t n_spanok; /* spans right in full */
	size_t n_seq;
} tally;

static double now_s(void) { return (double)ag_monotonic_ns() / 1e9; }

/* ------------------------------------------------------------ data file */

static int next_num(const char **p, const char *end, long long lo, long long hi, long long *out)
{
	const char *s = *p;
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	if (s >= end || *s < '0' || *s > '9')
		return ag_error_set(AG_EINVAL, "expected a number");
	long long v = 0;
	while (s < end && *s >= '0' && *s <= '9') {
		if (v > (hi - (*s - '0')) / 10)
			return ag_error_set(AG_EINVAL, "number out of range");
		v = v * 10 + (*s - '0');
		s++;
	}
	if (v < lo || v > hi)
		return ag_error_set(AG_EINVAL, "number %lld out of range [%lld, %lld]", v, lo, hi);
	*p = s;
	*out = v;
	return 0;
}

static void seqs_free(seq *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		ag_free(v[i].tok);
		ag_free(v[i].span);
	}
	ag_free(v);
}

/* One line (without its newline) into *q. */
static int parse_line(const char *p, const char *end, uint32_t n_vocab, seq *q)
{
	const char *w = p;
	while (w < end && *w != ' ')
		w++;
	q->kind = -1;
	for (int k = 0; k < N_KINDS; k++)
		if ((size_t)(w - p) == strlen(kind_names[k]) && !memcmp(p, kind_names[k], (size_t)(w - p)))
			q->kind = k;
	if (q->kind < 0)
		return ag_error_set(AG_EINVAL, "unknown kind \"%.*s\"", (int)(w - p > 20 ? 20 : w - p), p);
	long long n, v;
	int rc;
	if ((rc = next_num(&w, end, 2, 1 << 20, &n)))
		return rc;
	q->n = (size_t)n;
	if (!(q->tok = ag_malloc(q->n * sizeof(int32_t))))
		return ag_error_set(AG_ENOMEM, "out of memory");
	for (size_t i = 0; i < q->n; i++) {
		if ((rc = next_num(&w, end, 0, (long long)n_vocab - 1, &v)))
			return ag_error_wrap(rc, "token %zu", i);
		q->tok[i] = (int32_t)v;
	}
	if ((rc = next_num(&w, end, 1, n, &v)))
		return ag_error_wrap(rc, "span count");
	q->n_span = (size_t)v;
	if (!(q->span = ag_malloc(2 * q->n_span * sizeof(size_t))))
		return ag_error_set(AG_ENOMEM, "out of memory");
	size_t prev = 1;
	for (size_t i = 0; i < q->n_span; i++) {
		long long s, e;
		if ((rc = next_num(&w, end, (long long)prev, n, &s)) ||
		    (rc = next_num(&w, end, s + 1, n, &e)))
			return ag_error_wrap(rc, "span %zu (spans are sorted, disjoint, 1 <= s < e <= n)", i);
		q->span[2 * i] = (size_t)s;
		q->span[2 * i + 1] = (size_t)e;
		prev = (size_t)e;
	}
	while (w < end && (*w == ' ' || *w == '\t' || *w == '\r'))
		w++;
	if (w != end)
		return ag_error_set(AG_EINVAL, "trailing text");
	return 0;
}

static int read_data(const char *path, uint32_t n_vocab, size_t max_per_kind, seq **out, size_t *n_out)
{
	char *text;
	size_t len;
	int rc = ag_read_file(path, (size_t)1 << 30, &text, &len);
	if (rc)
		return rc;
	seq *v = NULL;
	size_t n = 0, cap = 0, per[N_KINDS] = {0}, line = 0;
	const char *p = text, *end = text + len;
	while (p < end && !rc) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		line++;
		if (le > p) {
			if (n == cap) {
				size_t nc = cap ? 2 * cap : 64;
				seq *nv = ag_realloc(v, nc * sizeof(seq));
				if (!nv) {
					rc = ag_error_set(AG_ENOMEM, "out of memory");
					break;
				}
				v = nv;
				cap = nc;
			}
			memset(&v[n], 0, sizeof(seq));
			rc = parse_line(p, le, n_vocab, &v[n]);
			if (rc) {
				rc = ag_error_wrap(rc, "%s:%zu", path, line);
				n++;
				break;
			}
			if (per[v[n].kind] < max_per_kind) {
				per[v[n].kind]++;
				n++;
			} else {
				ag_free(v[n].tok);
				ag_free(v[n].span);
			}
		}
		p = le + 1;
	}
	ag_free(text);
	if (!rc && n == 0)
		rc = ag_error_set(AG_EINVAL, "%s: no sequences", path);
	if (rc) {
		seqs_free(v, n);
		return rc;
	}
	*out = v;
	*n_out = n;
	return 0;
}

/* ------------------------------------------------------------ scoring */

/* Scores the token that follows logits: adds its cross-entropy; true when it is the argmax. */
static bool score(const float *logits, uint32_t V, int32_t target, double *nll)
{
	float mx = logits[0];
	uint32_t arg = 0;
	for (uint32_t i = 1; i < V; i++)
		if (logits[i] > mx) {
			mx = logits[i];
			arg = i;
		}
	double z = 1.0; /* the argmax's own term: z >= 1, so log(z) is defined */
	for (uint32_t i = 0; i < V; i++)
		if (i != arg)
			z += exp((double)(logits[i] - mx));
	*nll += log(z) - (double)(logits[target] - mx);
	return (int32_t)arg == target;
}

/* Prefill up to the first scored position, then decode token by token to the last. */
static int eval_seq(engine_model *m, const seq *q, float *logits, tally *t)
{
	uint32_t V = engine_model_config(m)->n_vocab;
	engine_state *s;
	int rc = engine_state_new(&s, m);
	if (rc)
		return rc;
	size_t first = q->span[0], last = q->span[2 * q->n_span - 1];
	rc = engine_prefill(m, s, q->tok, first, logits);
	size_t k = 0;
	bool span_ok = true;
	for (size_t i = first; !rc && i < last; i++) {
		while (k < q->n_span && i >= q->span[2 * k + 1])
			k++;
		if (i >= q->span[2 * k]) {
			bool ok = score(logits, V, q->tok[i], &t->nll);
			t->n_tok++;
			t->n_right += ok;
			span_ok = span_ok && ok;
			if (i + 1 == q->span[2 * k + 1]) {
				t->n_span++;
				t->n_spanok += span_ok;
				span_ok = true;
			}
		}
		if (i + 1 < last)
			rc = engine_decode(m, s, q->tok[i], logits);
	}
	t->n_seq++;
	engine_state_free(s);
	return rc;
}

/* ------------------------------------------------------------ speed and state */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int decode_rate(engine_model *m, engine_state *s, int steps, float *logits, double *rate)
{
	uint32_t V = engine_model_config(m)->n_vocab;
	double t0 = now_s();
	for (int i = 0; i < steps; i++) {
		int rc = engine_decode(m, s, (int32_t)(4 + (i * 37) % (V > 4 ? V - 4 : 1)), logits);
		if (rc)
			return rc;
	}
	*rate = steps / (now_s() - t0);
	return 0;
}

#define N_CTX      3
#define MAX_ROUNDS 15

static int speed_and_state(engine_model *m, int steps, int rounds, float *logits, double tps[N_CTX],
			   size_t bytes[N_CTX], size_t *bytes0)
{
	static const uint64_t ctx[N_CTX] = {1024, 8192, 32768};
	engine_state *cs[N_CTX] = {0};
	double r[N_CTX][MAX_ROUNDS];
	int rc = 0;
	uint8_t *buf;
	size_t len;
	{
		engine_state *e;
		if ((rc = engine_state_new(&e, m)))
			return rc;
		rc = engine_state_serialize(e, &buf, bytes0);
		engine_state_free(e);
		if (rc)
			return rc;
		ag_free(buf);
	}
	for (int i = 0; i < N_CTX && !rc; i++) {
		static const int32_t p[8] = {1, 40, 80, 120, 160, 200, 240, 44};
		double warm;
		if ((rc = engine_state_new(&cs[i], m)) || (rc = engine_prefill(m, cs[i], p, 8, NULL)) ||
		    (rc = engine_state_fill_synthetic(cs[i], ctx[i] - 8, 3)) ||
		    (rc = engine_state_serialize(cs[i], &buf, &len)))
			break;
		ag_free(buf);
		bytes[i] = len;
		rc = decode_rate(m, cs[i], 2, logits, &warm);
	}
	for (int round = 0; round < rounds && !rc; round++)
		for (int i = 0; i < N_CTX && !rc; i++)
			rc = decode_rate(m, cs[i], steps, logits, &r[i][round]);
	for (int i = 0; i < N_CTX; i++) {
		if (!rc) {
			qsort(r[i], (size_t)rounds, sizeof(double), cmp_double);
			tps[i] = r[i][rounds / 2];
		}
		engine_state_free(cs[i]);
	}
	return rc;
}

/* ------------------------------------------------------------ main */

static json_t *num(double v) { return json_real(v); }

static double ratio(size_t a, size_t b) { return b ? (double)a / (double)b : 0; }

int main(int argc, char **argv)
{
	ag_alloc_init();
	const char *model = NULL, *data = NULL;
	long long steps = 64, rounds = 7, threads = 1, max_per_kind = 1 << 30;
	for (int i = 1; i < argc; i++) {
		int bad = 0;
		if (!strcmp(argv[i], "--model") && i + 1 < argc)
			model = argv[++i];
		else if (!strcmp(argv[i], "--data") && i + 1 < argc)
			data = argv[++i];
		else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			bad = ag_parse_long(argv[++i], 1, 100000, &steps);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			bad = ag_parse_long(argv[++i], 1, MAX_ROUNDS, &rounds);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			bad = ag_parse_long(argv[++i], 1, 64, &threads);
		else if (!strcmp(argv[i], "--max-per-kind") && i + 1 < argc)
			bad = ag_parse_long(argv[++i], 1, 1 << 30, &max_per_kind);
		else
			bad = 1;
		if (bad) {
			fprintf(stderr,
				"usage: %s --model F.gguf --data F.txt [--steps N] [--rounds N] [--threads "
				"N] "
				"[--max-per-kind N]\n",
				argv[0]);
			return 2;
		}
	}
	if (!model || !data) {
		fprintf(stderr, "ablation: --model and --data are required\n");
		return 2;
	}
	engine_model *m;
	if (engine_model_load(&m, model) || engine_set_threads(m, (int)threads)) {
		fprintf(stderr, "ablation: %s\n", ag_error_last());
		return 1;
	}
	const engine_config *c = engine_model_config(m);
	seq *qs = NULL;
	size_t nq = 0;
	float *logits = ag_malloc((size_t)c->n_vocab * sizeof(float));
	tally t[N_KINDS];
	memset(t, 0, sizeof t);
	double tps[N_CTX] = {0}, t0 = now_s(), t_eval = 0;
	size_t bytes[N_CTX] = {0}, bytes0 = 0;
	int rc = logits ? 0 : ag_error_set(AG_ENOMEM, "out of memory");
	if (!rc)
		rc = read_data(data, c->n_vocab, (size_t)max_per_kind, &qs, &nq);
	for (size_t i = 0; i < nq && !rc; i++)
		rc = eval_seq(m, &qs[i], logits, &t[qs[i].kind]);
	t_eval = now_s() - t0;
	if (!rc)
		rc = speed_and_state(m, (int)steps, (int)rounds, logits, tps, bytes, &bytes0);
	if (rc) {
		fprintf(stderr, "ablation: %s\n", ag_error_last());
		seqs_free(qs, nq);
		ag_free(logits);
		engine_model_free(m);
		return 1;
	}
	json_t *o = json_object(), *layers = json_array();
	for (uint32_t i = 0; i < c->n_layer; i++)
		if (engine_model_layer_kind(m, i) == ENGINE_LAYER_ATTENTION)
			json_array_append_new(layers, json_integer(i));
	json_object_set_new(o, "model", json_string(model));
	json_object_set_new(o, "params", json_integer((json_int_t)c->n_params));
	json_object_set_new(o, "n_layer", json_integer(c->n_layer));
	json_object_set_new(o, "attn_layers", layers);
	tally task = {0};
	for (int k = 0; k < N_KINDS; k++) {
		char key[64];
		snprintf(key, sizeof key, "n_%s", kind_names[k]);
		json_object_set_new(o, key, json_integer((json_int_t)t[k].n_seq));
		snprintf(key, sizeof key, "loss_%s", kind_names[k]);
		json_object_set_new(o, key, num(t[k].n_tok ? t[k].nll / (double)t[k].n_tok : 0));
		if (k == K_LANG)
			continue;
		snprintf(key, sizeof key, "acc_%s", kind_names[k]);
		json_object_set_new(o, key, num(ratio(t[k].n_spanok, t[k].n_span)));
		snprintf(key, sizeof key, "tokacc_%s", kind_names[k]);
		json_object_set_new(o, key, num(ratio(t[k].n_right, t[k].n_tok)));
		snprintf(key, sizeof key, "spans_%s", kind_names[k]);
		json_object_set_new(o, key, json_integer((json_int_t)t[k].n_span));
		task.nll += t[k].nll;
		task.n_tok += t[k].n_tok;
	}
	json_object_set_new(o, "loss_task", num(task.n_tok ? task.nll / (double)task.n_tok : 0));
	static const char *const ctx_names[N_CTX] = {"1k", "8k", "32k"};
	for (int i = 0; i < N_CTX; i++) {
		char key[32];
		snprintf(key, sizeof key, "tps_%s", ctx_names[i]);
		json_object_set_new(o, key, num(tps[i]));
		snprintf(key, sizeof key, "state_%s", ctx_names[i]);
		json_object_set_new(o, key, json_integer((json_int_t)bytes[i]));
	}
	json_object_set_new(o, "state_0", json_integer((json_int_t)bytes0));
	json_object_set_new(o, "eval_s", num(t_eval));
	char *text;
	size_t len;
	rc = ag_json_dump(&text, &len, o);
	json_decref(o);
	if (!rc) {
		printf("%s\n", text);
		ag_free(text);
	} else {
		fprintf(stderr, "ablation: %s\n", ag_error_last());
	}
	seqs_free(qs, nq);
	ag_free(logits);
	engine_model_free(m);
	return rc ? 1 : 0;
}
