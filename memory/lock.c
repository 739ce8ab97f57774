/*
 * Per-user locks inside one daemon: a run of a user holds its lock from
 * restoring the memory until committing it, so a second request of the same
 * user waits instead of racing. Entries are reference-counted and removed
 * when nobody holds or waits for them, so the table stays small.
 */
#include "memory/memory.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef struct user_lock {
	struct user_lock *next;
	char *name;
	int refs; /* holders and waiters */
	bool held;
	pthread_cond_t cond;
} user_lock;

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static user_lock *table;

static char *lock_name(const char *tenant, const char *user)
{
	size_t n = strlen(tenant) + strlen(user) + 2;
	char *s = ag_malloc(n);
	if (s)
		snprintf(s, n, "%s\x1f%s", tenant, user);
	return s;
}

int memory_user_lock(const char *tenant, const char *user)
{
	char *name = lock_name(tenant, user);
	if (!name)
		return ag_error_set(AG_ENOMEM, "out of memory taking a user lock");
	pthread_mutex_lock(&table_lock);
	user_lock *l = table;
	while (l && strcmp(l->name, name) != 0)
		l = l->next;
	if (!l) {
		l = ag_calloc(1, sizeof *l);
		if (!l) {
			pthread_mutex_unlock(&table_lock);
			ag_free(name);
			return ag_error_set(AG_ENOMEM, "out of memory taking a user lock");
		}
		l->name = name;
		name = NULL;
		pthread_cond_init(&l->cond, NULL);
		l->next = table;
		table = l;
	}
	l->refs++;
	while (l->held)
		pthread_cond_wait(&l->cond, &table_lock);
	l->held = true;
	pthread_mutex_unlock(&table_lock);
	ag_free(name);
	return 0;
}

void memory_user_unlock(const char *tenant, const char *user)
{
	char *name = lock_name(tenant, user);
	pthread_mutex_lock(&table_lock);
	user_lock **pp = &table;
	while (*pp && (!name || strcmp((*pp)->name, name) != 0))
		pp = &(*pp)->next;
	user_lock *l = *pp;
	if (l) {
		l->held = false;
		if (--l->refs == 0) {
			*pp = l->next;
			pthread_cond_destroy(&l->cond);
			ag_free(l->name);
			ag_free(l);
		} else {
			pthread_cond_signal(&l->cond);
		}
	}
	pthread_mutex_unlock(&table_lock);
	ag_free(name);
}
