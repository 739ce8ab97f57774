/*
 * The Mamba scan step and SiLU kernels: the AVX-512 versions against the
 * portable definitions, over softplus inputs from far negative to past its
 * linear cut, channel counts that leave partial groups, and d_state 16 (the
 * vector path) as well as 8 (the fallback).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/core_internal.h" /* the module's own tests: kernels */
#include "engine/engine.h"

static uint64_t rng = 0x2545f4914f6cdd1dULL;
static float rnd(void) /* in [-1, 1) */
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((int64_t)(rng >> 40) - (1 << 23)) * 0x1p-23f;
}

static bool have_avx512(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
	return false;
#endif
}

static void close_to(const float *got, const float *want, size_t n, double tol, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - want[i]),
		       scale = fabs((double)want[i]) > 1e-3 ? fabs(want[i]) : 1e-3;
		if (!(d <= tol * scale))
			fail_msg("%s[%zu]: %.9g vs %.9g", what, i, got[i], want[i]);
	}
}

static void test_scan_matches_definition(void **state)
{
	(void)state;
	if (!have_avx512()) {
		print_message("no AVX-512 here: skipped\n");
		return;
	}
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	static const size_t counts[] = {1, 15, 16, 17, 48, 77};
	static const size_t states[] = {16, 8};
	for (size_t a = 0; a < 6; a++)
		for (size_t b = 0; b < 2; b++) {
			size_t n = counts[a], N = states[b];
			float *s1 = malloc(n * N * sizeof(float)), *s2 = malloc(n * N * sizeof(float));
			float *A = malloc(n * N * sizeof(float)), B[16], C[16];
			float *delta = malloc(n * sizeof(float)), *dtb = malloc(n * sizeof(float));
			float *u = malloc(n * sizeof(float)), *Dsk = malloc(n * sizeof(float)),
			      *z = malloc(n * sizeof(float));
			float *y1 = malloc(n * sizeof(float)), *y2 = malloc(n * sizeof(float));
			for (size_t i = 0; i < n * N; i++) {
				s1[i] = s2[i] = rnd();
				A[i] = -expf(2 * rnd()); /* A = -exp(A_log) */
			}
			for (size_t q = 0; q < N; q++) {
				B[q] = rnd();
				C[q] = rnd();
			}
			for (size_t c = 0; c < n; c++) {
				/* softplus inputs from -30 to +30: its exp tail, its middle, its linear part
				 */
				delta[c] = 30 * rnd();
				dtb[c] = rnd();
				u[c] = rnd();
				Dsk[c] = rnd();
				z[c] = 8 * rnd();
			}
			engine_ssm_scan_portable(s1, A, B, C, delta, dtb, u, Dsk, z, y1, n, N);
			engine_ssm_scan_avx512(s2, A, B, C, delta, dtb, u, Dsk, z, y2, n, N);
			close_to(s2, s1, n * N, 1e-5, "state");
			close_to(y2, y1, n, 1e-5, "y");
			free(s1);
			free(s2);
			free(A);
			free(delta);
			free(dtb);
			free(u);
			free(Dsk);
			free(z);
			free(y1);
			free(y2);
		}
#endif
}

static void test_silu_matches_definition(void **state)
{
	(void)state;
	if (!have_avx512()) {
		print_message("no AVX-512 here: skipped\n");
		return;
	}
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	enum { N = 101 };
	float x1[N], x2[N], m[N];
	for (size_t i = 0; i < N; i++) {
		x1[i] = x2[i] = 40 * rnd();
		m[i] = rnd();
	}
	x1[0] = x2[0] = -100; /* exp overflows: silu is -0 */
	engine_silu_mul_portable(x1, m, N);
	engine_silu_mul_avx512(x2, m, N);
	close_to(x2, x1, N, 1e-6, "silu * m");
	engine_silu_mul_portable(x1, NULL, N);
	engine_silu_mul_avx512(x2, NULL, N);
	close_to(x2, x1, N, 1e-6, "silu");
	assert_true(fabsf(x2[0]) < 1e-30f);
#endif
}

int main(void)
{
	ag_alloc_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan_matches_definition),
		cmocka_unit_test(test_silu_matches_definition),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
