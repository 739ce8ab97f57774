/*
 * Serving many sequences at once: each request's thread decodes its own
 * sequence through engine_batcher_decode, and steps that arrive together are
 * merged into one engine_decode_batch pass, so N concurrent users share each
 * pass over the weights instead of queueing N passes.
 *
 * No scheduler thread: the first waiting caller that finds no pass running
 * becomes the leader, gives the other joined sequences a moment to queue
 * their next token (they are sampling the last one), runs the pass for
 * everyone queued, hands out the logits and wakes them. A sequence gets the
 * same logits it would get alone (engine_decode_batch guarantees it), so
 * seeded generations do not depend on who else is being served.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "engine/core_internal.h"

#define GATHER_NS 2000000 /* longest wait for joined sequences to queue a step */

typedef struct step {
	engine_state *s;
	int32_t token;
	float *logits;
	int rc;
	bool done;
	char err[256];
	struct step *next;
} step;

struct engine_batcher {
	engine_model *m;
	size_t max_batch;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool running;
	size_t active; /* joined sequences */
	step *head, *tail;
	size_t n_pending;
	float *logits; /* (max_batch, n_vocab) */
	engine_state **states;
	int32_t *tokens;
	step **taken;
	uint64_t passes, steps;
};

int engine_batcher_new(engine_batcher **out, engine_model *m, size_t max_batch)
{
	*out = NULL;
	if (max_batch < 1 || max_batch > 256)
		return ag_error_set(AG_EINVAL, "batcher: batch size must be between 1 and 256, not %zu",
				    max_batch);
	engine_batcher *b = ag_calloc(1, sizeof(*b));
	if (!b)
		return ag_error_set(AG_ENOMEM, "batcher: out of memory");
	b->m = m;
	b->max_batch = max_batch;
	b->logits = ag_malloc(max_batch * m->cfg.n_vocab * sizeof(float));
	b->states = ag_malloc(max_batch * sizeof(*b->states));
	b->tokens = ag_malloc(max_batch * sizeof(*b->tokens));
	b->taken = ag_malloc(max_batch * sizeof(*b->taken));
	if (!b->logits || !b->states || !b->tokens || !b->taken) {
		ag_free(b->logits);
		ag_free(b->states);
		ag_free(b->tokens);
		ag_free(b->taken);
		ag_free(b);
		return ag_error_set(AG_ENOMEM, "batcher: out of memory");
	}
	pthread_mutex_init(&b->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cv, &ca);
	pthread_condattr_destroy(&ca);
	*out = b;
	return 0;
}

void engine_batcher_free(engine_batcher *b)
{
	if (!b)
		return;
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
	ag_free(b->logits);
	ag_free(b->states);
	ag_free(b->tokens);
	ag_free(b->taken);
	ag_free(b);
}

void engine_batcher_join(engine_batcher *b)
{
	pthread_mutex_lock(&b->mu);
	b->active++;
	pthread_mutex_unlock(&b->mu);
}

void engine_batcher_leave(engine_batcher *b)
{
	pthread_mutex_lock(&b->mu);
	if (b->active)
		b->active--;
	pthread_cond_broadcast(&b->cv); /* a leader may be waiting for this one */
	pthread_mutex_unlock(&b->mu);
}

void engine_batcher_stats(engine_batcher *b, uint64_t *passes, uint64_t *steps)
{
	pthread_mutex_lock(&b->mu);
	*passes = b->passes;
	*steps = b->steps;
	pthread_mutex_unlock(&b->mu);
}

/* Runs one pass for the queued steps (called with mu held, returns with it held). */
static void lead(engine_batcher *b)
{
	b->running = true;
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += GATHER_NS;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (b->n_pending < b->active && b->n_pending < b->max_batch)
		if (pthread_cond_timedwait(&b->cv, &b->mu, &until) == ETIMEDOUT)
			break;
	size_t n = 0;
	while (b->head && n < b->max_batch) {
		step *s = b->head;
		b->head = s->next;
		b->taken[n] = s;
		b->states[n] = s->s;
		b->tokens[n++] = s->token;
	}
	if (!b->head)
		b->tail = NULL;
	b->n_pending -= n;
	pthread_mutex_unlock(&b->mu);

	size_t V = b->m->cfg.n_vocab;
	int rc = engine_decode_batch(b->m, b->states, b->tokens, n, b->logits);
	if (rc == AG_EINVAL) {
		/* one bad step (a token out of range, a state queued twice) must not fail the
		 * others: run them one by one so each gets its own answer */
		for (size_t i = 0; i < n; i++) {
			step *s = b->taken[i];
			s->rc = engine_decode(b->m, s->s, s->token, s->logits);
			if (s->rc)
				snprintf(s->err, sizeof s->err, "%s", ag_error_last());
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			step *s = b->taken[i];
			s->rc = rc;
			if (rc)
				snprintf(s->err, sizeof s->err, "%s", ag_error_last());
			else if (s->logits)
				memcpy(s->logits, b->logits + i * V, V * sizeof(float));
		}
	}

	pthread_mutex_lock(&b->mu);
	for (size_t i = 0; i < n; i++)
		b->taken[i]->done = true;
	b->passes++;
	b->steps += n;
	b->running = false;
	pthread_cond_broadcast(&b->cv);
}

int engine_batcher_decode(engine_batcher *b, engine_state *s, int32_t token, float *logits)
{
	/* The step lives on this stack: it leaves the queue (taken by a leader) before
	 * it is marked done, and this function returns only once it is done. */
	step me = {.s = s, .token = token, .logits = logits};
	pthread_mutex_lock(&b->mu);
	if (b->tail)
		b->tail->next = &me;
	else
		// cppcheck-suppress autoVariables
		b->head = &me;
	// cppcheck-suppress autoVariables
	b->tail = &me;
	b->n_pending++;
	pthread_cond_broadcast(&b->cv); /* a gathering leader counts this one */
	while (!me.done) {
		if (!b->running)
			lead(b);
		else
			pthread_cond_wait(&b->cv, &b->mu);
	}
	pthread_mutex_unlock(&b->mu);
	if (me.rc)
		return ag_error_set(me.rc, "%s", me.err);
	return 0;
}
