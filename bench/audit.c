/*
 * Audit log benchmark: append throughput (batched, 1000 records per
 * transaction, and one durable transaction per record) and verification
 * throughput, on a database of N records (default 1,000,000).
 *
 *   build/bench/audit [N] [DIR] [SINGLE]
 *
 * DIR (default: a new directory under $TMPDIR or /tmp) holds the database and
 * key; SINGLE (default 2000) is how many one-per-transaction appends to time.
 * Checkpoints every 1000 records, as the daemon's default. Prints figures.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agentd/audit.h"

static double secs(int64_t ns) { return (double)ns / 1e9; }

/* CPU time of this process: on a shared machine, wall time alone misleads. */
static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static json_t *event_data(long i)
{
	/* A model call's details: roughly what the planner records. */
	return json_pack("{s:s, s:i, s:i, s:f, s:[s,s,s], s:s}", "model", "jamba-tiny", "tokens_in",
			 (int)(i % 900), "tokens_out", (int)(i % 120), "ms", (double)(i % 1000) / 7.0,
			 "chunks", "chk_0001", "chk_0002", "chk_0003", "finish", "stop");
}

static int append(agentd_audit *a, sqlite3 *db, long i)
{
	static const char *const kinds[] = {"request",    "auth",      "retrieval",
					    "model_call", "tool_call", "answer"};
	char run[32];
	snprintf(run, sizeof run, "run_%08ld", i / 6);
	json_t *d = event_data(i);
	agentd_audit_event ev = {kinds[i % 6], i % 2 ? "acme" : "globex", "bob", run, i % 6, d};
	int rc = agentd_audit_append(a, db, &ev, NULL);
	json_decref(d);
	return rc;
}

static int die(const char *what)
{
	fprintf(stderr, "bench audit: %s: %s\n", what, ag_error_last());
	return 1;
}

int main(int argc, char **argv)
{
	ag_alloc_init();
	ag_log_set_level(AG_LOG_WARN);
	long long n = 1000000, single = 2000;
	if (argc > 1 && ag_parse_long(argv[1], 1, 100000000, &n))
		return die("N");
	if (argc > 3 && ag_parse_long(argv[3], 0, 10000000, &single))
		return die("SINGLE");
	char dir[512];
	if (argc > 2) {
		snprintf(dir, sizeof dir, "%s", argv[2]);
	} else {
		const char *t = getenv("TMPDIR");
		snprintf(dir, sizeof dir, "%s/agentd-bench-audit-XXXXXX", t ? t : "/tmp");
		if (!mkdtemp(dir))
			return perror("mkdtemp"), 1;
	}
	if (ag_mkdirs(dir, 0700))
		return die("data directory");
	char path[600];
	snprintf(path, sizeof path, "%s/agentd.db", dir);
	sqlite3 *db;
	agentd_audit *a;
	if (ag_db_open(&db, path) || agentd_audit_migrate(db) || agentd_audit_open(&a, db, dir, 1000))
		return die("open");
	printf("audit bench: %lld records in %s (synchronous=FULL, WAL, checkpoint every 1000)\n", n, path);

	int64_t t0 = ag_monotonic_ns();
	double c0 = cpu_now();
	for (long i = 0; i < n;) {
		if (ag_db_begin(db))
			return die("begin");
		for (int k = 0; k < 1000 && i < n; k++, i++)
			if (append(a, db, i))
				return die("append");
		if (ag_db_commit(db))
			return die("commit");
	}
	double dt = secs(ag_monotonic_ns() - t0);
	double ct = cpu_now() - c0;
	printf("append, 1000 per transaction: %lld records in %.2f s = %.0f appends/s (CPU %.2f s: "
	       "%.0f/CPU-s)\n",
	       n, dt, (double)n / dt, ct, (double)n / ct);

	t0 = ag_monotonic_ns();
	for (long i = 0; i < single; i++)
		if (append(a, db, n + i))
			return die("append");
	dt = secs(ag_monotonic_ns() - t0);
	if (single > 0)
		printf("append, 1 per transaction (each fsynced): %lld records in %.2f s = %.0f appends/s\n",
		       single, dt, (double)single / dt);

	agentd_audit_report r;
	t0 = ag_monotonic_ns();
	c0 = cpu_now();
	if (agentd_audit_verify(a, db, NULL, 0, &r))
		return die("verify");
	dt = secs(ag_monotonic_ns() - t0);
	ct = cpu_now() - c0;
	printf("verify: %lld records, %lld checkpoints in %.2f s = %.0f records/s (CPU %.2f s: %.0f/CPU-s) "
	       "(%s)\n",
	       (long long)r.records, (long long)r.checkpoints, dt, (double)r.records / dt, ct,
	       (double)r.records / ct, r.ok ? "ok" : r.reason);

	FILE *devnull = fopen("/dev/null", "w");
	int64_t exported = 0;
	t0 = ag_monotonic_ns();
	if (devnull && agentd_audit_export(db, 0, devnull, &exported))
		return die("export");
	dt = secs(ag_monotonic_ns() - t0);
	if (devnull)
		fclose(devnull);
	printf("export (JSON Lines to /dev/null): %lld records in %.2f s = %.0f records/s\n",
	       (long long)exported, dt, (double)exported / dt);

	agentd_audit_free(a);
	ag_db_close(db);
	return r.ok ? 0 : 1;
}
