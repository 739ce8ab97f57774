/*
 * API keys and roles. A key is "ag_" + a 12-character key id + a
 * 32-character secret, all URL-safe base64 from libsodium's random source.
 * The database holds the key id in clear (to find the row) and a salted
 * SHA-256 of the whole key; the secret itself is shown once and never stored.
 * Keys carry 198 bits of entropy, so a fast hash is enough: there is nothing
 * to brute-force the way a password could be.
 */
#include "agentd/auth.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define KEY_PREFIX       "ag_"
#define KEY_ID_BYTES     9  /* 12 base64 characters */
#define KEY_SECRET_BYTES 24 /* 32 base64 characters */
#define KEY_ID_CHARS     12
#define KEY_LEN          (3 + KEY_ID_CHARS + 32)
#define SALT_BYTES       16

static const char *const auth_sql[] = {
	"CREATE TABLE tenants ("
	"  id TEXT PRIMARY KEY,"
	"  created_at INTEGER NOT NULL);"
	"CREATE TABLE users ("
	"  tenant TEXT NOT NULL REFERENCES tenants(id),"
	"  name TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  PRIMARY KEY (tenant, name));"
	"CREATE TABLE api_keys ("
	"  key_id TEXT PRIMARY KEY,"
	"  tenant TEXT NOT NULL,"
	"  user TEXT NOT NULL,"
	"  role TEXT NOT NULL CHECK (role IN ('admin', 'analyst', 'viewer', 'auditor')),"
	"  salt BLOB NOT NULL,"
	"  hash BLOB NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  revoked_at INTEGER,"
	"  FOREIGN KEY (tenant, user) REFERENCES users(tenant, name));"
	"CREATE INDEX api_keys_tenant ON api_keys(tenant);",
};

int agentd_auth_migrate(sqlite3 *db)
{
	static const ag_migration_set set = {"auth", auth_sql, sizeof auth_sql / sizeof auth_sql[0]};
	return ag_db_migrate(db, &set);
}

static const struct {
	const char *name;
	unsigned bit;
} roles[] = {
	{"admin", AGENTD_ROLE_ADMIN},
	{"analyst", AGENTD_ROLE_ANALYST},
	{"viewer", AGENTD_ROLE_VIEWER},
	{"auditor", AGENTD_ROLE_AUDITOR},
};

int agentd_role_parse(const char *name, unsigned *out)
{
	for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
		if (strcmp(roles[i].name, name) == 0) {
			*out = roles[i].bit;
			return 0;
		}
	}
	return ag_error_set(AG_EINVAL, "unknown role '%s' (admin, analyst, viewer, auditor)", name);
}

const char *agentd_role_name(unsigned role)
{
	for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
		if (roles[i].bit == role)
			return roles[i].name;
	return "none";
}

/* Tenant and user names: what a person would type, nothing that needs escaping anywhere. */
static int check_name(const char *what, const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return ag_error_set(AG_EINVAL, "%s must be 1 to %zu characters", what, max);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
		    c != '-' && c != '_' && c != '.' && c != '@')
			return ag_error_set(AG_EINVAL, "%s may hold only letters, digits and - _ . @", what);
	}
	return 0;
}

static void key_hash(uint8_t out[32], const uint8_t *salt, const char *key)
{
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, salt, SALT_BYTES);
	crypto_hash_sha256_update(&st, (const unsigned char *)key, strlen(key));
	crypto_hash_sha256_final(&st, out);
}

static int step_done(sqlite3 *db, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return ag_db_error(db, rc, what);
	return 0;
}

int agentd_auth_create_key(sqlite3 *db, const char *tenant, const char *user, const char *role,
			   char **key_out, char **key_id_out)
{
	unsigned bit;
	int rc;
	*key_out = NULL;
	if (key_id_out)
		*key_id_out = NULL;
	if ((rc = check_name("tenant", tenant, 63)) || (rc = check_name("user", user, 127)) ||
	    (rc = agentd_role_parse(role, &bit)))
		return rc;

	uint8_t id_raw[KEY_ID_BYTES], secret_raw[KEY_SECRET_BYTES], salt[SALT_BYTES], hash[32];
	char key[KEY_LEN + 1], key_id[KEY_ID_CHARS + 1];
	if ((rc = ag_random_bytes(id_raw, sizeof id_raw)) ||
	    (rc = ag_random_bytes(secret_raw, sizeof secret_raw)) ||
	    (rc = ag_random_bytes(salt, sizeof salt)))
		return rc;
	ag_b64url_encode(key_id, id_raw, sizeof id_raw);
	memcpy(key, KEY_PREFIX, 3);
	memcpy(key + 3, key_id, KEY_ID_CHARS);
	ag_b64url_encode(key + 3 + KEY_ID_CHARS, secret_raw, sizeof secret_raw);
	key_hash(hash, salt, key);
	sodium_memzero(secret_raw, sizeof secret_raw);

	char *copy = ag_strdup(key);
	char *id_copy = key_id_out ? ag_strdup(key_id) : NULL;
	if (!copy || (key_id_out && !id_copy)) {
		rc = ag_error_set(AG_ENOMEM, "out of memory creating a key");
		goto fail;
	}

	bool own_tx = sqlite3_get_autocommit(db);
	if (own_tx && (rc = ag_db_begin(db)))
		goto fail;
	sqlite3_stmt *st;
	int64_t now = ag_now_ms();
	if ((rc = ag_db_prepare(db, &st, "INSERT OR IGNORE INTO tenants(id, created_at) VALUES (?, ?)")))
		goto rollback;
	sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	if ((rc = step_done(db, st, "creating tenant")))
		goto rollback;
	if ((rc = ag_db_prepare(db, &st,
				"INSERT OR IGNORE INTO users(tenant, name, created_at) VALUES (?, ?, ?)")))
		goto rollback;
	sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	if ((rc = step_done(db, st, "creating user")))
		goto rollback;
	if ((rc = ag_db_prepare(db, &st,
				"INSERT INTO api_keys(key_id, tenant, user, role, salt, hash, created_at) "
				"VALUES (?, ?, ?, ?, ?, ?, ?)")))
		goto rollback;
	sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, role, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, salt, SALT_BYTES, SQLITE_STATIC);
	sqlite3_bind_blob(st, 6, hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, now);
	if ((rc = step_done(db, st, "storing key")))
		goto rollback;
	if (own_tx && (rc = ag_db_commit(db)))
		goto rollback;
	sodium_memzero(key, sizeof key);
	*key_out = copy;
	if (key_id_out)
		*key_id_out = id_copy;
	return 0;
rollback:
	if (own_tx)
		ag_db_rollback(db);
fail:
	sodium_memzero(key, sizeof key);
	if (copy)
		sodium_memzero(copy, strlen(copy));
	ag_free(copy);
	ag_free(id_copy);
	return rc;
}

int agentd_auth_check_key(sqlite3 *db, const char *key, agentd_principal *out)
{
	memset(out, 0, sizeof *out);
	size_t n = strlen(key);
	if (n != KEY_LEN || memcmp(key, KEY_PREFIX, 3) != 0)
		return ag_error_set(AG_EUNAUTH, "invalid API key");
	char key_id[KEY_ID_CHARS + 1];
	memcpy(key_id, key + 3, KEY_ID_CHARS);
	key_id[KEY_ID_CHARS] = '\0';

	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st,
			       "SELECT tenant, user, role, salt, hash FROM api_keys "
			       "WHERE key_id = ? AND revoked_at IS NULL");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s != SQLITE_ROW) {
		sqlite3_finalize(st);
		if (s == SQLITE_DONE)
			return ag_error_set(AG_EUNAUTH, "invalid API key");
		return ag_db_error(db, s, "looking up key");
	}
	uint8_t hash[32];
	const void *salt = sqlite3_column_blob(st, 3);
	const void *stored = sqlite3_column_blob(st, 4);
	if (sqlite3_column_bytes(st, 3) != SALT_BYTES || sqlite3_column_bytes(st, 4) != 32 || !salt ||
	    !stored) {
		sqlite3_finalize(st);
		return ag_error_set(AG_ECORRUPT, "stored key %s is malformed", key_id);
	}
	key_hash(hash, salt, key);
	if (sodium_memcmp(hash, stored, 32) != 0) {
		sqlite3_finalize(st);
		return ag_error_set(AG_EUNAUTH, "invalid API key");
	}
	const char *tenant = (const char *)sqlite3_column_text(st, 0);
	const char *user = (const char *)sqlite3_column_text(st, 1);
	const char *role = (const char *)sqlite3_column_text(st, 2);
	snprintf(out->tenant, sizeof out->tenant, "%s", tenant ? tenant : "");
	snprintf(out->user, sizeof out->user, "%s", user ? user : "");
	snprintf(out->role_name, sizeof out->role_name, "%s", role ? role : "");
	snprintf(out->key_id, sizeof out->key_id, "%s", key_id);
	sqlite3_finalize(st);
	return agentd_role_parse(out->role_name, &out->role);
}

int agentd_auth_count_keys(sqlite3 *db, long long *out)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st, "SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL");
	if (rc)
		return rc;
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else
		rc = ag_db_error(db, s, "counting keys");
	sqlite3_finalize(st);
	return rc;
}

int agentd_auth_list_keys(sqlite3 *db, const char *tenant, json_t **out)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st,
			       "SELECT key_id, user, role, created_at, revoked_at FROM api_keys "
			       "WHERE tenant = ? ORDER BY created_at, key_id");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
	json_t *arr = json_array();
	if (!arr) {
		sqlite3_finalize(st);
		return ag_error_set(AG_ENOMEM, "out of memory listing keys");
	}
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *k = json_pack("{s:s, s:s, s:s, s:I, s:b}", "key_id",
				      (const char *)sqlite3_column_text(st, 0), "user",
				      (const char *)sqlite3_column_text(st, 1), "role",
				      (const char *)sqlite3_column_text(st, 2), "created_at",
				      (json_int_t)sqlite3_column_int64(st, 3), "revoked",
				      sqlite3_column_type(st, 4) != SQLITE_NULL);
		if (!k || json_array_append_new(arr, k)) {
			rc = ag_error_set(AG_ENOMEM, "out of memory listing keys");
			break;
		}
	}
	if (!rc && s != SQLITE_DONE)
		rc = ag_db_error(db, s, "listing keys");
	sqlite3_finalize(st);
	if (rc) {
		json_decref(arr);
		return rc;
	}
	*out = arr;
	return 0;
}

int agentd_auth_revoke_key(sqlite3 *db, const char *tenant, const char *key_id)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(
		db, &st,
		"UPDATE api_keys SET revoked_at = ? WHERE tenant = ? AND key_id = ? AND revoked_at IS NULL");
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, ag_now_ms());
	sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, key_id, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	sqlite3_finalize(st);
	if (s != SQLITE_DONE)
		return ag_db_error(db, s, "revoking key");
	if (sqlite3_changes(db) == 0)
		return ag_error_set(AG_ENOTFOUND, "no active key '%s' in this tenant", key_id);
	return 0;
}
