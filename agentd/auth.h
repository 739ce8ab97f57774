/*
 * Authentication (internal to agentd/): tenants, users, roles and API keys.
 * Keys look like "ag_" + 12 characters of key id + 32 of secret (URL-safe);
 * only a salted SHA-256 of the whole key is stored, and a key is shown once.
 */
#ifndef AGENTD_AUTH_H
#define AGENTD_AUTH_H

#include "agentd/server.h"

int agentd_auth_migrate(sqlite3 *db);

/* Creates a key for tenant/user/role; *key_out (caller frees) is the only copy of the secret. */
int agentd_auth_create_key(sqlite3 *db, const char *tenant, const char *user, const char *role,
			   char **key_out, char **key_id_out);
/* Resolves a presented key to its principal: AG_EUNAUTH if unknown, revoked or malformed. */
int agentd_auth_check_key(sqlite3 *db, const char *key, agentd_principal *out);
int agentd_auth_count_keys(sqlite3 *db, long long *out);
/* The tenant's keys (never their secrets) as a JSON array. */
int agentd_auth_list_keys(sqlite3 *db, const char *tenant, json_t **out);
int agentd_auth_revoke_key(sqlite3 *db, const char *tenant, const char *key_id);

#endif
