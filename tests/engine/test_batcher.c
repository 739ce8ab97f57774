/*
 * The batcher: threads decoding their own sequences get exactly the logits
 * each would get alone, steps really are merged into shared passes, a bad
 * step fails only its own caller, and a sequence that leaves early does not
 * hold the others up.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h"

enum { NTHREAD = 8, STEPS = 24 };

static engine_model *model;
static engine_batcher *batcher;
static uint32_t n_vocab;

typedef struct worker {
	int id;
	int steps;
	pthread_barrier_t *start;
	float *logits; /* (steps, n_vocab) */
	int rc;
} worker;

static int32_t next_token(int id, int step, const float *logits)
{
	/* greedy on the logits, nudged by the worker id so the sequences differ */
	uint32_t best = 0;
	for (uint32_t v = 1; v < n_vocab; v++)
		best = logits[v] > logits[best] ? v : best;
	return (int32_t)((best + (uint32_t)id * 7 + (uint32_t)step) % n_vocab);
}

static void *run(void *arg)
{
	worker *w = arg;
	engine_state *s;
	w->rc = engine_state_new(&s, model);
	if (w->rc)
		return NULL;
	pthread_barrier_wait(w->start);
	engine_batcher_join(batcher);
	int32_t tok = (int32_t)(w->id + 5);
	for (int i = 0; i < w->steps && !w->rc; i++) {
		float *l = w->logits + (size_t)i * n_vocab;
		w->rc = engine_batcher_decode(batcher, s, tok, l);
		tok = next_token(w->id, i, l);
	}
	engine_batcher_leave(batcher);
	engine_state_free(s);
	return NULL;
}

static void test_threads_match_alone_and_share_passes(void **state)
{
	(void)state;
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, NTHREAD);
	worker w[NTHREAD];
	pthread_t th[NTHREAD];
	for (int i = 0; i < NTHREAD; i++) {
		/* one sequence stops early: the others must not wait on it */
		w[i] = (worker){.id = i, .steps = i == 3 ? 5 : STEPS, .start = &start};
		w[i].logits = malloc((size_t)STEPS * n_vocab * sizeof(float));
		pthread_create(&th[i], NULL, run, &w[i]);
	}
	for (int i = 0; i < NTHREAD; i++)
		pthread_join(th[i], NULL);
	uint64_t passes, steps;
	engine_batcher_stats(batcher, &passes, &steps);
	print_message("%llu steps in %llu passes\n", (unsigned long long)steps, (unsigned long long)passes);
	assert_int_equal(steps, (NTHREAD - 1) * STEPS + 5);
	assert_true(passes < steps); /* steps were merged */
	/* each sequence again, alone and in order: the same bits */
	float *l = malloc(n_vocab * sizeof(float));
	for (int i = 0; i < NTHREAD; i++) {
		assert_int_equal(w[i].rc, 0);
		engine_state *s;
		assert_int_equal(engine_state_new(&s, model), 0);
		int32_t tok = (int32_t)(i + 5);
		for (int k = 0; k < w[i].steps; k++) {
			assert_int_equal(engine_decode(model, s, tok, l), 0);
			if (memcmp(l, w[i].logits + (size_t)k * n_vocab, n_vocab * sizeof(float)))
				fail_msg("thread %d step %d: batched logits differ from alone", i, k);
			tok = next_token(i, k, l);
		}
		engine_state_free(s);
		free(w[i].logits);
	}
	free(l);
	pthread_barrier_destroy(&start);
}

static void test_bad_step_fails_alone(void **state)
{
	(void)state;
	engine_state *s;
	assert_int_equal(engine_state_new(&s, model), 0);
	float *l = malloc(n_vocab * sizeof(float));
	assert_int_equal(engine_batcher_decode(batcher, s, -3, l), AG_EINVAL);
	assert_non_null(strstr(ag_error_last(), "outside the vocabulary"));
	assert_int_equal(engine_state_n_tokens(s), 0);
	assert_int_equal(engine_batcher_decode(batcher, s, 9, l), 0);
	assert_int_equal(engine_state_n_tokens(s), 1);
	free(l);
	engine_state_free(s);
	engine_batcher *b;
	assert_int_equal(engine_batcher_new(&b, model, 0), AG_EINVAL);
}

int main(void)
{
	ag_alloc_init();
	const char *d = getenv("TEST_TMPDIR");
	char path[512];
	snprintf(path, sizeof path, "%s/batcher.gguf", d && *d ? d : "/tmp");
	engine_jamba_random p;
	engine_jamba_random_init(&p);
	p.seed = 400;
	p.weight_type = ENGINE_TYPE_Q8_0;
	if (engine_jamba_random_write(&p, path) || engine_model_load(&model, path) ||
	    engine_set_threads(model, 2) || engine_batcher_new(&batcher, model, 16)) {
		fprintf(stderr, "setup: %s\n", ag_error_last());
		return 1;
	}
	n_vocab = engine_model_config(model)->n_vocab;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads_match_alone_and_share_passes),
		cmocka_unit_test(test_bad_step_fails_alone),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	engine_batcher_free(batcher);
	engine_model_free(model);
	return rc;
}
