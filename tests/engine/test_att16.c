/*
 * Attention over the BF16 copy of the cache (the avx512vnni set): rounding to
 * BF16, the block layout against plain dot products, the SIMD kernels against
 * their portable definitions, and in the forward pass a copy that follows the
 * cache through forks, restores, dropped entries and rewritten positions.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/core_internal.h" /* the module's own tests: kernels and the copy's layout */
#include "engine/engine.h"
#include "tests/support/random_model.h"

static float from_bf16(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static float from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static uint64_t rng = 88172645463325252ULL;
static float rnd(void) /* in [-1, 1) */
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((int64_t)(rng >> 40) - (1 << 23)) * 0x1p-23f;
}

static void test_bf16_rounding(void **state)
{
	(void)state;
	assert_int_equal(engine_bf16(1.0f), 0x3f80);
	assert_int_equal(engine_bf16(-2.0f), 0xc000);
	assert_int_equal(engine_bf16(from_bits(0x3f808000u)), 0x3f80); /* tie: to even */
	assert_int_equal(engine_bf16(from_bits(0x3f818000u)), 0x3f82); /* tie: to even */
	assert_int_equal(engine_bf16(from_bits(0x3f808001u)), 0x3f81); /* past the tie: up */
	assert_int_equal(engine_bf16(from_bits(0x7f7fffffu)), 0x7f80); /* largest float: to infinity */
	assert_int_equal(engine_bf16(INFINITY), 0x7f80);
	uint16_t nan = engine_bf16(from_bits(0x7f800001u)); /* a NaN whose payload is in the low bits */
	assert_true(isnan(from_bf16(nan)));
}

/* A cache of n positions for kvd = kvh * hd, as floats and as the BF16 copy. */
typedef struct cache {
	size_t n, kvd;
	float *k, *v;
	uint16_t *k16, *v16;
} cache;

static void cache_make(cache *c, size_t n, size_t kvd)
{
	size_t cap = (n + 15) / 16 * 16;
	c->n = n;
	c->kvd = kvd;
	c->k = malloc(n * kvd * sizeof(float));
	c->v = malloc(n * kvd * sizeof(float));
	c->k16 = calloc(cap * kvd, sizeof(uint16_t));
	c->v16 = calloc(cap * kvd, sizeof(uint16_t));
	for (size_t i = 0; i < n * kvd; i++) {
		c->k[i] = rnd();
		c->v[i] = rnd();
	}
	for (size_t p = 0; p < n; p++)
		engine_kv16_put(c->k16, c->v16, kvd, p, c->k + p * kvd, c->v + p * kvd);
}

static void cache_free(cache *c)
{
	free(c->k);
	free(c->v);
	free(c->k16);
	free(c->v16);
}

/* The portable definitions read the layout back as the positions and channels
 * engine_kv16_put was given: scores and sums equal plain double-precision ones
 * over the rounded values. */
static void test_layout_matches_plain_products(void **state)
{
	(void)state;
	size_t hd = 24, kvh = 2, group = 3, n = 40, nblk = 3, kvd = hd * kvh;
	cache c;
	cache_make(&c, n, kvd);
	uint16_t q16[3 * 24];
	for (size_t i = 0; i < group * hd; i++)
		q16[i] = engine_bf16(rnd());
	float s[3 * 48], w[48], o[24];
	for (size_t g = 0; g < kvh; g++) {
		engine_att16_scores_portable(q16, group, hd, c.k16, kvd, g, nblk, 0.5f, s, 48);
		for (size_t h = 0; h < group; h++)
			for (size_t p = 0; p < n; p++) {
				double want = 0;
				for (size_t e = 0; e < hd; e++)
					want += (double)from_bf16(q16[h * hd + e]) *
						from_bf16(engine_bf16(c.k[p * kvd + g * hd + e]));
				assert_true(fabs(s[h * 48 + p] - 0.5 * want) < 1e-5);
			}
		for (size_t p = 0; p < 48; p++)
			w[p] = p < n ? rnd() : 0;
		memset(o, 0, sizeof o);
		engine_att16_accum_portable(o, w, c.v16, kvd, g, nblk, hd);
		for (size_t e = 0; e < hd; e++) {
			double want = 0;
			for (size_t p = 0; p < n; p++)
				want += (double)from_bf16(engine_bf16(w[p])) *
					from_bf16(engine_bf16(c.v[p * kvd + g * hd + e]));
			assert_true(fabs(o[e] - want) < 1e-5);
		}
	}
	cache_free(&c);
}

typedef void (*scores_fn)(const uint16_t *, size_t, size_t, const uint16_t *, size_t, size_t, size_t, float,
			  float *, size_t);
typedef void (*accum_fn)(float *, const float *, const uint16_t *, size_t, size_t, size_t, size_t);

static double max_rel(const float *a, const float *b, size_t n)
{
	double d = 0, m = 1e-30;
	for (size_t i = 0; i < n; i++) {
		d = fabs((double)a[i] - b[i]) > d ? fabs((double)a[i] - b[i]) : d;
		m = fabs((double)b[i]) > m ? fabs((double)b[i]) : m;
	}
	return d / m;
}

static void check_simd(scores_fn scores, accum_fn accum, const char *name)
{
	static const size_t hds[] = {128, 64, 80, 16, 6}, groups[] = {1, 4, 5, 20};
	for (size_t a = 0; a < 5; a++)
		for (size_t b = 0; b < 4; b++)
			for (size_t kvh = 1; kvh <= 2; kvh++) {
				size_t hd = hds[a], group = groups[b], kvd = hd * kvh, nblk = 4, n = 61;
				cache c;
				cache_make(&c, n, kvd);
				uint16_t *q16 = malloc(group * hd * sizeof(uint16_t));
				for (size_t i = 0; i < group * hd; i++)
					q16[i] = engine_bf16(rnd());
				float *s1 = calloc(group * 64, sizeof(float)),
				      *s2 = calloc(group * 64, sizeof(float));
				float w[64], o1[128], o2[128];
				for (size_t g = 0; g < kvh; g++) {
					engine_att16_scores_portable(q16, group, hd, c.k16, kvd, g, nblk,
								     0.25f, s1, 64);
					scores(q16, group, hd, c.k16, kvd, g, nblk, 0.25f, s2, 64);
					double e = max_rel(s2, s1, group * 64);
					if (!(e < 1e-5))
						fail_msg("%s scores hd %zu group %zu: %.3g", name, hd, group,
							 e);
					for (size_t p = 0; p < 64; p++)
						w[p] = p < n ? fabsf(rnd()) : 0;
					for (size_t i = 0; i < hd; i++)
						o1[i] = o2[i] = rnd();
					engine_att16_accum_portable(o1, w, c.v16, kvd, g, nblk, hd);
					accum(o2, w, c.v16, kvd, g, nblk, hd);
					e = max_rel(o2, o1, hd);
					if (!(e < 1e-5))
						fail_msg("%s accum hd %zu group %zu: %.3g", name, hd, group,
							 e);
				}
				free(q16);
				free(s1);
				free(s2);
				cache_free(&c);
			}
}

static void test_simd_matches_definition(void **state)
{
	(void)state;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
	    !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq")) {
		print_message("no AVX-512 here: skipped\n");
		return;
	}
	check_simd(engine_att16_scores_avx512, engine_att16_accum_avx512, "avx512");
	if (__builtin_cpu_supports("avx512bf16"))
		check_simd(engine_att16_scores_avx512bf16, engine_att16_accum_avx512bf16, "avx512bf16");
	else
		print_message("no AVX-512 BF16 here: that path skipped\n");
#else
	print_message("not x86-64: skipped\n");
#endif
}

/* ------------------------------------------------------------ in the forward pass */

static engine_model *make(uint64_t seed)
{
	engine_jamba_random p;
	engine_jamba_random_init(&p); /* GQA attention (4 query heads, 2 KV heads of 16) */
	p.seed = seed;
	return support_random_model(&p, "att16");
}

static int32_t tok(uint64_t i, uint32_t vocab) { return (int32_t)((i * 2654435761u + 17) % vocab); }

/* Decodes n tokens from i0 on s; the last logits into out. */
static void run(engine_model *m, engine_state *s, uint64_t i0, size_t n, float *out)
{
	uint32_t V = engine_model_config(m)->n_vocab;
	for (size_t i = 0; i < n; i++)
		assert_int_equal(engine_decode(m, s, tok(i0 + i, V), out), 0);
}

/* A fork, a restored copy and the original go on to the same logits, bit for
 * bit: the copies they rebuild equal the one kept up as the cache grew. After
 * entries are dropped the copy is rebuilt too (a stale one would be shifted). */
static void test_copy_follows_the_cache(void **state)
{
	(void)state;
	engine_model *m = make(401);
	if (engine_set_kernels(m, "avx512vnni")) {
		print_message("avx512vnni: not on this CPU, skipped\n");
		engine_model_free(m);
		return;
	}
	uint32_t V = engine_model_config(m)->n_vocab;
	float *a = malloc(V * sizeof(float)), *b = malloc(V * sizeof(float)), *c = malloc(V * sizeof(float));
	engine_state *s, *f, *r;
	assert_int_equal(engine_state_new(&s, m), 0);
	run(m, s, 0, 37, a); /* not a multiple of 16: the last block is partly filled */
	assert_int_equal(engine_state_fork(&f, s), 0);
	uint8_t *bytes;
	size_t len;
	assert_int_equal(engine_state_serialize(s, &bytes, &len), 0);
	assert_int_equal(engine_state_restore(&r, m, bytes, len), 0);
	ag_free(bytes);
	run(m, s, 100, 20, a);
	run(m, f, 100, 20, b);
	run(m, r, 100, 20, c);
	assert_memory_equal(a, b, V * sizeof(float));
	assert_memory_equal(a, c, V * sizeof(float));

	assert_int_equal(engine_state_drop_oldest(s, 5), 0);
	engine_state *f2;
	assert_int_equal(engine_state_fork(&f2, s), 0);
	run(m, s, 200, 3, a);
	run(m, f2, 200, 3, b);
	assert_memory_equal(a, b, V * sizeof(float));

	/* reset, then a shorter history: positions rewritten, the copy with them */
	engine_state_reset(f);
	engine_state *fresh;
	assert_int_equal(engine_state_new(&fresh, m), 0);
	run(m, f, 300, 9, a);
	run(m, fresh, 300, 9, b);
	assert_memory_equal(a, b, V * sizeof(float));
	engine_state_free(s);
	engine_state_free(f);
	engine_state_free(f2);
	engine_state_free(r);
	engine_state_free(fresh);
	engine_model_free(m);
	free(a);
	free(b);
	free(c);
}

/* Past a work segment (2048 positions) and many blocks: with F32 weights the
 * only difference between the avx512 and avx512vnni sets is the BF16
 * attention, and the logits stay within its rounding. */
static void test_long_context_close_to_f32(void **state)
{
	(void)state;
	engine_model *m = make(402);
	if (engine_set_kernels(m, "avx512vnni")) {
		print_message("avx512vnni: not on this CPU, skipped\n");
		engine_model_free(m);
		return;
	}
	uint32_t V = engine_model_config(m)->n_vocab;
	float *a = malloc(V * sizeof(float)), *b = malloc(V * sizeof(float));
	engine_state *s, *f;
	assert_int_equal(engine_state_new(&s, m), 0);
	run(m, s, 0, 4, NULL);
	assert_int_equal(engine_state_fill_synthetic(s, 2101, 7), 0);
	assert_int_equal(engine_state_fork(&f, s), 0);
	run(m, s, 50, 3, a);
	assert_int_equal(engine_set_kernels(m, "avx512"), 0);
	run(m, f, 50, 3, b);
	double d = max_rel(a, b, V);
	print_message("2108 positions: BF16 vs F32 attention %.3g\n", d);
	assert_true(d < 1e-2);
	assert_true(d > 0); /* the BF16 path did run */
	engine_state_free(s);
	engine_state_free(f);
	engine_model_free(m);
	free(a);
	free(b);
}

int main(void)
{
	ag_alloc_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bf16_rounding),
		cmocka_unit_test(test_layout_matches_plain_products),
		cmocka_unit_test(test_simd_matches_definition),
		cmocka_unit_test(test_copy_follows_the_cache),
		cmocka_unit_test(test_long_context_close_to_f32),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
