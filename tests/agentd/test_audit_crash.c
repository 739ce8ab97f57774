/* Crash test of the audit log: two writer processes run bursts of fake runs,
 * each run's steps written to a `steps` table together with their audit
 * records in one transaction, and are SIGKILLed mid-burst at a random moment.
 * Afterwards the chain must verify, every step must have its record (and every
 * step record its step), and no run may be half there. Repeated for several
 * rounds on the same database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agentd/audit.h"

#define STEPS_PER_RUN 5

static char dir[512], db_path[600];

/* The writer: never returns; reports each committed run with one byte on fd. */
static void writer(int id, int round, int fd)
{
	sqlite3 *db;
	agentd_audit *a;
	if (ag_db_open(&db, db_path) || agentd_audit_open(&a, db, dir, 7))
		_exit(3);
	for (int run = 0;; run++) {
		char run_id[64];
		snprintf(run_id, sizeof run_id, "run_%d_%d_%d", round, id, run);
		if (ag_db_begin(db))
			_exit(4);
		for (int s = 0; s < STEPS_PER_RUN; s++) {
			sqlite3_stmt *st;
			if (ag_db_prepare(db, &st, "INSERT INTO steps(run, step) VALUES (?, ?)"))
				_exit(5);
			sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
			sqlite3_bind_int(st, 2, s);
			if (sqlite3_step(st) != SQLITE_DONE)
				_exit(6);
			sqlite3_finalize(st);
			json_t *d = json_pack("{s:s, s:i, s:s}", "kind",
					      s == STEPS_PER_RUN - 1 ? "answer" : "model_call", "tokens",
					      10 * s, "note", "crash test");
			if (agentd_audit_record(a, db, "step", "acme", "bob", run_id, s, d))
				_exit(7);
		}
		if (ag_db_commit(db))
			_exit(8);
		if (write(fd, "r", 1) != 1)
			_exit(9);
	}
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

static void test_sigkill_mid_burst(void **state)
{
	(void)state;
	const char *base = getenv("TEST_TMPDIR");
	snprintf(dir, sizeof dir, "%s/crash", base ? base : "/tmp");
	assert_int_equal(ag_mkdirs(dir, 0700), 0);
	snprintf(db_path, sizeof db_path, "%s/agentd.db", dir);
	sqlite3 *db;
	assert_int_equal(ag_db_open(&db, db_path), 0);
	assert_int_equal(agentd_audit_migrate(db), 0);
	assert_int_equal(ag_db_exec(db, "CREATE TABLE steps(run TEXT NOT NULL, step INTEGER NOT NULL, "
					"PRIMARY KEY (run, step))"),
			 0);
	ag_db_close(db); /* no connection may cross fork() */
	srand((unsigned)time(NULL));
	int64_t committed = 0;
	for (int round = 0; round < 4; round++) {
		int fds[2];
		assert_int_equal(pipe(fds), 0);
		pid_t pids[2];
		for (int w = 0; w < 2; w++) {
			pids[w] = fork();
			assert_true(pids[w] >= 0);
			if (pids[w] == 0) {
				close(fds[0]);
				writer(w, round, fds[1]);
			}
		}
		close(fds[1]);
		/* Let a few runs commit, then kill at a random moment inside the burst. */
		int want = 10 + rand() % 20, got = 0;
		char c;
		while (got < want && read(fds[0], &c, 1) == 1)
			got++;
		assert_int_equal(got, want); /* the writers really wrote */
		usleep((useconds_t)(rand() % 5000));
		for (int w = 0; w < 2; w++)
			kill(pids[w], SIGKILL);
		for (int w = 0; w < 2; w++) {
			int st;
			assert_int_equal(waitpid(pids[w], &st, 0), pids[w]);
			assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
		}
		while (read(fds[0], &c, 1) == 1)
			got++;
		close(fds[0]);
		committed += got;

		assert_int_equal(ag_db_open(&db, db_path), 0);
		agentd_audit *a;
		assert_int_equal(agentd_audit_open(&a, db, dir, 7), 0);
		agentd_audit_report r;
		assert_int_equal(agentd_audit_verify(a, db, NULL, 0, &r), 0);
		if (!r.ok)
			fail_msg("round %d: chain broken at %lld: %s", round, (long long)r.first_bad,
				 r.reason);
		/* Every step has its record and every step record its step. */
		assert_int_equal(
			count(db, "SELECT count(*) FROM steps s WHERE NOT EXISTS (SELECT 1 FROM audit_log a "
				  "WHERE a.kind = 'step' AND a.run_id = s.run AND a.step = s.step)"),
			0);
		assert_int_equal(
			count(db, "SELECT count(*) FROM audit_log a WHERE a.kind = 'step' AND NOT EXISTS "
				  "(SELECT 1 FROM steps s WHERE s.run = a.run_id AND s.step = a.step)"),
			0);
		/* Runs are whole. */
		assert_int_equal(
			count(db, "SELECT count(*) FROM (SELECT run FROM steps GROUP BY run HAVING count(*) "
				  "!= 5)"),
			0);
		/* At least every run reported committed is there (a commit may finish just before its byte).
		 */
		assert_true(count(db, "SELECT count(DISTINCT run) FROM steps") >= committed);
		assert_int_equal(r.records, count(db, "SELECT count(*) FROM audit_log"));
		agentd_audit_free(a);
		ag_db_close(db);
	}
}

int main(void)
{
	ag_alloc_init();
	ag_log_set_level(AG_LOG_WARN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sigkill_mid_burst),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
