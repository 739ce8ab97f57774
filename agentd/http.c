/*
 * The HTTP layer on libmicrohttpd: a thread pool with explicit limits (body
 * size, connection memory, idle timeout, per-address and total connection
 * caps), request ids, bearer-key authentication, routing to handlers, JSON
 * error bodies, metrics, streamed responses and a graceful stop that lets
 * in-flight requests finish.
 *
 * A request's life: the first callback creates its state (arena, body
 * buffer) and rejects an announced oversized body at once; upload callbacks
 * append to the body; the final callback authenticates, routes and runs the
 * handler on this pool thread, then queues the response. Completion (or a
 * dropped client) frees the state and records metrics.
 */
#include "agentd/daemon.h"
#include "agentd/audit.h"
#include "agentd/auth.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct http_request {
	agentd_ctx *ctx;
	ag_arena *arena;
	ag_buf body;
	bool too_large;
	bool body_oom;
	bool responded;
	int status;
	int64_t start_ns;
	const char *method;
	const char *route; /* pattern for metrics */
	char request_id[40];
} http_request;

typedef struct http_stream {
	agentd_ctx *ctx;
	struct MHD_Connection *conn;
	agentd_stream_fn fn;
	void *cls;
	void (*free_fn)(void *);
	bool suspended;
	struct http_stream *next_suspended;
} http_stream;

/* Streams waiting for data are suspended and resumed by a ticker thread, so
 * a slow producer never busy-loops a pool thread. */
static pthread_mutex_t suspended_lock = PTHREAD_MUTEX_INITIALIZER;
static http_stream *suspended_head;
static pthread_t ticker_thread;
static atomic_bool ticker_run;

/* How far past the body limit an upload is still drained to answer 413 cleanly. */
#define AGENTD_DRAIN_BYTES ((size_t)64 << 20)

static const char oom_body[] = "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}";
static char oom_sentinel;

/* ------------------------------------------------------------ responses */

int agentd_reply_text(agentd_response *res, int status, const char *content_type, const char *data,
		      size_t len)
{
	char *copy = ag_malloc(len + 1);
	if (!copy)
		return ag_error_set(AG_ENOMEM, "out of memory building a response");
	memcpy(copy, data, len);
	copy[len] = '\0';
	ag_free(res->body);
	res->body = copy;
	res->body_len = len;
	res->status = status;
	res->content_type = content_type;
	return 0;
}

int agentd_reply_json(agentd_response *res, int status, json_t *v)
{
	if (!v)
		return ag_error_set(AG_ENOMEM, "out of memory building a response");
	char *s;
	size_t len;
	int rc = ag_json_dump(&s, &len, v);
	json_decref(v);
	if (rc)
		return rc;
	ag_free(res->body);
	res->body = s;
	res->body_len = len;
	res->status = status;
	res->content_type = "application/json";
	return 0;
}

int agentd_reply_error(agentd_response *res, int code, const char *message)
{
	json_t *v = json_pack("{s:{s:s, s:s}}", "error", "code", ag_error_name(code), "message",
			      message && *message ? message : ag_error_name(code));
	return agentd_reply_json(res, ag_error_http_status(code), v);
}

int agentd_reply_header(agentd_response *res, const char *name, const char *value)
{
	if (res->nheaders >= 8)
		return ag_error_set(AG_ELIMIT, "too many response headers");
	char *v = ag_strdup(value);
	if (!v)
		return ag_error_set(AG_ENOMEM, "out of memory adding a header");
	res->header_names[res->nheaders] = name;
	res->header_values[res->nheaders++] = v;
	return 0;
}

void agentd_reply_stream(agentd_response *res, const char *content_type, agentd_stream_fn fn, void *cls,
			 void (*free_fn)(void *))
{
	res->status = 200;
	res->content_type = content_type;
	res->stream = fn;
	res->stream_cls = cls;
	res->stream_free = free_fn;
}

static void response_clear(agentd_response *res)
{
	ag_free(res->body);
	for (int i = 0; i < res->nheaders; i++)
		ag_free(res->header_values[i]);
	if (res->stream && res->stream_free)
		res->stream_free(res->stream_cls);
	memset(res, 0, sizeof *res);
}

/* ------------------------------------------------------------- requests */

const char *agentd_req_param(const agentd_request *r, const char *name)
{
	for (int i = 0; i < r->nparams; i++)
		if (strcmp(r->param_names[i], name) == 0)
			return r->param_values[i];
	return NULL;
}

const char *agentd_req_query(const agentd_request *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *agentd_req_header(const agentd_request *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

int agentd_req_json(const agentd_request *r, json_t **out)
{
	*out = NULL;
	if (!r->body || r->body_len == 0)
		return ag_error_set(AG_EINVAL, "request body must be a JSON object");
	json_t *v;
	int rc = ag_json_parse(&v, r->body, r->body_len);
	if (rc)
		return rc;
	if (!json_is_object(v)) {
		json_decref(v);
		return ag_error_set(AG_EINVAL, "request body must be a JSON object");
	}
	*out = v;
	return 0;
}

int agentd_require_role(const agentd_request *r, unsigned roles)
{
	if (!r->principal)
		return ag_error_set(AG_EUNAUTH, "an API key is required");
	if (!(r->principal->role & roles))
		return ag_error_set(AG_EDENIED, "role '%s' may not do this", r->principal->role_name);
	return 0;
}

const struct agentd_config *agentd_ctx_config(const agentd_ctx *ctx) { return ctx->cfg; }
const char *agentd_ctx_data_dir(const agentd_ctx *ctx) { return ctx->data_dir; }

/* ---------------------------------------------------------- MHD glue */

static enum MHD_Result queue_static(struct MHD_Connection *conn, unsigned status, const char *body)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "application/json");
	enum MHD_Result ok = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ok;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	http_stream *s = cls;
	long n = s->fn(s->cls, buf, max);
	if (n < 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n == 0) {
		/* Suspend first, then publish: the ticker can only resume what is listed. */
		MHD_suspend_connection(s->conn);
		pthread_mutex_lock(&suspended_lock);
		s->suspended = true;
		s->next_suspended = suspended_head;
		suspended_head = s;
		pthread_mutex_unlock(&suspended_lock);
		return 0;
	}
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	http_stream *s = cls;
	pthread_mutex_lock(&suspended_lock);
	for (http_stream **p = &suspended_head; *p; p = &(*p)->next_suspended) {
		if (*p == s) {
			*p = s->next_suspended;
			break;
		}
	}
	pthread_mutex_unlock(&suspended_lock);
	if (s->free_fn)
		s->free_fn(s->cls);
	ag_free(s);
}

static void resume_all(void)
{
	/* Detach the list under the lock, resume outside it: MHD takes its own locks. A listed
	 * stream cannot be freed before it is resumed, and after resuming it is not touched. */
	pthread_mutex_lock(&suspended_lock);
	http_stream *s = suspended_head;
	suspended_head = NULL;
	for (http_stream *t = s; t; t = t->next_suspended)
		t->suspended = false;
	pthread_mutex_unlock(&suspended_lock);
	while (s) {
		http_stream *next = s->next_suspended;
		MHD_resume_connection(s->conn);
		s = next;
	}
}

static void *ticker_main(void *arg)
{
	(void)arg;
	struct timespec ts = {0, 10 * 1000 * 1000};
	while (atomic_load(&ticker_run)) {
		nanosleep(&ts, NULL);
		resume_all();
	}
	return NULL;
}

static void add_common_headers(struct MHD_Response *r, const http_request *hr)
{
	MHD_add_response_header(r, "X-Request-Id", hr->request_id);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Cache-Control", "no-store");
}

static enum MHD_Result send_response(struct MHD_Connection *conn, http_request *hr, agentd_response *res)
{
	struct MHD_Response *r;
	if (res->stream) {
		http_stream *s = ag_calloc(1, sizeof *s);
		if (!s) {
			response_clear(res);
			hr->status = 503;
			return queue_static(conn, 503, oom_body);
		}
		s->ctx = hr->ctx;
		s->conn = conn;
		s->fn = res->stream;
		s->cls = res->stream_cls;
		s->free_fn = res->stream_free;
		res->stream = NULL; /* the stream owns cls now */
		r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, s, stream_free);
		if (!r) {
			stream_free(s);
			response_clear(res);
			return MHD_NO;
		}
	} else {
		r = MHD_create_response_from_buffer_with_free_callback(res->body_len, res->body, ag_free);
		if (!r) {
			response_clear(res);
			return MHD_NO;
		}
		res->body = NULL; /* MHD frees it */
	}
	if (res->content_type)
		MHD_add_response_header(r, "Content-Type", res->content_type);
	for (int i = 0; i < res->nheaders; i++)
		MHD_add_response_header(r, res->header_names[i], res->header_values[i]);
	add_common_headers(r, hr);
	hr->status = res->status ? res->status : 200;
	enum MHD_Result ok = MHD_queue_response(conn, (unsigned)hr->status, r);
	MHD_destroy_response(r);
	response_clear(res);
	return ok;
}

static void fill_error(agentd_response *res, int code, const char *msg)
{
	response_clear(res);
	if (agentd_reply_error(res, code, msg)) {
		/* Could not even build the error body: fall back to the fixed one. */
		res->body = NULL;
		res->status = 503;
	}
}

/* Resolves the Bearer key: 0 with the principal filled, or an AG_E* code. */
static int authenticate(struct MHD_Connection *conn, sqlite3 *db, agentd_principal *p)
{
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
	if (!h)
		return ag_error_set(AG_EUNAUTH, "missing API key: send 'Authorization: Bearer KEY'");
	if (strncasecmp(h, "Bearer ", 7) != 0)
		return ag_error_set(AG_EUNAUTH, "Authorization must be 'Bearer KEY'");
	h += 7;
	while (*h == ' ')
		h++;
	return agentd_auth_check_key(db, h, p);
}

/* One audit record per authenticated request: who, what, and the auth decision. */
static int audit_request(agentd_ctx *ctx, sqlite3 *db, const http_request *hr, const agentd_principal *p,
			 const char *method, const char *route, const char *decision, const char *reason)
{
	if (!ctx->audit)
		return 0;
	json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?}", "method", method, "route", route,
				 "request_id", hr->request_id, "decision", decision, "reason", reason, "role",
				 p ? p->role_name : NULL, "key_id", p ? p->key_id : NULL);
	if (!data)
		return ag_error_set(AG_ENOMEM, "out of memory auditing a request");
	return agentd_audit_record(ctx->audit, db, p ? "request" : "auth", p ? p->tenant : "",
				   p ? p->user : "", NULL, 0, data);
}

static void dispatch(struct MHD_Connection *conn, http_request *hr, const char *url, const char *method,
		     agentd_response *res)
{
	agentd_ctx *ctx = hr->ctx;
	agentd_match m;
	int rc = agentd_router_match(method, url, hr->arena, &m);
	if (rc) {
		fill_error(res, rc, ag_error_last());
		return;
	}
	if (!m.route) {
		if (m.path_known) {
			char msg[128];
			snprintf(msg, sizeof msg, "%s is not allowed here; use %s", method, m.allow);
			response_clear(res);
			if (agentd_reply_json(res, 405,
					      json_pack("{s:{s:s, s:s}}", "error", "code",
							"method_not_allowed", "message", msg)))
				res->status = 503;
			else
				agentd_reply_header(res, "Allow", m.allow);
			hr->route = "method_not_allowed";
		} else {
			fill_error(res, AG_ENOTFOUND, "no such route");
			hr->route = "unmatched";
		}
		return;
	}
	hr->route = m.route->pattern;

	agentd_request req = {0};
	agentd_principal principal;
	req.method = method;
	req.path = url;
	req.body = hr->body.data;
	req.body_len = hr->body.len;
	req.request_id = hr->request_id;
	req.arena = hr->arena;
	req.ctx = ctx;
	req.conn = conn;
	req.nparams = m.nparams;
	for (int i = 0; i < m.nparams; i++) {
		req.param_names[i] = m.param_names[i];
		req.param_values[i] = m.param_values[i];
	}
	rc = agentd_dbpool_acquire(ctx->pool, &req.db);
	if (rc) {
		fill_error(res, rc, ag_error_last());
		return;
	}
	if (m.route->roles != AGENTD_PUBLIC) {
		rc = authenticate(conn, req.db, &principal);
		if (rc) {
			char why[256];
			snprintf(why, sizeof why, "%s", ag_error_last());
			/* Say nothing about why a key failed beyond "invalid": no oracle for guessing. */
			fill_error(res, rc, rc == AG_EUNAUTH ? why : "could not check the API key");
			if (rc == AG_EUNAUTH) {
				agentd_reply_header(res, "WWW-Authenticate", "Bearer");
				audit_request(ctx, req.db, hr, NULL, method, m.route->pattern, "deny", why);
			}
			goto out;
		}
		req.principal = &principal;
		if (!(principal.role & m.route->roles)) {
			ag_error_set(AG_EDENIED, "role '%s' may not use %s %s", principal.role_name, method,
				     m.route->pattern);
			char why[256];
			snprintf(why, sizeof why, "%s", ag_error_last());
			fill_error(res, AG_EDENIED, why);
			audit_request(ctx, req.db, hr, &principal, method, m.route->pattern, "deny", why);
			goto out;
		}
		/* Fail closed: a request that cannot be recorded is not served. */
		if ((rc = audit_request(ctx, req.db, hr, &principal, method, m.route->pattern, "allow",
					NULL))) {
			fill_error(res, rc == AG_ENOMEM ? AG_ENOMEM : AG_EBUSY,
				   "could not record the request in the audit log");
			goto out;
		}
	}
	ag_error_clear();
	rc = m.route->handler(&req, res);
	if (rc) {
		if (rc == AG_ERR || rc == AG_EIO)
			ag_error("%s %s: %s", method, url, ag_error_last());
		fill_error(res, rc, ag_error_last());
	}
out:
	agentd_dbpool_release(ctx->pool, req.db);
}

static bool valid_request_id(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 36)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

static enum MHD_Result on_first_call(agentd_ctx *ctx, struct MHD_Connection *conn, const char *method,
				     void **con_cls)
{
	atomic_fetch_add(&ctx->inflight, 1);
	http_request *hr = ag_calloc(1, sizeof *hr);
	ag_arena *arena = hr ? ag_arena_new(4096) : NULL;
	if (!hr || !arena) {
		ag_free(hr);
		*con_cls = &oom_sentinel;
		return queue_static(conn, 503, oom_body);
	}
	hr->ctx = ctx;
	hr->arena = arena;
	hr->start_ns = ag_monotonic_ns();
	hr->method = method;
	hr->route = "unmatched";
	const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
	if (rid && valid_request_id(rid)) {
		snprintf(hr->request_id, sizeof hr->request_id, "%s", rid);
	} else {
		uint8_t raw[8];
		ag_random_bytes(raw, sizeof raw);
		ag_hex_encode(hr->request_id, raw, sizeof raw);
	}
	*con_cls = hr;

	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
	long long announced;
	if (cl && ag_parse_long(cl, 0, LLONG_MAX, &announced) == 0 && (size_t)announced > ctx->max_body) {
		hr->too_large = true;
		/* A moderately oversized body is read and dropped so that the client, still
		 * sending, gets the 413 rather than a reset connection. */
		if ((size_t)announced - ctx->max_body <= AGENTD_DRAIN_BYTES)
			return MHD_YES;
		/* Far too large: refuse before reading a byte of it; MHD closes the connection after. */
		hr->responded = true;
		agentd_response res = {0};
		char msg[128];
		snprintf(msg, sizeof msg, "request body of %lld bytes is over the limit of %zu", announced,
			 ctx->max_body);
		fill_error(&res, AG_ELIMIT, msg);
		return send_response(conn, hr, &res);
	}
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	(void)version;
	agentd_ctx *ctx = cls;
	if (!*con_cls)
		return on_first_call(ctx, conn, method, con_cls);
	if (*con_cls == &oom_sentinel) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	http_request *hr = *con_cls;
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (hr->too_large || hr->body_oom || hr->responded)
			return MHD_YES;
		if (hr->body.len + n > ctx->max_body) {
			hr->too_large = true;
			ag_buf_free(&hr->body);
		} else if (ag_buf_append(&hr->body, upload_data, n)) {
			hr->body_oom = true;
			ag_buf_free(&hr->body);
		}
		return MHD_YES;
	}
	if (hr->responded)
		return MHD_YES;
	hr->responded = true;
	ag_log_set_request_id(hr->request_id);

	agentd_response res = {0};
	long fail_at = 0;
	if (ctx->fault_injection) {
		const char *f = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Agentd-Fail-Alloc");
		long long v;
		if (f && ag_parse_long(f, 1, 1000000, &v) == 0)
			fail_at = (long)v;
	}
	long allocs_before = ag_alloc_thread_count();
	if (fail_at)
		ag_alloc_thread_fail_after(fail_at);

	if (hr->too_large) {
		char msg[128];
		snprintf(msg, sizeof msg, "request body is over the limit of %zu bytes", ctx->max_body);
		fill_error(&res, AG_ELIMIT, msg);
	} else if (hr->body_oom) {
		fill_error(&res, AG_ENOMEM, "out of memory reading the request body");
	} else {
		dispatch(conn, hr, url, method, &res);
	}
	long allocs = ag_alloc_thread_count() - allocs_before;
	ag_alloc_thread_fail_after(0);
	if (ctx->fault_injection) {
		char count[32];
		snprintf(count, sizeof count, "%ld", allocs);
		agentd_reply_header(&res, "X-Agentd-Allocs", count);
	}
	enum MHD_Result ok;
	if (!res.body && !res.stream) {
		hr->status = res.status ? res.status : 503;
		response_clear(&res);
		ok = queue_static(conn, (unsigned)hr->status, oom_body);
	} else {
		ok = send_response(conn, hr, &res);
	}
	ag_log_set_request_id(NULL);
	return ok;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)conn;
	agentd_ctx *ctx = cls;
	if (!*con_cls)
		return;
	if (*con_cls != &oom_sentinel) {
		http_request *hr = *con_cls;
		double secs = (double)(ag_monotonic_ns() - hr->start_ns) / 1e9;
		int status = hr->status ? hr->status : 499; /* 499: the client went away first */
		agentd_metrics_request(ctx->metrics, hr->method, hr->route, status, secs);
		ag_log_set_request_id(hr->request_id);
		ag_log(toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? AG_LOG_INFO : AG_LOG_WARN,
		       "%s %s %d %.1fms%s", hr->method, hr->route, status, secs * 1000,
		       toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection ended early)");
		ag_log_set_request_id(NULL);
		ag_buf_free(&hr->body);
		ag_arena_free(hr->arena);
		ag_free(hr);
	}
	*con_cls = NULL;
	atomic_fetch_sub(&ctx->inflight, 1);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	(void)conn;
	(void)socket_context;
	agentd_ctx *ctx = cls;
	agentd_metrics_connection(ctx->metrics, toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
}

static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256];
	const char *colon = strrchr(listen, ':');
	if (!colon || (size_t)(colon - listen) >= sizeof host)
		return ag_error_set(AG_EINVAL, "listen address '%s' must be HOST:PORT", listen);
	long long port;
	if (ag_parse_long(colon + 1, 0, 65535, &port))
		return ag_error_set(AG_EINVAL, "listen address '%s' has a bad port", listen);
	size_t hl = (size_t)(colon - listen);
	memcpy(host, listen, hl);
	host[hl] = '\0';
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	if (strcmp(host, "localhost") == 0)
		memcpy(host, "127.0.0.1", 10);
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		*len = sizeof *v4;
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		*len = sizeof *v6;
	} else {
		return ag_error_set(AG_EINVAL, "listen host '%s' must be an IP address", host);
	}
	return 0;
}

int agentd_http_start(agentd_ctx *ctx)
{
	long long threads, conn_mem, timeout, per_ip, max_conn, max_body;
	int rc;
	if ((rc = agentd_config_get_long(ctx->cfg, "threads", 1, 256, &threads)) ||
	    (rc = agentd_config_get_long(ctx->cfg, "connection_memory", 16384, 1LL << 30, &conn_mem)) ||
	    (rc = agentd_config_get_long(ctx->cfg, "connection_timeout", 1, 86400, &timeout)) ||
	    (rc = agentd_config_get_long(ctx->cfg, "per_ip_connections", 1, 100000, &per_ip)) ||
	    (rc = agentd_config_get_long(ctx->cfg, "max_connections", 1, 100000, &max_conn)) ||
	    (rc = agentd_config_get_long(ctx->cfg, "max_body_bytes", 0, 1LL << 40, &max_body)))
		return rc;
	ctx->max_body = (size_t)max_body;
	struct sockaddr_storage ss;
	socklen_t sslen;
	if ((rc = parse_listen(agentd_config_get(ctx->cfg, "listen"), &ss, &sslen)))
		return rc;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
			 MHD_USE_ITC | MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	atomic_store(&ticker_run, true);
	if (pthread_create(&ticker_thread, NULL, ticker_main, NULL) != 0)
		return ag_error_set(AG_ERR, "could not start the stream ticker thread");
	ctx->mhd = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, ctx, MHD_OPTION_SOCK_ADDR, &ss, MHD_OPTION_THREAD_POOL_SIZE,
		(unsigned)threads, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)conn_mem,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)timeout, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		(unsigned)per_ip, MHD_OPTION_CONNECTION_LIMIT, (unsigned)max_conn,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, ctx, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
		ctx, MHD_OPTION_END);
	if (!ctx->mhd) {
		atomic_store(&ticker_run, false);
		pthread_join(ticker_thread, NULL);
		return ag_error_set(AG_EIO, "could not listen on %s (address in use or not permitted?)",
				    agentd_config_get(ctx->cfg, "listen"));
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(ctx->mhd, MHD_DAEMON_INFO_BIND_PORT);
	ctx->port = info ? info->port : 0;
	return 0;
}

void agentd_http_stop(agentd_ctx *ctx, int64_t timeout_ms)
{
	if (!ctx->mhd)
		return;
	MHD_socket fd = MHD_quiesce_daemon(ctx->mhd);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	int64_t deadline = ag_monotonic_ns() + timeout_ms * 1000000;
	struct timespec ts = {0, 5 * 1000 * 1000};
	while (atomic_load(&ctx->inflight) > 0 && ag_monotonic_ns() < deadline)
		nanosleep(&ts, NULL);
	if (atomic_load(&ctx->inflight) > 0)
		ag_warn("stopping with %d requests still in flight after %lld ms",
			atomic_load(&ctx->inflight), (long long)timeout_ms);
	atomic_store(&ticker_run, false);
	pthread_join(ticker_thread, NULL);
	resume_all(); /* MHD must not be stopped with suspended connections */
	MHD_stop_daemon(ctx->mhd);
	ctx->mhd = NULL;
}
