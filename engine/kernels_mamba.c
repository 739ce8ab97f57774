/*
 * The Mamba mixer's per-channel arithmetic and SwiGLU's gate: the portable
 * definitions, and AVX-512 versions that work on 16 channels at a time.
 *
 * Why vectors here: in a 16-sequence decode step these per-token loops cost
 * about a quarter of the weight products' time (perf: the scan step, scalar
 * expf and log1pf for softplus and SiLU, a call per channel), since the
 * products are shared by the batch and these are not.
 *
 * Channels go in groups at multiples of 16 counted from the first channel the
 * caller passes; forward.c passes ranges that start at multiples of 16, so a
 * channel always sits in the same lane and gets the same bits whatever the
 * thread count or batch.
 */
#include <math.h>
#include <string.h>

#include "engine/core_internal.h"

void engine_ssm_scan_portable(float *s, const float *A, const float *B, const float *C, const float *delta,
			      const float *dt_b, const float *u, const float *Dsk, const float *z, float *y,
			      size_t n, size_t N)
{
	for (size_t c = 0; c < n; c++) {
		float dl = engine_softplus(delta[c] + dt_b[c]), xdt = dl * u[c], yv = 0;
		float *sc = s + c * N;
		const float *Ac = A + c * N;
		for (size_t q = 0; q < N; q++) {
			sc[q] = sc[q] * expf(dl * Ac[q]) + B[q] * xdt;
			yv += sc[q] * C[q];
		}
		y[c] = (yv + Dsk[c] * u[c]) * engine_silu(z[c]);
	}
}

void engine_silu_mul_portable(float *x, const float *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = engine_silu(x[i]) * (m ? m[i] : 1.0f);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "engine/x86_internal.h"

T512 static inline __m512 silu512(__m512 x)
{
	return _mm512_div_ps(
		x, _mm512_add_ps(_mm512_set1_ps(1.0f), exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

/* log(w) for w >= 1: w = 2^k m with m in [sqrt(1/2), sqrt(2)), and
 * log m = 2 atanh(f / (2 + f)), f = m - 1, by its odd series to the 11th
 * power (|f / (2 + f)| < 0.172: truncation under 1e-10). */
T512 static inline __m512 log512(__m512 w)
{
	__m512 k = _mm512_getexp_ps(w), m = _mm512_getmant_ps(w, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src);
	__mmask16 big = _mm512_cmp_ps_mask(m, _mm512_set1_ps(1.41421356f), _CMP_GT_OQ);
	m = _mm512_mask_mul_ps(m, big, m, _mm512_set1_ps(0.5f));
	k = _mm512_mask_add_ps(k, big, k, _mm512_set1_ps(1.0f));
	__m512 f = _mm512_sub_ps(m, _mm512_set1_ps(1.0f));
	__m512 t = _mm512_div_ps(f, _mm512_add_ps(f, _mm512_set1_ps(2.0f))), t2 = _mm512_mul_ps(t, t);
	__m512 p = _mm512_set1_ps(2.0f / 11);
	p = _mm512_fmadd_ps(p, t2, _mm512_set1_ps(2.0f / 9));
	p = _mm512_fmadd_ps(p, t2, _mm512_set1_ps(2.0f / 7));
	p = _mm512_fmadd_ps(p, t2, _mm512_set1_ps(2.0f / 5));
	p = _mm512_fmadd_ps(p, t2, _mm512_set1_ps(2.0f / 3));
	p = _mm512_fmadd_ps(p, t2, _mm512_set1_ps(2.0f));
	__m512 lm = _mm512_mul_ps(p, t);
	/* k ln 2 in two parts, the first exact for any k a float exponent takes */
	return _mm512_add_ps(_mm512_fmadd_ps(k, _mm512_set1_ps(0.693145751953125f), lm),
			     _mm512_mul_ps(k, _mm512_set1_ps(1.428606765330187045e-06f)));
}

/* softplus(x) = x past 20, else log1p(e^x) as log(w) plus the rounding of
 * w = 1 + e^x, (e^x - (w - 1)) / w, so tiny e^x keep their digits. */
T512 static inline __m512 softplus512(__m512 x)
{
	__m512 e = exp512(_mm512_min_ps(x, _mm512_set1_ps(20.0f))),
	       w = _mm512_add_ps(_mm512_set1_ps(1.0f), e);
	__m512 corr = _mm512_div_ps(_mm512_sub_ps(e, _mm512_sub_ps(w, _mm512_set1_ps(1.0f))), w);
	__m512 sp = _mm512_add_ps(log512(w), corr);
	return _mm512_mask_mov_ps(sp, _mm512_cmp_ps_mask(x, _mm512_set1_ps(20.0f), _CMP_GT_OQ), x);
}

/* The 16 vectors' sums, vector k's in lane k: three rounds of adding halves
 * that pair lanes (i, i + 8), (i, i + 4), (i, i + 2), (i, i + 1). */
T512 static inline __m512 sums16(__m512 *p)
{
	__m512 a[8], b[4], c[2];
	for (int i = 0; i < 8; i++) /* lanes 0-7: vector 2i's i + (i + 8); 8-15: vector 2i + 1's */
		a[i] = _mm512_add_ps(_mm512_shuffle_f32x4(p[2 * i], p[2 * i + 1], 0x44),
				     _mm512_shuffle_f32x4(p[2 * i], p[2 * i + 1], 0xee));
	for (int i = 0; i < 4; i++) /* per 128-bit part: one vector's four partial sums */
		b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x88),
				     _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xdd));
	for (int i = 0; i < 2; i++) /* pairs within each 128-bit part */
		c[i] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44),
				     _mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0xee));
	__m512 d = _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], 0x88), _mm512_shuffle_ps(c[0], c[1], 0xdd));
	/* lane 4j + m now holds vector 4m + j: put vector k in lane k */
	const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
	return _mm512_permutexvar_ps(order, d);
}

/* d_state 16 (every Jamba): a channel's state is one vector. */
T512 static void ssm_scan_group(float *s, const float *A, __m512 Bv, __m512 Cv, const float *delta,
				const float *dt_b, const float *u, const float *Dsk, const float *z, float *y,
				size_t n)
{
	__mmask16 k = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
	__m512 dl =
		softplus512(_mm512_add_ps(_mm512_maskz_loadu_ps(k, delta), _mm512_maskz_loadu_ps(k, dt_b)));
	__m512 uu = _mm512_maskz_loadu_ps(k, u);
	float dla[16], xa[16];
	_mm512_storeu_ps(dla, dl);
	_mm512_storeu_ps(xa, _mm512_mul_ps(dl, uu));
	__m512 p[16];
	for (size_t c = 0; c < 16; c++) {
		if (c >= n) {
			p[c] = _mm512_setzero_ps();
			continue;
		}
		__m512 decay = exp512(_mm512_mul_ps(_mm512_set1_ps(dla[c]), _mm512_loadu_ps(A + c * 16)));
		__m512 st = _mm512_fmadd_ps(_mm512_loadu_ps(s + c * 16), decay,
					    _mm512_mul_ps(Bv, _mm512_set1_ps(xa[c])));
		_mm512_storeu_ps(s + c * 16, st);
		p[c] = _mm512_mul_ps(st, Cv);
	}
	__m512 yv = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, Dsk), uu, sums16(p));
	_mm512_mask_storeu_ps(y, k, _mm512_mul_ps(yv, silu512(_mm512_maskz_loadu_ps(k, z))));
}

T512 void engine_ssm_scan_avx512(float *s, const float *A, const float *B, const float *C, const float *delta,
				 const float *dt_b, const float *u, const float *Dsk, const float *z,
				 float *y, size_t n, size_t N)
{
	if (N != 16) {
		engine_ssm_scan_portable(s, A, B, C, delta, dt_b, u, Dsk, z, y, n, N);
		return;
	}
	__m512 Bv = _mm512_loadu_ps(B), Cv = _mm512_loadu_ps(C);
	for (size_t c = 0; c < n; c += 16)
		ssm_scan_group(s + c * 16, A + c * 16, Bv, Cv, delta + c, dt_b + c, u + c, Dsk + c, z + c,
			       y + c, n - c);
}

T512 void engine_silu_mul_avx512(float *x, const float *m, size_t n)
{
	for (size_t i = 0; i < n; i += 16) {
		__mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
		__m512 v = silu512(_mm512_maskz_loadu_ps(k, x + i));
		if (m)
			v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, m + i));
		_mm512_mask_storeu_ps(x + i, k, v);
	}
}
#endif
