/*
 * The OpenAI-compatible surface: POST /v1/chat/completions and GET /v1/models,
 * so existing clients (the openai SDKs, curl scripts, LangChain) talk to
 * agentd unchanged. Errors use OpenAI's shape
 * {"error": {"message", "type", "param", "code"}}.
 *
 * A streamed completion runs on a thread of its own that hands text to the
 * connection through a small shared queue; a client that goes away sets the
 * stop flag, which ends the generation at the next token and frees the slot.
 */
#include "agentd/daemon.h"
#include "memory/memory.h"
#include "tools/tools.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define MAX_MESSAGES     1024
#define MAX_PROMPT_BYTES (4u << 20) /* text across all messages; beyond it the context cannot hold it */
#define MAX_TOOLS        64

/* ------------------------------------------------------------- errors */

static int openai_error(agentd_response *res, int status, const char *type, const char *param,
			const char *code, const char *message)
{
	json_t *v = json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "message", message, "type", type,
			      "param", param, "code", code);
	return agentd_reply_json(res, status, v);
}

static int bad_request(agentd_response *res, const char *param, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int bad_request(agentd_response *res, const char *param, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return openai_error(res, 400, "invalid_request_error", param, NULL, msg);
}

/* ------------------------------------------------------ request parsing */

typedef struct chat_call {
	agentd_ctx *ctx;
	char tenant[64];
	char memory_user[128]; /* "" when the call does not use a memory */
	json_t *messages;      /* normalised: content always a string or null */
	json_t *tools;
	json_t *tool_choice;
	json_t *response_format;
	json_t *stop;
	engine_chat_request req;
	bool stream;
	bool include_usage;
	char model[128];
} chat_call;

static void chat_call_clear(chat_call *c)
{
	json_decref(c->messages);
	json_decref(c->tools);
	json_decref(c->tool_choice);
	json_decref(c->response_format);
	json_decref(c->stop);
	memset(c, 0, sizeof *c);
}

/* Content as a string: plain, null, or an array of {"type": "text", "text"} parts. */
static int content_text(const json_t *content, char **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!content || json_is_null(content))
		return 0;
	if (json_is_string(content)) {
		*out = ag_strdup(json_string_value(content));
		return *out ? 0 : AG_ENOMEM;
	}
	if (!json_is_array(content)) {
		snprintf(err, errlen, "content must be a string, null or an array of text parts");
		return AG_EINVAL;
	}
	ag_buf b = AG_BUF_INIT;
	size_t i;
	json_t *part;
	json_array_foreach(content, i, part)
	{
		const char *type = json_string_value(json_object_get(part, "type"));
		const char *text = json_string_value(json_object_get(part, "text"));
		if (!type || strcmp(type, "text") != 0 || !text) {
			ag_buf_free(&b);
			snprintf(err, errlen,
				 "content part %zu: only {\"type\": \"text\", \"text\": ...} parts are "
				 "supported",
				 i);
			return AG_EINVAL;
		}
		if (ag_buf_puts(&b, text)) {
			ag_buf_free(&b);
			return AG_ENOMEM;
		}
	}
	*out = ag_buf_detach(&b, NULL);
	return *out ? 0 : AG_ENOMEM;
}

static bool valid_function_name(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len > 64)
		return false;
	for (; *n; n++)
		if (!((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') || (*n >= '0' && *n <= '9') ||
		      *n == '_' || *n == '-'))
			return false;
	return true;
}

/* Checks and normalises the messages; returns 0, or fills res with a 400. */
static int parse_messages(chat_call *c, const json_t *msgs, agentd_response *res, bool *bad)
{
	static const char *const roles[] = {"system", "developer", "user", "assistant", "tool", NULL};
	if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
		*bad = true;
		return bad_request(res, "messages", "messages must be a non-empty array");
	}
	if (json_array_size(msgs) > MAX_MESSAGES) {
		*bad = true;
		return bad_request(res, "messages", "at most %d messages", MAX_MESSAGES);
	}
	c->messages = json_array();
	if (!c->messages)
		return ag_error_set(AG_ENOMEM, "out of memory");
	size_t total = 0, i;
	json_t *m;
	json_array_foreach(msgs, i, m)
	{
		char param[48], err[200] = "";
		snprintf(param, sizeof param, "messages[%zu]", i);
		const char *role = json_string_value(json_object_get(m, "role"));
		if (!json_is_object(m) || !role) {
			*bad = true;
			return bad_request(res, param, "%s must be an object with a role", param);
		}
		bool known = false;
		for (int r = 0; roles[r]; r++)
			known |= strcmp(role, roles[r]) == 0;
		if (!known) {
			*bad = true;
			return bad_request(res, param,
					   "%s: unknown role '%s' (system, developer, user, assistant, tool)",
					   param, role);
		}
		char *text;
		int rc = content_text(json_object_get(m, "content"), &text, err, sizeof err);
		if (rc == AG_ENOMEM)
			return ag_error_set(AG_ENOMEM, "out of memory");
		if (rc) {
			*bad = true;
			return bad_request(res, param, "%s: %s", param, err);
		}
		const json_t *calls = json_object_get(m, "tool_calls");
		if (!text && !(strcmp(role, "assistant") == 0 && json_is_array(calls))) {
			*bad = true;
			return bad_request(res, param, "%s: content is required", param);
		}
		total += text ? strlen(text) : 0;
		json_t *norm = json_pack("{s:s, s:s?}", "role",
					 strcmp(role, "developer") == 0 ? "system" : role, "content", text);
		ag_free(text);
		if (!norm || json_array_append_new(c->messages, norm))
			return ag_error_set(AG_ENOMEM, "out of memory");
		if (calls) {
			if (!json_is_array(calls)) {
				*bad = true;
				return bad_request(res, param, "%s: tool_calls must be an array", param);
			}
			json_t *out_calls = json_array();
			size_t j;
			json_t *call;
			json_array_foreach(calls, j, call)
			{
				json_t *fn = json_object_get(call, "function");
				const char *name = json_string_value(json_object_get(fn, "name"));
				const char *args = json_string_value(json_object_get(fn, "arguments"));
				json_t *parsed = NULL;
				if (!name || (args && ag_json_parse(&parsed, args, strlen(args)))) {
					json_decref(out_calls);
					*bad = true;
					return bad_request(
						res, param,
						"%s: tool_calls[%zu] needs a function name and JSON "
						"arguments",
						param, j);
				}
				json_array_append_new(out_calls,
						      json_pack("{s:s, s:o}", "name", name, "arguments",
								parsed ? parsed : json_object()));
			}
			json_object_set_new(norm, "tool_calls", out_calls);
		}
	}
	if (total > MAX_PROMPT_BYTES) {
		*bad = true;
		return openai_error(res, 400, "invalid_request_error", "messages", "context_length_exceeded",
				    "the messages are longer than this model's context can hold");
	}
	return 0;
}

static int parse_tools(chat_call *c, const json_t *tools, agentd_response *res, bool *bad)
{
	if (!tools || json_is_null(tools))
		return 0;
	if (!json_is_array(tools) || json_array_size(tools) > MAX_TOOLS) {
		*bad = true;
		return bad_request(res, "tools", "tools must be an array of at most %d functions", MAX_TOOLS);
	}
	size_t i;
	json_t *t;
	json_array_foreach(tools, i, t)
	{
		char param[32];
		snprintf(param, sizeof param, "tools[%zu]", i);
		json_t *fn = json_object_get(t, "function");
		const char *type = json_string_value(json_object_get(t, "type"));
		const char *name = json_string_value(json_object_get(fn, "name"));
		if (!type || strcmp(type, "function") != 0 || !json_is_object(fn) || !name ||
		    !valid_function_name(name)) {
			*bad = true;
			return bad_request(
				res, param,
				"%s must be {\"type\": \"function\", \"function\": {\"name\": ...}} with a "
				"name of letters, digits, _ and - (at most 64)",
				param);
		}
		json_t *params = json_object_get(fn, "parameters");
		if (params && (!json_is_object(params) || tools_schema_check(params))) {
			*bad = true;
			return bad_request(res, param,
					   "%s.function.parameters is not a valid JSON Schema: %s", param,
					   json_is_object(params) ? ag_error_last() : "it must be an object");
		}
	}
	c->tools = json_deep_copy(tools);
	return c->tools ? 0 : ag_error_set(AG_ENOMEM, "out of memory");
}

/* A response format's schema is what the engine's grammar compiles (a wider subset than
 * tool parameters: unions, null, anyOf), so the local engine can always honour it. */
static int response_schema_check(const json_t *schema)
{
	engine_grammar *g;
	int rc = engine_grammar_compile(&g, schema, NULL);
	engine_grammar_free(g);
	return rc;
}

/* Returns 0 with *bad set when res already holds a 400. */
static int parse_request(chat_call *c, const json_t *body, agentd_response *res, bool *bad)
{
	static const char *const allowed[] = {"model",
					      "messages",
					      "tools",
					      "tool_choice",
					      "response_format",
					      "stream",
					      "stream_options",
					      "temperature",
					      "top_p",
					      "max_tokens",
					      "max_completion_tokens",
					      "stop",
					      "seed",
					      "n",
					      "user",
					      "parallel_tool_calls",
					      "frequency_penalty",
					      "presence_penalty",
					      "logit_bias",
					      "metadata",
					      NULL};
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)body, key, v)
	{
		bool ok = false;
		for (int i = 0; allowed[i]; i++)
			ok |= strcmp(allowed[i], key) == 0;
		if (!ok) {
			*bad = true;
			return bad_request(res, key, "unknown parameter '%s'", key);
		}
	}
	int rc = parse_messages(c, json_object_get(body, "messages"), res, bad);
	if (rc || *bad)
		return rc;
	if ((rc = parse_tools(c, json_object_get(body, "tools"), res, bad)) || *bad)
		return rc;
	const char *model = json_string_value(json_object_get(body, "model"));
	snprintf(c->model, sizeof c->model, "%s", model ? model : "");
	c->req.temperature = -1;
	json_t *t = json_object_get(body, "temperature");
	if (t && !json_is_null(t)) {
		if (!json_is_number(t) || json_number_value(t) < 0 || json_number_value(t) > 2) {
			*bad = true;
			return bad_request(res, "temperature", "temperature must be a number from 0 to 2");
		}
		c->req.temperature = (float)json_number_value(t);
	}
	json_t *p = json_object_get(body, "top_p");
	if (p && !json_is_null(p)) {
		if (!json_is_number(p) || json_number_value(p) <= 0 || json_number_value(p) > 1) {
			*bad = true;
			return bad_request(res, "top_p", "top_p must be a number in (0, 1]");
		}
		c->req.top_p = (float)json_number_value(p);
	}
	json_t *mt = json_object_get(body, "max_completion_tokens");
	if (!mt || json_is_null(mt))
		mt = json_object_get(body, "max_tokens");
	if (mt && !json_is_null(mt)) {
		if (!json_is_integer(mt) || json_integer_value(mt) < 1 || json_integer_value(mt) > 1000000) {
			*bad = true;
			return bad_request(res, "max_tokens", "max_tokens must be a positive integer");
		}
		c->req.max_tokens = (int)json_integer_value(mt);
	}
	json_t *n = json_object_get(body, "n");
	if (n && !json_is_null(n) && (!json_is_integer(n) || json_integer_value(n) != 1)) {
		*bad = true;
		return bad_request(res, "n", "only n = 1 is supported");
	}
	json_t *seed = json_object_get(body, "seed");
	if (seed && !json_is_null(seed)) {
		if (!json_is_integer(seed)) {
			*bad = true;
			return bad_request(res, "seed", "seed must be an integer");
		}
		c->req.has_seed = true;
		c->req.seed = (uint64_t)json_integer_value(seed);
	}
	json_t *stop = json_object_get(body, "stop");
	if (stop && !json_is_null(stop)) {
		bool ok = json_is_string(stop) || (json_is_array(stop) && json_array_size(stop) <= 4);
		size_t i;
		json_t *s;
		if (json_is_array(stop))
			json_array_foreach(stop, i, s) ok &= json_is_string(s) && json_string_length(s) > 0;
		if (!ok) {
			*bad = true;
			return bad_request(res, "stop",
					   "stop must be a string or an array of up to 4 strings");
		}
		c->stop = json_incref(stop);
	}
	json_t *st = json_object_get(body, "stream");
	if (st && !json_is_null(st)) {
		if (!json_is_boolean(st)) {
			*bad = true;
			return bad_request(res, "stream", "stream must be true or false");
		}
		c->stream = json_is_true(st);
	}
	c->include_usage =
		json_is_true(json_object_get(json_object_get(body, "stream_options"), "include_usage"));
	json_t *user = json_object_get(body, "user");
	if (user && !json_is_null(user)) {
		if (!json_is_string(user) || json_string_length(user) == 0 ||
		    json_string_length(user) > 127) {
			*bad = true;
			return bad_request(res, "user", "user must be a string of 1 to 127 characters");
		}
		snprintf(c->memory_user, sizeof c->memory_user, "%s", json_string_value(user));
	}
	json_t *tc = json_object_get(body, "tool_choice");
	if (tc && !json_is_null(tc)) {
		const char *s = json_string_value(tc);
		bool ok = (s && (strcmp(s, "none") == 0 || strcmp(s, "auto") == 0 ||
				 strcmp(s, "required") == 0)) ||
			  (json_is_object(tc) &&
			   json_is_string(json_object_get(json_object_get(tc, "function"), "name")));
		if (!ok) {
			*bad = true;
			return bad_request(res, "tool_choice",
					   "tool_choice must be none, auto, required or a named function");
		}
		c->tool_choice = json_incref(tc);
		if (s && strcmp(s, "none") == 0) {
			json_decref(c->tools);
			c->tools = NULL;
		}
	}
	json_t *rf = json_object_get(body, "response_format");
	if (rf && !json_is_null(rf)) {
		const char *type = json_string_value(json_object_get(rf, "type"));
		json_t *schema = json_object_get(json_object_get(rf, "json_schema"), "schema");
		if (!type ||
		    (strcmp(type, "text") && strcmp(type, "json_object") && strcmp(type, "json_schema"))) {
			*bad = true;
			return bad_request(res, "response_format",
					   "response_format.type must be text, json_object or "
					   "json_schema");
		}
		if (strcmp(type, "json_schema") == 0 &&
		    (!json_is_object(schema) || response_schema_check(schema))) {
			*bad = true;
			return bad_request(res, "response_format",
					   "response_format.json_schema.schema is not a valid JSON "
					   "Schema: %s",
					   json_is_object(schema) ? ag_error_last() : "it must be an object");
		}
		c->response_format = json_incref(rf);
	}
	c->req.messages = c->messages;
	c->req.tools = c->tools;
	c->req.tool_choice = c->tools ? c->tool_choice : NULL;
	c->req.response_format = c->response_format;
	c->req.stop = c->stop;
	return 0;
}

/* ------------------------------------------------------------ responses */

static json_t *protocol_tool_calls(const json_t *calls)
{
	json_t *arr = json_array();
	size_t i;
	json_t *c;
	json_array_foreach(calls, i, c)
	{
		char id[40], *args = NULL;
		snprintf(id, sizeof id, "call_%zu", i);
		if (ag_json_dump(&args, NULL, json_object_get(c, "arguments")))
			args = NULL;
		json_array_append_new(arr, json_pack("{s:s, s:s, s:{s:O, s:s}}", "id", id, "type", "function",
						     "function", "name", json_object_get(c, "name"),
						     "arguments", args ? args : "{}"));
		ag_free(args);
	}
	return arr;
}

static const char *finish_reason(const engine_chat_response *r)
{
	if (r->tool_calls && json_array_size(r->tool_calls))
		return "tool_calls";
	if (strcmp(r->finish_reason, "length") == 0)
		return "length";
	return "stop";
}

static void completion_id(char *out, size_t n)
{
	uint8_t raw[12];
	char hex[25];
	ag_random_bytes(raw, sizeof raw);
	ag_hex_encode(hex, raw, sizeof raw);
	snprintf(out, n, "chatcmpl-%s", hex);
}

static int model_error(agentd_response *res, int code)
{
	int status = code == AG_ETIMEOUT ? 504 : code == AG_EBUSY ? 503 : code == AG_EINVAL ? 400 : 500;
	return openai_error(res, status, status == 400 ? "invalid_request_error" : "server_error", NULL,
			    ag_error_name(code), ag_error_last());
}

/* ---------------------------------------------------------------- memory */

/* The completion itself: on a fresh sequence, or, when the call names a user and the model
 * is local, on top of that user's memory (the messages are then the new turns; the user's
 * last message and the answer are remembered). */
static int do_chat(agentd_model *model, chat_call *c, engine_chat_response *r)
{
	if (!c->memory_user[0] || !model->local)
		return model->chat(model->cls, &c->req, r);
	sqlite3 *db;
	int rc = agentd_dbpool_acquire(c->ctx->pool, &db);
	if (rc)
		return rc;
	json_t *pre = json_pack("[{s:s, s:s}]", "role", "system", "content", "You are a helpful assistant.");
	long long budget = 0;
	agentd_config_get_long(c->ctx->cfg, "memory_kv_tokens", 0, INT64_MAX, &budget);
	memory_options opt = {.preamble = pre, .kv_budget = (uint64_t)budget};
	memory_session *m = NULL;
	engine_state *fork = NULL;
	json_t *turns = json_array(), *remember = NULL;
	const json_t *last_user = NULL;
	size_t i;
	json_t *msg;
	json_array_foreach(c->messages, i, msg)
	{
		const char *role = json_string_value(json_object_get(msg, "role"));
		if (role && strcmp(role, "system") == 0)
			continue; /* the memory's own system turn stands */
		json_array_append(turns, msg);
		if (role && strcmp(role, "user") == 0)
			last_user = msg;
	}
	if (!pre || !turns)
		rc = ag_error_set(AG_ENOMEM, "out of memory");
	if (!rc)
		rc = memory_session_open(&m, db, model->local, c->tenant, c->memory_user, &opt);
	if (!rc)
		rc = engine_state_fork(&fork, memory_session_state(m));
	engine_chat_request req = c->req;
	req.messages = turns;
	if (!rc)
		rc = engine_local_chat_state(model->local, fork, &req, r);
	if (!rc && last_user && strcmp(r->finish_reason, "cancelled") != 0) {
		remember =
			json_pack("[O, {s:s, s:s}]", last_user, "role", "assistant", "content", r->content);
		if (!remember || memory_session_commit(m, db, remember))
			ag_warn("chat: the answer could not be added to %s's memory: %s", c->memory_user,
				ag_error_last());
	}
	json_decref(remember);
	engine_state_free(fork);
	memory_session_close(m);
	json_decref(turns);
	json_decref(pre);
	agentd_dbpool_release(c->ctx->pool, db);
	return rc;
}

/* ------------------------------------------------------------ streaming */

#define KEEPALIVE    ": keep-alive\n\n"
#define KEEPALIVE_NS (100 * 1000000LL)

typedef struct chat_stream {
	pthread_mutex_t lock;
	int refs; /* the generation thread and the connection */
	agentd_model *model;
	chat_call call;
	ag_buf out; /* formatted SSE bytes ready for the connection */
	size_t out_off;
	bool finished;        /* the generation thread is done and everything is queued */
	atomic_bool stop;     /* the client went away */
	int64_t last_sent_ns; /* when bytes last went to the connection */
	char id[48];
	char model_name[128];
	int64_t created;
} chat_stream;

static void chat_stream_unref(chat_stream *s)
{
	pthread_mutex_lock(&s->lock);
	int left = --s->refs;
	pthread_mutex_unlock(&s->lock);
	if (left)
		return;
	pthread_mutex_destroy(&s->lock);
	chat_call_clear(&s->call);
	ag_buf_free(&s->out);
	ag_free(s);
}

/* Queues one chunk with the given delta (stolen) and finish reason. */
static void queue_chunk(chat_stream *s, json_t *delta, const char *finish, json_t *usage)
{
	json_t *chunk = json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:s?}]}", "id", s->id, "object",
				  "chat.completion.chunk", "created", (json_int_t)s->created, "model",
				  s->model_name, "choices", "index", 0, "delta",
				  delta ? delta : json_object(), "finish_reason", finish);
	if (chunk && usage)
		json_object_set_new(chunk, "usage", usage);
	else
		json_decref(usage);
	char *text = NULL;
	if (chunk && ag_json_dump(&text, NULL, chunk) == 0) {
		pthread_mutex_lock(&s->lock);
		ag_buf_printf(&s->out, "data: %s\n\n", text);
		pthread_mutex_unlock(&s->lock);
	}
	ag_free(text);
	json_decref(chunk);
}

static int stream_on_text(void *cls, const char *piece, size_t len)
{
	chat_stream *s = cls;
	if (atomic_load(&s->stop))
		return 1;
	queue_chunk(s, json_pack("{s:s%}", "content", piece, len), NULL, NULL);
	return 0;
}

static int stream_should_stop(void *cls) { return atomic_load(&((chat_stream *)cls)->stop); }

static void *generate_thread(void *arg)
{
	chat_stream *s = arg;
	engine_chat_response r;
	s->call.req.on_text = stream_on_text;
	s->call.req.on_text_cls = s;
	s->call.req.should_stop = stream_should_stop;
	int rc = do_chat(s->model, &s->call, &r);
	if (rc) {
		json_t *err = json_pack("{s:{s:s, s:s, s:s}}", "error", "message", ag_error_last(), "type",
					"server_error", "code", ag_error_name(rc));
		char *text = NULL;
		if (err && ag_json_dump(&text, NULL, err) == 0) {
			pthread_mutex_lock(&s->lock);
			ag_buf_printf(&s->out, "data: %s\n\n", text);
			pthread_mutex_unlock(&s->lock);
		}
		ag_free(text);
		json_decref(err);
	} else {
		if (r.tool_calls && json_array_size(r.tool_calls))
			queue_chunk(s, json_pack("{s:o}", "tool_calls", protocol_tool_calls(r.tool_calls)),
				    NULL, NULL);
		queue_chunk(s, json_object(), finish_reason(&r), NULL);
		if (s->call.include_usage)
			queue_chunk(s, NULL, NULL,
				    json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)r.prompt_tokens,
					      "completion_tokens", (json_int_t)r.completion_tokens,
					      "total_tokens",
					      (json_int_t)(r.prompt_tokens + r.completion_tokens)));
		engine_chat_response_clear(&r);
	}
	pthread_mutex_lock(&s->lock);
	ag_buf_puts(&s->out, "data: [DONE]\n\n");
	s->finished = true;
	pthread_mutex_unlock(&s->lock);
	agentd_model *model = s->model;
	chat_stream_unref(s);
	atomic_fetch_sub(&model->active, 1);
	return NULL;
}

static long chat_stream_read(void *cls, char *buf, size_t max)
{
	chat_stream *s = cls;
	pthread_mutex_lock(&s->lock);
	size_t avail = s->out.len - s->out_off;
	long n;
	int64_t now = ag_monotonic_ns();
	if (avail == 0 && !s->finished && now - s->last_sent_ns > KEEPALIVE_NS &&
	    max >= sizeof KEEPALIVE - 1) {
		/* Nothing to say (the model may be thinking): an SSE comment, which clients skip,
		 * so a client that left is noticed by the failed write and its generation stops. */
		memcpy(buf, KEEPALIVE, sizeof KEEPALIVE - 1);
		s->last_sent_ns = now;
		pthread_mutex_unlock(&s->lock);
		return (long)(sizeof KEEPALIVE - 1);
	}
	if (avail == 0) {
		n = s->finished ? -1 : 0;
		if (s->out.len) {
			ag_buf_clear(&s->out);
			s->out_off = 0;
		}
	} else {
		n = (long)(avail < max ? avail : max);
		memcpy(buf, s->out.data + s->out_off, (size_t)n);
		s->out_off += (size_t)n;
		s->last_sent_ns = now;
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

static void chat_stream_close(void *cls)
{
	chat_stream *s = cls;
	atomic_store(&s->stop, true); /* a client that left frees its slot at the next token */
	chat_stream_unref(s);
}

/* ---------------------------------------------------------------- routes */

static int post_chat(agentd_request *req, agentd_response *res)
{
	agentd_model *model = req->ctx->model;
	json_t *body = NULL;
	if (!req->body || ag_json_parse(&body, req->body, req->body_len) || !json_is_object(body)) {
		json_decref(body);
		if (ag_error_code() == AG_ENOMEM)
			return AG_ENOMEM;
		return bad_request(res, NULL, "the body must be a JSON object: %s", ag_error_last());
	}
	chat_call call;
	memset(&call, 0, sizeof call);
	bool bad = false;
	int rc = parse_request(&call, body, res, &bad);
	json_decref(body);
	if (rc || bad) {
		chat_call_clear(&call);
		return rc;
	}
	call.ctx = req->ctx;
	snprintf(call.tenant, sizeof call.tenant, "%s", req->principal->tenant);
	if (call.memory_user[0] && strcmp(call.memory_user, req->principal->user) != 0 &&
	    !(req->principal->role & AGENTD_ROLE_ADMIN)) {
		chat_call_clear(&call);
		return openai_error(res, 403, "permission_error", "user", NULL,
				    "only an admin key may use another user's memory");
	}
	if (!model) {
		chat_call_clear(&call);
		return openai_error(
			res, 503, "server_error", NULL, "model_not_loaded",
			"no model is loaded: start agentd with --model FILE.gguf or --remote URL");
	}
	if (call.model[0] && strcmp(call.model, model->name) != 0 && strcmp(call.model, "agentd") != 0) {
		char msg[400];
		snprintf(msg, sizeof msg, "the model '%s' does not exist; this server has '%s'", call.model,
			 model->name);
		chat_call_clear(&call);
		return openai_error(res, 404, "invalid_request_error", "model", "model_not_found", msg);
	}
	char id[48];
	completion_id(id, sizeof id);
	int64_t created = ag_now_ms() / 1000;
	if (call.stream) {
		chat_stream *s = ag_calloc(1, sizeof *s);
		if (!s) {
			chat_call_clear(&call);
			return ag_error_set(AG_ENOMEM, "out of memory starting a stream");
		}
		pthread_mutex_init(&s->lock, NULL);
		s->refs = 2;
		s->model = model;
		s->call = call;
		s->created = created;
		snprintf(s->id, sizeof s->id, "%s", id);
		snprintf(s->model_name, sizeof s->model_name, "%s", model->name);
		queue_chunk(s, json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL, NULL);
		pthread_t th;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		atomic_fetch_add(&model->active, 1);
		if (pthread_create(&th, &attr, generate_thread, s) != 0) {
			atomic_fetch_sub(&model->active, 1);
			pthread_attr_destroy(&attr);
			s->refs = 1;
			chat_stream_unref(s);
			return ag_error_set(AG_EBUSY, "could not start a generation thread");
		}
		pthread_attr_destroy(&attr);
		agentd_reply_stream(res, "text/event-stream", chat_stream_read, s, chat_stream_close);
		return 0;
	}
	engine_chat_response r;
	rc = do_chat(model, &call, &r);
	chat_call_clear(&call);
	if (rc)
		return model_error(res, rc);
	json_t *message =
		json_pack("{s:s, s:s?}", "role", "assistant", "content",
			  r.tool_calls && json_array_size(r.tool_calls) && !r.content[0] ? NULL : r.content);
	if (message && r.tool_calls && json_array_size(r.tool_calls))
		json_object_set_new(message, "tool_calls", protocol_tool_calls(r.tool_calls));
	json_t *v = json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:s}], s:{s:I, s:I, s:I}}", "id", id,
			      "object", "chat.completion", "created", (json_int_t)created, "model",
			      model->name, "choices", "index", 0, "message", message, "finish_reason",
			      finish_reason(&r), "usage", "prompt_tokens", (json_int_t)r.prompt_tokens,
			      "completion_tokens", (json_int_t)r.completion_tokens, "total_tokens",
			      (json_int_t)(r.prompt_tokens + r.completion_tokens));
	engine_chat_response_clear(&r);
	return agentd_reply_json(res, 200, v);
}

static int get_models(agentd_request *req, agentd_response *res)
{
	json_t *data = json_array();
	agentd_model *m = req->ctx->model;
	if (data && m)
		json_array_append_new(data,
				      json_pack("{s:s, s:s, s:I, s:s}", "id", m->name, "object", "model",
						"created", (json_int_t)0, "owned_by", "agentd"));
	return agentd_reply_json(res, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

#define CHATTERS (AGENTD_ROLE_ADMIN | AGENTD_ROLE_ANALYST | AGENTD_ROLE_VIEWER)

const agentd_route agentd_routes_openai[] = {
	{"POST", "/v1/chat/completions", CHATTERS, post_chat},
	{"GET", "/v1/models", AGENTD_ROLES_ANY, get_models},
	{NULL, NULL, 0, NULL},
};
