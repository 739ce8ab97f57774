/* Unit tests of the policy parser and store: the default policy, line-numbered errors,
 * reloads that keep the old policy, reference counting across swaps, persistence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <utime.h>

#include "policies/policies.h"

static const char *tmpdir(void)
{
	const char *t = getenv("TEST_TMPDIR");
	return t && *t ? t : "/tmp";
}

static const char small_policy[] = "[settings]\n"
				   "match_limit = 50000\n"
				   "[role analyst]\n"
				   "tools = calculator, http_get\n"
				   "collections = hr, finance\n"
				   "budget.steps = 3\n"
				   "[redact email]\n"
				   "pattern = [\\w.+-]++@(?:[A-Za-z0-9-]++\\.)++[A-Za-z]{2,}+\\b\n"
				   "applies = context, output\n"
				   "[deny secret_word]\n"
				   "pattern = (?i)\\bxyzzy\\b\n"
				   "message = no magic words\n";

static int parse(policies_policy **p, policies_diag **d, const char *text)
{
	return policies_parse(p, d, text, strlen(text), "test.policy");
}

static bool has_error_at(const policies_diag *d, int line, const char *needle)
{
	for (int i = 0; d && i < d->count; i++)
		if (d->items[i].line == line && strstr(d->items[i].message, needle))
			return true;
	return false;
}

static void test_default_policy_loads_and_matches_file(void **state)
{
	(void)state;
	policies_policy *p;
	assert_int_equal(policies_load_default(&p), 0);
	assert_true(policies_has_role(p, "admin"));
	assert_true(policies_has_role(p, "analyst"));
	assert_true(policies_has_role(p, "viewer"));
	assert_true(policies_has_role(p, "auditor"));
	assert_false(policies_has_role(p, "root"));
	assert_string_equal(policies_name(p), "default");
	assert_int_equal(strlen(policies_sha256(p)), 64);
	policies_budget b;
	assert_int_equal(policies_role_budget(p, "viewer", &b), 0);
	assert_int_equal(b.steps, 6);
	assert_int_equal(b.tool_calls, 2);
	assert_int_equal(policies_role_budget(p, "nobody", &b), AG_ENOTFOUND);
	json_t *j;
	assert_int_equal(policies_describe(&j, p), 0);
	assert_int_equal(json_array_size(json_object_get(j, "roles")), 4);
	assert_true(json_array_size(json_object_get(j, "rules")) > 15);
	json_decref(j);
	policies_release(p);

	/* The shipped file and the embedded text must not drift apart. */
	char *text;
	size_t len;
	assert_int_equal(ag_read_file("policies/default.policy", 1 << 20, &text, &len), 0);
	assert_int_equal(len, strlen(policies_default_text()));
	assert_memory_equal(text, policies_default_text(), len);
	ag_free(text);
	assert_int_equal(policies_load_file(&p, NULL, "policies/default.policy"), 0);
	policies_release(p);
}

static void test_errors_name_their_lines(void **state)
{
	(void)state;
	const char *bad = "# a broken policy\n"             /* 1 */
			  "stray = 1\n"                     /* 2: outside any section */
			  "[role analyst]\n"                /* 3 */
			  "tools = calculator, , sql\n"     /* 4: empty name */
			  "budget.steps = lots\n"           /* 5: not a number */
			  "colour = blue\n"                 /* 6: unknown key */
			  "[redact bad_regex]\n"            /* 7 */
			  "label = x\n"                     /* 8 */
			  "pattern = (unclosed[group\n"     /* 9: does not compile */
			  "[deny orphan]\n"                 /* 10 */
			  "pattern = foo\n"                 /* 11 */
			  "roles = analyst, ghost\n"        /* 12: no such role */
			  "[role analyst]\n"                /* 13: defined twice */
			  "[widget w]\n"                    /* 14: unknown section */
			  "[inject x\n"                     /* 15: no closing bracket */
			  "[redact nopattern]\n"            /* 16: no pattern */
			  "[settings]\n"                    /* 17 */
			  "untrusted_tool_action = maybe\n" /* 18 */
			  "match_limit = 5\n"               /* 19: below the minimum */
			  "[role viewer]\n"                 /* 20 */
			  "tools = calculator\n"            /* 21 */
			  "tools = sql\n";                  /* 22: twice */
	policies_policy *p = (policies_policy *)0x1;
	policies_diag *d = NULL;
	assert_int_equal(parse(&p, &d, bad), AG_EINVAL);
	assert_null(p);
	assert_non_null(d);
	assert_true(strstr(ag_error_last(), "test.policy:2:") == ag_error_last());
	assert_true(has_error_at(d, 2, "outside any section"));
	assert_true(has_error_at(d, 4, "not a valid name"));
	assert_true(has_error_at(d, 5, "not a whole number"));
	assert_true(has_error_at(d, 6, "unknown key"));
	assert_true(has_error_at(d, 9, "does not compile"));
	assert_true(has_error_at(d, 12, "ghost"));
	assert_true(has_error_at(d, 13, "defined twice"));
	assert_true(has_error_at(d, 14, "unknown section"));
	assert_true(has_error_at(d, 15, "closing"));
	assert_true(has_error_at(d, 16, "no pattern"));
	assert_true(has_error_at(d, 18, "needs_approval"));
	assert_true(has_error_at(d, 19, "whole number"));
	assert_true(has_error_at(d, 22, "twice"));
	char *f = policies_diag_format(d, "x.policy");
	assert_non_null(f);
	assert_non_null(strstr(f, "x.policy:9: pattern does not compile"));
	ag_free(f);
	policies_diag_free(d);

	/* Whole-file problems: no roles at all, NUL bytes, empty input. */
	assert_int_equal(parse(&p, &d, "[settings]\nmatch_limit = 5000\n"), AG_EINVAL);
	assert_true(has_error_at(d, 0, "no [role"));
	policies_diag_free(d);
	assert_int_equal(policies_parse(&p, NULL, "[role a]\n\0x", 11, "nul"), AG_EINVAL);
	assert_non_null(strstr(ag_error_last(), "NUL"));
	assert_int_equal(policies_parse(&p, NULL, "", 0, "empty"), AG_EINVAL);
	/* Invalid UTF-8 (a stray continuation byte, an overlong form) is refused by line. */
	assert_int_equal(parse(&p, &d, "[role a]\n# caf\xc3\xa9 ok\ntools = \x80x\n"), AG_EINVAL);
	assert_true(has_error_at(d, 3, "UTF-8"));
	assert_int_equal(d->count, 1);
	policies_diag_free(d);
	assert_int_equal(parse(&p, &d, "[role a]\n#\xc0\xaf\n"), AG_EINVAL);
	assert_true(has_error_at(d, 2, "UTF-8"));
	policies_diag_free(d);
	/* '*' cannot be mixed with names; ids are checked. */
	assert_int_equal(parse(&p, &d, "[role a]\ntools = *, sql\n"), AG_EINVAL);
	assert_true(has_error_at(d, 2, "'*'"));
	policies_diag_free(d);
	assert_int_equal(parse(&p, &d, "[role a b]\n"), AG_EINVAL);
	assert_true(has_error_at(d, 1, "name 'a b'"));
	policies_diag_free(d);
	assert_int_equal(parse(&p, &d, "[role a]\n[redact e]\npattern = x\nlabel = bad label\n"), AG_EINVAL);
	assert_true(has_error_at(d, 4, "label"));
	policies_diag_free(d);
}

static void test_small_policy_fields(void **state)
{
	(void)state;
	policies_policy *p;
	assert_int_equal(parse(&p, NULL, small_policy), 0);
	policies_budget b;
	assert_int_equal(policies_role_budget(p, "analyst", &b), 0);
	assert_int_equal(b.steps, 3);
	assert_int_equal(b.tokens, 4096); /* an unset budget takes the conservative default */
	/* CRLF line ends and comments are fine. */
	policies_policy *q;
	assert_int_equal(parse(&q, NULL, "; comment\r\n[role a]\r\ntools = x\r\n# more\r\n"), 0);
	policies_release(q);
	policies_release(p);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_reload_keeps_old_policy_on_error(void **state)
{
	(void)state;
	char path[512];
	snprintf(path, sizeof path, "%s/reload.policy", tmpdir());
	policies_policy *p;
	assert_int_equal(policies_load_default(&p), 0);
	char old_sha[65];
	snprintf(old_sha, sizeof old_sha, "%s", policies_sha256(p));
	policies_store *s;
	assert_int_equal(policies_store_new(&s, p), 0);

	/* A reader holds the old policy across the reloads below. */
	policies_policy *held = policies_acquire(s);

	write_file(path, "[role analyst]\ntools = calculator\nbudget.steps = -4\n");
	policies_diag *d = NULL;
	assert_int_equal(policies_reload(s, path, &d), AG_EINVAL);
	assert_true(has_error_at(d, 3, "budget.steps"));
	assert_non_null(strstr(ag_error_last(), ":3:"));
	policies_diag_free(d);
	policies_policy *now = policies_acquire(s);
	assert_string_equal(policies_sha256(now), old_sha);
	policies_release(now);

	/* A missing file is refused the same way. */
	char missing[600];
	snprintf(missing, sizeof missing, "%s/missing.policy", tmpdir());
	assert_int_not_equal(policies_reload(s, missing, NULL), 0);
	now = policies_acquire(s);
	assert_string_equal(policies_sha256(now), old_sha);
	policies_release(now);

	/* A valid file replaces it; the held reference still works. */
	write_file(path, small_policy);
	assert_int_equal(policies_reload(s, path, NULL), 0);
	now = policies_acquire(s);
	assert_string_not_equal(policies_sha256(now), old_sha);
	assert_false(policies_has_role(now, "viewer"));
	assert_true(policies_has_role(held, "viewer"));
	policies_principal who = {"t", "u", "viewer"};
	policies_decision dec;
	assert_int_equal(policies_check_tool(held, &who, "calculator", NULL, NULL, &dec), 0);
	assert_int_equal(dec.action, POLICIES_ALLOW);
	policies_release(now);
	policies_release(held);

	/* Back to the default (path NULL). */
	assert_int_equal(policies_reload(s, NULL, NULL), 0);
	now = policies_acquire(s);
	assert_string_equal(policies_sha256(now), old_sha);
	policies_release(now);
	policies_store_free(s);
}

typedef struct race {
	policies_store *s;
	int iterations;
} race;

static void *reader(void *arg)
{
	race *r = arg;
	policies_principal who = {"t", "u", "analyst"};
	for (int i = 0; i < r->iterations; i++) {
		policies_policy *p = policies_acquire(r->s);
		policies_decision d;
		policies_check_tool(p, &who, "calculator", NULL, NULL, &d);
		if (d.action != POLICIES_ALLOW)
			abort();
		policies_release(p);
	}
	return NULL;
}

static void test_concurrent_readers_and_swaps(void **state)
{
	(void)state;
	policies_policy *a, *b;
	assert_int_equal(parse(&a, NULL, small_policy), 0);
	policies_store *s;
	assert_int_equal(policies_store_new(&s, a), 0);
	race r = {s, 3000};
	pthread_t th[3];
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader, &r), 0);
	for (int i = 0; i < 200; i++) {
		assert_int_equal(parse(&b, NULL, small_policy), 0);
		policies_store_swap(s, b);
	}
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	policies_store_free(s);
}

static void test_persistence_and_startup_choice(void **state)
{
	(void)state;
	char dbpath[512], path[512];
	snprintf(dbpath, sizeof dbpath, "%s/pol.db", tmpdir());
	snprintf(path, sizeof path, "%s/start.policy", tmpdir());
	sqlite3 *db;
	assert_int_equal(ag_db_open(&db, dbpath), 0);
	assert_int_equal(policies_migrate(db), 0);
	assert_int_equal(policies_migrate(db), 0); /* idempotent */
	policies_policy *p;
	assert_int_equal(policies_load_latest(db, &p, NULL), AG_ENOTFOUND);
	/* Nothing recorded, no file: the default. */
	assert_int_equal(policies_open(&p, db, ""), 0);
	assert_string_equal(policies_name(p), "default");
	policies_release(p);

	/* An old file, then a policy installed through the API later: the API's wins. */
	write_file(path, "[role filerole]\ntools = calculator\n");
	struct utimbuf ut = {time(NULL) - 3600, time(NULL) - 3600};
	assert_int_equal(utime(path, &ut), 0);
	policies_policy *api;
	assert_int_equal(parse(&api, NULL, small_policy), 0);
	assert_int_equal(policies_save(db, api, "api"), 0);
	policies_release(api);
	assert_int_equal(policies_open(&p, db, path), 0);
	assert_true(policies_has_role(p, "analyst"));
	policies_release(p);
	/* The file edited afterwards wins. */
	ut.actime = ut.modtime = time(NULL) + 5;
	assert_int_equal(utime(path, &ut), 0);
	assert_int_equal(policies_open(&p, db, path), 0);
	assert_true(policies_has_role(p, "filerole"));
	policies_release(p);
	/* A broken newer file is an error, not a silent fallback. */
	write_file(path, "[role\n");
	ut.actime = ut.modtime = time(NULL) + 10;
	assert_int_equal(utime(path, &ut), 0);
	assert_int_equal(policies_open(&p, db, path), AG_EINVAL);
	assert_null(p);
	/* Only the recent installs are kept. */
	assert_int_equal(policies_parse(&p, NULL, small_policy, strlen(small_policy), "again"), 0);
	for (int i = 0; i < 60; i++)
		assert_int_equal(policies_save(db, p, "api"), 0);
	policies_release(p);
	sqlite3_stmt *st;
	assert_int_equal(ag_db_prepare(db, &st, "SELECT COUNT(*) FROM policy_versions"), 0);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 50);
	sqlite3_finalize(st);
	assert_int_equal(policies_load_latest(db, &p, NULL), 0);
	assert_string_equal(policies_name(p), "again");
	policies_release(p);
	ag_db_close(db);
}

static void test_allocation_failures(void **state)
{
	(void)state;
	/* Every allocation of a parse fails in turn: an error each time, never a crash or a leak. */
	int failures = 0;
	for (long n = 1; n < 400; n++) {
		policies_policy *p = NULL;
		ag_alloc_fail_after(n);
		int rc = parse(&p, NULL, small_policy);
		ag_alloc_fail_after(0);
		if (rc == 0) {
			policies_release(p);
			break;
		}
		assert_true(rc == AG_ENOMEM || rc == AG_EINVAL);
		failures++;
	}
	assert_true(failures > 5);
}

int main(void)
{
	ag_alloc_init();
	ag_log_set_level(AG_LOG_OFF);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_policy_loads_and_matches_file),
		cmocka_unit_test(test_errors_name_their_lines),
		cmocka_unit_test(test_small_policy_fields),
		cmocka_unit_test(test_reload_keeps_old_policy_on_error),
		cmocka_unit_test(test_concurrent_readers_and_swaps),
		cmocka_unit_test(test_persistence_and_startup_choice),
		cmocka_unit_test(test_allocation_failures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
