/*
 * Tool routes: the registry with each tool's JSON schema, a direct call of
 * one tool (admin; policy-checked, sandboxed and audited like a planner's
 * call) and the admin settings the tools run on.
 *
 *   GET  /v1/tools            any role: {"tools": [{name, description, parameters, limits, needs}]}
 *   POST /v1/tools/{name}     admin: the body is the arguments object;
 *                             answers {"ok": true, "tool", "result", "wall_ms"} or an error
 *   GET  /v1/tools/settings   admin: {"databases": [{name, path}], "repositories": [{name, path}],
 *                                     "allowed_hosts": ["host" | "host:port"]}
 *   PUT  /v1/tools/settings   admin: replaces the lists given (same shape), answers the new settings
 *
 * Settings belong to the caller's tenant.
 */
#include "agentd/audit.h"
#include "agentd/daemon.h"
#include "agentd/policy_store.h"
#include "tools/tools.h"

#include <stdint.h>
#include <string.h>

static int list_tools(agentd_request *req, agentd_response *res)
{
	(void)req;
	json_t *arr = json_array();
	if (!arr)
		return ag_error_set(AG_ENOMEM, "out of memory");
	size_t n = tools_count();
	for (size_t i = 0; i < n; i++) {
		json_t *d;
		int rc = tools_describe(&d, tools_at(i));
		if (rc || json_array_append_new(arr, d)) {
			json_decref(arr);
			return rc ? rc : ag_error_set(AG_ENOMEM, "out of memory");
		}
	}
	return agentd_reply_json(res, 200, json_pack("{s:o}", "tools", arr));
}

static int audit(agentd_request *req, const char *kind, json_t *data)
{
	long long every = 1000;
	const struct agentd_config *cfg = agentd_ctx_config(req->ctx);
	if (cfg && agentd_config_get_long(cfg, "audit_checkpoint_every", 0, INT64_MAX, &every)) {
		json_decref(data);
		return ag_error_code();
	}
	agentd_audit *a;
	int rc = agentd_audit_open(&a, req->db, agentd_ctx_data_dir(req->ctx), every);
	if (rc) {
		json_decref(data);
		return rc;
	}
	rc = agentd_audit_record(a, req->db, kind, req->principal->tenant, req->principal->user, NULL, 0,
				 data);
	agentd_audit_free(a);
	return rc;
}

/* The policy in force decides whether this role may call the tool at all. */
static int check_policy(agentd_request *req, const tools_tool *t)
{
	policies_policy *p;
	int rc = agentd_policies_acquire(req->ctx, req->db, &p);
	if (rc)
		return rc;
	policies_principal who = {req->principal->tenant, req->principal->user, req->principal->role_name};
	policies_tool_props props = {.writes = false, .network = (t->needs & TOOLS_NEED_NETWORK) != 0};
	policies_decision d;
	rc = policies_check_tool(p, &who, t->name, &props, NULL, &d);
	policies_release(p);
	if (rc)
		return rc;
	if (d.action == POLICIES_DENY)
		return ag_error_set(AG_EDENIED, "policy %s refuses tool '%s': %s", d.rule, t->name, d.reason);
	if (d.action == POLICIES_NEEDS_APPROVAL)
		return ag_error_set(
			AG_EDENIED,
			"policy %s requires approval for tool '%s', which a direct call cannot wait for: %s",
			d.rule, t->name, d.reason);
	return 0;
}

static int call_tool(agentd_request *req, agentd_response *res)
{
	const char *name = agentd_req_param(req, "name");
	const tools_tool *t = tools_find(name);
	if (!t)
		return ag_error_set(AG_ENOTFOUND, "no tool named '%s'", name ? name : "");
	json_t *args;
	int rc;
	if (!req->body || req->body_len == 0)
		args = json_object();
	else if ((rc = agentd_req_json(req, &args)))
		return rc;
	if (!args)
		return ag_error_set(AG_ENOMEM, "out of memory");
	if ((rc = check_policy(req, t))) {
		json_decref(args);
		return rc;
	}
	tools_env env = {.db = req->db,
			 .tenant = req->principal->tenant,
			 .user = req->principal->user,
			 .role = req->principal->role_name};
	json_t *result = NULL;
	tools_call_info info;
	rc = tools_call(&result, &info, &env, t->name, args);
	/* Keep the message: auditing may overwrite the thread's error slot. */
	char message[512];
	snprintf(message, sizeof message, "%s", rc ? ag_error_last() : "");
	json_t *record = json_pack("{s:s, s:O, s:b, s:s?, s:s?, s:f, s:I, s:i}", "tool", t->name, "arguments",
				   args, "ok", rc == 0, "error", rc ? ag_error_name(rc) : NULL, "message",
				   rc ? message : NULL, "wall_ms", info.wall_ms, "output_bytes",
				   (json_int_t)info.output_bytes, "signal", info.signal);
	json_decref(args);
	int arc = record ? audit(req, "tool_call", record) : ag_error_set(AG_ENOMEM, "out of memory");
	if (rc) {
		json_decref(result);
		return ag_error_set(rc, "%s", message);
	}
	if (arc) {
		json_decref(result);
		return arc;
	}
	return agentd_reply_json(res, 200,
				 json_pack("{s:b, s:s, s:o, s:f}", "ok", 1, "tool", t->name, "result", result,
					   "wall_ms", info.wall_ms));
}

static int get_settings(agentd_request *req, agentd_response *res)
{
	json_t *s;
	int rc = tools_settings_get(&s, req->db, req->principal->tenant);
	if (rc)
		return rc;
	return agentd_reply_json(res, 200, s);
}

static int put_settings(agentd_request *req, agentd_response *res)
{
	json_t *body;
	int rc = agentd_req_json(req, &body);
	if (rc)
		return rc;
	rc = tools_settings_put(req->db, req->principal->tenant, body);
	if (!rc)
		rc = audit(req, "tool_settings", json_incref(body));
	json_decref(body);
	if (rc)
		return rc;
	return get_settings(req, res);
}

const agentd_route agentd_routes_tools[] = {
	{"GET", "/v1/tools", AGENTD_ROLES_ANY, list_tools},
	{"GET", "/v1/tools/settings", AGENTD_ROLE_ADMIN, get_settings},
	{"PUT", "/v1/tools/settings", AGENTD_ROLE_ADMIN, put_settings},
	{"POST", "/v1/tools/{name}", AGENTD_ROLE_ADMIN, call_tool},
	{NULL, NULL, 0, NULL},
};
