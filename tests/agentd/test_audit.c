/* Unit tests of the audit log (agentd/audit*.c): the chain, tamper detection
 * (change, delete, reorder, recomputed chain, cut tail), checkpoints, the
 * append-only triggers, transactions, retention, the key, queries, threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentd/audit_internal.h"

static char dir[512], db_path[600];

static sqlite3 *fresh_db(void)
{
	static int n;
	const char *base = getenv("TEST_TMPDIR");
	snprintf(dir, sizeof dir, "%s/audit%d", base ? base : "/tmp", n++);
	assert_int_equal(ag_mkdirs(dir, 0700), 0);
	snprintf(db_path, sizeof db_path, "%s/agentd.db", dir);
	sqlite3 *db;
	assert_int_equal(ag_db_open(&db, db_path), 0);
	assert_int_equal(agentd_audit_migrate(db), 0);
	return db;
}

static int64_t append(agentd_audit *a, sqlite3 *db, const char *tenant, const char *user, const char *run,
		      int64_t step, const char *kind, json_t *data)
{
	agentd_audit_event ev = {kind, tenant, user, run, step, data};
	int64_t seq = 0;
	assert_int_equal(agentd_audit_append(a, db, &ev, &seq), 0);
	json_decref(data);
	return seq;
}

/* n records of assorted kinds over two tenants. */
static void fill(agentd_audit *a, sqlite3 *db, int n)
{
	static const char *const kinds[] = {"request",    "auth",      "policy", "retrieval",
					    "model_call", "tool_call", "answer"};
	for (int i = 0; i < n; i++) {
		char run[32];
		snprintf(run, sizeof run, "run_%d", i / 7);
		int64_t seq =
			append(a, db, i % 3 ? "acme" : "globex", i % 2 ? "bob" : "alice", i % 5 ? run : NULL,
			       i % 7, kinds[i % 7],
			       json_pack("{s:i, s:s, s:[i,i]}", "i", i, "note", "x", "chunks", i, i + 1));
		assert_int_equal(seq, i + 1);
	}
}

static agentd_audit_report verify(agentd_audit *a, sqlite3 *db, const agentd_audit_checkpoint *ext, size_t n)
{
	agentd_audit_report r;
	assert_int_equal(agentd_audit_verify(a, db, ext, n, &r), 0);
	return r;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
	int rc = ag_db_exec(db, sql);
	if (rc)
		fail_msg("%s: %s", sql, ag_error_last());
}

/* What an attacker with the database file can do: lift the triggers. */
static void drop_guards(sqlite3 *db)
{
	exec_ok(db, "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;"
		    "DROP TRIGGER audit_checkpoints_no_update; DROP TRIGGER audit_checkpoints_no_delete;"
		    "DROP TRIGGER audit_anchor_forward;");
}

static void test_chain_verifies(void **state)
{
	(void)state;
	sqlite3 *db = fresh_db();
	agentd_audit *a;
	assert_int_equal(agentd_audit_open(&a, db, dir, 5), 0);
	agentd_audit_report r = verify(a, db, NULL, 0);
	assert_true(r.ok);
	assert_int_equal(r.records, 0);
	fill(a, db, 23);
	r = verify(a, db, NULL, 0);
	assert_true(r.ok);
	assert_int_equal(r.records, 23);
	assert_int_equal(r.checkpoints, 4); /* 5, 10, 15, 20 */
	assert_int_equal(r.first_seq, 1);
	assert_int_equal(r.head_seq, 23);
	/* The key file exists with mode 0600. */
	char kp[700];
	snprintf(kp, sizeof kp, "%s/audit.key", dir);
	struct stat sb;
	assert_int_equal(stat(kp, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	/* Each record links to the one before. */
	sqlite3_stmt *st;
	assert_int_equal(
		ag_db_prepare(db, &st,
			      "SELECT count(*) FROM audit_log a JOIN audit_log b ON b.seq = a.seq + 1 "
			      "WHERE b.prev_hash = a.hash"),
		0);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 22);
	sqlite3_finalize(st);
	agentd_audit_free(a);
	ag_db_close(db);
}

static void test_canonical_data(void **state)
{
	(void)state;
	sqlite3 *db = fresh_db();
	agentd_audit *a;
	assert_int_equal(agentd_audit_open(&a, db, dir, 0), 0);
	json_t *d1 = json_object(), *d2 = json_object();
	json_object_set_new(d1, "b", json_integer(2));
	json_object_set_new(d1, "a", json_string("x"));
	json_object_set_new(d2, "a", json_string("x"));
	json_object_set_new(d2, "b", json_integer(2));
	append(a, db, "t", "u", NULL, 0, "k", d1);
	append(a, db, "t", "u", NULL, 0, "k", d2);
	append(a, db, "t", "u", NULL, 0, "k", NULL);
	sqlite3_stmt *st;
	assert_int_equal(ag_db_prepare(db, &st, "SELECT data FROM audit_log ORDER BY seq"), 0);
	const char *want[] = {"{\"a\":\"x\",\"b\":2}", "{\"a\":\"x\",\"b\":2}", "{}"};
	for (int i = 0; i < 3; i++) {
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(st, 0), want[i]);
	}
	sqlite3_finalize(st);
	/* Bad events are refused with a message. */
	json_t *arr = json_array();
	agentd_audit_event bad_data = {"k", "t", "u", NULL, 0, arr};
	assert_int_equal(agentd_audit_append(a, db, &bad_data, NULL), AG_EINVAL);
	json_decref(arr);
	agentd_audit_event no_kind = {NULL, "t", "u", NULL, 0, NULL};
	assert_int_equal(agentd_audit_append(a, db, &no_kind, NULL), AG_EINVAL);
	assert_true(verify(a, db, NULL, 0).ok);
	agentd_audit_free(a);
	ag_db_close(db);
}

/* Changing any field of any record is caught at that record. */
static void test_change_detected(void **state)
{
	(void)state;
	static const char *const edits[] = {
		"UPDATE audit_log SET data = '{\"i\":99}' WHERE seq = %d",
		"UPDATE audit_log SET tenant = 'evil' WHERE seq = %d",
		"UPDATE audit_log SET user = 'mallory' WHERE seq = %d",
		"UPDATE audit_log SET kind = 'answer2' WHERE seq = %d",
		"UPDATE audit_log SET step = step + 1 WHERE seq = %d",
		"UPDATE audit_log SET time_ms = time_ms - 1000 WHERE seq = %d",
		"UPDATE audit_log SET run_id = iif(run_id IS NULL, 'run_x', NULL) WHERE seq = %d",
		"UPDATE audit_log SET hash = randomblob(32) WHERE seq = %d",
		"UPDATE audit_log SET prev_hash = randomblob(32) WHERE seq = %d",
	};
	static const int targets[] = {1, 12, 23};
	for (size_t e = 0; e < sizeof edits / sizeof edits[0]; e++) {
		for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
			sqlite3 *db = fresh_db();
			agentd_audit *a;
			assert_int_equal(agentd_audit_open(&a, db, dir, 5), 0);
			fill(a, db, 23);
			drop_guards(db);
			char sql[256];
			snprintf(sql, sizeof sql, edits[e], targets[t]);
			exec_ok(db, sql);
			agentd_audit_report r = verify(a, db, NULL, 0);
			if (r.ok || r.first_bad != targets[t])
				fail_msg("edit '%s' not caught at %d (ok %d, first_bad %lld: %s)", sql,
					 targets[t], r.ok, (long long)r.first_bad, r.reason);
			agentd_audit_free(a);
			ag_db_close(db);
		}
	}
}

static void test_delete_detected(void **state)
{
	(void)state;
	static const int targets[] = {1, 9, 22};
	for (size_t t = 0; t < 3; t++) {
		sqlite3 *db = fresh_db();
		agentd_audit *a;
		assert_int_equal(agentd_audit_open(&a, db, dir, 0), 0);
		fill(a, db, 23);
		drop_guards(db);
		char sql[128];
		snprintf(sql, sizeof sql, "DELETE FROM audit_log WHERE seq = %d", targets[t]);
		exec_ok(db, sql);
		agentd_audit_report r = verify(a, db, NULL, 0);
		assert_false(r.ok);
		assert_int_equal(r.first_bad, targets[t]);
		assert_non_null(strstr(r.reason, "missing"));
		agentd_audit_free(a);
		ag_db_close(db);
	}
}

/* Reordering: two records trade places (contents, and also with their hashes). */
static void test_reorder_detected(void **state)
{
	(void)state;
	static const char *const swaps[] = {
		/* contents swapped, chain columns left */
		"CREATE TEMP TABLE x AS SELECT * FROM audit_log WHERE seq IN (5, 9);"
		"UPDATE audit_log SET (time_ms, tenant, user, run_id, step, kind, data) = "
		"(SELECT time_ms, tenant, user, run_id, step, kind, data FROM x WHERE x.seq = 14 - "
		"audit_log.seq) "
		"WHERE seq IN (5, 9);",
		/* whole rows renumbered, hashes and all */
		"UPDATE audit_log SET seq = -seq WHERE seq IN (5, 9);"
		"UPDATE audit_log SET seq = CASE seq WHEN -5 THEN 9 ELSE 5 END WHERE seq IN (-5, -9);",
	};
	for (size_t s = 0; s < 2; s++) {
		sqlite3 *db = fresh_db();
		agentd_audit *a;
		assert_int_equal(agentd_audit_open(&a, db, dir, 0), 0);
		fill(a, db, 12);
		drop_guards(db);
		exec_ok(db, swaps[s]);
		agentd_audit_report r = verify(a, db, NULL, 0);
		assert_false(r.ok);
		assert_int_equal(r.first_bad, 5);
		agentd_audit_free(a);
		ag_db_close(db);
	}
}

/* An attacker who edits a record and recomputes every later hash is caught by
 * the next signed checkpoint (they lack nothing but the key). */
static void test_recomputed_chain_caught_by_checkpoint(void **state)
{
	(void)state;
	sqlite3 *db = fresh_db();
	agentd_audit *a;
	assert_int_equal(agentd_audit_open(&a, db, dir, 10), 0);
	fill(a, db, 25);
	drop_guards(db);
	exec_ok(db, "UPDATE audit_log SET data = '{\"i\":\"forged\"}' WHERE seq = 7");
	/* Rehash from 7 on with the (documented) canonical encoding. */
	sqlite3_stmt *st, *up;
	assert_int_equal(ag_db_prepare(db, &st,
				       "SELECT " AUDIT_RECORD_COLUMNS
				       " FROM audit_log WHERE seq >= 6 ORDER BY seq"),
			 0);
	assert_int_equal(ag_db_prepare(db, &up, "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?"),
			 0);
	uint8_t prev[32];
	bool first = true;
	struct row {
		int64_t seq;
		uint8_t prev[32], hash[32];
	} rows[32];
	int n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		audit_fields f = {0};
		f.seq = sqlite3_column_int64(st, 0);
		if (first) {
			memcpy(prev, sqlite3_column_blob(st, 9), 32);
			first = false;
			continue;
		}
		f.time_ms = sqlite3_column_int64(st, 1);
		f.tenant = (const char *)sqlite3_column_text(st, 2);
		f.tenant_len = strlen(f.tenant);
		f.user = (const char *)sqlite3_column_text(st, 3);
		f.user_len = strlen(f.user);
		f.run_id = (const char *)sqlite3_column_text(st, 4);
		f.run_id_len = f.run_id ? strlen(f.run_id) : 0;
		f.step = sqlite3_column_int64(st, 5);
		f.kind = (const char *)sqlite3_column_text(st, 6);
		f.kind_len = strlen(f.kind);
		f.data = (const char *)sqlite3_column_text(st, 7);
		f.data_len = strlen(f.data);
		f.prev_hash = prev;
		rows[n].seq = f.seq;
		memcpy(rows[n].prev, prev, 32);
		audit_hash_record(rows[n].hash, &f);
		memcpy(prev, rows[n].hash, 32);
		n++;
	}
	sqlite3_finalize(st);
	for (int i = 0; i < n; i++) {
		sqlite3_bind_blob(up, 1, rows[i].prev, 32, SQLITE_STATIC);
		sqlite3_bind_blob(up, 2, rows[i].hash, 32, SQLITE_STATIC);
		sqlite3_bind_int64(up, 3, rows[i].seq);
		assert_int_equal(sqlite3_step(up), SQLITE_DONE);
		sqlite3_reset(up);
	}
	sqlite3_finalize(up);
	agentd_audit_report r = verify(a, db, NULL, 0);
	assert_false(r.ok);
	assert_int_equal(r.first_bad, 10); /* the first checkpoint after the edit */
	assert_non_null(strstr(r.reason, "checkpoint"));
	/* Re-signing needs the key: a checkpoint with a made-up signature fails too. */
	exec_ok(db, "DELETE FROM audit_checkpoints");
	exec_ok(db, "INSERT INTO audit_checkpoints SELECT seq, hash, time_ms, randomblob(32), randomblob(64) "
		    "FROM audit_log WHERE seq = 20");
	r = verify(a, db, NULL, 0);
	assert_false(r.ok);
	assert_int_equal(r.first_bad, 20);
	agentd_audit_free(a);
	ag_db_close(db);
}

/* The tail after an exported checkpoint is cut: the export notices. */
static void test_cut_tail_detected_by_export(void **state)
{
	(void)state;
	sqlite3 *db = fresh_db();
	agentd_audit *a;
	assert_int_equal(agentd_audit_open(&a, db, dir, 0), 0);
	fill(a, db, 15);
	agentd_audit_checkpoint cp;
	assert_int_equal(agentd_audit_checkpoint_now(a, db, &cp), 0);
	assert_int_equal(cp.seq, 15);
	for (int i = 0; i < 5; i++)
		append(a, db, "acme", "bob", "run_z", i, "model_call", NULL);
	assert_int_equal(agentd_audit_checkpoint_now(a, db, &cp), 0);
	assert_int_equal(cp.seq, 20);
	/* Export the checkpoints to a file kept elsewhere, then read them back. */
	char path[700];
	snprintf(path, sizeof path, "%s/checkpoints.jsonl", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	int64_t n;
	assert_int_equal(agentd_audit_export_checkpoints(db, f, &n), 0);
	fclose(f);
	assert_int_equal(n, 2);
	agentd_audit_checkpoint *ext;
	size_t next;
	assert_int_equal(agentd_audit_checkpoints_load(path, &ext, &next), 0);
	assert_int_equal(next, 2);
	assert_true(verify(a, db, ext, next).ok);
	/* Cut records 17..20 and the stored checkpoint that names them. */
	drop_guards(db);
	exec_ok(db, "DELETE FROM audit_log WHERE seq > 16; DELETE FROM audit_checkpoints WHERE seq > 16;");
	agentd_audit_report r = verify(a, db, NULL, 0);
	assert_true(r.ok); /* without an outside copy the shorter chain is self-consistent */
	r = verify(a, db, ext, next);
	assert_false(r.ok);
	assert_int_equal(r.first_bad, 17);
	assert_non_null(strstr(r.reason, "missing"));
	/* A forged external checkpoint (bad signature) is refused, not trusted. */
	ext[1].seq = 16;
	r = verify(a, db, ext, next);
	assert_false(r.ok);
	assert_int_equal(r.first_bad, 16);
	assert_non_null(strstr(r.reason, "signature"));
	ag_free(ext);
	agentd_audit_free(a);
	ag_db_close(db);
}

static void test_triggers_refuse_edits(void **state)
{
	(void)state;
	sqlite3 *db = fresh_db();
	agentd_audit *a;
	assert_int_equal(agentd_audit_open(&a, db, dir, 2), 0);
	fill(a, db, 4);
	assert_int_not_equal(ag_db_exec(db, "UPDATE audit_log SET user = 'x' WHERE seq = 2"), 0);
	assert_non_null(strstr(ag_error_last(), "append-only"));
	assert_int_not_equal(ag_db_exec(db, "DELETE FROM audit_log WHERE seq = 4"), 0);
	assert_non_null(strstr(ag_error_last(), "append-only"));
	assert_int_not_equal(ag_db_exec(db, "DELETE FROM audit_checkpoints"), 0);
	assert_int_not_equal(ag_db_exec(db, "UPDATE audit_checkpoints SET time_ms = 0"), 0);
	assert_true(verify(a, db, NULL, 0).ok);
	agentd_audit_free(a);
	ag_db_close(db);
}

/* A step and its record commit or roll back together. */
static void test_transactions(void **state)
{
	(void)state;
	sqlite3 *db = fresh_db();
	agentd_audit *a;
	assert_int_equal(agentd_audit_open(&a, db, dir, 3), 0);
	exec_ok(db, "CREATE TABLE steps(run TEXT, step INTEGER)");
	fill(a, db, 2);
	assert_int_equal(ag_db_begin(db), 0);
	exec_ok(db, "INSERT INTO steps VALUES ('r1', 0)");
	assert_int_equal(append(a, db, "acme", "bob", "r1", 0, "tool_call", NULL), 3); /* and checkpoint 3 */
	ag_db_rollback(db);
	sqlite3_stmt *st;
	assert_int_equal(ag_db_prepare(db, &st,
				       "SELECT (SELECT count(*) FROM audit_log), (SELECT count(*) FROM "
				       "audit_checkpoints), (SELECT count(*) FROM steps)"),
			 0);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 2);
	assert_int_equal(sqlite3_column_int(st, 1), 0);
	assert_int_equal(sqlite3_column_int(st, 2), 0);
	sqlite3_reset(st);
	assert_int_equal(ag_db_begin(db), 0);
	exec_ok(db, "INSERT INTO steps VALUES ('r1', 0)");
	assert_int_equal(append(a, db, "acme", "bob", "r1", 0, "tool_call", NULL), 3);
	assert_int_equal(append(a, db, "acme", "bob", "r1", 1, "answer", NULL), 4);
	assert_int_equal(ag_db_commit(db), 0);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 4);
	assert_int_equal(sqlite3_column_int(st, 1), 1);
	assert_int_equal(sqlite3_column_int(st, 2), 1);
	sqlite3_finalize(st);
	/* A failed append inside a transaction leaves the caller's transaction usable. */
	assert_int_equal(ag_db_begin(db), 0);
	agentd_audit_event bad = {"k", "t", NULL, NULL, 0, NULL};
	assert_int_equal(agentd_audit_append(a, db, &bad, NULL), AG_EINVAL);
	assert_int_equal(append(a, db, "t", "u", NULL, 0, "k", NULL), 5);
	assert_int_equal(ag_db_commit(db), 0);
	assert_true(verify(a, db, NULL, 0).ok);
	agentd_audit_free(a);
	ag_db_close(db);
}

/* Several events as one unit: all or none. */
static void test_append_many(void **state)
{
	(void)state;
	sqlite3 *db = fresh_db();
	agentd_audit *a;
	assert_int_equal(agentd_audit_open(&a, db, dir, 0), 0);
	json_t *d = json_pack("{s:s}", "path", "/v1/runs");
	agentd_audit_event evs[3] = {
		{"request", "", "", NULL, 0, d},
		{"auth", "acme", "bob", NULL, 0, NULL},
		{"auth", "acme", NULL, NULL, 0, NULL}, /* invalid: no user */
	};
	int64_t first = 0;
	assert_int_equal(agentd_audit_append_many(a, db, evs, 3, &first), AG_EINVAL);
	agentd_audit_report r = verify(a, db, NULL, 0);
	assert_int_equal(r.records, 0);
	assert_int_equal(agentd_audit_append_many(a, db, evs, 2, &first), 0);
	assert_int_equal(first, 1);
	assert_int_equal(agentd_audit_append_many(a, db, evs, 2, &first), 0);
	assert_int_equal(first, 3);
	r = verify(a, db, NULL, 0);
	assert_true(r.ok);
	assert_int_equal(r.records, 4);
	json_decref(d);
	agentd_audit_free(a);
	ag_db_close(db);
}

int main(void)
{
	ag_alloc_init();
	ag_log_set_level(AG_LOG_WARN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chain_verifies),
		cmocka_unit_test(test_canonical_data),
		cmocka_unit_test(test_change_detected),
		cmocka_unit_test(test_delete_detected),
		cmocka_unit_test(test_reorder_detected),
		cmocka_unit_test(test_recomputed_chain_caught_by_checkpoint),
		cmocka_unit_test(test_cut_tail_detected_by_export),
		cmocka_unit_test(test_triggers_refuse_edits),
		cmocka_unit_test(test_transactions),
		cmocka_unit_test(test_append_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
