/* Grammar-constrained decoding with models (engine/grammar*.c, engine/local_grammar.c):
 * with a random-weight model and its real tokenizer, constrained generation under
 * several schemas for many seeds always gives JSON that jansson reads and that
 * validates against the schema (every mask checked against the matcher), and the
 * local backend's glue between free text, tool-call tags and the grammar. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/local_internal.h"

static bool bit(const uint32_t *mask, int id) { return (mask[id >> 5] >> (id & 31)) & 1; }

static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

static bool type_is(const char *t, const json_t *v)
{
	if (strcmp(t, "object") == 0)
		return json_is_object(v);
	if (strcmp(t, "array") == 0)
		return json_is_array(v);
	if (strcmp(t, "string") == 0)
		return json_is_string(v);
	if (strcmp(t, "integer") == 0)
		return json_is_integer(v);
	if (strcmp(t, "number") == 0)
		return json_is_number(v);
	if (strcmp(t, "boolean") == 0)
		return json_is_boolean(v);
	if (strcmp(t, "null") == 0)
		return json_is_null(v);
	return false;
}

static bool valid(const json_t *s, const json_t *v)
{
	if (json_is_true(s))
		return true;
	const json_t *any = json_object_get(s, "anyOf"), *one = json_object_get(s, "oneOf");
	if (any || one) {
		size_t i, hits = 0;
		const json_t *alt;
		json_array_foreach(any ? any : one, i, alt) hits += valid(alt, v);
		return any ? hits > 0 : hits == 1;
	}
	const json_t *type = json_object_get(s, "type");
	if (json_is_string(type) && !type_is(json_string_value(type), v))
		return false;
	if (json_is_array(type)) {
		size_t i;
		const json_t *t;
		bool ok = false;
		json_array_foreach(type, i, t) ok |= type_is(json_string_value(t), v);
		if (!ok)
			return false;
	}
	const json_t *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const");
	if (cn && !json_equal(cn, v))
		return false;
	if (en) {
		size_t i;
		const json_t *e;
		bool ok = false;
		json_array_foreach(en, i, e) ok |= json_equal(e, v);
		if (!ok)
			return false;
	}
	if (json_is_string(v)) {
		size_t n = utf8_chars(json_string_value(v));
		const json_t *mn = json_object_get(s, "minLength"), *mx = json_object_get(s, "maxLength");
		if ((mn && (json_int_t)n < json_integer_value(mn)) ||
		    (mx && (json_int_t)n > json_integer_value(mx)))
			return false;
	}
	if (json_is_array(v)) {
		const json_t *mn = json_object_get(s, "minItems"), *mx = json_object_get(s, "maxItems");
		if ((mn && (json_int_t)json_array_size(v) < json_integer_value(mn)) ||
		    (mx && (json_int_t)json_array_size(v) > json_integer_value(mx)))
			return false;
		const json_t *items = json_object_get(s, "items");
		size_t i;
		const json_t *e;
		json_array_foreach(v, i, e) if (items && !valid(items, e)) return false;
	}
	if (json_is_object(v)) {
		const json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
		const json_t *add = json_object_get(s, "additionalProperties");
		size_t i;
		const json_t *r;
		json_array_foreach(req, i, r) if (!json_object_get(v, json_string_value(r))) return false;
		const char *key;
		json_t *field;
		json_object_foreach((json_t *)v, key, field)
		{
			const json_t *sub = json_object_get(props, key);
			if (sub ? !valid(sub, field) : (json_is_false(add) || (add && !valid(add, field))))
				return false;
		}
	}
	return true;
}

static const char *const gen_schemas[] = {
	/* a tool's arguments */
	("{\"type\":\"object\",\"properties\":{\"expression\":{\"type\":\"string\",\"maxLength\":30},"
	 "\"precision\":{"
	 "\"type\":\"integer\"}},\"required\":[\"expression\"],\"additionalProperties\":false}"),
	/* enums, arrays, nested objects, unions, numbers */
	("{\"type\":\"object\",\"properties\":{\"mode\":{\"enum\":[\"fts\",\"vector\",\"hybrid\"]},\"tags\":{"
	 "\"type\":"
	 "\"array\",\"items\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":8},\"minItems\":1,"
	 "\"maxItems\":3},"
	 "\"where\":{\"type\":\"object\",\"properties\":{\"year\":{\"type\":[\"integer\",\"null\"]},\"ok\":{"
	 "\"type\":"
	 "\"boolean\"}},\"required\":[\"ok\"],\"additionalProperties\":false},\"score\":{\"type\":\"number\"}"
	 "}"
	 ","
	 "\"required\":[\"mode\",\"tags\",\"where\"],\"additionalProperties\":false}"),
	/* alternatives told apart by a const */
	("{\"oneOf\":[{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"a\"},\"n\":{\"type\":"
	 "\"integer\"}},"
	 "\"required\":[\"kind\",\"n\"],\"additionalProperties\":false},{\"type\":\"object\",\"properties\":{"
	 "\"kind\":{\"const\":\"b\"},\"s\":{\"type\":\"string\",\"maxLength\":5}},\"required\":[\"kind\","
	 "\"s\"],"
	 "\"additionalProperties\":false}]}"),
	/* open objects with additional properties of a schema, and an array at the top */
	("{\"type\":\"array\",\"items\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\","
	 "\"maxLength\":4}},\"maxItems\":3}"),
	/* anything at all, within the caps */
	("{}"),
};

static char model_path[512];

static int write_model(uint32_t n_vocab, uint64_t seed)
{
	const char *dir = getenv("TEST_TMPDIR");
	snprintf(model_path, sizeof model_path, "%s/grammar-test.gguf", dir ? dir : "/tmp");
	engine_jamba_random p;
	engine_jamba_random_init(&p);
	p.n_vocab = n_vocab;
	p.seed = seed;
	return engine_jamba_random_write(&p, model_path);
}

/* Samples under the grammar from the random model until an end token; the text is the caller's. */
/* The mask by its definition: token i is allowed iff the matcher accepts its bytes. */
static void check_mask_by_definition(const engine_grammar_matcher *m, const engine_tokenizer *tok,
				     const uint32_t *mask, int32_t eos)
{
	size_t n_vocab = engine_tokenizer_n_vocab(tok);
	ag_buf piece = AG_BUF_INIT;
	for (size_t i = 0; i < n_vocab; i++) {
		int32_t type = engine_token_type(tok, (int32_t)i);
		bool want = false;
		if ((int32_t)i == eos) {
			want = engine_grammar_matcher_complete(m);
		} else if (type == ENGINE_TOKEN_NORMAL || type == ENGINE_TOKEN_BYTE) {
			ag_buf_clear(&piece);
			assert_int_equal(engine_token_piece(tok, (int32_t)i, false, &piece), 0);
			want = piece.len && engine_grammar_matcher_accepts(m, piece.data, piece.len);
		}
		if (want != bit(mask, (int)i))
			fail_msg("token %zu '%s': mask says %d, the matcher %d", i,
				 engine_token_text(tok, (int32_t)i), bit(mask, (int)i), want);
	}
	ag_buf_free(&piece);
}

static char *constrained_text(engine_model *model, const engine_tokenizer *tok, const engine_grammar_vocab *v,
			      const engine_grammar *g, uint64_t seed, bool check_masks, int *n_tokens)
{
	size_t n_vocab = engine_tokenizer_n_vocab(tok);
	float *logits = ag_malloc(n_vocab * sizeof *logits);
	uint32_t *mask = ag_malloc(((n_vocab + 31) / 32) * sizeof *mask);
	engine_state *st;
	assert_int_equal(engine_state_new(&st, model), 0);
	int32_t prompt[3] = {engine_token_bos(tok), engine_token_lookup(tok, "<|im_start|>"),
			     300 + (int32_t)seed};
	assert_int_equal(engine_prefill(model, st, prompt, 3, logits), 0);
	engine_sampler_params sp;
	engine_sampler_params_init(&sp);
	sp.temperature = 1.5f; /* a flat distribution explores the grammar widely */
	sp.top_k = 0;
	sp.top_p = 1;
	sp.min_p = 0;
	sp.seed = seed;
	engine_sampler *smp;
	assert_int_equal(engine_sampler_new(&smp, &sp), 0);
	engine_grammar_matcher *m;
	assert_int_equal(engine_grammar_matcher_new(&m, g), 0);
	int32_t eos = engine_token_eos(tok);
	ag_buf text = AG_BUF_INIT, piece = AG_BUF_INIT;
	int n = 0;
	for (; n < 3000; n++) {
		assert_int_equal(engine_grammar_mask(m, v, &eos, 1, mask), 0);
		if (check_masks)
			check_mask_by_definition(m, tok, mask, eos);
		assert_true(engine_grammar_mask_apply(logits, mask, n_vocab) > 0);
		int32_t id;
		assert_int_equal(engine_sample(smp, logits, n_vocab, &id), 0);
		if (id == eos)
			break;
		ag_buf_clear(&piece);
		assert_int_equal(engine_token_piece(tok, id, false, &piece), 0);
		assert_int_equal(engine_grammar_matcher_feed(m, piece.data, piece.len), 0);
		ag_buf_append(&text, piece.data, piece.len);
		assert_int_equal(engine_decode(model, st, id, logits), 0);
	}
	assert_true(n < 3000); /* the caps end every value */
	assert_true(engine_grammar_matcher_complete(m));
	*n_tokens = n;
	engine_grammar_matcher_free(m);
	engine_sampler_free(smp);
	engine_state_free(st);
	ag_free(logits);
	ag_free(mask);
	ag_buf_free(&piece);
	ag_buf_putc(&text, '\0');
	return ag_buf_detach(&text, NULL);
}

static void test_random_model_always_valid(void **state)
{
	(void)state;
	assert_int_equal(write_model(2000, 5), 0);
	engine_model *model;
	engine_tokenizer *tok;
	assert_int_equal(engine_model_load(&model, model_path), 0);
	assert_int_equal(engine_tokenizer_create(&tok, engine_model_vocab(model)), 0);
	engine_grammar_vocab *v;
	assert_int_equal(engine_grammar_vocab_new(&v, tok), 0);
	engine_grammar_options o;
	engine_grammar_options_init(&o);
	o.max_string = 12;
	o.max_items = 4;
	o.max_props = 3;
	o.max_depth = 4;
	long total_tokens = 0;
	size_t distinct = 0;
	for (size_t k = 0; k < sizeof gen_schemas / sizeof gen_schemas[0]; k++) {
		json_t *schema = json_loads(gen_schemas[k], 0, NULL);
		assert_non_null(schema);
		engine_grammar *g;
		assert_int_equal(engine_grammar_compile(&g, schema, &o), 0);
		char *prev = NULL;
		for (uint64_t seed = 1; seed <= 12; seed++) {
			int nt;
			char *text = constrained_text(model, tok, v, g, seed * 7 + k, seed <= 2, &nt);
			total_tokens += nt;
			json_error_t err;
			json_t *value = json_loads(text, JSON_DECODE_ANY, &err);
			if (!value)
				fail_msg("schema %zu seed %llu: jansson cannot read %s: %s", k,
					 (unsigned long long)seed, text, err.text);
			if (!valid(schema, value))
				fail_msg("schema %zu seed %llu: %s does not validate", k,
					 (unsigned long long)seed, text);
			if (getenv("GRAMMAR_TEST_VERBOSE"))
				printf("schema %zu seed %llu (%d tokens): %s\n", k, (unsigned long long)seed,
				       nt, text);
			distinct += !prev || strcmp(prev, text) != 0;
			json_decref(value);
			ag_free(prev);
			prev = text;
		}
		ag_free(prev);
		engine_grammar_free(g);
		json_decref(schema);
	}
	/* The seeds explore: not one text over and over. */
	assert_true(distinct > 30);
	assert_true(total_tokens > 200);
	engine_grammar_vocab_free(v);
	engine_tokenizer_free(tok);
	engine_model_free(model);
	remove(model_path);
}

/* Through the local backend: response_format and forced tool calls. */
static void test_local_backend_constrained(void **state)
{
	(void)state;
	assert_int_equal(write_model(1000, 9), 0);
	engine_local *l;
	assert_int_equal(engine_local_open(&l, model_path, 1), 0);
	json_t *msgs = json_pack("[{s:s, s:s}]", "role", "user", "content", "give me json");
	json_t *schema = json_loads(gen_schemas[1], 0, NULL);
	json_t *rf = json_pack("{s:s, s:{s:s, s:O}}", "type", "json_schema", "json_schema", "name", "x",
			       "schema", schema);
	engine_chat_request req = {.messages = msgs,
				   .response_format = rf,
				   .max_tokens = 1500,
				   .temperature = 1.2f,
				   .has_seed = true};
	for (uint64_t seed = 1; seed <= 6; seed++) {
		req.seed = seed;
		engine_chat_response r;
		assert_int_equal(engine_local_chat(l, &req, &r), 0);
		if (getenv("GRAMMAR_TEST_VERBOSE"))
			printf("response_format seed %llu: %s\n", (unsigned long long)seed, r.content);
		json_t *value = json_loads(r.content, 0, NULL);
		if (!value || !valid(schema, value))
			fail_msg("seed %llu: content %s is not valid", (unsigned long long)seed, r.content);
		assert_string_equal(r.finish_reason, "stop");
		json_decref(value);
		engine_chat_response_clear(&r);
	}
	/* A schema the grammar refuses is the caller's error. */
	json_t *bad = json_pack("{s:s, s:{s:{s:s}}}", "type", "json_schema", "json_schema", "schema", "$ref",
				"#/x");
	req.response_format = bad;
	engine_chat_response r;
	assert_int_equal(engine_local_chat(l, &req, &r), AG_EUNSUPPORTED);
	assert_non_null(strstr(ag_error_last(), "$ref"));
	json_decref(bad);

	/* tool_choice required, then a named function: one valid call. */
	json_t *tools = json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"calculator\","
				   "\"parameters\":{\"type\":\"object\","
				   "\"properties\":{\"expression\":{\"type\":\"string\",\"maxLength\":20}},"
				   "\"required\":[\"expression\"]}}},"
				   "{\"type\":\"function\",\"function\":{\"name\":\"search\",\"parameters\":{"
				   "\"type\":\"object\","
				   "\"properties\":{\"query\":{\"type\":\"string\",\"maxLength\":20},"
				   "\"limit\":{\"type\":\"integer\"}},"
				   "\"required\":[\"query\"]}}}]",
				   0, NULL);
	assert_non_null(tools);
	json_t *choices[2] = {json_string("required"),
			      json_pack("{s:s, s:{s:s}}", "type", "function", "function", "name", "search")};
	req.response_format = NULL;
	req.tools = tools;
	for (int c = 0; c < 2; c++) {
		req.tool_choice = choices[c];
		for (uint64_t seed = 1; seed <= 5; seed++) {
			req.seed = seed;
			assert_int_equal(engine_local_chat(l, &req, &r), 0);
			if (json_array_size(r.tool_calls) != 1)
				fail_msg("choice %d seed %llu: %zu calls (content '%s')", c,
					 (unsigned long long)seed, json_array_size(r.tool_calls), r.content);
			const json_t *call = json_array_get(r.tool_calls, 0);
			if (getenv("GRAMMAR_TEST_VERBOSE")) {
				char *dump = json_dumps(call, JSON_COMPACT);
				printf("tool call %d seed %llu: %s\n", c, (unsigned long long)seed, dump);
				free(dump);
			}
			const char *name = json_string_value(json_object_get(call, "name"));
			assert_non_null(name);
			size_t i;
			const json_t *t;
			bool found = false;
			json_array_foreach(tools, i, t)
			{
				const json_t *f = json_object_get(t, "function");
				if (strcmp(json_string_value(json_object_get(f, "name")), name) == 0) {
					found = true;
					assert_true(valid(json_object_get(f, "parameters"),
							  json_object_get(call, "arguments")));
				}
			}
			assert_true(found);
			if (c == 1)
				assert_string_equal(name, "search");
			assert_string_equal(r.finish_reason, "tool_calls");
			engine_chat_response_clear(&r);
		}
	}
	json_decref(choices[0]);
	json_decref(choices[1]);
	json_decref(tools);
	json_decref(rf);
	json_decref(schema);
	json_decref(msgs);
	engine_local_free(l);
	remove(model_path);
}

/* ------------------------------- the local backend's glue, on a hand-made vocabulary */

enum { T_UNK, T_BOS, T_EOS, T_IM_END, T_OPEN, T_CLOSE, T_FIRST_PIECE };
static const char *const glue_tokens[] = {"<unk>", "<s>", "</s>", "<|im_end|>", "<tool_call>", "</tool_call>",
					  "{",     "}",   "\"",   "name",       "arguments",   ":",
					  " ",     ",",   "calc", "x",          "1",           "\n",
					  "hi"};
#define N_GLUE (sizeof glue_tokens / sizeof glue_tokens[0])

static int32_t glue_id(const char *text)
{
	for (size_t i = T_FIRST_PIECE; i < N_GLUE; i++)
		if (strcmp(glue_tokens[i], text) == 0)
			return (int32_t)i;
	fail_msg("no token %s", text);
	return -1;
}

/* A local backend on the hand-made vocabulary, without a model: the tool-call tags are
 * special tokens of type tag_type (user-defined), or plain text (normal). */
static void glue_local(engine_local *l, int32_t tag_type)
{
	float scores[N_GLUE] = {0};
	int32_t types[N_GLUE];
	for (size_t i = 0; i < N_GLUE; i++)
		types[i] = i < T_OPEN          ? ENGINE_TOKEN_CONTROL
			   : i < T_FIRST_PIECE ? tag_type
					       : ENGINE_TOKEN_NORMAL;
	types[T_UNK] = ENGINE_TOKEN_UNKNOWN;
	engine_vocab_desc d;
	engine_vocab_desc_init(&d);
	d.model = "llama";
	d.tokens = glue_tokens;
	d.scores = scores;
	d.types = types;
	d.n_tokens = N_GLUE;
	d.unk_id = T_UNK;
	d.bos_id = T_BOS;
	d.eos_id = T_EOS;
	d.add_space_prefix = false;
	memset(l, 0, sizeof *l);
	assert_int_equal(engine_tokenizer_create(&l->tok, &d), 0);
	l->format = ENGINE_CHAT_CHATML;
}

/* The one tool of the glue tests: calc, taking an integer x. */
static json_t *glue_tools(void)
{
	return json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"calc\",\"parameters\":{\"type\":"
			  "\"object\",\"properties\":{\"x\":{\"type\":\"integer\"}},\"required\":[\"x\"]}}}]",
			  0, NULL);
}

/* The ids whose logits stay finite after masking, as a string of token texts joined by '|'. */
static void masked(local_constraint *c, char *out, size_t cap)
{
	float logits[N_GLUE];
	for (size_t i = 0; i < N_GLUE; i++)
		logits[i] = 0.5f;
	bool none;
	assert_int_equal(local_constraint_mask(c, logits, N_GLUE, &none), 0);
	out[0] = '\0';
	size_t n = 0;
	for (size_t i = 0; i < N_GLUE; i++)
		if (isfinite(logits[i]))
			n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "|" : "", glue_tokens[i]);
}

static void feed_tokens(local_constraint *c, const char *const *texts)
{
	char allowed[512];
	for (size_t i = 0; texts[i]; i++) {
		int32_t id = glue_id(texts[i]);
		masked(c, allowed, sizeof allowed);
		char probe[64];
		snprintf(probe, sizeof probe, "|%s|", texts[i]);
		char wrapped[520];
		snprintf(wrapped, sizeof wrapped, "|%s|", allowed);
		if (!strstr(wrapped, probe))
			fail_msg("token %zu '%s' is not allowed; allowed: %s", i, texts[i], allowed);
		assert_int_equal(local_constraint_accept(c, id, "", 0), 0);
	}
}

static void test_local_glue(void **state)
{
	(void)state;
	engine_local l;
	glue_local(&l, ENGINE_TOKEN_USER_DEFINED);
	json_t *tools = glue_tools();
	engine_chat_request req = {.tools = tools};
	local_constraint c;
	char allowed[512];

	/* tool_choice auto: free text until the model opens a call, then the call's grammar. */
	assert_false(local_constraint_from_start(&req));
	assert_int_equal(local_constraint_init(&c, &l, &req, false), 0);
	masked(&c, allowed, sizeof allowed);
	assert_string_equal(allowed,
			    "<unk>|<s>|</s>|<|im_end|>|<tool_call>|</tool_call>|{|}|\"|name|arguments|:| "
			    "|,|calc|x|1|\n|hi");
	assert_int_equal(local_constraint_accept(&c, glue_id("hi"), "hi", 2), 0);
	assert_int_equal(local_constraint_accept(&c, T_OPEN, "hi<tool_call>", 13), 0);
	masked(&c, allowed, sizeof allowed);
	assert_string_equal(allowed, "{|\n");
	const char *call[] = {"\n", "{",  "\"", "name", "\"",        ":",  " ", "\"", "calc",
			      "\"", ",",  " ",  "\"",   "arguments", "\"", ":", "{",  "\"",
			      "x",  "\"", ":",  "1",    "}",         "}",  NULL};
	feed_tokens(&c, call);
	masked(&c, allowed, sizeof allowed);
	assert_string_equal(allowed, "</tool_call>|\n"); /* whole: the close, or one newline first */
	const char *nl[] = {"\n", NULL};
	feed_tokens(&c, nl);
	masked(&c, allowed, sizeof allowed);
	assert_string_equal(allowed, "</tool_call>");
	assert_int_equal(local_constraint_accept(&c, T_CLOSE, "", 0), 0);
	masked(&c, allowed, sizeof allowed); /* free text again */
	assert_non_null(strstr(allowed, "hi"));
	local_constraint_free(&c);

	/* tool_choice required: the opening is forced, and after the call only the end. */
	json_t *required = json_string("required");
	req.tool_choice = required;
	assert_true(local_constraint_from_start(&req));
	assert_int_equal(local_constraint_init(&c, &l, &req, false), 0);
	masked(&c, allowed, sizeof allowed);
	assert_string_equal(allowed, "<tool_call>");
	assert_int_equal(local_constraint_accept(&c, T_OPEN, "", 0), 0);
	feed_tokens(&c, call);
	assert_int_equal(local_constraint_accept(&c, T_CLOSE, "", 0), 0);
	masked(&c, allowed, sizeof allowed);
	assert_string_equal(allowed, "</s>|<|im_end|>");
	local_constraint_free(&c);

	/* A named function that is not offered is the caller's error. */
	json_t *named = json_pack("{s:s, s:{s:s}}", "type", "function", "function", "name", "nope");
	req.tool_choice = named;
	assert_int_equal(local_constraint_init(&c, &l, &req, false), AG_EINVAL);
	assert_non_null(strstr(ag_error_last(), "nope"));

	/* response_format: the answer from its first token, then only the end. */
	json_t *rf = json_loads("{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{\"enum\":[1,11]}}}",
				0, NULL);
	engine_chat_request r2 = {.response_format = rf};
	assert_true(local_constraint_from_start(&r2));
	assert_int_equal(local_constraint_init(&c, &l, &r2, false), 0);
	masked(&c, allowed, sizeof allowed);
	assert_string_equal(allowed, "1");
	assert_int_equal(local_constraint_accept(&c, glue_id("1"), "1", 1), 0);
	masked(&c, allowed, sizeof allowed);
	assert_string_equal(allowed, "</s>|<|im_end|>|1");
	assert_int_equal(local_constraint_accept(&c, glue_id("1"), "11", 2), 0);
	masked(&c, allowed, sizeof allowed);
	assert_string_equal(allowed, "</s>|<|im_end|>");
	local_constraint_free(&c);

	json_decref(rf);
	json_decref(named);
	json_decref(required);
	json_decref(tools);
	engine_grammar_vocab_free(l.gvocab);
	engine_tokenizer_free(l.tok);
}

/* Verbatim quotes through the glue: nothing while the model reasons, the quote and its
 * marker in the answer, a tool call's JSON quotes left alone. */
static void test_local_glue_quotes(void **state)
{
	(void)state;
	engine_local l;
	glue_local(&l, ENGINE_TOKEN_USER_DEFINED);
	json_t *tools = glue_tools();
	json_t *sources = json_pack("[s]", "hi x");
	engine_chat_request req = {.tools = tools, .quote_sources = sources};
	local_constraint c;
	char allowed[512];
	const char *all = "<unk>|<s>|</s>|<|im_end|>|<tool_call>|</tool_call>|{|}|\"|name|arguments|:| "
			  "|,|calc|x|1|\n|hi";
	assert_int_equal(local_constraint_init(&c, &l, &req, true), 0);
	ag_buf text = AG_BUF_INIT;
	struct {
		int32_t id;
		const char *piece;  /* the text the token adds */
		const char *before; /* allowed before it */
	} steps[] = {
		{8, "\"", all},               /* reasoning: free, quotes too */
		{17, "\n</think>\n", all},    /* (the tag as text: the answer starts after it) */
		{8, "\"", all},               /* a quote may open */
		{18, "hi", " |x|hi"},         /* the source's text only, no end */
		{8, "\"", "\"| "},            /* close, or go on with the source */
		{13, ",", all},               /* the marker is optional here */
		{T_OPEN, "<tool_call>", all}, /* a call: its grammar, its JSON quotes */
		{17, "\n", "{|\n"},
	};
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		masked(&c, allowed, sizeof allowed);
		if (strcmp(allowed, steps[i].before) != 0)
			fail_msg("step %zu: allowed %s, expected %s", i, allowed, steps[i].before);
		ag_buf_puts(&text, steps[i].piece);
		assert_int_equal(local_constraint_accept(&c, steps[i].id, text.data, text.len), 0);
	}
	const char *call[] = {"{",  "\"", "name", "\"", ":", "\"", "calc", "\"", ",", "\"", "arguments",
			      "\"", ":",  "{",    "\"", "x", "\"", ":",    "1",  "}", "}",  NULL};
	for (size_t i = 0; call[i]; i++) {
		masked(&c, allowed, sizeof allowed);
		ag_buf_puts(&text, call[i]);
		assert_int_equal(local_constraint_accept(&c, glue_id(call[i]), text.data, text.len), 0);
	}
	ag_buf_puts(&text, "</tool_call>");
	assert_int_equal(local_constraint_accept(&c, T_CLOSE, text.data, text.len), 0);
	masked(&c, allowed, sizeof allowed);
	assert_string_equal(allowed, all); /* outside any quote again */
	ag_buf_puts(&text, "\"");
	assert_int_equal(local_constraint_accept(&c, 8, text.data, text.len), 0);
	masked(&c, allowed, sizeof allowed);
	assert_string_equal(allowed, " |x|hi");
	local_constraint_free(&c);

	/* No tools offered: a call the model writes anyway follows no grammar, and its JSON
	 * quotes are not the answer's quotes either. */
	engine_chat_request bare = {.quote_sources = sources};
	assert_int_equal(local_constraint_init(&c, &l, &bare, false), 0);
	ag_buf_clear(&text);
	const char *raw[] = {"<tool_call>", "{", "\"", "name", "\"", "}", "</tool_call>", "\"", NULL};
	for (size_t i = 0; raw[i]; i++) {
		int32_t id = i == 0 ? T_OPEN : i == 6 ? T_CLOSE : glue_id(raw[i]);
		masked(&c, allowed, sizeof allowed);
		if (i > 0 && i < 6)
			assert_string_equal(allowed, all); /* "name" would be no source's text */
		ag_buf_puts(&text, raw[i]);
		assert_int_equal(local_constraint_accept(&c, id, text.data, text.len), 0);
	}
	masked(&c, allowed, sizeof allowed);
	assert_string_equal(allowed, " |x|hi"); /* after the call, a quote again */
	local_constraint_free(&c);
	ag_buf_free(&text);
	json_decref(sources);
	json_decref(tools);
	engine_grammar_vocab_free(l.gvocab);
	engine_tokenizer_free(l.tok);
}

/* A vocabulary where <tool_call> is plain text (the random models'): the call is found in
 * the text and constrained up to its closing tag, written as text too. */
static void test_local_glue_text_tags(void **state)
{
	(void)state;
	engine_local l;
	glue_local(&l, ENGINE_TOKEN_NORMAL);
	json_t *tools =
		json_loads("[{\"name\":\"calc\",\"parameters\":{\"type\":\"object\",\"properties\":{\"x\":{"
			   "\"type\":\"integer\"}},\"required\":[\"x\"]}}]",
			   0, NULL);
	engine_chat_request req = {.tools = tools};
	local_constraint c;
	char allowed[512];
	assert_int_equal(local_constraint_init(&c, &l, &req, false), 0);
	ag_buf text = AG_BUF_INIT;
	const char *seq[] = {"hi", "<tool_call>",  "\n", "{",  "\"", "name",      "\"", ":",
			     "\"", "calc",         "\"", ",",  "\"", "arguments", "\"", ":",
			     "{",  "\"",           "x",  "\"", ":",  "1",         "}",  "}",
			     "\n", "</tool_call>", "hi", NULL};
	for (size_t i = 0; seq[i]; i++) {
		int32_t id = i == 1                                ? T_OPEN
			     : strcmp(seq[i], "</tool_call>") == 0 ? T_CLOSE
								   : glue_id(seq[i]);
		masked(&c, allowed, sizeof allowed);
		char probe[64], wrapped[520];
		snprintf(probe, sizeof probe, "|%s|", seq[i]);
		snprintf(wrapped, sizeof wrapped, "|%s|", allowed);
		if (!strstr(wrapped, probe))
			fail_msg("token %zu '%s' is not allowed; allowed: %s", i, seq[i], allowed);
		if (i == 2) /* inside the call: only JSON (or its leading newline) */
			assert_string_equal(allowed, "{|\n");
		if (i == 24) /* the value is whole: the newline before the closing tag */
			assert_string_equal(allowed, "\n");
		if (i == 25) /* then the tag, spelled by its text token */
			assert_string_equal(allowed, "</tool_call>");
		ag_buf_puts(&text, seq[i]);
		assert_int_equal(local_constraint_accept(&c, id, text.data, text.len), 0);
	}
	masked(&c, allowed, sizeof allowed); /* after the tag: free text again */
	assert_non_null(strstr(allowed, "calc"));
	assert_non_null(strstr(allowed, "}"));
	local_constraint_free(&c);
	ag_buf_free(&text);
	json_decref(tools);
	engine_grammar_vocab_free(l.gvocab);
	engine_tokenizer_free(l.tok);
}

int main(void)
{
	ag_alloc_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_model_always_valid),
		cmocka_unit_test(test_local_backend_constrained),
		cmocka_unit_test(test_local_glue),
		cmocka_unit_test(test_local_glue_text_tags),
		cmocka_unit_test(test_local_glue_quotes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
