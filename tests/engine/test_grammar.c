/* Unit tests of the JSON-schema grammars (engine/grammar*.c): schemas against
 * accepted and rejected texts, refused schemas, and token masks on a hand-made
 * vocabulary. test_grammar_model.c drives the grammars with real models. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

static engine_grammar *compile_text(const char *schema_text, const engine_grammar_options *opt)
{
	json_t *schema = json_loads(schema_text, 0, NULL);
	assert_non_null(schema);
	engine_grammar *g = NULL;
	int rc = engine_grammar_compile(&g, schema, opt);
	if (rc)
		fail_msg("compile %s: %s", schema_text, ag_error_last());
	json_decref(schema);
	return g;
}

/* Whether the whole text is accepted and complete. */
static bool accepts(const engine_grammar *g, const char *text)
{
	engine_grammar_matcher *m;
	assert_int_equal(engine_grammar_matcher_new(&m, g), 0);
	bool ok =
		engine_grammar_matcher_feed(m, text, strlen(text)) == 0 && engine_grammar_matcher_complete(m);
	engine_grammar_matcher_free(m);
	return ok;
}

static void check(const char *schema, const char *const *good, const char *const *bad)
{
	engine_grammar *g = compile_text(schema, NULL);
	for (size_t i = 0; good[i]; i++)
		if (!accepts(g, good[i]))
			fail_msg("schema %s should accept %s", schema, good[i]);
	for (size_t i = 0; bad[i]; i++)
		if (accepts(g, bad[i]))
			fail_msg("schema %s should reject %s", schema, bad[i]);
	engine_grammar_free(g);
}

static void test_objects(void **state)
{
	(void)state;
	const char *s = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":"
			"\"string\"}},\"required\":[\"a\"],\"additionalProperties\":false}";
	const char *good[] = {
		"{\"a\":1}",         "{\"a\": 1}", "{\"a\":1, \"b\":\"x\"}", "{\"b\":\"x\",\"a\":-0}",
		"{\"a\":123456789}", NULL};
	const char *bad[] = {"{}",
			     "{\"b\":\"x\"}",
			     "{\"a\":1,\"c\":2}",
			     "{\"a\":1.5}",
			     "{\"a\":01}",
			     "{ \"a\":1}",
			     "{\"a\" :1}",
			     "{\"a\":  1}",
			     "{\"a\":1,\"a\":2}",
			     "{\"a\":1} ",
			     "{\"a\":1",
			     "{\"a\":1,}",
			     "{\"a\":\"1\"}",
			     "[1]",
			     NULL};
	check(s, good, bad);

	/* additionalProperties as a schema, and absent (anything extra goes). */
	const char *s2 = "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}";
	const char *good2[] = {"{}", "{\"x\":1, \"y\":2}", "{\"\xc3\xa9t\xc3\xa9\":3}", NULL};
	const char *bad2[] = {"{\"x\":\"s\"}", "{\"x\":1, \"y\":true}", NULL};
	check(s2, good2, bad2);
	const char *s3 = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}";
	const char *good3[] = {"{\"a\":\"x\",\"zz\":[1,{\"q\":null}]}", "{\"k\":true}", "{}", NULL};
	const char *bad3[] = {"{\"a\":1}", NULL};
	check(s3, good3, bad3);

	/* Nested objects and arrays of objects. */
	const char *s4 =
		"{\"type\":\"object\",\"properties\":{\"user\":{\"type\":\"object\",\"properties\":{"
		"\"name\":{\"type\":\"string\",\"maxLength\":5},\"tags\":{\"type\":\"array\",\"items\":{"
		"\"enum\":[\"x\",\"y\"]},\"maxItems\":2}},\"required\":[\"name\",\"tags\"],"
		"\"additionalProperties\":false}},\"required\":[\"user\"],\"additionalProperties\":false}";
	const char *good4[] = {"{\"user\":{\"name\":\"ann\",\"tags\":[]}}",
			       "{\"user\": {\"tags\": [\"x\", \"y\"], \"name\": \"\"}}", NULL};
	const char *bad4[] = {"{\"user\":{\"name\":\"annabel\",\"tags\":[]}}",
			      "{\"user\":{\"name\":\"ann\",\"tags\":[\"z\"]}}",
			      "{\"user\":{\"name\":\"ann\",\"tags\":[\"x\",\"y\",\"x\"]}}",
			      "{\"user\":{\"name\":\"ann\"}}", NULL};
	check(s4, good4, bad4);
}

static void test_numbers(void **state)
{
	(void)state;
	const char *good[] = {"0", "-0", "1e5", "0.5", "1E+2", "-12.5e-3", "10", "3.14159", NULL};
	const char *bad[] = {"01", "1.", ".5", "+1", "1e", "1e123", "--1", "-", "1.5.2", "1e5e5", "", NULL};
	check("{\"type\":\"number\"}", good, bad);
	const char *igood[] = {"0", "-0", "42", "-7", NULL};
	const char *ibad[] = {"1.0", "1e5", "0.5", "007", "1234567890123456789", NULL};
	check("{\"type\":\"integer\"}", igood, ibad);
}

static void test_strings(void **state)
{
	(void)state;
	const char *good[] = {"\"\"",
			      "\"a\\\"b\"",
			      "\"\\\\\"",
			      "\"\\u00e9\"",
			      "\"\xc3\xa9\"",
			      "\"\xf0\x9f\x98\x80\"",
			      "\"tab\\tnew\\nline\\/\"",
			      NULL};
	const char *bad[] = {"\"abc",
			     "\"\\ud83d\"",
			     "\"\\u0000\"",
			     "\"a\nb\"",
			     "\"\xff\"",
			     "\"\xc0\x80\"",
			     "\"\xed\xa0\x80\"",
			     "\"\\x\"",
			     "\"\\u12g4\"",
			     "'a'",
			     NULL};
	check("{\"type\":\"string\"}", good, bad);
	const char *lgood[] = {"\"ab\"", "\"abc\"", "\"\xc3\xa9\xc3\xa9\"", "\"\\n\\t\"", NULL};
	const char *lbad[] = {"\"a\"", "\"abcd\"", "\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"", NULL};
	check("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", lgood, lbad);

	/* The configured cap bounds strings without a maxLength. */
	engine_grammar_options o;
	engine_grammar_options_init(&o);
	o.max_string = 4;
	engine_grammar *g = compile_text("{\"type\":\"string\"}", &o);
	assert_true(accepts(g, "\"abcd\""));
	assert_false(accepts(g, "\"abcde\""));
	engine_grammar_free(g);
	/* An explicit maxLength / maxItems is the schema's own bound: honoured past the caps. */
	o.max_items = 2;
	g = compile_text(
		"{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":6},\"maxItems\":3}", &o);
	assert_true(accepts(g, "[\"abcdef\",\"a\",\"b\"]"));
	assert_false(accepts(g, "[\"abcdefg\"]"));
	assert_false(accepts(g, "[\"a\",\"b\",\"c\",\"d\"]"));
	engine_grammar_free(g);
}

static void test_enums_consts_unions(void **state)
{
	(void)state;
	const char *good[] = {"\"red\"", "\"green\"", "1", "null", NULL};
	const char *bad[] = {"\"blue\"", "\"re\"", "\"redd\"", "2", "12", "nul", NULL};
	check("{\"enum\":[\"red\",\"green\",1,null]}", good, bad);
	const char *cgood[] = {"{\"k\":[1,2]}", NULL};
	const char *cbad[] = {"{\"k\":[1]}", "{\"k\":[1,2,3]}", NULL};
	check("{\"const\":{\"k\":[1,2]}}", cgood, cbad);
	/* enum with a prefix of another value: 1 and 12 */
	const char *pgood[] = {"1", "12", "[1,12]", NULL};
	const char *pbad[] = {"123", "[1,2]", NULL};
	check("{\"anyOf\":[{\"enum\":[1,12]},{\"type\":\"array\",\"items\":{\"enum\":[1,12]}}]}", pgood,
	      pbad);
	const char *tgood[] = {"\"x\"", "null", NULL};
	const char *tbad[] = {"1", "true", NULL};
	check("{\"type\":[\"string\",\"null\"]}", tgood, tbad);
	const char *agood[] = {"5", "{\"x\":true}", NULL};
	const char *abad[] = {"{\"x\":1}", "5.5", "{}", NULL};
	check("{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"object\",\"properties\":{\"x\":{\"type\":"
	      "\"boolean\"}"
	      "},\"required\":[\"x\"],\"additionalProperties\":false}]}",
	      agood, abad);
	/* Two objects told apart by a const name, whichever order the keys come in. */
	const char *ogood[] = {"{\"name\":\"add\",\"arguments\":{\"a\":1}}",
			       "{\"arguments\":{\"q\":\"x\"},\"name\":\"find\"}", NULL};
	const char *obad[] = {"{\"name\":\"add\",\"arguments\":{\"q\":\"x\"}}",
			      "{\"name\":\"sub\",\"arguments\":{}}", NULL};
	check("{\"oneOf\":[{\"type\":\"object\",\"properties\":{\"name\":{\"const\":\"add\"},\"arguments\":{"
	      "\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"],"
	      "\"additionalProperties\":false}},\"required\":[\"name\",\"arguments\"],"
	      "\"additionalProperties\":"
	      "false},{\"type\":\"object\",\"properties\":{\"name\":{\"const\":\"find\"},\"arguments\":{"
	      "\"type\":"
	      "\"object\",\"properties\":{\"q\":{\"type\":\"string\"}},\"required\":[\"q\"],"
	      "\"additionalProperties\":false}},\"required\":[\"name\",\"arguments\"],"
	      "\"additionalProperties\":"
	      "false}]}",
	      ogood, obad);
	const char *bgood[] = {"true", "false", NULL};
	const char *bbad[] = {"True", "1", "\"true\"", NULL};
	check("{\"type\":\"boolean\"}", bgood, bbad);
	const char *ngood[] = {"null", NULL};
	const char *nbad[] = {"nul", "null0", NULL};
	check("{\"type\":\"null\"}", ngood, nbad);
	const char *egood[] = {"true", "[1,\"a\",{\"b\":null}]", "-2.5", "{\"x\": {\"y\": []}}", NULL};
	const char *ebad[] = {"[1,]", "{\"a\"}", "tru", NULL};
	check("{}", egood, ebad);
}

static void test_tools_grammar(void **state)
{
	(void)state;
	/* Twenty tools: each takes one integer argument named after it. */
	json_t *tools = json_array();
	for (int i = 0; i < 20; i++) {
		char name[16], arg[16];
		snprintf(name, sizeof name, "tool%d", i);
		snprintf(arg, sizeof arg, "arg%d", i);
		json_array_append_new(tools,
				      json_pack("{s:s, s:{s:s, s:{s:s, s:{s:{s:s}}, s:[s], s:b}}}", "type",
						"function", "function", "name", name, "parameters", "type",
						"object", "properties", arg, "type", "integer", "required",
						arg, "additionalProperties", 0));
	}
	engine_grammar *g;
	assert_int_equal(engine_grammar_compile_tools(&g, tools, NULL, NULL), 0);
	assert_true(accepts(g, "{\"name\": \"tool17\", \"arguments\": {\"arg17\": 5}}"));
	assert_true(accepts(g, "{\"name\":\"tool1\",\"arguments\":{\"arg1\":-3}}"));
	assert_false(accepts(g, "{\"name\": \"tool17\", \"arguments\": {\"arg3\": 5}}"));
	assert_false(accepts(g, "{\"name\": \"tool1\", \"arguments\": {\"arg17\": 5}}"));
	assert_false(accepts(g, "{\"arguments\": {\"arg17\": 5}, \"name\": \"tool17\"}")); /* name first */
	assert_false(accepts(g, "{\"name\": \"tool20\", \"arguments\": {\"arg20\": 5}}"));
	assert_false(accepts(g, "{\"name\": \"tool17\"}"));
	engine_grammar_free(g);
	/* Only the named one. */
	assert_int_equal(engine_grammar_compile_tools(&g, tools, "tool4", NULL), 0);
	assert_true(accepts(g, "{\"name\": \"tool4\", \"arguments\": {\"arg4\": 0}}"));
	assert_false(accepts(g, "{\"name\": \"tool17\", \"arguments\": {\"arg17\": 5}}"));
	engine_grammar_free(g);
	assert_int_equal(engine_grammar_compile_tools(&g, tools, "tool99", NULL), AG_EINVAL);
	assert_non_null(strstr(ag_error_last(), "tool99"));
	/* A tool without parameters takes an object; two tools of one name are refused. */
	json_array_append_new(tools, json_pack("{s:s}", "name", "bare"));
	assert_int_equal(engine_grammar_compile_tools(&g, tools, "bare", NULL), 0);
	assert_true(accepts(g, "{\"name\": \"bare\", \"arguments\": {}}"));
	assert_false(accepts(g, "{\"name\": \"bare\", \"arguments\": []}"));
	engine_grammar_free(g);
	json_array_append_new(tools, json_pack("{s:s}", "name", "bare"));
	assert_int_equal(engine_grammar_compile_tools(&g, tools, NULL, NULL), AG_EINVAL);
	assert_non_null(strstr(ag_error_last(), "same name"));
	/* A tool whose parameters the grammar refuses names the tool. */
	json_t *bad = json_loads("[{\"name\":\"x\",\"parameters\":{\"$ref\":\"#/a\"}}]", 0, NULL);
	assert_int_equal(engine_grammar_compile_tools(&g, bad, NULL, NULL), AG_EUNSUPPORTED);
	assert_non_null(strstr(ag_error_last(), "x arguments"));
	json_decref(bad);
	json_decref(tools);
}

static void test_arrays(void **state)
{
	(void)state;
	const char *good[] = {"[1]", "[1, 2,3]", "[0,-0]", NULL};
	const char *bad[] = {"[]", "[1,2,3,4]", "[1,]", "[ 1]", "[1 ]", "[\"1\"]", NULL};
	check("{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":1,\"maxItems\":3}", good,
	      bad);
}

static void test_prefix_suffix_newlines(void **state)
{
	(void)state;
	engine_grammar_options o;
	engine_grammar_options_init(&o);
	o.prefix = "<tool_call>\n";
	o.suffix = "\n</tool_call>";
	engine_grammar *g = compile_text("{\"type\":\"integer\"}", &o);
	assert_true(accepts(g, "<tool_call>\n42\n</tool_call>"));
	assert_false(accepts(g, "<tool_call>\n42\n"));
	assert_false(accepts(g, "42\n</tool_call>"));
	engine_grammar_free(g);
	engine_grammar_options_init(&o);
	o.newlines = true;
	g = compile_text("{\"type\":\"integer\"}", &o);
	assert_true(accepts(g, "42"));
	assert_true(accepts(g, "\n42\n"));
	assert_false(accepts(g, "\n\n42"));
	engine_grammar_matcher *m;
	assert_int_equal(engine_grammar_matcher_new(&m, g), 0);
	assert_int_equal(engine_grammar_matcher_feed(m, "\n42\n", 4), 0);
	assert_true(engine_grammar_matcher_finished(m));
	/* A rejected feed leaves the state as it was. */
	engine_grammar_matcher_reset(m);
	assert_int_equal(engine_grammar_matcher_feed(m, "4", 1), 0);
	assert_int_equal(engine_grammar_matcher_feed(m, "2x", 2), AG_EINVAL);
	assert_true(engine_grammar_matcher_complete(m));
	assert_true(engine_grammar_matcher_accepts(m, "2", 1));
	assert_false(engine_grammar_matcher_finished(m));
	engine_grammar_matcher_free(m);
	engine_grammar_free(g);
}

static void refused(const char *schema_text, int code, const char *needle)
{
	json_t *schema = json_loads(schema_text, JSON_DECODE_ANY, NULL);
	assert_non_null(schema);
	engine_grammar *g = NULL;
	int rc = engine_grammar_compile(&g, schema, NULL);
	json_decref(schema);
	if (rc != code)
		fail_msg("%s: expected %d, got %d (%s)", schema_text, code, rc, ag_error_last());
	assert_null(g);
	if (!strstr(ag_error_last(), needle))
		fail_msg("%s: message '%s' does not name '%s'", schema_text, ag_error_last(), needle);
}

static void test_refused_schemas(void **state)
{
	(void)state;
	refused("{\"$ref\":\"#/definitions/x\"}", AG_EUNSUPPORTED, "$ref");
	refused("{\"allOf\":[{\"type\":\"string\"}]}", AG_EUNSUPPORTED, "allOf");
	refused("{\"type\":\"object\",\"properties\":{\"a\":{\"not\":{}}}}", AG_EUNSUPPORTED, ".a");
	refused("{\"type\":\"foo\"}", AG_EINVAL, "foo");
	refused("{\"type\":\"string\",\"minLength\":5,\"maxLength\":2}", AG_EINVAL, "minLength");
	refused("{\"type\":\"object\",\"required\":[\"x\"],\"additionalProperties\":false}", AG_EINVAL,
		"'x'");
	refused("false", AG_EINVAL, "nothing");
	refused("[1]", AG_EINVAL, "object");
	refused("{\"enum\":[]}", AG_EINVAL, "enum");
	refused("{\"type\":\"string\",\"enum\":[1,2]}", AG_EINVAL, "string");
	refused("{\"type\":\"object\",\"properties\":{\"a\":1}}", AG_EINVAL, ".a");
	refused("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":\"a\"}",
		AG_EINVAL, "required");
	refused("{\"anyOf\":[{\"type\":\"string\"}],\"type\":\"integer\"}", AG_EUNSUPPORTED, "anyOf");
	/* Nesting past max_depth. */
	char deep[2048] = "";
	size_t n = 0;
	for (int i = 0; i < 30; i++)
		n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"type\":\"array\",\"items\":");
	n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"type\":\"integer\"}");
	for (int i = 0; i < 30; i++)
		n += (size_t)snprintf(deep + n, sizeof deep - n, "}");
	refused(deep, AG_ELIMIT, "deeper");
	/* Narrowing keywords are ignored, annotations too. */
	engine_grammar *g = compile_text(
		"{\"type\":\"integer\",\"minimum\":0,\"maximum\":9,\"description\":\"d\"}", NULL);
	assert_true(accepts(g, "5"));
	engine_grammar_free(g);
}

/* ------------------------------------------------------------------ masks */

static bool bit(const uint32_t *mask, int id) { return (mask[id >> 5] >> (id & 31)) & 1; }

static void test_masks_small_vocabulary(void **state)
{
	(void)state;
	/* ids:           0    1    2     3    4        5    6    7    8     9       10    11   12     13 */
	const char *pieces[] = {"{", "}",  "\"",  "a",  "\"a\"", ":",   " ",
				"1", "12", "{\"", NULL, ",",     "x\"", "true"};
	size_t lens[14];
	for (int i = 0; i < 14; i++)
		lens[i] = pieces[i] ? strlen(pieces[i]) : 0;
	engine_grammar_vocab *v;
	assert_int_equal(engine_grammar_vocab_new_pieces(&v, pieces, lens, 14), 0);
	assert_int_equal(engine_grammar_vocab_size(v), 14);
	engine_grammar *g = compile_text("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},"
					 "\"required\":[\"a\"],\"additionalProperties\":false}",
					 NULL);
	engine_grammar_matcher *m;
	assert_int_equal(engine_grammar_matcher_new(&m, g), 0);
	uint32_t mask[1];
	int32_t eos = 10;
	struct {
		const char *feed;
		const char *allowed; /* ids allowed next, as letters 'a' + id */
	} steps[] = {
		{"", "aj"},    /* { or {" */
		{"{", "ce"},   /* " or "a" ; not } (a is required) */
		{"\"", "d"},   /* a */
		{"a\"", "f"},  /* : */
		{":", "ghi"},  /* space, 1, 12 */
		{" 1", "bhi"}, /* } 1 12: no comma, nothing else may follow */
		{"2}", "k"},   /* complete: only the end token */
	};
	for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
		assert_int_equal(engine_grammar_matcher_feed(m, steps[s].feed, strlen(steps[s].feed)), 0);
		assert_int_equal(engine_grammar_mask(m, v, &eos, 1, mask), 0);
		char got[16] = "";
		size_t k = 0;
		for (int id = 0; id < 14; id++)
			if (bit(mask, id))
				got[k++] = (char)('a' + id);
		if (strcmp(got, steps[s].allowed) != 0)
			fail_msg("after step %zu ('%s'): allowed %s, expected %s", s, steps[s].feed, got,
				 steps[s].allowed);
	}
	/* Masking logits: disallowed ones become -inf. */
	float logits[14];
	for (int i = 0; i < 14; i++)
		logits[i] = (float)i;
	assert_int_equal(engine_grammar_mask_apply(logits, mask, 14), 1);
	assert_true(isinf(logits[0]) && logits[0] < 0);
	assert_true(logits[10] == 10.0f);
	engine_grammar_matcher_free(m);
	engine_grammar_free(g);
	engine_grammar_vocab_free(v);
}

/* ------------------------------------------- generation with a random-weight model */

/* A JSON Schema validator for the subset the grammar compiles, written independently of
 * it: the generated texts are checked against this, not against the grammar. */
int main(void)
{
	ag_alloc_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_objects),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_enums_consts_unions),
		cmocka_unit_test(test_arrays),
		cmocka_unit_test(test_tools_grammar),
		cmocka_unit_test(test_prefix_suffix_newlines),
		cmocka_unit_test(test_refused_schemas),
		cmocka_unit_test(test_masks_small_vocabulary),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
