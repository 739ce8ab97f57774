/*
 * Run and workflow routes: start agent runs and workflow runs, read them,
 * stream their events as server-sent events (resumable with Last-Event-ID),
 * approve or cancel them. Admins and auditors see every run of their tenant;
 * others see their own.
 */
#include "agentd/daemon.h"
#include "agentd/planner.h"

#include <stdio.h>
#include <string.h>

#define EVENTS_PER_POLL 64
#define IDLE_POLL_NS    (250 * 1000 * 1000LL) /* how often a run that is not executing is re-read */
#define KEEPALIVE_NS    (15 * 1000000000LL)

static bool sees_all_runs(const agentd_principal *p)
{
	return p->role & (AGENTD_ROLE_ADMIN | AGENTD_ROLE_AUDITOR);
}

/* Loads a run the caller may see. */
static int visible_run(agentd_request *req, const char *id, json_t **out)
{
	int rc = agentd_runs_get(req->db, req->principal->tenant, id, out);
	if (rc)
		return rc;
	if (!sees_all_runs(req->principal) &&
	    strcmp(json_string_value(json_object_get(*out, "user")), req->principal->user) != 0) {
		json_decref(*out);
		*out = NULL;
		return ag_error_set(AG_ENOTFOUND, "no run '%s'", id);
	}
	return 0;
}

/* ------------------------------------------------------------ streaming */

typedef struct event_stream {
	agentd_ctx *ctx;
	char tenant[64];
	char id[40];
	int64_t after; /* last event sent */
	int64_t last_poll_ns;
	int64_t last_send_ns;
	ag_buf pending; /* formatted bytes not yet handed to the connection */
	size_t pending_off;
	bool done; /* the run ended and every event was sent */
} event_stream;

static void event_stream_free(void *cls)
{
	event_stream *s = cls;
	ag_buf_free(&s->pending);
	ag_free(s);
}

static int format_events(event_stream *s, const json_t *events)
{
	size_t i;
	json_t *e;
	json_array_foreach(events, i, e)
	{
		json_t *data = json_object_get(e, "data");
		json_int_t seq = json_integer_value(json_object_get(e, "id"));
		json_t *payload = json_is_object(data) ? json_deep_copy(data) : json_object();
		if (!payload)
			return ag_error_set(AG_ENOMEM, "out of memory streaming events");
		json_object_set_new(payload, "sequence_number", json_integer(seq));
		json_object_set_new(payload, "run_id", json_string(s->id));
		char *text;
		int rc = ag_json_dump(&text, NULL, payload);
		json_decref(payload);
		if (rc)
			return rc;
		rc = ag_buf_printf(&s->pending, "id: %lld\nevent: %s\ndata: %s\n\n", (long long)seq,
				   json_string_value(json_object_get(e, "event")), text);
		ag_free(text);
		if (rc)
			return rc;
		s->after = seq;
	}
	return 0;
}

/* Reads new events into s->pending; sets s->done when the run is over and drained. */
static void poll_events(event_stream *s)
{
	int64_t now = ag_monotonic_ns();
	int64_t live_last = agentd_runs_last_event(s->ctx->runs, s->id);
	if (live_last >= 0 && live_last <= s->after && now - s->last_poll_ns < IDLE_POLL_NS * 4)
		return; /* executing, nothing new: no need to touch the database */
	if (live_last < 0 && now - s->last_poll_ns < IDLE_POLL_NS)
		return;
	s->last_poll_ns = now;
	sqlite3 *db;
	if (agentd_dbpool_acquire(s->ctx->pool, &db))
		return;
	json_t *events = NULL;
	bool finished = false;
	if (agentd_runs_events(db, s->tenant, s->id, s->after, EVENTS_PER_POLL, &events, &finished) == 0) {
		if (format_events(s, events))
			s->done = true; /* cannot format: end the stream rather than skip events */
		else if (finished && json_array_size(events) < EVENTS_PER_POLL)
			s->done = true;
		json_decref(events);
	} else if (ag_error_code() == AG_ENOTFOUND) {
		s->done = true;
	}
	agentd_dbpool_release(s->ctx->pool, db);
}

static long event_stream_read(void *cls, char *buf, size_t max)
{
	event_stream *s = cls;
	if (s->pending_off >= s->pending.len) {
		ag_buf_clear(&s->pending);
		s->pending_off = 0;
		if (s->done)
			return -1;
		if (atomic_load(&s->ctx->stopping))
			return -1;
		poll_events(s);
		int64_t now = ag_monotonic_ns();
		if (s->pending.len == 0 && now - s->last_send_ns > KEEPALIVE_NS)
			ag_buf_puts(&s->pending, ": keep-alive\n\n");
		if (s->pending.len == 0)
			return s->done ? -1 : 0;
	}
	size_t n = s->pending.len - s->pending_off;
	if (n > max)
		n = max;
	memcpy(buf, s->pending.data + s->pending_off, n);
	s->pending_off += n;
	s->last_send_ns = ag_monotonic_ns();
	return (long)n;
}

static int start_stream(agentd_request *req, agentd_response *res, const char *id, int64_t after)
{
	event_stream *s = ag_calloc(1, sizeof *s);
	if (!s)
		return ag_error_set(AG_ENOMEM, "out of memory starting an event stream");
	s->ctx = req->ctx;
	snprintf(s->tenant, sizeof s->tenant, "%s", req->principal->tenant);
	snprintf(s->id, sizeof s->id, "%s", id);
	s->after = after;
	s->last_send_ns = ag_monotonic_ns();
	s->last_poll_ns = 0;
	agentd_reply_stream(res, "text/event-stream", event_stream_read, s, event_stream_free);
	if (agentd_reply_header(res, "X-Run-Id", id))
		return ag_error_set(AG_ENOMEM, "out of memory starting an event stream");
	return 0;
}

/* ----------------------------------------------------------------- runs */

static int submit(agentd_request *req, agentd_response *res, const char *kind, json_t *request, bool stream)
{
	char *id;
	int rc = agentd_runs_submit(req->ctx->runs, req->db, kind, req->principal->tenant,
				    req->principal->user, req->principal->role_name, request, &id);
	if (rc)
		return rc;
	if (stream) {
		rc = start_stream(req, res, id, 0);
		ag_free(id);
		return rc;
	}
	json_t *run;
	rc = agentd_runs_get(req->db, req->principal->tenant, id, &run);
	ag_free(id);
	if (rc)
		return rc;
	return agentd_reply_json(res, 201, run);
}

static int post_runs(agentd_request *req, agentd_response *res)
{
	json_t *body;
	int rc = agentd_req_json(req, &body);
	if (rc)
		return rc;
	static const char *const allowed[] = {"input",  "collections", "tools", "requirements", "budget",
					      "stream", "user",        "k",     "memory",       NULL};
	const char *input = NULL;
	json_t *arr = NULL, *obj = NULL;
	bool stream = false;
	if ((rc = ag_json_check_keys(body, allowed)) ||
	    (rc = ag_json_get_string(body, "input", true, &input)) ||
	    (rc = ag_json_get_array(body, "collections", false, &arr)) ||
	    (rc = ag_json_get_array(body, "tools", false, &arr)) ||
	    (rc = ag_json_get_array(body, "requirements", false, &arr)) ||
	    (rc = ag_json_get_object(body, "budget", false, &obj)) ||
	    (rc = ag_json_get_bool(body, "stream", false, &stream)))
		goto out;
	if (!*input) {
		rc = ag_error_set(AG_EINVAL, "input must not be empty");
		goto out;
	}
	json_t *reqs = NULL;
	if ((rc = agentd_requirements_parse(json_object_get(body, "requirements"), &reqs)))
		goto out;
	json_decref(reqs);
	rc = submit(req, res, "agent", body, stream);
out:
	json_decref(body);
	return rc;
}

static int get_runs(agentd_request *req, agentd_response *res)
{
	const char *user = agentd_req_query(req, "user");
	const char *status = agentd_req_query(req, "status");
	const char *limit_s = agentd_req_query(req, "limit");
	long long limit = 50;
	if (limit_s && ag_parse_long(limit_s, 1, 500, &limit))
		return ag_error_wrap(AG_EINVAL, "limit");
	if (!sees_all_runs(req->principal))
		user = req->principal->user;
	json_t *list;
	int rc = agentd_runs_list(req->db, req->principal->tenant, user, status, (int)limit, &list);
	if (rc)
		return rc;
	return agentd_reply_json(res, 200, json_pack("{s:o}", "runs", list));
}

static int get_run(agentd_request *req, agentd_response *res)
{
	json_t *run;
	int rc = visible_run(req, agentd_req_param(req, "id"), &run);
	if (rc)
		return rc;
	return agentd_reply_json(res, 200, run);
}

static int get_run_events(agentd_request *req, agentd_response *res)
{
	const char *id = agentd_req_param(req, "id");
	json_t *run;
	int rc = visible_run(req, id, &run);
	if (rc)
		return rc;
	json_decref(run);
	long long after = 0;
	const char *last = agentd_req_header(req, "Last-Event-ID");
	if (!last)
		last = agentd_req_query(req, "after");
	if (last && ag_parse_long(last, 0, INT64_MAX, &after))
		return ag_error_wrap(AG_EINVAL, "Last-Event-ID");
	return start_stream(req, res, id, after);
}

static int post_approve(agentd_request *req, agentd_response *res)
{
	json_t *body = NULL;
	bool approved = true;
	const char *comment = NULL;
	int rc = 0;
	if (req->body_len) {
		static const char *const allowed[] = {"approved", "comment", NULL};
		if ((rc = agentd_req_json(req, &body)) || (rc = ag_json_check_keys(body, allowed)) ||
		    (rc = ag_json_get_bool(body, "approved", false, &approved)) ||
		    (rc = ag_json_get_string(body, "comment", false, &comment)))
			goto out;
	}
	const char *id = agentd_req_param(req, "id");
	if ((rc = agentd_runs_approve(req->ctx->runs, req->db, req->principal->tenant, id,
				      req->principal->user, approved, comment)))
		goto out;
	json_t *run;
	if (!(rc = agentd_runs_get(req->db, req->principal->tenant, id, &run)))
		rc = agentd_reply_json(res, 200, run);
out:
	json_decref(body);
	return rc;
}

static int post_cancel(agentd_request *req, agentd_response *res)
{
	const char *id = agentd_req_param(req, "id");
	json_t *run;
	int rc = visible_run(req, id, &run);
	if (rc)
		return rc;
	json_decref(run);
	if ((rc = agentd_runs_cancel(req->ctx->runs, req->db, req->principal->tenant, id)))
		return rc;
	if ((rc = agentd_runs_get(req->db, req->principal->tenant, id, &run)))
		return rc;
	return agentd_reply_json(res, 202, run);
}

/* ------------------------------------------------------------ workflows */

static int post_workflows(agentd_request *req, agentd_response *res)
{
	json_t *body;
	int rc = agentd_req_json(req, &body);
	if (rc)
		return rc;
	char *id;
	rc = agentd_workflow_create(req->db, req->principal->tenant, req->principal->user, body, &id);
	json_decref(body);
	if (rc)
		return rc;
	json_t *wf;
	rc = agentd_workflow_get(req->db, req->principal->tenant, id, &wf);
	ag_free(id);
	if (rc)
		return rc;
	return agentd_reply_json(res, 201, wf);
}

static int get_workflows(agentd_request *req, agentd_response *res)
{
	json_t *list;
	int rc = agentd_workflow_list(req->db, req->principal->tenant, &list);
	if (rc)
		return rc;
	return agentd_reply_json(res, 200, json_pack("{s:o}", "workflows", list));
}

static int get_workflow(agentd_request *req, agentd_response *res)
{
	json_t *wf;
	int rc = agentd_workflow_get(req->db, req->principal->tenant, agentd_req_param(req, "id"), &wf);
	if (rc)
		return rc;
	return agentd_reply_json(res, 200, wf);
}

static int post_workflow_run(agentd_request *req, agentd_response *res)
{
	json_t *wf;
	int rc = agentd_workflow_get(req->db, req->principal->tenant, agentd_req_param(req, "id"), &wf);
	if (rc)
		return rc;
	json_t *body = NULL;
	bool stream = false;
	if (req->body_len) {
		static const char *const allowed[] = {"input", "budget", "stream", NULL};
		json_t *budget = NULL;
		if ((rc = agentd_req_json(req, &body)) || (rc = ag_json_check_keys(body, allowed)) ||
		    (rc = ag_json_get_object(body, "budget", false, &budget)) ||
		    (rc = ag_json_get_bool(body, "stream", false, &stream)))
			goto out;
	}
	json_t *request = json_pack("{s:O, s:O?, s:O?, s:O}", "workflow", json_object_get(wf, "definition"),
				    "input", body ? json_object_get(body, "input") : NULL, "budget",
				    body ? json_object_get(body, "budget") : NULL, "workflow_id",
				    json_object_get(wf, "id"));
	if (!request) {
		rc = ag_error_set(AG_ENOMEM, "out of memory starting a workflow");
		goto out;
	}
	rc = submit(req, res, "workflow", request, stream);
	json_decref(request);
out:
	json_decref(body);
	json_decref(wf);
	return rc;
}

#define RUNNERS   (AGENTD_ROLE_ADMIN | AGENTD_ROLE_ANALYST | AGENTD_ROLE_VIEWER)
#define APPROVERS (AGENTD_ROLE_ADMIN | AGENTD_ROLE_ANALYST)

const agentd_route agentd_routes_runs[] = {
	{"POST", "/v1/runs", RUNNERS, post_runs},
	{"GET", "/v1/runs", AGENTD_ROLES_ANY, get_runs},
	{"GET", "/v1/runs/{id}", AGENTD_ROLES_ANY, get_run},
	{"GET", "/v1/runs/{id}/events", AGENTD_ROLES_ANY, get_run_events},
	{"POST", "/v1/runs/{id}/approve", APPROVERS, post_approve},
	{"POST", "/v1/runs/{id}/cancel", RUNNERS, post_cancel},
	{"POST", "/v1/workflows", APPROVERS, post_workflows},
	{"GET", "/v1/workflows", AGENTD_ROLES_ANY, get_workflows},
	{"GET", "/v1/workflows/{id}", AGENTD_ROLES_ANY, get_workflow},
	{"POST", "/v1/workflows/{id}/runs", RUNNERS, post_workflow_run},
	{NULL, NULL, 0, NULL},
};
