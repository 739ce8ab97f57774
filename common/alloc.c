/*
 * The allocation gate. Every heap allocation in agentd passes here so that
 * tests can make a chosen allocation fail, process-wide or on one thread,
 * and check that the caller reports an error instead of crashing.
 */
#include "common.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long global_countdown;
static _Thread_local long thread_countdown;
static _Thread_local long thread_count;
static _Thread_local long thread_failures;

static bool should_fail(void)
{
	thread_count++;
	if (thread_countdown > 0 && --thread_countdown == 0) {
		thread_failures++;
		return true;
	}
	long c = atomic_load_explicit(&global_countdown, memory_order_relaxed);
	while (c > 0) {
		if (atomic_compare_exchange_weak(&global_countdown, &c, c - 1)) {
			if (c == 1)
				thread_failures++;
			return c == 1;
		}
	}
	return false;
}

static void *note_failure(void *p)
{
	if (!p)
		thread_failures++;
	return p;
}

void ag_alloc_fail_after(long n) { atomic_store(&global_countdown, n > 0 ? n : 0); }
void ag_alloc_thread_fail_after(long n) { thread_countdown = n > 0 ? n : 0; }
long ag_alloc_thread_count(void) { return thread_count; }
long ag_alloc_thread_failures(void) { return thread_failures; }

void *ag_malloc(size_t n)
{
	if (should_fail())
		return NULL;
	return note_failure(malloc(n ? n : 1));
}

void *ag_calloc(size_t count, size_t size)
{
	if (should_fail())
		return NULL;
	return note_failure(calloc(count ? count : 1, size ? size : 1));
}

void *ag_realloc(void *p, size_t n)
{
	if (should_fail())
		return NULL;
	return note_failure(realloc(p, n ? n : 1));
}

void ag_free(void *p) { free(p); }

char *ag_strndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *d = ag_malloc(len + 1);
	if (!d)
		return NULL;
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

char *ag_strdup(const char *s) { return ag_strndup(s, strlen(s)); }

void ag_alloc_init(void) { json_set_alloc_funcs(ag_malloc, ag_free); }
