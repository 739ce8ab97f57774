/*
 * Constrained decoding in the local backend: turns a chat request's
 * response_format, tools and tool_choice into grammars (engine/grammar*.c)
 * and, token by token, masks the logits and follows what was sampled.
 *
 * Three cases. A response_format json_schema (or json_object) constrains the
 * whole answer to the schema, then only an end of turn may follow. tool_choice
 * "required" or a named function forces one call: the opening <tool_call>
 * token, then {"name": ..., "arguments": ...} for the allowed tools, then
 * </tool_call> and the end of turn (a vocabulary without those special tokens
 * spells them as text, which the grammar then holds as prefix and suffix).
 * With tools and tool_choice auto the text is free, and each call the model
 * opens is constrained until it closes. Tool-call objects are closed (no
 * properties beyond the schema's), which the planner's validator wants anyway.
 */
#include "engine/local_internal.h"

#include <math.h>
#include <string.h>

#define TOOL_OPEN  "<tool_call>"
#define TOOL_CLOSE "</tool_call>"

static int32_t special_token(const engine_tokenizer *t, const char *text)
{
	int32_t id = engine_token_lookup(t, text);
	int32_t type = engine_token_type(t, id);
	return id >= 0 && (type == ENGINE_TOKEN_CONTROL || type == ENGINE_TOKEN_USER_DEFINED) ? id : -1;
}

static int ensure_vocab(engine_local *l)
{
	if (l->gvocab)
		return 0;
	size_t n = engine_tokenizer_n_vocab(l->tok);
	l->n_eog = 0;
	for (size_t i = 0; i < n && l->n_eog < 8; i++)
		if (engine_token_is_eog(l->tok, (int32_t)i))
			l->eog[l->n_eog++] = (int32_t)i;
	return engine_grammar_vocab_new(&l->gvocab, l->tok);
}

/* The tool name tool_choice names, "" for "required", NULL for auto or none. */
static const char *forced_tool(const json_t *choice)
{
	const char *s = json_string_value(choice);
	if (s)
		return strcmp(s, "required") == 0 ? "" : NULL;
	const json_t *f = json_object_get(choice, "function");
	const char *name = json_string_value(json_object_get(f ? f : choice, "name"));
	return name;
}

static int compile_tools(engine_grammar **out, const engine_chat_request *req, const char *only,
			 bool newlines, const char *prefix, const char *suffix)
{
	engine_grammar_options o;
	engine_grammar_options_init(&o);
	o.closed_objects = true;
	o.newlines = newlines;
	o.prefix = prefix;
	o.suffix = suffix;
	return engine_grammar_compile_tools(out, req->tools, only && *only ? only : NULL, &o);
}

bool local_constraint_from_start(const engine_chat_request *req)
{
	const char *rf_type = json_string_value(json_object_get(req->response_format, "type"));
	return (json_array_size(req->tools) > 0 && forced_tool(req->tool_choice)) ||
	       (rf_type && (strcmp(rf_type, "json_schema") == 0 || strcmp(rf_type, "json_object") == 0));
}

/* The verbatim-quote matcher over the request's quote_sources. */
static int quote_init(local_constraint *c, const engine_chat_request *req, bool thinking)
{
	size_t n = json_array_size(req->quote_sources);
	const char **texts = ag_calloc(n, sizeof *texts);
	size_t *lens = ag_calloc(n, sizeof *lens);
	int rc = texts && lens ? 0 : ag_error_set(AG_ENOMEM, "out of memory for quote sources");
	for (size_t i = 0; i < n && !rc; i++) {
		const json_t *t = json_array_get(req->quote_sources, i);
		if (!json_is_string(t))
			rc = ag_error_set(AG_EINVAL, "quote_sources[%zu] is not a string", i);
		texts[i] = json_string_value(t);
		lens[i] = json_string_length(t);
	}
	/* A source that does not speak of what the question asks about is kept (its number stays
	 * its marker) but offers nothing to quote. */
	bool *quotable = rc ? NULL : ag_calloc(n, sizeof *quotable);
	if (!rc && !quotable)
		rc = ag_error_set(AG_ENOMEM, "out of memory for quote sources");
	if (!rc) {
		local_quote_gate(req->quote_question, texts, lens, n, quotable);
		for (size_t i = 0; i < n; i++)
			if (!quotable[i])
				lens[i] = 0;
		rc = engine_quote_matcher_new(&c->quote, texts, lens, n, req->quote_cite_required);
	}
	ag_free(quotable);
	c->quote_wait_think = thinking;
	c->question = req->quote_question;
	ag_free(texts);
	ag_free(lens);
	return rc;
}

int local_constraint_init(local_constraint *c, engine_local *l, const engine_chat_request *req, bool thinking)
{
	memset(c, 0, sizeof *c);
	c->l = l;
	c->force = -1;
	c->tc_open = special_token(l->tok, TOOL_OPEN);
	c->tc_close = special_token(l->tok, TOOL_CLOSE);
	bool specials = c->tc_open >= 0 && c->tc_close >= 0;
	bool has_tools = json_array_size(req->tools) > 0;
	const char *forced = has_tools ? forced_tool(req->tool_choice) : NULL;
	const json_t *rf = req->response_format;
	const char *rf_type = json_string_value(json_object_get(rf, "type"));
	const json_t *schema = NULL;
	json_t *object_schema = NULL;
	if (rf_type && strcmp(rf_type, "json_schema") == 0)
		schema = json_object_get(json_object_get(rf, "json_schema"), "schema");
	else if (rf_type && strcmp(rf_type, "json_object") == 0)
		schema = object_schema = json_pack("{s:s}", "type", "object");
	bool want_calls = has_tools && !forced && !schema && l->format == ENGINE_CHAT_CHATML;
	/* An empty array still holds quotes to the sources: there are none, so none may open. */
	bool want_quotes = json_is_array(req->quote_sources) && !forced && !schema;
	if (!forced && !schema && !want_calls && !want_quotes)
		return 0;
	int rc = ensure_vocab(l);
	if (!rc && want_quotes)
		rc = quote_init(c, req, thinking);
	if (rc)
		goto done;
	if (forced) {
		if (l->format == ENGINE_CHAT_JAMBA15) {
			rc = compile_tools(&c->answer, req, forced, false, "<tool_calls>[", "]</tool_calls>");
		} else if (specials) {
			rc = compile_tools(&c->answer, req, forced, true, NULL, NULL);
			c->force = c->tc_open;
		} else {
			rc = compile_tools(&c->answer, req, forced, false, TOOL_OPEN "\n", "\n" TOOL_CLOSE);
		}
		if (rc)
			goto done;
		if (c->force < 0)
			rc = engine_grammar_matcher_new(&c->m, c->answer);
		c->ends = c->force >= 0 ? &c->tc_close : l->eog;
		c->n_ends = c->force >= 0 ? 1 : l->n_eog;
	} else if (schema) {
		if (!json_is_object(schema)) {
			rc = ag_error_set(AG_EINVAL, "response_format.json_schema.schema must be an object");
			goto done;
		}
		rc = engine_grammar_compile(&c->answer, schema, NULL);
		if (rc) {
			ag_error_wrap(rc, "response_format");
			goto done;
		}
		rc = engine_grammar_matcher_new(&c->m, c->answer);
		c->ends = l->eog;
		c->n_ends = l->n_eog;
	} else if (want_calls) {
		/* Auto: a tool schema the grammar cannot take leaves calls unconstrained, as before. */
		c->calls_text = !specials;
		c->ends = specials ? &c->tc_close : NULL;
		c->n_ends = specials ? 1 : 0;
		if (compile_tools(&c->calls, req, NULL, true, NULL, specials ? NULL : "\n" TOOL_CLOSE)) {
			ag_log(AG_LOG_WARN, "tool calls unconstrained: %s", ag_error_last());
			c->calls = NULL;
		}
	}
	if (!rc &&
	    !(c->mask = ag_malloc(((engine_grammar_vocab_size(l->gvocab) + 31) / 32) * sizeof *c->mask)))
		rc = ag_error_set(AG_ENOMEM, "out of memory for the token mask");
done:
	json_decref(object_schema);
	if (rc)
		local_constraint_free(c);
	return rc;
}

void local_constraint_free(local_constraint *c)
{
	engine_grammar_matcher_free(c->m);
	engine_grammar_free(c->answer);
	engine_grammar_free(c->calls);
	engine_quote_matcher_free(c->quote);
	ag_free(c->forced);
	ag_free(c->mask);
	ag_buf_free(&c->piece);
	memset(c, 0, sizeof *c);
	c->force = -1;
}

static void allow_only(float *logits, size_t n_vocab, const int32_t *ids, size_t n_ids, bool *none)
{
	*none = true;
	for (size_t k = 0; k < n_ids; k++)
		if (ids[k] >= 0 && (size_t)ids[k] < n_vocab)
			*none = false;
	for (size_t i = 0; i < n_vocab; i++) {
		bool keep = false;
		for (size_t k = 0; k < n_ids && !keep; k++)
			keep = (size_t)ids[k] == i;
		if (!keep)
			logits[i] = -INFINITY;
		else if (!isfinite(logits[i]))
			logits[i] = 0; /* forced: it must be drawable whatever the model thinks */
	}
}

int local_constraint_mask(local_constraint *c, float *logits, size_t n_vocab, bool *none)
{
	*none = false;
	if (c->force >= 0) {
		allow_only(logits, n_vocab, &c->force, 1, none);
		return 0;
	}
	if (c->only_eog) {
		allow_only(logits, n_vocab, c->l->eog, c->l->n_eog, none);
		return 0;
	}
	if (c->forced_at < c->n_forced) {
		allow_only(logits, n_vocab, &c->forced[c->forced_at], 1, none);
		return 0;
	}
	bool quotes = !c->m && !c->open_call && c->quote && !c->quote_wait_think;
	if (!c->m && !quotes)
		return 0;
	if (engine_grammar_vocab_size(c->l->gvocab) != n_vocab)
		return ag_error_set(AG_ECORRUPT, "grammar: vocabulary and logits differ in size");
	int rc = quotes ? engine_quote_mask(c->quote, c->l->gvocab, c->mask)
			: engine_grammar_mask(c->m, c->l->gvocab, c->ends, c->n_ends, c->mask);
	if (!rc)
		*none = engine_grammar_mask_apply(logits, c->mask, n_vocab) == 0;
	return rc;
}

/* A constrained stretch ended: free text again, or only the end after a forced call. */
static void release(local_constraint *c)
{
	engine_grammar_matcher_free(c->m);
	c->m = NULL;
	c->text_mode = false;
	if (c->answer)
		c->only_eog = true;
}

static int grammar_accept(local_constraint *c, int32_t tok, const char *text, size_t len)
{
	if (c->force >= 0 && tok == c->force) {
		c->force = -1;
		return engine_grammar_matcher_new(&c->m, c->answer);
	}
	if (c->m) {
		for (size_t k = 0; k < c->n_ends; k++)
			if (tok == c->ends[k]) {
				release(c);
				return 0;
			}
		ag_buf_clear(&c->piece);
		int rc = engine_token_piece(c->l->tok, tok, false, &c->piece);
		if (!rc && c->piece.len)
			rc = engine_grammar_matcher_feed(c->m, c->piece.data, c->piece.len);
		if (rc)
			return ag_error_wrap(AG_ERR, "constrained decoding lost its place");
		if (c->text_mode && engine_grammar_matcher_finished(c->m)) {
			release(c);
			c->scan_from = len;
		}
		return 0;
	}
	if (!c->calls)
		return 0;
	if (!c->calls_text) {
		if (tok == c->tc_open)
			return engine_grammar_matcher_new(&c->m, c->calls);
		return 0;
	}
	/* Calls opened as text: look for "<tool_call>" in what came since the last look. */
	size_t back = sizeof TOOL_OPEN - 2; /* a tag may end in this token and begin before it */
	size_t from = c->scan_from > back ? c->scan_from - back : 0;
	const char *hit =
		from < len ? memmem(text + from, len - from, TOOL_OPEN, sizeof TOOL_OPEN - 1) : NULL;
	c->scan_from = len;
	if (!hit)
		return 0;
	int rc = engine_grammar_matcher_new(&c->m, c->calls);
	if (rc)
		return rc;
	const char *after = hit + sizeof TOOL_OPEN - 1;
	if (engine_grammar_matcher_feed(c->m, after, (size_t)(text + len - after))) {
		/* The token that opened it already went astray: leave this call unconstrained. */
		engine_grammar_matcher_free(c->m);
		c->m = NULL;
		return 0;
	}
	c->text_mode = true;
	return 0;
}

/* Feeds the quote matcher the answer text that came with this token: none while the model
 * reasons, and a tool call's own text (its JSON has quotes of its own) resets it. */
static void quote_follow(local_constraint *c, bool was_in_call, const char *text, size_t len)
{
	if (c->quote_wait_think) {
		static const char tag[] = "</think>";
		size_t back = sizeof tag - 2, from = c->quote_fed > back ? c->quote_fed - back : 0;
		const char *end = from < len ? memmem(text + from, len - from, tag, sizeof tag - 1) : NULL;
		c->quote_fed = end ? (size_t)(end - text) + sizeof tag - 1 : len;
		if (!end)
			return;
		c->quote_wait_think = false;
	}
	bool quoting = engine_quote_matcher_quoting(c->quote);
	if (was_in_call || c->m || c->open_call)
		engine_quote_matcher_reset(c->quote);
	else if (len > c->quote_fed)
		engine_quote_matcher_feed(c->quote, text + c->quote_fed, len - c->quote_fed);
	c->quote_fed = len;
	c->select_pending = !quoting && engine_quote_matcher_quoting(c->quote) && c->forced_at >= c->n_forced;
}

int local_constraint_accept(local_constraint *c, int32_t tok, const char *text, size_t len)
{
	bool in_call = c->m != NULL || c->open_call;
	if (c->forced_at < c->n_forced)
		c->forced_at = tok == c->forced[c->forced_at] ? c->forced_at + 1 : c->n_forced;
	int rc = grammar_accept(c, tok, text, len);
	/* A call no grammar follows (no tools offered): its JSON is not the answer's text either. */
	if (c->tc_open >= 0 && tok == c->tc_open && !c->m)
		c->open_call = true;
	else if (tok == c->tc_close)
		c->open_call = false;
	if (!rc && c->quote)
		quote_follow(c, in_call, text, len);
	return rc;
}
