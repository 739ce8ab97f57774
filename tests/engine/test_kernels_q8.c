/*
 * The "avx512vnni" kernels: Q8_0 / Q4_0 rows against 8-bit activations. The
 * VNNI rows agree with their portable definition (engine_rows_q8_portable)
 * for every tile shape, token count and odd block count; a token's result
 * does not depend on the tokens beside it; the activation rounding stays
 * within half a step of each block's scale.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/core_internal.h" /* the module's own tests: kernel vtables */
#include "engine/engine.h"

static uint64_t rng = 88172645463325252ULL;

static uint32_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

static float uniform(void) { return (float)(next() % 2000001) / 1000000.0f - 1.0f; }

/* rows x cols random weights of type (Q8_0 or Q4_0), with one scale in each
 * eight blocks zero and one all-extreme block, to reach the edges. */
static uint8_t *random_weights(uint32_t type, size_t rows, size_t cols, engine_weight *w)
{
	size_t bb = type == ENGINE_TYPE_Q8_0 ? 34 : 18, nb = cols / 32;
	uint8_t *data = malloc(rows * nb * bb);
	for (size_t r = 0; r < rows; r++)
		for (size_t b = 0; b < nb; b++) {
			uint8_t *p = data + (r * nb + b) * bb;
			uint16_t h =
				(uint16_t)(b % 8 == 7 ? 0 : 0x2000 + next() % 0x1000); /* ~0.008 .. 0.03 */
			p[0] = (uint8_t)h;
			p[1] = (uint8_t)(h >> 8);
			for (size_t j = 2; j < bb; j++)
				p[j] = (uint8_t)(b % 8 == 3 ? (type == ENGINE_TYPE_Q8_0 ? 0x81 : 0x00)
							    : next());
		}
	*w = (engine_weight){.type = type, .cols = cols, .rows = rows, .row_bytes = nb * bb, .data = data};
	return data;
}

static void test_act_quant_rounding(void **state)
{
	(void)state;
	enum { N = 96 };
	float x[2 * N];
	for (size_t i = 0; i < 2 * N; i++)
		x[i] = uniform() * (i < 32 ? 100.0f : 1.0f);
	for (size_t i = 64; i < 96; i++) /* an all-zero block */
		x[i] = 0;
	x[5] = -100.0f; /* the first block's largest magnitude */
	int8_t q[2 * N];
	float d[2 * N / 32];
	int32_t sums[2 * 2 * 16];
	assert_int_equal(engine_act_quant_sums(2, N), 2 * 2 * 16);
	engine_act_quant(x, 2, N, q, d, sums);
	for (size_t i = 0; i < 2 * N; i++) {
		float scale = d[i / 32];
		float back = (float)q[i] * scale;
		assert_true(q[i] >= -127);
		if (fabsf(back - x[i]) > scale * 0.5f + 1e-6f)
			fail_msg("value %zu: %g rounds to %g (scale %g)", i, x[i], back, scale);
	}
	assert_true(d[2] == 0.0f && q[64] == 0 && q[95] == 0);
	assert_true(fabsf(d[0] * 127.0f - 100.0f) < 1e-4f && q[5] == -127); /* the largest magnitude */
	/* per pair of blocks, lanes 0 and 8 hold each block's sum, negated */
	for (size_t t = 0; t < 2; t++)
		for (size_t b = 0; b < 3; b++) {
			int32_t sum = 0;
			for (size_t j = 0; j < 32; j++)
				sum += q[t * N + b * 32 + j];
			assert_int_equal(sums[(t * 2 + b / 2) * 16 + (b % 2) * 8], -sum);
		}
	for (size_t i = 0; i < 2 * 2 * 16; i++)
		if (i % 8)
			assert_int_equal(sums[i], 0);
}

/* VNNI rows equal the portable definition, for each token count and row
 * range, and a token alone gives bit for bit what it gives in a batch. */
static void check_type(uint32_t type, size_t cols)
{
	const engine_kernels *k = engine_kernels_find("avx512vnni");
	enum { ROWS = 37, MAXT = 16 };
	engine_weight w;
	uint8_t *data = random_weights(type, ROWS, cols, &w);
	float *x = malloc(MAXT * cols * sizeof(float));
	for (size_t i = 0; i < MAXT * cols; i++)
		x[i] = uniform() * (i % 97 == 0 ? 8.0f : 1.0f);
	int8_t *q = malloc(MAXT * cols);
	float *d = malloc(MAXT * (cols / 32) * sizeof(float));
	int32_t *sums = malloc(engine_act_quant_sums(MAXT, cols) * sizeof(int32_t));
	engine_act_quant(x, MAXT, cols, q, d, sums);
	engine_q8act xq = {.q = q, .d = d, .neg_sum = sums, .n = cols};
	/* float sums in another order: tolerance from the sum of |terms| */
	float *wrow = malloc(cols * sizeof(float)), mag[MAXT * ROWS];
	for (size_t r = 0; r < ROWS; r++) {
		engine_kernels_portable.row_to_f32(&w, r, wrow);
		for (size_t t = 0; t < MAXT; t++) {
			double m = 0;
			for (size_t j = 0; j < cols; j++)
				m += fabs((double)wrow[j] * x[t * cols + j]);
			mag[t * ROWS + r] = (float)m;
		}
	}
	float ref[MAXT * ROWS], got[MAXT * ROWS], alone[ROWS];
	size_t counts[] = {1, 2, 3, 4, 5, 7, 8, 16};
	for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
		size_t nt = counts[c];
		engine_rows_q8_portable(&w, &xq, nt, ref, ROWS, 0, ROWS);
		memset(got, 0, sizeof got);
		k->rows_q8(&w, &xq, nt, got, ROWS, 0, 13); /* two ranges, as two threads take them */
		k->rows_q8(&w, &xq, nt, got, ROWS, 13, ROWS);
		for (size_t t = 0; t < nt; t++)
			for (size_t r = 0; r < ROWS; r++) {
				float a = got[t * ROWS + r], b = ref[t * ROWS + r];
				if (fabsf(a - b) > 1e-5f * (1.0f + mag[t * ROWS + r]))
					fail_msg("%s cols %zu tokens %zu: row %zu token %zu: %.7g vs %.7g",
						 engine_type_name(type), cols, nt, r, t, a, b);
			}
		/* the last token of the batch, alone: the same bits */
		engine_q8act last = {.q = q + (nt - 1) * cols,
				     .d = d + (nt - 1) * (cols / 32),
				     .neg_sum = sums + engine_act_quant_sums(nt - 1, cols),
				     .n = cols};
		k->rows_q8(&w, &last, 1, alone, ROWS, 0, ROWS);
		if (memcmp(alone, got + (nt - 1) * ROWS, sizeof alone))
			fail_msg("%s cols %zu: a token's result depends on the %zu tokens beside it",
				 engine_type_name(type), cols, nt - 1);
	}
	/* the 8-bit product differs from the exact one by at most what rounding
	 * the activations allows: the sum of |weight| x half the block's step */
	float exact[ROWS];
	engine_kernels_portable.rows(&w, x, 1, exact, ROWS, 0, ROWS, wrow);
	engine_rows_q8_portable(&w, &xq, 1, got, ROWS, 0, ROWS);
	for (size_t r = 0; r < ROWS; r++) {
		engine_kernels_portable.row_to_f32(&w, r, wrow);
		double bound = 0;
		for (size_t j = 0; j < cols; j++)
			bound += fabs((double)wrow[j]) * d[j / 32] * 0.5;
		if (fabs((double)got[r] - (double)exact[r]) > bound * 1.001 + 1e-5)
			fail_msg("row %zu: 8-bit %.7g vs exact %.7g, beyond the rounding bound %.3g", r,
				 got[r], exact[r], bound);
	}
	free(wrow);
	free(data);
	free(x);
	free(q);
	free(d);
	free(sums);
}

static void test_vnni_rows_match_definition(void **state)
{
	(void)state;
	if (!engine_kernels_find("avx512vnni")) {
		print_message("avx512vnni: not on this CPU, skipped\n");
		skip();
	}
	size_t cols[] = {32, 96, 256, 2560}; /* one block, odd block counts, even */
	for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
		check_type(ENGINE_TYPE_Q8_0, cols[c]);
		check_type(ENGINE_TYPE_Q4_0, cols[c]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_act_quant_rounding),
		cmocka_unit_test(test_vnni_rows_match_definition),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
