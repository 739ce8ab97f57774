/*
 * Memory routes: a user's saved model state (tokens, bytes, when, which
 * model), its reset, and an administrator's export and import. `?user=NAME`
 * names the end user an admin key acts for; other roles see only their own.
 */
#include "agentd/daemon.h"
#include "memory/memory.h"

#include <string.h>

/* The user whose memory the request is about, or an error if the caller may not act for them. */
static int target_user(const agentd_request *req, const char **out)
{
	const char *user = agentd_req_query(req, "user");
	if (!user || !*user || strcmp(user, req->principal->user) == 0) {
		*out = req->principal->user;
		return 0;
	}
	if (!(req->principal->role & AGENTD_ROLE_ADMIN))
		return ag_error_set(AG_EDENIED, "only an admin may act for another user");
	if (strlen(user) > 127)
		return ag_error_set(AG_EINVAL, "user name too long");
	*out = user;
	return 0;
}

static int get_memory(agentd_request *req, agentd_response *res)
{
	const char *user;
	int rc = target_user(req, &user);
	if (rc)
		return rc;
	memory_info info;
	rc = memory_get_info(req->db, req->principal->tenant, user, &info);
	if (rc == AG_ENOTFOUND)
		return agentd_reply_json(res, 200,
					 json_pack("{s:s, s:I, s:I, s:I, s:n, s:n}", "user", user, "tokens",
						   (json_int_t)0, "bytes", (json_int_t)0, "stored_bytes",
						   (json_int_t)0, "updated", "model"));
	if (rc)
		return rc;
	char when[32];
	ag_format_time(when, sizeof when, info.updated_ms);
	return agentd_reply_json(res, 200,
				 json_pack("{s:s, s:I, s:I, s:I, s:s, s:s, s:I}", "user", user, "tokens",
					   (json_int_t)info.tokens, "bytes", (json_int_t)info.state_bytes,
					   "stored_bytes", (json_int_t)info.stored_bytes, "updated", when,
					   "model", info.model_id, "version", (json_int_t)info.version));
}

static int delete_memory(agentd_request *req, agentd_response *res)
{
	const char *user;
	int rc = target_user(req, &user);
	if (rc)
		return rc;
	rc = memory_delete(req->db, req->principal->tenant, user);
	if (rc && rc != AG_ENOTFOUND)
		return rc;
	return agentd_reply_json(res, 200, json_pack("{s:s, s:b}", "user", user, "deleted", rc == 0));
}

static int export_memory(agentd_request *req, agentd_response *res)
{
	const char *user;
	int rc = target_user(req, &user);
	if (rc)
		return rc;
	uint8_t *data;
	size_t len;
	if ((rc = memory_export(req->db, req->principal->tenant, user, &data, &len)))
		return rc;
	ag_free(res->body);
	res->body = (char *)data;
	res->body_len = len;
	res->status = 200;
	res->content_type = "application/octet-stream";
	return 0;
}

static int import_memory(agentd_request *req, agentd_response *res)
{
	const char *user;
	int rc = target_user(req, &user);
	if (rc)
		return rc;
	if (!req->body || req->body_len == 0)
		return ag_error_set(AG_EINVAL, "the body must be a memory export");
	if ((rc = memory_import(req->db, req->principal->tenant, user, (const uint8_t *)req->body,
				req->body_len)))
		return rc;
	memory_info info;
	if ((rc = memory_get_info(req->db, req->principal->tenant, user, &info)))
		return rc;
	return agentd_reply_json(res, 200,
				 json_pack("{s:s, s:I, s:I, s:s}", "user", user, "tokens",
					   (json_int_t)info.tokens, "bytes", (json_int_t)info.state_bytes,
					   "model", info.model_id));
}

const agentd_route agentd_routes_memory[] = {
	{"GET", "/v1/memory", AGENTD_ROLES_ANY, get_memory},
	{"DELETE", "/v1/memory", AGENTD_ROLES_ANY, delete_memory},
	{"GET", "/v1/memory/export", AGENTD_ROLE_ADMIN, export_memory},
	{"PUT", "/v1/memory/import", AGENTD_ROLE_ADMIN, import_memory},
	{NULL, NULL, 0, NULL},
};
