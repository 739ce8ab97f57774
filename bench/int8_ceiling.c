/* What an int8 decode kernel could reach on this machine, as evidence for
 * the engine's batched-decode design (issue #12), not a kernel the engine
 * uses. The engine's Q8_0 rows widen weights to floats and keep activations
 * in float (exact against the reference); batched decode then runs out of
 * float FMA throughput near 2x one sequence. The faster alternative, llama.cpp's
 * way, quantises activations to int8 and multiplies with AVX-512 VNNI. This
 * program measures the best case of that alternative: a ~1 GB Q8_0 matrix in
 * a 16-row interleaved layout (one VPDPBUSD does 4 columns of 16 rows against
 * one token's 4 activations), weights read once per pass for up to 8 tokens
 * held in registers, prefetch of the next group. It prints the pass time,
 * bytes/s and tokens/s for 1, 4, 8 and 16 tokens, so the ceiling of batched
 * decode with int8 activations on this CPU is a measured figure.
 *
 *   build/bench/int8_ceiling [--rows N] [--threads N]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

#define COLS        2560 /* d_model of the engine benchmark's ~1B model */
#define NB          (COLS / 32)
#define GROUP_BYTES (NB * 544) /* per 16 rows: per block 16 fp16 scales + 16 x 32 int8 */
#define MAX_TOK     16

typedef struct job {
	const uint8_t *w;
	const int8_t (*xq)[COLS];
	const float (*dx)[NB];
	const int32_t (*sx)[NB];
	float *y;
	size_t rows, g0, g1;
	int n_tok;
} job;

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define TVNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,f16c")))

/* Weights are stored as w + 128 (unsigned, as VPDPBUSD wants its first
 * operand); each block's sum starts at -128 * (sum of the token's block of
 * activations), so the integer result is the signed dot product exactly. */
TVNNI static void groups(const job *j)
{
	for (size_t g = j->g0; g < j->g1; g++) {
		const uint8_t *p = j->w + g * GROUP_BYTES;
		for (int t0 = 0; t0 < j->n_tok; t0 += 8) {
			int tb = j->n_tok - t0 < 8 ? j->n_tok - t0 : 8;
			__m512 acc[8];
			for (int t = 0; t < 8; t++)
				acc[t] = _mm512_setzero_ps();
			for (size_t b = 0; b < NB; b++) {
				const uint8_t *q = p + b * 544;
				for (int k = 0; k < 544; k += 64)
					_mm_prefetch((const char *)q + GROUP_BYTES + k, _MM_HINT_T0);
				__m512 dw =
					_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)q));
				__m512i w[8];
				for (int c = 0; c < 8; c++)
					w[c] = _mm512_loadu_si512(q + 32 + 64 * c);
				for (int t = 0; t < tb; t++) {
					const int8_t *xt = j->xq[t0 + t] + b * 32;
					__m512i s = _mm512_set1_epi32(-128 * j->sx[t0 + t][b]);
					for (int c = 0; c < 8; c++) {
						int32_t v;
						memcpy(&v, xt + 4 * c, 4);
						s = _mm512_dpbusd_epi32(s, w[c], _mm512_set1_epi32(v));
					}
					__m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(j->dx[t0 + t][b]));
					acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, acc[t]);
				}
			}
			for (int t = 0; t < tb; t++)
				_mm512_storeu_ps(j->y + (size_t)(t0 + t) * j->rows + g * 16, acc[t]);
		}
	}
}

static bool have_vnni(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}
#else
static void groups(const job *j) { (void)j; }
static bool have_vnni(void) { return false; }
#endif

static void *worker(void *arg)
{
	groups(arg);
	return NULL;
}

static double now_s(void) { return (double)ag_monotonic_ns() / 1e9; }

int main(int argc, char **argv)
{
	size_t rows = 368640; /* x 2560 columns of Q8_0: 1.0 GB */
	int threads = 2;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--rows"))
			rows = strtoull(argv[i + 1], NULL, 10) / 16 * 16;
		else if (!strcmp(argv[i], "--threads"))
			threads = (int)strtol(argv[i + 1], NULL, 10);
	}
	if (threads < 1 || threads > 64 || rows < 16) {
		fprintf(stderr, "usage: int8_ceiling [--rows N>=16] [--threads 1..64]\n");
		return 2;
	}
	if (!have_vnni()) {
		printf("int8_ceiling: this CPU has no AVX-512 VNNI; nothing to measure\n");
		return 0;
	}
	ag_alloc_init();
	size_t n_groups = rows / 16, bytes = n_groups * GROUP_BYTES;
	uint8_t *w = ag_malloc(bytes);
	float *y = ag_malloc(MAX_TOK * rows * sizeof(float));
	static int8_t xq[MAX_TOK][COLS];
	static float dx[MAX_TOK][NB];
	static int32_t sx[MAX_TOK][NB];
	if (!w || !y) {
		fprintf(stderr, "int8_ceiling: out of memory for %zu bytes\n", bytes);
		return 1;
	}
	uint64_t r = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < bytes; i++) { /* every page touched before timing */
		r ^= r << 13, r ^= r >> 7, r ^= r << 17;
		w[i] = (uint8_t)r;
	}
	for (size_t g = 0; g < n_groups; g++)
		for (size_t b = 0; b < NB; b++)
			for (int k = 0; k < 16; k++) {
				uint16_t half = (uint16_t)(0x2000 + k); /* small positive fp16 scales */
				memcpy(w + g * GROUP_BYTES + b * 544 + 2 * k, &half, 2);
			}
	for (int t = 0; t < MAX_TOK; t++)
		for (size_t b = 0; b < NB; b++) {
			int32_t s = 0;
			for (int i = 0; i < 32; i++) {
				r ^= r << 13, r ^= r >> 7, r ^= r << 17;
				xq[t][b * 32 + i] = (int8_t)((int)(r % 255) - 127);
				s += xq[t][b * 32 + i];
			}
			sx[t][b] = s;
			dx[t][b] = 0.01f;
		}
	printf("int8 VNNI Q8_0 rows, 16-row interleaved: %zu x %d (%.2f GB), %d threads\n", rows, COLS,
	       (double)bytes / 1e9, threads);
	static const int n_toks[] = {1, 4, 8, 16};
	double one = 0;
	for (size_t k = 0; k < sizeof n_toks / sizeof n_toks[0]; k++) {
		double best = 1e30;
		for (int rep = 0; rep < 5; rep++) {
			pthread_t th[64];
			job jobs[64];
			double t0 = now_s();
			for (int i = 0; i < threads; i++) {
				jobs[i] = (job){.w = w,
						.xq = xq,
						.dx = dx,
						.sx = sx,
						.y = y,
						.rows = rows,
						.g0 = n_groups * (size_t)i / (size_t)threads,
						.g1 = n_groups * (size_t)(i + 1) / (size_t)threads,
						.n_tok = n_toks[k]};
				if (pthread_create(&th[i], NULL, worker, &jobs[i])) {
					fprintf(stderr, "int8_ceiling: cannot start a thread\n");
					return 1;
				}
			}
			for (int i = 0; i < threads; i++)
				pthread_join(th[i], NULL);
			double dt = now_s() - t0;
			best = dt < best ? dt : best;
		}
		double tps = n_toks[k] / best;
		if (k == 0)
			one = tps;
		printf("  %2d tokens a pass: %7.1f ms, %5.1f GB/s of weights, %6.1f tokens/s (%.1fx one "
		       "token)\n",
		       n_toks[k], best * 1e3, (double)bytes / best / 1e9, tps, tps / one);
	}
	ag_free(w);
	ag_free(y);
	return 0;
}
