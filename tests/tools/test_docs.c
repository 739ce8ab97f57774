/*
 * grep and search_docs over a real document store (retrieval's schema in a
 * database made here): both honour the caller's collection ACLs, grep runs
 * a PCRE2 pattern with match limits (a catastrophic pattern is stopped with
 * an error), search_docs returns ranked passages with byte ranges.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retrieval/retrieval.h"
#include "tools/tools.h"

static sqlite3 *db;
static const retrieval_principal admin = {"acme", "root", "admin"};

static void ingest(const char *collection, const char *title, const char *text)
{
	retrieval_ingest_opts o = {
		.collection = collection, .title = title, .source = title, .format = RETRIEVAL_FORMAT_TEXT};
	retrieval_ingest_result r;
	if (retrieval_ingest_buffer(&r, db, &admin, &o, text, strlen(text)))
		fail_msg("ingest %s: %s", title, ag_error_last());
}

static int call(json_t **out, const char *role, const char *tool, json_t *args)
{
	tools_env env = {.db = db, .tenant = "acme", .user = "someone", .role = role};
	*out = NULL;
	int rc = tools_call(out, NULL, &env, tool, args);
	printf("  %s as %s -> %d %s\n", tool, role, rc, rc ? ag_error_last() : "ok");
	json_decref(args);
	return rc;
}

static void test_grep(void **state)
{
	(void)state;
	json_t *out;
	assert_int_equal(
		call(&out, "admin", "grep",
		     json_pack("{s:s, s:s}", "collection", "secret", "pattern", "salary band [A-C]")),
		0);
	json_t *m = json_object_get(out, "matches");
	assert_int_equal(json_array_size(m), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(m, 0), "line")), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(m, 0), "text")),
			    "Engineers are paid in salary band B.");
	json_decref(out);

	assert_int_equal(call(&out, "admin", "grep",
			      json_pack("{s:s, s:s, s:b, s:i}", "collection", "public", "pattern", "HOLIDAY",
					"case_insensitive", 1, "max_matches", 1)),
			 0);
	assert_int_equal(json_array_size(json_object_get(out, "matches")), 1);
	assert_true(json_is_true(json_object_get(out, "truncated")));
	json_decref(out);

	/* A viewer may not read the restricted collection: it does not exist for them. */
	assert_int_equal(call(&out, "viewer", "grep",
			      json_pack("{s:s, s:s}", "collection", "secret", "pattern", "salary")),
			 AG_ENOTFOUND);
	assert_int_equal(
		call(&out, "viewer", "grep", json_pack("{s:s, s:s}", "collection", "public", "pattern", "(")),
		AG_EINVAL);
	assert_non_null(strstr(ag_error_last(), "bad pattern"));
	/* Catastrophic backtracking hits the match limit, not the CPU. */
	assert_int_equal(call(&out, "viewer", "grep",
			      json_pack("{s:s, s:s}", "collection", "public", "pattern", "^(a+)+$")),
			 AG_ELIMIT);
	assert_non_null(strstr(ag_error_last(), "too costly"));
}

static void test_search_docs(void **state)
{
	(void)state;
	json_t *out;
	assert_int_equal(call(&out, "viewer", "search_docs", json_pack("{s:s}", "query", "salary holiday")),
			 0);
	json_t *hits = json_object_get(out, "hits");
	assert_true(json_array_size(hits) >= 1);
	size_t i;
	json_t *h;
	json_array_foreach(hits, i, h)
	{
		/* Only the public collection is visible to a viewer. */
		assert_string_equal(json_string_value(json_object_get(h, "collection")), "public");
		assert_true(json_integer_value(json_object_get(h, "end_byte")) >
			    json_integer_value(json_object_get(h, "start_byte")));
	}
	json_decref(out);
	assert_int_equal(call(&out, "admin", "search_docs",
			      json_pack("{s:s, s:s}", "query", "salary band", "collection", "secret")),
			 0);
	hits = json_object_get(out, "hits");
	assert_true(json_array_size(hits) >= 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(hits, 0), "title")), "pay");
	json_decref(out);
	assert_int_equal(call(&out, "viewer", "search_docs",
			      json_pack("{s:s, s:s}", "query", "salary", "collection", "secret")),
			 AG_ENOTFOUND);
}

int main(void)
{
	ag_alloc_init();
	ag_log_set_level(AG_LOG_WARN);
	const char *t = getenv("TEST_TMPDIR");
	char path[1100];
	snprintf(path, sizeof path, "%s/agentd.db", t && *t ? t : "/tmp");
	if (ag_db_open(&db, path) || retrieval_migrate(db) || tools_migrate(db)) {
		fprintf(stderr, "setup: %s\n", ag_error_last());
		return 1;
	}
	retrieval_collection *c;
	const char *admins[] = {"admin"};
	if (retrieval_collection_create(&c, db, &admin, "secret", "pay", admins, 1, NULL, 0))
		return 1;
	retrieval_collection_free(c);
	if (retrieval_collection_create(&c, db, &admin, "public", "handbook", NULL, 0, NULL, 0))
		return 1;
	retrieval_collection_free(c);
	ingest("secret", "pay",
	       "Pay scales\nEngineers are paid in salary band B.\nManagers: salary band C.\n");
	ingest("public", "holidays",
	       "Holiday rules\nEvery employee gets 25 holiday days.\nHoliday requests go to HR; "
	       "salary is never discussed here.\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\n");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grep),
		cmocka_unit_test(test_search_docs),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	ag_db_close(db);
	return rc;
}
