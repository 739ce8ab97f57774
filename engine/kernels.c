/*
 * Portable kernels: float dot products and row dequantisation for the weight
 * types the engine computes with (F32, F16, BF16, Q8_0, Q4_0), behind the
 * engine_kernels vtable so SIMD variants can take their place. Matrix rows are
 * dotted with the activations by fused kernels that widen each block of
 * weights in registers (never writing a dequantised copy); each row is read
 * once for all tokens of a small batch. Decode and short prefills share these
 * kernels, so they give the same sums bit for bit.
 */
#include <string.h>
#ifdef __SSE4_1__
#include <smmintrin.h>
#endif

#include "engine/core_internal.h"

static float dot_portable(const float *a, const float *b, size_t n)
{
#ifdef __SSE4_1__
	__m128 a0 = _mm_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		a0 = _mm_add_ps(a0, _mm_mul_ps(_mm_loadu_ps(a + i), _mm_loadu_ps(b + i)));
		a1 = _mm_add_ps(a1, _mm_mul_ps(_mm_loadu_ps(a + i + 4), _mm_loadu_ps(b + i + 4)));
		a2 = _mm_add_ps(a2, _mm_mul_ps(_mm_loadu_ps(a + i + 8), _mm_loadu_ps(b + i + 8)));
		a3 = _mm_add_ps(a3, _mm_mul_ps(_mm_loadu_ps(a + i + 12), _mm_loadu_ps(b + i + 12)));
	}
	__m128 s = _mm_add_ps(_mm_add_ps(a0, a1), _mm_add_ps(a2, a3));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
	float tail = _mm_cvtss_f32(s);
	for (; i < n; i++)
		tail += a[i] * b[i];
	return tail;
#else
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
#endif
}

static void row_to_f32_portable(const engine_weight *w, uint64_t row, float *out)
{
	const uint8_t *p = w->data + row * w->row_bytes;
	uint64_t n = w->cols;
	switch (w->type) {
	case ENGINE_TYPE_F32: memcpy(out, p, n * sizeof(float)); break;
	case ENGINE_TYPE_F16:
		for (uint64_t i = 0; i < n; i++)
			out[i] = engine_fp16_to_f32(engine_rd16(p + 2 * i));
		break;
	case ENGINE_TYPE_BF16:
		for (uint64_t i = 0; i < n; i++)
			out[i] = engine_bf16_to_f32(engine_rd16(p + 2 * i));
		break;
	case ENGINE_TYPE_Q8_0:
		for (uint64_t b = 0; b < n / 32; b++, p += 34) {
			float d = engine_fp16_to_f32(engine_rd16(p));
			const int8_t *q = (const int8_t *)(p + 2);
			for (int j = 0; j < 32; j++)
				out[b * 32 + j] = (float)q[j] * d;
		}
		break;
	case ENGINE_TYPE_Q4_0:
		for (uint64_t b = 0; b < n / 32; b++, p += 18) {
			float d = engine_fp16_to_f32(engine_rd16(p));
			const uint8_t *q = p + 2;
			for (int j = 0; j < 16; j++) {
				out[b * 32 + j] = (float)((q[j] & 0xf) - 8) * d;
				out[b * 32 + j + 16] = (float)((q[j] >> 4) - 8) * d;
			}
		}
		break;
	case ENGINE_TYPE_Q4_K:
		for (uint64_t b = 0; b < n / 256; b++)
			engine_dequant_q4_k(p + b * 144, out + b * 256);
		break;
	case ENGINE_TYPE_Q5_K:
		for (uint64_t b = 0; b < n / 256; b++)
			engine_dequant_q5_k(p + b * 176, out + b * 256);
		break;
	case ENGINE_TYPE_Q6_K:
		for (uint64_t b = 0; b < n / 256; b++)
			engine_dequant_q6_k(p + b * 210, out + b * 256);
		break;
	default:
		memset(out, 0, n * sizeof(float)); /* model.c refuses other types at load */
		break;
	}
}

/* Half to float through a table (built once): 256 KiB that stays in L2 and
 * beats bit manipulation without F16C. */
static float f16_table[65536];
static pthread_once_t f16_once = PTHREAD_ONCE_INIT;

static void f16_init(void)
{
	for (uint32_t i = 0; i < 65536; i++)
		f16_table[i] = engine_fp16_to_f32((uint16_t)i);
}

/* Fused dequantise-and-dot per type: the weights are widened in registers,
 * block by block, and never written out. Eight lanes of partial sums. */
__attribute__((unused)) static float sum8(const float *a)
{
	return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

#ifdef __SSE4_1__
/* SSE4.1 is in the build's baseline (x86-64-v2): four lanes, four independent
 * accumulators so the adds do not wait on each other. */

static float hsum(__m128 a, __m128 b, __m128 c, __m128 d)
{
	__m128 s = _mm_add_ps(_mm_add_ps(a, b), _mm_add_ps(c, d));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
	return _mm_cvtss_f32(s);
}

static inline __m128 load_f16x4(const uint8_t *p)
{
	/* magnitude bits moved into a float's place, then scaled by 2^112: exact for
	 * normal and subnormal halves (weights hold no inf or nan) */
	__m128i h = _mm_cvtepu16_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p));
	__m128i sign = _mm_slli_epi32(_mm_and_si128(h, _mm_set1_epi32(0x8000)), 16);
	__m128i mag = _mm_slli_epi32(_mm_and_si128(h, _mm_set1_epi32(0x7fff)), 13);
	__m128 f = _mm_mul_ps(_mm_castsi128_ps(mag), _mm_set1_ps(0x1p112f));
	return _mm_or_ps(f, _mm_castsi128_ps(sign));
}

static inline __m128 load_bf16x4(const uint8_t *p)
{
	__m128i h = _mm_cvtepu16_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p));
	return _mm_castsi128_ps(_mm_slli_epi32(h, 16));
}

static float dot_f16(const uint8_t *p, const float *x, size_t n)
{
	__m128 a0 = _mm_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		a0 = _mm_add_ps(a0, _mm_mul_ps(load_f16x4(p + 2 * i), _mm_loadu_ps(x + i)));
		a1 = _mm_add_ps(a1, _mm_mul_ps(load_f16x4(p + 2 * i + 8), _mm_loadu_ps(x + i + 4)));
		a2 = _mm_add_ps(a2, _mm_mul_ps(load_f16x4(p + 2 * i + 16), _mm_loadu_ps(x + i + 8)));
		a3 = _mm_add_ps(a3, _mm_mul_ps(load_f16x4(p + 2 * i + 24), _mm_loadu_ps(x + i + 12)));
	}
	float tail = 0;
	for (; i < n; i++)
		tail += f16_table[engine_rd16(p + 2 * i)] * x[i];
	return hsum(a0, a1, a2, a3) + tail;
}

static float dot_bf16(const uint8_t *p, const float *x, size_t n)
{
	__m128 a0 = _mm_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		a0 = _mm_add_ps(a0, _mm_mul_ps(load_bf16x4(p + 2 * i), _mm_loadu_ps(x + i)));
		a1 = _mm_add_ps(a1, _mm_mul_ps(load_bf16x4(p + 2 * i + 8), _mm_loadu_ps(x + i + 4)));
		a2 = _mm_add_ps(a2, _mm_mul_ps(load_bf16x4(p + 2 * i + 16), _mm_loadu_ps(x + i + 8)));
		a3 = _mm_add_ps(a3, _mm_mul_ps(load_bf16x4(p + 2 * i + 24), _mm_loadu_ps(x + i + 12)));
	}
	float tail = 0;
	for (; i < n; i++)
		tail += engine_bf16_to_f32(engine_rd16(p + 2 * i)) * x[i];
	return hsum(a0, a1, a2, a3) + tail;
}

static inline __m128 q8x4(const int8_t *q)
{
	int32_t v;
	memcpy(&v, q, 4);
	return _mm_cvtepi32_ps(_mm_cvtepi8_epi32(_mm_cvtsi32_si128(v)));
}

static float dot_q8_0(const uint8_t *p, const float *x, size_t n)
{
	__m128 a0 = _mm_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	for (size_t b = 0; b < n / 32; b++, p += 34, x += 32) {
		const int8_t *q = (const int8_t *)(p + 2);
		__m128 s0 = _mm_mul_ps(q8x4(q), _mm_loadu_ps(x));
		__m128 s1 = _mm_mul_ps(q8x4(q + 4), _mm_loadu_ps(x + 4));
		__m128 s2 = _mm_mul_ps(q8x4(q + 8), _mm_loadu_ps(x + 8));
		__m128 s3 = _mm_mul_ps(q8x4(q + 12), _mm_loadu_ps(x + 12));
		s0 = _mm_add_ps(s0, _mm_mul_ps(q8x4(q + 16), _mm_loadu_ps(x + 16)));
		s1 = _mm_add_ps(s1, _mm_mul_ps(q8x4(q + 20), _mm_loadu_ps(x + 20)));
		s2 = _mm_add_ps(s2, _mm_mul_ps(q8x4(q + 24), _mm_loadu_ps(x + 24)));
		s3 = _mm_add_ps(s3, _mm_mul_ps(q8x4(q + 28), _mm_loadu_ps(x + 28)));
		__m128 d = _mm_set1_ps(f16_table[engine_rd16(p)]);
		a0 = _mm_add_ps(a0, _mm_mul_ps(d, s0));
		a1 = _mm_add_ps(a1, _mm_mul_ps(d, s1));
		a2 = _mm_add_ps(a2, _mm_mul_ps(d, s2));
		a3 = _mm_add_ps(a3, _mm_mul_ps(d, s3));
	}
	return hsum(a0, a1, a2, a3);
}

static float dot_q4_0(const uint8_t *p, const float *x, size_t n)
{
	__m128 a0 = _mm_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	const __m128i m4 = _mm_set1_epi8(0xf), eight = _mm_set1_epi32(8);
	for (size_t b = 0; b < n / 32; b++, p += 18, x += 32) {
		__m128i qs = _mm_loadu_si128((const __m128i *)(const void *)(p + 2));
		__m128i lo = _mm_and_si128(qs, m4), hi = _mm_and_si128(_mm_srli_epi16(qs, 4), m4);
#define Q4(v, k) _mm_cvtepi32_ps(_mm_sub_epi32(_mm_cvtepu8_epi32(_mm_srli_si128(v, k)), eight))
		__m128 s0 = _mm_mul_ps(Q4(lo, 0), _mm_loadu_ps(x));
		__m128 s1 = _mm_mul_ps(Q4(lo, 4), _mm_loadu_ps(x + 4));
		__m128 s2 = _mm_mul_ps(Q4(lo, 8), _mm_loadu_ps(x + 8));
		__m128 s3 = _mm_mul_ps(Q4(lo, 12), _mm_loadu_ps(x + 12));
		s0 = _mm_add_ps(s0, _mm_mul_ps(Q4(hi, 0), _mm_loadu_ps(x + 16)));
		s1 = _mm_add_ps(s1, _mm_mul_ps(Q4(hi, 4), _mm_loadu_ps(x + 20)));
		s2 = _mm_add_ps(s2, _mm_mul_ps(Q4(hi, 8), _mm_loadu_ps(x + 24)));
		s3 = _mm_add_ps(s3, _mm_mul_ps(Q4(hi, 12), _mm_loadu_ps(x + 28)));
#undef Q4
		__m128 d = _mm_set1_ps(f16_table[engine_rd16(p)]);
		a0 = _mm_add_ps(a0, _mm_mul_ps(d, s0));
		a1 = _mm_add_ps(a1, _mm_mul_ps(d, s1));
		a2 = _mm_add_ps(a2, _mm_mul_ps(d, s2));
		a3 = _mm_add_ps(a3, _mm_mul_ps(d, s3));
	}
	return hsum(a0, a1, a2, a3);
}
#else
static float dot_f16(const uint8_t *p, const float *x, size_t n)
{
	const uint16_t *h = (const uint16_t *)(const void *)p;
	float acc[8] = {0}, tail = 0;
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
			acc[j] += f16_table[h[i + j]] * x[i + j];
	for (; i < n; i++)
		tail += f16_table[h[i]] * x[i];
	return sum8(acc) + tail;
}

static float dot_bf16(const uint8_t *p, const float *x, size_t n)
{
	const uint16_t *h = (const uint16_t *)(const void *)p;
	float acc[8] = {0}, tail = 0;
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++) {
			uint32_t b = (uint32_t)h[i + j] << 16;
			float f;
			memcpy(&f, &b, 4);
			acc[j] += f * x[i + j];
		}
	for (; i < n; i++) {
		uint32_t b = (uint32_t)h[i] << 16;
		float f;
		memcpy(&f, &b, 4);
		tail += f * x[i];
	}
	return sum8(acc) + tail;
}

static float dot_q8_0(const uint8_t *p, const float *x, size_t n)
{
	float acc[8] = {0};
	for (size_t b = 0; b < n / 32; b++, p += 34, x += 32) {
		float d = f16_table[engine_rd16(p)], s[8] = {0};
		const int8_t *q = (const int8_t *)(p + 2);
		for (int j = 0; j < 32; j += 8)
			for (int k = 0; k < 8; k++)
				s[k] += (float)q[j + k] * x[j + k];
		for (int k = 0; k < 8; k++)
			acc[k] += d * s[k];
	}
	return sum8(acc);
}

static float dot_q4_0(const uint8_t *p, const float *x, size_t n)
{
	float acc[8] = {0};
	for (size_t b = 0; b < n / 32; b++, p += 18, x += 32) {
		float d = f16_table[engine_rd16(p)], s[8] = {0};
		const uint8_t *q = p + 2;
		for (int j = 0; j < 16; j += 8)
			for (int k = 0; k < 8; k++)
				s[k] += (float)((q[j + k] & 0xf) - 8) * x[j + k] +
					(float)((q[j + k] >> 4) - 8) * x[j + k + 16];
		for (int k = 0; k < 8; k++)
			acc[k] += d * s[k];
	}
	return sum8(acc);
}

#endif

static void rows_portable(const engine_weight *w, const float *x, size_t n_tok, float *y, size_t ldy,
			  uint64_t r0, uint64_t r1, float *scratch)
{
	pthread_once(&f16_once, f16_init);
	size_t n = (size_t)w->cols;
	float (*dot)(const uint8_t *, const float *, size_t) = NULL;
	switch (w->type) {
	case ENGINE_TYPE_F16: dot = dot_f16; break;
	case ENGINE_TYPE_BF16: dot = dot_bf16; break;
	case ENGINE_TYPE_Q8_0: dot = dot_q8_0; break;
	case ENGINE_TYPE_Q4_0: dot = dot_q4_0; break;
	default: break;
	}
	for (uint64_t r = r0; r < r1; r++) {
		const uint8_t *row = w->data + r * w->row_bytes;
		const float *f = (const float *)(const void *)row;
		if (!dot && w->type != ENGINE_TYPE_F32) { /* no fused kernel (K-quants): widen the row once */
			row_to_f32_portable(w, r, scratch);
			f = scratch;
		}
		for (size_t t = 0; t < n_tok; t++)
			y[t * ldy + r] = dot ? dot(row, x + t * n, n) : dot_portable(f, x + t * n, n);
	}
}

void engine_att_scores_portable(const float *q, size_t group, size_t hd, const float *K, size_t stride,
				size_t n, float scale, float *s, size_t lds)
{
	for (size_t p = 0; p < n; p++)
		for (size_t h = 0; h < group; h++)
			s[h * lds + p] = dot_portable(q + h * hd, K + p * stride, hd) * scale;
}

float engine_att_exp_portable(float *s, size_t n, float m)
{
	float sum = 0;
	for (size_t p = 0; p < n; p++)
		sum += (s[p] = expf(s[p] - m));
	return sum;
}

void engine_att_accum_portable(float *o, const float *w, const float *V, size_t stride, size_t n, size_t hd)
{
	for (size_t p = 0; p < n; p++)
		for (size_t e = 0; e < hd; e++)
			o[e] += w[p] * V[p * stride + e];
}

const engine_kernels engine_kernels_portable = {
	.name = "portable",
	.dot = dot_portable,
	.row_to_f32 = row_to_f32_portable,
	.rows = rows_portable,
	.att_scores = engine_att_scores_portable,
	.att_exp = engine_att_exp_portable,
	.att_accum = engine_att_accum_portable,
	.ssm_scan = engine_ssm_scan_portable,
	.silu_mul = engine_silu_mul_portable,
};
