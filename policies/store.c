/*
 * The policy in force and where it comes from: a mutex-guarded pointer that
 * readers take a reference to (so a reload never pulls a policy from under a
 * running step), reloading that keeps the old policy on any error, and the
 * record of installed policies in SQLite so a policy replaced through the API
 * survives a restart.
 */
#include "policies/internal.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define POL_KEEP_VERSIONS 50

struct policies_store {
	pthread_mutex_t mu;
	policies_policy *cur;
};

int policies_store_new(policies_store **out, policies_policy *initial)
{
	if (!initial)
		return ag_error_set(AG_EINVAL, "a policy store needs a policy");
	policies_store *s = ag_calloc(1, sizeof *s);
	if (!s)
		return ag_error_set(AG_ENOMEM, "out of memory creating the policy store");
	pthread_mutex_init(&s->mu, NULL);
	s->cur = initial;
	*out = s;
	return 0;
}

void policies_store_free(policies_store *s)
{
	if (!s)
		return;
	policies_release(s->cur);
	pthread_mutex_destroy(&s->mu);
	ag_free(s);
}

policies_policy *policies_acquire(policies_store *s)
{
	pthread_mutex_lock(&s->mu);
	policies_policy *p = policies_ref(s->cur);
	pthread_mutex_unlock(&s->mu);
	return p;
}

void policies_store_swap(policies_store *s, policies_policy *p)
{
	pthread_mutex_lock(&s->mu);
	policies_policy *old = s->cur;
	s->cur = p;
	pthread_mutex_unlock(&s->mu);
	/* Outside the lock: freeing compiled patterns is not free, and readers may hold it anyway. */
	policies_release(old);
}

int policies_load_file(policies_policy **out, policies_diag **diag_out, const char *path)
{
	*out = NULL;
	if (diag_out)
		*diag_out = NULL;
	char *text;
	size_t len;
	int rc = ag_read_file(path, POL_MAX_TEXT, &text, &len);
	if (rc)
		return ag_error_wrap(rc, "policy file %s", path);
	rc = policies_parse(out, diag_out, text, len, path);
	ag_free(text);
	return rc;
}

int policies_load_default(policies_policy **out)
{
	const char *t = policies_default_text();
	return policies_parse(out, NULL, t, strlen(t), "default");
}

int policies_reload(policies_store *s, const char *path, policies_diag **diag_out)
{
	policies_policy *p;
	int rc = path && *path ? policies_load_file(&p, diag_out, path) : policies_load_default(&p);
	if (rc) {
		ag_warn("policy reload refused, the old policy stays in force: %s", ag_error_last());
		return rc;
	}
	policies_store_swap(s, p);
	ag_info("policy reloaded from %s (sha256 %.16s)", p->name, p->sha256);
	return 0;
}

/* ------------------------------------------------------------ persistence */

static const char *const migrations[] = {
	"CREATE TABLE policy_versions ("
	"  id INTEGER PRIMARY KEY,"
	"  installed_ms INTEGER NOT NULL,"
	"  origin TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  sha256 TEXT NOT NULL,"
	"  text TEXT NOT NULL)",
};

int policies_migrate(sqlite3 *db)
{
	static const ag_migration_set set = {"policies", migrations,
					     sizeof migrations / sizeof migrations[0]};
	return ag_db_migrate(db, &set);
}

int policies_save(sqlite3 *db, const policies_policy *p, const char *origin)
{
	int rc = ag_db_begin(db);
	if (rc)
		return rc;
	sqlite3_stmt *st;
	if ((rc = ag_db_prepare(db, &st,
				"INSERT INTO policy_versions (installed_ms, origin, name, sha256, text) "
				"VALUES (?, ?, ?, ?, ?)")))
		goto fail;
	sqlite3_bind_int64(st, 1, ag_now_ms());
	ag_db_bind_text(st, 2, origin);
	ag_db_bind_text(st, 3, p->name);
	ag_db_bind_text(st, 4, p->sha256);
	sqlite3_bind_text(st, 5, p->text, (int)p->text_len, SQLITE_STATIC);
	int s = sqlite3_step(st);
	sqlite3_finalize(st);
	if (s != SQLITE_DONE) {
		rc = ag_db_error(db, s, "recording the policy");
		goto fail;
	}
	/* History for people, not an archive: keep the last POL_KEEP_VERSIONS installs. */
	if ((rc = ag_db_prepare(
		     db, &st,
		     "DELETE FROM policy_versions WHERE id <= (SELECT MAX(id) FROM policy_versions) - ?")))
		goto fail;
	sqlite3_bind_int(st, 1, POL_KEEP_VERSIONS);
	s = sqlite3_step(st);
	sqlite3_finalize(st);
	if (s != SQLITE_DONE) {
		rc = ag_db_error(db, s, "pruning recorded policies");
		goto fail;
	}
	return ag_db_commit(db);
fail:
	ag_db_rollback(db);
	return rc;
}

int policies_load_latest(sqlite3 *db, policies_policy **out, int64_t *installed_ms)
{
	*out = NULL;
	sqlite3_stmt *st;
	int rc = ag_db_prepare(
		db, &st, "SELECT installed_ms, name, text FROM policy_versions ORDER BY id DESC LIMIT 1");
	if (rc)
		return rc;
	int s = sqlite3_step(st);
	if (s == SQLITE_DONE) {
		sqlite3_finalize(st);
		return ag_error_set(AG_ENOTFOUND, "no policy was recorded");
	}
	if (s != SQLITE_ROW) {
		rc = ag_db_error(db, s, "reading the recorded policy");
		sqlite3_finalize(st);
		return rc;
	}
	if (installed_ms)
		*installed_ms = sqlite3_column_int64(st, 0);
	const char *name = (const char *)sqlite3_column_text(st, 1);
	const char *text = (const char *)sqlite3_column_text(st, 2);
	int len = sqlite3_column_bytes(st, 2);
	rc = policies_parse(out, NULL, text ? text : "", (size_t)len, name ? name : "stored");
	if (rc)
		rc = ag_error_wrap(AG_ECORRUPT, "the recorded policy no longer loads");
	sqlite3_finalize(st);
	return rc;
}

int policies_open(policies_policy **out, sqlite3 *db, const char *path)
{
	*out = NULL;
	int64_t stored_ms = 0;
	policies_policy *stored = NULL;
	int rc = db ? policies_load_latest(db, &stored, &stored_ms) : AG_ENOTFOUND;
	if (rc && rc != AG_ENOTFOUND)
		return rc;
	if (path && *path) {
		struct stat sb;
		if (stat(path, &sb) != 0) {
			policies_release(stored);
			return ag_error_set(AG_EIO, "policy file %s: cannot be read", path);
		}
		int64_t mtime_ms = (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
		if (!stored || mtime_ms > stored_ms) {
			/* The file was edited after the last recorded install: it wins. */
			policies_release(stored);
			return policies_load_file(out, NULL, path);
		}
	}
	if (stored) {
		*out = stored;
		return 0;
	}
	return policies_load_default(out);
}
