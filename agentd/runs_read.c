/*
 * Runs, read side: one run with its steps, lists of runs and event pages, as
 * JSON for the REST routes. Only reads; runs.c owns every write. See runs.h.
 */
#include "agentd/runs.h"

#include <string.h>

static json_t *parse_or_null(const unsigned char *text)
{
	json_t *v = NULL;
	if (text)
		ag_json_parse(&v, (const char *)text, strlen((const char *)text));
	return v;
}

/* Prepares sql (which selects from runs WHERE id = ?1 AND tenant = ?2) and steps to the run's
 * row: 0 with *out on it (finalize it), AG_ENOTFOUND for no such run of this tenant. */
static int select_run(sqlite3 *db, const char *sql, const char *tenant, const char *id, sqlite3_stmt **out)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st, sql);
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s != SQLITE_ROW) {
		sqlite3_finalize(st);
		return s == SQLITE_DONE ? ag_error_set(AG_ENOTFOUND, "no run '%s'", id)
					: ag_db_error(db, s, "run");
	}
	*out = st;
	return 0;
}

int agentd_runs_get(sqlite3 *db, const char *tenant, const char *id, json_t **out)
{
	sqlite3_stmt *st;
	int rc = select_run(db,
			    "SELECT id, user, kind, status, request, result, error, approval, created_at, "
			    "updated_at, finished_at, last_event FROM runs WHERE id = ? AND tenant = ?",
			    tenant, id, &st);
	if (rc)
		return rc;
	json_t *request = parse_or_null(sqlite3_column_text(st, 4));
	json_t *result = parse_or_null(sqlite3_column_text(st, 5));
	json_t *v = json_pack(
		"{s:s, s:s, s:s, s:s, s:O?, s:s?, s:o?, s:I, s:I, s:I}", "id",
		(const char *)sqlite3_column_text(st, 0), "user", (const char *)sqlite3_column_text(st, 1),
		"kind", (const char *)sqlite3_column_text(st, 2), "status",
		(const char *)sqlite3_column_text(st, 3), "input",
		request ? json_object_get(request, "input") : NULL, "error",
		(const char *)sqlite3_column_text(st, 6), "approval",
		parse_or_null(sqlite3_column_text(st, 7)), "created_at",
		(json_int_t)sqlite3_column_int64(st, 8), "updated_at",
		(json_int_t)sqlite3_column_int64(st, 9), "events", (json_int_t)sqlite3_column_int64(st, 11));
	if (v && sqlite3_column_type(st, 10) != SQLITE_NULL)
		json_object_set_new(v, "finished_at", json_integer(sqlite3_column_int64(st, 10)));
	sqlite3_finalize(st);
	json_decref(request);
	if (!v) {
		json_decref(result);
		return ag_error_set(AG_ENOMEM, "out of memory describing a run");
	}
	/* The executor's result (answer, citations, usage, ...) is merged in as it stands. */
	if (result && json_is_object(result))
		json_object_update(v, result);
	json_decref(result);

	/* A waiting run shows what it waits for: the last approval request. */
	if (strcmp(json_string_value(json_object_get(v, "status")), "waiting_approval") == 0 &&
	    ag_db_prepare(db, &st,
			  "SELECT data FROM run_events WHERE run_id = ? AND type = "
			  "'run.waiting_approval' ORDER BY seq DESC LIMIT 1") == 0) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			json_object_set_new(v, "pending_approval", parse_or_null(sqlite3_column_text(st, 0)));
		sqlite3_finalize(st);
	}

	/* Steps: the completed-step events, in order. */
	json_t *steps = json_array();
	if ((rc = ag_db_prepare(db, &st,
				"SELECT data FROM run_events WHERE run_id = ? AND type = "
				"'run.step.completed' ORDER BY seq"))) {
		json_decref(steps);
		json_decref(v);
		return rc;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		json_t *step = parse_or_null(sqlite3_column_text(st, 0));
		if (step)
			json_array_append_new(steps, step);
	}
	sqlite3_finalize(st);
	json_object_set_new(v, "steps", steps);
	*out = v;
	return 0;
}

int agentd_runs_list(sqlite3 *db, const char *tenant, const char *user, const char *status, int limit,
		     json_t **out)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(
		db, &st,
		"SELECT id, user, kind, status, created_at, updated_at, finished_at, result "
		"FROM runs WHERE tenant = ?1 AND (?2 IS NULL OR user = ?2) AND (?3 IS NULL OR status = ?3) "
		"ORDER BY created_at DESC, id LIMIT ?4");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
	ag_db_bind_text(st, 2, user);
	ag_db_bind_text(st, 3, status);
	sqlite3_bind_int(st, 4, limit);
	json_t *arr = json_array();
	int s;
	while (arr && (s = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *result = parse_or_null(sqlite3_column_text(st, 7));
		json_t *item = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:O?}", "id",
					 (const char *)sqlite3_column_text(st, 0), "user",
					 (const char *)sqlite3_column_text(st, 1), "kind",
					 (const char *)sqlite3_column_text(st, 2), "status",
					 (const char *)sqlite3_column_text(st, 3), "created_at",
					 (json_int_t)sqlite3_column_int64(st, 4), "updated_at",
					 (json_int_t)sqlite3_column_int64(st, 5), "usage",
					 result ? json_object_get(result, "usage") : NULL);
		json_decref(result);
		if (item && sqlite3_column_type(st, 6) != SQLITE_NULL)
			json_object_set_new(
				item, "duration_ms",
				json_integer(sqlite3_column_int64(st, 6) - sqlite3_column_int64(st, 4)));
		if (!item || json_array_append_new(arr, item)) {
			json_decref(arr);
			arr = NULL;
		}
	}
	sqlite3_finalize(st);
	if (!arr)
		return ag_error_set(AG_ENOMEM, "out of memory listing runs");
	*out = arr;
	return 0;
}

int agentd_runs_events(sqlite3 *db, const char *tenant, const char *id, int64_t after, int max, json_t **out,
		       bool *finished)
{
	sqlite3_stmt *st;
	int rc = select_run(db, "SELECT status, last_event FROM runs WHERE id = ? AND tenant = ?", tenant, id,
			    &st);
	if (rc)
		return rc;
	bool final = agentd_run_status_final((const char *)sqlite3_column_text(st, 0));
	int64_t last = sqlite3_column_int64(st, 1);
	sqlite3_finalize(st);
	if ((rc = ag_db_prepare(db, &st,
				"SELECT seq, type, data FROM run_events WHERE run_id = ? AND seq > ? "
				"ORDER BY seq LIMIT ?")))
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, after);
	sqlite3_bind_int(st, 3, max);
	json_t *arr = json_array();
	int64_t seen = after;
	while (arr && sqlite3_step(st) == SQLITE_ROW) {
		seen = sqlite3_column_int64(st, 0);
		json_t *item = json_pack("{s:I, s:s, s:o?}", "id", (json_int_t)seen, "event",
					 (const char *)sqlite3_column_text(st, 1), "data",
					 parse_or_null(sqlite3_column_text(st, 2)));
		if (!item || json_array_append_new(arr, item)) {
			json_decref(arr);
			arr = NULL;
		}
	}
	sqlite3_finalize(st);
	if (!arr)
		return ag_error_set(AG_ENOMEM, "out of memory reading events");
	*out = arr;
	if (finished)
		*finished = final && seen >= last;
	return 0;
}
