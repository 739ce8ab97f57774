/*
 * The "avx512vnni" kernels: Q8_0 / Q4_0 rows against 8-bit activations. The
 * VNNI rows agree with their portable definition (engine_rows_q8_portable)
 * for every tile shape, token count and odd block count; a token's result
 * does not depend on the tokens beside it; the activation rounding stays
 * within half a step of each block's scale. On weights interleaved by 16 rows
 * (the layout the set reads, repack.c) they give bit for bit what the
 * definition gives on the row-major original, whatever the row range and row
 * count, and the layout round-trips.
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
	*w = (engine_weight){
		.type = type, .cols = cols, .rows = rows, .count = 1, .row_bytes = nb * bb, .data = data};
	return data;
}

/* The avx512vnni set, or the test is skipped on a CPU without it. */
static const engine_kernels *vnni_or_skip(void)
{
	const engine_kernels *k = engine_kernels_find("avx512vnni");
	if (!k) {
		print_message("avx512vnni: not on this CPU, skipped\n");
		skip();
	}
	return k;
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

/* An interleaved copy of w (rows of count matrices); the bytes returned are its data. */
static uint8_t *interleaved(const engine_weight *w, engine_weight *out)
{
	size_t bytes = (size_t)(w->count * w->rows) * w->row_bytes;
	uint8_t *data = malloc(bytes), *tmp = malloc(16 * w->row_bytes);
	memcpy(data, w->data, bytes);
	*out = *w;
	out->data = data;
	engine_weight_relayout(out, data, ENGINE_LAYOUT_I16, tmp);
	free(tmp);
	return data;
}

/* rows_q8 on the interleaved copy equals the definition on the row-major
 * original exactly: the same integer sums, scaled and added in block order. */
static void check_interleaved(uint32_t type, size_t rows, size_t cols)
{
	const engine_kernels *k = engine_kernels_find("avx512vnni");
	enum { MAXT = 16 };
	engine_weight w, wi;
	uint8_t *data = random_weights(type, rows, cols, &w);
	uint8_t *idata = interleaved(&w, &wi);
	assert_int_equal(wi.layout, ENGINE_LAYOUT_I16);
	assert_int_equal(engine_weight_grouped(&wi), rows / 16 * 16);
	float *x = malloc(MAXT * cols * sizeof(float));
	for (size_t i = 0; i < MAXT * cols; i++)
		x[i] = uniform() * (i % 89 == 0 ? 8.0f : 1.0f);
	int8_t *q = malloc(MAXT * cols);
	float *d = malloc(MAXT * (cols / 32) * sizeof(float));
	int32_t *sums = malloc(engine_act_quant_sums(MAXT, cols) * sizeof(int32_t));
	engine_act_quant(x, MAXT, cols, q, d, sums);
	engine_q8act xq = {.q = q, .d = d, .neg_sum = sums, .n = cols};
	float *ref = malloc(MAXT * rows * sizeof(float)), *got = malloc(MAXT * rows * sizeof(float));
	float *alone = malloc(rows * sizeof(float));
	/* row ranges as threads take them: on and off group boundaries, empty */
	size_t cuts[][3] = {
		{0, rows, rows}, {0, 13, rows}, {0, 16, rows}, {5, 21, rows}, {0, rows / 2, rows / 2 + 1}};
	size_t counts[] = {1, 2, 3, 4, 5, 8, 9, 16};
	for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
		size_t nt = counts[c];
		engine_rows_q8_portable(&w, &xq, nt, ref, rows, 0, rows);
		for (size_t u = 0; u < sizeof cuts / sizeof cuts[0]; u++) {
			size_t a = cuts[u][0] < rows ? cuts[u][0] : rows,
			       b = cuts[u][1] < rows ? cuts[u][1] : rows,
			       e = cuts[u][2] < rows ? cuts[u][2] : rows;
			for (size_t i = 0; i < nt * rows; i++)
				got[i] = NAN;
			/* [0, a) by the definition on the interleaved copy, then the kernel */
			engine_rows_q8_portable(&wi, &xq, nt, got, rows, 0, a);
			k->rows_q8(&wi, &xq, nt, got, rows, a, b);
			k->rows_q8(&wi, &xq, nt, got, rows, b, e);
			k->rows_q8(&wi, &xq, nt, got, rows, e, rows);
			if (memcmp(got, ref, nt * rows * sizeof(float)))
				for (size_t i = 0; i < nt * rows; i++)
					if (memcmp(&got[i], &ref[i], sizeof(float)))
						fail_msg(
							"%s %zu x %zu, %zu tokens, cuts %zu/%zu/%zu: row %zu "
							"token %zu: %.9g, definition %.9g",
							engine_type_name(type), rows, cols, nt, a, b, e,
							i % rows, i / rows, got[i], ref[i]);
		}
		engine_q8act last = {.q = q + (nt - 1) * cols,
				     .d = d + (nt - 1) * (cols / 32),
				     .neg_sum = sums + engine_act_quant_sums(nt - 1, cols),
				     .n = cols};
		k->rows_q8(&wi, &last, 1, alone, rows, 0, rows);
		if (memcmp(alone, ref + (nt - 1) * rows, rows * sizeof(float)))
			fail_msg("%s interleaved: a token's result depends on the tokens beside it",
				 engine_type_name(type));
	}
	/* the set's row reads give the row-major floats; the layout round-trips */
	float *r1 = malloc(cols * sizeof(float)), *r2 = malloc(cols * sizeof(float));
	for (size_t r = 0; r < rows; r++) {
		engine_kernels_portable.row_to_f32(&w, r, r1);
		k->row_to_f32(&wi, r, r2);
		if (memcmp(r1, r2, cols * sizeof(float)))
			fail_msg("%s interleaved row %zu reads back otherwise", engine_type_name(type), r);
	}
	uint8_t *tmp = malloc(16 * w.row_bytes);
	engine_weight_relayout(&wi, idata, ENGINE_LAYOUT_ROWS, tmp);
	assert_int_equal(wi.layout, ENGINE_LAYOUT_ROWS);
	assert_memory_equal(idata, data, rows * w.row_bytes);
	free(tmp);
	free(r1);
	free(r2);
	free(alone);
	free(ref);
	free(got);
	free(data);
	free(idata);
	free(x);
	free(q);
	free(d);
	free(sums);
}

static void test_interleaved_match_definition(void **state)
{
	(void)state;
	vnni_or_skip();
	size_t shapes[][2] = {{16, 32}, {37, 96}, {64, 256}, {7, 64}, {45, 2560}, {160, 160}};
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		check_interleaved(ENGINE_TYPE_Q8_0, shapes[i][0], shapes[i][1]);
		check_interleaved(ENGINE_TYPE_Q4_0, shapes[i][0], shapes[i][1]);
	}
}

/* Experts: each matrix of a 3-D tensor is interleaved on its own, so a view
 * of expert e (data + e * rows * row_bytes) reads its rows, tail included. */
static void test_interleaved_experts(void **state)
{
	(void)state;
	enum { E = 3, ROWS = 21, COLS = 64 };
	uint32_t types[] = {ENGINE_TYPE_Q8_0, ENGINE_TYPE_Q4_0};
	for (size_t t = 0; t < 2; t++) {
		engine_weight w, wi;
		uint8_t *data = random_weights(types[t], E * ROWS, COLS, &w);
		w.rows = ROWS;
		w.count = E;
		uint8_t *idata = interleaved(&w, &wi);
		for (size_t e = 0; e < E; e++) {
			engine_weight a = w, b = wi;
			a.data += e * ROWS * w.row_bytes;
			b.data += e * ROWS * w.row_bytes;
			for (uint64_t r = 0; r < ROWS; r++)
				for (size_t blk = 0; blk < COLS / 32; blk++) {
					int x[32], y[32];
					float sa = engine_weight_block(&a, r, blk, x),
					      sb = engine_weight_block(&b, r, blk, y);
					assert_true(sa == sb);
					assert_memory_equal(x, y, sizeof x);
				}
		}
		free(data);
		free(idata);
	}
}

static void test_vnni_rows_match_definition(void **state)
{
	(void)state;
	vnni_or_skip();
	size_t cols[] = {32, 96, 256, 2560}; /* one block, odd block counts, even */
	for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
		check_type(ENGINE_TYPE_Q8_0, cols[c]);
		check_type(ENGINE_TYPE_Q4_0, cols[c]);
	}
}

/* The set's vector quantiser writes the portable one's bytes, ties and zero
 * blocks included. */
static void test_act_quant_vector_matches(void **state)
{
	(void)state;
	const engine_kernels *k = vnni_or_skip();
	enum { T = 3, N = 32 * 7 };
	float x[T * N];
	for (size_t i = 0; i < T * N; i++)
		x[i] = uniform() * (float)(1 + i % 5);
	for (size_t i = 32; i < 64; i++)
		x[i] = 0; /* an all-zero block */
	for (size_t i = 64; i < 96; i++)
		x[i] = (float)((int)i % 9 - 4) * 0.5f; /* products that land on .5: ties */
	x[64] = 127.0f / 0.5f * 0.5f;
	int8_t q1[T * N], q2[T * N];
	float d1[T * 7], d2[T * 7];
	size_t ns = engine_act_quant_sums(T, N);
	int32_t *s1 = malloc(ns * sizeof(int32_t)), *s2 = malloc(ns * sizeof(int32_t));
	engine_act_quant(x, T, N, q1, d1, s1);
	k->act_quant(x, T, N, q2, d2, s2);
	assert_memory_equal(q1, q2, sizeof q1);
	assert_memory_equal(d1, d2, sizeof d1);
	assert_memory_equal(s1, s2, ns * sizeof(int32_t));
	free(s1);
	free(s2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_act_quant_rounding),
		cmocka_unit_test(test_act_quant_vector_matches),
		cmocka_unit_test(test_vnni_rows_match_definition),
		cmocka_unit_test(test_interleaved_match_definition),
		cmocka_unit_test(test_interleaved_experts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
