/*
 * Memory sessions: the bridge between a user's saved state and the engine.
 * A session holds the user's lock for its whole life, so a second request
 * of the same user waits; it restores the state saved under this model's
 * identity (a state of another model is never loaded: the user starts
 * afresh), and a commit absorbs only the turns worth remembering, trims the
 * attention K/V to the user's budget and saves with the version it started
 * from. A crash before the commit leaves the previous memory intact.
 */
#include "memory/memory.h"

#include <stdio.h>
#include <string.h>

struct memory_session {
	engine_local *local;
	engine_state *state;
	char tenant[64];
	char user[128];
	char model_id[MEMORY_MODEL_ID_MAX + 1];
	int64_t version; /* of the saved memory this state came from (0: none) */
	bool restored;
	uint64_t kv_budget;
};

void memory_model_id(engine_local *l, char out[MEMORY_MODEL_ID_MAX + 1])
{
	ag_hex_encode(out, engine_model_identity(engine_local_model(l)), 32);
}

int memory_session_open(memory_session **out, sqlite3 *db, engine_local *l, const char *tenant,
			const char *user, const memory_options *opt)
{
	*out = NULL;
	memory_session *s = ag_calloc(1, sizeof *s);
	if (!s)
		return ag_error_set(AG_ENOMEM, "out of memory opening a memory");
	s->local = l;
	snprintf(s->tenant, sizeof s->tenant, "%s", tenant);
	snprintf(s->user, sizeof s->user, "%s", user);
	memory_model_id(l, s->model_id);
	s->kv_budget = opt ? opt->kv_budget : 0;
	int rc = memory_user_lock(tenant, user);
	if (rc) {
		ag_free(s);
		return rc;
	}
	uint8_t *bytes = NULL;
	size_t len = 0;
	memory_info info;
	rc = memory_load(db, tenant, user, s->model_id, &bytes, &len, &info);
	if (rc == 0) {
		rc = engine_state_restore(&s->state, engine_local_model(l), bytes, len);
		ag_free(bytes);
		if (rc == 0) {
			s->version = info.version;
			s->restored = true;
		}
	}
	if (rc == AG_ENOTFOUND || rc == AG_ECONFLICT) {
		/* No memory yet, or one made by another model: this model starts the user afresh. */
		if (rc == AG_ECONFLICT) {
			memory_info other;
			if (memory_get_info(db, tenant, user, &other) == 0)
				s->version = other.version;
			ag_info("memory of %s/%s was saved by another model; starting a new one", tenant,
				user);
		}
		rc = engine_state_new(&s->state, engine_local_model(l));
		if (!rc && opt && opt->preamble && json_array_size(opt->preamble))
			rc = engine_local_absorb(l, s->state, opt->preamble, opt->tools);
	}
	if (rc) {
		memory_session_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

const engine_state *memory_session_state(const memory_session *s) { return s->state; }
bool memory_session_restored(const memory_session *s) { return s->restored; }

int memory_session_commit(memory_session *s, sqlite3 *db, const json_t *turns)
{
	engine_state *next;
	int rc = engine_state_fork(&next, s->state);
	if (rc)
		return rc;
	if ((rc = engine_local_absorb(s->local, next, turns, NULL)))
		goto out;
	if (s->kv_budget && engine_state_n_kv(next) > s->kv_budget &&
	    (rc = engine_state_drop_oldest(next, engine_state_n_kv(next) - s->kv_budget)))
		goto out;
	uint8_t *bytes;
	size_t len;
	if ((rc = engine_state_serialize(next, &bytes, &len)))
		goto out;
	int64_t version;
	rc = memory_save(db, s->tenant, s->user, s->model_id, bytes, len,
			 (int64_t)engine_state_n_tokens(next), s->version, &version);
	ag_free(bytes);
	if (rc)
		goto out;
	engine_state_free(s->state);
	s->state = next;
	next = NULL;
	s->version = version;
out:
	engine_state_free(next);
	return rc;
}

void memory_session_close(memory_session *s)
{
	if (!s)
		return;
	engine_state_free(s->state);
	memory_user_unlock(s->tenant, s->user);
	ag_free(s);
}
