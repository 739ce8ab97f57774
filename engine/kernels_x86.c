/*
 * x86 SIMD kernels (AVX2+FMA+F16C and AVX-512), chosen at run time by
 * engine_kernels_best from what the CPU reports, so one binary runs
 * everywhere and uses the widest path the machine has.
 *
 * Decode reads every weight once per token, so the row kernels are built to
 * keep up with memory: a block of 32 weights is widened to floats in
 * registers (never written out) and applied to up to G tokens' activations
 * while it is there. Batched decode and short prefills pass several tokens,
 * so one pass over the weights serves all of them. Each token's sums are
 * accumulated in the same order whatever the number of tokens beside it, so
 * a sequence gets the same logits decoded alone or in a batch.
 */
#include <string.h>

#include "engine/core_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>

#include "engine/x86_internal.h"
#define T256 __attribute__((target("avx2,fma,f16c")))

/* Scalar tails (float weights whose rows are not a multiple of 32 wide). */
static float tail_dot(const engine_weight *w, const uint8_t *row, const float *x, size_t from, size_t n)
{
	float s = 0;
	for (size_t i = from; i < n; i++) {
		float v;
		if (w->type == ENGINE_TYPE_F32)
			memcpy(&v, row + 4 * i, 4);
		else if (w->type == ENGINE_TYPE_F16)
			v = engine_fp16_to_f32(engine_rd16(row + 2 * i));
		else
			v = engine_bf16_to_f32(engine_rd16(row + 2 * i));
		s += v * x[i];
	}
	return s;
}

/* Values from..cols of a float-type row (rows that are not a multiple of 32 wide). */
static void tail_to_f32(const engine_weight *w, uint64_t row, float *out, size_t from)
{
	const uint8_t *q = w->data + row * w->row_bytes;
	for (size_t i = from; i < (size_t)w->cols; i++)
		out[i] = w->type == ENGINE_TYPE_F32   ? ((const float *)(const void *)q)[i]
			 : w->type == ENGINE_TYPE_F16 ? engine_fp16_to_f32(engine_rd16(q + 2 * i))
						      : engine_bf16_to_f32(engine_rd16(q + 2 * i));
}

static size_t block_bytes(uint32_t type)
{
	switch (type) {
	case ENGINE_TYPE_F32: return 128;
	case ENGINE_TYPE_F16:
	case ENGINE_TYPE_BF16: return 64;
	case ENGINE_TYPE_Q8_0: return 34;
	case ENGINE_TYPE_Q4_0: return 18;
	default: return 0;
	}
}

/* ================================================================ AVX-512 */

/* 32 weights of one block as two vectors of 16 floats. */
T512 static inline void load512(uint32_t type, const uint8_t *p, __m512 *w0, __m512 *w1)
{
	switch (type) {
	case ENGINE_TYPE_F32:
		*w0 = _mm512_loadu_ps(p);
		*w1 = _mm512_loadu_ps(p + 64);
		break;
	case ENGINE_TYPE_F16:
		*w0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)p));
		*w1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p + 32)));
		break;
	case ENGINE_TYPE_BF16:
		*w0 = _mm512_castsi512_ps(_mm512_slli_epi32(
			_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)p)), 16));
		*w1 = _mm512_castsi512_ps(_mm512_slli_epi32(
			_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(p + 32))),
			16));
		break;
	case ENGINE_TYPE_Q8_0: {
		__m512 d = _mm512_set1_ps(_cvtsh_ss(engine_rd16(p)));
		__m128i a = _mm_loadu_si128((const __m128i *)(const void *)(p + 2));
		__m128i b = _mm_loadu_si128((const __m128i *)(const void *)(p + 18));
		*w0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(a)), d);
		*w1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b)), d);
		break;
	}
	default: { /* Q4_0: low nibbles are values 0..15, high nibbles 16..31, both offset by 8 */
		__m512 d = _mm512_set1_ps(_cvtsh_ss(engine_rd16(p)));
		__m128i q = _mm_loadu_si128((const __m128i *)(const void *)(p + 2));
		__m128i m4 = _mm_set1_epi8(0xf), eight = _mm_set1_epi8(8);
		__m128i lo = _mm_sub_epi8(_mm_and_si128(q, m4), eight);
		__m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), m4), eight);
		*w0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo)), d);
		*w1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi)), d);
		break;
	}
	}
}

T512 static inline float hsum512(__m512 a) { return _mm512_reduce_add_ps(a); }

/* A tile of RB rows (from r) against TB tokens (from t0), RB and TB constants
 * so every accumulator lives in a register. Each (row, token) sums in two
 * accumulators, the low and high 16 values of each block, block after block:
 * the same order for any tile shape, so a token's result never depends on the
 * tokens beside it. Weights are widened once per block for all TB tokens,
 * and each activation vector is loaded once for all RB rows. The next tile's
 * rows are prefetched as this one is read: several interleaved row streams
 * defeat the hardware prefetcher, and decode then waits on memory at half
 * the bandwidth (measured: 8.6 against 19 GB/s on one core). */
#define TILE512(TYPE, RB, TB)                                                                                \
	do {                                                                                                 \
		__m512 a0[RB][TB], a1[RB][TB];                                                               \
		_Pragma("GCC unroll 4") for (size_t i = 0; i < RB; i++)                                      \
			_Pragma("GCC unroll 4") for (size_t t = 0; t < TB; t++) a0[i][t] = a1[i][t] =        \
				_mm512_setzero_ps();                                                         \
		const uint8_t *row = w->data + r * w->row_bytes;                                             \
		for (size_t b = 0; b < nb; b++) {                                                            \
			__m512 w0[RB], w1[RB];                                                               \
			_Pragma("GCC unroll 4") for (size_t i = 0; i < RB; i++)                              \
				load512(TYPE, row + i * w->row_bytes + b * bb, &w0[i], &w1[i]);              \
			_Pragma("GCC unroll 4") for (size_t i = 0; i < RB; i++) _mm_prefetch(                \
				(const char *)row + (RB + i) * w->row_bytes + b * bb + 64, _MM_HINT_T0);     \
			_Pragma("GCC unroll 4") for (size_t t = 0; t < TB; t++)                              \
			{                                                                                    \
				const float *xt = x + (t0 + t) * n + b * 32;                                 \
				__m512 x0 = _mm512_loadu_ps(xt), x1 = _mm512_loadu_ps(xt + 16);              \
				_Pragma("GCC unroll 4") for (size_t i = 0; i < RB; i++)                      \
				{                                                                            \
					a0[i][t] = _mm512_fmadd_ps(w0[i], x0, a0[i][t]);                     \
					a1[i][t] = _mm512_fmadd_ps(w1[i], x1, a1[i][t]);                     \
				}                                                                            \
			}                                                                                    \
		}                                                                                            \
		_Pragma("GCC unroll 4") for (size_t i = 0; i < RB; i++)                                      \
			_Pragma("GCC unroll 4") for (size_t t = 0; t < TB; t++)                              \
		{                                                                                            \
			float s = hsum512(_mm512_add_ps(a0[i][t], a1[i][t]));                                \
			if (nb * 32 < n)                                                                     \
				s += tail_dot(w, row + i * w->row_bytes, x + (t0 + t) * n, nb * 32, n);      \
			y[(t0 + t) * ldy + r + i] = s;                                                       \
		}                                                                                            \
	} while (0)

/* Rows [r0, r1) of w against n_tok tokens. Rows go in slices that stay in L2
 * while every group of tokens passes over them, so a batch reads each weight
 * from memory once. */
#define ROWS512(NAME, TYPE)                                                                                  \
	T512 static void NAME(const engine_weight *w, const float *x, size_t n_tok, float *y, size_t ldy,    \
			      uint64_t r0, uint64_t r1)                                                      \
	{                                                                                                    \
		size_t n = (size_t)w->cols, nb = n / 32, bb = block_bytes(TYPE);                             \
		uint64_t slice = n_tok > 2 ? (256u << 10) / w->row_bytes + 1 : r1 - r0;                      \
		for (uint64_t s0 = r0; s0 < r1; s0 += slice) {                                               \
			uint64_t s1 = s0 + slice < r1 ? s0 + slice : r1, r;                                  \
			size_t t0 = 0;                                                                       \
			for (; t0 + 4 <= n_tok; t0 += 4) {                                                   \
				for (r = s0; r + 2 <= s1; r += 2)                                            \
					TILE512(TYPE, 2, 4);                                                 \
				for (; r < s1; r++)                                                          \
					TILE512(TYPE, 1, 4);                                                 \
			}                                                                                    \
			for (; t0 + 2 <= n_tok; t0 += 2) {                                                   \
				for (r = s0; r + 4 <= s1; r += 4)                                            \
					TILE512(TYPE, 4, 2);                                                 \
				for (; r < s1; r++)                                                          \
					TILE512(TYPE, 1, 2);                                                 \
			}                                                                                    \
			for (; t0 < n_tok; t0++) {                                                           \
				for (r = s0; r + 4 <= s1; r += 4)                                            \
					TILE512(TYPE, 4, 1);                                                 \
				for (; r < s1; r++)                                                          \
					TILE512(TYPE, 1, 1);                                                 \
			}                                                                                    \
		}                                                                                            \
	}

ROWS512(rows512_f32, ENGINE_TYPE_F32)
ROWS512(rows512_f16, ENGINE_TYPE_F16)
ROWS512(rows512_bf16, ENGINE_TYPE_BF16)
ROWS512(rows512_q8_0, ENGINE_TYPE_Q8_0)
ROWS512(rows512_q4_0, ENGINE_TYPE_Q4_0)

T512 static float dot512(const float *a, const float *b, size_t n)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
	size_t i = 0;
	for (; i + 64 <= n; i += 64) {
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
		s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
		s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
	}
	for (; i + 16 <= n; i += 16)
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
	if (i < n) {
		__mmask16 k = (__mmask16)((1u << (n - i)) - 1);
		s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, b + i), s1);
	}
	return hsum512(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

T512 static void row_to_f32_512(const engine_weight *w, uint64_t row, float *out)
{
	size_t bb = block_bytes(w->type);
	if (!bb) {
		engine_kernels_portable.row_to_f32(w, row, out);
		return;
	}
	const uint8_t *p = w->data + row * w->row_bytes;
	size_t n = (size_t)w->cols, nb = n / 32;
	for (size_t b = 0; b < nb; b++, p += bb) {
		__m512 w0, w1;
		load512(w->type, p, &w0, &w1);
		_mm512_storeu_ps(out + b * 32, w0);
		_mm512_storeu_ps(out + b * 32 + 16, w1);
	}
	tail_to_f32(w, row, out, nb * 32);
}

static void rows512(const engine_weight *w, const float *x, size_t n_tok, float *y, size_t ldy, uint64_t r0,
		    uint64_t r1, float *scratch)
{
	switch (w->type) {
	case ENGINE_TYPE_F32: rows512_f32(w, x, n_tok, y, ldy, r0, r1); break;
	case ENGINE_TYPE_F16: rows512_f16(w, x, n_tok, y, ldy, r0, r1); break;
	case ENGINE_TYPE_BF16: rows512_bf16(w, x, n_tok, y, ldy, r0, r1); break;
	case ENGINE_TYPE_Q8_0: rows512_q8_0(w, x, n_tok, y, ldy, r0, r1); break;
	case ENGINE_TYPE_Q4_0: rows512_q4_0(w, x, n_tok, y, ldy, r0, r1); break;
	default: engine_kernels_portable.rows(w, x, n_tok, y, ldy, r0, r1, scratch); break; /* K-quants */
	}
}

/* Attention with hd a multiple of 16 (128 in every Jamba): a K row is held in
 * registers while every query head of the group is dotted with it. */
T512 static void att_scores512(const float *q, size_t group, size_t hd, const float *K, size_t stride,
			       size_t n, float scale, float *s, size_t lds)
{
	if (hd % 16 || hd > 256) {
		engine_att_scores_portable(q, group, hd, K, stride, n, scale, s, lds);
		return;
	}
	size_t nv = hd / 16;
	for (size_t p = 0; p < n; p++) {
		__m512 k[16];
		for (size_t v = 0; v < nv; v++)
			k[v] = _mm512_loadu_ps(K + p * stride + 16 * v);
		for (size_t h = 0; h < group; h++) {
			const float *qh = q + h * hd;
			__m512 a0 = _mm512_mul_ps(k[0], _mm512_loadu_ps(qh)), a1 = _mm512_setzero_ps();
			for (size_t v = 1; v + 1 < nv; v += 2) {
				a1 = _mm512_fmadd_ps(k[v], _mm512_loadu_ps(qh + 16 * v), a1);
				a0 = _mm512_fmadd_ps(k[v + 1], _mm512_loadu_ps(qh + 16 * v + 16), a0);
			}
			if (nv % 2 == 0)
				a1 = _mm512_fmadd_ps(k[nv - 1], _mm512_loadu_ps(qh + 16 * (nv - 1)), a1);
			s[h * lds + p] = hsum512(_mm512_add_ps(a0, a1)) * scale;
		}
	}
}

T512 static float att_exp512(float *s, size_t n, float m)
{
	__m512 sum = _mm512_setzero_ps(), mv = _mm512_set1_ps(m);
	size_t p = 0;
	for (; p + 16 <= n; p += 16) {
		__m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(s + p), mv));
		_mm512_storeu_ps(s + p, e);
		sum = _mm512_add_ps(sum, e);
	}
	if (p < n) {
		__mmask16 k = (__mmask16)((1u << (n - p)) - 1);
		__m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + p), mv));
		_mm512_mask_storeu_ps(s + p, k, e);
		sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(k, e));
	}
	return hsum512(sum);
}

/* o stays in registers over the whole block. */
T512 static void att_accum512(float *o, const float *w, const float *V, size_t stride, size_t n, size_t hd)
{
	if (hd % 16 || hd > 256) {
		engine_att_accum_portable(o, w, V, stride, n, hd);
		return;
	}
	size_t nv = hd / 16;
	__m512 acc[16];
	for (size_t v = 0; v < nv; v++)
		acc[v] = _mm512_loadu_ps(o + 16 * v);
	for (size_t p = 0; p < n; p++) {
		__m512 wp = _mm512_set1_ps(w[p]);
		for (size_t v = 0; v < nv; v++)
			acc[v] = _mm512_fmadd_ps(wp, _mm512_loadu_ps(V + p * stride + 16 * v), acc[v]);
	}
	for (size_t v = 0; v < nv; v++)
		_mm512_storeu_ps(o + 16 * v, acc[v]);
}

#define AVX512_KERNELS                                                                                       \
	.dot = dot512, .row_to_f32 = row_to_f32_512, .rows = rows512, .att_scores = att_scores512,           \
	.att_exp = att_exp512, .att_accum = att_accum512, .ssm_scan = engine_ssm_scan_avx512,                \
	.silu_mul = engine_silu_mul_avx512

static const engine_kernels kernels_avx512 = {.name = "avx512", AVX512_KERNELS};

/* The avx512vnni set has its Q8_0 / Q4_0 matrices interleaved by 16 rows
 * (repack.c); its row reads take both layouts. */
static void row_to_f32_vnni(const engine_weight *w, uint64_t row, float *out)
{
	if (row < engine_weight_grouped(w))
		engine_row_to_f32_i16(w, row, out);
	else
		row_to_f32_512(w, row, out);
}

/* Float activations against an interleaved matrix: only in prompt passes
 * (which go through sgemm) for what sgemm does not take, the last token's
 * logits or rows too long for its blocks; so plainly, row by row. */
static void rows_vnni(const engine_weight *w, const float *x, size_t n_tok, float *y, size_t ldy, uint64_t r0,
		      uint64_t r1, float *scratch)
{
	if (!engine_weight_grouped(w)) {
		rows512(w, x, n_tok, y, ldy, r0, r1, scratch);
		return;
	}
	for (uint64_t r = r0; r < r1; r++) {
		row_to_f32_vnni(w, r, scratch);
		for (size_t t = 0; t < n_tok; t++)
			y[t * ldy + r] = dot512(scratch, x + t * w->cols, (size_t)w->cols);
	}
}

/* AVX-512 with integer Q8_0/Q4_0 products on 8-bit activations (kernels_vnni.c)
 * and attention over a BF16 copy of the cache (kernels_att16.c): opt-in,
 * since both round. With VDPBF16PS where the CPU has it, else the same sums
 * with the halves widened. */
#define AVX512VNNI_KERNELS                                                                                   \
	.name = "avx512vnni", .dot = dot512, .row_to_f32 = row_to_f32_vnni, .rows = rows_vnni,               \
	.att_scores = att_scores512, .att_exp = att_exp512, .att_accum = att_accum512,                       \
	.ssm_scan = engine_ssm_scan_avx512, .silu_mul = engine_silu_mul_avx512,                              \
	.rows_q8 = engine_rows_q8_vnni, .act_quant = engine_act_quant_avx512, .layout = ENGINE_LAYOUT_I16

static const engine_kernels kernels_avx512vnni_bf16 = {
	AVX512VNNI_KERNELS,
	.att16_scores = engine_att16_scores_avx512bf16,
	.att16_accum = engine_att16_accum_avx512bf16,
};

static const engine_kernels kernels_avx512vnni = {
	AVX512VNNI_KERNELS,
	.att16_scores = engine_att16_scores_avx512,
	.att16_accum = engine_att16_accum_avx512,
};

/* ================================================================ AVX2 */

/* 32 weights of one block as four vectors of 8 floats. */
T256 static inline void load256(uint32_t type, const uint8_t *p, __m256 w[4])
{
	switch (type) {
	case ENGINE_TYPE_F32:
		for (int k = 0; k < 4; k++)
			w[k] = _mm256_loadu_ps((const float *)(const void *)(p + 32 * k));
		break;
	case ENGINE_TYPE_F16:
		for (int k = 0; k < 4; k++)
			w[k] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k)));
		break;
	case ENGINE_TYPE_BF16:
		for (int k = 0; k < 4; k++)
			w[k] = _mm256_castsi256_ps(
				_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(
							  (const __m128i *)(const void *)(p + 16 * k))),
						  16));
		break;
	case ENGINE_TYPE_Q8_0: {
		__m256 d = _mm256_set1_ps(_cvtsh_ss(engine_rd16(p)));
		for (int k = 0; k < 4; k++)
			w[k] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(
						     (const __m128i *)(const void *)(p + 2 + 8 * k)))),
					     d);
		break;
	}
	default: {
		__m256 d = _mm256_set1_ps(_cvtsh_ss(engine_rd16(p)));
		__m128i q = _mm_loadu_si128((const __m128i *)(const void *)(p + 2));
		__m128i m4 = _mm_set1_epi8(0xf), eight = _mm_set1_epi8(8);
		__m128i lo = _mm_sub_epi8(_mm_and_si128(q, m4), eight);
		__m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), m4), eight);
		w[0] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), d);
		w[1] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), d);
		w[2] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), d);
		w[3] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), d);
		break;
	}
	}
}

T256 static inline float hsum256(__m256 a)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
	return _mm_cvtss_f32(s);
}

/* As TILE512 with 8-float vectors: a block is four vectors; each (row, token)
 * sums in two accumulators (vectors 0 and 2 of a block into a0, 1 and 3 into
 * a1), in an order independent of the tile shape. */
#define TILE256(TYPE, RB, TB)                                                                                \
	do {                                                                                                 \
		__m256 a0[RB][TB], a1[RB][TB];                                                               \
		_Pragma("GCC unroll 4") for (size_t i = 0; i < RB; i++)                                      \
			_Pragma("GCC unroll 4") for (size_t t = 0; t < TB; t++) a0[i][t] = a1[i][t] =        \
				_mm256_setzero_ps();                                                         \
		const uint8_t *row = w->data + r * w->row_bytes;                                             \
		for (size_t b = 0; b < nb; b++) {                                                            \
			__m256 wv[RB][4];                                                                    \
			_Pragma("GCC unroll 4") for (size_t i = 0; i < RB; i++)                              \
				load256(TYPE, row + i * w->row_bytes + b * bb, wv[i]);                       \
			_Pragma("GCC unroll 4") for (size_t i = 0; i < RB; i++) _mm_prefetch(                \
				(const char *)row + (RB + i) * w->row_bytes + b * bb + 64, _MM_HINT_T0);     \
			_Pragma("GCC unroll 4") for (size_t t = 0; t < TB; t++)                              \
			{                                                                                    \
				const float *xt = x + (t0 + t) * n + b * 32;                                 \
				_Pragma("GCC unroll 4") for (size_t i = 0; i < RB; i++)                      \
				{                                                                            \
					a0[i][t] = _mm256_fmadd_ps(wv[i][0], _mm256_loadu_ps(xt), a0[i][t]); \
					a1[i][t] = _mm256_fmadd_ps(wv[i][1], _mm256_loadu_ps(xt + 8),        \
								   a1[i][t]);                                \
					a0[i][t] = _mm256_fmadd_ps(wv[i][2], _mm256_loadu_ps(xt + 16),       \
								   a0[i][t]);                                \
					a1[i][t] = _mm256_fmadd_ps(wv[i][3], _mm256_loadu_ps(xt + 24),       \
								   a1[i][t]);                                \
				}                                                                            \
			}                                                                                    \
		}                                                                                            \
		_Pragma("GCC unroll 4") for (size_t i = 0; i < RB; i++)                                      \
			_Pragma("GCC unroll 4") for (size_t t = 0; t < TB; t++)                              \
		{                                                                                            \
			float s = hsum256(_mm256_add_ps(a0[i][t], a1[i][t]));                                \
			if (nb * 32 < n)                                                                     \
				s += tail_dot(w, row + i * w->row_bytes, x + (t0 + t) * n, nb * 32, n);      \
			y[(t0 + t) * ldy + r + i] = s;                                                       \
		}                                                                                            \
	} while (0)

#define ROWS256(NAME, TYPE)                                                                                  \
	T256 static void NAME(const engine_weight *w, const float *x, size_t n_tok, float *y, size_t ldy,    \
			      uint64_t r0, uint64_t r1)                                                      \
	{                                                                                                    \
		size_t n = (size_t)w->cols, nb = n / 32, bb = block_bytes(TYPE);                             \
		uint64_t slice = n_tok > 2 ? (256u << 10) / w->row_bytes + 1 : r1 - r0;                      \
		for (uint64_t s0 = r0; s0 < r1; s0 += slice) {                                               \
			uint64_t s1 = s0 + slice < r1 ? s0 + slice : r1, r;                                  \
			size_t t0 = 0;                                                                       \
			for (; t0 + 2 <= n_tok; t0 += 2)                                                     \
				for (r = s0; r < s1; r++)                                                    \
					TILE256(TYPE, 1, 2);                                                 \
			for (; t0 < n_tok; t0++) {                                                           \
				for (r = s0; r + 2 <= s1; r += 2)                                            \
					TILE256(TYPE, 2, 1);                                                 \
				for (; r < s1; r++)                                                          \
					TILE256(TYPE, 1, 1);                                                 \
			}                                                                                    \
		}                                                                                            \
	}

ROWS256(rows256_f32, ENGINE_TYPE_F32)
ROWS256(rows256_f16, ENGINE_TYPE_F16)
ROWS256(rows256_bf16, ENGINE_TYPE_BF16)
ROWS256(rows256_q8_0, ENGINE_TYPE_Q8_0)
ROWS256(rows256_q4_0, ENGINE_TYPE_Q4_0)

T256 static float dot256(const float *a, const float *b, size_t n)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
		s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
		s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
	float tail = 0;
	for (; i < n; i++)
		tail += a[i] * b[i];
	return hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3))) + tail;
}

T256 static void row_to_f32_256(const engine_weight *w, uint64_t row, float *out)
{
	size_t bb = block_bytes(w->type);
	if (!bb) {
		engine_kernels_portable.row_to_f32(w, row, out);
		return;
	}
	const uint8_t *p = w->data + row * w->row_bytes;
	size_t n = (size_t)w->cols, nb = n / 32;
	for (size_t b = 0; b < nb; b++, p += bb) {
		__m256 wv[4];
		load256(w->type, p, wv);
		for (int k = 0; k < 4; k++)
			_mm256_storeu_ps(out + b * 32 + 8 * k, wv[k]);
	}
	tail_to_f32(w, row, out, nb * 32);
}

static void rows256(const engine_weight *w, const float *x, size_t n_tok, float *y, size_t ldy, uint64_t r0,
		    uint64_t r1, float *scratch)
{
	switch (w->type) {
	case ENGINE_TYPE_F32: rows256_f32(w, x, n_tok, y, ldy, r0, r1); break;
	case ENGINE_TYPE_F16: rows256_f16(w, x, n_tok, y, ldy, r0, r1); break;
	case ENGINE_TYPE_BF16: rows256_bf16(w, x, n_tok, y, ldy, r0, r1); break;
	case ENGINE_TYPE_Q8_0: rows256_q8_0(w, x, n_tok, y, ldy, r0, r1); break;
	case ENGINE_TYPE_Q4_0: rows256_q4_0(w, x, n_tok, y, ldy, r0, r1); break;
	default: engine_kernels_portable.rows(w, x, n_tok, y, ldy, r0, r1, scratch); break;
	}
}

static const engine_kernels kernels_avx2 = {
	.name = "avx2",
	.dot = dot256,
	.row_to_f32 = row_to_f32_256,
	.rows = rows256,
	.att_scores = engine_att_scores_portable,
	.att_exp = engine_att_exp_portable,
	.att_accum = engine_att_accum_portable,
	.ssm_scan = engine_ssm_scan_portable,
	.silu_mul = engine_silu_mul_portable,
};

/* F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports does
 * not know the "f16c" name that gcc's does. */
static bool cpu_has_f16c(void)
{
	unsigned a, b, c, d;
	return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}

#endif

const engine_kernels *engine_kernels_find(const char *name)
{
	if (!name || !strcmp(name, "portable"))
		return &engine_kernels_portable;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	__builtin_cpu_init();
	bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
	bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
		      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
	if (!strcmp(name, "avx2"))
		return avx2 ? &kernels_avx2 : NULL;
	if (!strcmp(name, "avx512"))
		return avx512 ? &kernels_avx512 : NULL;
	if (!strcmp(name, "avx512vnni")) {
		if (!avx512 || !__builtin_cpu_supports("avx512vnni") || !__builtin_cpu_supports("avx512vbmi"))
			return NULL;
		return __builtin_cpu_supports("avx512bf16") ? &kernels_avx512vnni_bf16 : &kernels_avx512vnni;
	}
	if (!strcmp(name, "best"))
		return avx512 ? &kernels_avx512 : avx2 ? &kernels_avx2 : &engine_kernels_portable;
#else
	if (!strcmp(name, "best"))
		return &engine_kernels_portable;
#endif
	return NULL;
}
