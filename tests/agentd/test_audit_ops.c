/* Unit tests of the audit log's operations: retention archiving across the
 * anchor, the signing key's life, tenant-scoped queries, concurrent appends
 * from many connections, and the `agentd audit` subcommand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentd/audit.h"
#include "agentd/cli.h"

static char dir[512], db_path[600];

static sqlite3 *fresh_db(void)
{
	static int n;
	const char *base = getenv("TEST_TMPDIR");
	snprintf(dir, sizeof dir, "%s/ops%d", base ? base : "/tmp", n++);
	assert_int_equal(ag_mkdirs(dir, 0700), 0);
	snprintf(db_path, sizeof db_path, "%s/agentd.db", dir);
	sqlite3 *db;
	assert_int_equal(ag_db_open(&db, db_path), 0);
	assert_int_equal(agentd_audit_migrate(db), 0);
	return db;
}

static void add(agentd_audit *a, sqlite3 *db, const char *tenant, const char *user, const char *run, int step,
		const char *kind)
{
	assert_int_equal(
		agentd_audit_record(a, db, kind, tenant, user, run, step, json_pack("{s:i}", "step", step)),
		0);
}

static int64_t count(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	assert_int_equal(ag_db_prepare(db, &st, sql), 0);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static int lines_of_type(const char *path, const char *type)
{
	char *text;
	size_t len;
	assert_int_equal(ag_read_file(path, 1 << 24, &text, &len), 0);
	char needle[64];
	snprintf(needle, sizeof needle, "\"type\":\"%s\"", type);
	int n = 0;
	for (const char *p = text; (p = strstr(p, needle)); p++)
		n++;
	ag_free(text);
	return n;
}

static void test_archive_keeps_chain_verifiable(void **state)
{
	(void)state;
	sqlite3 *db = fresh_db();
	agentd_audit *a;
	assert_int_equal(agentd_audit_open(&a, db, dir, 0), 0);
	for (int i = 0; i < 10; i++)
		add(a, db, "acme", "bob", "run_old", i, "model_call");
	usleep(20000);
	int64_t cut = ag_now_ms();
	usleep(20000);
	for (int i = 0; i < 5; i++)
		add(a, db, "acme", "bob", "run_new", i, "model_call");
	char path[700];
	snprintf(path, sizeof path, "%s/archive1.jsonl", dir);
	int64_t n = -1;
	assert_int_equal(agentd_audit_archive(a, db, cut, path, &n), 0);
	assert_int_equal(n, 10);
	assert_int_equal(count(db, "SELECT count(*) FROM audit_log"), 5);
	assert_int_equal(count(db, "SELECT min(seq) FROM audit_log"), 11);
	assert_int_equal(lines_of_type(path, "record"), 10);
	assert_int_equal(lines_of_type(path, "checkpoint"), 1);
	assert_int_equal(lines_of_type(path, "segment"), 1);
	agentd_audit_report r;
	assert_int_equal(agentd_audit_verify(a, db, NULL, 0, &r), 0);
	assert_true(r.ok);
	assert_int_equal(r.first_seq, 11);
	assert_int_equal(r.records, 5);
	/* The archive's checkpoint verifies as an external one. */
	agentd_audit_checkpoint *ext;
	size_t next;
	assert_int_equal(agentd_audit_checkpoints_load(path, &ext, &next), 0);
	assert_int_equal(next, 1);
	assert_int_equal(ext[0].seq, 10);
	assert_int_equal(agentd_audit_verify(a, db, ext, next, &r), 0);
	assert_true(r.ok);
	ag_free(ext);
	/* Nothing older left: a second run archives nothing and writes no file. */
	snprintf(path, sizeof path, "%s/archive2.jsonl", dir);
	assert_int_equal(agentd_audit_archive(a, db, cut, path, &n), 0);
	assert_int_equal(n, 0);
	assert_int_not_equal(access(path, F_OK), 0);
	/* Records above the anchor still cannot be deleted; appends continue the chain. */
	assert_int_not_equal(ag_db_exec(db, "DELETE FROM audit_log WHERE seq = 12"), 0);
	assert_int_not_equal(ag_db_exec(db, "UPDATE audit_anchor SET seq = 3"), 0);
	add(a, db, "acme", "bob", NULL, 0, "answer");
	assert_int_equal(count(db, "SELECT max(seq) FROM audit_log"), 16);
	/* Archive everything: the log is empty and the next record links to the anchor. */
	assert_int_equal(agentd_audit_archive(a, db, ag_now_ms() + 1000, path, &n), 0);
	assert_int_equal(n, 6);
	assert_int_equal(count(db, "SELECT count(*) FROM audit_log"), 0);
	assert_int_equal(agentd_audit_verify(a, db, NULL, 0, &r), 0);
	assert_true(r.ok);
	add(a, db, "acme", "bob", NULL, 0, "answer");
	assert_int_equal(count(db, "SELECT max(seq) FROM audit_log"), 17);
	assert_int_equal(agentd_audit_verify(a, db, NULL, 0, &r), 0);
	assert_true(r.ok);
	/* A forged anchor is caught: it no longer matches its signed checkpoint. */
	assert_int_equal(ag_db_exec(db, "DROP TRIGGER audit_anchor_forward"), 0);
	assert_int_equal(ag_db_exec(db, "UPDATE audit_anchor SET hash = randomblob(32)"), 0);
	assert_int_equal(agentd_audit_verify(a, db, NULL, 0, &r), 0);
	assert_false(r.ok);
	assert_int_equal(r.first_bad, 16);
	agentd_audit_free(a);
	ag_db_close(db);
}

/* Replaces the first occurrence of from with to in a file. */
static void edit_file(const char *path, const char *from, const char *to)
{
	char *text;
	size_t len;
	assert_int_equal(ag_read_file(path, 1 << 24, &text, &len), 0);
	char *at = strstr(text, from);
	assert_non_null(at);
	ag_buf b = AG_BUF_INIT;
	assert_int_equal(ag_buf_append(&b, text, (size_t)(at - text)), 0);
	assert_int_equal(ag_buf_puts(&b, to), 0);
	assert_int_equal(ag_buf_puts(&b, at + strlen(from)), 0);
	assert_int_equal(ag_write_file(path, b.data, b.len, 0600), 0);
	ag_buf_free(&b);
	ag_free(text);
}

/* Export and archive files verify on their own, and edits to them are caught. */
static void test_verify_files(void **state)
{
	(void)state;
	sqlite3 *db = fresh_db();
	agentd_audit *a;
	assert_int_equal(agentd_audit_open(&a, db, dir, 4), 0);
	for (int i = 0; i < 9; i++)
		add(a, db, "acme", i % 2 ? "bob" : "carol", "run_f", i, i == 8 ? "answer" : "model_call");
	char exp[700], arch[700];
	snprintf(exp, sizeof exp, "%s/export.jsonl", dir);
	snprintf(arch, sizeof arch, "%s/archive.jsonl", dir);
	FILE *f = fopen(exp, "w");
	assert_non_null(f);
	assert_int_equal(agentd_audit_export(db, 0, f, NULL), 0);
	assert_int_equal(agentd_audit_export_checkpoints(db, f, NULL), 0);
	fclose(f);
	agentd_audit_report r;
	assert_int_equal(agentd_audit_verify_file(a, exp, &r), 0);
	if (!r.ok)
		fail_msg("%s", r.reason);
	assert_int_equal(r.records, 9);
	assert_int_equal(r.checkpoints, 2);
	/* Archive the first 9 with a later cut; a second batch goes into the next archive. */
	int64_t n;
	assert_int_equal(agentd_audit_archive(a, db, ag_now_ms() + 1, arch, &n), 0);
	assert_int_equal(n, 9);
	assert_int_equal(agentd_audit_verify_file(a, arch, &r), 0);
	assert_true(r.ok);
	assert_int_equal(r.first_seq, 1);
	assert_int_equal(r.checkpoints, 3); /* 4, 8 and the archive's own at 9 */
	for (int i = 0; i < 3; i++)
		add(a, db, "acme", "bob", "run_g", i, "tool_call");
	snprintf(arch, sizeof arch, "%s/archive2.jsonl", dir);
	assert_int_equal(agentd_audit_archive(a, db, ag_now_ms() + 1, arch, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(agentd_audit_verify_file(a, arch, &r), 0);
	assert_true(r.ok);
	assert_int_equal(r.first_seq, 10); /* the segment continues from record 9's hash */
	/* Edits: a record's data, a dropped record line, a cut tail behind a checkpoint. */
	edit_file(exp, "\"user\":\"bob\"", "\"user\":\"eve\"");
	assert_int_equal(agentd_audit_verify_file(a, exp, &r), 0);
	assert_false(r.ok);
	assert_int_equal(r.first_bad, 2);
	edit_file(arch, "\"tool_call\"", "\"tool_kall\"");
	assert_int_equal(agentd_audit_verify_file(a, arch, &r), 0);
	assert_false(r.ok);
	assert_int_equal(r.first_bad, 10);
	/* The first archive without its last record line: its checkpoint names the missing tail. */
	snprintf(arch, sizeof arch, "%s/archive.jsonl", dir);
	char *text;
	size_t len;
	assert_int_equal(ag_read_file(arch, 1 << 24, &text, &len), 0);
	char *rec9 = strstr(text, "{\"type\":\"record\",\"seq\":9,");
	assert_non_null(rec9);
	char *eol = strchr(rec9, '\n');
	assert_non_null(eol);
	memmove(rec9, eol + 1, strlen(eol + 1) + 1);
	assert_int_equal(ag_write_file(arch, text, strlen(text), 0600), 0);
	ag_free(text);
	assert_int_equal(agentd_audit_verify_file(a, arch, &r), 0);
	assert_false(r.ok);
	assert_int_equal(r.first_bad, 9);
	assert_non_null(strstr(r.reason, "missing"));
	agentd_audit_free(a);
	ag_db_close(db);
}

/* The retention job: nothing when off or when nothing is old enough; bad ages refused. */
static void test_retain(void **state)
{
	(void)state;
	sqlite3 *db = fresh_db();
	agentd_audit *a;
	assert_int_equal(agentd_audit_open(&a, db, dir, 0), 0);
	for (int i = 0; i < 4; i++)
		add(a, db, "acme", "bob", NULL, i, "request");
	int64_t n = -1;
	char *path = (char *)1;
	assert_int_equal(agentd_audit_retain(a, db, dir, 0, &n, &path), 0);
	assert_int_equal(n, 0);
	assert_null(path);
	assert_int_equal(agentd_audit_retain(a, db, dir, 1, &n, &path), 0);
	assert_int_equal(n, 0);
	assert_null(path);
	/* (Archiving itself, with explicit cut times, is test_archive_keeps_chain_verifiable.) */
	assert_int_equal(agentd_audit_retain(a, db, dir, 100001, &n, &path), AG_EINVAL);
	agentd_audit_report r;
	assert_int_equal(agentd_audit_verify(a, db, NULL, 0, &r), 0);
	assert_true(r.ok);
	assert_int_equal(r.records, 4);
	agentd_audit_free(a);
	ag_db_close(db);
}

static void test_key_lifecycle(void **state)
{
	(void)state;
	sqlite3 *db = fresh_db();
	agentd_audit *a, *b;
	assert_int_equal(agentd_audit_open(&a, db, dir, 2), 0);
	assert_int_equal(agentd_audit_open(&b, db, dir, 2), 0);
	assert_memory_equal(agentd_audit_public_key(a), agentd_audit_public_key(b), 32);
	agentd_audit_free(b);
	for (int i = 0; i < 4; i++)
		add(a, db, "acme", "bob", NULL, i, "request");
	char key[700], saved[700];
	snprintf(key, sizeof key, "%s/audit.key", dir);
	snprintf(saved, sizeof saved, "%s/audit.key.saved", dir);
	/* With checkpoints stored, a lost key is an error, not a silent new key. */
	assert_int_equal(rename(key, saved), 0);
	assert_int_equal(agentd_audit_open(&b, db, dir, 2), AG_ECORRUPT);
	assert_non_null(strstr(ag_error_last(), "missing"));
	/* And a different key is refused. */
	const char other[] = "0000000000000000000000000000000000000000000000000000000000000001\n";
	assert_int_equal(ag_write_file(key, other, sizeof other - 1, 0600), 0);
	assert_int_equal(agentd_audit_open(&b, db, dir, 2), AG_ECORRUPT);
	assert_non_null(strstr(ag_error_last(), "not the key"));
	/* A malformed key file names the problem. */
	assert_int_equal(ag_write_file(key, "xyz", 3, 0600), 0);
	assert_int_equal(agentd_audit_open(&b, db, dir, 2), AG_ECORRUPT);
	assert_int_equal(rename(saved, key), 0);
	assert_int_equal(agentd_audit_open(&b, db, dir, 2), 0);
	agentd_audit_free(b);
	agentd_audit_free(a);
	ag_db_close(db);
}

static void test_list_filters_and_pages(void **state)
{
	(void)state;
	sqlite3 *db = fresh_db();
	agentd_audit *a;
	assert_int_equal(agentd_audit_open(&a, db, dir, 0), 0);
	for (int i = 0; i < 30; i++)
		add(a, db, i % 2 ? "acme" : "globex", i % 3 ? "bob" : "carol", i < 10 ? "run_a" : "run_b", i,
		    i % 5 ? "model_call" : "tool_call");
	agentd_audit_query q = {.tenant = "acme", .limit = 4};
	int64_t seen = 0;
	int pages = 0;
	for (;;) {
		json_t *page;
		assert_int_equal(agentd_audit_list(db, &q, &page), 0);
		json_t *recs = json_object_get(page, "records"), *rec;
		size_t i;
		json_array_foreach(recs, i, rec)
		{
			assert_string_equal(json_string_value(json_object_get(rec, "tenant")), "acme");
			assert_true(json_integer_value(json_object_get(rec, "seq")) > q.since);
			assert_int_equal(json_string_length(json_object_get(rec, "hash")), 64);
			seen++;
		}
		pages++;
		json_t *next = json_object_get(page, "next");
		if (json_is_null(next)) {
			json_decref(page);
			break;
		}
		q.since = json_integer_value(next);
		json_decref(page);
	}
	assert_int_equal(seen, 15);
	assert_int_equal(pages, 4);
	/* Filters combine. */
	agentd_audit_query f = {
		.tenant = "acme", .user = "bob", .run_id = "run_b", .kind = "tool_call", .limit = 100};
	json_t *page;
	assert_int_equal(agentd_audit_list(db, &f, &page), 0);
	/* i odd, i%3 != 0, i >= 10, i%5 == 0: 25 */
	json_t *recs = json_object_get(page, "records");
	assert_int_equal(json_array_size(recs), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(recs, 0), "step")), 25);
	json_decref(page);
	agentd_audit_query t = {.tenant = "acme", .from_ms = ag_now_ms() + 60000, .limit = 10};
	assert_int_equal(agentd_audit_list(db, &t, &page), 0);
	assert_int_equal(json_array_size(json_object_get(page, "records")), 0);
	json_decref(page);
	agentd_audit_query bad = {.tenant = "acme", .limit = 0};
	assert_int_equal(agentd_audit_list(db, &bad, &page), AG_EINVAL);
	agentd_audit_free(a);
	ag_db_close(db);
}

struct writer {
	agentd_audit *a;
	int id, n, rc;
};

static void *writer_main(void *p)
{
	struct writer *w = p;
	sqlite3 *db;
	if ((w->rc = ag_db_open(&db, db_path)))
		return NULL;
	char user[16];
	snprintf(user, sizeof user, "u%d", w->id);
	for (int i = 0; i < w->n && !w->rc; i++)
		w->rc = agentd_audit_record(w->a, db, "request", "acme", user, NULL, i, NULL);
	ag_db_close(db);
	return NULL;
}

/* Many connections appending at once make one unbroken chain. */
static void test_concurrent_appends(void **state)
{
	(void)state;
	sqlite3 *db = fresh_db();
	agentd_audit *a;
	assert_int_equal(agentd_audit_open(&a, db, dir, 50), 0);
	struct writer w[4];
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		w[i] = (struct writer){a, i, 100, 0};
		assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].rc, 0);
	}
	agentd_audit_report r;
	assert_int_equal(agentd_audit_verify(a, db, NULL, 0, &r), 0);
	assert_true(r.ok);
	assert_int_equal(r.records, 400);
	assert_int_equal(r.checkpoints, 8);
	assert_int_equal(count(db, "SELECT count(DISTINCT user) FROM audit_log"), 4);
	agentd_audit_free(a);
	ag_db_close(db);
}

static int cli(const char *const *args)
{
	char *argv[16];
	int argc = 0;
	for (; args[argc]; argc++)
		argv[argc] = (char *)args[argc];
	argv[argc] = NULL;
	return agentd_cmd_audit(argc, argv);
}

/* `agentd audit ...` on a real data directory. */
static void test_cli(void **state)
{
	(void)state;
	sqlite3 *db = fresh_db(); /* sets dir */
	ag_db_close(db);
	agentd_config *cfg;
	assert_int_equal(agentd_config_new(&cfg), 0);
	assert_int_equal(agentd_config_set(cfg, "data", dir), 0);
	assert_int_equal(agentd_store_open(cfg, &db), 0);
	agentd_config_free(cfg);
	agentd_audit *a;
	assert_int_equal(agentd_audit_open(&a, db, dir, 0), 0);
	for (int i = 0; i < 6; i++)
		add(a, db, "acme", "bob", "run_c", i, "tool_call");
	char cps[700], exp[700];
	snprintf(cps, sizeof cps, "%s/cps.jsonl", dir);
	snprintf(exp, sizeof exp, "%s/export.jsonl", dir);
	assert_int_equal(cli((const char *[]){"verify", "--data", dir, NULL}), 0);
	assert_int_equal(cli((const char *[]){"checkpoint", "--data", dir, NULL}), 0);
	assert_int_equal(cli((const char *[]){"checkpoints", "--data", dir, "--out", cps, NULL}), 0);
	assert_int_equal(cli((const char *[]){"export", "--data", dir, "--since", "2", "--out", exp, NULL}),
			 0);
	assert_int_equal(lines_of_type(exp, "record"), 4);
	assert_int_equal(cli((const char *[]){"verify", "--data", dir, "--checkpoint", cps, NULL}), 0);
	/* Cut the tail behind the exported checkpoint: verify fails (exit 1). */
	assert_int_equal(
		ag_db_exec(db, "DROP TRIGGER audit_log_no_delete; DROP TRIGGER audit_checkpoints_no_delete;"
			       "DELETE FROM audit_log WHERE seq = 6; DELETE FROM audit_checkpoints;"),
		0);
	assert_int_equal(cli((const char *[]){"verify", "--data", dir, NULL}), 0);
	assert_int_equal(cli((const char *[]){"verify", "--data", dir, "--checkpoint", cps, NULL}), 1);
	/* Usage errors are exit 2. */
	assert_int_equal(cli((const char *[]){"bogus", NULL}), 2);
	assert_int_equal(cli((const char *[]){"export", "--data", dir, "--since", "x", NULL}), 2);
	assert_int_equal(cli((const char *[]){"archive", "--data", dir, NULL}), 2);
	char arch[700];
	snprintf(arch, sizeof arch, "%s/arch.jsonl", dir);
	assert_int_equal(cli((const char *[]){"archive", "--data", dir, "--older-than-days", "1", "--out",
					      arch, NULL}),
			 0);
	agentd_audit_free(a);
	ag_db_close(db);
}

int main(void)
{
	ag_alloc_init();
	ag_log_set_level(AG_LOG_WARN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_archive_keeps_chain_verifiable),
		cmocka_unit_test(test_verify_files),
		cmocka_unit_test(test_retain),
		cmocka_unit_test(test_key_lifecycle),
		cmocka_unit_test(test_list_filters_and_pages),
		cmocka_unit_test(test_concurrent_appends),
		cmocka_unit_test(test_cli),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
