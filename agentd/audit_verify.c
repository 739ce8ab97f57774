/*
 * The audit log's check: recompute every record's hash in seq order, follow
 * the prev_hash links from the archive anchor (or from zeros), and check each
 * checkpoint's signature and that the record it names still has the hash it
 * signed. A checkpoint naming a record past the last one means the tail was
 * cut. The first wrong or missing record is reported.
 *
 * Checkpoints also travel as JSON (export, archive files, --checkpoint FILE):
 * {"type":"checkpoint","seq":N,"hash":hex,"time_ms":N,"public_key":hex,"signature":hex}.
 */
#include "agentd/audit_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

json_t *agentd_audit_checkpoint_json(const agentd_audit_checkpoint *cp)
{
	char hash[65], pk[65], sig[129];
	ag_hex_encode(hash, cp->hash, 32);
	ag_hex_encode(pk, cp->public_key, 32);
	ag_hex_encode(sig, cp->signature, 64);
	return json_pack("{s:s, s:I, s:s, s:I, s:s, s:s}", "type", "checkpoint", "seq", (json_int_t)cp->seq,
			 "hash", hash, "time_ms", (json_int_t)cp->time_ms, "public_key", pk, "signature",
			 sig);
}

static int hex_field(const json_t *v, const char *key, uint8_t *out, size_t n)
{
	const char *s;
	int rc = ag_json_get_string(v, key, true, &s);
	if (rc)
		return rc;
	if (strlen(s) != 2 * n || ag_hex_decode(out, n, s) != 0)
		return ag_error_set(AG_EINVAL, "checkpoint field '%s' must be %zu hex digits", key, 2 * n);
	return 0;
}

int agentd_audit_checkpoint_parse(const json_t *v, agentd_audit_checkpoint *out)
{
	long long seq, t;
	int rc;
	if ((rc = ag_json_get_int(v, "seq", true, &seq)) || (rc = ag_json_get_int(v, "time_ms", true, &t)) ||
	    (rc = hex_field(v, "hash", out->hash, 32)) ||
	    (rc = hex_field(v, "public_key", out->public_key, 32)) ||
	    (rc = hex_field(v, "signature", out->signature, 64)))
		return rc;
	if (seq < 1)
		return ag_error_set(AG_EINVAL, "checkpoint seq must be positive");
	out->seq = seq;
	out->time_ms = t;
	return 0;
}

int agentd_audit_checkpoints_load(const char *path, agentd_audit_checkpoint **out, size_t *count)
{
	char *text;
	size_t len;
	int rc = ag_read_file(path, (size_t)1 << 30, &text, &len);
	if (rc)
		return rc;
	agentd_audit_checkpoint *cps = NULL;
	size_t n = 0, cap = 0;
	int line = 0;
	for (char *p = text; !rc && p < text + len;) {
		char *nl = memchr(p, '\n', (size_t)(text + len - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
		line++;
		/* Only lines that mention a checkpoint are parsed: record lines may be large. */
		if (l > 0 && memmem(p, l, "\"checkpoint\"", 12)) {
			json_t *v;
			const char *type = NULL;
			if ((rc = ag_json_parse(&v, p, l))) {
				rc = ag_error_wrap(rc, "%s:%d", path, line);
				break;
			}
			if (!(rc = ag_json_get_string(v, "type", false, &type)) && type &&
			    strcmp(type, "checkpoint") == 0) {
				if (n == cap) {
					size_t nc = cap ? cap * 2 : 8;
					agentd_audit_checkpoint *g = ag_realloc(cps, nc * sizeof *g);
					if (!g)
						rc = ag_error_set(AG_ENOMEM, "out of memory");
					else
						cps = g, cap = nc;
				}
				if (!rc && (rc = agentd_audit_checkpoint_parse(v, &cps[n])) == 0)
					n++;
				else if (rc)
					rc = ag_error_wrap(rc, "%s:%d", path, line);
			}
			json_decref(v);
		}
		p += l + 1;
	}
	ag_free(text);
	if (!rc && n == 0)
		rc = ag_error_set(AG_EINVAL, "%s: no checkpoint lines found", path);
	if (rc) {
		ag_free(cps);
		return rc;
	}
	*out = cps;
	*count = n;
	return 0;
}

/* ------------------------------------------------------------ verify */

static int bad(agentd_audit_report *r, int64_t seq, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int bad(agentd_audit_report *r, int64_t seq, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	r->ok = false;
	r->first_bad = seq;
	vsnprintf(r->reason, sizeof r->reason, fmt, ap);
	va_end(ap);
	return 0; /* the check ran; the report says what failed */
}

static int cmp_cp(const void *x, const void *y)
{
	const agentd_audit_checkpoint *a = x, *b = y;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Every checkpoint to check, stored and external, sorted by seq. */
static int gather_checkpoints(sqlite3 *db, const agentd_audit_checkpoint *ext, size_t next,
			      agentd_audit_checkpoint **out, size_t *count, bool **external_flags)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st, "SELECT count(*) FROM audit_checkpoints");
	if (rc)
		return rc;
	size_t stored = sqlite3_step(st) == SQLITE_ROW ? (size_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	size_t total = stored + next;
	agentd_audit_checkpoint *cps = ag_calloc(total ? total : 1, sizeof *cps);
	if (!cps)
		return ag_error_set(AG_ENOMEM, "out of memory");
	size_t n = 0;
	if ((rc = ag_db_prepare(db, &st,
				"SELECT seq, hash, time_ms, public_key, signature FROM audit_checkpoints "
				"ORDER BY seq"))) {
		ag_free(cps);
		return rc;
	}
	int s;
	while (n < stored && (s = sqlite3_step(st)) == SQLITE_ROW) {
		agentd_audit_checkpoint *c = &cps[n++];
		c->seq = sqlite3_column_int64(st, 0);
		c->time_ms = sqlite3_column_int64(st, 2);
		/* Malformed blobs stay zero and fail the signature check. */
		if (sqlite3_column_bytes(st, 1) == 32)
			memcpy(c->hash, sqlite3_column_blob(st, 1), 32);
		if (sqlite3_column_bytes(st, 3) == 32)
			memcpy(c->public_key, sqlite3_column_blob(st, 3), 32);
		if (sqlite3_column_bytes(st, 4) == 64)
			memcpy(c->signature, sqlite3_column_blob(st, 4), 64);
	}
	sqlite3_finalize(st);
	stored = n;
	for (size_t i = 0; i < next; i++)
		cps[n++] = ext[i];
	/* Merge the (sorted) external ones into the stored ones, remembering which is which. */
	bool *flags = ag_calloc(n ? n : 1, sizeof *flags);
	agentd_audit_checkpoint *sorted = ag_malloc((n ? n : 1) * sizeof *sorted);
	if (!flags || !sorted) {
		ag_free(sorted);
		ag_free(flags);
		ag_free(cps);
		return ag_error_set(AG_ENOMEM, "out of memory");
	}
	agentd_audit_checkpoint *exts = cps + stored;
	qsort(exts, next, sizeof *exts, cmp_cp);
	size_t si = 0, ei = 0, k = 0;
	while (si < stored || ei < next) {
		if (ei >= next || (si < stored && cps[si].seq <= exts[ei].seq)) {
			sorted[k] = cps[si++];
			flags[k++] = false;
		} else {
			sorted[k] = exts[ei++];
			flags[k++] = true;
		}
	}
	ag_free(cps);
	*out = sorted;
	*count = n;
	*external_flags = flags;
	return 0;
}

/* Checks one checkpoint's signature; the record comparison is the caller's. */
static bool check_signature(const agentd_audit *a, const agentd_audit_checkpoint *c, bool external,
			    agentd_audit_report *r)
{
	if (memcmp(c->public_key, a->pk, 32) != 0) {
		bad(r, c->seq, "%s checkpoint at record %" PRId64 " was signed by another key",
		    external ? "external" : "stored", c->seq);
		return false;
	}
	if (!audit_checkpoint_valid(a->pk, c)) {
		bad(r, c->seq, "%s checkpoint at record %" PRId64 " has a bad signature",
		    external ? "external" : "stored", c->seq);
		return false;
	}
	return true;
}

static int scan(const agentd_audit *a, sqlite3 *db, const agentd_audit_checkpoint *cps, const bool *ext,
		size_t ncp, agentd_audit_report *r)
{
	bool anchored;
	int64_t expect = 1;
	uint8_t prev[32] = {0};
	int rc = audit_anchor(db, &anchored, &expect, prev);
	if (rc)
		return rc;
	if (anchored)
		expect += 1;
	else
		expect = 1;
	int64_t anchor_seq = expect - 1;
	r->first_seq = expect;
	size_t ci = 0;
	/* Checkpoints of archived records: their signature, and the anchor's hash. */
	bool anchor_signed = !anchored;
	for (; ci < ncp && cps[ci].seq <= anchor_seq; ci++) {
		if (!check_signature(a, &cps[ci], ext[ci], r))
			return 0;
		if (cps[ci].seq == anchor_seq) {
			if (memcmp(cps[ci].hash, prev, 32) != 0)
				return bad(r, anchor_seq,
					   "the archive anchor's hash differs from the signed checkpoint of "
					   "record %" PRId64,
					   anchor_seq);
			anchor_signed = true;
		}
		r->checkpoints++;
	}
	if (!anchor_signed)
		return bad(r, anchor_seq, "the archive anchor at record %" PRId64 " has no signed checkpoint",
			   anchor_seq);

	sqlite3_stmt *st;
	if ((rc = ag_db_prepare(db, &st, "SELECT " AUDIT_RECORD_COLUMNS " FROM audit_log ORDER BY seq")))
		return rc;
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		audit_fields f;
		f.seq = sqlite3_column_int64(st, 0);
		if (f.seq != expect) {
			if (f.seq > expect)
				bad(r, expect,
				    "record %" PRId64 " is missing (the next present is %" PRId64 ")", expect,
				    f.seq);
			else
				bad(r, f.seq, "record %" PRId64 " is below the archive anchor", f.seq);
			break;
		}
		f.time_ms = sqlite3_column_int64(st, 1);
		f.tenant = (const char *)sqlite3_column_text(st, 2);
		f.tenant_len = (size_t)sqlite3_column_bytes(st, 2);
		f.user = (const char *)sqlite3_column_text(st, 3);
		f.user_len = (size_t)sqlite3_column_bytes(st, 3);
		f.run_id = (const char *)sqlite3_column_text(st, 4);
		f.run_id_len = (size_t)sqlite3_column_bytes(st, 4);
		f.step = sqlite3_column_int64(st, 5);
		f.kind = (const char *)sqlite3_column_text(st, 6);
		f.kind_len = (size_t)sqlite3_column_bytes(st, 6);
		f.data = (const char *)sqlite3_column_text(st, 7);
		f.data_len = (size_t)sqlite3_column_bytes(st, 7);
		if (!f.tenant || !f.user || !f.kind || !f.data) {
			bad(r, f.seq, "record %" PRId64 " has a missing field", f.seq);
			break;
		}
		if (sqlite3_column_bytes(st, 8) != 32 || memcmp(sqlite3_column_blob(st, 8), prev, 32) != 0) {
			bad(r, f.seq,
			    "record %" PRId64 " does not link to record %" PRId64 " (prev_hash differs)",
			    f.seq, f.seq - 1);
			break;
		}
		f.prev_hash = prev;
		uint8_t h[32];
		audit_hash_record(h, &f);
		if (sqlite3_column_bytes(st, 9) != 32 || memcmp(sqlite3_column_blob(st, 9), h, 32) != 0) {
			bad(r, f.seq, "record %" PRId64 " was changed (its hash does not match its contents)",
			    f.seq);
			break;
		}
		memcpy(prev, h, 32);
		for (; ci < ncp && cps[ci].seq == f.seq; ci++) {
			if (!check_signature(a, &cps[ci], ext[ci], r))
				break;
			if (memcmp(cps[ci].hash, h, 32) != 0) {
				bad(r, f.seq,
				    "record %" PRId64 " differs from the one its signed checkpoint names",
				    f.seq);
				break;
			}
			r->checkpoints++;
		}
		if (!r->ok)
			break;
		r->records++;
		r->head_seq = f.seq;
		expect++;
	}
	if (s != SQLITE_ROW && s != SQLITE_DONE)
		rc = ag_db_error(db, s, "reading the audit log");
	sqlite3_finalize(st);
	if (rc || !r->ok)
		return rc;
	if (r->head_seq == 0)
		r->head_seq = anchor_seq;
	memcpy(r->head_hash, prev, 32);
	/* What is left names records past the end: the tail was cut. */
	if (ci < ncp) {
		const agentd_audit_checkpoint *c = &cps[ci];
		if (!check_signature(a, c, ext[ci], r))
			return 0;
		bad(r, expect,
		    "record %" PRId64 " is missing: the log ends at %" PRId64
		    " but a signed %s checkpoint names record %" PRId64,
		    expect, expect - 1, ext[ci] ? "external" : "stored", c->seq);
	}
	return 0;
}

int agentd_audit_verify(const agentd_audit *a, sqlite3 *db, const agentd_audit_checkpoint *external,
			size_t nexternal, agentd_audit_report *report)
{
	memset(report, 0, sizeof *report);
	report->ok = true;
	/* One read transaction: a consistent snapshot while appends go on. */
	bool own = sqlite3_get_autocommit(db) != 0;
	int rc = own ? ag_db_exec(db, "BEGIN") : 0;
	if (rc)
		return rc;
	agentd_audit_checkpoint *cps = NULL;
	bool *ext = NULL;
	size_t ncp = 0;
	if (!(rc = gather_checkpoints(db, external, nexternal, &cps, &ncp, &ext)))
		rc = scan(a, db, cps, ext, ncp, report);
	ag_free(cps);
	ag_free(ext);
	if (own)
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (!rc && report->ok)
		snprintf(report->reason, sizeof report->reason, "ok");
	return rc;
}
