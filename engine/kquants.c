/*
 * K-quants (Q4_K, Q5_K, Q6_K): blocks of 256 values with 6- or 8-bit
 * sub-block scales, the types "Q4_K_M"-style files mix. Dequantisation
 * follows ggml-quants.c's dequantize_row_q{4,5,6}_K layout exactly (checked
 * against its source). The quantisers are simple and direct (min/max per
 * sub-block, not ggml's iterative search): enough to write test models whose
 * weights then are exactly what the dequantiser reads back.
 */
#include <math.h>
#include <string.h>

#include "engine/core_internal.h"

static inline float half_at(const uint8_t *p) { return engine_fp16_to_f32(engine_rd16(p)); }

static inline void put_half(uint8_t *p, float f)
{
	uint16_t h = engine_f32_to_fp16(f);
	p[0] = (uint8_t)h;
	p[1] = (uint8_t)(h >> 8);
}

/* Scale and min of sub-block j from the 12 packed bytes (6 bits each). */
static inline void scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
	if (j < 4) {
		*sc = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*sc = (uint8_t)((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
		*m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
	}
}

/* Q4_K block (144 bytes): half d, half dmin, u8 scales[12], u8 qs[128]. */
void engine_dequant_q4_k(const uint8_t *b, float *y)
{
	float d = half_at(b), dmin = half_at(b + 2);
	const uint8_t *scales = b + 4, *q = b + 16;
	for (int c = 0; c < 4; c++, q += 32) {
		uint8_t sc, m;
		scale_min(2 * c, scales, &sc, &m);
		float d1 = d * sc, m1 = dmin * m;
		scale_min(2 * c + 1, scales, &sc, &m);
		float d2 = d * sc, m2 = dmin * m;
		for (int l = 0; l < 32; l++)
			*y++ = d1 * (float)(q[l] & 0xf) - m1;
		for (int l = 0; l < 32; l++)
			*y++ = d2 * (float)(q[l] >> 4) - m2;
	}
}

/* Q5_K block (176 bytes): half d, half dmin, u8 scales[12], u8 qh[32], u8 qs[128]. */
void engine_dequant_q5_k(const uint8_t *b, float *y)
{
	float d = half_at(b), dmin = half_at(b + 2);
	const uint8_t *scales = b + 4, *qh = b + 16, *q = b + 48;
	for (int c = 0; c < 4; c++, q += 32) {
		uint8_t sc, m;
		scale_min(2 * c, scales, &sc, &m);
		float d1 = d * sc, m1 = dmin * m;
		scale_min(2 * c + 1, scales, &sc, &m);
		float d2 = d * sc, m2 = dmin * m;
		uint8_t u1 = (uint8_t)(1u << (2 * c)), u2 = (uint8_t)(2u << (2 * c));
		for (int l = 0; l < 32; l++)
			*y++ = d1 * (float)((q[l] & 0xf) + (qh[l] & u1 ? 16 : 0)) - m1;
		for (int l = 0; l < 32; l++)
			*y++ = d2 * (float)((q[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
	}
}

/* Q6_K block (210 bytes): u8 ql[128], u8 qh[64], i8 scales[16], half d. */
void engine_dequant_q6_k(const uint8_t *b, float *y)
{
	float d = half_at(b + 208);
	const uint8_t *ql = b, *qh = b + 128;
	const int8_t *sc = (const int8_t *)(b + 192);
	for (int h = 0; h < 2; h++, y += 128, ql += 64, qh += 32, sc += 8) {
		for (int l = 0; l < 32; l++) {
			int is = l / 16;
			int q1 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
			int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
			int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
			int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
			y[l] = d * (float)sc[is] * (float)q1;
			y[l + 32] = d * (float)sc[is + 2] * (float)q2;
			y[l + 64] = d * (float)sc[is + 4] * (float)q3;
			y[l + 96] = d * (float)sc[is + 6] * (float)q4;
		}
	}
}

/* ------------------------------------------------------------ quantisers */

/* Q4_K / Q5_K share the scale/min packing; levels is 15 or 31. Writes the
 * 6-bit scales and mins of the 8 sub-blocks and returns the per-value codes. */
static void quant_k_minmax(const float *x, int levels, uint8_t *b, uint8_t codes[256])
{
	float scale[8], mn[8], max_scale = 0, max_min = 0;
	for (int j = 0; j < 8; j++) {
		float lo = x[32 * j], hi = x[32 * j];
		for (int l = 1; l < 32; l++) {
			lo = fminf(lo, x[32 * j + l]);
			hi = fmaxf(hi, x[32 * j + l]);
		}
		lo = fminf(lo, 0.0f); /* the format subtracts a non-negative min */
		scale[j] = (hi - lo) / (float)levels;
		mn[j] = -lo;
		max_scale = fmaxf(max_scale, scale[j]);
		max_min = fmaxf(max_min, mn[j]);
	}
	float d = max_scale / 63.0f, dmin = max_min / 63.0f;
	put_half(b, d);
	put_half(b + 2, dmin);
	d = half_at(b);
	dmin = half_at(b + 2);
	uint8_t ls[8], lm[8];
	for (int j = 0; j < 8; j++) {
		/* rounded up: the codes then span the sub-block without clipping */
		ls[j] = (uint8_t)(d > 0 ? fminf(63.0f, ceilf(scale[j] / d)) : 0);
		lm[j] = (uint8_t)(dmin > 0 ? fminf(63.0f, roundf(mn[j] / dmin)) : 0);
	}
	uint8_t *s = b + 4;
	memset(s, 0, 12);
	for (int j = 0; j < 8; j++) {
		if (j < 4) {
			s[j] = ls[j];
			s[j + 4] = lm[j];
		} else {
			s[j + 4] = (uint8_t)((ls[j] & 0xf) | ((lm[j] & 0xf) << 4));
			s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
			s[j] |= (uint8_t)((lm[j] >> 4) << 6);
		}
	}
	for (int j = 0; j < 8; j++) {
		float sd = d * ls[j], sm = dmin * lm[j];
		for (int l = 0; l < 32; l++) {
			float v = sd > 0 ? roundf((x[32 * j + l] + sm) / sd) : 0;
			codes[32 * j + l] = (uint8_t)fminf((float)levels, fmaxf(0.0f, v));
		}
	}
}

void engine_quant_q4_k(const float *x, uint8_t *b)
{
	uint8_t codes[256];
	quant_k_minmax(x, 15, b, codes);
	uint8_t *q = b + 16;
	for (int c = 0; c < 4; c++)
		for (int l = 0; l < 32; l++)
			q[32 * c + l] = (uint8_t)(codes[64 * c + l] | (codes[64 * c + 32 + l] << 4));
}

void engine_quant_q5_k(const float *x, uint8_t *b)
{
	uint8_t codes[256];
	quant_k_minmax(x, 31, b, codes);
	uint8_t *qh = b + 16, *q = b + 48;
	memset(qh, 0, 32);
	for (int c = 0; c < 4; c++)
		for (int l = 0; l < 32; l++) {
			uint8_t lo = codes[64 * c + l], hi = codes[64 * c + 32 + l];
			q[32 * c + l] = (uint8_t)((lo & 0xf) | ((hi & 0xf) << 4));
			if (lo & 16)
				qh[l] |= (uint8_t)(1u << (2 * c));
			if (hi & 16)
				qh[l] |= (uint8_t)(2u << (2 * c));
		}
}

void engine_quant_q6_k(const float *x, uint8_t *b)
{
	float scale[16], max_abs_scale = 0;
	for (int j = 0; j < 16; j++) {
		float amax = 0;
		for (int l = 0; l < 16; l++)
			amax = fmaxf(amax, fabsf(x[16 * j + l]));
		scale[j] = amax / 31.0f;
		max_abs_scale = fmaxf(max_abs_scale, scale[j]);
	}
	float d = max_abs_scale / 127.0f;
	put_half(b + 208, d);
	d = half_at(b + 208);
	int8_t *sc = (int8_t *)(b + 192);
	for (int j = 0; j < 16; j++)
		sc[j] = (int8_t)(d > 0 ? fminf(127.0f, ceilf(scale[j] / d)) : 0);
	uint8_t codes[256];
	for (int i = 0; i < 256; i++) {
		float s = d * sc[i / 16];
		float v = s > 0 ? roundf(x[i] / s) : 0;
		codes[i] = (uint8_t)(fminf(31.0f, fmaxf(-32.0f, v)) + 32);
	}
	uint8_t *ql = b, *qh = b + 128;
	memset(ql, 0, 128);
	memset(qh, 0, 64);
	for (int h = 0; h < 2; h++)
		for (int l = 0; l < 32; l++) {
			const uint8_t *c = codes + 128 * h;
			ql[64 * h + l] = (uint8_t)((c[l] & 0xf) | ((c[l + 64] & 0xf) << 4));
			ql[64 * h + l + 32] = (uint8_t)((c[l + 32] & 0xf) | ((c[l + 96] & 0xf) << 4));
			qh[32 * h + l] = (uint8_t)((c[l] >> 4) | ((c[l + 32] >> 4) << 2) |
						   ((c[l + 64] >> 4) << 4) | ((c[l + 96] >> 4) << 6));
		}
}
