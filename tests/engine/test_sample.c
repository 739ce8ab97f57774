/* Unit tests of sampling: greedy, seeds, the top-k / top-p / min-p filters (checked over
 * many draws), temperature, the repetition penalty and agreement with softmax. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

static engine_sampler *make(float temp, int32_t top_k, float top_p, float min_p, uint64_t seed)
{
	engine_sampler_params p;
	engine_sampler_params_init(&p);
	p.temperature = temp;
	p.top_k = top_k;
	p.top_p = top_p;
	p.min_p = min_p;
	p.seed = seed;
	engine_sampler *s;
	assert_int_equal(engine_sampler_new(&s, &p), 0);
	return s;
}

static int32_t draw(engine_sampler *s, const float *logits, size_t n)
{
	int32_t tok = -1;
	assert_int_equal(engine_sample(s, logits, n, &tok), 0);
	assert_true(tok >= 0 && (size_t)tok < n);
	return tok;
}

static uint64_t rng = 99;
static float rand_logit(void)
{
	rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return (float)((double)(rng >> 11) * 0x1.0p-53 * 20.0 - 10.0);
}

static void test_greedy(void **state)
{
	(void)state;
	engine_sampler *s = make(0, 40, 0.95f, 0.05f, 1);
	float l[1000];
	for (int round = 0; round < 50; round++) {
		size_t best = 0;
		for (size_t i = 0; i < 1000; i++) {
			l[i] = rand_logit();
			if (l[i] > l[best])
				best = i;
		}
		assert_int_equal(draw(s, l, 1000), (int32_t)best);
	}
	/* Ties go to the lowest id; NaN is never chosen. */
	float tie[] = {NAN, 1.0f, 3.0f, 3.0f, -INFINITY};
	assert_int_equal(draw(s, tie, 5), 2);
	engine_sampler_free(s);
}

static void test_seed_determinism(void **state)
{
	(void)state;
	float l[64];
	for (int i = 0; i < 64; i++)
		l[i] = rand_logit() * 0.2f;
	engine_sampler *a = make(1.0f, 0, 1.0f, 0, 42), *b = make(1.0f, 0, 1.0f, 0, 42),
		       *c = make(1.0f, 0, 1.0f, 0, 43);
	int32_t first[200];
	int differ = 0;
	for (int i = 0; i < 200; i++) {
		first[i] = draw(a, l, 64);
		assert_int_equal(draw(b, l, 64), first[i]);
		differ += draw(c, l, 64) != first[i];
	}
	assert_true(differ > 50);
	/* Reset with the same seed replays the sequence. */
	engine_sampler_reset(a, 42);
	for (int i = 0; i < 200; i++)
		assert_int_equal(draw(a, l, 64), first[i]);
	engine_sampler_free(a);
	engine_sampler_free(b);
	engine_sampler_free(c);
}

static int cmp_desc(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

static void test_top_k(void **state)
{
	(void)state;
	float l[1000], sorted[1000];
	for (int i = 0; i < 1000; i++)
		sorted[i] = l[i] = rand_logit() * 0.1f; /* flat: without the filter, anything goes */
	qsort(sorted, 1000, sizeof *sorted, cmp_desc);
	engine_sampler *s = make(1.0f, 40, 1.0f, 0, 7);
	int seen[1000] = {0};
	for (int i = 0; i < 5000; i++) {
		int32_t t = draw(s, l, 1000);
		assert_true(l[t] >= sorted[39]);
		seen[t]++;
	}
	int distinct = 0;
	for (int i = 0; i < 1000; i++)
		distinct += seen[i] > 0;
	assert_int_equal(distinct, 40);
	engine_sampler_free(s);
	/* top_k 1 is greedy. */
	s = make(5.0f, 1, 1.0f, 0, 7);
	for (int i = 0; i < 100; i++)
		assert_true(l[draw(s, l, 1000)] == sorted[0]);
	engine_sampler_free(s);
}

static void test_top_p_and_min_p(void **state)
{
	(void)state;
	float l[] = {logf(0.05f), logf(0.5f), logf(0.15f), logf(0.3f)};
	/* top_p 0.75: 0.5 alone is not enough, 0.5 + 0.3 is: ids 1 and 3 only. */
	engine_sampler *s = make(1.0f, 0, 0.75f, 0, 3);
	int seen[4] = {0};
	for (int i = 0; i < 4000; i++)
		seen[draw(s, l, 4)]++;
	assert_int_equal(seen[0], 0);
	assert_int_equal(seen[2], 0);
	assert_true(seen[1] > 0 && seen[3] > 0);
	engine_sampler_free(s);
	/* min_p 0.35: keeps p >= 0.175, again ids 1 and 3. */
	s = make(1.0f, 0, 1.0f, 0.35f, 4);
	memset(seen, 0, sizeof seen);
	for (int i = 0; i < 4000; i++)
		seen[draw(s, l, 4)]++;
	assert_int_equal(seen[0], 0);
	assert_int_equal(seen[2], 0);
	assert_true(seen[1] > 0 && seen[3] > 0);
	/* The survivors keep their relative odds: 0.5 : 0.3. */
	assert_true(fabs((double)seen[1] / 4000 - 0.625) < 0.03);
	engine_sampler_free(s);
	/* min_p above 1 keeps only the best; top_p 0 likewise. */
	s = make(1.0f, 0, 1.0f, 7.0f, 6);
	for (int i = 0; i < 200; i++)
		assert_int_equal(draw(s, l, 4), 1);
	engine_sampler_free(s);
	s = make(1.0f, 0, 0.0f, 0, 6);
	for (int i = 0; i < 200; i++)
		assert_int_equal(draw(s, l, 4), 1);
	engine_sampler_free(s);
	/* min_p 0.2: 0.15 / 0.5 = 0.3 passes, 0.05 / 0.5 = 0.1 does not. */
	s = make(1.0f, 0, 1.0f, 0.2f, 5);
	memset(seen, 0, sizeof seen);
	for (int i = 0; i < 4000; i++)
		seen[draw(s, l, 4)]++;
	assert_int_equal(seen[0], 0);
	assert_true(seen[2] > 0);
	engine_sampler_free(s);
}

static void test_temperature_to_zero(void **state)
{
	(void)state;
	engine_sampler *cold = make(1e-6f, 0, 1.0f, 0, 11), *greedy = make(0, 0, 1.0f, 0, 11);
	float l[300];
	for (int round = 0; round < 200; round++) {
		for (int i = 0; i < 300; i++)
			l[i] = rand_logit();
		assert_int_equal(draw(cold, l, 300), draw(greedy, l, 300));
	}
	engine_sampler_free(cold);
	engine_sampler_free(greedy);
}

/* The copy-free temperature-only path draws exactly what the general path draws. */
static void test_plain_path_equals_general(void **state)
{
	(void)state;
	enum { N = 3000 };
	static float l[N];
	engine_sampler *plain = make(0.7f, 0, 1.0f, 0, 21), *general = make(0.7f, N, 1.0f, 0, 21);
	for (int round = 0; round < 300; round++) {
		for (int i = 0; i < N; i++)
			l[i] = rand_logit() * (round % 3 == 0 ? 5.0f : 0.5f);
		l[round % N] = NAN;
		l[(round * 7) % N] = -INFINITY;
		assert_int_equal(draw(plain, l, N), draw(general, l, N));
	}
	engine_sampler_free(plain);
	engine_sampler_free(general);
}

static void test_frequencies_match_softmax(void **state)
{
	(void)state;
	float l[] = {1.0f, 0.5f, 0.0f, -1.0f, -3.0f};
	float temps[] = {1.0f, 2.0f, 0.5f};
	for (int k = 0; k < 3; k++) {
		double p[5], sum = 0;
		for (int i = 0; i < 5; i++)
			sum += p[i] = exp(l[i] / temps[k]);
		engine_sampler *s = make(temps[k], 0, 1.0f, 0, 100 + (uint64_t)k);
		int seen[5] = {0};
		const int n = 50000;
		for (int i = 0; i < n; i++)
			seen[draw(s, l, 5)]++;
		for (int i = 0; i < 5; i++) {
			/* 5 standard deviations of a binomial proportion */
			double expect = p[i] / sum, sd = sqrt(expect * (1 - expect) / n);
			assert_true(fabs((double)seen[i] / n - expect) < 5 * sd + 1e-4);
		}
		engine_sampler_free(s);
	}
}

static void test_repetition_penalty(void **state)
{
	(void)state;
	engine_sampler_params p;
	engine_sampler_params_init(&p);
	p.temperature = 0;
	p.repeat_penalty = 1.5f;
	p.repeat_last_n = 2;
	engine_sampler *s;
	assert_int_equal(engine_sampler_new(&s, &p), 0);
	float pos[] = {2.0f, 1.9f, -1.0f};
	assert_int_equal(draw(s, pos, 3), 0);
	engine_sampler_accept(s, 0);
	engine_sampler_accept(s, 0); /* counted once: 2.0 / 1.5 = 1.33, not / 2.25 */
	assert_int_equal(draw(s, pos, 3), 1);
	float neg[] = {-1.0f, -1.2f, -5.0f};
	assert_int_equal(draw(s, neg, 3), 1); /* -1.0 * 1.5 = -1.5 < -1.2 */
	float close[] = {1.4f, 1.3f, 0.0f};
	assert_int_equal(draw(s, close, 3), 1); /* 1.4 / 1.5 < 1.3 */
	/* Out of the window of 2, token 0 is no longer penalised. */
	engine_sampler_accept(s, 2);
	engine_sampler_accept(s, 2);
	assert_int_equal(draw(s, pos, 3), 0);
	/* Ids outside the vocabulary are ignored. */
	engine_sampler_accept(s, 1000);
	engine_sampler_accept(s, -3);
	assert_int_equal(draw(s, pos, 3), 0);
	engine_sampler_free(s);
}

static void test_errors(void **state)
{
	(void)state;
	engine_sampler *s = make(1.0f, 0, 1.0f, 0, 1);
	float l[] = {NAN, -INFINITY};
	int32_t t;
	assert_int_equal(engine_sample(s, l, 2, &t), AG_EINVAL);
	assert_int_equal(engine_sample(s, l, 0, &t), AG_EINVAL);
	assert_int_equal(engine_sample(s, NULL, 2, &t), AG_EINVAL);
	engine_sampler_free(s);
	engine_sampler_free(NULL);
	engine_sampler_params p;
	engine_sampler_params_init(&p);
	p.repeat_penalty = 0;
	assert_int_equal(engine_sampler_new(&s, &p), AG_EINVAL);
	assert_null(s);
	engine_sampler_params_init(&p);
	p.repeat_last_n = -1;
	assert_int_equal(engine_sampler_new(&s, &p), AG_EINVAL);
	engine_sampler_params_init(&p);
	p.top_p = NAN;
	assert_int_equal(engine_sampler_new(&s, &p), AG_EINVAL);
	/* Allocation failure while growing the candidate arrays is an error, not a crash. */
	s = make(1.0f, 0, 1.0f, 0, 1);
	float big[100] = {0};
	ag_alloc_fail_after(1);
	assert_int_equal(engine_sample(s, big, 100, &t), AG_ENOMEM);
	ag_alloc_fail_after(0);
	assert_int_equal(engine_sample(s, big, 100, &t), 0);
	engine_sampler_free(s);
}

int main(void)
{
	ag_alloc_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greedy),
		cmocka_unit_test(test_seed_determinism),
		cmocka_unit_test(test_top_k),
		cmocka_unit_test(test_top_p_and_min_p),
		cmocka_unit_test(test_temperature_to_zero),
		cmocka_unit_test(test_plain_path_equals_general),
		cmocka_unit_test(test_frequencies_match_softmax),
		cmocka_unit_test(test_repetition_penalty),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
