/*
 * The avx512vnni set's interleaved weights (engine/repack.c) through whole
 * forward passes: on shapes whose row counts are not multiples of 16 (row-major
 * tails), with experts and with tied embeddings, Q8_0 and Q4_0. Switching to
 * the set and back leaves the exact sets' logits unchanged bit for bit; under
 * the set, logits stay near the exact ones, the reference agrees, and
 * sequences decoded in one batch give the bits they give alone at every
 * thread count (row shares split on group boundaries).
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

static int32_t tok(uint64_t i, uint32_t vocab) { return (int32_t)((i * 2654435761u + 5) % vocab); }

/* Prefill of 12 tokens (sgemm on dequantised rows) then one decoded token. */
static void run(engine_model *m, float *pre, float *dec)
{
	uint32_t V = engine_model_config(m)->n_vocab;
	int32_t t[12];
	for (size_t i = 0; i < 12; i++)
		t[i] = tok(i, V);
	engine_state *s;
	assert_int_equal(engine_state_new(&s, m), 0);
	assert_int_equal(engine_prefill(m, s, t, 12, pre), 0);
	assert_int_equal(engine_decode(m, s, tok(99, V), dec), 0);
	engine_state_free(s);
}

/* max |a - b| / max |b|; NaN when any a is (so !(err <= tol) catches it) */
static double rel_err(const float *a, const float *b, size_t n)
{
	double num = 0, den = 0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)a[i] - b[i]);
		num = d <= num ? num : d;
		den = fabs((double)b[i]) > den ? fabs((double)b[i]) : den;
	}
	return num / (den > 0 ? den : 1);
}

/* Batched against alone, under the current kernels and threads. */
static void check_batch(engine_model *m)
{
	enum { N = 5 };
	uint32_t V = engine_model_config(m)->n_vocab;
	engine_state *a[N], *b[N];
	float *batch = malloc((size_t)N * V * sizeof(float)), *alone = malloc(V * sizeof(float));
	int32_t toks[N];
	for (size_t i = 0; i < N; i++) {
		assert_int_equal(engine_state_new(&a[i], m), 0);
		int32_t h[3] = {tok(i, V), tok(i + 7, V), tok(i + 11, V)};
		assert_int_equal(engine_prefill(m, a[i], h, 1 + i % 3, NULL), 0);
		assert_int_equal(engine_state_fork(&b[i], a[i]), 0);
		toks[i] = tok(50 + i, V);
	}
	assert_int_equal(engine_decode_batch(m, a, toks, N, batch), 0);
	for (size_t i = 0; i < N; i++) {
		assert_int_equal(engine_decode(m, b[i], toks[i], alone), 0);
		if (memcmp(alone, batch + i * V, V * sizeof(float)))
			fail_msg("%s: sequence %zu batched differs from alone", engine_kernels_name(m), i);
		engine_state_free(a[i]);
		engine_state_free(b[i]);
	}
	free(batch);
	free(alone);
}

static void check_shape(engine_jamba_random *p, const char *tag)
{
	engine_model *m = support_random_model(p, tag);
	uint32_t V = engine_model_config(m)->n_vocab;
	uint8_t id[32];
	memcpy(id, engine_model_identity(m), sizeof id);
	float *pre0 = malloc(V * sizeof(float)), *dec0 = malloc(V * sizeof(float));
	float *pre = malloc(V * sizeof(float)), *dec = malloc(V * sizeof(float));
	double *ref = malloc(V * sizeof(double));
	float *reff = malloc(V * sizeof(float));
	assert_int_equal(engine_set_kernels(m, "avx512"), 0);
	run(m, pre0, dec0);
	assert_int_equal(engine_set_kernels(m, "avx512vnni"), 0);
	assert_int_equal(engine_set_kernels(m, "avx512vnni"), 0); /* again: nothing to redo */
	run(m, pre, dec);
	/* the 8-bit activations move logits by a few percent (test_forward.c) */
	if (!(rel_err(pre, pre0, V) <= 6e-2) || !(rel_err(dec, dec0, V) <= 6e-2))
		fail_msg("%s %s: vnni prefill %.3g, decode %.3g from the exact logits", tag,
			 engine_type_name(p->weight_type), rel_err(pre, pre0, V), rel_err(dec, dec0, V));
	/* the reference reads the interleaved rows through the set's row_to_f32 */
	int32_t t[12];
	for (size_t i = 0; i < 12; i++)
		t[i] = tok(i, V);
	assert_int_equal(engine_reference_logits(m, t, 12, ref), 0);
	for (uint32_t i = 0; i < V; i++)
		reff[i] = (float)ref[i];
	if (!(rel_err(pre0, reff, V) <= 1e-4))
		fail_msg("%s: reference on interleaved weights %.3g from the exact prefill", tag,
			 rel_err(pre0, reff, V));
	for (int th = 1; th <= 3; th++) {
		assert_int_equal(engine_set_threads(m, th), 0);
		check_batch(m);
	}
	assert_int_equal(engine_set_threads(m, 1), 0);
	/* back to row-major: the same bits as before the round trip */
	assert_int_equal(engine_set_kernels(m, "avx512"), 0);
	run(m, pre, dec);
	assert_memory_equal(pre, pre0, V * sizeof(float));
	assert_memory_equal(dec, dec0, V * sizeof(float));
	assert_memory_equal(engine_model_identity(m), id, sizeof id);
	free(pre0);
	free(dec0);
	free(pre);
	free(dec);
	free(ref);
	free(reff);
	engine_model_free(m);
}

static void test_odd_shapes(void **state)
{
	(void)state;
	engine_model *probe = NULL;
	uint32_t types[] = {ENGINE_TYPE_Q8_0, ENGINE_TYPE_Q4_0};
	for (size_t i = 0; i < 2; i++) {
		engine_jamba_random p;
		engine_jamba_random_init(&p);
		p.weight_type = types[i];
		p.n_embd = 96;   /* 6 groups */
		p.n_ff = 88;     /* 5 groups and a tail of 8, per expert */
		p.n_vocab = 300; /* 18 groups and 12 rows: the tied output head */
		p.n_expert = 3;
		p.n_expert_used = 2;
		p.tied = true;
		p.seed = 41 + i;
		if (!probe) {
			probe = support_random_model(&p, "probe");
			bool vnni = engine_set_kernels(probe, "avx512vnni") == 0;
			engine_model_free(probe);
			if (!vnni) {
				print_message("avx512vnni: not on this CPU, skipped\n");
				skip();
			}
		}
		check_shape(&p, "tied");
		p.tied = false;
		p.n_expert = 1; /* dense */
		p.n_ff = 40;    /* two groups and a tail */
		check_shape(&p, "dense");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_odd_shapes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
