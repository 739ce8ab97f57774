/*
 * Portable kernels: float dot products and row dequantisation for the weight
 * types the engine computes with (F32, F16, BF16, Q8_0, Q4_0), behind the
 * engine_kernels vtable so SIMD variants can take their place. A weight row is
 * dequantised block by block into a small scratch row (it stays in L1) and
 * then dotted with every token's activations, so one read of the weights
 * serves a whole batch; decode and prefill use the same arithmetic and give
 * the same sums.
 */
#include <string.h>

#include "engine/core_internal.h"

static float dot_portable(const float *a, const float *b, size_t n)
{
	/* eight independent partial sums: vectorisable, and a fixed order so
	 * every caller gets the same result for the same inputs */
	float acc[8] = {0};
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
			acc[j] += a[i + j] * b[i + j];
	float tail = 0;
	for (; i < n; i++)
		tail += a[i] * b[i];
	return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static void row_to_f32_portable(const engine_weight *w, uint64_t row, float *out)
{
	const uint8_t *p = w->data + row * w->row_bytes;
	uint64_t n = w->cols;
	switch (w->type) {
	case ENGINE_TYPE_F32: memcpy(out, p, n * sizeof(float)); break;
	case ENGINE_TYPE_F16:
		for (uint64_t i = 0; i < n; i++)
			out[i] = engine_fp16_to_f32(rd16(p + 2 * i));
		break;
	case ENGINE_TYPE_BF16:
		for (uint64_t i = 0; i < n; i++)
			out[i] = engine_bf16_to_f32(rd16(p + 2 * i));
		break;
	case ENGINE_TYPE_Q8_0:
		for (uint64_t b = 0; b < n / 32; b++, p += 34) {
			float d = engine_fp16_to_f32(rd16(p));
			const int8_t *q = (const int8_t *)(p + 2);
			for (int j = 0; j < 32; j++)
				out[b * 32 + j] = (float)q[j] * d;
		}
		break;
	case ENGINE_TYPE_Q4_0:
		for (uint64_t b = 0; b < n / 32; b++, p += 18) {
			float d = engine_fp16_to_f32(rd16(p));
			const uint8_t *q = p + 2;
			for (int j = 0; j < 16; j++) {
				out[b * 32 + j] = (float)((q[j] & 0xf) - 8) * d;
				out[b * 32 + j + 16] = (float)((q[j] >> 4) - 8) * d;
			}
		}
		break;
	default:
		memset(out, 0, n * sizeof(float)); /* model.c refuses other types at load */
		break;
	}
}

static void rows_portable(const engine_weight *w, const float *x, size_t n_tok, float *y, size_t ldy,
			  uint64_t r0, uint64_t r1, float *scratch)
{
	size_t n = (size_t)w->cols;
	for (uint64_t r = r0; r < r1; r++) {
		const float *src;
		if (w->type == ENGINE_TYPE_F32) {
			src = (const float *)(const void *)(w->data + r * w->row_bytes);
		} else {
			row_to_f32_portable(w, r, scratch);
			src = scratch;
		}
		for (size_t t = 0; t < n_tok; t++)
			y[t * ldy + r] = dot_portable(src, x + t * n, n);
	}
}

const engine_kernels engine_kernels_portable = {
	.name = "portable",
	.dot = dot_portable,
	.row_to_f32 = row_to_f32_portable,
	.rows = rows_portable,
};
