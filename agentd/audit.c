/*
 * The audit log's write side: schema, the signing key, the canonical record
 * hash, appends and checkpoints.
 *
 * Canonical encoding. A record's hash is SHA-256 over
 *
 *   "agentd-audit-v1" 0x00                      (16 bytes, domain separation)
 *   u64(seq) u64(time_ms)
 *   str(tenant) str(user) opt(run_id) u64(step) str(kind) str(data)
 *   prev_hash                                   (32 bytes; zeros before the first record)
 *
 * where u64(x) is x as 8 bytes big-endian (two's complement for negatives),
 * str(s) is u64(byte length) followed by the bytes, opt(NULL) is one 0x00 byte
 * and opt(s) is 0x01 followed by str(s). `data` is the event's JSON object
 * serialised compactly with sorted keys (jansson JSON_COMPACT|JSON_SORT_KEYS);
 * that exact text is stored, so verification hashes the stored bytes and never
 * re-serialises. Length prefixes make the encoding unambiguous whatever bytes
 * the fields hold (no separator can be forged inside a field).
 *
 * A checkpoint signs (Ed25519, detached) "agentd-audit-ckpt-v1" 0x00 (21
 * bytes), u64(seq), the 32-byte hash of record seq and u64(time_ms).
 *
 * Appends read the chain head and insert under SQLite's write lock (BEGIN
 * IMMEDIATE, or the caller's transaction that already holds it), so appends
 * from many connections serialise and the chain never forks.
 */
#include "agentd/audit_internal.h"
#include "agentd/policy_store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const audit_sql[] = {
	"CREATE TABLE audit_log ("
	"  seq INTEGER PRIMARY KEY,"
	"  time_ms INTEGER NOT NULL,"
	"  tenant TEXT NOT NULL,"
	"  user TEXT NOT NULL,"
	"  run_id TEXT,"
	"  step INTEGER NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  data TEXT NOT NULL,"
	"  prev_hash BLOB NOT NULL,"
	"  hash BLOB NOT NULL);"
	"CREATE INDEX audit_log_tenant ON audit_log(tenant, seq);"
	"CREATE INDEX audit_log_run ON audit_log(run_id, seq) WHERE run_id IS NOT NULL;"
	"CREATE TABLE audit_checkpoints ("
	"  seq INTEGER PRIMARY KEY,"
	"  hash BLOB NOT NULL,"
	"  time_ms INTEGER NOT NULL,"
	"  public_key BLOB NOT NULL,"
	"  signature BLOB NOT NULL);"
	/* The last archived record: the chain continues from its hash. */
	"CREATE TABLE audit_anchor ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  seq INTEGER NOT NULL,"
	"  hash BLOB NOT NULL,"
	"  archived_ms INTEGER NOT NULL,"
	"  file TEXT NOT NULL);"
	/* Append-only at the database level: records change never, and leave only
	 * once archived (at or below the anchor, which only moves forward). */
	"CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
	"BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;"
	"CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
	"WHEN OLD.seq > COALESCE((SELECT seq FROM audit_anchor WHERE id = 1), 0) "
	"BEGIN SELECT RAISE(ABORT, 'audit records are append-only (archive them instead)'); END;"
	"CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints "
	"BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;"
	"CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints "
	"BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;"
	"CREATE TRIGGER audit_anchor_forward BEFORE UPDATE ON audit_anchor WHEN NEW.seq <= OLD.seq "
	"BEGIN SELECT RAISE(ABORT, 'the audit anchor only moves forward'); END;"
	"CREATE TRIGGER audit_anchor_no_delete BEFORE DELETE ON audit_anchor "
	"BEGIN SELECT RAISE(ABORT, 'the audit anchor cannot be removed'); END;",
};

int agentd_audit_migrate(sqlite3 *db)
{
	static const ag_migration_set set = {"audit", audit_sql,
					     (int)(sizeof audit_sql / sizeof audit_sql[0])};
	return ag_db_migrate(db, &set);
}

/* ------------------------------------------------------------ hashing */

static void put_u64(crypto_hash_sha256_state *h, int64_t v)
{
	uint8_t b[8];
	uint64_t u = (uint64_t)v;
	for (int i = 7; i >= 0; i--) {
		b[i] = (uint8_t)(u & 0xff);
		u >>= 8;
	}
	crypto_hash_sha256_update(h, b, 8);
}

static void put_str(crypto_hash_sha256_state *h, const char *s, size_t n)
{
	put_u64(h, (int64_t)n);
	if (n)
		crypto_hash_sha256_update(h, (const uint8_t *)s, n);
}

void audit_hash_record(uint8_t out[32], const audit_fields *f)
{
	static const uint8_t tag[16] = "agentd-audit-v1"; /* with its NUL: 16 bytes */
	crypto_hash_sha256_state h;
	crypto_hash_sha256_init(&h);
	crypto_hash_sha256_update(&h, tag, sizeof tag);
	put_u64(&h, f->seq);
	put_u64(&h, f->time_ms);
	put_str(&h, f->tenant, f->tenant_len);
	put_str(&h, f->user, f->user_len);
	if (f->run_id) {
		const uint8_t one = 1;
		crypto_hash_sha256_update(&h, &one, 1);
		put_str(&h, f->run_id, f->run_id_len);
	} else {
		const uint8_t zero = 0;
		crypto_hash_sha256_update(&h, &zero, 1);
	}
	put_u64(&h, f->step);
	put_str(&h, f->kind, f->kind_len);
	put_str(&h, f->data, f->data_len);
	crypto_hash_sha256_update(&h, f->prev_hash, 32);
	crypto_hash_sha256_final(&h, out);
}

/* The signed message of a checkpoint. */
static void checkpoint_message(uint8_t msg[69], const agentd_audit_checkpoint *cp)
{
	static const uint8_t tag[21] = "agentd-audit-ckpt-v1"; /* with its NUL */
	memcpy(msg, tag, 21);
	uint64_t s = (uint64_t)cp->seq, t = (uint64_t)cp->time_ms;
	for (int i = 7; i >= 0; i--) {
		msg[21 + i] = (uint8_t)(s & 0xff);
		s >>= 8;
		msg[61 + i] = (uint8_t)(t & 0xff);
		t >>= 8;
	}
	memcpy(msg + 29, cp->hash, 32);
}

void audit_sign_checkpoint(const agentd_audit *a, agentd_audit_checkpoint *cp)
{
	uint8_t msg[69];
	checkpoint_message(msg, cp);
	memcpy(cp->public_key, a->pk, 32);
	crypto_sign_detached(cp->signature, NULL, msg, sizeof msg, a->sk);
}

bool audit_checkpoint_valid(const uint8_t pk[32], const agentd_audit_checkpoint *cp)
{
	uint8_t msg[69];
	checkpoint_message(msg, cp);
	return crypto_sign_verify_detached(cp->signature, msg, sizeof msg, pk) == 0;
}

/* ------------------------------------------------------------ the key */

/* Writes a new key file without ever replacing one another process made first:
 * the seed goes to a temporary file that is then hard-linked into place. */
static int create_key_file(const char *path, const uint8_t seed[32])
{
	char tmp[PATH_MAX], text[66];
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.new.%d", path, (int)getpid()) >= sizeof tmp)
		return ag_error_set(AG_EINVAL, "data directory path too long");
	ag_hex_encode(text, seed, 32);
	text[64] = '\n';
	text[65] = '\0';
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return ag_error_set(AG_EIO, "%s: %s", tmp, strerror(errno));
	int rc = 0;
	if (fchmod(fd, 0600) != 0 || write(fd, text, 65) != 65 || fsync(fd) != 0)
		rc = ag_error_set(AG_EIO, "writing %s: %s", tmp, strerror(errno));
	close(fd);
	if (!rc && link(tmp, path) != 0)
		rc = errno == EEXIST ? AG_ECONFLICT : ag_error_set(AG_EIO, "%s: %s", path, strerror(errno));
	unlink(tmp);
	sodium_memzero(text, sizeof text);
	return rc;
}

static int load_key_file(const char *path, uint8_t seed[32])
{
	char *text;
	size_t len;
	int rc = ag_read_file(path, 4096, &text, &len);
	if (rc)
		return rc;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
		text[--len] = '\0';
	if (len != 64 || ag_hex_decode(seed, 32, text) != 0)
		rc = ag_error_set(AG_ECORRUPT, "%s: expected 64 hex digits (an Ed25519 seed)", path);
	sodium_memzero(text, len);
	ag_free(text);
	struct stat sb;
	if (!rc && stat(path, &sb) == 0 && (sb.st_mode & 077))
		ag_warn("%s is readable by others (mode %03o); it should be 0600", path,
			(unsigned)(sb.st_mode & 0777));
	return rc;
}

/* The newest checkpoint's public key, if there is a checkpoint. */
static int stored_public_key(sqlite3 *db, bool *found, uint8_t pk[32])
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st, "SELECT public_key FROM audit_checkpoints ORDER BY seq DESC LIMIT 1");
	if (rc)
		return rc;
	*found = false;
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		*found = true;
		if (sqlite3_column_bytes(st, 0) == 32)
			memcpy(pk, sqlite3_column_blob(st, 0), 32);
		else
			memset(pk, 0, 32);
	} else if (s != SQLITE_DONE) {
		rc = ag_db_error(db, s, "reading audit checkpoints");
	}
	sqlite3_finalize(st);
	return rc;
}

int agentd_audit_open(agentd_audit **out, sqlite3 *db, const char *data_dir, int64_t checkpoint_every)
{
	if (sodium_init() < 0)
		return ag_error_set(AG_ERR, "libsodium failed to initialise");
	if (checkpoint_every < 0)
		return ag_error_set(AG_EINVAL, "audit_checkpoint_every must not be negative");
	char path[PATH_MAX];
	if ((size_t)snprintf(path, sizeof path, "%s/audit.key", data_dir) >= sizeof path)
		return ag_error_set(AG_EINVAL, "data directory path too long");
	bool have_cp;
	uint8_t cp_pk[32];
	int rc = stored_public_key(db, &have_cp, cp_pk);
	if (rc)
		return rc;
	uint8_t seed[32];
	if (access(path, F_OK) != 0) {
		if (have_cp)
			return ag_error_set(
				AG_ECORRUPT,
				"%s is missing but the audit log has signed checkpoints: restore the key",
				path);
		if ((rc = ag_random_bytes(seed, sizeof seed)))
			return rc;
		rc = create_key_file(path, seed);
		if (rc == AG_ECONFLICT) /* another process made it first: use theirs */
			rc = load_key_file(path, seed);
		else if (!rc)
			ag_info("created the audit signing key %s", path);
	} else {
		rc = load_key_file(path, seed);
	}
	if (rc)
		return rc;
	agentd_audit *a = ag_calloc(1, sizeof *a);
	if (!a) {
		sodium_memzero(seed, sizeof seed);
		return ag_error_set(AG_ENOMEM, "out of memory");
	}
	crypto_sign_seed_keypair(a->pk, a->sk, seed);
	sodium_memzero(seed, sizeof seed);
	a->checkpoint_every = checkpoint_every;
	if (have_cp && memcmp(cp_pk, a->pk, 32) != 0) {
		agentd_audit_free(a);
		return ag_error_set(AG_ECORRUPT, "%s is not the key that signed the audit checkpoints", path);
	}
	*out = a;
	return 0;
}

void agentd_audit_free(agentd_audit *a)
{
	if (!a)
		return;
	sodium_memzero(a, sizeof *a);
	ag_free(a);
}

const uint8_t *agentd_audit_public_key(const agentd_audit *a) { return a->pk; }

/* ------------------------------------------------------------ the chain */

static int read_link(sqlite3 *db, const char *sql, bool *found, int64_t *seq, uint8_t hash[32])
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st, sql);
	if (rc)
		return rc;
	*found = false;
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 1) != 32) {
			rc = ag_error_set(AG_ECORRUPT, "audit record %lld has a malformed hash",
					  (long long)sqlite3_column_int64(st, 0));
		} else {
			*found = true;
			*seq = sqlite3_column_int64(st, 0);
			memcpy(hash, sqlite3_column_blob(st, 1), 32);
		}
	} else if (s != SQLITE_DONE) {
		rc = ag_db_error(db, s, "reading the audit chain");
	}
	sqlite3_finalize(st);
	return rc;
}

int audit_anchor(sqlite3 *db, bool *found, int64_t *seq, uint8_t hash[32])
{
	return read_link(db, "SELECT seq, hash FROM audit_anchor WHERE id = 1", found, seq, hash);
}

int audit_chain_head(sqlite3 *db, int64_t *seq, uint8_t hash[32])
{
	bool found;
	int rc =
		read_link(db, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", &found, seq, hash);
	if (rc || found)
		return rc;
	if ((rc = audit_anchor(db, &found, seq, hash)) || found)
		return rc;
	*seq = 0;
	memset(hash, 0, 32);
	return 0;
}

int audit_store_checkpoint(sqlite3 *db, const agentd_audit_checkpoint *cp)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st,
			       "INSERT INTO audit_checkpoints(seq, hash, time_ms, public_key, signature) "
			       "VALUES (?, ?, ?, ?, ?) ON CONFLICT(seq) DO NOTHING");
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, cp->seq);
	sqlite3_bind_blob(st, 2, cp->hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, cp->time_ms);
	sqlite3_bind_blob(st, 4, cp->public_key, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, cp->signature, 64, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s != SQLITE_DONE)
		rc = ag_db_error(db, s, "storing an audit checkpoint");
	sqlite3_finalize(st);
	return rc;
}

/* Opens the unit of work an append or checkpoint runs in: its own write
 * transaction in autocommit mode, else a savepoint inside the caller's, so a
 * failure undoes only our part and the caller decides about the rest. */
static int unit_begin(sqlite3 *db, bool *own)
{
	*own = sqlite3_get_autocommit(db) != 0;
	return *own ? ag_db_begin(db) : ag_db_exec(db, "SAVEPOINT agentd_audit");
}

static int unit_end(sqlite3 *db, bool own, int rc)
{
	if (own) {
		if (!rc)
			rc = ag_db_commit(db);
		if (rc)
			ag_db_rollback(db);
		return rc;
	}
	if (rc)
		sqlite3_exec(db, "ROLLBACK TO agentd_audit", NULL, NULL, NULL);
	int r2 = ag_db_exec(db, "RELEASE agentd_audit");
	return rc ? rc : r2;
}

static int check_text(const char *what, const char *s, size_t max, bool required)
{
	if (!s)
		return required ? ag_error_set(AG_EINVAL, "audit event without %s", what) : 0;
	if (strlen(s) > max)
		return ag_error_set(AG_EINVAL, "audit event %s longer than %zu bytes", what, max);
	return 0;
}

static int insert_record(agentd_audit *a, sqlite3 *db, const agentd_audit_event *ev, const char *data,
			 size_t data_len, int64_t *seq_out)
{
	int64_t last;
	uint8_t prev[32], hash[32];
	int rc = audit_chain_head(db, &last, prev);
	if (rc)
		return rc;
	audit_fields f = {
		.seq = last + 1,
		.time_ms = ag_now_ms(),
		.tenant = ev->tenant,
		.tenant_len = strlen(ev->tenant),
		.user = ev->user,
		.user_len = strlen(ev->user),
		.run_id = ev->run_id,
		.run_id_len = ev->run_id ? strlen(ev->run_id) : 0,
		.step = ev->step,
		.kind = ev->kind,
		.kind_len = strlen(ev->kind),
		.data = data,
		.data_len = data_len,
		.prev_hash = prev,
	};
	audit_hash_record(hash, &f);
	sqlite3_stmt *st;
	if ((rc = ag_db_prepare(db, &st,
				"INSERT INTO audit_log(" AUDIT_RECORD_COLUMNS
				") VALUES (?,?,?,?,?,?,?,?,?,?)")))
		return rc;
	sqlite3_bind_int64(st, 1, f.seq);
	sqlite3_bind_int64(st, 2, f.time_ms);
	sqlite3_bind_text(st, 3, f.tenant, (int)f.tenant_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, f.user, (int)f.user_len, SQLITE_STATIC);
	if (f.run_id)
		sqlite3_bind_text(st, 5, f.run_id, (int)f.run_id_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, f.step);
	sqlite3_bind_text(st, 7, f.kind, (int)f.kind_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, data, (int)data_len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 9, prev, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 10, hash, 32, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s != SQLITE_DONE)
		rc = ag_db_error(db, s, "appending an audit record");
	sqlite3_finalize(st);
	if (rc)
		return rc;
	if (a->checkpoint_every > 0 && f.seq % a->checkpoint_every == 0) {
		agentd_audit_checkpoint cp = {.seq = f.seq, .time_ms = f.time_ms};
		memcpy(cp.hash, hash, 32);
		audit_sign_checkpoint(a, &cp);
		if ((rc = audit_store_checkpoint(db, &cp)))
			return rc;
	}
	if (seq_out)
		*seq_out = f.seq;
	return 0;
}

static int check_event(const agentd_audit_event *ev)
{
	int rc;
	if ((rc = check_text("kind", ev->kind, 64, true)) ||
	    (rc = check_text("tenant", ev->tenant, 64, true)) ||
	    (rc = check_text("user", ev->user, 256, true)) ||
	    (rc = check_text("run id", ev->run_id, 128, false)))
		return rc;
	if (!*ev->kind)
		return ag_error_set(AG_EINVAL, "audit event with an empty kind");
	if (ev->data && !json_is_object(ev->data))
		return ag_error_set(AG_EINVAL, "audit event data must be a JSON object");
	return 0;
}

/* The policy's redaction rules for the audit log, over every string in v (keys are the
 * record's own structure, not data). A string a rule withholds (its match limit) is replaced. */
static int redact_strings(const policies_policy *p, json_t *v)
{
	int rc = 0;
	if (json_is_string(v)) {
		policies_redaction red;
		if ((rc = policies_redact(p, NULL, POLICIES_SINK_AUDIT, json_string_value(v),
					  json_string_length(v), &red)))
			return rc;
		if (red.decision.action == POLICIES_DENY)
			rc = json_string_set(v, "[WITHHELD]");
		else if (red.count > 0)
			rc = json_string_set(v, red.text);
		policies_redaction_free(&red);
		return rc ? ag_error_set(AG_ENOMEM, "out of memory redacting audit data") : 0;
	}
	const char *key;
	size_t i;
	json_t *item;
	if (json_is_object(v))
		json_object_foreach(v, key, item) if ((rc = redact_strings(p, item))) return rc;
	if (json_is_array(v))
		json_array_foreach(v, i, item) if ((rc = redact_strings(p, item))) return rc;
	return 0;
}

/* Serialises the event's data canonically and inserts the record. */
static int append_one(agentd_audit *a, sqlite3 *db, const agentd_audit_event *ev, int64_t *seq_out)
{
	char empty[] = "{}", *data = empty;
	size_t data_len = 2;
	int rc = 0;
	if (ev->data && json_object_size(ev->data) > 0) {
		/* What a step carried (questions, model output, tool arguments and results) is kept as
		 * the policy allows: its redaction rules for the audit log apply to a copy. */
		policies_policy *p = agentd_policies_current();
		json_t *copy = p ? json_deep_copy(ev->data) : NULL;
		if (p && !copy)
			rc = ag_error_set(AG_ENOMEM, "out of memory redacting audit data");
		if (copy && !rc)
			rc = redact_strings(p, copy);
		policies_release(p);
		data = rc ? NULL : json_dumps(copy ? copy : ev->data, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(copy);
		if (rc)
			return rc;
		if (!data)
			return ag_error_set(AG_ENOMEM, "out of memory serialising audit data");
		data_len = strlen(data);
	}
	rc = insert_record(a, db, ev, data, data_len, seq_out);
	if (data != empty)
		ag_free(data);
	return rc;
}

int agentd_audit_append_many(agentd_audit *a, sqlite3 *db, const agentd_audit_event *evs, size_t n,
			     int64_t *first_seq_out)
{
	int rc;
	for (size_t i = 0; i < n; i++)
		if ((rc = check_event(&evs[i])))
			return rc;
	bool own;
	if ((rc = unit_begin(db, &own)))
		return rc;
	for (size_t i = 0; i < n && !rc; i++)
		rc = append_one(a, db, &evs[i], i == 0 ? first_seq_out : NULL);
	return unit_end(db, own, rc);
}

int agentd_audit_append(agentd_audit *a, sqlite3 *db, const agentd_audit_event *ev, int64_t *seq_out)
{
	return agentd_audit_append_many(a, db, ev, 1, seq_out);
}

int agentd_audit_record(agentd_audit *a, sqlite3 *db, const char *kind, const char *tenant, const char *user,
			const char *run_id, int64_t step, json_t *data)
{
	agentd_audit_event ev = {kind, tenant, user, run_id, step, data};
	int rc = agentd_audit_append(a, db, &ev, NULL);
	json_decref(data);
	return rc;
}

static int checkpoint_now(agentd_audit *a, sqlite3 *db, agentd_audit_checkpoint *out)
{
	int64_t seq;
	uint8_t hash[32];
	int rc = audit_chain_head(db, &seq, hash);
	if (rc)
		return rc;
	if (seq == 0)
		return ag_error_set(AG_ENOTFOUND, "the audit log is empty");
	/* An existing checkpoint of the head stands; signing it again would only add noise. */
	sqlite3_stmt *st;
	if ((rc = ag_db_prepare(db, &st, "SELECT time_ms, signature FROM audit_checkpoints WHERE seq = ?")))
		return rc;
	sqlite3_bind_int64(st, 1, seq);
	agentd_audit_checkpoint cp = {.seq = seq};
	memcpy(cp.hash, hash, 32);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW && sqlite3_column_bytes(st, 1) == 64) {
		cp.time_ms = sqlite3_column_int64(st, 0);
		memcpy(cp.public_key, a->pk, 32);
		memcpy(cp.signature, sqlite3_column_blob(st, 1), 64);
	} else if (s == SQLITE_ROW || s == SQLITE_DONE) {
		cp.time_ms = ag_now_ms();
		audit_sign_checkpoint(a, &cp);
		s = SQLITE_DONE;
	}
	sqlite3_finalize(st);
	if (s != SQLITE_DONE && s != SQLITE_ROW)
		return ag_db_error(db, s, "reading audit checkpoints");
	if (s == SQLITE_DONE && (rc = audit_store_checkpoint(db, &cp)))
		return rc;
	if (out)
		*out = cp;
	return 0;
}

int agentd_audit_checkpoint_now(agentd_audit *a, sqlite3 *db, agentd_audit_checkpoint *out)
{
	bool own;
	int rc = unit_begin(db, &own);
	if (rc)
		return rc;
	return unit_end(db, own, checkpoint_now(a, db, out));
}
