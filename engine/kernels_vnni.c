/*
 * Q8_0 / Q4_0 rows against 8-bit activations with AVX-512 VNNI: the rows_q8
 * of the "avx512vnni" kernel set (engine_rows_q8_portable is its definition).
 *
 * The exact kernels widen every weight to a float and spend about ten vector
 * operations per block of 32 weights; that, not memory, caps single-sequence
 * decode near half the bandwidth bound and batched decode near 2x one
 * sequence. Here one VPDPBUSD multiplies 64 weight bytes by 64 activation
 * bytes and sums them in fours, so a pair of blocks costs a handful of
 * operations. VPDPBUSD takes unsigned by signed bytes: the weights are
 * offset (Q8_0 by 128, Q4_0 by 8, which its nibbles already are), and the
 * offset x each block's sum of activations is subtracted by starting the sum
 * from its negation (engine_act_quant computes the sums once per token).
 *
 * As in the exact kernels, each (row, token) sums in the same order whatever
 * the tile, so a sequence gets the same logits alone or in a batch.
 *
 * The set has the model's matrices interleaved by 16 rows (repack.c), which
 * the second half of this file reads: there the weights are stored already
 * offset, a vector holds 4 columns of 16 rows, and one VPDPBUSD against a
 * token's 4 activations broadcast advances 16 rows at once, with no permutes;
 * a pass over a matrix is one sequential stream. The row-major kernels above
 * remain for matrices given to rows_q8 directly (tests, and any matrix the
 * model has not interleaved).
 */
#include <string.h>

#include "engine/core_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define TVNNI                                                                                                \
	__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi,avx2,fma,f16c")))

/* One block's 32 weights as unsigned bytes, offset: Q8_0 + 128, Q4_0 + 8 (its
 * nibbles as stored). */
TVNNI static inline __m256i block_u8(uint32_t type, const uint8_t *p)
{
	if (type == ENGINE_TYPE_Q8_0)
		return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(p + 2)),
					_mm256_set1_epi8((char)0x80));
	__m128i q = _mm_loadu_si128((const __m128i *)(const void *)(p + 2)), m4 = _mm_set1_epi8(0xf);
	return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m4), _mm_and_si128(q, m4));
}

/* Blocks b and b + 1 of a row (only b when !two: the upper half is zero) as
 * 64 offset bytes, and their scales as [d_b x 8, d_b+1 x 8] to match
 * VPDPBUSD's 16 lanes. */
TVNNI static inline void load_pair(uint32_t type, const uint8_t *p, size_t bb, bool two, __m512i *w,
				   __m512 *d)
{
	if (type == ENGINE_TYPE_Q8_0 && two) {
		/* The pair's 68 bytes as two overlapping loads; one byte permute
		 * gathers the 64 weights and one word permute the two scales: a
		 * quarter of the operations of loading the blocks one by one
		 * (decode is bound by them, not by memory, on this path). */
		__m512i lo = _mm512_loadu_si512(p), hi = _mm512_loadu_si512(p + 4);
		const __m512i pick_q =
			_mm512_set_epi8(127, 126, 125, 124, 123, 122, 121, 120, 119, 118, 117, 116, 115, 114,
					113, 112, 111, 110, 109, 108, 107, 106, 105, 104, 103, 102, 101, 100,
					99, 98, 97, 96, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21,
					20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2);
		const __m512i pick_d = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17,
							17, 17, 17, 17, 17, 17, 17, 0, 0, 0, 0, 0, 0, 0, 0);
		*w = _mm512_xor_si512(_mm512_permutex2var_epi8(lo, pick_q, hi), _mm512_set1_epi8((char)0x80));
		*d = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(pick_d, lo)));
		return;
	}
	__m256i hi = two ? block_u8(type, p + bb) : _mm256_setzero_si256();
	*w = _mm512_inserti64x4(_mm512_castsi256_si512(block_u8(type, p)), hi, 1);
	float d1 = two ? _cvtsh_ss(engine_rd16(p + bb)) : 0.0f;
	*d = _mm512_insertf32x8(_mm512_set1_ps(_cvtsh_ss(engine_rd16(p))), _mm256_set1_ps(d1), 1);
}

/* Blocks b, b + 1 (TWO) or b alone of RB rows against TB tokens, into acc.
 * The activations of token t start at qa[t], their scales at da[t] and their
 * sums at ns[t] (all at block 0). */
#define PAIRQ(TYPE, RB, TB, TWO)                                                                             \
	do {                                                                                                 \
		__m512i wv[RB];                                                                              \
		__m512 dw[RB];                                                                               \
		_Pragma("GCC unroll 8") for (size_t i = 0; i < RB; i++)                                      \
			load_pair(TYPE, row + i * w->row_bytes + b * bb, bb, TWO, &wv[i], &dw[i]);           \
		_Pragma("GCC unroll 8") for (size_t i = 0; i < RB; i++) _mm_prefetch(                        \
			(const char *)row + (RB + i) * w->row_bytes + b * bb + 128, _MM_HINT_T0);            \
		_Pragma("GCC unroll 8") for (size_t t = 0; t < TB; t++)                                      \
		{                                                                                            \
			__m512i a = TWO ? _mm512_loadu_si512(qa[t] + b * 32)                                 \
					: _mm512_zextsi256_si512(_mm256_loadu_si256(                         \
						  (const __m256i *)(const void *)(qa[t] + b * 32)));         \
			__m512i start = _mm512_slli_epi32(_mm512_loadu_si512(ns[t] + b * 8), shift);         \
			__m512 d = _mm512_insertf32x8(_mm512_set1_ps(da[t][b]),                              \
						      _mm256_set1_ps(TWO ? da[t][b + 1] : 0.0f), 1);         \
			_Pragma("GCC unroll 8") for (size_t i = 0; i < RB; i++)                              \
			{                                                                                    \
				__m512i s = _mm512_dpbusd_epi32(start, wv[i], a);                            \
				acc[i][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw[i], d),  \
							    acc[i][t]);                                      \
			}                                                                                    \
		}                                                                                            \
	} while (0)

/* RB rows from r against TB tokens from t0, accumulators in registers. The
 * next tile's rows are prefetched: interleaved row streams defeat the
 * hardware prefetcher (see kernels_x86.c). */
#define TILEQ(TYPE, RB, TB)                                                                                  \
	do {                                                                                                 \
		__m512 acc[RB][TB];                                                                          \
		const int8_t *qa[TB];                                                                        \
		const float *da[TB];                                                                         \
		const int32_t *ns[TB];                                                                       \
		_Pragma("GCC unroll 8") for (size_t t = 0; t < TB; t++)                                      \
		{                                                                                            \
			qa[t] = xq->q + (t0 + t) * xq->n;                                                    \
			da[t] = xq->d + (t0 + t) * nb;                                                       \
			ns[t] = xq->neg_sum + (t0 + t) * pairs * 16;                                         \
			_Pragma("GCC unroll 8") for (size_t i = 0; i < RB; i++) acc[i][t] =                  \
				_mm512_setzero_ps();                                                         \
		}                                                                                            \
		const uint8_t *row = w->data + r * w->row_bytes;                                             \
		size_t b = 0;                                                                                \
		for (; b + 2 <= nb; b += 2)                                                                  \
			PAIRQ(TYPE, RB, TB, true);                                                           \
		if (b < nb)                                                                                  \
			PAIRQ(TYPE, RB, TB, false);                                                          \
		_Pragma("GCC unroll 8") for (size_t i = 0; i < RB; i++)                                      \
			_Pragma("GCC unroll 8") for (size_t t = 0; t < TB; t++) y[(t0 + t) * ldy + r + i] =  \
				_mm512_reduce_add_ps(acc[i][t]);                                             \
	} while (0)

/* Rows go in slices that stay in L2 while every group of tokens passes over
 * them, so a batch reads each weight from memory once. */
#define ROWSQ(NAME, TYPE)                                                                                    \
	TVNNI static void NAME(const engine_weight *w, const engine_q8act *xq, size_t n_tok, float *y,       \
			       size_t ldy, uint64_t r0, uint64_t r1)                                         \
	{                                                                                                    \
		size_t nb = xq->n / 32, pairs = (nb + 1) / 2, bb = TYPE == ENGINE_TYPE_Q8_0 ? 34 : 18;       \
		const unsigned shift = TYPE == ENGINE_TYPE_Q8_0 ? 7 : 3;                                     \
		uint64_t slice = n_tok > 4 ? (256u << 10) / w->row_bytes + 1 : r1 - r0;                      \
		for (uint64_t s0 = r0; s0 < r1; s0 += slice) {                                               \
			uint64_t s1 = s0 + slice < r1 ? s0 + slice : r1, r;                                  \
			size_t t0 = 0;                                                                       \
			for (; t0 + 4 <= n_tok; t0 += 4) {                                                   \
				for (r = s0; r + 2 <= s1; r += 2)                                            \
					TILEQ(TYPE, 2, 4);                                                   \
				for (; r < s1; r++)                                                          \
					TILEQ(TYPE, 1, 4);                                                   \
			}                                                                                    \
			for (; t0 + 2 <= n_tok; t0 += 2) {                                                   \
				for (r = s0; r + 4 <= s1; r += 4)                                            \
					TILEQ(TYPE, 4, 2);                                                   \
				for (; r < s1; r++)                                                          \
					TILEQ(TYPE, 1, 2);                                                   \
			}                                                                                    \
			/* one token: one row at a time, a single stream the prefetcher follows              \
			 * (measured as fast or faster than four interleaved rows) */                        \
			for (; t0 < n_tok; t0++)                                                             \
				for (r = s0; r < s1; r++)                                                    \
					TILEQ(TYPE, 1, 1);                                                   \
		}                                                                                            \
	}

ROWSQ(rowsq_q8_0, ENGINE_TYPE_Q8_0)
ROWSQ(rowsq_q4_0, ENGINE_TYPE_Q4_0)

/* ------------------------------------------------ interleaved (I16) weights */

/* How far ahead of a group's block its lines are prefetched: 8 Q8_0 blocks.
 * A/B on a 1 GB matrix, 2 threads, against a plain read pass: 61% of its rate
 * without prefetch, 75-80% with 1-4 KB, and 4 KB best at 4 tokens (66% vs
 * 52% at 1 KB); 8 KB fell back to 59%. */
#define I16_AHEAD 4352

static inline int32_t rd32(const int8_t *p)
{
	int32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* One 16-row group against TB tokens from t0: acc[t] lane i = row i's sum for
 * token t0 + t. Per block the integer sums are exact, then, as in
 * engine_rows_q8_portable, acc = fma((float)sum, scale_w * scale_a, acc), in
 * block order: a (row, token) gets the same bits in any tile, and the same as
 * the portable definition. */
TVNNI static inline __attribute__((always_inline)) void group_tile(uint32_t type, const uint8_t *g, size_t nb,
								   const engine_q8act *xq, size_t t0,
								   size_t TB, __m512 *acc)
{
	const size_t gb = type == ENGINE_TYPE_Q8_0 ? 544 : 288, pairs = (nb + 1) / 2;
	const int32_t offset = type == ENGINE_TYPE_Q8_0 ? 128 : 8;
	_Pragma("GCC unroll 16") for (size_t t = 0; t < TB; t++) acc[t] = _mm512_setzero_ps();
	for (size_t b = 0; b < nb; b++) {
		const uint8_t *p = g + b * gb;
		_Pragma("GCC unroll 9") for (size_t k = 0; k < gb; k += 64)
			_mm_prefetch((const char *)p + I16_AHEAD + k, _MM_HINT_T0);
		__m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)p));
		__m512i wv[8];
		if (type == ENGINE_TYPE_Q8_0) {
			_Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) wv[k] =
				_mm512_loadu_si512(p + 32 + 64 * k);
		} else {
			const __m512i m4 = _mm512_set1_epi8(0xf);
			_Pragma("GCC unroll 4") for (int k = 0; k < 4; k++)
			{
				__m512i v = _mm512_loadu_si512(p + 32 + 64 * k);
				wv[k] = _mm512_and_si512(v, m4);
				wv[4 + k] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
			}
		}
		_Pragma("GCC unroll 16") for (size_t t = 0; t < TB; t++)
		{
			const int8_t *a = xq->q + (t0 + t) * xq->n + b * 32;
			int32_t neg = xq->neg_sum[((t0 + t) * pairs + b / 2) * 16 + (b % 2) * 8];
			__m512i s0 = _mm512_set1_epi32(neg * offset);
			if (TB >= 4) {
				/* the tile's tokens are independent chains enough: one each */
				_Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) s0 =
					_mm512_dpbusd_epi32(s0, wv[k], _mm512_set1_epi32(rd32(a + 4 * k)));
			} else {
				/* two chains, so the eight dependent VPDPBUSDs overlap */
				__m512i s1 = _mm512_setzero_si512();
				_Pragma("GCC unroll 4") for (int k = 0; k < 8; k += 2)
				{
					s0 = _mm512_dpbusd_epi32(s0, wv[k],
								 _mm512_set1_epi32(rd32(a + 4 * k)));
					s1 = _mm512_dpbusd_epi32(s1, wv[k + 1],
								 _mm512_set1_epi32(rd32(a + 4 * k + 4)));
				}
				s0 = _mm512_add_epi32(s0, s1);
			}
			__m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(xq->d[(t0 + t) * nb + b]));
			acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), d, acc[t]);
		}
	}
}

/* Groups overlapping [r0, r1), each read once from memory for up to 8 tokens
 * (the group, 16 rows, stays in L1/L2 for the next 8); rows of a group outside
 * the range are computed and not stored. Rows past the last group are
 * row-major: few (under 16), so the portable definition does them. */
TVNNI static inline __attribute__((always_inline)) void rows_i16(uint32_t type, const engine_weight *w,
								 const engine_q8act *xq, size_t n_tok,
								 float *y, size_t ldy, uint64_t r0,
								 uint64_t r1)
{
	size_t nb = xq->n / 32;
	uint64_t grouped = engine_weight_grouped(w), end = r1 < grouped ? r1 : grouped;
	for (uint64_t g0 = r0 / 16 * 16; g0 < end; g0 += 16) {
		const uint8_t *g = w->data + g0 * w->row_bytes;
		unsigned lo = r0 > g0 ? (unsigned)(r0 - g0) : 0,
			 hi = end - g0 < 16 ? (unsigned)(end - g0) : 16;
		__mmask16 keep = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
		__m512 acc[8];
		for (size_t t0 = 0; t0 < n_tok;) {
			size_t tb = n_tok - t0 >= 8 ? 8 : n_tok - t0 >= 4 ? 4 : n_tok - t0 >= 2 ? 2 : 1;
			switch (tb) {
			case 8: group_tile(type, g, nb, xq, t0, 8, acc); break;
			case 4: group_tile(type, g, nb, xq, t0, 4, acc); break;
			case 2: group_tile(type, g, nb, xq, t0, 2, acc); break;
			default: group_tile(type, g, nb, xq, t0, 1, acc); break;
			}
			for (size_t t = 0; t < tb; t++)
				_mm512_mask_storeu_ps(y + (t0 + t) * ldy + g0, keep, acc[t]);
			t0 += tb;
		}
	}
	if (r1 > grouped)
		engine_rows_q8_portable(w, xq, n_tok, y, ldy, r0 > grouped ? r0 : grouped, r1);
}

TVNNI static void rows_i16_q8_0(const engine_weight *w, const engine_q8act *xq, size_t n_tok, float *y,
				size_t ldy, uint64_t r0, uint64_t r1)
{
	rows_i16(ENGINE_TYPE_Q8_0, w, xq, n_tok, y, ldy, r0, r1);
}

TVNNI static void rows_i16_q4_0(const engine_weight *w, const engine_q8act *xq, size_t n_tok, float *y,
				size_t ldy, uint64_t r0, uint64_t r1)
{
	rows_i16(ENGINE_TYPE_Q4_0, w, xq, n_tok, y, ldy, r0, r1);
}

TVNNI void engine_row_to_f32_i16(const engine_weight *w, uint64_t row, float *out)
{
	bool q8 = w->type == ENGINE_TYPE_Q8_0;
	size_t nb = (size_t)w->cols / 32, gb = q8 ? 544 : 288, i = (size_t)(row % 16);
	const uint8_t *g = w->data + (row - i) * w->row_bytes;
	for (size_t b = 0; b < nb; b++) {
		const uint8_t *p = g + b * gb, *q = p + 32 + 4 * i;
		__m512 d = _mm512_set1_ps(_cvtsh_ss(engine_rd16(p + 2 * i)));
		__m256i v; /* the row's 32 weights, signed */
		if (q8) {
			int32_t k[8];
			for (int c = 0; c < 8; c++)
				memcpy(&k[c], q + 64 * c, 4);
			v = _mm256_xor_si256(
				_mm256_setr_epi32(k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]),
				_mm256_set1_epi8((char)0x80));
		} else {
			int32_t k[4];
			for (int c = 0; c < 4; c++)
				memcpy(&k[c], q + 64 * c, 4);
			__m128i x = _mm_setr_epi32(k[0], k[1], k[2], k[3]), m4 = _mm_set1_epi8(0xf);
			v = _mm256_sub_epi8(_mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(x, 4), m4),
							     _mm_and_si128(x, m4)),
					    _mm256_set1_epi8(8));
		}
		__m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(v)));
		__m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(v, 1)));
		_mm512_storeu_ps(out + b * 32, _mm512_mul_ps(lo, d));
		_mm512_storeu_ps(out + b * 32 + 16, _mm512_mul_ps(hi, d));
	}
}

/* The bytes engine_act_quant writes: the same scale (127 / amax, a float
 * division), products rounded to nearest even as lrintf does in the default
 * mode. */
TVNNI void engine_act_quant_avx512(const float *x, size_t n_tok, size_t n, int8_t *q, float *d,
				   int32_t *neg_sum)
{
	size_t nb = n / 32, pairs = (nb + 1) / 2;
	memset(neg_sum, 0, engine_act_quant_sums(n_tok, n) * sizeof(int32_t));
	const __m512 sign = _mm512_set1_ps(-0.0f);
	for (size_t t = 0; t < n_tok; t++)
		for (size_t b = 0; b < nb; b++) {
			const float *v = x + t * n + b * 32;
			__m512 v0 = _mm512_loadu_ps(v), v1 = _mm512_loadu_ps(v + 16);
			float amax = _mm512_reduce_max_ps(
				_mm512_max_ps(_mm512_andnot_ps(sign, v0), _mm512_andnot_ps(sign, v1)));
			float inv = amax > 0 ? 127.0f / amax : 0.0f;
			__m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, _mm512_set1_ps(inv))),
				q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, _mm512_set1_ps(inv)));
			_mm_storeu_si128((__m128i *)(void *)(q + t * n + b * 32), _mm512_cvtepi32_epi8(q0));
			_mm_storeu_si128((__m128i *)(void *)(q + t * n + b * 32 + 16),
					 _mm512_cvtepi32_epi8(q1));
			d[t * nb + b] = amax / 127.0f;
			neg_sum[(t * pairs + b / 2) * 16 + (b % 2) * 8] =
				-_mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
		}
}

void engine_rows_q8_vnni(const engine_weight *w, const engine_q8act *xq, size_t n_tok, float *y, size_t ldy,
			 uint64_t r0, uint64_t r1)
{
	bool i16 = w->layout == ENGINE_LAYOUT_I16;
	if (w->type == ENGINE_TYPE_Q8_0)
		(i16 ? rows_i16_q8_0 : rowsq_q8_0)(w, xq, n_tok, y, ldy, r0, r1);
	else
		(i16 ? rows_i16_q4_0 : rowsq_q4_0)(w, xq, n_tok, y, ldy, r0, r1);
}

#endif
