/*
 * A persistent thread pool for the fast forward pass: n-1 workers wait for a
 * generation counter to move, run their share of the job, and the caller
 * (share 0) waits until every share is done. Matrix rows are split over the
 * shares by the callers, so the pool itself knows nothing of tensors. One job
 * at a time (a mutex serialises callers).
 *
 * A decoded token is some sixty jobs. Waking a sleeping thread through a
 * futex costs tens of microseconds in this VM (perf: ~5% of a decode step in
 * the kernel's IRQ paths), during which the other core's share waits; so
 * both sides first spin a little (SPIN rounds of PAUSE, well under a
 * millisecond) and only then sleep on the condition variables. Between the
 * jobs of one pass nobody sleeps; between requests everyone does.
 */
#include <stdatomic.h>

#include "engine/core_internal.h"

#define SPIN 20000

struct engine_pool {
	int n;
	pthread_t *threads;
	pthread_mutex_t run_lock; /* one job at a time */
	pthread_mutex_t mu;       /* only for sleeping and waking */
	pthread_cond_t start, done;
	_Atomic uint64_t generation;
	_Atomic int pending;
	_Atomic int sleepers;       /* workers asleep on start, or about to be */
	_Atomic bool caller_asleep; /* the caller asleep on done, or about to be */
	_Atomic bool stop;
	engine_pool_fn fn;
	void *ctx;
};

typedef struct worker_arg {
	engine_pool *p;
	int index;
} worker_arg;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Waits for the generation to move past seen (or for stop). The sleeper
 * count and the generation are both sequentially consistent, so either the
 * caller sees this worker counted and wakes it under mu, or the worker sees
 * the new generation before it sleeps. */
static uint64_t wait_job(engine_pool *p, uint64_t seen)
{
	for (int i = 0; i < SPIN; i++) {
		uint64_t g = atomic_load(&p->generation);
		if (g != seen || atomic_load(&p->stop))
			return g;
		cpu_relax();
	}
	pthread_mutex_lock(&p->mu);
	atomic_fetch_add(&p->sleepers, 1);
	while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop))
		pthread_cond_wait(&p->start, &p->mu);
	atomic_fetch_sub(&p->sleepers, 1);
	pthread_mutex_unlock(&p->mu);
	return atomic_load(&p->generation);
}

static void *worker(void *arg)
{
	worker_arg wa = *(worker_arg *)arg;
	ag_free(arg);
	engine_pool *p = wa.p;
	uint64_t seen = 0;
	for (;;) {
		seen = wait_job(p, seen);
		if (atomic_load(&p->stop))
			break;
		/* fn and ctx were written before the generation moved */
		p->fn(p->ctx, wa.index, p->n);
		if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_asleep)) {
			pthread_mutex_lock(&p->mu);
			pthread_cond_signal(&p->done);
			pthread_mutex_unlock(&p->mu);
		}
	}
	return NULL;
}

int engine_pool_new(engine_pool **out, int n_threads)
{
	*out = NULL;
	if (n_threads < 1 || n_threads > 64)
		return ag_error_set(AG_EINVAL, "threads must be between 1 and 64, not %d", n_threads);
	engine_pool *p = ag_calloc(1, sizeof(*p));
	if (!p)
		return ag_error_set(AG_ENOMEM, "out of memory");
	p->n = n_threads;
	atomic_init(&p->generation, 0);
	atomic_init(&p->pending, 0);
	atomic_init(&p->sleepers, 0);
	atomic_init(&p->caller_asleep, false);
	atomic_init(&p->stop, false);
	pthread_mutex_init(&p->run_lock, NULL);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->start, NULL);
	pthread_cond_init(&p->done, NULL);
	p->threads = ag_calloc((size_t)n_threads, sizeof(pthread_t));
	if (!p->threads) {
		engine_pool_free(p);
		return ag_error_set(AG_ENOMEM, "out of memory");
	}
	for (int i = 1; i < n_threads; i++) {
		worker_arg *wa = ag_malloc(sizeof(*wa));
		if (!wa) {
			p->n = i;
			engine_pool_free(p);
			return ag_error_set(AG_ENOMEM, "out of memory");
		}
		wa->p = p;
		wa->index = i;
		if (pthread_create(&p->threads[i], NULL, worker, wa)) {
			ag_free(wa);
			p->n = i;
			engine_pool_free(p);
			return ag_error_set(AG_ERR, "cannot start a worker thread");
		}
	}
	*out = p;
	return 0;
}

void engine_pool_free(engine_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	atomic_store(&p->stop, true);
	pthread_cond_broadcast(&p->start);
	pthread_mutex_unlock(&p->mu);
	for (int i = 1; p->threads && i < p->n; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->run_lock);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->start);
	pthread_cond_destroy(&p->done);
	ag_free(p->threads);
	ag_free(p);
}

int engine_pool_size(const engine_pool *p) { return p ? p->n : 1; }

void engine_pool_run(engine_pool *p, engine_pool_fn fn, void *ctx)
{
	if (!p || p->n == 1) {
		fn(ctx, 0, 1);
		return;
	}
	pthread_mutex_lock(&p->run_lock);
	p->fn = fn;
	p->ctx = ctx;
	atomic_store(&p->pending, p->n - 1);
	atomic_fetch_add(&p->generation, 1);
	if (atomic_load(&p->sleepers) > 0) {
		pthread_mutex_lock(&p->mu);
		pthread_cond_broadcast(&p->start);
		pthread_mutex_unlock(&p->mu);
	}
	fn(ctx, 0, p->n);
	for (int i = 0; i < SPIN && atomic_load(&p->pending) > 0; i++)
		cpu_relax();
	if (atomic_load(&p->pending) > 0) {
		pthread_mutex_lock(&p->mu);
		atomic_store(&p->caller_asleep, true);
		while (atomic_load(&p->pending) > 0)
			pthread_cond_wait(&p->done, &p->mu);
		atomic_store(&p->caller_asleep, false);
		pthread_mutex_unlock(&p->mu);
	}
	pthread_mutex_unlock(&p->run_lock);
}
