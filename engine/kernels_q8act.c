/*
 * Products of Q8_0 / Q4_0 weights with activations rounded to 8 bits per
 * block of 32: the portable definition of what the "avx512vnni" kernel set
 * computes. Each block's product is an exact integer sum, scaled by the two
 * blocks' scales; only the rounding of the activations departs from the exact
 * kernels (it is what llama.cpp does for these types). Weights may be in
 * either layout (repack.c).
 */
#include <math.h>
#include <string.h>

#include "engine/core_internal.h"

size_t engine_act_quant_sums(size_t n_tok, size_t n) { return n_tok * ((n / 32 + 1) / 2) * 16; }

void engine_act_quant(const float *x, size_t n_tok, size_t n, int8_t *q, float *d, int32_t *neg_sum)
{
	size_t nb = n / 32;
	memset(neg_sum, 0, engine_act_quant_sums(n_tok, n) * sizeof(int32_t));
	for (size_t t = 0; t < n_tok; t++)
		for (size_t b = 0; b < nb; b++) {
			const float *v = x + t * n + b * 32;
			int8_t *o = q + t * n + b * 32;
			float amax = 0;
			for (int j = 0; j < 32; j++)
				amax = fabsf(v[j]) > amax ? fabsf(v[j]) : amax;
			float inv = amax > 0 ? 127.0f / amax : 0.0f;
			int32_t sum = 0;
			for (int j = 0; j < 32; j++) {
				o[j] = (int8_t)lrintf(v[j] * inv);
				sum += o[j];
			}
			d[t * nb + b] = amax / 127.0f;
			neg_sum[(t * ((nb + 1) / 2) + b / 2) * 16 + (b % 2) * 8] = -sum;
		}
}

void engine_rows_q8_portable(const engine_weight *w, const engine_q8act *xq, size_t n_tok, float *y,
			     size_t ldy, uint64_t r0, uint64_t r1)
{
	size_t n = xq->n, nb = n / 32;
	for (uint64_t r = r0; r < r1; r++) {
		for (size_t t = 0; t < n_tok; t++) {
			const int8_t *a = xq->q + t * n;
			float s = 0;
			for (size_t b = 0; b < nb; b++) {
				int wi[32];
				float dw = engine_weight_block(w, r, b, wi);
				int32_t isum = 0;
				for (int j = 0; j < 32; j++)
					isum += wi[j] * a[b * 32 + j];
				/* the scales' product rounded, then a fused multiply-add, in
				 * block order: the interleaved VNNI kernel does exactly these */
				s = fmaf((float)isum, dw * xq->d[t * nb + b], s);
			}
			y[t * ldy + r] = s;
		}
	}
}
