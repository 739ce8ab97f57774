/* Unit tests of agentd/runs.c with scripted executors: lifecycle, events, approval, cancel, resume. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentd/runs.h"

static char db_path[512];

static sqlite3 *fresh_db(const char *name)
{
	const char *dir = getenv("TEST_TMPDIR");
	snprintf(db_path, sizeof db_path, "%s/%s", dir ? dir : "/tmp", name);
	remove(db_path);
	sqlite3 *db;
	assert_int_equal(ag_db_open(&db, db_path), 0);
	assert_int_equal(agentd_runs_migrate(db), 0);
	return db;
}

static const char *status_of(sqlite3 *db, const char *id, char *buf, size_t n)
{
	json_t *v;
	assert_int_equal(agentd_runs_get(db, "acme", id, &v), 0);
	snprintf(buf, n, "%s", json_string_value(json_object_get(v, "status")));
	json_decref(v);
	return buf;
}

static void wait_status(sqlite3 *db, const char *id, const char *want)
{
	char buf[32];
	for (int i = 0; i < 500; i++) {
		if (strcmp(status_of(db, id, buf, sizeof buf), want) == 0)
			return;
		usleep(10000);
	}
	fail_msg("run %s did not reach %s (is %s)", id, want, buf);
}

/* Three steps, then an answer. */
static int exec_steps(agentd_run *run, void *cls)
{
	(void)cls;
	const char *input = json_string_value(json_object_get(run->request, "input"));
	for (int i = 0; i < 3; i++) {
		assert_int_equal(
			agentd_run_emit(run, "run.step.started", json_pack("{s:i}", "index", i), NULL), 0);
		assert_int_equal(agentd_run_emit(run, "run.step.completed",
						 json_pack("{s:i, s:s}", "index", i, "kind", "model_call"),
						 NULL),
				 0);
	}
	if (input && strcmp(input, "fail") == 0)
		return ag_error_set(AG_EINVAL, "scripted failure");
	return agentd_run_finish(run, "succeeded",
				 json_pack("{s:s, s:[]}", "answer", input ? input : "", "citations"), NULL);
}

static void test_lifecycle_and_events(void **state)
{
	(void)state;
	sqlite3 *db = fresh_db("runs1.db");
	agentd_runs *r;
	assert_int_equal(agentd_runs_start(&r, db_path, 2), 0);
	agentd_runs_set_executor(r, "agent", exec_steps, NULL);
	json_t *req = json_pack("{s:s}", "input", "hello");
	char *id;
	assert_int_equal(agentd_runs_submit(r, db, "agent", "acme", "ana", "analyst", req, &id), 0);
	wait_status(db, id, "succeeded");
	json_t *v;
	assert_int_equal(agentd_runs_get(db, "acme", id, &v), 0);
	assert_string_equal(json_string_value(json_object_get(v, "answer")), "hello");
	assert_string_equal(json_string_value(json_object_get(v, "input")), "hello");
	assert_int_equal(json_array_size(json_object_get(v, "steps")), 3);
	/* created + 6 step events + completed */
	assert_int_equal(json_integer_value(json_object_get(v, "events")), 8);
	json_decref(v);
	assert_int_equal(agentd_runs_get(db, "globex", id, &v), AG_ENOTFOUND);

	json_t *evs;
	bool done;
	assert_int_equal(agentd_runs_events(db, "acme", id, 0, 3, &evs, &done), 0);
	assert_int_equal(json_array_size(evs), 3);
	assert_false(done);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(evs, 0), "id")), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(evs, 0), "event")),
			    "run.created");
	json_decref(evs);
	assert_int_equal(agentd_runs_events(db, "acme", id, 3, 100, &evs, &done), 0);
	assert_int_equal(json_array_size(evs), 5);
	assert_true(done);
	assert_string_equal(json_string_value(json_object_get(json_array_get(evs, 4), "event")),
			    "run.completed");
	json_decref(evs);

	/* An executor error fails the run with its message. */
	char *id2;
	json_object_set_new(req, "input", json_string("fail"));
	assert_int_equal(agentd_runs_submit(r, db, "agent", "acme", "ana", "analyst", req, &id2), 0);
	wait_status(db, id2, "failed");
	assert_int_equal(agentd_runs_get(db, "acme", id2, &v), 0);
	assert_string_equal(json_string_value(json_object_get(v, "error")), "scripted failure");
	json_decref(v);

	json_t *list;
	assert_int_equal(agentd_runs_list(db, "acme", NULL, NULL, 10, &list), 0);
	assert_int_equal(json_array_size(list), 2);
	json_decref(list);
	assert_int_equal(agentd_runs_list(db, "acme", NULL, "failed", 10, &list), 0);
	assert_int_equal(json_array_size(list), 1);
	json_decref(list);
	assert_int_equal(agentd_runs_list(db, "globex", NULL, NULL, 10, &list), 0);
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);

	json_decref(req);
	ag_free(id);
	ag_free(id2);
	agentd_runs_stop(r);
	ag_db_close(db);
}

/* Pauses for approval once, then finishes according to the decision. */
static int exec_approval(agentd_run *run, void *cls)
{
	(void)cls;
	if (!run->approval) {
		agentd_run_emit(run, "run.step.completed", json_pack("{s:s}", "kind", "draft"), NULL);
		return agentd_run_wait_approval(run, json_pack("{s:s}", "step", "publish"));
	}
	bool ok = json_is_true(json_object_get(run->approval, "approved"));
	return agentd_run_finish(run, ok ? "succeeded" : "failed",
				 json_pack("{s:s}", "answer", ok ? "published" : "rejected"),
				 ok ? NULL : "rejected");
}

static void test_approval(void **state)
{
	(void)state;
	sqlite3 *db = fresh_db("runs2.db");
	agentd_runs *r;
	assert_int_equal(agentd_runs_start(&r, db_path, 1), 0);
	agentd_runs_set_executor(r, "workflow", exec_approval, NULL);
	json_t *req = json_object();
	char *id, *id2;
	assert_int_equal(agentd_runs_submit(r, db, "workflow", "acme", "ana", "analyst", req, &id), 0);
	assert_int_equal(agentd_runs_submit(r, db, "workflow", "acme", "ana", "analyst", req, &id2), 0);
	wait_status(db, id, "waiting_approval");
	wait_status(db, id2, "waiting_approval");
	assert_int_equal(agentd_runs_approve(r, db, "globex", id, "eve", true, NULL), AG_ENOTFOUND);
	assert_int_equal(agentd_runs_approve(r, db, "acme", id, "boss", true, "fine"), 0);
	assert_int_equal(agentd_runs_approve(r, db, "acme", id2, "boss", false, "no"), 0);
	wait_status(db, id, "succeeded");
	wait_status(db, id2, "failed");
	assert_int_equal(agentd_runs_approve(r, db, "acme", id, "boss", true, NULL), AG_ECONFLICT);
	json_t *v;
	assert_int_equal(agentd_runs_get(db, "acme", id, &v), 0);
	assert_string_equal(json_string_value(json_object_get(v, "answer")), "published");
	assert_string_equal(json_string_value(json_object_get(json_object_get(v, "approval"), "user")),
			    "boss");
	json_decref(v);
	json_decref(req);
	ag_free(id);
	ag_free(id2);
	agentd_runs_stop(r);
	ag_db_close(db);
}

/* Works until cancelled (by a user or a shutdown), saving its progress as it goes. */
static int exec_long(agentd_run *run, void *cls)
{
	(void)cls;
	json_int_t done = run->state ? json_integer_value(json_object_get(run->state, "done")) : 0;
	if (done >= 3)
		return agentd_run_finish(run, "succeeded", json_pack("{s:I}", "resumed_at", done), NULL);
	while (!agentd_run_cancelled(run)) {
		done++;
		agentd_run_save_state(run, json_pack("{s:I}", "done", done));
		agentd_run_emit(run, "run.step.completed", json_pack("{s:I}", "index", done), NULL);
		usleep(5000);
	}
	return 0;
}

static void test_cancel_and_resume_after_restart(void **state)
{
	(void)state;
	sqlite3 *db = fresh_db("runs3.db");
	agentd_runs *r;
	assert_int_equal(agentd_runs_start(&r, db_path, 2), 0);
	agentd_runs_set_executor(r, "agent", exec_long, NULL);
	json_t *req = json_object();
	char *a, *b;
	assert_int_equal(agentd_runs_submit(r, db, "agent", "acme", "u", "analyst", req, &a), 0);
	assert_int_equal(agentd_runs_submit(r, db, "agent", "acme", "u", "analyst", req, &b), 0);
	wait_status(db, a, "running");
	wait_status(db, b, "running");
	while (agentd_runs_last_event(r, a) < 5)
		usleep(1000);
	assert_int_equal(agentd_runs_cancel(r, db, "globex", a), AG_ENOTFOUND);
	assert_int_equal(agentd_runs_cancel(r, db, "acme", a), 0);
	wait_status(db, a, "cancelled");
	assert_int_equal(agentd_runs_cancel(r, db, "acme", a), AG_ECONFLICT);
	while (agentd_runs_last_event(r, b) < 5)
		usleep(1000);
	/* The daemon stops with b running: b stays running in the store... */
	agentd_runs_stop(r);
	char buf[32];
	assert_string_equal(status_of(db, b, buf, sizeof buf), "running");
	/* ...and a new start resumes it from its saved state. */
	assert_int_equal(agentd_runs_start(&r, db_path, 1), 0);
	agentd_runs_set_executor(r, "agent", exec_long, NULL);
	assert_int_equal(agentd_runs_resume(r, db), 0);
	wait_status(db, b, "succeeded");
	json_t *v;
	assert_int_equal(agentd_runs_get(db, "acme", b, &v), 0);
	assert_true(json_integer_value(json_object_get(v, "resumed_at")) >= 3);
	json_decref(v);
	json_decref(req);
	ag_free(a);
	ag_free(b);
	agentd_runs_stop(r);
	ag_db_close(db);
}

static void test_cancel_waiting_and_unknown_kind(void **state)
{
	(void)state;
	sqlite3 *db = fresh_db("runs4.db");
	agentd_runs *r;
	assert_int_equal(agentd_runs_start(&r, db_path, 1), 0);
	agentd_runs_set_executor(r, "workflow", exec_approval, NULL);
	json_t *req = json_object();
	char *id, *id2;
	assert_int_equal(agentd_runs_submit(r, db, "workflow", "acme", "u", "analyst", req, &id), 0);
	wait_status(db, id, "waiting_approval");
	assert_int_equal(agentd_runs_cancel(r, db, "acme", id), 0);
	char buf[32];
	assert_string_equal(status_of(db, id, buf, sizeof buf), "cancelled");
	assert_int_equal(agentd_runs_submit(r, db, "nothing", "acme", "u", "analyst", req, &id2), 0);
	wait_status(db, id2, "failed");
	json_decref(req);
	ag_free(id);
	ag_free(id2);
	agentd_runs_stop(r);
	ag_db_close(db);
}

int main(void)
{
	ag_alloc_init();
	ag_log_set_level(AG_LOG_WARN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lifecycle_and_events),
		cmocka_unit_test(test_approval),
		cmocka_unit_test(test_cancel_and_resume_after_restart),
		cmocka_unit_test(test_cancel_waiting_and_unknown_kind),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
