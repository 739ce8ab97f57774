/*
 * Declared workflows: a JSON graph of steps run as a "workflow" run.
 *
 *   {"name": "...", "start": "id", "steps": [
 *      {"id": "find", "type": "retrieve", "query": "{{input}}", "collections": ["hr"], "k": 5,
 *       "output": "hits", "next": "check"},
 *      {"id": "check", "type": "condition", "if": {"var": "hits", "op": "not_empty"},
 *       "then": "sum", "else": "none"},
 *      {"id": "sum", "type": "map", "over": "hits", "as": "hit",
 *       "step": {"type": "generate", "prompt": "Summarise: {{hit.text}}"}, "output": "sums", "next": "ok"},
 *      {"id": "ok", "type": "approval", "message": "Publish?", "next": "done"},
 *      {"id": "calc", "type": "tool", "tool": "calculator", "arguments": {"expression": "{{a}} * 2"}},
 *      {"id": "done", "type": "answer", "text": "{{sums}}"}]}
 *
 * Variables start as {"input": ...} and each step's result lands in its
 * "output" variable. After every step the run saves {current, vars, steps,
 * map progress}, so a daemon restart resumes where it stopped; an approval
 * step pauses the run (waiting_approval) until a permitted user decides.
 */
#include "agentd/planner.h"

#include <stdio.h>
#include <string.h>

#define MAX_WORKFLOW_STEPS 256
#define DEFAULT_MAX_STEPS  100

static const char *const workflow_sql[] = {
	"CREATE TABLE workflows ("
	"  id TEXT PRIMARY KEY,"
	"  tenant TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  definition TEXT NOT NULL,"
	"  created_by TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  UNIQUE (tenant, name));",
};

int agentd_workflows_migrate(sqlite3 *db)
{
	static const ag_migration_set set = {"workflows", workflow_sql,
					     sizeof workflow_sql / sizeof workflow_sql[0]};
	return ag_db_migrate(db, &set);
}

/* ------------------------------------------------------------ validation */

static const char *const step_types[] = {"retrieve", "generate", "tool",   "condition",
					 "map",      "approval", "answer", NULL};
static const char *const condition_ops[] = {"not_empty", "empty", "equals", "not_equals", "contains",
					    "gt",        "lt",    "gte",    "lte",        NULL};

static bool in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

static const json_t *find_step(const json_t *steps, const char *id)
{
	size_t i;
	json_t *s;
	json_array_foreach(steps, i, s)
	{
		const char *sid = json_string_value(json_object_get(s, "id"));
		if (sid && strcmp(sid, id) == 0)
			return s;
	}
	return NULL;
}

static int require_string(const json_t *step, const char *where, const char *key)
{
	if (!json_is_string(json_object_get(step, key)))
		return ag_error_set(AG_EINVAL, "%s.%s: a string is required", where, key);
	return 0;
}

static int check_ref(const json_t *steps, const json_t *step, const char *where, const char *key)
{
	const json_t *v = json_object_get(step, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return ag_error_set(AG_EINVAL, "%s.%s: must be a step id", where, key);
	if (!find_step(steps, json_string_value(v)))
		return ag_error_set(AG_EINVAL, "%s.%s: no step '%s'", where, key, json_string_value(v));
	return 0;
}

/* Checks one step's own fields (not its links); `inner` for a map's sub-step. */
static int validate_body(const json_t *step, const char *where, bool inner)
{
	const char *type = json_string_value(json_object_get(step, "type"));
	if (!type || !in_list(type, step_types))
		return ag_error_set(AG_EINVAL,
				    "%s.type: must be one of retrieve, generate, tool, condition, map, "
				    "approval, answer",
				    where);
	if (inner && (strcmp(type, "retrieve") && strcmp(type, "generate") && strcmp(type, "tool")))
		return ag_error_set(AG_EINVAL, "%s.type: a map step runs retrieve, generate or tool", where);
	int rc = 0;
	if (strcmp(type, "retrieve") == 0) {
		rc = require_string(step, where, "query");
		const json_t *c = json_object_get(step, "collections");
		if (!rc && c && !json_is_array(c))
			rc = ag_error_set(AG_EINVAL, "%s.collections: must be an array of names", where);
		const json_t *k = json_object_get(step, "k");
		if (!rc && k &&
		    (!json_is_integer(k) || json_integer_value(k) < 1 || json_integer_value(k) > 50))
			rc = ag_error_set(AG_EINVAL, "%s.k: must be an integer from 1 to 50", where);
	} else if (strcmp(type, "generate") == 0) {
		rc = require_string(step, where, "prompt");
	} else if (strcmp(type, "tool") == 0) {
		rc = require_string(step, where, "tool");
		const json_t *a = json_object_get(step, "arguments");
		if (!rc && a && !json_is_object(a))
			rc = ag_error_set(AG_EINVAL, "%s.arguments: must be an object", where);
	} else if (strcmp(type, "condition") == 0) {
		const json_t *c = json_object_get(step, "if");
		const char *op = json_string_value(json_object_get(c, "op"));
		if (!json_is_object(c) || !json_is_string(json_object_get(c, "var")))
			rc = ag_error_set(AG_EINVAL, "%s.if: needs {\"var\": NAME, \"op\": OP}", where);
		else if (!op || !in_list(op, condition_ops))
			rc = ag_error_set(AG_EINVAL,
					  "%s.if.op: must be one of not_empty, empty, equals, not_equals, "
					  "contains, gt, lt, gte, lte",
					  where);
		else if (strcmp(op, "empty") && strcmp(op, "not_empty") && !json_object_get(c, "value"))
			rc = ag_error_set(AG_EINVAL, "%s.if.value: required for '%s'", where, op);
	} else if (strcmp(type, "map") == 0) {
		rc = require_string(step, where, "over");
		if (!rc)
			rc = require_string(step, where, "as");
		const json_t *sub = json_object_get(step, "step");
		if (!rc && !json_is_object(sub))
			rc = ag_error_set(AG_EINVAL, "%s.step: a map needs the step to run for each item",
					  where);
		if (!rc) {
			char inner_where[128];
			snprintf(inner_where, sizeof inner_where, "%s.step", where);
			rc = validate_body(sub, inner_where, true);
		}
	} else if (strcmp(type, "approval") == 0) {
		rc = require_string(step, where, "message");
	} else if (strcmp(type, "answer") == 0) {
		rc = require_string(step, where, "text");
	}
	const json_t *out = json_object_get(step, "output");
	if (!rc && out && !json_is_string(out))
		rc = ag_error_set(AG_EINVAL, "%s.output: must be a variable name", where);
	if (!rc && out && strcmp(json_string_value(out), "input") == 0)
		rc = ag_error_set(AG_EINVAL, "%s.output: 'input' is reserved", where);
	return rc;
}

int agentd_workflow_validate(const json_t *def)
{
	if (!json_is_object(def))
		return ag_error_set(AG_EINVAL, "a workflow must be a JSON object");
	const char *name = json_string_value(json_object_get(def, "name"));
	if (!name || !*name || strlen(name) > 128)
		return ag_error_set(AG_EINVAL, "name: 1 to 128 characters are required");
	const json_t *steps = json_object_get(def, "steps");
	if (!json_is_array(steps) || json_array_size(steps) == 0)
		return ag_error_set(AG_EINVAL, "steps: a non-empty array is required");
	if (json_array_size(steps) > MAX_WORKFLOW_STEPS)
		return ag_error_set(AG_EINVAL, "steps: at most %d steps", MAX_WORKFLOW_STEPS);
	size_t i;
	json_t *step;
	json_array_foreach(steps, i, step)
	{
		char where[64];
		snprintf(where, sizeof where, "steps[%zu]", i);
		if (!json_is_object(step))
			return ag_error_set(AG_EINVAL, "%s: must be an object", where);
		const char *id = json_string_value(json_object_get(step, "id"));
		if (!id || !*id || strlen(id) > 64)
			return ag_error_set(AG_EINVAL, "%s.id: 1 to 64 characters are required", where);
		if (find_step(steps, id) != step)
			return ag_error_set(AG_EINVAL, "%s.id: '%s' is used twice", where, id);
		int rc = validate_body(step, where, false);
		if (!rc)
			rc = check_ref(steps, step, where, "next");
		if (!rc)
			rc = check_ref(steps, step, where, "then");
		if (!rc)
			rc = check_ref(steps, step, where, "else");
		if (!rc)
			rc = check_ref(steps, step, where, "on_reject");
		if (!rc && strcmp(json_string_value(json_object_get(step, "type")), "condition") == 0 &&
		    (!json_object_get(step, "then") || !json_object_get(step, "else")))
			rc = ag_error_set(AG_EINVAL, "%s: a condition needs both 'then' and 'else'", where);
		if (rc)
			return rc;
	}
	const json_t *start = json_object_get(def, "start");
	if (start && (!json_is_string(start) || !find_step(steps, json_string_value(start))))
		return ag_error_set(AG_EINVAL, "start: must name a step");
	return 0;
}

/* --------------------------------------------------------------- storage */

int agentd_workflow_create(sqlite3 *db, const char *tenant, const char *user, const json_t *def,
			   char **id_out)
{
	*id_out = NULL;
	int rc = agentd_workflow_validate(def);
	if (rc)
		return rc;
	char *id = ag_new_id("wf"), *text = NULL;
	if (!id || (rc = ag_json_dump(&text, NULL, def))) {
		ag_free(id);
		return rc ? rc : ag_error_set(AG_ENOMEM, "out of memory storing a workflow");
	}
	sqlite3_stmt *st;
	if (!(rc = ag_db_prepare(db, &st,
				 "INSERT INTO workflows(id, tenant, name, definition, created_by, "
				 "created_at) VALUES (?, ?, ?, ?, ?, ?)"))) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, json_string_value(json_object_get(def, "name")), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, text, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, user, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, ag_now_ms());
		int s = sqlite3_step(st);
		sqlite3_finalize(st);
		if (s == SQLITE_CONSTRAINT || (s & 0xff) == SQLITE_CONSTRAINT)
			rc = ag_error_set(AG_ECONFLICT, "a workflow named '%s' exists already",
					  json_string_value(json_object_get(def, "name")));
		else if (s != SQLITE_DONE)
			rc = ag_db_error(db, s, "storing workflow");
	}
	ag_free(text);
	if (rc) {
		ag_free(id);
		return rc;
	}
	*id_out = id;
	return 0;
}

static json_t *row_to_json(sqlite3_stmt *st)
{
	json_t *def = NULL;
	const char *text = (const char *)sqlite3_column_text(st, 2);
	if (ag_json_parse(&def, text, strlen(text)))
		return NULL;
	return json_pack("{s:s, s:s, s:o, s:s, s:I}", "id", (const char *)sqlite3_column_text(st, 0), "name",
			 (const char *)sqlite3_column_text(st, 1), "definition", def, "created_by",
			 (const char *)sqlite3_column_text(st, 3), "created_at",
			 (json_int_t)sqlite3_column_int64(st, 4));
}

int agentd_workflow_get(sqlite3 *db, const char *tenant, const char *id, json_t **out)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st,
			       "SELECT id, name, definition, created_by, created_at FROM workflows "
			       "WHERE tenant = ? AND (id = ? OR name = ?)");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		*out = row_to_json(st);
		if (!*out)
			rc = ag_error_set(AG_ENOMEM, "out of memory reading a workflow");
	} else {
		rc = s == SQLITE_DONE ? ag_error_set(AG_ENOTFOUND, "no workflow '%s'", id)
				      : ag_db_error(db, s, "reading workflow");
	}
	sqlite3_finalize(st);
	return rc;
}

int agentd_workflow_list(sqlite3 *db, const char *tenant, json_t **out)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st,
			       "SELECT id, name, definition, created_by, created_at FROM workflows "
			       "WHERE tenant = ? ORDER BY name");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
	json_t *arr = json_array();
	while (arr && sqlite3_step(st) == SQLITE_ROW) {
		json_t *w = row_to_json(st);
		if (!w || json_array_append_new(arr, w)) {
			json_decref(arr);
			arr = NULL;
		}
	}
	sqlite3_finalize(st);
	if (!arr)
		return ag_error_set(AG_ENOMEM, "out of memory listing workflows");
	*out = arr;
	return 0;
}
