/*
 * The daemon's policy in force (internal to agentd/). One store per process,
 * opened at start-up (or on first use): the newer of the policy last installed
 * (recorded in the database) and policy_file, else the built-in default.
 * Readers take a reference for as long as they need a consistent policy
 * (a step, a request) and release it; PUT /v1/policies and SIGHUP swap in a
 * new one only when it is valid.
 */
#ifndef AGENTD_POLICY_STORE_H
#define AGENTD_POLICY_STORE_H

#include "agentd/daemon.h"
#include "policies/policies.h"

/* Opens the store if it is not open yet (thread-safe; db is the caller's connection). */
int agentd_policies_open(agentd_ctx *ctx, sqlite3 *db);
/* A reference to the policy in force, opening the store if needed; release with policies_release. */
int agentd_policies_acquire(agentd_ctx *ctx, sqlite3 *db, policies_policy **out);
/* A reference to the policy in force if the store is open, else NULL (release with
 * policies_release). For writers that must not open it, such as the audit log. */
policies_policy *agentd_policies_current(void);
/* For SIGHUP: re-reads policy_file and, if it is valid, records and installs it. On any
 * error the policy in force stays and the problems are logged with their lines. Without
 * a policy_file it changes nothing. */
int agentd_policies_reload(agentd_ctx *ctx, sqlite3 *db);
/* The per-user runs-per-minute limiter shared by everything that starts runs. */
int agentd_policies_ratelimit(agentd_ctx *ctx, sqlite3 *db, policies_ratelimit **out);
/* Frees the store at shutdown (after the HTTP server has stopped). */
void agentd_policies_close(void);

#endif
