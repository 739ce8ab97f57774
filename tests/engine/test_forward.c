/* Unit tests of the engine core's forward passes and sequence state: the fast
 * pass against the double-precision reference on several random shapes and
 * weight types, decode against prefill, fork / serialise / restore continuing
 * bit for bit, drop_oldest, threads. Every model is written here at random. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core_internal.h" /* the module's own tests: K-quant block functions */
#include "engine/engine.h"

static char model_path[512];

static const char *tmpdir(void)
{
	const char *d = getenv("TEST_TMPDIR");
	return d && *d ? d : "/tmp";
}

static engine_model *make(const engine_jamba_random *p)
{
	snprintf(model_path, sizeof model_path, "%s/fwd-%llu-%u.gguf", tmpdir(), (unsigned long long)p->seed,
		 p->weight_type);
	if (engine_jamba_random_write(p, model_path))
		fail_msg("write: %s", ag_error_last());
	engine_model *m;
	if (engine_model_load(&m, model_path))
		fail_msg("load: %s", ag_error_last());
	return m;
}

static void tokens_for(int32_t *t, size_t n, uint32_t vocab, uint64_t seed)
{
	uint64_t s = seed * 2654435761u + 7;
	for (size_t i = 0; i < n; i++) {
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		t[i] = (int32_t)((s >> 33) % vocab);
	}
}

/* max |a - b| / max |b| */
static double rel_err(const float *a, const double *b, size_t n)
{
	double num = 0, den = 0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)a[i] - b[i]);
		num = d > num ? d : num;
		den = fabs(b[i]) > den ? fabs(b[i]) : den;
	}
	return num / (den > 0 ? den : 1);
}

static double rel_err_f(const float *a, const float *b, size_t n)
{
	double num = 0, den = 0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)a[i] - (double)b[i]);
		num = d > num ? d : num;
		den = fabs((double)b[i]) > den ? fabs((double)b[i]) : den;
	}
	return num / (den > 0 ? den : 1);
}

/* Prefill of n tokens against the reference, then decode equals prefill, with
 * every kernel set this CPU runs (portable, AVX2, AVX-512). */
static void check_model(const engine_jamba_random *p, size_t n)
{
	engine_model *m = make(p);
	const engine_config *c = engine_model_config(m);
	int32_t toks[64];
	tokens_for(toks, n, c->n_vocab, p->seed);
	float *fast = calloc(c->n_vocab, sizeof(float)), *dec = calloc(c->n_vocab, sizeof(float));
	double *ref = calloc(c->n_vocab, sizeof(double));
	assert_int_equal(engine_reference_logits(m, toks, n, ref), 0);
	double spread = 0;
	for (uint32_t i = 0; i < c->n_vocab; i++)
		spread = fabs(ref[i]) > spread ? fabs(ref[i]) : spread;
	assert_true(spread > 0.1); /* logits are not degenerate */
	const char *kernels[] = {"portable", "avx2", "avx512", "avx512vnni"};
	for (size_t k = 0; k < 4; k++) {
		if (engine_set_kernels(m, kernels[k])) {
			print_message("%s: not on this CPU, skipped\n", kernels[k]);
			continue;
		}
		assert_string_equal(engine_kernels_name(m), kernels[k]);
		engine_state *s, *s2;
		assert_int_equal(engine_state_new(&s, m), 0);
		assert_int_equal(engine_prefill(m, s, toks, n, fast), 0);
		/* avx512vnni rounds the activations of Q8_0/Q4_0 products to 8 bits:
		 * 2-3% of the largest logit on these random models instead of 1e-5,
		 * for those types and in decode only (prefill here goes through sgemm);
		 * and it attends over a BF16 copy of the cache: ~1e-3 for every type
		 * (test_att16.c holds those kernels to their definition) */
		bool vnni = !strcmp(kernels[k], "avx512vnni");
		bool int8 =
			vnni && (p->weight_type == ENGINE_TYPE_Q8_0 || p->weight_type == ENGINE_TYPE_Q4_0);
		double tol_ref = int8 && n < 8 ? 6e-2
				 : vnni        ? 1e-2
					       : 1e-4,
		       tol_dec = int8   ? 6e-2
				 : vnni ? 1e-2
					: 1e-5;
		double e = rel_err(fast, ref, c->n_vocab);
		if (!(e <= tol_ref))
			fail_msg("%s %s: fast vs reference relative error %.3g > %.g", kernels[k],
				 engine_type_name(p->weight_type), e, tol_ref);
		/* one token at a time gives the same logits (sgemm prefill vs row kernels) */
		assert_int_equal(engine_state_new(&s2, m), 0);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(engine_decode(m, s2, toks[i], dec), 0);
		double d = rel_err_f(dec, fast, c->n_vocab);
		print_message("%s %s n=%zu: fast vs reference %.3g, decode vs prefill %.3g\n", kernels[k],
			      engine_type_name(p->weight_type), n, e, d);
		if (!(d <= tol_dec))
			fail_msg("decode vs prefill relative difference %.3g > %.g", d, tol_dec);
		assert_int_equal(engine_state_n_tokens(s2), n);
		assert_int_equal(engine_state_n_kv(s2), n);
		engine_state_free(s);
		engine_state_free(s2);
	}
	engine_model_free(m);
	free(fast);
	free(dec);
	free(ref);
}

static void test_default_shape_all_types(void **state)
{
	(void)state;
	/* 4 layers: Mamba, MoE-Mamba, attention (GQA 4/2), MoE-Mamba */
	uint32_t types[] = {ENGINE_TYPE_F32, ENGINE_TYPE_F16, ENGINE_TYPE_BF16, ENGINE_TYPE_Q8_0,
			    ENGINE_TYPE_Q4_0};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		engine_jamba_random p;
		engine_jamba_random_init(&p);
		p.weight_type = types[i];
		p.seed = 11 + i;
		check_model(&p, 20);
	}
}

static void test_dense_one_attention_mha(void **state)
{
	(void)state;
	engine_jamba_random p;
	engine_jamba_random_init(&p);
	p.n_expert = 1; /* no experts anywhere */
	p.n_layer = 3;
	p.attn_period = 3;
	p.attn_offset = 1;
	p.n_head = 2;
	p.n_head_kv = 2;
	p.seed = 21;
	check_model(&p, 12);
}

static void test_two_attention_mqa_experts_tied(void **state)
{
	(void)state;
	engine_jamba_random p;
	engine_jamba_random_init(&p);
	p.n_layer = 8;
	p.attn_period = 4;
	p.attn_offset = 1; /* attention at layers 1 and 5 */
	p.n_head = 4;
	p.n_head_kv = 1;
	p.n_expert = 3;
	p.n_expert_used = 1;
	p.expert_period = 1;
	p.expert_offset = 0; /* every layer MoE */
	p.d_conv = 2;
	p.d_state = 4;
	p.dt_rank = 3;
	p.tied = true;
	p.seed = 31;
	engine_model *m = make(&p);
	const engine_config *c = engine_model_config(m);
	assert_int_equal(c->n_attention, 2);
	assert_int_equal(c->n_mamba, 6);
	assert_int_equal(c->n_moe, 8);
	assert_int_equal(engine_model_layer_kind(m, 1), ENGINE_LAYER_ATTENTION);
	assert_int_equal(engine_model_layer_kind(m, 5), ENGINE_LAYER_ATTENTION);
	assert_int_equal(engine_model_layer_kind(m, 4), ENGINE_LAYER_MAMBA);
	assert_int_equal(engine_model_layer_kv_heads(m, 1), 1);
	assert_true(engine_model_layer_moe(m, 0));
	engine_model_free(m);
	check_model(&p, 24);
	/* Q8_0 of the same shape */
	p.weight_type = ENGINE_TYPE_Q8_0;
	check_model(&p, 9);
}

static void test_config_and_vocab(void **state)
{
	(void)state;
	engine_jamba_random p;
	engine_jamba_random_init(&p);
	p.seed = 41;
	engine_model *m = make(&p);
	const engine_config *c = engine_model_config(m);
	assert_int_equal(c->n_vocab, p.n_vocab);
	assert_int_equal(c->n_embd, 64);
	assert_int_equal(c->d_inner, 128);
	assert_int_equal(c->dt_rank, 4); /* ceil(64 / 16) */
	assert_int_equal(c->head_dim, 16);
	assert_int_equal(c->n_moe, 2);
	assert_true(fabsf(c->rms_eps - 1e-6f) < 1e-12f);
	const engine_vocab_desc *v = engine_model_vocab(m);
	assert_int_equal(v->n_tokens, p.n_vocab);
	assert_string_equal(v->model, "llama");
	assert_string_equal(v->tokens[0], "<unk>");
	assert_string_equal(v->tokens[1], "<s>");
	assert_string_equal(v->tokens[3], "<0x00>");
	assert_string_equal(v->tokens[258], "<0xFF>");
	assert_string_equal(v->tokens[259], "<|im_start|>");
	assert_string_equal(v->tokens[260], "<|im_end|>");
	assert_int_equal(v->types[259], ENGINE_TOKEN_CONTROL);
	assert_int_equal(v->types[10], ENGINE_TOKEN_BYTE);
	assert_int_equal(v->bos_id, 1);
	assert_int_equal(v->eos_id, 2);
	assert_true(v->scores[300] < v->scores[270]);
	assert_non_null(v->chat_template);
	/* the vocabulary is usable by the tokenizer */
	engine_tokenizer *tok;
	assert_int_equal(engine_tokenizer_create(&tok, v), 0);
	int32_t *ids;
	size_t n;
	assert_int_equal(engine_tokenize(tok, "the answer<|im_end|>", 20, true, true, &ids, &n), 0);
	assert_true(n >= 3);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[n - 1], 260);
	ag_free(ids);
	engine_tokenizer_free(tok);
	/* bad tokens are refused, not read out of bounds */
	engine_state *s;
	assert_int_equal(engine_state_new(&s, m), 0);
	float *lg = calloc(c->n_vocab, sizeof(float));
	int32_t bad = (int32_t)c->n_vocab;
	assert_int_equal(engine_decode(m, s, bad, lg), AG_EINVAL);
	assert_int_equal(engine_decode(m, s, -1, lg), AG_EINVAL);
	assert_int_equal(engine_prefill(m, s, &bad, 0, lg), AG_EINVAL);
	assert_int_equal(engine_state_n_tokens(s), 0);
	free(lg);
	engine_state_free(s);
	engine_model_free(m);
}

static void test_state_fork_serialize_restore(void **state)
{
	(void)state;
	engine_jamba_random p;
	engine_jamba_random_init(&p);
	p.seed = 51;
	engine_model *m = make(&p);
	uint32_t V = engine_model_config(m)->n_vocab;
	int32_t a[14], b[6];
	tokens_for(a, 14, V, 5);
	tokens_for(b, 6, V, 6);
	float *full = calloc(V, sizeof(float)), *cont = calloc(V, sizeof(float)),
	      *forked = calloc(V, sizeof(float));
	/* uninterrupted */
	engine_state *s;
	assert_int_equal(engine_state_new(&s, m), 0);
	assert_int_equal(engine_prefill(m, s, a, 14, NULL), 0);
	engine_state *f;
	assert_int_equal(engine_state_fork(&f, s), 0);
	uint8_t *bytes;
	size_t len;
	assert_int_equal(engine_state_serialize(s, &bytes, &len), 0);
	for (int i = 0; i < 6; i++)
		assert_int_equal(engine_decode(m, s, b[i], full), 0);
	/* forked: the same continuation, and the original went on without touching it */
	for (int i = 0; i < 6; i++)
		assert_int_equal(engine_decode(m, f, b[i], forked), 0);
	assert_memory_equal(forked, full, V * sizeof(float));
	/* restored from bytes */
	engine_state *r;
	assert_int_equal(engine_state_restore(&r, m, bytes, len), 0);
	assert_int_equal(engine_state_n_tokens(r), 14);
	assert_int_equal(engine_prefill(m, r, b, 6, NULL), 0);
	engine_state_free(r);
	assert_int_equal(engine_state_restore(&r, m, bytes, len), 0);
	for (int i = 0; i < 6; i++)
		assert_int_equal(engine_decode(m, r, b[i], cont), 0);
	assert_memory_equal(cont, full, V * sizeof(float));
	/* serialising the restored state again gives the same bytes as the uninterrupted one */
	uint8_t *b2, *b3;
	size_t l2, l3;
	assert_int_equal(engine_state_serialize(r, &b2, &l2), 0);
	assert_int_equal(engine_state_serialize(s, &b3, &l3), 0);
	assert_int_equal(l2, l3);
	assert_memory_equal(b2, b3, l2);
	ag_free(b2);
	ag_free(b3);
	engine_state_free(r);
	/* damaged bytes: every truncation and some flipped header bytes are refused */
	for (size_t cut = 0; cut < len; cut += (cut < 200 ? 1 : 97)) {
		assert_int_not_equal(engine_state_restore(&r, m, bytes, cut), 0);
		assert_null(r);
	}
	uint8_t *bad = malloc(len + 4);
	memcpy(bad, bytes, len);
	memset(bad + len, 0, 4);
	assert_int_equal(engine_state_restore(&r, m, bad, len + 4), AG_ECORRUPT);
	for (size_t i = 0; i < 80; i++) {
		memcpy(bad, bytes, len);
		bad[i] ^= 0x40;
		int rc = engine_state_restore(&r, m, bad, len);
		if (i >= 40 && i < 48) { /* n_tokens: any value >= n_kv is a valid state */
			engine_state_free(r);
			continue;
		}
		assert_int_not_equal(rc, 0);
	}
	free(bad);
	/* another model's state is refused, even when its state has the same shape
	 * (the identity hashes the header and metadata, as the file names the model) */
	engine_jamba_random p2 = p;
	p2.seed = 52;
	p2.n_ff = 80;
	engine_model *m2 = make(&p2);
	assert_int_equal(engine_state_restore(&r, m2, bytes, len), AG_ECONFLICT);
	engine_model_free(m2);
	ag_free(bytes);
	engine_state_free(s);
	engine_state_free(f);
	engine_model_free(m);
	free(full);
	free(cont);
	free(forked);
}

static void test_drop_oldest(void **state)
{
	(void)state;
	engine_jamba_random p;
	engine_jamba_random_init(&p);
	p.seed = 61;
	engine_model *m = make(&p);
	const engine_config *c = engine_model_config(m);
	uint32_t V = c->n_vocab;
	int32_t a[10];
	tokens_for(a, 10, V, 9);
	engine_state *s, *d;
	assert_int_equal(engine_state_new(&s, m), 0);
	assert_int_equal(engine_prefill(m, s, a, 10, NULL), 0);
	assert_int_equal(engine_state_fork(&d, s), 0);
	assert_int_equal(engine_state_drop_oldest(d, 3), 0);
	assert_int_equal(engine_state_n_kv(d), 7);
	assert_int_equal(engine_state_n_tokens(d), 10);
	/* the kept entries are the newest 7, in order: compare the serialised K/V blocks */
	uint8_t *bs, *bd;
	size_t ls, ld;
	assert_int_equal(engine_state_serialize(s, &bs, &ls), 0);
	assert_int_equal(engine_state_serialize(d, &bd, &ld), 0);
	size_t kvd = (size_t)engine_model_layer_kv_heads(m, 2) * c->head_dim * 4; /* bytes per entry */
	assert_int_equal(ls - ld, 2 * 3 * kvd);
	size_t head = ld - 2 * 7 * kvd; /* one attention layer: K then V at the end */
	assert_memory_equal(bd, bs, 8); /* magic and version */
	assert_memory_equal(bd + head, bs + head + 3 * kvd, 7 * kvd);                      /* K */
	assert_memory_equal(bd + head + 7 * kvd, bs + head + 10 * kvd + 3 * kvd, 7 * kvd); /* V */
	ag_free(bs);
	ag_free(bd);
	/* decoding goes on over the shorter window and the result changes */
	float *l1 = calloc(V, sizeof(float)), *l2 = calloc(V, sizeof(float));
	assert_int_equal(engine_decode(m, s, 5, l1), 0);
	assert_int_equal(engine_decode(m, d, 5, l2), 0);
	assert_int_equal(engine_state_n_kv(d), 8);
	assert_true(memcmp(l1, l2, V * sizeof(float)) != 0);
	for (uint32_t i = 0; i < V; i++)
		assert_true(isfinite(l2[i]));
	/* dropping everything (and more) leaves an empty cache that still decodes */
	assert_int_equal(engine_state_drop_oldest(d, 1000), 0);
	assert_int_equal(engine_state_n_kv(d), 0);
	assert_int_equal(engine_decode(m, d, 7, l2), 0);
	assert_int_equal(engine_state_n_kv(d), 1);
	engine_state_reset(d);
	assert_int_equal(engine_state_n_tokens(d), 0);
	free(l1);
	free(l2);
	engine_state_free(s);
	engine_state_free(d);
	engine_model_free(m);
}

static void test_threads_same_result(void **state)
{
	(void)state;
	engine_jamba_random p;
	engine_jamba_random_init(&p);
	p.seed = 71;
	p.weight_type = ENGINE_TYPE_Q8_0;
	engine_model *m = make(&p);
	uint32_t V = engine_model_config(m)->n_vocab;
	int32_t a[12];
	tokens_for(a, 12, V, 3);
	float *one = calloc(V, sizeof(float)), *two = calloc(V, sizeof(float));
	engine_state *s;
	assert_int_equal(engine_state_new(&s, m), 0);
	for (int i = 0; i < 12; i++)
		assert_int_equal(engine_decode(m, s, a[i], one), 0);
	assert_int_equal(engine_set_threads(m, 2), 0);
	engine_state_reset(s);
	for (int i = 0; i < 12; i++)
		assert_int_equal(engine_decode(m, s, a[i], two), 0);
	/* rows and channels are split, never sums: the same bits */
	assert_memory_equal(one, two, V * sizeof(float));
	assert_int_equal(engine_set_threads(m, 0), AG_EINVAL);
	assert_int_equal(engine_set_threads(m, 1), 0);
	free(one);
	free(two);
	engine_state_free(s);
	engine_model_free(m);
}

/* A prompt longer than one prefill chunk (256) and past several K/V growths. */
static void test_long_prompt_chunks(void **state)
{
	(void)state;
	engine_jamba_random p;
	engine_jamba_random_init(&p);
	p.n_embd = 32;
	p.n_ff = 32;
	p.n_head = 2;
	p.n_head_kv = 1;
	p.seed = 81;
	engine_model *m = make(&p);
	uint32_t V = engine_model_config(m)->n_vocab;
	enum { N = 300 };
	int32_t *toks = malloc(N * sizeof(int32_t));
	tokens_for(toks, N, V, 8);
	float *a = calloc(V, sizeof(float)), *b = calloc(V, sizeof(float));
	engine_state *s1, *s2;
	assert_int_equal(engine_state_new(&s1, m), 0);
	assert_int_equal(engine_state_new(&s2, m), 0);
	assert_int_equal(engine_prefill(m, s1, toks, N, a), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(engine_decode(m, s2, toks[i], b), 0);
	assert_int_equal(engine_state_n_kv(s1), N);
	double d = rel_err_f(a, b, V);
	if (!(d <= 1e-5))
		fail_msg("long prompt: prefill vs decode %.3g", d);
	engine_state_free(s1);
	engine_state_free(s2);
	engine_model_free(m);
	free(toks);
	free(a);
	free(b);
}

/* Every allocation of load, state and pass may fail: an error, never a crash or a leak. */
static void test_allocation_failures(void **state)
{
	(void)state;
	engine_jamba_random p;
	engine_jamba_random_init(&p);
	p.n_vocab = 300;
	p.n_embd = 32;
	p.n_ff = 32;
	p.n_layer = 3;
	p.attn_period = 3;
	p.attn_offset = 1;
	p.expert_offset = 0;
	p.seed = 91;
	engine_model *m = make(&p);
	engine_model_free(m);
	int failures = 0;
	for (long n = 1;; n++) {
		ag_alloc_fail_after(n);
		int rc = engine_model_load(&m, model_path);
		ag_alloc_fail_after(0);
		if (rc == 0)
			break;
		assert_int_equal(rc, AG_ENOMEM);
		assert_null(m);
		failures++;
	}
	assert_true(failures > 300); /* one per vocabulary string at least */
	int32_t toks[12];
	tokens_for(toks, 12, 300, 1);
	float *lg = calloc(300, sizeof(float));
	for (long n = 1;; n++) {
		engine_state *s = NULL, *f = NULL, *r = NULL;
		uint8_t *bytes = NULL;
		size_t len;
		ag_alloc_fail_after(n);
		int rc = engine_state_new(&s, m);
		if (!rc)
			rc = engine_prefill(m, s, toks, 12, lg);
		if (!rc)
			rc = engine_decode(m, s, 5, lg);
		if (!rc)
			rc = engine_state_fork(&f, s);
		if (!rc)
			rc = engine_state_serialize(s, &bytes, &len);
		if (!rc)
			rc = engine_state_restore(&r, m, bytes, len);
		ag_alloc_fail_after(0);
		engine_state_free(s);
		engine_state_free(f);
		engine_state_free(r);
		ag_free(bytes);
		if (rc == 0)
			break;
		assert_int_equal(rc, AG_ENOMEM);
		assert_true(n < 10000);
	}
	double *ref = calloc(300, sizeof(double));
	for (long n = 1;; n++) {
		ag_alloc_fail_after(n);
		int rc = engine_reference_logits(m, toks, 12, ref);
		ag_alloc_fail_after(0);
		if (rc == 0)
			break;
		assert_int_equal(rc, AG_ENOMEM);
	}
	free(ref);
	free(lg);
	engine_model_free(m);
}

/* K-quant weights (blocks of 256: the embedding and FF widths are 256). */
static void test_k_quants(void **state)
{
	(void)state;
	uint32_t types[] = {ENGINE_TYPE_Q4_K, ENGINE_TYPE_Q5_K, ENGINE_TYPE_Q6_K};
	for (size_t i = 0; i < 3; i++) {
		engine_jamba_random p;
		engine_jamba_random_init(&p);
		p.n_embd = 256;
		p.n_ff = 256;
		p.n_layer = 3;
		p.attn_period = 3;
		p.attn_offset = 2;
		p.weight_type = types[i];
		p.seed = 101 + i;
		check_model(&p, 10);
	}
}

/* Quantise then dequantise one block of each K type: the codes land where the
 * dequantiser (ggml's layout) reads them, within the format's resolution. */
static void test_k_quant_round_trip(void **state)
{
	(void)state;
	float x[256], y[256];
	uint8_t b[210];
	uint64_t s = 42;
	for (int i = 0; i < 256; i++) {
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		/* sub-blocks of different ranges, so scales and mins differ */
		x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 2.0 - 1.0) * (float)(1 + i / 32) *
		       0.1f;
	}
	struct {
		void (*q)(const float *, uint8_t *);
		void (*d)(const uint8_t *, float *);
		double levels;
		const char *name;
	} k[] = {{engine_quant_q4_k, engine_dequant_q4_k, 15, "Q4_K"},
		 {engine_quant_q5_k, engine_dequant_q5_k, 31, "Q5_K"},
		 {engine_quant_q6_k, engine_dequant_q6_k, 31, "Q6_K"}};
	for (int t = 0; t < 3; t++) {
		k[t].q(x, b);
		k[t].d(b, y);
		for (int j = 0; j < 8; j++) {
			/* error within about one quantisation step of the sub-block (scales are 6-bit
			 * themselves) */
			double lo = 0, hi = 0, err = 0;
			for (int l = 0; l < 32; l++) {
				lo = fmin(lo, x[32 * j + l]);
				hi = fmax(hi, x[32 * j + l]);
				err = fmax(err, fabs((double)y[32 * j + l] - x[32 * j + l]));
			}
			/* one code step of this sub-block (its 6-bit scale rounded up by at most d),
			 * plus half the resolution of the 6-bit min (dmin) for the K4/K5 formats */
			double d = t == 2 ? engine_fp16_to_f32((uint16_t)(b[208] | b[209] << 8))
					  : engine_fp16_to_f32((uint16_t)(b[0] | b[1] << 8));
			double dmin = t == 2 ? 0 : engine_fp16_to_f32((uint16_t)(b[2] | b[3] << 8));
			double step = (hi - lo) / k[t].levels;
			if (t == 2) /* symmetric: the step spans [-amax, amax] over 63 codes */
				step = 2 * fmax(-lo, hi) / 62;
			if (!(err <= 0.5 * (step + d) + 0.5 * dmin + 1e-6))
				fail_msg("%s sub-block %d: error %.4g, step %.4g", k[t].name, j, err, step);
		}
	}
}

int main(void)
{
	ag_alloc_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_shape_all_types),
		cmocka_unit_test(test_dense_one_attention_mha),
		cmocka_unit_test(test_two_attention_mqa_experts_tied),
		cmocka_unit_test(test_config_and_vocab),
		cmocka_unit_test(test_state_fork_serialize_restore),
		cmocka_unit_test(test_drop_oldest),
		cmocka_unit_test(test_threads_same_result),
		cmocka_unit_test(test_long_prompt_chunks),
		cmocka_unit_test(test_allocation_failures),
		cmocka_unit_test(test_k_quants),
		cmocka_unit_test(test_k_quant_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
