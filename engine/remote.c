/*
 * The remote backend: chat completions from an OpenAI-compatible server
 * (vLLM, llama.cpp's server, AI21's API, another agentd) over libcurl, so a
 * bigger model elsewhere can stand in for the local engine.
 *
 * Requests always stream: answer text reaches the caller as it arrives, and
 * a caller that stops reading (on_text returns nonzero) ends the transfer.
 * Tool-call deltas are put back together by index. A 429 or 5xx before any
 * text arrived is retried with doubling back-off, a bounded number of times.
 * The API key goes only into the Authorization header, never into a log or
 * an error message.
 */
#include "engine/engine.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MAX_BODY_BYTES (8u << 20) /* a non-streamed answer or error body */
#define MAX_LINE_BYTES (4u << 20) /* one SSE line */
#define MAX_TOOL_CALLS 16

struct engine_remote {
	char *url;
	char *model;
	char *auth_header; /* "Authorization: Bearer ..." or NULL */
	long connect_timeout_s, timeout_s, backoff_ms;
	int max_retries;
};

void engine_chat_response_clear(engine_chat_response *r)
{
	ag_free(r->content);
	ag_free(r->reasoning);
	json_decref(r->tool_calls);
	memset(r, 0, sizeof *r);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

int engine_remote_new(engine_remote **out, const engine_remote_config *cfg)
{
	*out = NULL;
	if (!cfg->url || (strncmp(cfg->url, "http://", 7) != 0 && strncmp(cfg->url, "https://", 8) != 0))
		return ag_error_set(AG_EINVAL, "remote URL must start with http:// or https://");
	pthread_once(&curl_once, curl_init_once);
	engine_remote *r = ag_calloc(1, sizeof *r);
	if (!r)
		return ag_error_set(AG_ENOMEM, "out of memory creating the remote backend");
	ag_buf url = AG_BUF_INIT;
	int rc = ag_buf_puts(&url, cfg->url);
	while (!rc && url.len && url.data[url.len - 1] == '/')
		url.data[--url.len] = '\0';
	if (!rc && !strstr(url.data, "/chat/completions"))
		rc = ag_buf_puts(&url,
				 strstr(url.data, "/v1") ? "/chat/completions" : "/v1/chat/completions");
	r->url = rc ? NULL : ag_buf_detach(&url, NULL);
	r->model = ag_strdup(cfg->model && *cfg->model ? cfg->model : "default");
	if (cfg->api_key && *cfg->api_key) {
		ag_buf h = AG_BUF_INIT;
		if (ag_buf_printf(&h, "Authorization: Bearer %s", cfg->api_key) == 0)
			r->auth_header = ag_buf_detach(&h, NULL);
		if (!r->auth_header)
			rc = AG_ENOMEM;
	}
	ag_buf_free(&url);
	if (rc || !r->url || !r->model) {
		engine_remote_free(r);
		return ag_error_set(AG_ENOMEM, "out of memory creating the remote backend");
	}
	r->connect_timeout_s = cfg->connect_timeout_s > 0 ? cfg->connect_timeout_s : 10;
	r->timeout_s = cfg->timeout_s > 0 ? cfg->timeout_s : 600;
	r->max_retries = cfg->max_retries > 0 ? cfg->max_retries : 3;
	r->backoff_ms = cfg->backoff_ms > 0 ? cfg->backoff_ms : 500;
	*out = r;
	return 0;
}

void engine_remote_free(engine_remote *r)
{
	if (!r)
		return;
	if (r->auth_header) {
		memset(r->auth_header, 0, strlen(r->auth_header));
		ag_free(r->auth_header);
	}
	ag_free(r->url);
	ag_free(r->model);
	ag_free(r);
}

/* ------------------------------------------------------- request body */

/* Our messages carry tool calls as {name, arguments}; the protocol wants ids and
 * arguments as a JSON string, and tool answers naming the call they answer. */
static json_t *protocol_messages(const json_t *messages)
{
	json_t *out = json_array();
	int call_no = 0, answered = 0;
	size_t i;
	json_t *m;
	json_array_foreach(messages, i, m)
	{
		json_t *c = json_deep_copy(m);
		if (!c || json_array_append_new(out, c)) {
			json_decref(out);
			return NULL;
		}
		const char *role = json_string_value(json_object_get(m, "role"));
		json_t *calls = json_object_get(c, "tool_calls");
		if (role && strcmp(role, "assistant") == 0 && json_is_array(calls)) {
			size_t j;
			json_t *call;
			json_array_foreach(calls, j, call)
			{
				if (json_object_get(call, "function"))
					continue; /* already in the protocol's shape */
				char id[32], *args = NULL;
				snprintf(id, sizeof id, "call_%d", call_no++);
				const json_t *a = json_object_get(call, "arguments");
				if (json_is_string(a))
					args = ag_strdup(json_string_value(a));
				else if (ag_json_dump(&args, NULL, a ? a : json_object()))
					args = NULL;
				json_t *fn =
					args ? json_pack("{s:s, s:s, s:{s:O, s:s}}", "id", id, "type",
							 "function", "function", "name",
							 json_object_get(call, "name"), "arguments", args)
					     : NULL;
				ag_free(args);
				if (!fn || json_array_set_new(calls, j, fn)) {
					json_decref(out);
					return NULL;
				}
			}
		} else if (role && strcmp(role, "tool") == 0 && !json_object_get(c, "tool_call_id")) {
			char id[32];
			snprintf(id, sizeof id, "call_%d", answered < call_no ? answered : call_no - 1);
			answered++;
			json_object_set_new(c, "tool_call_id", json_string(id));
		}
		if (json_is_null(json_object_get(c, "content")))
			json_object_set_new(c, "content", json_string(""));
	}
	return out;
}

static char *request_body(const engine_remote *r, const engine_chat_request *req)
{
	json_t *msgs = protocol_messages(req->messages);
	if (!msgs)
		return NULL;
	json_t *b = json_pack("{s:s, s:o, s:b, s:{s:b}}", "model", r->model, "messages", msgs, "stream", 1,
			      "stream_options", "include_usage", 1);
	if (!b)
		return NULL;
	if (req->tools && json_array_size(req->tools))
		json_object_set(b, "tools", (json_t *)req->tools);
	if (req->tools && json_array_size(req->tools) && req->tool_choice)
		json_object_set(b, "tool_choice", (json_t *)req->tool_choice);
	if (req->response_format)
		json_object_set(b, "response_format", (json_t *)req->response_format);
	if (req->stop)
		json_object_set(b, "stop", (json_t *)req->stop);
	if (req->max_tokens > 0)
		json_object_set_new(b, "max_tokens", json_integer(req->max_tokens));
	if (req->temperature >= 0)
		json_object_set_new(b, "temperature", json_real(req->temperature));
	if (req->top_p > 0)
		json_object_set_new(b, "top_p", json_real(req->top_p));
	if (req->has_seed)
		json_object_set_new(b, "seed", json_integer((json_int_t)(req->seed & 0x7fffffffffffffffULL)));
	char *s = NULL;
	if (ag_json_dump(&s, NULL, b))
		s = NULL;
	json_decref(b);
	return s;
}

/* ----------------------------------------------------------- streaming */

typedef struct stream_state {
	const engine_chat_request *req;
	CURL *curl;
	long status;    /* HTTP status, once known */
	bool sse;       /* the answer is an event stream */
	ag_buf line;    /* the SSE line being assembled */
	ag_buf body;    /* a whole (non-streamed or error) body */
	ag_buf content; /* the answer so far, reasoning included */
	size_t emitted; /* bytes of content already handed to on_text */
	bool in_think;  /* inside a leading <think> block: hold text back */
	bool stopped;   /* the caller asked to stop */
	bool done;      /* [DONE] seen */
	int bad;        /* AG_ECORRUPT / AG_ENOMEM while parsing */
	struct {
		ag_buf name, args;
	} calls[MAX_TOOL_CALLS];
	int ncalls;
	long prompt_tokens, completion_tokens;
	char finish[16];
} stream_state;

/* Hands newly arrived answer text to the caller, holding back a leading <think> block. */
static void emit_text(stream_state *s)
{
	const char *c = s->content.data ? s->content.data : "";
	size_t n = s->content.len;
	if (s->emitted == 0 && !s->in_think) {
		if (n < 7 && strncmp(c, "<think>", n) == 0)
			return; /* might still become "<think>" */
		if (n >= 7 && strncmp(c, "<think>", 7) == 0)
			s->in_think = true;
	}
	if (s->in_think) {
		const char *end = strstr(c, "</think>");
		if (!end)
			return;
		s->in_think = false;
		s->emitted = (size_t)(end - c) + 8;
		while (s->emitted < n && (c[s->emitted] == '\n' || c[s->emitted] == ' '))
			s->emitted++;
	}
	if (s->emitted < n && s->req->on_text && !s->stopped) {
		if (s->req->on_text(s->req->on_text_cls, c + s->emitted, n - s->emitted))
			s->stopped = true;
	}
	s->emitted = n;
}

static void take_chunk(stream_state *s, const char *data, size_t len)
{
	json_t *v;
	if (ag_json_parse(&v, data, len)) {
		s->bad = ag_error_code() == AG_ENOMEM ? AG_ENOMEM : AG_ECORRUPT;
		return;
	}
	json_t *usage = json_object_get(v, "usage");
	if (json_is_object(usage)) {
		s->prompt_tokens = (long)json_integer_value(json_object_get(usage, "prompt_tokens"));
		s->completion_tokens = (long)json_integer_value(json_object_get(usage, "completion_tokens"));
	}
	json_t *choice = json_array_get(json_object_get(v, "choices"), 0);
	const char *fin = json_string_value(json_object_get(choice, "finish_reason"));
	if (fin)
		snprintf(s->finish, sizeof s->finish, "%s", fin);
	json_t *delta = json_object_get(choice, "delta");
	if (!delta)
		delta = json_object_get(choice, "message"); /* a server that sent a whole message */
	const char *text = json_string_value(json_object_get(delta, "content"));
	if (text && *text) {
		ag_buf_puts(&s->content, text);
		emit_text(s);
	}
	size_t i;
	json_t *tc;
	json_array_foreach(json_object_get(delta, "tool_calls"), i, tc)
	{
		json_t *idx = json_object_get(tc, "index");
		int k = json_is_integer(idx) ? (int)json_integer_value(idx) : (int)i;
		if (k < 0 || k >= MAX_TOOL_CALLS) {
			s->bad = AG_ECORRUPT;
			break;
		}
		if (k >= s->ncalls)
			s->ncalls = k + 1;
		json_t *fn = json_object_get(tc, "function");
		const char *name = json_string_value(json_object_get(fn, "name"));
		json_t *args = json_object_get(fn, "arguments");
		if (name)
			ag_buf_puts(&s->calls[k].name, name);
		if (json_is_string(args))
			ag_buf_puts(&s->calls[k].args, json_string_value(args));
		else if (json_is_object(args)) {
			char *a;
			if (ag_json_dump(&a, NULL, args) == 0) {
				ag_buf_puts(&s->calls[k].args, a);
				ag_free(a);
			}
		}
	}
	json_decref(v);
}

static void take_line(stream_state *s)
{
	char *l = s->line.data ? s->line.data : "";
	size_t n = s->line.len;
	if (n && l[n - 1] == '\r')
		l[--n] = '\0';
	if (n >= 5 && strncmp(l, "data:", 5) == 0) {
		const char *d = l + 5;
		while (*d == ' ')
			d++;
		if (strcmp(d, "[DONE]") == 0)
			s->done = true;
		else if (*d)
			take_chunk(s, d, strlen(d));
	}
	ag_buf_clear(&s->line);
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	stream_state *s = userdata;
	size_t n = size * nmemb;
	if (s->status == 0) {
		curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &s->status);
		char *ct = NULL;
		curl_easy_getinfo(s->curl, CURLINFO_CONTENT_TYPE, &ct);
		s->sse = s->status == 200 && ct && strstr(ct, "text/event-stream");
	}
	if (!s->sse) {
		if (s->body.len + n > MAX_BODY_BYTES) {
			s->bad = AG_ELIMIT;
			return 0;
		}
		return ag_buf_append(&s->body, ptr, n) ? 0 : n;
	}
	for (size_t i = 0; i < n; i++) {
		if (ptr[i] == '\n') {
			take_line(s);
		} else if (s->line.len >= MAX_LINE_BYTES || ag_buf_putc(&s->line, ptr[i])) {
			s->bad = AG_ELIMIT;
			return 0;
		}
		if (!s->stopped && s->req->should_stop && s->req->should_stop(s->req->on_text_cls))
			s->stopped = true;
		if (s->stopped || s->bad)
			return 0; /* ends the transfer */
	}
	return n;
}

static void state_free(stream_state *s)
{
	ag_buf_free(&s->line);
	ag_buf_free(&s->body);
	ag_buf_free(&s->content);
	for (int i = 0; i < MAX_TOOL_CALLS; i++) {
		ag_buf_free(&s->calls[i].name);
		ag_buf_free(&s->calls[i].args);
	}
}

/* The server's own words from an error body, trimmed, for the caller's message. */
static void server_message(const stream_state *s, char *out, size_t n)
{
	json_t *v = NULL;
	const char *msg = NULL;
	if (s->body.len && ag_json_parse(&v, s->body.data, s->body.len) == 0) {
		json_t *e = json_object_get(v, "error");
		msg = json_is_string(e) ? json_string_value(e)
					: json_string_value(json_object_get(e, "message"));
	}
	snprintf(out, n, "%s", msg ? msg : (s->body.len ? "(no message)" : "(empty body)"));
	json_decref(v);
}

/* A whole non-streamed answer, for servers that ignore "stream". */
static void take_whole_body(stream_state *s)
{
	if (!s->body.len) {
		s->bad = AG_ECORRUPT;
		return;
	}
	take_chunk(s, s->body.data, s->body.len);
}

static int finish_response(stream_state *s, engine_chat_response *out)
{
	engine_chat_parsed *parsed = NULL;
	int rc = engine_chat_parse(&parsed, s->content.data ? s->content.data : "", s->content.len);
	if (rc)
		return rc;
	out->content = ag_strdup(parsed->content);
	out->reasoning = parsed->reasoning ? ag_strdup(parsed->reasoning) : NULL;
	out->tool_calls = json_array();
	if (!out->content || !out->tool_calls) {
		engine_chat_parsed_free(parsed);
		return ag_error_set(AG_ENOMEM, "out of memory reading the remote answer");
	}
	/* Calls the server parsed itself, then any the model wrote as text. */
	for (int i = 0; i < s->ncalls; i++) {
		json_t *args = NULL;
		if (s->calls[i].args.len &&
		    ag_json_parse(&args, s->calls[i].args.data, s->calls[i].args.len)) {
			engine_chat_parsed_free(parsed);
			return ag_error_set(AG_ECORRUPT,
					    "the remote model's tool call %d has arguments that are not JSON",
					    i);
		}
		json_array_append_new(out->tool_calls,
				      json_pack("{s:s, s:o}", "name",
						s->calls[i].name.data ? s->calls[i].name.data : "",
						"arguments", args ? args : json_object()));
	}
	json_array_extend(out->tool_calls, parsed->tool_calls);
	engine_chat_parsed_free(parsed);
	if (json_array_size(out->tool_calls) == 0) {
		json_decref(out->tool_calls);
		out->tool_calls = NULL;
	}
	out->prompt_tokens = s->prompt_tokens;
	out->completion_tokens = s->completion_tokens;
	snprintf(out->finish_reason, sizeof out->finish_reason, "%s",
		 s->stopped ? "cancelled" : (s->finish[0] ? s->finish : "stop"));
	return 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

int engine_remote_chat(engine_remote *r, const engine_chat_request *req, engine_chat_response *out)
{
	memset(out, 0, sizeof *out);
	char *body = request_body(r, req);
	if (!body)
		return ag_error_set(AG_ENOMEM, "out of memory building the remote request");
	int rc = 0;
	long delay = r->backoff_ms;
	for (int attempt = 0;; attempt++) {
		stream_state s;
		memset(&s, 0, sizeof s);
		s.req = req;
		CURL *c = curl_easy_init();
		struct curl_slist *h = NULL;
		if (!c) {
			rc = ag_error_set(AG_ENOMEM, "could not create a curl handle");
			break;
		}
		s.curl = c;
		h = curl_slist_append(h, "Content-Type: application/json");
		h = curl_slist_append(h, "Accept: text/event-stream");
		if (r->auth_header)
			h = curl_slist_append(h, r->auth_header);
		curl_easy_setopt(c, CURLOPT_URL, r->url);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, r->connect_timeout_s);
		curl_easy_setopt(c, CURLOPT_TIMEOUT, r->timeout_s);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
		CURLcode cc = curl_easy_perform(c);
		long status = s.status;
		if (!status)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		curl_slist_free_all(h);
		curl_easy_cleanup(c);

		bool retryable = false;
		if (s.stopped) {
			rc = finish_response(&s, out);
		} else if (s.bad) {
			rc = ag_error_set(s.bad,
					  s.bad == AG_ELIMIT
						  ? "the remote answer is too large"
						  : "the remote server's answer is not the chat protocol");
		} else if (cc == CURLE_OPERATION_TIMEDOUT) {
			rc = ag_error_set(AG_ETIMEOUT, "the remote model did not answer within %ld s",
					  r->timeout_s);
		} else if (cc != CURLE_OK) {
			rc = ag_error_set(AG_EIO, "remote model: %s", curl_easy_strerror(cc));
			retryable = cc == CURLE_COULDNT_CONNECT && s.content.len == 0;
		} else if (status == 200) {
			if (!s.sse)
				take_whole_body(&s);
			rc = s.bad ? ag_error_set(AG_ECORRUPT,
						  "the remote server's answer is not the chat protocol")
				   : finish_response(&s, out);
		} else {
			char msg[300];
			server_message(&s, msg, sizeof msg);
			if (status == 429) {
				rc = ag_error_set(AG_EBUSY, "the remote model is overloaded (429): %s", msg);
				retryable = true;
			} else if (status >= 500) {
				rc = ag_error_set(AG_EIO, "the remote model failed (%ld): %s", status, msg);
				retryable = true;
			} else if (status == 401 || status == 403) {
				rc = ag_error_set(AG_EUNAUTH,
						  "the remote model refused the API key (%ld): %s", status,
						  msg);
			} else {
				rc = ag_error_set(AG_EINVAL,
						  "the remote model rejected the request (%ld): %s", status,
						  msg);
			}
		}
		bool any_text = s.emitted > 0;
		state_free(&s);
		if (rc && retryable && !any_text && attempt < r->max_retries) {
			ag_warn("remote model: %s; retrying in %ld ms", ag_error_last(), delay);
			sleep_ms(delay);
			delay *= 2;
			engine_chat_response_clear(out);
			continue;
		}
		break;
	}
	ag_free(body);
	if (rc)
		engine_chat_response_clear(out);
	return rc;
}
