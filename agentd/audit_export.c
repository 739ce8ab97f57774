/*
 * The audit log's read side: records as JSON, JSON Lines export of records
 * and checkpoints, the filtered pages GET /v1/audit serves, and retention
 * (archiving old records to a file and moving the chain's anchor).
 *
 * A record line: {"type":"record","seq","time","time_ms","tenant","user",
 * "run_id","step","kind","data","prev_hash","hash"}; `data` is the stored
 * canonical JSON parsed back, so re-serialising it with sorted keys gives the
 * hashed text again and an outside copy can recompute the chain.
 */
#include "agentd/audit_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int audit_record_json(sqlite3_stmt *st, json_t **out)
{
	char when[32], prev[65] = "", hash[65] = "";
	ag_format_time(when, sizeof when, sqlite3_column_int64(st, 1));
	if (sqlite3_column_bytes(st, 8) == 32)
		ag_hex_encode(prev, sqlite3_column_blob(st, 8), 32);
	if (sqlite3_column_bytes(st, 9) == 32)
		ag_hex_encode(hash, sqlite3_column_blob(st, 9), 32);
	const char *text = (const char *)sqlite3_column_text(st, 7);
	json_t *data = NULL;
	if (text && ag_json_parse(&data, text, (size_t)sqlite3_column_bytes(st, 7)) != 0) {
		ag_error_clear();
		data = json_string(text); /* not JSON (a damaged record): show it as it is */
	}
	const char *run = (const char *)sqlite3_column_text(st, 4);
	json_t *v = json_pack("{s:s, s:I, s:s, s:I, s:s?, s:s?, s:s?, s:I, s:s?, s:o?, s:s, s:s}", "type",
			      "record", "seq", (json_int_t)sqlite3_column_int64(st, 0), "time", when,
			      "time_ms", (json_int_t)sqlite3_column_int64(st, 1), "tenant",
			      sqlite3_column_text(st, 2), "user", sqlite3_column_text(st, 3), "run_id", run,
			      "step", (json_int_t)sqlite3_column_int64(st, 5), "kind",
			      sqlite3_column_text(st, 6), "data", data, "prev_hash", prev, "hash", hash);
	if (!v)
		return ag_error_set(AG_ENOMEM, "out of memory");
	if (!run && json_object_set_new(v, "run_id", json_null()) != 0) {
		json_decref(v);
		return ag_error_set(AG_ENOMEM, "out of memory");
	}
	*out = v;
	return 0;
}

static int write_line(FILE *f, const json_t *v)
{
	char *s;
	size_t len;
	int rc = ag_json_dump(&s, &len, v);
	if (rc)
		return rc;
	if (fwrite(s, 1, len, f) != len || fputc('\n', f) == EOF)
		rc = ag_error_set(AG_EIO, "writing the export: %s", strerror(errno));
	ag_free(s);
	return rc;
}

/* Writes every row of st (selected with AUDIT_RECORD_COLUMNS) as a line. */
static int write_records(sqlite3 *db, sqlite3_stmt *st, FILE *f, int64_t *count)
{
	int rc = 0, s;
	while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *v;
		if ((rc = audit_record_json(st, &v)))
			break;
		rc = write_line(f, v);
		json_decref(v);
		if (!rc)
			(*count)++;
	}
	if (!rc && s != SQLITE_DONE)
		rc = ag_db_error(db, s, "reading the audit log");
	return rc;
}

int agentd_audit_export(sqlite3 *db, int64_t since, FILE *f, int64_t *count_out)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st,
			       "SELECT " AUDIT_RECORD_COLUMNS " FROM audit_log WHERE seq > ? ORDER BY seq");
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, since);
	int64_t n = 0;
	rc = write_records(db, st, f, &n);
	sqlite3_finalize(st);
	if (!rc && fflush(f) != 0)
		rc = ag_error_set(AG_EIO, "writing the export: %s", strerror(errno));
	if (count_out)
		*count_out = n;
	return rc;
}

static void checkpoint_from_row(sqlite3_stmt *st, agentd_audit_checkpoint *c)
{
	memset(c, 0, sizeof *c);
	c->seq = sqlite3_column_int64(st, 0);
	c->time_ms = sqlite3_column_int64(st, 2);
	if (sqlite3_column_bytes(st, 1) == 32)
		memcpy(c->hash, sqlite3_column_blob(st, 1), 32);
	if (sqlite3_column_bytes(st, 3) == 32)
		memcpy(c->public_key, sqlite3_column_blob(st, 3), 32);
	if (sqlite3_column_bytes(st, 4) == 64)
		memcpy(c->signature, sqlite3_column_blob(st, 4), 64);
}

int agentd_audit_export_checkpoints(sqlite3 *db, FILE *f, int64_t *count_out)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(
		db, &st,
		"SELECT seq, hash, time_ms, public_key, signature FROM audit_checkpoints ORDER BY seq");
	if (rc)
		return rc;
	int64_t n = 0;
	int s;
	while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW) {
		agentd_audit_checkpoint c;
		checkpoint_from_row(st, &c);
		json_t *v = agentd_audit_checkpoint_json(&c);
		if (!v) {
			rc = ag_error_set(AG_ENOMEM, "out of memory");
			break;
		}
		rc = write_line(f, v);
		json_decref(v);
		n++;
	}
	if (!rc && s != SQLITE_DONE)
		rc = ag_db_error(db, s, "reading audit checkpoints");
	sqlite3_finalize(st);
	if (!rc && fflush(f) != 0)
		rc = ag_error_set(AG_EIO, "writing the export: %s", strerror(errno));
	if (count_out)
		*count_out = n;
	return rc;
}

int agentd_audit_list(sqlite3 *db, const agentd_audit_query *q, json_t **out)
{
	if (!q->tenant)
		return ag_error_set(AG_EINVAL, "audit queries are tenant-scoped");
	if (q->limit < 1 || q->limit > 1000)
		return ag_error_set(AG_EINVAL, "limit must be between 1 and 1000");
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st,
			       "SELECT " AUDIT_RECORD_COLUMNS " FROM audit_log WHERE tenant = ?1 AND seq > ?2"
			       " AND (?3 IS NULL OR user = ?3) AND (?4 IS NULL OR run_id = ?4)"
			       " AND (?5 IS NULL OR kind = ?5) AND (?6 IS NULL OR time_ms >= ?6)"
			       " AND (?7 IS NULL OR time_ms < ?7) ORDER BY seq LIMIT ?8");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, q->tenant, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, q->since);
	ag_db_bind_text(st, 3, q->user);
	ag_db_bind_text(st, 4, q->run_id);
	ag_db_bind_text(st, 5, q->kind);
	if (q->from_ms)
		sqlite3_bind_int64(st, 6, q->from_ms);
	if (q->to_ms)
		sqlite3_bind_int64(st, 7, q->to_ms);
	sqlite3_bind_int(st, 8, q->limit + 1); /* one more tells whether there is a next page */
	json_t *records = json_array();
	if (!records) {
		sqlite3_finalize(st);
		return ag_error_set(AG_ENOMEM, "out of memory");
	}
	int s, n = 0;
	int64_t last = 0;
	bool more = false;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == q->limit) {
			more = true;
			break;
		}
		json_t *v;
		if ((rc = audit_record_json(st, &v)))
			break;
		last = sqlite3_column_int64(st, 0);
		if (json_array_append_new(records, v) != 0) {
			rc = ag_error_set(AG_ENOMEM, "out of memory");
			break;
		}
		n++;
	}
	if (!rc && s != SQLITE_ROW && s != SQLITE_DONE)
		rc = ag_db_error(db, s, "reading the audit log");
	sqlite3_finalize(st);
	json_t *v = rc ? NULL
		       : json_pack("{s:o, s:o}", "records", records, "next",
				   more ? json_integer((json_int_t)last) : json_null());
	if (rc) {
		json_decref(records);
		return rc;
	}
	if (!v)
		return ag_error_set(AG_ENOMEM, "out of memory");
	*out = v;
	return 0;
}

/* ------------------------------------------------------------ retention */

/* The last record that may be archived: every record up to it is older than before_ms. */
static int archive_end(sqlite3 *db, int64_t before_ms, int64_t *end)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st,
			       "SELECT COALESCE((SELECT min(seq) - 1 FROM audit_log WHERE time_ms >= ?1),"
			       " (SELECT max(seq) FROM audit_log), 0)");
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, before_ms);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW)
		*end = sqlite3_column_int64(st, 0);
	else
		rc = ag_db_error(db, s, "reading the audit log");
	sqlite3_finalize(st);
	return rc;
}

/* The signed checkpoint of record `seq` (existing or made now). */
static int checkpoint_at(agentd_audit *a, sqlite3 *db, int64_t seq, agentd_audit_checkpoint *cp)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(
		db, &st,
		"SELECT seq, hash, time_ms, public_key, signature FROM audit_checkpoints WHERE seq = ?");
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, seq);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW)
		checkpoint_from_row(st, cp);
	sqlite3_finalize(st);
	if (s == SQLITE_ROW)
		return 0;
	if (s != SQLITE_DONE)
		return ag_db_error(db, s, "reading audit checkpoints");
	if ((rc = ag_db_prepare(db, &st, "SELECT hash FROM audit_log WHERE seq = ?")))
		return rc;
	sqlite3_bind_int64(st, 1, seq);
	s = sqlite3_step(st);
	if (s == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32) {
		memset(cp, 0, sizeof *cp);
		cp->seq = seq;
		cp->time_ms = ag_now_ms();
		memcpy(cp->hash, sqlite3_column_blob(st, 0), 32);
		audit_sign_checkpoint(a, cp);
	} else {
		rc = s == SQLITE_ROW || s == SQLITE_DONE
			     ? ag_error_set(AG_ECORRUPT, "audit record %lld is missing or malformed",
					    (long long)seq)
			     : ag_db_error(db, s, "reading the audit log");
	}
	sqlite3_finalize(st);
	return rc ? rc : audit_store_checkpoint(db, cp);
}

/* Writes the archive: where the segment starts, its records, its checkpoint. */
static int write_archive(sqlite3 *db, const char *path, int64_t from, const uint8_t from_hash[32], int64_t to)
{
	char tmp[PATH_MAX];
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= sizeof tmp)
		return ag_error_set(AG_EINVAL, "archive path too long");
	/* Audit records are as private as the database they come from. */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		int rc = ag_error_set(AG_EIO, "%s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	char hex[65];
	ag_hex_encode(hex, from_hash, 32);
	json_t *head = json_pack("{s:s, s:I, s:s}", "type", "segment", "after_seq", (json_int_t)from,
				 "after_hash", hex);
	int rc = head ? write_line(f, head) : ag_error_set(AG_ENOMEM, "out of memory");
	json_decref(head);
	sqlite3_stmt *st = NULL;
	int64_t n = 0;
	if (!rc && !(rc = ag_db_prepare(db, &st,
					"SELECT " AUDIT_RECORD_COLUMNS
					" FROM audit_log WHERE seq > ? AND seq <= ? ORDER BY seq"))) {
		sqlite3_bind_int64(st, 1, from);
		sqlite3_bind_int64(st, 2, to);
		rc = write_records(db, st, f, &n);
		sqlite3_finalize(st);
	}
	/* Every signed checkpoint inside the segment, its last record's included. */
	if (!rc &&
	    !(rc = ag_db_prepare(db, &st,
				 "SELECT seq, hash, time_ms, public_key, signature FROM audit_checkpoints"
				 " WHERE seq > ? AND seq <= ? ORDER BY seq"))) {
		sqlite3_bind_int64(st, 1, from);
		sqlite3_bind_int64(st, 2, to);
		int s;
		while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW) {
			agentd_audit_checkpoint c;
			checkpoint_from_row(st, &c);
			json_t *v = agentd_audit_checkpoint_json(&c);
			rc = v ? write_line(f, v) : ag_error_set(AG_ENOMEM, "out of memory");
			json_decref(v);
		}
		if (!rc && s != SQLITE_DONE)
			rc = ag_db_error(db, s, "reading audit checkpoints");
		sqlite3_finalize(st);
	}
	if (!rc && (fflush(f) != 0 || fsync(fileno(f)) != 0))
		rc = ag_error_set(AG_EIO, "%s: %s", tmp, strerror(errno));
	if (fclose(f) != 0 && !rc)
		rc = ag_error_set(AG_EIO, "%s: %s", tmp, strerror(errno));
	if (!rc && rename(tmp, path) != 0)
		rc = ag_error_set(AG_EIO, "%s: %s", path, strerror(errno));
	if (rc)
		unlink(tmp);
	return rc;
}

static int archive_locked(agentd_audit *a, sqlite3 *db, int64_t before_ms, const char *path,
			  int64_t *archived)
{
	bool anchored;
	int64_t from = 0, to = 0;
	uint8_t from_hash[32] = {0};
	int rc = audit_anchor(db, &anchored, &from, from_hash);
	if (rc || (rc = archive_end(db, before_ms, &to)))
		return rc;
	*archived = 0;
	if (to <= from)
		return 0;
	agentd_audit_checkpoint cp;
	if ((rc = checkpoint_at(a, db, to, &cp)))
		return rc;
	/* The file is on disk before the records leave: a crash in between leaves
	 * them in both places, never in neither. */
	if ((rc = write_archive(db, path, from, from_hash, to)))
		return rc;
	sqlite3_stmt *st;
	if ((rc = ag_db_prepare(
		     db, &st,
		     "INSERT INTO audit_anchor(id, seq, hash, archived_ms, file) VALUES (1, ?1, ?2, ?3, ?4)"
		     " ON CONFLICT(id) DO UPDATE SET seq = ?1, hash = ?2, archived_ms = ?3, file = ?4")))
		return rc;
	sqlite3_bind_int64(st, 1, to);
	sqlite3_bind_blob(st, 2, cp.hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, ag_now_ms());
	sqlite3_bind_text(st, 4, path, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s != SQLITE_DONE)
		rc = ag_db_error(db, s, "moving the audit anchor");
	sqlite3_finalize(st);
	if (rc || (rc = ag_db_prepare(db, &st, "DELETE FROM audit_log WHERE seq <= ?")))
		return rc;
	sqlite3_bind_int64(st, 1, to);
	s = sqlite3_step(st);
	if (s != SQLITE_DONE)
		rc = ag_db_error(db, s, "removing archived audit records");
	sqlite3_finalize(st);
	if (!rc)
		*archived = to - from;
	return rc;
}

int agentd_audit_archive(agentd_audit *a, sqlite3 *db, int64_t before_ms, const char *path,
			 int64_t *archived_out)
{
	if (!path || !*path)
		return ag_error_set(AG_EINVAL, "archiving needs a file to write");
	if (!sqlite3_get_autocommit(db))
		return ag_error_set(AG_EINVAL, "archiving runs in its own transaction");
	int rc = ag_db_begin(db);
	if (rc)
		return rc;
	int64_t n = 0;
	rc = archive_locked(a, db, before_ms, path, &n);
	if (!rc)
		rc = ag_db_commit(db);
	if (rc) {
		ag_db_rollback(db);
		return rc;
	}
	if (archived_out)
		*archived_out = n;
	return 0;
}

int agentd_audit_retain(agentd_audit *a, sqlite3 *db, const char *data_dir, int64_t days,
			int64_t *archived_out, char **path_out)
{
	if (archived_out)
		*archived_out = 0;
	if (path_out)
		*path_out = NULL;
	if (days <= 0)
		return 0;
	if (days > 100000)
		return ag_error_set(AG_EINVAL, "retention of %lld days is out of range", (long long)days);
	int64_t now = ag_now_ms();
	char path[PATH_MAX];
	if ((size_t)snprintf(path, sizeof path, "%s/audit-archive-%lld.jsonl", data_dir, (long long)now) >=
	    sizeof path)
		return ag_error_set(AG_EINVAL, "data directory path too long");
	int64_t n = 0;
	int rc = agentd_audit_archive(a, db, now - days * 86400000, path, &n);
	if (rc)
		return rc;
	if (n > 0)
		ag_info("audit retention: archived %lld records older than %lld days to %s", (long long)n,
			(long long)days, path);
	if (path_out && n > 0 && !(*path_out = ag_strdup(path)))
		return ag_error_set(AG_ENOMEM, "out of memory");
	if (archived_out)
		*archived_out = n;
	return 0;
}
