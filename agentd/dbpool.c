/*
 * A pool of SQLite connections to the daemon's database. SQLite connections
 * must not be used by two threads at once; each request borrows one for its
 * lifetime, and idle ones are kept for reuse so requests do not pay for
 * opening the file and re-reading the schema.
 */
#include "agentd/daemon.h"

struct agentd_dbpool {
	pthread_mutex_t lock;
	char *path;
	sqlite3 **idle;
	int nidle;
	int max_idle;
};

int agentd_dbpool_new(agentd_dbpool **out, const char *path, int max_idle)
{
	agentd_dbpool *p = ag_calloc(1, sizeof *p);
	if (!p)
		return ag_error_set(AG_ENOMEM, "out of memory creating the database pool");
	p->path = ag_strdup(path);
	p->idle = ag_calloc((size_t)max_idle, sizeof *p->idle);
	if (!p->path || !p->idle) {
		ag_free(p->path);
		ag_free(p->idle);
		ag_free(p);
		return ag_error_set(AG_ENOMEM, "out of memory creating the database pool");
	}
	p->max_idle = max_idle;
	pthread_mutex_init(&p->lock, NULL);
	*out = p;
	return 0;
}

int agentd_dbpool_acquire(agentd_dbpool *p, sqlite3 **out)
{
	pthread_mutex_lock(&p->lock);
	if (p->nidle > 0) {
		*out = p->idle[--p->nidle];
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	pthread_mutex_unlock(&p->lock);
	return ag_db_open(out, p->path);
}

void agentd_dbpool_release(agentd_dbpool *p, sqlite3 *db)
{
	if (!db)
		return;
	ag_db_rollback(db);
	pthread_mutex_lock(&p->lock);
	if (p->nidle < p->max_idle) {
		p->idle[p->nidle++] = db;
		db = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	ag_db_close(db);
}

void agentd_dbpool_free(agentd_dbpool *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->nidle; i++)
		ag_db_close(p->idle[i]);
	pthread_mutex_destroy(&p->lock);
	ag_free(p->idle);
	ag_free(p->path);
	ag_free(p);
}
