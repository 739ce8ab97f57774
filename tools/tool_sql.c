/*
 * The sql tool: one read-only query against an SQLite database an admin
 * attached (PUT /v1/tools/settings). The parent resolves the name to a path
 * and grants only that file; the child opens it with SQLITE_OPEN_READONLY,
 * turns off extension loading and triggers/views' side doors, and installs
 * an authorizer that allows reading and nothing else (no PRAGMA, ATTACH,
 * writes or schema changes). A progress handler enforces a time limit and a
 * row limit bounds the answer.
 *
 * WAL databases: a reader writes its read marks into the -shm index, so that
 * one file (never the database or its WAL) is granted for writing; when the
 * writer has gone and left no WAL behind, the file is read as immutable.
 * SQLite keeps per-process lock state that a forked child inherits, so the
 * daemon itself must not hold an attached database open (it never does; a
 * test that writes one does so from another process).
 */
#include "tools/tools_int.h"

#include <string.h>
#include <unistd.h>

#define SQL_TIME_LIMIT_S 5.0

static int sql_prepare(tools_job *job, const json_t *args, const tools_env *env)
{
	char *path;
	int rc = tools_settings_lookup(&path, env->db, env->tenant, "database",
				       tools_arg_str(args, "database", ""));
	if (rc)
		return rc;
	rc = tools_job_grant_read(job, path);
	/* A database in WAL mode is read through its -wal file and the -shm index,
	 * which readers write their read marks to (the database and the WAL stay
	 * read-only). Grants of files that do not exist are no-ops. */
	char side[4200];
	if (!rc && (size_t)snprintf(side, sizeof side, "%s-wal", path) < sizeof side)
		rc = tools_job_grant_read(job, side);
	if (!rc && (size_t)snprintf(side, sizeof side, "%s-shm", path) < sizeof side)
		rc = tools_job_grant_write_file(job, side);
	json_t *input = json_pack("{s:s}", "path", path);
	ag_free(path);
	if (!input)
		return ag_error_set(AG_ENOMEM, "out of memory");
	tools_job_set_input(job, input);
	return rc;
}

static int authorize(void *ud, int action, const char *a, const char *b, const char *c, const char *d)
{
	(void)ud, (void)a, (void)b, (void)c, (void)d;
	switch (action) {
	case SQLITE_SELECT:
	case SQLITE_READ:
	case SQLITE_FUNCTION:
	case SQLITE_RECURSIVE: return SQLITE_OK;
	default: return SQLITE_DENY;
	}
}

static int progress(void *ud)
{
	const int64_t *deadline = ud;
	return ag_monotonic_ns() > *deadline;
}

static json_t *column_value(sqlite3_stmt *st, int i)
{
	switch (sqlite3_column_type(st, i)) {
	case SQLITE_INTEGER: return json_integer((json_int_t)sqlite3_column_int64(st, i));
	case SQLITE_FLOAT: return json_real(sqlite3_column_double(st, i));
	case SQLITE_TEXT: {
		json_t *s = json_stringn((const char *)sqlite3_column_text(st, i),
					 (size_t)sqlite3_column_bytes(st, i));
		return s ? s : json_string("(text that is not valid UTF-8)");
	}
	case SQLITE_BLOB: {
		/* Blobs come back as hex, at most 256 bytes of them. */
		int n = sqlite3_column_bytes(st, i);
		size_t show = n > 256 ? 256 : (size_t)n;
		char hex[513];
		ag_hex_encode(hex, sqlite3_column_blob(st, i), show);
		return json_pack("{s:s, s:i}", "blob_hex", hex, "bytes", n);
	}
	default: return json_null();
	}
}

/* "file:" URI of path with immutable=1, percent-encoding what URIs reserve. */
static int immutable_uri(char *out, size_t cap, const char *path)
{
	size_t n = 0;
	static const char hex[] = "0123456789ABCDEF";
	if (cap < 32)
		return -1;
	memcpy(out, "file:", 5);
	n = 5;
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if (n + 4 >= cap)
			return -1;
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("/._-~", *p)) {
			out[n++] = (char)*p;
		} else {
			out[n++] = '%';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 15];
		}
	}
	if (n + 13 >= cap)
		return -1;
	memcpy(out + n, "?immutable=1", 13);
	return 0;
}

/* Opens read-only. A WAL database whose writer has gone has no -wal or -shm
 * left, and a read-only reader may not create the index: with no WAL content
 * to miss, it is then read as an immutable file. */
static int open_readonly(sqlite3 **out, const char *path)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "PRAGMA schema_version", NULL, NULL, NULL);
	char wal[4200];
	if ((rc == SQLITE_CANTOPEN || rc == SQLITE_READONLY) &&
	    (size_t)snprintf(wal, sizeof wal, "%s-wal", path) < sizeof wal && access(wal, F_OK) != 0) {
		char uri[13000];
		sqlite3_close(db);
		db = NULL;
		if (immutable_uri(uri, sizeof uri, path))
			return ag_error_set(AG_EINVAL, "the database path is too long");
		rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI,
				     NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(db, "PRAGMA schema_version", NULL, NULL, NULL);
	}
	if (rc != SQLITE_OK) {
		rc = ag_error_set(AG_EIO, "cannot open the database read-only: %s",
				  db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return rc;
	}
	*out = db;
	return 0;
}

static int sql_run(json_t **out, const json_t *args, const json_t *input)
{
	const char *path = json_string_value(json_object_get(input, "path"));
	const char *query = tools_arg_str(args, "query", "");
	long long max_rows = tools_arg_int(args, "max_rows", 100);
	sqlite3 *db = NULL;
	if (!path)
		return ag_error_set(AG_EINVAL, "bad database path");
	int rc = open_readonly(&db, path);
	if (rc)
		return rc;
	sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
	sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL);
	sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	sqlite3_exec(db, "PRAGMA temp_store = MEMORY", NULL, NULL, NULL);
	sqlite3_set_authorizer(db, authorize, NULL);
	int64_t deadline = ag_monotonic_ns() + (int64_t)(SQL_TIME_LIMIT_S * 1e9);
	sqlite3_progress_handler(db, 1000, progress, &deadline);

	sqlite3_stmt *st = NULL;
	const char *tail = NULL;
	rc = sqlite3_prepare_v2(db, query, -1, &st, &tail);
	if (rc != SQLITE_OK || !st) {
		rc = ag_error_set(AG_EINVAL, "the query was refused: %s",
				  rc == SQLITE_AUTH ? "only reading queries are allowed"
				  : st              ? sqlite3_errmsg(db)
				  : rc              ? sqlite3_errmsg(db)
						    : "empty query");
		sqlite3_finalize(st);
		sqlite3_close(db);
		return rc;
	}
	while (tail && (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == '\r' || *tail == ';'))
		tail++;
	if (tail && *tail) {
		sqlite3_finalize(st);
		sqlite3_close(db);
		return ag_error_set(AG_EINVAL, "one statement per call");
	}
	if (!sqlite3_stmt_readonly(st)) {
		sqlite3_finalize(st);
		sqlite3_close(db);
		return ag_error_set(AG_EDENIED, "only reading queries are allowed");
	}
	int ncol = sqlite3_column_count(st);
	json_t *cols = json_array(), *rows = json_array();
	for (int i = 0; i < ncol; i++)
		json_array_append_new(
			cols, json_string(sqlite3_column_name(st, i) ? sqlite3_column_name(st, i) : ""));
	bool truncated = false;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((long long)json_array_size(rows) == max_rows) {
			truncated = true;
			break;
		}
		json_t *row = json_array();
		for (int i = 0; i < ncol; i++)
			json_array_append_new(row, column_value(st, i));
		json_array_append_new(rows, row);
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		if (rc == SQLITE_INTERRUPT)
			rc = ag_error_set(AG_ETIMEOUT, "the query ran longer than %.0f s", SQL_TIME_LIMIT_S);
		else
			rc = ag_error_set(AG_EINVAL, "the query failed: %s", sqlite3_errmsg(db));
		json_decref(cols);
		json_decref(rows);
		sqlite3_finalize(st);
		sqlite3_close(db);
		return rc;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	*out = json_pack("{s:o, s:o, s:I, s:b}", "columns", cols, "rows", rows, "row_count",
			 (json_int_t)json_array_size(rows), "truncated", truncated);
	return *out ? 0 : ag_error_set(AG_ENOMEM, "out of memory");
}

const tools_tool tools_builtin_sql = {
	.name = "sql",
	.description =
		"Runs one read-only SQL query (SQLite dialect) on a database an administrator attached "
		"and returns its columns and rows (at most max_rows, default 100).",
	.schema = "{\"type\": \"object\", \"properties\": {"
		  "\"database\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 64, "
		  "\"description\": \"name of an attached database\"}, "
		  "\"query\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 16384}, "
		  "\"max_rows\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 1000}}, "
		  "\"required\": [\"database\", \"query\"], \"additionalProperties\": false}",
	.limits = {.cpu_seconds = 6, .wall_seconds = 8, .memory_bytes = 512u << 20, .output_bytes = 4u << 20},
	.needs = TOOLS_NEED_FILES,
	.prepare = sql_prepare,
	.run = sql_run,
};
