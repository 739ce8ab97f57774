/* Memory sessions on a real (random) Jamba: restoring a user's state between turns, across a
 * "restart", gives exactly the logits of one uninterrupted state; users never mix; another
 * model's state is never loaded; the K/V budget holds; an uncommitted run changes nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory/memory.h"

static char dir[512], model_a[600], model_b[600], db_path[600];
static engine_local *la, *lb;

static int make_model(const char *path, uint64_t seed)
{
	engine_jamba_random p;
	engine_jamba_random_init(&p);
	p.seed = seed;
	/* Same shape and metadata, different weights: their states must still never mix. */
	p.n_layer = 4;
	p.attn_period = 4;
	p.attn_offset = 2;
	return engine_jamba_random_write(&p, path);
}

static int setup(void **state)
{
	(void)state;
	const char *d = getenv("TEST_TMPDIR");
	snprintf(dir, sizeof dir, "%s", d ? d : "/tmp");
	snprintf(model_a, sizeof model_a, "%s/mem-a.gguf", dir);
	snprintf(model_b, sizeof model_b, "%s/mem-b.gguf", dir);
	snprintf(db_path, sizeof db_path, "%s/mem-session.db", dir);
	if (make_model(model_a, 1) || make_model(model_b, 2))
		return -1;
	if (engine_local_open(&la, model_a, 1) || engine_local_open(&lb, model_b, 1))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	engine_local_free(la);
	engine_local_free(lb);
	return 0;
}

static sqlite3 *open_db(bool fresh)
{
	if (fresh)
		remove(db_path);
	sqlite3 *db;
	assert_int_equal(ag_db_open(&db, db_path), 0);
	assert_int_equal(memory_migrate(db), 0);
	return db;
}

static json_t *preamble(void)
{
	return json_pack("[{s:s, s:s}]", "role", "system", "content", "You are agentd.");
}

/* Logits of the next user turn on top of state (left unchanged). */
static float *turn_logits(engine_local *l, const engine_state *state, int i)
{
	char text[64];
	snprintf(text, sizeof text, "turn %d: my code is %d", i, 1000 + i * 7);
	json_t *m = json_pack("[{s:s, s:s}]", "role", "user", "content", text);
	int32_t *ids;
	size_t n;
	assert_int_equal(engine_local_tokens(l, m, NULL, false, true, &ids, &n), 0);
	engine_state *f;
	assert_int_equal(engine_state_fork(&f, state), 0);
	size_t nv = engine_model_config(engine_local_model(l))->n_vocab;
	float *logits = malloc(nv * sizeof *logits);
	assert_int_equal(engine_prefill(engine_local_model(l), f, ids, n, logits), 0);
	engine_state_free(f);
	ag_free(ids);
	json_decref(m);
	return logits;
}

static json_t *turn(int i)
{
	char q[64], a[64];
	snprintf(q, sizeof q, "turn %d: my code is %d", i, 1000 + i * 7);
	snprintf(a, sizeof a, "Noted: %d.", 1000 + i * 7);
	return json_pack("[{s:s, s:s}, {s:s, s:s}]", "role", "user", "content", q, "role", "assistant",
			 "content", a);
}

static void test_restored_turns_equal_one_uninterrupted_state(void **state)
{
	(void)state;
	size_t nv = engine_model_config(engine_local_model(la))->n_vocab;
	json_t *pre = preamble();
	/* the preamble's system turn lists tools, as the planner's does */
	json_t *tools =
		json_pack("[{s:s, s:{s:s, s:s, s:{s:s}}}]", "type", "function", "function", "name",
			  "calculator", "description", "Exact arithmetic.", "parameters", "type", "object");
	memory_options opt = {.preamble = pre, .tools = tools};
	/* Reference: one state, never saved. */
	engine_state *ref, *bare;
	assert_int_equal(engine_state_new(&ref, engine_local_model(la)), 0);
	assert_int_equal(engine_local_absorb(la, ref, pre, tools), 0);
	assert_int_equal(engine_state_new(&bare, engine_local_model(la)), 0);
	assert_int_equal(engine_local_absorb(la, bare, pre, NULL), 0);
	assert_true(engine_state_n_tokens(ref) >
		    engine_state_n_tokens(bare) + 10); /* the tools were rendered */
	engine_state_free(bare);

	sqlite3 *db = open_db(true);
	for (int i = 0; i < 8; i++) {
		if (i == 4) {
			/* The daemon restarts: a new connection, nothing in memory but the database. */
			ag_db_close(db);
			db = open_db(false);
		}
		memory_session *s;
		assert_int_equal(memory_session_open(&s, db, la, "acme", "ana", &opt), 0);
		assert_int_equal(memory_session_restored(s), i > 0);
		float *got = turn_logits(la, memory_session_state(s), i);
		float *want = turn_logits(la, ref, i);
		assert_memory_equal(got, want, nv * sizeof *got);
		free(got);
		free(want);
		json_t *t = turn(i);
		assert_int_equal(memory_session_commit(s, db, t), 0);
		assert_int_equal(engine_local_absorb(la, ref, t, NULL), 0);
		json_decref(t);
		memory_session_close(s);
	}
	memory_info info;
	assert_int_equal(memory_get_info(db, "acme", "ana", &info), 0);
	assert_int_equal(info.version, 8);
	assert_int_equal(info.tokens, (int64_t)engine_state_n_tokens(ref));
	engine_state_free(ref);
	json_decref(pre);
	json_decref(tools);
	ag_db_close(db);
}

static void test_users_do_not_mix_and_models_are_checked(void **state)
{
	(void)state;
	sqlite3 *db = open_db(true);
	json_t *pre = preamble();
	memory_options opt = {.preamble = pre};
	memory_session *s;
	json_t *t1 = turn(1), *t2 = turn(2);
	assert_int_equal(memory_session_open(&s, db, la, "acme", "u1", &opt), 0);
	assert_int_equal(memory_session_commit(s, db, t1), 0);
	memory_session_close(s);
	assert_int_equal(memory_session_open(&s, db, la, "acme", "u2", &opt), 0);
	assert_int_equal(memory_session_commit(s, db, t2), 0);
	memory_session_close(s);

	memory_session *a, *b;
	assert_int_equal(memory_session_open(&a, db, la, "acme", "u1", &opt), 0);
	assert_int_equal(memory_session_open(&b, db, la, "acme", "u2", &opt), 0);
	size_t nv = engine_model_config(engine_local_model(la))->n_vocab;
	float *la1 = turn_logits(la, memory_session_state(a), 5),
	      *lb1 = turn_logits(la, memory_session_state(b), 5);
	assert_memory_not_equal(la1, lb1, nv * sizeof *la1);
	free(la1);
	free(lb1);
	memory_session_close(a);
	memory_session_close(b);
	/* Another tenant's user of the same name has nothing. */
	assert_int_equal(memory_session_open(&a, db, la, "globex", "u1", &opt), 0);
	assert_false(memory_session_restored(a));
	memory_session_close(a);

	/* Model B never loads model A's state. */
	char id_b[MEMORY_MODEL_ID_MAX + 1];
	memory_model_id(lb, id_b);
	uint8_t *bytes;
	size_t len;
	assert_int_equal(memory_load(db, "acme", "u1", id_b, &bytes, &len, NULL), AG_ECONFLICT);
	assert_int_equal(memory_session_open(&b, db, lb, "acme", "u1", &opt), 0);
	assert_false(memory_session_restored(b));
	memory_session_close(b);
	/* And the engine refuses another model's bytes on its own as well. */
	char id_a[MEMORY_MODEL_ID_MAX + 1];
	memory_model_id(la, id_a);
	assert_int_equal(memory_load(db, "acme", "u1", id_a, &bytes, &len, NULL), 0);
	engine_state *wrong;
	assert_int_equal(engine_state_restore(&wrong, engine_local_model(lb), bytes, len), AG_ECONFLICT);
	ag_free(bytes);
	json_decref(t1);
	json_decref(t2);
	json_decref(pre);
	ag_db_close(db);
}

static void test_budget_and_uncommitted_runs(void **state)
{
	(void)state;
	sqlite3 *db = open_db(true);
	json_t *pre = preamble();
	memory_options opt = {.preamble = pre, .kv_budget = 40};
	uint64_t tokens = 0;
	for (int i = 0; i < 6; i++) {
		memory_session *s;
		assert_int_equal(memory_session_open(&s, db, la, "acme", "bob", &opt), 0);
		json_t *t = turn(i);
		assert_int_equal(memory_session_commit(s, db, t), 0);
		json_decref(t);
		assert_true(engine_state_n_kv(memory_session_state(s)) <= 40);
		assert_true(engine_state_n_tokens(memory_session_state(s)) >
			    tokens); /* Mamba keeps counting */
		tokens = engine_state_n_tokens(memory_session_state(s));
		memory_session_close(s);
	}
	/* A run that never commits (a crash, a failure) leaves the memory as it was. */
	memory_info before, after;
	assert_int_equal(memory_get_info(db, "acme", "bob", &before), 0);
	memory_session *s;
	assert_int_equal(memory_session_open(&s, db, la, "acme", "bob", &opt), 0);
	memory_session_close(s);
	assert_int_equal(memory_get_info(db, "acme", "bob", &after), 0);
	assert_int_equal(after.version, before.version);
	assert_int_equal(after.tokens, before.tokens);
	json_decref(pre);
	ag_db_close(db);
}

typedef struct racer {
	int turn;
	int rc;
} racer;

static void *race(void *arg)
{
	racer *r = arg;
	sqlite3 *db;
	if (ag_db_open(&db, db_path)) {
		r->rc = -1;
		return NULL;
	}
	memory_session *s;
	r->rc = memory_session_open(&s, db, la, "acme", "carol", NULL);
	if (!r->rc) {
		json_t *t = turn(r->turn);
		r->rc = memory_session_commit(s, db, t);
		json_decref(t);
		memory_session_close(s);
	}
	ag_db_close(db);
	return NULL;
}

static void test_same_user_requests_serialise(void **state)
{
	(void)state;
	sqlite3 *db = open_db(true);
	pthread_t th[4];
	racer r[4];
	for (int i = 0; i < 4; i++) {
		r[i].turn = i;
		pthread_create(&th[i], NULL, race, &r[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(r[i].rc, 0);
	}
	/* Every commit built on the one before it: four versions, all four turns absorbed. */
	memory_info info;
	assert_int_equal(memory_get_info(db, "acme", "carol", &info), 0);
	assert_int_equal(info.version, 4);
	engine_state *ref;
	assert_int_equal(engine_state_new(&ref, engine_local_model(la)), 0);
	uint64_t one_turn;
	json_t *t = turn(0);
	assert_int_equal(engine_local_absorb(la, ref, t, NULL), 0);
	one_turn = engine_state_n_tokens(ref);
	json_decref(t);
	engine_state_free(ref);
	assert_true((uint64_t)info.tokens >= 4 * (one_turn - 1));
	ag_db_close(db);
}

int main(void)
{
	ag_alloc_init();
	ag_log_set_level(AG_LOG_WARN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_restored_turns_equal_one_uninterrupted_state),
		cmocka_unit_test(test_users_do_not_mix_and_models_are_checked),
		cmocka_unit_test(test_budget_and_uncommitted_runs),
		cmocka_unit_test(test_same_user_requests_serialise),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
