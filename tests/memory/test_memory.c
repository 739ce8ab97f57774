/* Unit tests of memory/: storage, versions, model identity, corruption, export and user locks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "memory/memory.h"

static sqlite3 *open_db(const char *name)
{
	char path[512];
	const char *dir = getenv("TEST_TMPDIR");
	snprintf(path, sizeof path, "%s/%s", dir ? dir : "/tmp", name);
	remove(path);
	sqlite3 *db;
	assert_int_equal(ag_db_open(&db, path), 0);
	assert_int_equal(memory_migrate(db), 0);
	return db;
}

static uint8_t *pattern(size_t n, unsigned seed)
{
	uint8_t *p = malloc(n);
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(i % 7 == 0 ? seed >> 16 : i); /* partly compressible, like float states */
	}
	return p;
}

static void test_roundtrip_and_versions(void **state)
{
	(void)state;
	sqlite3 *db = open_db("mem1.db");
	memory_info info;
	assert_int_equal(memory_get_info(db, "acme", "ana", &info), AG_ENOTFOUND);
	size_t n = 1 << 20;
	uint8_t *s1 = pattern(n, 1), *s2 = pattern(n / 2, 2);
	int64_t v;
	assert_int_equal(memory_save(db, "acme", "ana", "model-a", s1, n, 1000, 0, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(memory_get_info(db, "acme", "ana", &info), 0);
	assert_int_equal(info.tokens, 1000);
	assert_int_equal(info.state_bytes, (int64_t)n);
	assert_true(info.stored_bytes > 0 && info.stored_bytes < (int64_t)n);
	assert_string_equal(info.model_id, "model-a");
	assert_int_equal(info.version, 1);

	uint8_t *got;
	size_t got_len;
	assert_int_equal(memory_load(db, "acme", "ana", "model-a", &got, &got_len, &info), 0);
	assert_int_equal(got_len, n);
	assert_memory_equal(got, s1, n);
	ag_free(got);

	/* A save built on an old version is refused and changes nothing. */
	assert_int_equal(memory_save(db, "acme", "ana", "model-a", s2, n / 2, 5, 0, &v), AG_ECONFLICT);
	assert_int_equal(memory_save(db, "acme", "ana", "model-a", s2, n / 2, 1500, 1, &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(memory_load(db, "acme", "ana", "model-a", &got, &got_len, &info), 0);
	assert_int_equal(got_len, n / 2);
	assert_memory_equal(got, s2, n / 2);
	assert_int_equal(info.tokens, 1500);
	ag_free(got);

	/* An empty state is a valid state. */
	assert_int_equal(memory_save(db, "acme", "empty", "model-a", NULL, 0, 0, 0, &v), 0);
	assert_int_equal(memory_load(db, "acme", "empty", "model-a", &got, &got_len, NULL), 0);
	assert_int_equal(got_len, 0);
	ag_free(got);
	free(s1);
	free(s2);
	ag_db_close(db);
}

static void test_model_identity_and_isolation(void **state)
{
	(void)state;
	sqlite3 *db = open_db("mem2.db");
	uint8_t *a = pattern(4096, 3), *b = pattern(4096, 4);
	assert_int_equal(memory_save(db, "acme", "ana", "model-a", a, 4096, 10, 0, NULL), 0);
	assert_int_equal(memory_save(db, "acme", "bob", "model-a", b, 4096, 20, 0, NULL), 0);
	assert_int_equal(memory_save(db, "globex", "ana", "model-a", b, 4096, 30, 0, NULL), 0);

	uint8_t *got = (uint8_t *)"sentinel";
	size_t len = 99;
	assert_int_equal(memory_load(db, "acme", "ana", "model-b", &got, &len, NULL), AG_ECONFLICT);
	assert_null(got);
	assert_int_equal(len, 0);
	assert_non_null(strstr(ag_error_last(), "another model"));

	memory_info info;
	assert_int_equal(memory_load(db, "acme", "ana", "model-a", &got, &len, &info), 0);
	assert_memory_equal(got, a, 4096);
	assert_int_equal(info.tokens, 10);
	ag_free(got);
	assert_int_equal(memory_load(db, "globex", "ana", "model-a", &got, &len, &info), 0);
	assert_memory_equal(got, b, 4096);
	assert_int_equal(info.tokens, 30);
	ag_free(got);

	assert_int_equal(memory_delete(db, "acme", "ana"), 0);
	assert_int_equal(memory_delete(db, "acme", "ana"), AG_ENOTFOUND);
	assert_int_equal(memory_get_info(db, "acme", "ana", &info), AG_ENOTFOUND);
	assert_int_equal(memory_get_info(db, "globex", "ana", &info), 0);
	assert_int_equal(memory_get_info(db, "acme", "bob", &info), 0);
	assert_int_equal(memory_save(db, "acme", "x", "", a, 10, 1, 0, NULL), AG_EINVAL);
	free(a);
	free(b);
	ag_db_close(db);
}

static void test_corruption_detected(void **state)
{
	(void)state;
	sqlite3 *db = open_db("mem3.db");
	uint8_t *a = pattern(10000, 5);
	assert_int_equal(memory_save(db, "t", "u", "m", a, 10000, 1, 0, NULL), 0);
	/* Flip one byte inside the compressed data. */
	assert_int_equal(ag_db_exec(db, "UPDATE memory_states SET state = substr(state, 1, 40) || "
					"x'00' || substr(state, 42)"),
			 0);
	uint8_t *got;
	size_t len;
	int rc = memory_load(db, "t", "u", "m", &got, &len, NULL);
	assert_int_equal(rc, AG_ECORRUPT);
	assert_int_equal(ag_db_exec(db, "UPDATE memory_states SET state = x'41474d53'"), 0);
	assert_int_equal(memory_load(db, "t", "u", "m", &got, &len, NULL), AG_ECORRUPT);
	free(a);
	ag_db_close(db);
}

static void test_export_import(void **state)
{
	(void)state;
	sqlite3 *src = open_db("mem4.db"), *dst = open_db("mem5.db");
	uint8_t *a = pattern(50000, 6);
	assert_int_equal(memory_save(src, "t", "u", "model-x", a, 50000, 777, 0, NULL), 0);
	uint8_t *exp;
	size_t exp_len;
	assert_int_equal(memory_export(src, "t", "u", &exp, &exp_len), 0);
	assert_int_equal(memory_export(src, "t", "nobody", &exp, &exp_len) == AG_ENOTFOUND, 1);

	/* Every truncation and a flipped byte anywhere are refused, and nothing is stored. */
	for (size_t cut = 0; cut < exp_len; cut += (cut < 200 ? 1 : 997))
		assert_int_equal(memory_import(dst, "t2", "v", exp, cut), AG_EINVAL);
	for (size_t i = 0; i < exp_len; i += 101) {
		exp[i] ^= 0x40;
		assert_int_equal(memory_import(dst, "t2", "v", exp, exp_len), AG_EINVAL);
		exp[i] ^= 0x40;
	}
	memory_info info;
	assert_int_equal(memory_get_info(dst, "t2", "v", &info), AG_ENOTFOUND);

	assert_int_equal(memory_import(dst, "t2", "v", exp, exp_len), 0);
	uint8_t *got;
	size_t len;
	assert_int_equal(memory_load(dst, "t2", "v", "model-x", &got, &len, &info), 0);
	assert_int_equal(len, 50000);
	assert_memory_equal(got, a, 50000);
	assert_int_equal(info.tokens, 777);
	ag_free(got);
	ag_free(exp);
	free(a);
	ag_db_close(src);
	ag_db_close(dst);
}

static void test_allocation_failures(void **state)
{
	(void)state;
	sqlite3 *db = open_db("mem6.db");
	uint8_t *a = pattern(3000, 7);
	assert_int_equal(memory_save(db, "t", "u", "m", a, 3000, 1, 0, NULL), 0);
	for (long n = 1; n <= 3; n++) {
		ag_alloc_fail_after(n);
		int rc = memory_save(db, "t", "u", "m", a, 3000, 2, 1, NULL);
		ag_alloc_fail_after(0);
		if (rc == 0)
			break;
		assert_int_equal(rc, AG_ENOMEM);
		memory_info info;
		assert_int_equal(memory_get_info(db, "t", "u", &info), 0);
		assert_int_equal(info.version, 1); /* unchanged */
	}
	uint8_t *got;
	size_t len;
	ag_alloc_fail_after(1);
	assert_int_equal(memory_load(db, "t", "u", "m", &got, &len, NULL), AG_ENOMEM);
	ag_alloc_fail_after(0);
	free(a);
	ag_db_close(db);
}

static int counter;
static int max_inside;
static int inside;
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;

static void *locker(void *arg)
{
	const char *user = arg;
	for (int i = 0; i < 200; i++) {
		assert_int_equal(memory_user_lock("t", user), 0);
		pthread_mutex_lock(&count_lock);
		inside++;
		if (inside > max_inside)
			max_inside = inside;
		pthread_mutex_unlock(&count_lock);
		int c = counter;
		usleep(10);
		counter = c + 1; /* a lost update if two threads were ever inside at once */
		pthread_mutex_lock(&count_lock);
		inside--;
		pthread_mutex_unlock(&count_lock);
		memory_user_unlock("t", user);
	}
	return NULL;
}

static void test_user_lock_serialises(void **state)
{
	(void)state;
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, locker, "same-user");
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(counter, 800);
	assert_int_equal(max_inside, 1);
	/* Different users do not wait for each other. */
	assert_int_equal(memory_user_lock("t", "a"), 0);
	assert_int_equal(memory_user_lock("t", "b"), 0);
	memory_user_unlock("t", "a");
	memory_user_unlock("t", "b");
}

int main(void)
{
	ag_alloc_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_and_versions),
		cmocka_unit_test(test_model_identity_and_isolation),
		cmocka_unit_test(test_corruption_detected),
		cmocka_unit_test(test_export_import),
		cmocka_unit_test(test_allocation_failures),
		cmocka_unit_test(test_user_lock_serialises),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
