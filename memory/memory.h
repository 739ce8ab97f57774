/*
 * memory: long-lived per-user memory held as the model's own recurrent state.
 *
 * A user's memory is the engine's serialised sequence state (Mamba conv and
 * SSM states, attention K/V) with its token count and the identity of the
 * model that made it, stored per tenant+user in SQLite as a versioned,
 * compressed BLOB. This layer stores and guards those bytes; it never
 * interprets them, so a state made by one model is refused by another by
 * identity alone. Saves are optimistic: each carries the version it was
 * based on, and a save over a newer version is a conflict the caller
 * resolves (wait and rebase), so two requests never interleave a state.
 */
#ifndef AG_MEMORY_H
#define AG_MEMORY_H

#include "common/common.h"
#include "engine/engine.h"

#define MEMORY_MODEL_ID_MAX 64

typedef struct memory_info {
	int64_t tokens;       /* tokens the state has absorbed */
	int64_t state_bytes;  /* size of the serialised state */
	int64_t stored_bytes; /* size as stored (compressed) */
	int64_t updated_ms;
	int64_t version; /* increases by one with every save */
	char model_id[MEMORY_MODEL_ID_MAX + 1];
} memory_info;

int memory_migrate(sqlite3 *db);

/* The record's description without its state; AG_ENOTFOUND when the user has none. */
int memory_get_info(sqlite3 *db, const char *tenant, const char *user, memory_info *out);

/* Loads and decompresses the state. AG_ENOTFOUND when there is none; AG_ECONFLICT
 * when it was saved by another model than model_id (it is never handed out then);
 * AG_ECORRUPT when the stored bytes fail their checks. *state is the caller's. */
int memory_load(sqlite3 *db, const char *tenant, const char *user, const char *model_id, uint8_t **state,
		size_t *len, memory_info *info);

/* Stores a new state for the user. expected_version is the version the state was
 * built on (0: the user had none); if the stored version differs the save is
 * refused with AG_ECONFLICT and nothing changes. Runs in its own transaction,
 * or in the caller's if one is open. */
int memory_save(sqlite3 *db, const char *tenant, const char *user, const char *model_id, const uint8_t *state,
		size_t len, int64_t tokens, int64_t expected_version, int64_t *new_version);

/* Forgets the user's memory; AG_ENOTFOUND if there was none. */
int memory_delete(sqlite3 *db, const char *tenant, const char *user);

/* A self-describing copy of a user's memory (model id, tokens, compressed state,
 * checksum) for an administrator to move between installations. */
int memory_export(sqlite3 *db, const char *tenant, const char *user, uint8_t **out, size_t *len);
/* Replaces the user's memory with an exported copy after checking it whole. */
int memory_import(sqlite3 *db, const char *tenant, const char *user, const uint8_t *data, size_t len);

/* In-process serialisation of one user's runs: the second request of a user
 * waits until the first has committed. Names are tenant+user. */
int memory_user_lock(const char *tenant, const char *user);
void memory_user_unlock(const char *tenant, const char *user);

/* ------------------------------------------------ sessions on the engine */

/* One user's memory in use by one run or chat: takes the user's lock, restores
 * their saved state (or starts one from `preamble`, the turns every memory
 * begins with, e.g. the system turn), and commits turns back to it. */
typedef struct memory_session memory_session;

typedef struct memory_options {
	const json_t *preamble; /* messages absorbed into a new memory (NULL: none) */
	const json_t *tools;    /* tool definitions rendered into the preamble's system turn (NULL: none) */
	uint64_t kv_budget;     /* attention K/V entries kept per user; 0: no limit */
} memory_options;

/* The model identity memories are stored under: hex of engine_model_identity. */
void memory_model_id(engine_local *l, char out[MEMORY_MODEL_ID_MAX + 1]);

int memory_session_open(memory_session **out, sqlite3 *db, engine_local *l, const char *tenant,
			const char *user, const memory_options *opt);
/* The user's state as restored (borrowed): fork it to work on top of it. */
const engine_state *memory_session_state(const memory_session *s);
bool memory_session_restored(const memory_session *s); /* false: a new memory */
/* Appends whole turns (e.g. the user's question and the final answer) to the memory and
 * saves it in one transaction; past the K/V budget the oldest entries are dropped. */
int memory_session_commit(memory_session *s, sqlite3 *db, const json_t *turns);
/* Releases the user's lock; an uncommitted session leaves the saved memory as it was. */
void memory_session_close(memory_session *s);

#endif
