/* Core routes: liveness, Prometheus metrics and API keys. */
#include "agentd/auth.h"
#include "agentd/daemon.h"

#include <string.h>

static int get_healthz(agentd_request *req, agentd_response *res)
{
	(void)req;
	return agentd_reply_json(res, 200, json_pack("{s:s}", "status", "ok"));
}

static int get_metrics(agentd_request *req, agentd_response *res)
{
	char *text;
	size_t len;
	int rc = agentd_metrics_render(req->ctx->metrics, &text, &len);
	if (rc)
		return rc;
	const agentd_model *model = req->ctx->model;
	if (model) {
		/* the model's gauges, after the HTTP ones */
		ag_buf b = AG_BUF_INIT;
		uint64_t passes = 0, steps = 0;
		if (model->local)
			engine_local_batch_stats(model->local, &passes, &steps);
		rc = ag_buf_append(&b, text, len);
		rc = rc ? rc
			: ag_buf_printf(
				  &b,
				  "# HELP agentd_streams_generating Streamed completions still generating.\n"
				  "# TYPE agentd_streams_generating gauge\n"
				  "agentd_streams_generating %d\n"
				  "# HELP agentd_decode_passes_total Batched decode passes of the local "
				  "engine.\n"
				  "# TYPE agentd_decode_passes_total counter\n"
				  "agentd_decode_passes_total %llu\n"
				  "# HELP agentd_decode_steps_total Sequence steps those passes decoded.\n"
				  "# TYPE agentd_decode_steps_total counter\n"
				  "agentd_decode_steps_total %llu\n",
				  atomic_load(&((agentd_model *)model)->active), (unsigned long long)passes,
				  (unsigned long long)steps);
		ag_free(text);
		if (rc) {
			ag_buf_free(&b);
			return rc;
		}
		text = ag_buf_detach(&b, &len);
	}
	ag_free(res->body);
	res->body = text;
	res->body_len = len;
	res->status = 200;
	res->content_type = "text/plain; version=0.0.4";
	return 0;
}

static int post_keys(agentd_request *req, agentd_response *res)
{
	json_t *body;
	int rc = agentd_req_json(req, &body);
	if (rc)
		return rc;
	static const char *const allowed[] = {"tenant", "user", "role", NULL};
	const char *tenant = req->principal->tenant, *user = NULL, *role = NULL;
	if ((rc = ag_json_check_keys(body, allowed)) ||
	    (rc = ag_json_get_string(body, "tenant", false, &tenant)) ||
	    (rc = ag_json_get_string(body, "user", true, &user)) ||
	    (rc = ag_json_get_string(body, "role", true, &role)))
		goto out;
	if (strcmp(tenant, req->principal->tenant) != 0) {
		rc = ag_error_set(AG_EDENIED, "keys can be created only in your own tenant");
		goto out;
	}
	char *key, *key_id;
	if ((rc = agentd_auth_create_key(req->db, tenant, user, role, &key, &key_id)))
		goto out;
	ag_info("key %s created for %s/%s (%s) by %s", key_id, tenant, user, role, req->principal->user);
	rc = agentd_reply_json(res, 201,
			       json_pack("{s:s, s:s, s:s, s:s, s:s}", "key", key, "key_id", key_id, "tenant",
					 tenant, "user", user, "role", role));
	memset(key, 0, strlen(key));
	ag_free(key);
	ag_free(key_id);
out:
	json_decref(body);
	return rc;
}

static int get_keys(agentd_request *req, agentd_response *res)
{
	json_t *keys;
	int rc = agentd_auth_list_keys(req->db, req->principal->tenant, &keys);
	if (rc)
		return rc;
	return agentd_reply_json(res, 200, json_pack("{s:o}", "keys", keys));
}

static int delete_key(agentd_request *req, agentd_response *res)
{
	int rc = agentd_auth_revoke_key(req->db, req->principal->tenant, agentd_req_param(req, "id"));
	if (rc)
		return rc;
	return agentd_reply_json(res, 200, json_pack("{s:b}", "revoked", 1));
}

const agentd_route agentd_routes_core[] = {
	{"GET", "/healthz", AGENTD_PUBLIC, get_healthz},
	{"GET", "/metrics", AGENTD_PUBLIC, get_metrics},
	{"POST", "/v1/keys", AGENTD_ROLE_ADMIN, post_keys},
	{"GET", "/v1/keys", AGENTD_ROLE_ADMIN, get_keys},
	{"DELETE", "/v1/keys/{id}", AGENTD_ROLE_ADMIN, delete_key},
	{NULL, NULL, 0, NULL},
};
