/* Fuzz harness: a checkpoint file given to `agentd audit verify --checkpoint`
 * (JSON Lines from outside), parsed and then checked against a small chain.
 * Invariant: whatever the input, no checkpoint the harness did not sign is
 * accepted (the key is made fresh each run, so no input can carry a valid
 * signature). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentd/audit.h"

static sqlite3 *db;
static agentd_audit *audit;
static char file[600], tmpdir[64];

/* Leaves no temporary files behind. */
static void cleanup(void)
{
	char path[700];
	agentd_audit_free(audit);
	ag_db_close(db);
	static const char *const names[] = {"agentd.db", "agentd.db-wal", "agentd.db-shm", "audit.key",
					    "input.jsonl"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
		unlink(path);
	}
	rmdir(tmpdir);
}

static void setup(void)
{
	ag_alloc_init();
	ag_log_set_level(AG_LOG_OFF);
	char path[600];
	snprintf(tmpdir, sizeof tmpdir, "/tmp/fuzz-audit-XXXXXX");
	if (!mkdtemp(tmpdir))
		abort();
	const char *dir = tmpdir;
	snprintf(path, sizeof path, "%s/agentd.db", dir);
	snprintf(file, sizeof file, "%s/input.jsonl", dir);
	if (ag_db_open(&db, path) || agentd_audit_migrate(db) || agentd_audit_open(&audit, db, dir, 2))
		abort();
	for (int i = 0; i < 5; i++)
		if (agentd_audit_record(audit, db, "request", "acme", "bob", NULL, i, NULL))
			abort();
	atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!db)
		setup();
	FILE *f = fopen(file, "w");
	if (!f)
		abort();
	if (size && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);
	agentd_audit_checkpoint *cps;
	size_t n;
	if (agentd_audit_checkpoints_load(file, &cps, &n) == 0) {
		agentd_audit_report r;
		if (agentd_audit_verify(audit, db, cps, n, &r) != 0)
			__builtin_trap();
		if (n > 0 && r.ok)
			__builtin_trap(); /* a forged checkpoint was accepted */
		ag_free(cps);
	}
	return 0;
}
