/*
 * Policy routes and the daemon's policy store: GET /v1/policies shows the
 * policy in force (its text and a summary), PUT /v1/policies replaces it.
 * A refused PUT answers 400 with every problem and its line, and the old
 * policy stays in force. Both are admin-only. The store itself (see
 * agentd/policy_store.h) is process-wide because one daemon runs one policy.
 */
#include "agentd/policy_store.h"

#include <pthread.h>
#include <string.h>

static pthread_mutex_t store_mu = PTHREAD_MUTEX_INITIALIZER;
static policies_store *store;
static policies_ratelimit *ratelimit;

static const char *policy_path(const agentd_ctx *ctx)
{
	return agentd_config_get(agentd_ctx_config(ctx), "policy_file");
}

int agentd_policies_open(agentd_ctx *ctx, sqlite3 *db)
{
	pthread_mutex_lock(&store_mu);
	int rc = 0;
	if (store)
		goto out;
	/* The table lives with the policy module; migrating here too keeps this self-contained. */
	if (db && (rc = policies_migrate(db)))
		goto out;
	policies_policy *p;
	if ((rc = policies_open(&p, db, policy_path(ctx))))
		goto out;
	if ((rc = policies_store_new(&store, p))) {
		policies_release(p);
		goto out;
	}
	if ((rc = policies_ratelimit_new(&ratelimit))) {
		policies_store_free(store);
		store = NULL;
		goto out;
	}
	ag_info("policy in force: %s (sha256 %.16s)", policies_name(p), policies_sha256(p));
out:
	pthread_mutex_unlock(&store_mu);
	return rc;
}

int agentd_policies_acquire(agentd_ctx *ctx, sqlite3 *db, policies_policy **out)
{
	int rc = agentd_policies_open(ctx, db);
	if (rc)
		return rc;
	*out = policies_acquire(store);
	return 0;
}

policies_policy *agentd_policies_current(void)
{
	pthread_mutex_lock(&store_mu);
	policies_policy *p = store ? policies_acquire(store) : NULL;
	pthread_mutex_unlock(&store_mu);
	return p;
}

int agentd_policies_ratelimit(agentd_ctx *ctx, sqlite3 *db, policies_ratelimit **out)
{
	int rc = agentd_policies_open(ctx, db);
	if (!rc)
		*out = ratelimit;
	return rc;
}

/* Records p and puts it in force, in that order: a policy in force is always on record. */
static int install(sqlite3 *db, policies_policy *p, const char *origin)
{
	int rc = db ? policies_save(db, p, origin) : 0;
	if (rc) {
		policies_release(p);
		return rc;
	}
	policies_store_swap(store, p);
	return 0;
}

int agentd_policies_reload(agentd_ctx *ctx, sqlite3 *db)
{
	int rc = agentd_policies_open(ctx, db);
	if (rc)
		return rc;
	const char *path = policy_path(ctx);
	if (!path || !*path) {
		/* Nothing to re-read: reverting a policy installed through the API to the default
		 * on a stray signal would be a surprise. */
		ag_info("SIGHUP: no policy_file is configured; the policy in force stays");
		return 0;
	}
	policies_policy *p;
	policies_diag *d = NULL;
	rc = policies_load_file(&p, &d, path);
	if (rc) {
		for (int i = 0; d && i < d->count; i++)
			ag_warn("policy reload refused: %s:%d: %s", path, d->items[i].line,
				d->items[i].message);
		if (!d)
			ag_warn("policy reload refused: %s", ag_error_last());
		ag_warn("the previous policy stays in force");
		policies_diag_free(d);
		return rc;
	}
	pthread_mutex_lock(&store_mu);
	rc = install(db, p, "file");
	pthread_mutex_unlock(&store_mu);
	if (!rc)
		ag_info("policy reloaded from %s", path);
	return rc;
}

void agentd_policies_close(void)
{
	pthread_mutex_lock(&store_mu);
	policies_store_free(store);
	policies_ratelimit_free(ratelimit);
	store = NULL;
	ratelimit = NULL;
	pthread_mutex_unlock(&store_mu);
}

/* ------------------------------------------------------------------ routes */

static json_t *policy_json(const policies_policy *p)
{
	json_t *summary;
	if (policies_describe(&summary, p))
		return NULL;
	size_t len;
	const char *text = policies_text(p, &len);
	char when[32];
	ag_format_time(when, sizeof when, policies_loaded_ms(p));
	return json_pack("{s:s, s:s, s:s, s:s%, s:o}", "name", policies_name(p), "sha256", policies_sha256(p),
			 "loaded", when, "text", text, len, "policy", summary);
}

static int get_policies(agentd_request *req, agentd_response *res)
{
	policies_policy *p;
	int rc = agentd_policies_acquire(req->ctx, req->db, &p);
	if (rc)
		return rc;
	const char *format = agentd_req_query(req, "format");
	if (format && strcmp(format, "text") == 0) {
		size_t len;
		const char *text = policies_text(p, &len);
		rc = agentd_reply_text(res, 200, "text/plain; charset=utf-8", text, len);
		policies_release(p);
		return rc;
	}
	json_t *j = policy_json(p);
	policies_release(p);
	if (!j)
		return ag_error_set(AG_ENOMEM, "out of memory describing the policy");
	return agentd_reply_json(res, 200, j);
}

/* The new policy's text: the raw body, or {"text": "..."} for clients that only speak JSON. */
static int body_text(agentd_request *req, const char **text, size_t *len, json_t **holder)
{
	*holder = NULL;
	if (!req->body || req->body_len == 0)
		return ag_error_set(AG_EINVAL, "the body must be the policy text (or {\"text\": \"...\"})");
	const char *ct = agentd_req_header(req, "Content-Type");
	if ((ct && strstr(ct, "application/json")) || req->body[0] == '{') {
		json_t *j;
		int rc = agentd_req_json(req, &j);
		if (rc)
			return rc;
		static const char *const keys[] = {"text", NULL};
		const char *t = NULL;
		if ((rc = ag_json_check_keys(j, keys)) || (rc = ag_json_get_string(j, "text", true, &t))) {
			json_decref(j);
			return rc;
		}
		*holder = j;
		*text = t;
		*len = json_string_length(json_object_get(j, "text"));
		return 0;
	}
	*text = req->body;
	*len = req->body_len;
	return 0;
}

static int put_policies(agentd_request *req, agentd_response *res)
{
	int rc = agentd_policies_open(req->ctx, req->db);
	if (rc)
		return rc;
	const char *text = NULL;
	size_t len = 0;
	json_t *holder;
	if ((rc = body_text(req, &text, &len, &holder)))
		return rc;
	policies_policy *p;
	policies_diag *d = NULL;
	rc = policies_parse(&p, &d, text, len, "policy");
	json_decref(holder);
	if (rc == AG_EINVAL && d) {
		ag_info("PUT /v1/policies refused by %s: %d problem(s), first: %s", req->principal->user,
			d->count, ag_error_last());
		json_t *errors = json_array();
		for (int i = 0; errors && i < d->count; i++)
			json_array_append_new(errors, json_pack("{s:i, s:s}", "line", d->items[i].line,
								"message", d->items[i].message));
		policies_diag_free(d);
		json_t *body = json_pack("{s:{s:s, s:s, s:o}}", "error", "code", "bad_request", "message",
					 ag_error_last(), "errors", errors);
		if (!body)
			return ag_error_set(AG_ENOMEM, "out of memory reporting policy errors");
		return agentd_reply_json(res, 400, body);
	}
	policies_diag_free(d);
	if (rc)
		return rc;
	pthread_mutex_lock(&store_mu);
	rc = install(req->db, policies_ref(p), "api");
	pthread_mutex_unlock(&store_mu);
	if (rc) {
		policies_release(p);
		return rc;
	}
	ag_info("policy replaced through the API by %s/%s (sha256 %.16s)", req->principal->tenant,
		req->principal->user, policies_sha256(p));
	json_t *j = policy_json(p);
	policies_release(p);
	if (!j)
		return ag_error_set(AG_ENOMEM, "out of memory describing the policy");
	return agentd_reply_json(res, 200, j);
}

const agentd_route agentd_routes_policies[] = {
	{"GET", "/v1/policies", AGENTD_ROLE_ADMIN, get_policies},
	{"PUT", "/v1/policies", AGENTD_ROLE_ADMIN, put_policies},
	{NULL, NULL, 0, NULL},
};
