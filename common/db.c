/*
 * SQLite helpers: every database agentd writes is opened in WAL mode with
 * synchronous=FULL, so a committed transaction survives power loss. Each
 * module owns its tables and brings them up to date through numbered
 * migrations recorded in schema_migrations.
 */
#include "common.h"

#include <string.h>

#define AG_DB_BUSY_MS 10000

int ag_db_error(sqlite3 *db, int rc, const char *what)
{
	int prim = rc & 0xff;
	int code = AG_ERR;
	switch (prim) {
	case SQLITE_NOMEM: code = AG_ENOMEM; break;
	case SQLITE_BUSY:
	case SQLITE_LOCKED: code = AG_EBUSY; break;
	case SQLITE_CONSTRAINT: code = AG_ECONFLICT; break;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB: code = AG_ECORRUPT; break;
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
	case SQLITE_FULL:
	case SQLITE_READONLY: code = AG_EIO; break;
	case SQLITE_TOOBIG: code = AG_ELIMIT; break;
	default: break;
	}
	return ag_error_set(code, "%s: %s", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static int open_db(sqlite3 **out, const char *path, int flags)
{
	sqlite3 *db = NULL;
	*out = NULL;
	int rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = ag_db_error(db, rc, "opening database");
		ag_error_wrap(rc, "%s", path);
		sqlite3_close(db);
		return rc;
	}
	sqlite3_busy_timeout(db, AG_DB_BUSY_MS);
	sqlite3_extended_result_codes(db, 1);
	*out = db;
	return 0;
}

int ag_db_open(sqlite3 **out, const char *path)
{
	sqlite3 *db;
	int rc = open_db(&db, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	if (rc)
		return rc;
	rc = ag_db_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
	if (rc) {
		sqlite3_close(db);
		return rc;
	}
	*out = db;
	return 0;
}

int ag_db_open_readonly(sqlite3 **out, const char *path) { return open_db(out, path, SQLITE_OPEN_READONLY); }

void ag_db_close(sqlite3 *db)
{
	if (db)
		sqlite3_close_v2(db);
}

int ag_db_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		int code = ag_db_error(db, rc, "SQL");
		if (msg)
			ag_error_set(code, "SQL: %s", msg);
		sqlite3_free(msg);
		return code;
	}
	return 0;
}

int ag_db_prepare(sqlite3 *db, sqlite3_stmt **out, const char *sql)
{
	int rc = sqlite3_prepare_v2(db, sql, -1, out, NULL);
	if (rc != SQLITE_OK) {
		*out = NULL;
		return ag_db_error(db, rc, "preparing SQL");
	}
	return 0;
}

int ag_db_begin(sqlite3 *db) { return ag_db_exec(db, "BEGIN IMMEDIATE"); }
int ag_db_commit(sqlite3 *db) { return ag_db_exec(db, "COMMIT"); }

void ag_db_rollback(sqlite3 *db)
{
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

int ag_db_bind_text(sqlite3_stmt *st, int idx, const char *s)
{
	int rc = s ? sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, idx);
	if (rc != SQLITE_OK)
		return ag_db_error(sqlite3_db_handle(st), rc, "binding a value");
	return 0;
}

char *ag_db_column_strdup(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	return ag_strdup(t ? (const char *)t : "");
}

int ag_db_schema_version(sqlite3 *db, const char *module, int *out)
{
	sqlite3_stmt *st;
	*out = 0;
	int rc = ag_db_exec(db, "CREATE TABLE IF NOT EXISTS schema_migrations ("
				"module TEXT NOT NULL, version INTEGER NOT NULL, applied_at INTEGER NOT NULL,"
				"PRIMARY KEY (module, version))");
	if (rc)
		return rc;
	rc = ag_db_prepare(db, &st,
			   "SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE module = ?");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, module, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int(st, 0);
		rc = 0;
	} else {
		rc = ag_db_error(db, rc, "reading schema version");
	}
	sqlite3_finalize(st);
	return rc;
}

int ag_db_migrate(sqlite3 *db, const ag_migration_set *set)
{
	int have;
	int rc = ag_db_schema_version(db, set->module, &have);
	if (rc)
		return rc;
	if (have > set->count)
		return ag_error_set(
			AG_ECORRUPT,
			"database schema of '%s' is version %d, newer than this agentd knows (%d)",
			set->module, have, set->count);
	for (int v = have + 1; v <= set->count; v++) {
		if ((rc = ag_db_begin(db)))
			return rc;
		rc = ag_db_exec(db, set->sql[v - 1]);
		if (!rc) {
			sqlite3_stmt *st;
			rc = ag_db_prepare(db, &st,
					   "INSERT INTO schema_migrations(module, version, applied_at) "
					   "VALUES (?, ?, ?)");
			if (!rc) {
				sqlite3_bind_text(st, 1, set->module, -1, SQLITE_STATIC);
				sqlite3_bind_int(st, 2, v);
				sqlite3_bind_int64(st, 3, ag_now_ms());
				int s = sqlite3_step(st);
				if (s != SQLITE_DONE)
					rc = ag_db_error(db, s, "recording a migration");
				sqlite3_finalize(st);
			}
		}
		if (!rc)
			rc = ag_db_commit(db);
		if (rc) {
			ag_db_rollback(db);
			return ag_error_wrap(rc, "migration %d of '%s'", v, set->module);
		}
	}
	return 0;
}
