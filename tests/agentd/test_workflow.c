/* Unit tests of workflows (agentd/workflow*.c, template.c) with scripted model, tools and retrieval. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentd/planner.h"

static char db_path[512];
static int generate_calls;

static int fake_generate(void *cls, agentd_run *run, const agentd_gen_request *req, agentd_gen_result *out)
{
	(void)cls;
	(void)run;
	generate_calls++;
	const json_t *last = json_array_get(req->messages, json_array_size(req->messages) - 1);
	const char *content = json_string_value(json_object_get(last, "content"));
	size_t n = strlen(content) + 8;
	out->content = ag_malloc(n);
	snprintf(out->content, n, "SUM(%s)", content);
	out->completion_tokens = 3;
	return 0;
}

static int fake_tool(void *cls, agentd_run *run, const char *name, const json_t *args, json_t **result)
{
	(void)cls;
	(void)run;
	const char *expr = json_string_value(json_object_get(args, "expression"));
	if (strcmp(name, "calculator") == 0 && expr && strcmp(expr, "21 * 2") == 0)
		*result = json_pack("{s:b, s:s}", "ok", 1, "result", "42");
	else if (strcmp(name, "echo") == 0)
		*result = json_pack("{s:b, s:O}", "ok", 1, "result", args);
	else
		*result = json_pack("{s:b, s:s}", "ok", 0, "error", "unknown expression");
	return 0;
}

static int fake_retrieve(void *cls, agentd_run *run, const char *query, const json_t *collections, int k,
			 json_t **hits)
{
	(void)cls;
	(void)run;
	(void)collections;
	(void)k;
	if (strstr(query, "vacation"))
		*hits = json_pack("[{s:s, s:s}, {s:s, s:s}]", "title", "HR", "text", "25 days", "title",
				  "Travel", "text", "book early");
	else
		*hits = json_array();
	return 0;
}

static agentd_services services = {
	.generate = fake_generate, .call_tool = fake_tool, .retrieve = fake_retrieve};

static sqlite3 *fresh(const char *name, agentd_runs **r)
{
	const char *dir = getenv("TEST_TMPDIR");
	snprintf(db_path, sizeof db_path, "%s/%s", dir ? dir : "/tmp", name);
	remove(db_path);
	sqlite3 *db;
	assert_int_equal(ag_db_open(&db, db_path), 0);
	assert_int_equal(agentd_runs_migrate(db), 0);
	assert_int_equal(agentd_workflows_migrate(db), 0);
	assert_int_equal(agentd_runs_start(r, db_path, 1), 0);
	agentd_runs_set_executor(*r, "workflow", agentd_workflow_execute, &services);
	return db;
}

static json_t *get_run(sqlite3 *db, const char *id)
{
	json_t *v;
	assert_int_equal(agentd_runs_get(db, "acme", id, &v), 0);
	return v;
}

static void wait_status(sqlite3 *db, const char *id, const char *want)
{
	const char *got = "";
	for (int i = 0; i < 500; i++) {
		json_t *v = get_run(db, id);
		int same = strcmp(json_string_value(json_object_get(v, "status")), want) == 0;
		json_decref(v);
		if (same)
			return;
		usleep(10000);
	}
	fail_msg("run %s did not reach %s%s", id, want, got);
}

static const char *graph =
	"{\"name\": \"digest\", \"steps\": ["
	" {\"id\": \"find\", \"type\": \"retrieve\", \"query\": \"{{input}}\", \"k\": 3, \"output\": "
	"\"hits\","
	"  \"next\": \"check\"},"
	" {\"id\": \"check\", \"type\": \"condition\", \"if\": {\"var\": \"hits\", \"op\": \"not_empty\"},"
	"  \"then\": \"sum\", \"else\": \"none\"},"
	" {\"id\": \"sum\", \"type\": \"map\", \"over\": \"hits\", \"as\": \"hit\", \"output\": \"sums\","
	"  \"step\": {\"type\": \"generate\", \"prompt\": \"{{hit.title}}: {{hit.text}}\"}, \"next\": "
	"\"calc\"},"
	" {\"id\": \"calc\", \"type\": \"tool\", \"tool\": \"calculator\", \"arguments\": {\"expression\": "
	"\"21 * 2\"},"
	"  \"output\": \"n\", \"next\": \"ok\"},"
	" {\"id\": \"ok\", \"type\": \"approval\", \"message\": \"Publish {{sums.0}}?\", \"next\": \"done\","
	"  \"on_reject\": \"dropped\"},"
	" {\"id\": \"done\", \"type\": \"answer\", \"text\": \"{{sums.0}} | {{sums.1}} | {{n}}\"},"
	" {\"id\": \"dropped\", \"type\": \"answer\", \"text\": \"dropped\"},"
	" {\"id\": \"none\", \"type\": \"answer\", \"text\": \"Nothing found.\"}]}";

static json_t *request_for(const char *input)
{
	json_t *def;
	assert_int_equal(ag_json_parse(&def, graph, strlen(graph)), 0);
	return json_pack("{s:o, s:s}", "workflow", def, "input", input);
}

static void test_validation_names_the_problem(void **state)
{
	(void)state;
	static const struct {
		const char *def, *expect;
	} cases[] = {
		{"[]", "JSON object"},
		{"{\"name\": \"x\", \"steps\": []}", "steps:"},
		{"{\"name\": \"x\", \"steps\": [{\"type\": \"answer\", \"text\": \"t\"}]}", "steps[0].id"},
		{"{\"name\": \"x\", \"steps\": [{\"id\": \"a\", \"type\": \"fly\"}]}", "steps[0].type"},
		{"{\"name\": \"x\", \"steps\": [{\"id\": \"a\", \"type\": \"answer\", \"text\": \"t\"},"
		 "{\"id\": \"a\", \"type\": \"answer\", \"text\": \"t\"}]}",
		 "used twice"},
		{"{\"name\": \"x\", \"steps\": [{\"id\": \"a\", \"type\": \"generate\", \"prompt\": \"p\", "
		 "\"next\": \"zz\"}]}",
		 "steps[0].next: no step 'zz'"},
		{"{\"name\": \"x\", \"steps\": [{\"id\": \"a\", \"type\": \"condition\", \"if\": {\"var\": "
		 "\"v\", \"op\": "
		 "\"gt\"}, \"then\": \"a\", \"else\": \"a\"}]}",
		 "steps[0].if.value"},
		{"{\"name\": \"x\", \"steps\": [{\"id\": \"a\", \"type\": \"condition\", \"if\": {\"var\": "
		 "\"v\", \"op\": "
		 "\"empty\"}, \"then\": \"a\"}]}",
		 "both 'then' and 'else'"},
		{"{\"name\": \"x\", \"steps\": [{\"id\": \"a\", \"type\": \"map\", \"over\": \"v\", \"as\": "
		 "\"i\", \"step\": "
		 "{\"type\": \"approval\", \"message\": \"m\"}}]}",
		 "steps[0].step.type"},
		{"{\"name\": \"x\", \"steps\": [{\"id\": \"a\", \"type\": \"tool\", \"tool\": 5}]}",
		 "steps[0].tool"},
		{"{\"name\": \"x\", \"start\": \"q\", \"steps\": [{\"id\": \"a\", \"type\": \"answer\", "
		 "\"text\": \"t\"}]}",
		 "start"},
		{"{\"name\": \"x\", \"steps\": [{\"id\": \"a\", \"type\": \"generate\", \"prompt\": \"p\", "
		 "\"output\": "
		 "\"input\"}]}",
		 "reserved"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *def;
		assert_int_equal(ag_json_parse(&def, cases[i].def, strlen(cases[i].def)), 0);
		assert_int_equal(agentd_workflow_validate(def), AG_EINVAL);
		if (!strstr(ag_error_last(), cases[i].expect))
			fail_msg("case %zu: '%s' does not mention '%s'", i, ag_error_last(), cases[i].expect);
		json_decref(def);
	}
	json_t *req = request_for("x");
	assert_int_equal(agentd_workflow_validate(json_object_get(req, "workflow")), 0);
	json_decref(req);
}

static void test_templates(void **state)
{
	(void)state;
	json_t *vars = json_pack("{s:s, s:{s:[i, s]}, s:i}", "a", "x", "b", "list", 7, "seven", "n", 3);
	char *out;
	assert_int_equal(
		agentd_template_expand("[{{a}}] {{ b.list.1 }} {{n}} {{missing}} {{b.list}} {{", vars, &out),
		0);
	assert_string_equal(out, "[x] seven 3  [7,\"seven\"] {{");
	ag_free(out);
	json_decref(vars);
}

static void test_branch_map_tool_approval_and_restart(void **state)
{
	(void)state;
	agentd_runs *r;
	sqlite3 *db = fresh("wf1.db", &r);
	json_t *req = request_for("vacation rules");
	char *id;
	generate_calls = 0;
	assert_int_equal(agentd_runs_submit(r, db, "workflow", "acme", "ana", "analyst", req, &id), 0);
	wait_status(db, id, "waiting_approval");
	assert_int_equal(generate_calls, 2); /* one per retrieved hit */
	json_t *v = get_run(db, id);
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(v, "pending_approval"), "message")),
		"Publish SUM(HR: 25 days)?");
	json_decref(v);

	/* The daemon restarts while the run waits: it still waits, and approval resumes it. */
	agentd_runs_stop(r);
	assert_int_equal(agentd_runs_start(&r, db_path, 1), 0);
	agentd_runs_set_executor(r, "workflow", agentd_workflow_execute, &services);
	assert_int_equal(agentd_runs_resume(r, db), 0);
	usleep(50000);
	v = get_run(db, id);
	assert_string_equal(json_string_value(json_object_get(v, "status")), "waiting_approval");
	json_decref(v);
	assert_int_equal(agentd_runs_approve(r, db, "acme", id, "boss", true, NULL), 0);
	wait_status(db, id, "succeeded");
	assert_int_equal(generate_calls, 2); /* nothing was redone */
	v = get_run(db, id);
	assert_string_equal(json_string_value(json_object_get(v, "answer")),
			    "SUM(HR: 25 days) | SUM(Travel: book early) | 42");
	/* find, check, sum, calc, ok, done */
	assert_int_equal(json_array_size(json_object_get(v, "steps")), 6);
	json_decref(v);
	ag_free(id);

	/* The other branch. */
	json_object_set_new(req, "input", json_string("parking"));
	assert_int_equal(agentd_runs_submit(r, db, "workflow", "acme", "ana", "analyst", req, &id), 0);
	wait_status(db, id, "succeeded");
	v = get_run(db, id);
	assert_string_equal(json_string_value(json_object_get(v, "answer")), "Nothing found.");
	json_decref(v);
	ag_free(id);

	/* Rejection follows on_reject. */
	json_object_set_new(req, "input", json_string("vacation"));
	assert_int_equal(agentd_runs_submit(r, db, "workflow", "acme", "ana", "analyst", req, &id), 0);
	wait_status(db, id, "waiting_approval");
	assert_int_equal(agentd_runs_approve(r, db, "acme", id, "boss", false, "no"), 0);
	wait_status(db, id, "succeeded");
	v = get_run(db, id);
	assert_string_equal(json_string_value(json_object_get(v, "answer")), "dropped");
	json_decref(v);
	ag_free(id);
	json_decref(req);
	agentd_runs_stop(r);
	ag_db_close(db);
}

static void test_step_budget_stops_a_loop(void **state)
{
	(void)state;
	agentd_runs *r;
	sqlite3 *db = fresh("wf2.db", &r);
	const char *loop =
		"{\"name\": \"loop\", \"steps\": [{\"id\": \"spin\", \"type\": \"condition\", \"if\": "
		"{\"var\": \"input\", \"op\": \"not_empty\"}, \"then\": \"spin\", \"else\": \"spin\"}]}";
	json_t *def;
	assert_int_equal(ag_json_parse(&def, loop, strlen(loop)), 0);
	json_t *req =
		json_pack("{s:o, s:s, s:{s:i}}", "workflow", def, "input", "x", "budget", "max_steps", 7);
	char *id;
	assert_int_equal(agentd_runs_submit(r, db, "workflow", "acme", "ana", "analyst", req, &id), 0);
	wait_status(db, id, "failed");
	json_t *v = get_run(db, id);
	assert_string_equal(json_string_value(json_object_get(v, "error")),
			    "step budget of 7 steps exhausted");
	assert_int_equal(json_array_size(json_object_get(v, "steps")), 7); /* exactly the limit */
	json_decref(v);
	ag_free(id);
	json_decref(req);
	agentd_runs_stop(r);
	ag_db_close(db);
}

static void test_tool_arguments_keep_types(void **state)
{
	(void)state;
	agentd_runs *r;
	sqlite3 *db = fresh("wf3.db", &r);
	const char *g =
		"{\"name\": \"t\", \"steps\": [{\"id\": \"e\", \"type\": \"tool\", \"tool\": \"echo\", "
		"\"arguments\": {\"whole\": \"{{input}}\", \"text\": \"n={{input.n}}\"}, \"output\": "
		"\"o\"}]}";
	json_t *def;
	assert_int_equal(ag_json_parse(&def, g, strlen(g)), 0);
	json_t *req = json_pack("{s:o, s:{s:i}}", "workflow", def, "input", "n", 5);
	char *id;
	assert_int_equal(agentd_runs_submit(r, db, "workflow", "acme", "ana", "analyst", req, &id), 0);
	wait_status(db, id, "succeeded");
	json_t *v = get_run(db, id);
	json_t *o = json_object_get(json_object_get(v, "variables"), "o");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "whole"), "n")), 5);
	assert_string_equal(json_string_value(json_object_get(o, "text")), "n=5");
	json_decref(v);
	ag_free(id);
	json_decref(req);
	agentd_runs_stop(r);
	ag_db_close(db);
}

static void test_storage(void **state)
{
	(void)state;
	agentd_runs *r;
	sqlite3 *db = fresh("wf4.db", &r);
	json_t *req = request_for("x");
	char *id, *id2;
	assert_int_equal(agentd_workflow_create(db, "acme", "ana", json_object_get(req, "workflow"), &id), 0);
	assert_int_equal(agentd_workflow_create(db, "acme", "ana", json_object_get(req, "workflow"), &id2),
			 AG_ECONFLICT);
	assert_int_equal(agentd_workflow_create(db, "globex", "eve", json_object_get(req, "workflow"), &id2),
			 0);
	json_t *v;
	assert_int_equal(agentd_workflow_get(db, "acme", id, &v), 0);
	assert_string_equal(json_string_value(json_object_get(v, "name")), "digest");
	json_decref(v);
	assert_int_equal(agentd_workflow_get(db, "acme", "digest", &v), 0);
	json_decref(v);
	assert_int_equal(agentd_workflow_get(db, "acme", id2, &v), AG_ENOTFOUND);
	assert_int_equal(agentd_workflow_list(db, "acme", &v), 0);
	assert_int_equal(json_array_size(v), 1);
	json_decref(v);
	ag_free(id);
	ag_free(id2);
	json_decref(req);
	agentd_runs_stop(r);
	ag_db_close(db);
}

int main(void)
{
	ag_alloc_init();
	ag_log_set_level(AG_LOG_WARN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validation_names_the_problem),
		cmocka_unit_test(test_templates),
		cmocka_unit_test(test_branch_map_tool_approval_and_restart),
		cmocka_unit_test(test_step_budget_stops_a_loop),
		cmocka_unit_test(test_tool_arguments_keep_types),
		cmocka_unit_test(test_storage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
