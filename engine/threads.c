/*
 * A persistent thread pool for the fast forward pass: n-1 workers wait on a
 * condition variable for a generation counter to move, run their share of the
 * job, and the caller (share 0) waits until every share is done. Matrix rows
 * are split over the shares by the callers, so the pool itself knows nothing
 * of tensors. One job at a time (a mutex serialises callers).
 */
#include "engine/core_internal.h"

struct engine_pool {
	int n;
	pthread_t *threads;
	pthread_mutex_t run_lock; /* one job at a time */
	pthread_mutex_t mu;
	pthread_cond_t start, done;
	uint64_t generation;
	int pending;
	bool stop;
	engine_pool_fn fn;
	void *ctx;
};

typedef struct worker_arg {
	engine_pool *p;
	int index;
} worker_arg;

static void *worker(void *arg)
{
	worker_arg wa = *(worker_arg *)arg;
	ag_free(arg);
	engine_pool *p = wa.p;
	uint64_t seen = 0;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && p->generation == seen)
			pthread_cond_wait(&p->start, &p->mu);
		if (p->stop)
			break;
		seen = p->generation;
		engine_pool_fn fn = p->fn;
		void *ctx = p->ctx;
		pthread_mutex_unlock(&p->mu);
		fn(ctx, wa.index, p->n);
		pthread_mutex_lock(&p->mu);
		if (--p->pending == 0)
			pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
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
	p->stop = true;
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
	pthread_mutex_lock(&p->mu);
	p->fn = fn;
	p->ctx = ctx;
	p->pending = p->n - 1;
	p->generation++;
	pthread_cond_broadcast(&p->start);
	pthread_mutex_unlock(&p->mu);
	fn(ctx, 0, p->n);
	pthread_mutex_lock(&p->mu);
	while (p->pending > 0)
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
	pthread_mutex_unlock(&p->run_lock);
}
