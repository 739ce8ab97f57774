/*
 * The audit log (internal to agentd/): an append-only, hash-chained record of
 * every step the daemon takes for someone — requests, auth and policy
 * decisions, retrievals, model and tool calls, approvals, answers, errors.
 *
 * Each record holds the SHA-256 of the record before it, so the records form
 * one chain over the whole database (all tenants). Every
 * audit_checkpoint_every records, and on demand, the chain head is signed with
 * an Ed25519 key kept in DATA/audit.key (mode 0600, made on first open).
 * Checkpoints exported elsewhere let an outside copy notice that records after
 * them were cut. Retention archives old records to a JSON Lines file and
 * leaves an anchor (the last archived record's hash, signed) so the rest of
 * the chain still verifies. SQLite triggers refuse UPDATE and DELETE of
 * records other than that sanctioned archive path.
 *
 * agentd_audit holds only the key and settings: it is shared by all threads,
 * each passing its own connection. Appends serialise on SQLite's write lock.
 */
#ifndef AGENTD_AUDIT_H
#define AGENTD_AUDIT_H

#include <stdio.h>

#include "common/common.h"

typedef struct agentd_audit agentd_audit;

/* One event to record. Strings are borrowed; tenant, user and kind are
 * required, run_id may be NULL, data may be NULL (recorded as {}). */
typedef struct agentd_audit_event {
	const char *kind;   /* "request", "auth", "policy", "retrieval", "model_call",
			       "tool_call", "approval", "answer", "error", ... */
	const char *tenant; /* "" for events before a principal is known */
	const char *user;
	const char *run_id;
	int64_t step; /* step index within the run; 0 when not in a run */
	const json_t *data;
} agentd_audit_event;

/* A signed statement "the chain's record `seq` has hash `hash`", made at time_ms. */
typedef struct agentd_audit_checkpoint {
	int64_t seq;
	uint8_t hash[32];
	int64_t time_ms;
	uint8_t public_key[32];
	uint8_t signature[64];
} agentd_audit_checkpoint;

/* The result of checking the chain. first_bad is the first record that is
 * wrong or missing (0 when ok); reason says what is wrong with it. */
typedef struct agentd_audit_report {
	bool ok;
	int64_t first_bad;
	char reason[256];
	int64_t records;     /* records checked */
	int64_t checkpoints; /* checkpoints whose signature and hash were checked */
	int64_t first_seq;   /* first record present (anchor seq + 1 after archiving) */
	int64_t head_seq;    /* last record present, 0 when empty */
	uint8_t head_hash[32];
} agentd_audit_report;

int agentd_audit_migrate(sqlite3 *db);

/* Loads DATA/audit.key, creating it (mode 0600) if the database has no
 * checkpoints yet; a missing key with existing checkpoints is AG_ECORRUPT.
 * checkpoint_every: records between automatic checkpoints (0: none). */
int agentd_audit_open(agentd_audit **out, sqlite3 *db, const char *data_dir, int64_t checkpoint_every);
void agentd_audit_free(agentd_audit *a);
const uint8_t *agentd_audit_public_key(const agentd_audit *a); /* 32 bytes */

/* Appends one record. Inside the caller's open transaction (which must hold
 * the write lock: BEGIN IMMEDIATE, as ag_db_begin does) the record commits or
 * rolls back with the caller's work; in autocommit mode it runs its own
 * BEGIN IMMEDIATE ... COMMIT. *seq_out (may be NULL) gets the record's seq. */
int agentd_audit_append(agentd_audit *a, sqlite3 *db, const agentd_audit_event *ev, int64_t *seq_out);

/* Appends n events as one unit (one commit, one fsync in autocommit mode):
 * all of them or none. *first_seq_out (may be NULL) gets the first one's seq. */
int agentd_audit_append_many(agentd_audit *a, sqlite3 *db, const agentd_audit_event *evs, size_t n,
			     int64_t *first_seq_out);

/* Convenience for call sites: builds the event from its parts; steals `data`
 * (which may be NULL). */
int agentd_audit_record(agentd_audit *a, sqlite3 *db, const char *kind, const char *tenant, const char *user,
			const char *run_id, int64_t step, json_t *data);

/* Signs the current chain head now and stores the checkpoint (transactional
 * like append). AG_ENOTFOUND when the log is empty. */
int agentd_audit_checkpoint_now(agentd_audit *a, sqlite3 *db, agentd_audit_checkpoint *out);

/* Recomputes the chain and checks every stored checkpoint, plus the
 * `nexternal` checkpoints given (e.g. read back from an export), which must be
 * signed by this log's key. A checkpoint beyond the last record means the tail
 * was cut. Returns 0 when the check ran (report->ok says how it went). */
int agentd_audit_verify(const agentd_audit *a, sqlite3 *db, const agentd_audit_checkpoint *external,
			size_t nexternal, agentd_audit_report *report);

/* Verifies an export or archive file on its own (no database): record hashes,
 * links, an archive's segment start, and its checkpoint lines, which must be
 * signed by a's key. Returns 0 when the check ran (report->ok says how it went). */
int agentd_audit_verify_file(const agentd_audit *a, const char *path, agentd_audit_report *report);

/* Checkpoints as JSON: {"type":"checkpoint","seq","hash","time_ms","public_key","signature"}. */
json_t *agentd_audit_checkpoint_json(const agentd_audit_checkpoint *cp);
int agentd_audit_checkpoint_parse(const json_t *v, agentd_audit_checkpoint *out);
/* Reads every "type":"checkpoint" line of a JSON Lines file (other lines are
 * skipped, so an export or an archive file can be given). */
int agentd_audit_checkpoints_load(const char *path, agentd_audit_checkpoint **out, size_t *count);

/* A record as JSON: {"type":"record","seq","time","time_ms","tenant","user",
 * "run_id","step","kind","data","prev_hash","hash"}. */

/* Writes every record with seq > since as JSON Lines to f.
 * *count_out (may be NULL) gets the number written. */
int agentd_audit_export(sqlite3 *db, int64_t since, FILE *f, int64_t *count_out);
/* Writes every stored checkpoint as JSON Lines. */
int agentd_audit_export_checkpoints(sqlite3 *db, FILE *f, int64_t *count_out);

/* Query for GET /v1/audit: NULL or 0 fields do not filter. */
typedef struct agentd_audit_query {
	const char *tenant; /* required: records are tenant-scoped */
	const char *user;
	const char *run_id;
	const char *kind;
	int64_t since;   /* seq > since */
	int64_t from_ms; /* time >= from_ms */
	int64_t to_ms;   /* time < to_ms */
	int limit;       /* 1..1000 */
} agentd_audit_query;

/* A page of records, oldest first: {"records": [...], "next": seq or null}. */
int agentd_audit_list(sqlite3 *db, const agentd_audit_query *q, json_t **out);

/* Retention: moves records older than before_ms (and not after the last
 * checkpoint-able head) to `path` as JSON Lines, ending with the signed
 * checkpoint of the last archived record, then deletes them from the database
 * and moves the anchor forward. *archived_out gets the count (0: nothing old
 * enough; no file is written then). */
int agentd_audit_archive(agentd_audit *a, sqlite3 *db, int64_t before_ms, const char *path,
			 int64_t *archived_out);

/* The retention job, for the daemon's timer and `agentd audit archive`:
 * archives records older than `days` days to DATA/audit-archive-<ms>.jsonl
 * (mode 0600). days <= 0 does nothing. *archived_out (may be NULL) gets the
 * count; *path_out (may be NULL) the file written (caller frees; NULL when
 * nothing was old enough). */
int agentd_audit_retain(agentd_audit *a, sqlite3 *db, const char *data_dir, int64_t days,
			int64_t *archived_out, char **path_out);

#endif
