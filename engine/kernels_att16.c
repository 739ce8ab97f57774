/*
 * Attention over a BF16 copy of the K/V cache: the attention of the
 * "avx512vnni" kernel set (opt-in, like its 8-bit activations).
 *
 * Why: at 32K positions one decode step of the F32 kernels spends ~5 ms in the
 * attention layer, bound by the FMA units (one 512-bit FMA a cycle on this
 * machine) rather than by memory, and a horizontal sum per (position, head).
 * VDPBF16PS does two products per lane, and the layout below puts positions
 * in the lanes of the score vectors and position pairs in the lanes of the
 * value products, so there is no horizontal sum at all. llama.cpp keeps its
 * cache in 16 bits by default too.
 *
 * Layout of one attention layer's copy: positions in blocks of 16, each
 * block 16 * kvd values of K and as many of V (kvd = KV heads * head size):
 *   K: [kvd / 2 channel pairs][16 positions][2]: one 64-byte vector is one
 *      channel pair of 16 positions;
 *   V: [8 position pairs][kvd channels][2]: one vector is 16 channels of
 *      two neighbouring positions.
 * The products are exact in float (8-bit significands); each sum adds the even
 * element's product, then the odd one's, pair after pair, which the portable
 * definitions below spell out and the SIMD versions are checked against.
 */
#include <string.h>

#include "engine/core_internal.h"

uint16_t engine_bf16(float x)
{
	uint32_t u;
	memcpy(&u, &x, 4);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((u >> 16) | 0x40); /* NaN stays NaN */
	u += 0x7fffu + ((u >> 16) & 1);              /* round to nearest, ties to even */
	return (uint16_t)(u >> 16);
}

static float bf16_to_f32(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

void engine_kv16_put(uint16_t *K16, uint16_t *V16, size_t kvd, uint64_t pos, const float *k, const float *v)
{
	uint16_t *kb = K16 + (size_t)(pos / 16) * 16 * kvd, *vb = V16 + (size_t)(pos / 16) * 16 * kvd;
	size_t lane = (size_t)(pos % 16);
	for (size_t e = 0; e < kvd; e++) {
		kb[(e / 2) * 32 + lane * 2 + e % 2] = engine_bf16(k[e]);
		vb[(lane / 2) * kvd * 2 + e * 2 + lane % 2] = engine_bf16(v[e]);
	}
}

void engine_att16_scores_portable(const uint16_t *q16, size_t group, size_t hd, const uint16_t *K, size_t kvd,
				  size_t g, size_t nblk, float scale, float *s, size_t lds)
{
	for (size_t b = 0; b < nblk; b++) {
		const uint16_t *kb = K + b * 16 * kvd + g * hd * 16;
		for (size_t h = 0; h < group; h++)
			for (size_t p = 0; p < 16; p++) {
				float acc = 0;
				for (size_t j = 0; j < hd / 2; j++) {
					acc += bf16_to_f32(q16[h * hd + 2 * j]) *
					       bf16_to_f32(kb[j * 32 + p * 2]);
					acc += bf16_to_f32(q16[h * hd + 2 * j + 1]) *
					       bf16_to_f32(kb[j * 32 + p * 2 + 1]);
				}
				s[h * lds + b * 16 + p] = acc * scale;
			}
	}
}

void engine_att16_accum_portable(float *o, const float *w, const uint16_t *V, size_t kvd, size_t g,
				 size_t nblk, size_t hd)
{
	for (size_t b = 0; b < nblk; b++) {
		const uint16_t *vb = V + b * 16 * kvd + g * hd * 2;
		for (size_t i = 0; i < 8; i++) {
			float w0 = bf16_to_f32(engine_bf16(w[b * 16 + 2 * i])),
			      w1 = bf16_to_f32(engine_bf16(w[b * 16 + 2 * i + 1]));
			for (size_t e = 0; e < hd; e++) {
				o[e] += w0 * bf16_to_f32(vb[i * kvd * 2 + e * 2]);
				o[e] += w1 * bf16_to_f32(vb[i * kvd * 2 + e * 2 + 1]);
			}
		}
	}
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "engine/x86_internal.h"

#define TB16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,avx512bf16")))

static inline uint32_t pair_at(const uint16_t *p)
{
	uint32_t u;
	memcpy(&u, p, 4);
	return u;
}

/* acc + w.even * x.even + w.odd * x.odd, lane by lane: with VDPBF16PS, or with
 * two FMAs on the halves widened (AVX-512 CPUs without BF16). */
TB16 static inline __m512 dp_bf16(__m512 acc, __m512i w, __m512i x)
{
	return _mm512_dpbf16_ps(acc, (__m512bh)w, (__m512bh)x);
}

T512 static inline __m512 dp_wide(__m512 acc, __m512i w, __m512i x)
{
	__m512i hi = _mm512_set1_epi32((int)0xffff0000u);
	acc = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(w, 16)),
			      _mm512_castsi512_ps(_mm512_slli_epi32(x, 16)), acc);
	return _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(w, hi)),
			       _mm512_castsi512_ps(_mm512_and_si512(x, hi)), acc);
}

/* Scores four heads at a time: the K vector of a channel pair is loaded once
 * for the four, each head's pair broadcast. Head sizes up to 256 (128 in
 * every Jamba); larger ones go to the portable definition. */
#define ATT16_SCORES(NAME, TARGET, DP)                                                                       \
	TARGET static void NAME(const uint16_t *q16, size_t group, size_t hd, const uint16_t *K, size_t kvd, \
				size_t g, size_t nblk, float scale, float *s, size_t lds)                    \
	{                                                                                                    \
		__m512 sc = _mm512_set1_ps(scale);                                                           \
		for (size_t b = 0; b < nblk; b++) {                                                          \
			const uint16_t *kb = K + b * 16 * kvd + g * hd * 16;                                 \
			size_t h = 0;                                                                        \
			for (; h + 4 <= group; h += 4) {                                                     \
				const uint16_t *q = q16 + h * hd;                                            \
				__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                  \
				for (size_t j = 0; j < hd / 2; j++) {                                        \
					__m512i k = _mm512_loadu_si512(kb + j * 32);                         \
					a0 = DP(a0, _mm512_set1_epi32((int)pair_at(q + 2 * j)), k);          \
					a1 = DP(a1, _mm512_set1_epi32((int)pair_at(q + hd + 2 * j)), k);     \
					a2 = DP(a2, _mm512_set1_epi32((int)pair_at(q + 2 * hd + 2 * j)), k); \
					a3 = DP(a3, _mm512_set1_epi32((int)pair_at(q + 3 * hd + 2 * j)), k); \
				}                                                                            \
				_mm512_storeu_ps(s + h * lds + b * 16, _mm512_mul_ps(a0, sc));               \
				_mm512_storeu_ps(s + (h + 1) * lds + b * 16, _mm512_mul_ps(a1, sc));         \
				_mm512_storeu_ps(s + (h + 2) * lds + b * 16, _mm512_mul_ps(a2, sc));         \
				_mm512_storeu_ps(s + (h + 3) * lds + b * 16, _mm512_mul_ps(a3, sc));         \
			}                                                                                    \
			for (; h < group; h++) {                                                             \
				const uint16_t *q = q16 + h * hd;                                            \
				__m512 a0 = _mm512_setzero_ps();                                             \
				for (size_t j = 0; j < hd / 2; j++)                                          \
					a0 = DP(a0, _mm512_set1_epi32((int)pair_at(q + 2 * j)),              \
						_mm512_loadu_si512(kb + j * 32));                            \
				_mm512_storeu_ps(s + h * lds + b * 16, _mm512_mul_ps(a0, sc));               \
			}                                                                                    \
		}                                                                                            \
	}

/* o stays in registers over all blocks; each block's 16 weights are rounded
 * to BF16 once and broadcast a position pair at a time. */
#define ATT16_ACCUM(NAME, TARGET, DP)                                                                        \
	TARGET static void NAME(float *o, const float *w, const uint16_t *V, size_t kvd, size_t g,           \
				size_t nblk, size_t hd)                                                      \
	{                                                                                                    \
		if (hd % 16 || hd > 256) {                                                                   \
			engine_att16_accum_portable(o, w, V, kvd, g, nblk, hd);                              \
			return;                                                                              \
		}                                                                                            \
		size_t nv = hd / 16;                                                                         \
		__m512 acc[16];                                                                              \
		for (size_t v = 0; v < nv; v++)                                                              \
			acc[v] = _mm512_loadu_ps(o + 16 * v);                                                \
		for (size_t b = 0; b < nblk; b++) {                                                          \
			const uint16_t *vb = V + b * 16 * kvd + g * hd * 2;                                  \
			/* to BF16 as engine_bf16 rounds (to nearest, ties to even) */                       \
			__m512i u = _mm512_castps_si512(_mm512_loadu_ps(w + b * 16));                        \
			__m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));      \
			__m512i wi = _mm512_srli_epi32(                                                      \
				_mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff))), 16);  \
			uint16_t w16[16];                                                                    \
			_mm256_storeu_si256((__m256i *)w16, _mm512_cvtepi32_epi16(wi));                      \
			for (size_t i = 0; i < 8; i++) {                                                     \
				__m512i wp = _mm512_set1_epi32((int)pair_at(w16 + 2 * i));                   \
				const uint16_t *row = vb + i * kvd * 2;                                      \
				for (size_t v = 0; v < nv; v++)                                              \
					acc[v] = DP(acc[v], wp, _mm512_loadu_si512(row + 32 * v));           \
			}                                                                                    \
		}                                                                                            \
		for (size_t v = 0; v < nv; v++)                                                              \
			_mm512_storeu_ps(o + 16 * v, acc[v]);                                                \
	}

ATT16_SCORES(scores_bf16, TB16, dp_bf16)
ATT16_SCORES(scores_wide, T512, dp_wide)
ATT16_ACCUM(accum_bf16, TB16, dp_bf16)
ATT16_ACCUM(accum_wide, T512, dp_wide)

/* Scores for head sizes the vector code does not take go to the portable
 * definition; the accumulation checks for itself. */
static void scores_check(const uint16_t *q16, size_t group, size_t hd, const uint16_t *K, size_t kvd,
			 size_t g, size_t nblk, float scale, float *s, size_t lds, bool bf16)
{
	if (hd % 2 || hd > 256)
		engine_att16_scores_portable(q16, group, hd, K, kvd, g, nblk, scale, s, lds);
	else if (bf16)
		scores_bf16(q16, group, hd, K, kvd, g, nblk, scale, s, lds);
	else
		scores_wide(q16, group, hd, K, kvd, g, nblk, scale, s, lds);
}

void engine_att16_scores_avx512bf16(const uint16_t *q16, size_t group, size_t hd, const uint16_t *K,
				    size_t kvd, size_t g, size_t nblk, float scale, float *s, size_t lds)
{
	scores_check(q16, group, hd, K, kvd, g, nblk, scale, s, lds, true);
}

void engine_att16_scores_avx512(const uint16_t *q16, size_t group, size_t hd, const uint16_t *K, size_t kvd,
				size_t g, size_t nblk, float scale, float *s, size_t lds)
{
	scores_check(q16, group, hd, K, kvd, g, nblk, scale, s, lds, false);
}

void engine_att16_accum_avx512bf16(float *o, const float *w, const uint16_t *V, size_t kvd, size_t g,
				   size_t nblk, size_t hd)
{
	accum_bf16(o, w, V, kvd, g, nblk, hd);
}

void engine_att16_accum_avx512(float *o, const float *w, const uint16_t *V, size_t kvd, size_t g, size_t nblk,
			       size_t hd)
{
	accum_wide(o, w, V, kvd, g, nblk, hd);
}
#endif
