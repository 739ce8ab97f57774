/*
 * Storage of per-user memory states in SQLite. The state bytes are deflated
 * (zlib) behind a small header (magic, format, raw length, CRC-32) so a
 * damaged BLOB is detected before it reaches the engine.
 */
#include "memory/memory.h"

#include <stdio.h>
#include <string.h>
#include <zlib.h>

#define BLOB_MAGIC      "AGMS"
#define EXPORT_MAGIC    "AGMX"
#define FORMAT_VERSION  1u
#define BLOB_HEADER     20           /* magic, format, raw length, crc */
#define MAX_STATE_BYTES (1ull << 34) /* 16 GiB: far above any real state */

static const char *const memory_sql[] = {
	"CREATE TABLE memory_states ("
	"  tenant TEXT NOT NULL,"
	"  user TEXT NOT NULL,"
	"  model_id TEXT NOT NULL,"
	"  tokens INTEGER NOT NULL,"
	"  state_bytes INTEGER NOT NULL,"
	"  version INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL,"
	"  state BLOB NOT NULL,"
	"  PRIMARY KEY (tenant, user));",
};

int memory_migrate(sqlite3 *db)
{
	static const ag_migration_set set = {"memory", memory_sql, sizeof memory_sql / sizeof memory_sql[0]};
	return ag_db_migrate(db, &set);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t crc_of(const uint8_t *data, size_t len)
{
	uLong crc = crc32(0L, Z_NULL, 0);
	while (len) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
		crc = crc32(crc, data, n);
		data += n;
		len -= n;
	}
	return (uint32_t)crc;
}

/* Deflates state behind the blob header; *out is the caller's. */
static int pack_blob(const uint8_t *state, size_t len, uint8_t **out, size_t *out_len)
{
	uLong bound = compressBound((uLong)len);
	uint8_t *buf = ag_malloc(BLOB_HEADER + bound);
	if (!buf)
		return ag_error_set(AG_ENOMEM, "out of memory compressing a memory state");
	memcpy(buf, BLOB_MAGIC, 4);
	put_u32(buf + 4, FORMAT_VERSION);
	put_u64(buf + 8, len);
	put_u32(buf + 16, crc_of(state, len));
	uLongf zlen = bound;
	/* Level 1: float states barely compress further, and saves sit on the request path. */
	int z = compress2(buf + BLOB_HEADER, &zlen, state, (uLong)len, 1);
	if (z != Z_OK) {
		ag_free(buf);
		return ag_error_set(z == Z_MEM_ERROR ? AG_ENOMEM : AG_ERR,
				    "compressing a memory state failed (%d)", z);
	}
	*out = buf;
	*out_len = BLOB_HEADER + zlen;
	return 0;
}

static int unpack_blob(const uint8_t *blob, size_t blob_len, uint8_t **out, size_t *out_len)
{
	if (blob_len < BLOB_HEADER || memcmp(blob, BLOB_MAGIC, 4) != 0)
		return ag_error_set(AG_ECORRUPT, "stored memory state has no valid header");
	if (get_u32(blob + 4) != FORMAT_VERSION)
		return ag_error_set(AG_ECORRUPT, "stored memory state has unknown format %u",
				    get_u32(blob + 4));
	uint64_t raw = get_u64(blob + 8);
	if (raw > MAX_STATE_BYTES)
		return ag_error_set(AG_ECORRUPT, "stored memory state claims %llu bytes",
				    (unsigned long long)raw);
	uint8_t *buf = ag_malloc(raw ? raw : 1);
	if (!buf)
		return ag_error_set(AG_ENOMEM, "out of memory restoring a memory state");
	uLongf got = (uLongf)raw;
	int z = uncompress(buf, &got, blob + BLOB_HEADER, (uLong)(blob_len - BLOB_HEADER));
	if (z != Z_OK || got != raw || crc_of(buf, raw) != get_u32(blob + 16)) {
		ag_free(buf);
		if (z == Z_MEM_ERROR)
			return ag_error_set(AG_ENOMEM, "out of memory restoring a memory state");
		return ag_error_set(AG_ECORRUPT,
				    "stored memory state is damaged (zlib %d, checksum or length wrong)", z);
	}
	*out = buf;
	*out_len = (size_t)raw;
	return 0;
}

static void fill_info(sqlite3_stmt *st, memory_info *info)
{
	memset(info, 0, sizeof *info);
	const char *model = (const char *)sqlite3_column_text(st, 0);
	snprintf(info->model_id, sizeof info->model_id, "%s", model ? model : "");
	info->tokens = sqlite3_column_int64(st, 1);
	info->state_bytes = sqlite3_column_int64(st, 2);
	info->version = sqlite3_column_int64(st, 3);
	info->updated_ms = sqlite3_column_int64(st, 4);
	info->stored_bytes = sqlite3_column_int64(st, 5);
}

int memory_get_info(sqlite3 *db, const char *tenant, const char *user, memory_info *out)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st,
			       "SELECT model_id, tokens, state_bytes, version, updated_at, length(state) "
			       "FROM memory_states WHERE tenant = ? AND user = ?");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW)
		fill_info(st, out);
	else if (s == SQLITE_DONE)
		rc = ag_error_set(AG_ENOTFOUND, "no memory for user '%s'", user);
	else
		rc = ag_db_error(db, s, "reading memory");
	sqlite3_finalize(st);
	return rc;
}

int memory_load(sqlite3 *db, const char *tenant, const char *user, const char *model_id, uint8_t **state,
		size_t *len, memory_info *info)
{
	*state = NULL;
	*len = 0;
	sqlite3_stmt *st;
	int rc = ag_db_prepare(
		db, &st,
		"SELECT model_id, tokens, state_bytes, version, updated_at, length(state), state "
		"FROM memory_states WHERE tenant = ? AND user = ?");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s != SQLITE_ROW) {
		sqlite3_finalize(st);
		if (s == SQLITE_DONE)
			return ag_error_set(AG_ENOTFOUND, "no memory for user '%s'", user);
		return ag_db_error(db, s, "reading memory");
	}
	memory_info tmp;
	fill_info(st, &tmp);
	if (strcmp(tmp.model_id, model_id) != 0) {
		sqlite3_finalize(st);
		return ag_error_set(AG_ECONFLICT,
				    "memory of '%s' was saved by another model (%.16s…, this is %.16s…)",
				    user, tmp.model_id, model_id);
	}
	rc = unpack_blob(sqlite3_column_blob(st, 6), (size_t)sqlite3_column_bytes(st, 6), state, len);
	sqlite3_finalize(st);
	if (rc)
		return rc;
	if ((int64_t)*len != tmp.state_bytes) {
		ag_free(*state);
		*state = NULL;
		return ag_error_set(AG_ECORRUPT, "memory of '%s' has the wrong size", user);
	}
	if (info)
		*info = tmp;
	return 0;
}

static int save_blob(sqlite3 *db, const char *tenant, const char *user, const char *model_id,
		     const uint8_t *blob, size_t blob_len, int64_t state_bytes, int64_t tokens,
		     int64_t expected_version, int64_t *new_version)
{
	bool own_tx = sqlite3_get_autocommit(db);
	int rc;
	if (own_tx && (rc = ag_db_begin(db)))
		return rc;
	sqlite3_stmt *st;
	int64_t current = 0;
	if ((rc = ag_db_prepare(db, &st, "SELECT version FROM memory_states WHERE tenant = ? AND user = ?")))
		goto fail;
	sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW)
		current = sqlite3_column_int64(st, 0);
	else if (s != SQLITE_DONE)
		rc = ag_db_error(db, s, "reading memory version");
	sqlite3_finalize(st);
	if (rc)
		goto fail;
	if (expected_version >= 0 && current != expected_version) {
		rc = ag_error_set(AG_ECONFLICT,
				  "memory of '%s' changed meanwhile (version %lld, expected %lld)", user,
				  (long long)current, (long long)expected_version);
		goto fail;
	}
	if ((rc = ag_db_prepare(
		     db, &st,
		     "INSERT INTO memory_states(tenant, user, model_id, tokens, state_bytes, version, "
		     "updated_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
		     "ON CONFLICT(tenant, user) DO UPDATE SET model_id = excluded.model_id, "
		     "tokens = excluded.tokens, state_bytes = excluded.state_bytes, version = "
		     "excluded.version, "
		     "updated_at = excluded.updated_at, state = excluded.state")))
		goto fail;
	sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, model_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, tokens);
	sqlite3_bind_int64(st, 5, state_bytes);
	sqlite3_bind_int64(st, 6, current + 1);
	sqlite3_bind_int64(st, 7, ag_now_ms());
	sqlite3_bind_blob64(st, 8, blob, blob_len, SQLITE_STATIC);
	s = sqlite3_step(st);
	sqlite3_finalize(st);
	if (s != SQLITE_DONE) {
		rc = ag_db_error(db, s, "saving memory");
		goto fail;
	}
	if (own_tx && (rc = ag_db_commit(db)))
		goto fail;
	if (new_version)
		*new_version = current + 1;
	return 0;
fail:
	if (own_tx)
		ag_db_rollback(db);
	return rc;
}

static int check_model_id(const char *model_id)
{
	size_t n = strlen(model_id);
	if (n == 0 || n > MEMORY_MODEL_ID_MAX)
		return ag_error_set(AG_EINVAL, "model identity must be 1 to %d characters",
				    MEMORY_MODEL_ID_MAX);
	return 0;
}

int memory_save(sqlite3 *db, const char *tenant, const char *user, const char *model_id, const uint8_t *state,
		size_t len, int64_t tokens, int64_t expected_version, int64_t *new_version)
{
	int rc = check_model_id(model_id);
	if (rc)
		return rc;
	if (tokens < 0)
		return ag_error_set(AG_EINVAL, "token count must not be negative");
	uint8_t *blob = NULL;
	size_t blob_len = 0;
	if ((rc = pack_blob(state, len, &blob, &blob_len)))
		return rc;
	rc = save_blob(db, tenant, user, model_id, blob, blob_len, (int64_t)len, tokens, expected_version,
		       new_version);
	ag_free(blob);
	return rc;
}

int memory_delete(sqlite3 *db, const char *tenant, const char *user)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st, "DELETE FROM memory_states WHERE tenant = ? AND user = ?");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	sqlite3_finalize(st);
	if (s != SQLITE_DONE)
		return ag_db_error(db, s, "deleting memory");
	if (sqlite3_changes(db) == 0)
		return ag_error_set(AG_ENOTFOUND, "no memory for user '%s'", user);
	return 0;
}

/* Export layout: "AGMX", u32 format, u32 model id length, model id, i64 tokens,
 * u64 state bytes, u64 blob length, blob (as stored), SHA-256 of all before it. */
int memory_export(sqlite3 *db, const char *tenant, const char *user, uint8_t **out, size_t *len)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st,
			       "SELECT model_id, tokens, state_bytes, state FROM memory_states "
			       "WHERE tenant = ? AND user = ?");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s != SQLITE_ROW) {
		sqlite3_finalize(st);
		if (s == SQLITE_DONE)
			return ag_error_set(AG_ENOTFOUND, "no memory for user '%s'", user);
		return ag_db_error(db, s, "reading memory");
	}
	const char *model = (const char *)sqlite3_column_text(st, 0);
	size_t mlen = strlen(model ? model : "");
	size_t blen = (size_t)sqlite3_column_bytes(st, 3);
	size_t total = 4 + 4 + 4 + mlen + 8 + 8 + 8 + blen + 32;
	uint8_t *buf = ag_malloc(total);
	if (!buf) {
		sqlite3_finalize(st);
		return ag_error_set(AG_ENOMEM, "out of memory exporting memory");
	}
	uint8_t *p = buf;
	memcpy(p, EXPORT_MAGIC, 4);
	put_u32(p + 4, FORMAT_VERSION);
	put_u32(p + 8, (uint32_t)mlen);
	p += 12;
	memcpy(p, model, mlen);
	p += mlen;
	put_u64(p, (uint64_t)sqlite3_column_int64(st, 1));
	put_u64(p + 8, (uint64_t)sqlite3_column_int64(st, 2));
	put_u64(p + 16, blen);
	p += 24;
	if (blen)
		memcpy(p, sqlite3_column_blob(st, 3), blen);
	p += blen;
	sqlite3_finalize(st);
	ag_sha256(p, buf, (size_t)(p - buf));
	*out = buf;
	*len = total;
	return 0;
}

int memory_import(sqlite3 *db, const char *tenant, const char *user, const uint8_t *data, size_t len)
{
	if (len < 12 + 24 + 32 || memcmp(data, EXPORT_MAGIC, 4) != 0)
		return ag_error_set(AG_EINVAL, "not an agentd memory export");
	if (get_u32(data + 4) != FORMAT_VERSION)
		return ag_error_set(AG_EINVAL, "memory export has unknown format %u", get_u32(data + 4));
	uint8_t digest[32];
	ag_sha256(digest, data, len - 32);
	if (memcmp(digest, data + len - 32, 32) != 0)
		return ag_error_set(AG_EINVAL, "memory export is damaged (checksum mismatch)");
	uint32_t mlen = get_u32(data + 8);
	if (mlen == 0 || mlen > MEMORY_MODEL_ID_MAX || 12 + (size_t)mlen + 24 + 32 > len)
		return ag_error_set(AG_EINVAL, "memory export has a bad model identity");
	char model[MEMORY_MODEL_ID_MAX + 1];
	memcpy(model, data + 12, mlen);
	model[mlen] = '\0';
	if (strlen(model) != mlen)
		return ag_error_set(AG_EINVAL, "memory export has a bad model identity");
	const uint8_t *p = data + 12 + mlen;
	int64_t tokens = (int64_t)get_u64(p);
	uint64_t state_bytes = get_u64(p + 8);
	uint64_t blen = get_u64(p + 16);
	p += 24;
	if (tokens < 0 || blen != len - 32 - (size_t)(p - data))
		return ag_error_set(AG_EINVAL, "memory export has inconsistent lengths");
	/* Check the state decompresses whole before replacing anything. */
	uint8_t *state;
	size_t slen;
	int rc = unpack_blob(p, (size_t)blen, &state, &slen);
	if (rc)
		return ag_error_set(rc == AG_ENOMEM ? rc : AG_EINVAL, "memory export: %s", ag_error_last());
	ag_free(state);
	if (slen != state_bytes)
		return ag_error_set(AG_EINVAL, "memory export has inconsistent lengths");
	return save_blob(db, tenant, user, model, p, (size_t)blen, (int64_t)slen, tokens, -1, NULL);
}
