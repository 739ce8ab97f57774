/*
 * Batched decode and long-context attention: sequences advanced together give
 * exactly the logits they give alone, on every kernel set and thread count;
 * bad batches change nothing; attention past its work segments still matches
 * the double-precision reference.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "tests/support/random_model.h"

static int32_t tok(uint64_t i, uint32_t vocab) { return (int32_t)((i * 2654435761u + 17) % vocab); }

enum { NSEQ = 11, STEPS = 5 };

/* NSEQ sequences with histories of different lengths (one empty) decoded
 * STEPS times in one batch, against the same sequences decoded one by one. */
static void check_batch(engine_model *m)
{
	const engine_config *c = engine_model_config(m);
	uint32_t V = c->n_vocab;
	static const size_t hist[NSEQ] = {0, 3, 17, 40, 9, 1, 25, 2, 8, 33, 12};
	engine_state *a[NSEQ], *b[NSEQ];
	for (size_t i = 0; i < NSEQ; i++) {
		assert_int_equal(engine_state_new(&a[i], m), 0);
		if (hist[i]) {
			int32_t *h = malloc(hist[i] * sizeof(int32_t));
			for (size_t k = 0; k < hist[i]; k++)
				h[k] = tok(i * 100 + k, V);
			assert_int_equal(engine_prefill(m, a[i], h, hist[i], NULL), 0);
			free(h);
		}
		assert_int_equal(engine_state_fork(&b[i], a[i]), 0);
	}
	float *batch = malloc((size_t)NSEQ * V * sizeof(float)), *alone = malloc(V * sizeof(float));
	for (int step = 0; step < STEPS; step++) {
		int32_t toks[NSEQ];
		for (size_t i = 0; i < NSEQ; i++)
			toks[i] = tok(1000 + (uint64_t)step * NSEQ + i, V);
		assert_int_equal(engine_decode_batch(m, a, toks, NSEQ, batch), 0);
		for (size_t i = 0; i < NSEQ; i++) {
			assert_int_equal(engine_decode(m, b[i], toks[i], alone), 0);
			if (memcmp(alone, batch + i * V, V * sizeof(float)))
				fail_msg("%s: sequence %zu step %d differs in a batch",
					 engine_kernels_name(m), i, step);
			assert_int_equal(engine_state_n_kv(a[i]), hist[i] + (size_t)step + 1);
			assert_int_equal(engine_state_n_tokens(a[i]), engine_state_n_tokens(b[i]));
		}
	}
	for (size_t i = 0; i < NSEQ; i++) {
		engine_state_free(a[i]);
		engine_state_free(b[i]);
	}
	free(batch);
	free(alone);
}

static void test_batch_equals_alone(void **state)
{
	(void)state;
	uint32_t types[] = {ENGINE_TYPE_Q8_0, ENGINE_TYPE_F32, ENGINE_TYPE_Q4_0};
	const char *kernels[] = {"portable", "avx2", "avx512", "avx512vnni"};
	for (size_t t = 0; t < 3; t++) {
		engine_jamba_random p;
		engine_jamba_random_init(&p); /* has MoE layers and a GQA attention layer */
		p.weight_type = types[t];
		p.seed = 300 + t;
		p.d_state = t == 0 ? 16 : 8;
		engine_model *m = support_random_model(&p, "eq");
		for (size_t k = 0; k < 4; k++) {
			if (engine_set_kernels(m, kernels[k]))
				continue;
			for (int th = 1; th <= 2; th++) {
				assert_int_equal(engine_set_threads(m, th), 0);
				check_batch(m);
			}
		}
		engine_model_free(m);
	}
}

/* A repeated state, a bad token or another model's state: an error, and no
 * sequence moved. */
static void test_batch_errors(void **state)
{
	(void)state;
	engine_jamba_random p;
	engine_jamba_random_init(&p);
	p.seed = 310;
	engine_model *m = support_random_model(&p, "err"), *other;
	p.seed = 311;
	other = support_random_model(&p, "err2");
	engine_state *s[3], *foreign;
	for (int i = 0; i < 3; i++)
		assert_int_equal(engine_state_new(&s[i], m), 0);
	assert_int_equal(engine_state_new(&foreign, other), 0);
	int32_t toks[3] = {5, 6, 7};
	engine_state *dup[3] = {s[0], s[1], s[0]};
	assert_int_equal(engine_decode_batch(m, dup, toks, 3, NULL), AG_EINVAL);
	assert_non_null(strstr(ag_error_last(), "also state"));
	int32_t bad[3] = {5, -1, 7};
	assert_int_equal(engine_decode_batch(m, s, bad, 3, NULL), AG_EINVAL);
	engine_state *mixed[2] = {s[0], foreign};
	assert_int_equal(engine_decode_batch(m, mixed, toks, 2, NULL), AG_EINVAL);
	assert_int_equal(engine_decode_batch(m, s, toks, 0, NULL), AG_EINVAL);
	for (int i = 0; i < 3; i++)
		assert_int_equal(engine_state_n_tokens(s[i]), 0);
	assert_int_equal(engine_decode_batch(m, s, toks, 3, NULL), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(engine_state_n_kv(s[i]), 1);
	for (int i = 0; i < 3; i++)
		engine_state_free(s[i]);
	engine_state_free(foreign);
	engine_model_free(m);
	engine_model_free(other);
}

/* Past several attention work segments (2048 positions each): the fast pass
 * still matches the reference, and decoding on from there matches prefill. */
static void test_long_context_reference(void **state)
{
	(void)state;
	engine_jamba_random p;
	engine_jamba_random_init(&p);
	p.n_embd = 32;
	p.n_ff = 32;
	p.n_head = 4;
	p.n_head_kv = 1; /* MQA: four query heads share the cache, as in the 3B */
	p.d_state = 16;  /* every Jamba's: the SIMD scan step takes it in one vector */
	p.seed = 320;
	engine_model *m = support_random_model(&p, "long");
	assert_int_equal(engine_set_threads(m, 2), 0);
	uint32_t V = engine_model_config(m)->n_vocab;
	enum { N = 4200 };
	int32_t *toks = malloc((N + 1) * sizeof(int32_t));
	for (size_t i = 0; i <= N; i++)
		toks[i] = tok(i, V);
	float *fast = malloc(V * sizeof(float)), *dec = malloc(V * sizeof(float));
	double *ref = malloc(V * sizeof(double));
	engine_state *s;
	assert_int_equal(engine_state_new(&s, m), 0);
	assert_int_equal(engine_prefill(m, s, toks, N, NULL), 0);
	assert_int_equal(engine_decode(m, s, toks[N], fast), 0);
	assert_int_equal(engine_reference_logits(m, toks, N + 1, ref), 0);
	double num = 0, den = 0;
	for (uint32_t i = 0; i < V; i++) {
		num = fmax(num, fabs((double)fast[i] - ref[i]));
		den = fmax(den, fabs(ref[i]));
	}
	print_message("4201 tokens: fast vs reference %.3g\n", num / den);
	if (!(num / den <= 1e-4))
		fail_msg("long context: fast vs reference %.3g", num / den);
	engine_state *s2;
	assert_int_equal(engine_state_new(&s2, m), 0);
	assert_int_equal(engine_prefill(m, s2, toks, N + 1, dec), 0);
	num = 0;
	for (uint32_t i = 0; i < V; i++)
		num = fmax(num, fabs((double)fast[i] - dec[i]));
	if (!(num / den <= 1e-5))
		fail_msg("long context: decode vs prefill %.3g", num / den);
	engine_state_free(s);
	engine_state_free(s2);
	engine_model_free(m);
	free(toks);
	free(fast);
	free(dec);
	free(ref);
}

int main(void)
{
	ag_alloc_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_equals_alone),
		cmocka_unit_test(test_batch_errors),
		cmocka_unit_test(test_long_context_reference),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
