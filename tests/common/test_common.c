/* Unit tests of common/: errors, the allocation gate, buffers, arenas, JSON, SQLite helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/common.h"

static void test_error_slot(void **state)
{
	(void)state;
	ag_error_clear();
	assert_string_equal(ag_error_last(), "");
	assert_int_equal(ag_error_set(AG_ENOTFOUND, "no %s", "thing"), AG_ENOTFOUND);
	assert_string_equal(ag_error_last(), "no thing");
	assert_int_equal(ag_error_code(), AG_ENOTFOUND);
	ag_error_wrap(AG_ENOTFOUND, "loading %d", 7);
	assert_string_equal(ag_error_last(), "loading 7: no thing");
	assert_string_equal(ag_error_name(AG_EINVAL), "bad_request");
	assert_int_equal(ag_error_http_status(AG_EUNAUTH), 401);
	assert_int_equal(ag_error_http_status(AG_EDENIED), 403);
	assert_int_equal(ag_error_http_status(AG_ELIMIT), 413);
	assert_int_equal(ag_error_http_status(12345), 500);
}

static void test_alloc_fault_injection(void **state)
{
	(void)state;
	ag_alloc_fail_after(2);
	void *a = ag_malloc(8);
	void *b = ag_malloc(8);
	void *c = ag_malloc(8);
	assert_non_null(a);
	assert_null(b);
	assert_non_null(c);
	ag_free(a);
	ag_free(c);

	ag_alloc_thread_fail_after(1);
	assert_null(ag_strdup("x"));
	char *d = ag_strdup("hello");
	assert_string_equal(d, "hello");
	ag_free(d);
}

static void test_buf(void **state)
{
	(void)state;
	ag_buf b = AG_BUF_INIT;
	for (int i = 0; i < 1000; i++)
		assert_int_equal(ag_buf_printf(&b, "%d,", i), 0);
	assert_int_equal(strncmp(b.data, "0,1,2,", 6), 0);
	assert_int_equal(b.data[b.len], '\0');
	assert_int_equal(ag_buf_append(&b, "\0z", 2), 0);
	assert_int_equal(b.data[b.len - 2], '\0');
	size_t len;
	char *s = ag_buf_detach(&b, &len);
	assert_null(b.data);
	assert_true(len > 3000);
	ag_free(s);

	ag_alloc_fail_after(1);
	assert_int_equal(ag_buf_puts(&b, "abc"), AG_ENOMEM);
	assert_null(b.data);
	ag_buf_free(&b);
}

static void test_arena(void **state)
{
	(void)state;
	ag_arena *a = ag_arena_new(64);
	assert_non_null(a);
	char *p = NULL;
	for (int i = 0; i < 100; i++) {
		p = ag_arena_alloc(a, (size_t)i + 1);
		assert_non_null(p);
		assert_int_equal((uintptr_t)p % 16, 0);
		memset(p, 'x', (size_t)i + 1);
	}
	char *big = ag_arena_alloc(a, 10000);
	assert_non_null(big);
	assert_string_equal(ag_arena_strdup(a, "abc"), "abc");
	assert_string_equal(ag_arena_strndup(a, "abcdef", 3), "abc");
	assert_true(ag_arena_used(a) >= 10000);
	ag_arena_free(a);
	ag_arena_free(NULL);
}

static void test_json(void **state)
{
	(void)state;
	json_t *v;
	assert_int_equal(ag_json_parse(&v, "{\"a\": 1,", 8), AG_EINVAL);
	assert_non_null(strstr(ag_error_last(), "line 1"));
	assert_int_equal(ag_json_parse(&v, "{\"a\":1,\"a\":2}", 13), AG_EINVAL);

	const char *text = "{\"s\":\"x\",\"i\":3,\"f\":1.5,\"b\":true,\"l\":[1],\"o\":{}}";
	assert_int_equal(ag_json_parse(&v, text, strlen(text)), 0);
	const char *s = NULL;
	long long i = 0;
	double f = 0;
	bool b = false;
	json_t *arr = NULL, *obj = NULL;
	assert_int_equal(ag_json_get_string(v, "s", true, &s), 0);
	assert_string_equal(s, "x");
	assert_int_equal(ag_json_get_int(v, "i", true, &i), 0);
	assert_int_equal(i, 3);
	assert_int_equal(ag_json_get_number(v, "f", true, &f), 0);
	assert_true(f == 1.5);
	assert_int_equal(ag_json_get_bool(v, "b", true, &b), 0);
	assert_true(b);
	assert_int_equal(ag_json_get_array(v, "l", true, &arr), 0);
	assert_int_equal(ag_json_get_object(v, "o", true, &obj), 0);
	assert_int_equal(ag_json_get_string(v, "i", true, &s), AG_EINVAL);
	assert_string_equal(ag_error_last(), "field 'i' must be a string");
	assert_int_equal(ag_json_get_string(v, "missing", true, &s), AG_EINVAL);
	assert_string_equal(ag_error_last(), "missing field 'missing'");
	s = "kept";
	assert_int_equal(ag_json_get_string(v, "missing", false, &s), 0);
	assert_string_equal(s, "kept");
	static const char *const allowed[] = {"s", "i", "f", "b", "l", NULL};
	assert_int_equal(ag_json_check_keys(v, allowed), AG_EINVAL);
	assert_string_equal(ag_error_last(), "unknown field 'o'");
	char *out;
	assert_int_equal(ag_json_dump(&out, NULL, obj), 0);
	assert_string_equal(out, "{}");
	ag_free(out);
	json_decref(v);
}

static void test_db_migrations(void **state)
{
	(void)state;
	char path[512];
	const char *dir = getenv("TEST_TMPDIR");
	snprintf(path, sizeof path, "%s/common.db", dir ? dir : "/tmp");
	remove(path);
	sqlite3 *db;
	assert_int_equal(ag_db_open(&db, path), 0);
	static const char *const v1[] = {"CREATE TABLE t(x INTEGER)", "ALTER TABLE t ADD COLUMN y TEXT"};
	ag_migration_set set = {"test", v1, 2};
	assert_int_equal(ag_db_migrate(db, &set), 0);
	int ver;
	assert_int_equal(ag_db_schema_version(db, "test", &ver), 0);
	assert_int_equal(ver, 2);
	assert_int_equal(ag_db_migrate(db, &set), 0); /* idempotent */
	assert_int_equal(ag_db_exec(db, "INSERT INTO t(x, y) VALUES (1, 'a')"), 0);

	/* A failing migration rolls back and leaves the version where it was. */
	static const char *const v2[] = {"CREATE TABLE t(x INTEGER)", "ALTER TABLE t ADD COLUMN y TEXT",
					 "CREATE TABLE u(a); SELECT * FROM nowhere"};
	ag_migration_set set2 = {"test", v2, 3};
	assert_int_not_equal(ag_db_migrate(db, &set2), 0);
	assert_non_null(strstr(ag_error_last(), "migration 3"));
	assert_int_equal(ag_db_schema_version(db, "test", &ver), 0);
	assert_int_equal(ver, 2);
	assert_int_equal(ag_db_exec(db, "SELECT * FROM u"), AG_ERR);

	/* A newer schema than the code knows is refused. */
	ag_migration_set older = {"test", v1, 1};
	assert_int_equal(ag_db_migrate(db, &older), AG_ECORRUPT);

	sqlite3_stmt *st;
	assert_int_equal(ag_db_prepare(db, &st, "PRAGMA journal_mode"), 0);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	assert_int_equal(ag_db_prepare(db, &st, "PRAGMA synchronous"), 0);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 2); /* FULL */
	sqlite3_finalize(st);
	assert_int_equal(ag_db_prepare(db, &st, "SELEC"), AG_ERR);
	ag_db_close(db);
}

static void test_utils(void **state)
{
	(void)state;
	char hex[65];
	uint8_t digest[32];
	ag_sha256(digest, "abc", 3);
	ag_hex_encode(hex, digest, 32);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	uint8_t back[32];
	assert_int_equal(ag_hex_decode(back, 32, hex), 0);
	assert_memory_equal(back, digest, 32);
	assert_int_equal(ag_hex_decode(back, 32, "zz"), AG_EINVAL);
	assert_int_equal(ag_hex_digit('0'), 0);
	assert_int_equal(ag_hex_digit('a'), 10);
	assert_int_equal(ag_hex_digit('F'), 15);
	assert_int_equal(ag_hex_digit('g'), -1);
	assert_int_equal(ag_hex_digit(0xff), -1);

	char b64[16];
	ag_b64url_encode(b64, (const uint8_t *)"\xfb\xff", 2);
	assert_string_equal(b64, "-_8");
	assert_int_equal(ag_b64url_len(32), 43);

	long long v;
	assert_int_equal(ag_parse_long("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(ag_parse_long("42x", 0, 100, &v), AG_EINVAL);
	assert_int_equal(ag_parse_long("101", 0, 100, &v), AG_EINVAL);
	assert_int_equal(ag_parse_long("", 0, 100, &v), AG_EINVAL);

	char *id = ag_new_id("run");
	assert_int_equal(strlen(id), 28);
	assert_int_equal(strncmp(id, "run_", 4), 0);
	ag_free(id);

	char ts[32];
	ag_format_time(ts, sizeof ts, 1700000000123LL);
	assert_string_equal(ts, "2023-11-14T22:13:20.123Z");

	char path[512], *data;
	size_t len;
	const char *dir = getenv("TEST_TMPDIR");
	snprintf(path, sizeof path, "%s/a/b/c", dir ? dir : "/tmp");
	assert_int_equal(ag_mkdirs(path, 0700), 0);
	snprintf(path, sizeof path, "%s/a/b/c/f.txt", dir ? dir : "/tmp");
	assert_int_equal(ag_write_file(path, "hello", 5, 0600), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(ag_read_file(path, 100, &data, &len), 0);
	assert_string_equal(data, "hello");
	ag_free(data);
	assert_int_equal(ag_read_file(path, 4, &data, &len), AG_ELIMIT);
	assert_int_equal(ag_read_file("/nonexistent/x", 4, &data, &len), AG_ENOTFOUND);
}

int main(void)
{
	ag_alloc_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_slot), cmocka_unit_test(test_alloc_fault_injection),
		cmocka_unit_test(test_buf),        cmocka_unit_test(test_arena),
		cmocka_unit_test(test_json),       cmocka_unit_test(test_db_migrations),
		cmocka_unit_test(test_utils),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
