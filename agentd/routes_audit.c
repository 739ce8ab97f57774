/*
 * Audit routes (admin or auditor role):
 *
 *   GET /v1/audit?run=&user=&kind=&since=&from=&to=&limit=
 *       the caller's tenant's records, oldest first, a page at a time:
 *       {"records": [...], "next": SEQ|null}; pass next back as `since`.
 *       from/to bound the time (milliseconds since the epoch or ISO 8601 UTC,
 *       e.g. 2026-11-29T04:00:00Z; from inclusive, to exclusive).
 *   GET /v1/audit/verify
 *       recomputes the whole chain and checks the signed checkpoints.
 *
 * Tenancy: records are filtered by the caller's tenant. The chain is global
 * (one chain for all tenants), so verification necessarily covers every
 * tenant's records; to avoid leaking other tenants' volume or content, the
 * HTTP answer is only {"ok", "first_bad", "reason"} — the reason names seq
 * numbers, never record contents. The full report (counts, head hash) is for
 * the operator: `agentd audit verify` on the machine.
 *
 * Reading the audit log is itself recorded (kind "audit_read", with the
 * filters), once per walk: at its first page (no `since`, or since=0).
 * Continuation pages are not recorded, because each record of a read would
 * otherwise be a new record for the walk to reach, and a client paging with
 * small pages would chase its own reads for ever.
 */
#include "agentd/audit.h"
#include "agentd/cli.h"
#include "agentd/daemon.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define AUDIT_ROLES (AGENTD_ROLE_ADMIN | AGENTD_ROLE_AUDITOR)

/* The daemon's audit log (borrowed), or one opened for this request (owned)
 * when the daemon has none (a context without it, as in some tests). */
static int open_audit(agentd_request *req, agentd_audit **out, bool *owned)
{
	*owned = false;
	if (!req->ctx)
		return ag_error_set(AG_ERR, "no daemon context for the audit log");
	if (req->ctx->audit) {
		*out = req->ctx->audit;
		return 0;
	}
	long long every = 1000;
	const struct agentd_config *cfg = agentd_ctx_config(req->ctx);
	if (cfg && agentd_config_get_long(cfg, "audit_checkpoint_every", 0, INT64_MAX, &every))
		return ag_error_code();
	int rc = agentd_audit_open(out, req->db, agentd_ctx_data_dir(req->ctx), every);
	*owned = rc == 0;
	return rc;
}

/* Milliseconds since the epoch, or ISO 8601 UTC "YYYY-MM-DDTHH:MM:SS[.mmm]Z". */
static int parse_time(const char *name, const char *s, int64_t *out)
{
	long long v;
	if (ag_parse_long(s, 0, INT64_MAX / 2, &v) == 0) {
		*out = v;
		return 0;
	}
	ag_error_clear();
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	int64_t ms = 0;
	if (p && *p == '.') {
		p++;
		int digits = 0;
		while (*p >= '0' && *p <= '9') {
			if (digits < 3)
				ms = ms * 10 + (*p - '0');
			digits++;
			p++;
		}
		for (; digits < 3; digits++)
			ms *= 10;
	}
	if (!p || (*p != 'Z' && *p != '\0') || (*p == 'Z' && p[1] != '\0'))
		return ag_error_set(AG_EINVAL,
				    "'%s' must be milliseconds since the epoch or ISO 8601 UTC like "
				    "2026-01-31T12:00:00Z",
				    name);
	time_t t = timegm(&tm);
	if (t < 0)
		return ag_error_set(AG_EINVAL, "'%s' is before 1970", name);
	*out = (int64_t)t * 1000 + ms;
	return 0;
}

static int get_audit(agentd_request *req, agentd_response *res)
{
	agentd_audit_query q = {.tenant = req->principal->tenant, .limit = 100};
	q.user = agentd_req_query(req, "user");
	q.run_id = agentd_req_query(req, "run");
	q.kind = agentd_req_query(req, "kind");
	const char *since = agentd_req_query(req, "since"), *limit = agentd_req_query(req, "limit");
	const char *from = agentd_req_query(req, "from"), *to = agentd_req_query(req, "to");
	long long v;
	int rc;
	if (since) {
		if ((rc = ag_parse_long(since, 0, INT64_MAX, &v)))
			return ag_error_wrap(rc, "since");
		q.since = v;
	}
	if (limit) {
		if ((rc = ag_parse_long(limit, 1, 1000, &v)))
			return ag_error_wrap(rc, "limit");
		q.limit = (int)v;
	}
	if ((from && (rc = parse_time("from", from, &q.from_ms))) ||
	    (to && (rc = parse_time("to", to, &q.to_ms))))
		return rc;
	json_t *page;
	if ((rc = agentd_audit_list(req->db, &q, &page)))
		return rc;
	/* Who read what is part of the record too (at the start of a walk). */
	agentd_audit *a;
	bool owned;
	if (q.since == 0 && !(rc = open_audit(req, &a, &owned))) {
		json_t *d =
			json_pack("{s:s?, s:s?, s:s?, s:I, s:s?, s:s?, s:I}", "run", q.run_id, "user", q.user,
				  "kind", q.kind, "since", (json_int_t)q.since, "from", from, "to", to,
				  "returned", (json_int_t)json_array_size(json_object_get(page, "records")));
		rc = d ? agentd_audit_record(a, req->db, "audit_read", req->principal->tenant,
					     req->principal->user, NULL, 0, d)
		       : ag_error_set(AG_ENOMEM, "out of memory");
		if (owned)
			agentd_audit_free(a);
	}
	if (rc) {
		json_decref(page);
		return rc;
	}
	return agentd_reply_json(res, 200, page);
}

static int get_verify(agentd_request *req, agentd_response *res)
{
	agentd_audit *a;
	bool owned;
	int rc = open_audit(req, &a, &owned);
	if (rc)
		return rc;
	agentd_audit_report r;
	rc = agentd_audit_verify(a, req->db, NULL, 0, &r);
	if (owned)
		agentd_audit_free(a);
	if (rc)
		return rc;
	json_t *v = json_pack("{s:b, s:o, s:s}", "ok", r.ok, "first_bad",
			      r.ok ? json_null() : json_integer((json_int_t)r.first_bad), "reason", r.reason);
	if (!v)
		return ag_error_set(AG_ENOMEM, "out of memory");
	return agentd_reply_json(res, 200, v);
}

const agentd_route agentd_routes_audit[] = {
	{"GET", "/v1/audit", AUDIT_ROLES, get_audit},
	{"GET", "/v1/audit/verify", AUDIT_ROLES, get_verify},
	{NULL, NULL, 0, NULL},
};
