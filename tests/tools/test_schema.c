/*
 * Schema validation tests: wrong types, missing and extra fields, enums,
 * bounds, lengths and arrays are refused with a message naming the field;
 * the registry's schemas stay within the supported subset; tools_call
 * refuses bad arguments before anything runs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "tools/tools.h"

static const char *schema_text =
	"{\"type\": \"object\", \"properties\": {"
	"\"name\": {\"type\": \"string\", \"minLength\": 2, \"maxLength\": 5},"
	"\"count\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 10},"
	"\"ratio\": {\"type\": \"number\"},"
	"\"flag\": {\"type\": \"boolean\"},"
	"\"mode\": {\"type\": \"string\", \"enum\": [\"fast\", \"slow\"]},"
	"\"tags\": {\"type\": \"array\", \"maxItems\": 2, \"items\": {\"type\": \"string\"}},"
	"\"inner\": {\"type\": \"object\", \"properties\": {\"x\": {\"type\": \"integer\"}},"
	"            \"required\": [\"x\"], \"additionalProperties\": false}},"
	"\"required\": [\"name\"], \"additionalProperties\": false}";

static int check(const char *value_text)
{
	json_t *schema, *value;
	assert_int_equal(ag_json_parse(&schema, schema_text, strlen(schema_text)), 0);
	assert_int_equal(ag_json_parse(&value, value_text, strlen(value_text)), 0);
	int rc = tools_schema_validate(schema, value);
	json_decref(schema);
	json_decref(value);
	return rc;
}

static void refused(const char *value_text, const char *fragment)
{
	int rc = check(value_text);
	if (rc != AG_EINVAL)
		fail_msg("%s: accepted (rc %d)", value_text, rc);
	if (!strstr(ag_error_last(), fragment))
		fail_msg("%s: message '%s' lacks '%s'", value_text, ag_error_last(), fragment);
}

static void test_valid(void **state)
{
	(void)state;
	assert_int_equal(check("{\"name\": \"ab\"}"), 0);
	assert_int_equal(check("{\"name\": \"abcde\", \"count\": 10, \"ratio\": 0.5, \"flag\": true, "
			       "\"mode\": \"slow\", \"tags\": [\"a\", \"b\"], \"inner\": {\"x\": 3}}"),
			 0);
	assert_int_equal(check("{\"name\": \"\xc3\xa9\xc3\xa9\xc3\xa9\"}"), 0); /* 3 characters, 6 bytes */
	assert_int_equal(check("{\"name\": \"ab\", \"ratio\": 3}"), 0);         /* an integer is a number */
	assert_int_equal(check("{\"name\": \"ab\", \"count\": 2.0}"), 0);       /* 2.0 is a whole number */
}

static void test_wrong_types(void **state)
{
	(void)state;
	refused("{\"name\": 5}", "arguments.name: expected a string, got an integer");
	refused("{\"name\": \"ab\", \"count\": \"3\"}", "arguments.count: expected an integer, got a string");
	refused("{\"name\": \"ab\", \"count\": 2.5}", "arguments.count: expected an integer");
	refused("{\"name\": \"ab\", \"flag\": 1}", "arguments.flag: expected a boolean");
	refused("{\"name\": \"ab\", \"ratio\": \"x\"}", "arguments.ratio: expected a number");
	refused("{\"name\": \"ab\", \"tags\": \"a\"}", "arguments.tags: expected an array");
	refused("{\"name\": \"ab\", \"tags\": [1]}", "arguments.tags[0]: expected a string");
	refused("{\"name\": \"ab\", \"inner\": []}", "arguments.inner: expected an object");
	refused("{\"name\": null}", "got null");
	json_t *schema;
	assert_int_equal(ag_json_parse(&schema, schema_text, strlen(schema_text)), 0);
	json_t *arr = json_array();
	assert_int_equal(tools_schema_validate(schema, arr), AG_EINVAL);
	assert_non_null(strstr(ag_error_last(), "arguments: expected an object"));
	json_decref(arr);
	json_decref(schema);
}

static void test_missing_and_extra(void **state)
{
	(void)state;
	refused("{}", "missing required field 'name'");
	refused("{\"name\": \"ab\", \"inner\": {}}", "arguments.inner: missing required field 'x'");
	refused("{\"name\": \"ab\", \"extra\": 1}", "unknown field 'extra'");
	refused("{\"name\": \"ab\", \"inner\": {\"x\": 1, \"y\": 2}}", "arguments.inner: unknown field 'y'");
}

static void test_bounds(void **state)
{
	(void)state;
	refused("{\"name\": \"a\"}", "at least 2 characters");
	refused("{\"name\": \"abcdef\"}", "at most 5 characters");
	refused("{\"name\": \"ab\", \"count\": 0}", "at least 1");
	refused("{\"name\": \"ab\", \"count\": 11}", "at most 10");
	refused("{\"name\": \"ab\", \"mode\": \"medium\"}", "must be one of [\"fast\",\"slow\"]");
	refused("{\"name\": \"ab\", \"tags\": [\"a\", \"b\", \"c\"]}", "at most 2 items");
}

static void test_schema_subset(void **state)
{
	(void)state;
	const char *bad[] = {
		"{\"type\": \"object\", \"oneOf\": []}",
		"{\"type\": \"object\", \"additionalProperties\": true}",
		"{\"type\": \"thing\"}",
		"{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\", \"pattern\": \"x\"}}}",
		"{\"type\": \"object\", \"required\": [1]}",
		"{\"type\": \"object\", \"properties\": {\"a\": {\"maxLength\": -1}}}",
		"{\"type\": \"string\"}",
		"[]",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_t *s;
		assert_int_equal(ag_json_parse(&s, bad[i], strlen(bad[i])), 0);
		if (tools_schema_check(s) != AG_EINVAL)
			fail_msg("schema accepted: %s", bad[i]);
		json_decref(s);
	}
	/* Every registered tool's schema is in the subset and describes itself. */
	assert_true(tools_count() >= 4);
	for (size_t i = 0; i < tools_count(); i++) {
		const tools_tool *t = tools_at(i);
		json_t *s, *d;
		assert_int_equal(ag_json_parse(&s, t->schema, strlen(t->schema)), 0);
		if (tools_schema_check(s))
			fail_msg("%s: %s", t->name, ag_error_last());
		json_decref(s);
		assert_int_equal(tools_describe(&d, t), 0);
		assert_string_equal(json_string_value(json_object_get(d, "name")), t->name);
		assert_true(json_is_object(json_object_get(d, "parameters")));
		json_decref(d);
	}
}

static void test_call_refuses_bad_arguments(void **state)
{
	(void)state;
	tools_env env = {.tenant = "t"};
	json_t *out = NULL;
	json_t *args = json_pack("{s:i}", "expression", 5);
	assert_int_equal(tools_call(&out, NULL, &env, "calculator", args), AG_EINVAL);
	assert_non_null(
		strstr(ag_error_last(), "tool 'calculator': arguments.expression: expected a string"));
	json_decref(args);
	args = json_pack("{s:s, s:b}", "expression", "1", "shell", 1);
	assert_int_equal(tools_call(&out, NULL, &env, "calculator", args), AG_EINVAL);
	assert_non_null(strstr(ag_error_last(), "unknown field 'shell'"));
	json_decref(args);
	args = json_object();
	assert_int_equal(tools_call(&out, NULL, &env, "calculator", args), AG_EINVAL);
	assert_non_null(strstr(ag_error_last(), "missing required field 'expression'"));
	json_decref(args);
	assert_null(out);
}

int main(void)
{
	ag_alloc_init();
	ag_log_set_level(AG_LOG_WARN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_missing_and_extra),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_schema_subset),
		cmocka_unit_test(test_call_refuses_bad_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
