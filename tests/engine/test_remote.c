/* Unit tests of the remote backend (engine/remote.c) against a scripted OpenAI-style server on 127.0.0.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"

/* What the fake server does with the next requests. */
enum mode {
	PLAIN_SSE,
	TOOL_SSE,
	THINK_SSE,
	FAIL_429_ONCE,
	FAIL_500,
	WHOLE_JSON,
	BAD_JSON,
	SLOW,
	BAD_REQUEST,
	AUTH
};

static enum mode mode;
static int requests;
static char last_body[65536];
static char last_auth[256];
static struct MHD_Daemon *server;
static unsigned short port;

typedef struct upload {
	char buf[65536];
	size_t len;
} upload;

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type, const char *body)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(r, "Content-Type", type);
	enum MHD_Result ok = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ok;
}

static const char *sse_plain =
	"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n"
	"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
	"data: {\"choices\":[{\"delta\":{\"content\":\"lo there\"}}]}\n\n"
	"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
	"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3}}\n\n"
	"data: [DONE]\n\n";

static const char *sse_tool =
	"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"type\":\"function\","
	"\"function\":{\"name\":\"calculator\",\"arguments\":\"\"}}]}}]}\n\n"
	"data: "
	"{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"expr\"}}]}"
	"}]}\n\n"
	"data: "
	"{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"ession\\\": "
	"\\\"2+2\\\"}\"}}]}}]}\n\n"
	"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
	"data: [DONE]\n\n";

static const char *sse_think =
	"data: {\"choices\":[{\"delta\":{\"content\":\"<thi\"}}]}\n\n"
	"data: {\"choices\":[{\"delta\":{\"content\":\"nk>\\nsecret plan\\n</th\"}}]}\n\n"
	"data: {\"choices\":[{\"delta\":{\"content\":\"ink>\\n\\nThe answer.\"}}]}\n\n"
	"data: [DONE]\n\n";

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			       const char *version, const char *data, size_t *size, void **con_cls)
{
	(void)cls;
	(void)url;
	(void)method;
	(void)version;
	upload *u = *con_cls;
	if (!u) {
		*con_cls = calloc(1, sizeof *u);
		return MHD_YES;
	}
	if (*size) {
		size_t n = *size < sizeof u->buf - u->len - 1 ? *size : sizeof u->buf - u->len - 1;
		memcpy(u->buf + u->len, data, n);
		u->len += n;
		*size = 0;
		return MHD_YES;
	}
	requests++;
	memcpy(last_body, u->buf, u->len + 1);
	const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	snprintf(last_auth, sizeof last_auth, "%s", auth ? auth : "");
	switch (mode) {
	case PLAIN_SSE: return reply(c, 200, "text/event-stream", sse_plain);
	case TOOL_SSE: return reply(c, 200, "text/event-stream", sse_tool);
	case THINK_SSE: return reply(c, 200, "text/event-stream", sse_think);
	case FAIL_429_ONCE:
		if (requests == 1)
			return reply(c, 429, "application/json", "{\"error\":{\"message\":\"slow down\"}}");
		return reply(c, 200, "text/event-stream", sse_plain);
	case FAIL_500: return reply(c, 500, "application/json", "{\"error\":{\"message\":\"boom\"}}");
	case WHOLE_JSON:
		return reply(c, 200, "application/json",
			     "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"whole\"},"
			     "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_"
			     "tokens\":1}}");
	case BAD_JSON: return reply(c, 200, "text/event-stream", "data: {not json\n\n");
	case SLOW: sleep(3); return reply(c, 200, "text/event-stream", sse_plain);
	case BAD_REQUEST:
		return reply(c, 400, "application/json",
			     "{\"error\":{\"message\":\"messages must not be empty\"}}");
	case AUTH: return reply(c, 401, "application/json", "{\"error\":{\"message\":\"bad key\"}}");
	}
	return MHD_NO;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
	(void)cls;
	(void)c;
	(void)t;
	free(*con_cls);
	*con_cls = NULL;
}

static int setup(void **state)
{
	(void)state;
	server = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
				  NULL, handler, NULL, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
				  MHD_OPTION_END);
	if (!server)
		return -1;
	port = MHD_get_daemon_info(server, MHD_DAEMON_INFO_BIND_PORT)->port;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	MHD_stop_daemon(server);
	return 0;
}

static engine_remote *remote(const char *key, long timeout)
{
	char url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%u/v1", port);
	engine_remote_config cfg = {.url = url,
				    .model = "big",
				    .api_key = key,
				    .timeout_s = timeout,
				    .backoff_ms = 10,
				    .max_retries = 2};
	engine_remote *r;
	assert_int_equal(engine_remote_new(&r, &cfg), 0);
	return r;
}

static char streamed[1024];
static int on_text(void *cls, const char *p, size_t n)
{
	(void)cls;
	strncat(streamed, p, n < sizeof streamed - strlen(streamed) - 1 ? n : 0);
	return 0;
}

static json_t *messages(void)
{
	return json_pack("[{s:s, s:s}, {s:s, s:s, s:[{s:s, s:{s:s}}]}, {s:s, s:s}]", "role", "user",
			 "content", "hi", "role", "assistant", "content", "", "tool_calls", "name",
			 "calculator", "arguments", "expression", "1+1", "role", "tool", "content",
			 "{\"ok\": true, \"result\": \"2\"}");
}

static void test_streamed_answer_and_request_shape(void **state)
{
	(void)state;
	mode = PLAIN_SSE;
	requests = 0;
	streamed[0] = '\0';
	engine_remote *r = remote("sk-test-123", 10);
	json_t *msgs = messages();
	engine_chat_request req = {.messages = msgs,
				   .max_tokens = 50,
				   .temperature = 0,
				   .has_seed = true,
				   .seed = 7,
				   .on_text = on_text};
	engine_chat_response out;
	assert_int_equal(engine_remote_chat(r, &req, &out), 0);
	assert_string_equal(out.content, "Hello there");
	assert_string_equal(streamed, "Hello there");
	assert_int_equal(out.prompt_tokens, 12);
	assert_int_equal(out.completion_tokens, 3);
	assert_string_equal(out.finish_reason, "stop");
	assert_null(out.tool_calls);
	assert_string_equal(last_auth, "Bearer sk-test-123");
	json_t *sent;
	assert_int_equal(ag_json_parse(&sent, last_body, strlen(last_body)), 0);
	assert_string_equal(json_string_value(json_object_get(sent, "model")), "big");
	assert_true(json_is_true(json_object_get(sent, "stream")));
	assert_int_equal(json_integer_value(json_object_get(sent, "seed")), 7);
	json_t *call = json_array_get(
		json_object_get(json_array_get(json_object_get(sent, "messages"), 1), "tool_calls"), 0);
	assert_string_equal(json_string_value(json_object_get(call, "id")), "call_0");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(call, "function"), "arguments")),
		"{\"expression\":\"1+1\"}");
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(sent, "messages"), 2), "tool_call_id")),
			    "call_0");
	json_decref(sent);
	engine_chat_response_clear(&out);
	json_decref(msgs);
	engine_remote_free(r);
}

static void test_tool_call_deltas_and_think(void **state)
{
	(void)state;
	engine_remote *r = remote(NULL, 10);
	json_t *msgs = messages();
	engine_chat_request req = {.messages = msgs, .temperature = -1, .on_text = on_text};
	engine_chat_response out;
	mode = TOOL_SSE;
	assert_int_equal(engine_remote_chat(r, &req, &out), 0);
	assert_int_equal(json_array_size(out.tool_calls), 1);
	json_t *c = json_array_get(out.tool_calls, 0);
	assert_string_equal(json_string_value(json_object_get(c, "name")), "calculator");
	assert_string_equal(json_string_value(json_object_get(json_object_get(c, "arguments"), "expression")),
			    "2+2");
	assert_string_equal(out.finish_reason, "tool_calls");
	assert_string_equal(last_auth, "");
	engine_chat_response_clear(&out);

	mode = THINK_SSE;
	streamed[0] = '\0';
	assert_int_equal(engine_remote_chat(r, &req, &out), 0);
	assert_string_equal(out.content, "The answer.");
	assert_string_equal(streamed, "The answer.");
	engine_chat_response_clear(&out);
	json_decref(msgs);
	engine_remote_free(r);
}

static void test_errors_and_retries(void **state)
{
	(void)state;
	engine_remote *r = remote("sk-secret-key", 1);
	json_t *msgs = messages();
	engine_chat_request req = {.messages = msgs, .temperature = -1};
	engine_chat_response out;

	mode = FAIL_429_ONCE;
	requests = 0;
	assert_int_equal(engine_remote_chat(r, &req, &out), 0);
	assert_int_equal(requests, 2);
	engine_chat_response_clear(&out);

	mode = FAIL_500;
	requests = 0;
	assert_int_equal(engine_remote_chat(r, &req, &out), AG_EIO);
	assert_int_equal(requests, 3); /* first try and two retries */
	assert_non_null(strstr(ag_error_last(), "boom"));
	assert_null(strstr(ag_error_last(), "sk-secret-key"));

	mode = BAD_REQUEST;
	requests = 0;
	assert_int_equal(engine_remote_chat(r, &req, &out), AG_EINVAL);
	assert_int_equal(requests, 1);
	assert_non_null(strstr(ag_error_last(), "messages must not be empty"));

	mode = AUTH;
	assert_int_equal(engine_remote_chat(r, &req, &out), AG_EUNAUTH);
	assert_null(strstr(ag_error_last(), "sk-secret-key"));

	mode = BAD_JSON;
	assert_int_equal(engine_remote_chat(r, &req, &out), AG_ECORRUPT);

	mode = WHOLE_JSON;
	assert_int_equal(engine_remote_chat(r, &req, &out), 0);
	assert_string_equal(out.content, "whole");
	assert_int_equal(out.prompt_tokens, 5);
	engine_chat_response_clear(&out);

	mode = SLOW;
	assert_int_equal(engine_remote_chat(r, &req, &out), AG_ETIMEOUT);

	engine_remote_config bad = {.url = "ftp://x"};
	engine_remote *r2;
	assert_int_equal(engine_remote_new(&r2, &bad), AG_EINVAL);
	json_decref(msgs);
	engine_remote_free(r);
}

static int stop_after_first(void *cls, const char *p, size_t n)
{
	(void)cls;
	(void)p;
	(void)n;
	return 1;
}

static void test_caller_can_stop(void **state)
{
	(void)state;
	engine_remote *r = remote(NULL, 10);
	json_t *msgs = messages();
	engine_chat_request req = {.messages = msgs, .temperature = -1, .on_text = stop_after_first};
	engine_chat_response out;
	mode = PLAIN_SSE;
	assert_int_equal(engine_remote_chat(r, &req, &out), 0);
	assert_string_equal(out.finish_reason, "cancelled");
	assert_string_equal(out.content, "Hel");
	engine_chat_response_clear(&out);
	json_decref(msgs);
	engine_remote_free(r);
}

int main(void)
{
	ag_alloc_init();
	ag_log_set_level(AG_LOG_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_streamed_answer_and_request_shape),
		cmocka_unit_test(test_tool_call_deltas_and_think),
		cmocka_unit_test(test_errors_and_retries),
		cmocka_unit_test(test_caller_can_stop),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
