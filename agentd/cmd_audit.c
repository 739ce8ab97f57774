/*
 * `agentd audit ...`: the operator's view of the audit log.
 *
 *   audit verify [--checkpoint FILE]     recompute the chain, check signatures (and the
 *                                        checkpoints in FILE, e.g. an earlier export kept
 *                                        elsewhere); exit 0 if intact, 1 naming the first
 *                                        bad record
 *   audit verify --file FILE             check an export or archive file on its own
 *   audit export [--since SEQ] [--out FILE]   records as JSON Lines
 *   audit checkpoint [--out FILE]        sign the chain head now; prints that checkpoint
 *   audit checkpoints [--out FILE]       every signed checkpoint as JSON Lines, for an
 *                                        outside copy that later detects a cut tail
 *   audit archive [--older-than-days N] [--out FILE]
 *                                        retention: move records older than N days
 *                                        (default audit_retention_days) to FILE
 *                                        (default DATA/audit-archive-<time>.jsonl)
 */
#include "agentd/audit.h"
#include "agentd/cli.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#define USAGE                                                                                                \
	"usage: agentd audit verify [--checkpoint FILE | --file FILE] | export [--since SEQ] [--out FILE] "  \
	"| checkpoint "                                                                                      \
	"[--out FILE] | checkpoints [--out FILE] | archive [--older-than-days N] [--out FILE]   (with "      \
	"[--data DIR] [--config FILE])\n"

static int fail(int status)
{
	fprintf(stderr, "agentd: %s\n", ag_error_last());
	return status;
}

static int cmd_verify(sqlite3 *db, agentd_audit *a, const char *cp_file, const char *file)
{
	agentd_audit_checkpoint *ext = NULL;
	size_t next = 0;
	if (cp_file && agentd_audit_checkpoints_load(cp_file, &ext, &next))
		return fail(1);
	agentd_audit_report r;
	int rc = file ? agentd_audit_verify_file(a, file, &r) : agentd_audit_verify(a, db, ext, next, &r);
	ag_free(ext);
	if (rc)
		return fail(1);
	const char *what = file ? file : "audit log";
	if (!r.ok) {
		printf("%s BROKEN at record %" PRId64 ": %s\n", what, r.first_bad, r.reason);
		return 1;
	}
	char head[65];
	ag_hex_encode(head, r.head_hash, 32);
	printf("%s ok: %" PRId64 " records (%" PRId64 "..%" PRId64 "), %" PRId64
	       " checkpoints checked, head %s\n",
	       what, r.records, r.first_seq, r.head_seq, r.checkpoints, head);
	return 0;
}

static int cmd_checkpoint(sqlite3 *db, agentd_audit *a, FILE *f)
{
	agentd_audit_checkpoint cp;
	if (agentd_audit_checkpoint_now(a, db, &cp))
		return fail(1);
	json_t *v = agentd_audit_checkpoint_json(&cp);
	char *s = NULL;
	size_t len;
	if (!v || ag_json_dump(&s, &len, v)) {
		json_decref(v);
		return fail(1);
	}
	json_decref(v);
	fprintf(f, "%s\n", s);
	ag_free(s);
	return fflush(f) == 0 ? 0 : 1;
}

static int cmd_archive(sqlite3 *db, agentd_audit *a, const agentd_config *cfg, const char *days_arg,
		       const char *out)
{
	long long days;
	if (days_arg) {
		if (ag_parse_long(days_arg, 0, 100000, &days)) {
			fprintf(stderr, "agentd: --older-than-days: %s\n", ag_error_last());
			return 2;
		}
	} else if (agentd_config_get_long(cfg, "audit_retention_days", 0, 100000, &days)) {
		return fail(2);
	}
	if (days <= 0 && !days_arg) {
		fprintf(stderr,
			"agentd: audit_retention_days is 0 (keep everything); give --older-than-days N\n");
		return 2;
	}
	int64_t now = ag_now_ms();
	char path[PATH_MAX];
	if (!out) {
		if ((size_t)snprintf(path, sizeof path, "%s/audit-archive-%" PRId64 ".jsonl",
				     agentd_config_get(cfg, "data"), now) >= sizeof path) {
			fprintf(stderr, "agentd: data directory path too long\n");
			return 2;
		}
		out = path;
	}
	int64_t n;
	if (agentd_audit_archive(a, db, now - (int64_t)days * 86400000, out, &n))
		return fail(1);
	if (n == 0)
		printf("nothing to archive: no record is older than %lld day(s)\n", days);
	else
		printf("archived %" PRId64 " records to %s\n", n, out);
	return 0;
}

static int run(const char *sub, sqlite3 *db, agentd_audit *a, const agentd_config *cfg,
	       const char *const *vals)
{
	const char *since = vals[0], *out = vals[1], *cp_file = vals[2], *days = vals[3], *file = vals[4];
	if (strcmp(sub, "verify") == 0) {
		if (cp_file && file) {
			fprintf(stderr, "agentd: give --checkpoint or --file, not both\n");
			return 2;
		}
		return cmd_verify(db, a, cp_file, file);
	}
	if (strcmp(sub, "archive") == 0)
		return cmd_archive(db, a, cfg, days, out);
	long long since_seq = 0;
	if (since && ag_parse_long(since, 0, INT64_MAX, &since_seq)) {
		fprintf(stderr, "agentd: --since: %s\n", ag_error_last());
		return 2;
	}
	FILE *f = stdout;
	if (out && !(f = fopen(out, "we"))) {
		perror(out);
		return 1;
	}
	int status;
	int64_t n = 0;
	if (strcmp(sub, "export") == 0)
		status = agentd_audit_export(db, since_seq, f, &n) ? fail(1) : 0;
	else if (strcmp(sub, "checkpoints") == 0)
		status = agentd_audit_export_checkpoints(db, f, &n) ? fail(1) : 0;
	else
		status = cmd_checkpoint(db, a, f);
	if (f != stdout && fclose(f) != 0 && status == 0) {
		perror(out);
		status = 1;
	}
	if (status == 0 && out && strcmp(sub, "checkpoint") != 0)
		fprintf(stderr, "agentd: wrote %" PRId64 " lines to %s\n", n, out);
	return status;
}

int agentd_cmd_audit(int argc, char **argv)
{
	static const char *const subs[] = {"verify", "export", "checkpoint", "checkpoints", "archive"};
	bool known = false;
	for (size_t i = 0; argc >= 1 && i < sizeof subs / sizeof subs[0]; i++)
		known = known || strcmp(argv[0], subs[i]) == 0;
	if (!known) {
		fputs(USAGE, stderr);
		return 2;
	}
	agentd_config *cfg;
	if (agentd_config_new(&cfg))
		return fail(1);
	static const char *const extra[] = {"since", "out", "checkpoint", "older-than-days", "file", NULL};
	const char *vals[5] = {NULL}, *pos[1];
	int npos, status;
	if ((status = agentd_cli_parse(argc - 1, argv + 1, cfg, extra, vals, pos, 0, &npos)))
		goto out;
	long long every;
	if (agentd_config_get_long(cfg, "audit_checkpoint_every", 0, INT64_MAX, &every)) {
		status = fail(2);
		goto out;
	}
	sqlite3 *db;
	if (agentd_store_open(cfg, &db)) {
		status = fail(1);
		goto out;
	}
	agentd_audit *a;
	if (agentd_audit_open(&a, db, agentd_config_get(cfg, "data"), every)) {
		status = fail(1);
	} else {
		status = run(argv[0], db, a, cfg, vals);
		agentd_audit_free(a);
	}
	ag_db_close(db);
out:
	agentd_config_free(cfg);
	return status;
}
