/*
 * Retrieval routes: collections (with readable_by ACLs), documents (attach as
 * a raw body or multipart/form-data, list, read, delete), sources (a git
 * repository, a URL) and search. Handlers translate HTTP into calls of
 * retrieval/retrieval.h with the caller as a retrieval_principal; every
 * access decision is the retrieval module's, so REST and the tools that
 * search for an agent apply the same rules.
 */
#include "agentd/cli.h"
#include "agentd/daemon.h"
#include "retrieval/retrieval.h"

#include <string.h>
#include <strings.h>
#include <time.h>

static retrieval_principal principal_of(const agentd_request *req)
{
	retrieval_principal p = {req->principal->tenant, req->principal->user, req->principal->role_name};
	return p;
}

static size_t max_document_bytes(const agentd_request *req)
{
	long long v = 0;
	if (agentd_config_get_long(agentd_ctx_config(req->ctx), "max_document_bytes", 1, (long long)1 << 40,
				   &v))
		return (size_t)200 << 20;
	return (size_t)v;
}

static json_t *string_list(char **items, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(items[i]));
	return a;
}

static json_t *collection_json(const retrieval_collection *c)
{
	char when[32];
	ag_format_time(when, sizeof when, c->created_ms);
	return json_pack("{s:s, s:s, s:s, s:s, s:{s:o, s:o}, s:s, s:I}", "id", c->id, "name", c->name,
			 "description", c->description, "created_by", c->created_by, "readable_by", "roles",
			 string_list(c->roles, c->nroles), "users", string_list(c->users, c->nusers),
			 "created", when, "documents", (json_int_t)c->documents);
}

/* A JSON array of strings into a NULL-terminated vector borrowed from the JSON. */
static int string_vector(const json_t *a, const char *what, const char ***out, size_t *n, ag_arena *arena)
{
	*out = NULL;
	*n = 0;
	if (!a)
		return 0;
	if (!json_is_array(a))
		return ag_error_set(AG_EINVAL, "readable_by.%s must be an array of strings", what);
	size_t k = json_array_size(a);
	if (k > 256)
		return ag_error_set(AG_ELIMIT, "readable_by.%s has more than 256 entries", what);
	const char **v = ag_arena_alloc(arena, (k + 1) * sizeof *v);
	if (!v)
		return ag_error_set(AG_ENOMEM, "out of memory");
	for (size_t i = 0; i < k; i++) {
		v[i] = json_string_value(json_array_get(a, i));
		if (!v[i])
			return ag_error_set(AG_EINVAL, "readable_by.%s must be an array of strings", what);
	}
	*out = v;
	*n = k;
	return 0;
}

static int create_collection(agentd_request *req, agentd_response *res)
{
	json_t *body;
	int rc = agentd_req_json(req, &body);
	if (rc)
		return rc;
	static const char *const keys[] = {"name", "description", "readable_by", NULL};
	const char *name = NULL, *description = NULL;
	json_t *rb = NULL;
	const char **roles = NULL, **users = NULL;
	size_t nroles = 0, nusers = 0;
	if ((rc = ag_json_check_keys(body, keys)) || (rc = ag_json_get_string(body, "name", true, &name)) ||
	    (rc = ag_json_get_string(body, "description", false, &description)) ||
	    (rc = ag_json_get_object(body, "readable_by", false, &rb)))
		goto out;
	if (rb) {
		static const char *const rb_keys[] = {"roles", "users", NULL};
		if ((rc = ag_json_check_keys(rb, rb_keys)) ||
		    (rc = string_vector(json_object_get(rb, "roles"), "roles", &roles, &nroles,
					req->arena)) ||
		    (rc = string_vector(json_object_get(rb, "users"), "users", &users, &nusers, req->arena)))
			goto out;
	}
	retrieval_principal p = principal_of(req);
	retrieval_collection *c;
	if ((rc = retrieval_collection_create(&c, req->db, &p, name, description, roles, nroles, users,
					      nusers)))
		goto out;
	rc = agentd_reply_json(res, 201, collection_json(c));
	retrieval_collection_free(c);
out:
	json_decref(body);
	return rc;
}

static int list_collections(agentd_request *req, agentd_response *res)
{
	retrieval_principal p = principal_of(req);
	retrieval_collection_list *l;
	int rc = retrieval_collection_list_readable(&l, req->db, &p);
	if (rc)
		return rc;
	json_t *a = json_array();
	for (size_t i = 0; a && i < l->count; i++)
		json_array_append_new(a, collection_json(&l->items[i]));
	retrieval_collection_list_free(l);
	return agentd_reply_json(res, 200, json_pack("{s:o}", "collections", a));
}

static json_t *document_json(const retrieval_document *d)
{
	char created[32], date[32];
	ag_format_time(created, sizeof created, d->created_ms);
	ag_format_time(date, sizeof date, d->date_ms);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "id", d->id,
			      "collection", d->collection, "title", d->title, "source", d->source, "commit",
			      d->commit, "format", d->format, "content_hash", d->content_hash, "created_by",
			      d->created_by, "created", created, "date", date, "text_bytes",
			      (json_int_t)d->text_bytes, "chunks", (json_int_t)d->chunks);
	if (o && d->text)
		json_object_set_new(o, "text", json_stringn(d->text, d->text_len));
	return o;
}

static int reply_ingest(agentd_response *res, const retrieval_ingest_result *r)
{
	return agentd_reply_json(res, r->unchanged ? 200 : 201,
				 json_pack("{s:s, s:s, s:b, s:b, s:I, s:I, s:s}", "id", r->document_id,
					   "document_id", r->document_id, "unchanged", r->unchanged,
					   "replaced", r->replaced, "chunks", (json_int_t)r->chunks,
					   "text_bytes", (json_int_t)r->text_bytes, "format", r->format));
}

/* A multipart field's value as a NUL-terminated string in the request arena. */
static const char *field(const retrieval_parts *ps, const char *name, ag_arena *arena)
{
	for (size_t i = 0; i < ps->count; i++)
		if (strcmp(ps->items[i].name, name) == 0 && !ps->items[i].filename)
			return ag_arena_strndup(arena, ps->items[i].data, ps->items[i].len);
	return NULL;
}

static int attach_document(agentd_request *req, agentd_response *res)
{
	retrieval_principal p = principal_of(req);
	size_t max = max_document_bytes(req);
	const char *ct = agentd_req_header(req, "Content-Type");
	retrieval_ingest_opts o = {
		.collection = agentd_req_query(req, "collection"),
		.title = agentd_req_query(req, "title"),
		.source = agentd_req_query(req, "source"),
		.filename = agentd_req_query(req, "filename"),
		.content_type = ct,
		.max_bytes = max,
	};
	const char *data = req->body ? req->body : "";
	size_t len = req->body_len;
	retrieval_parts *ps = NULL;
	int rc = 0;
	if (ct && strncasecmp(ct, "multipart/form-data", 19) == 0) {
		if ((rc = retrieval_multipart_parse(&ps, ct, data, len)))
			return rc;
		const retrieval_part *file = NULL;
		for (size_t i = 0; i < ps->count; i++)
			if (strcmp(ps->items[i].name, "file") == 0)
				file = &ps->items[i];
		if (!file) {
			retrieval_parts_free(ps);
			return ag_error_set(AG_EINVAL, "the multipart body needs a 'file' part");
		}
		const char *v;
		if ((v = field(ps, "collection", req->arena)))
			o.collection = v;
		if ((v = field(ps, "title", req->arena)))
			o.title = v;
		if ((v = field(ps, "source", req->arena)))
			o.source = v;
		o.filename = file->filename ? file->filename : o.filename;
		o.content_type = file->content_type;
		data = file->data;
		len = file->len;
	}
	if (!o.collection || !*o.collection)
		rc = ag_error_set(AG_EINVAL, "name the collection (?collection= or a 'collection' field)");
	else if (len > max)
		rc = ag_error_set(AG_ELIMIT, "the document is %zu bytes, over max_document_bytes (%zu)", len,
				  max);
	retrieval_ingest_result r;
	if (!rc)
		rc = retrieval_ingest_buffer(&r, req->db, &p, &o, data, len);
	retrieval_parts_free(ps);
	return rc ? rc : reply_ingest(res, &r);
}

static int list_documents(agentd_request *req, agentd_response *res)
{
	retrieval_principal p = principal_of(req);
	retrieval_document_list *l;
	int rc = retrieval_document_list_readable(&l, req->db, &p, agentd_req_query(req, "collection"));
	if (rc)
		return rc;
	json_t *a = json_array();
	for (size_t i = 0; a && i < l->count; i++)
		json_array_append_new(a, document_json(&l->items[i]));
	retrieval_document_list_free(l);
	return agentd_reply_json(res, 200, json_pack("{s:o}", "documents", a));
}

static int get_document(agentd_request *req, agentd_response *res)
{
	retrieval_principal p = principal_of(req);
	retrieval_document *d;
	int rc = retrieval_document_get(&d, req->db, &p, agentd_req_param(req, "id"), true);
	if (rc)
		return rc;
	rc = agentd_reply_json(res, 200, document_json(d));
	retrieval_document_free(d);
	return rc;
}

static int delete_document(agentd_request *req, agentd_response *res)
{
	retrieval_principal p = principal_of(req);
	const char *id = agentd_req_param(req, "id");
	int rc = retrieval_document_delete(req->db, &p, id);
	if (rc)
		return rc;
	return agentd_reply_json(res, 200, json_pack("{s:s, s:b}", "id", id, "deleted", 1));
}

static int ingest_git(agentd_request *req, agentd_response *res)
{
	json_t *body;
	int rc = agentd_req_json(req, &body);
	if (rc)
		return rc;
	static const char *const keys[] = {"collection", "url", "path", "ref", NULL};
	const char *coll = NULL, *url = NULL, *path = NULL, *ref = NULL;
	if ((rc = ag_json_check_keys(body, keys)) ||
	    (rc = ag_json_get_string(body, "collection", true, &coll)) ||
	    (rc = ag_json_get_string(body, "url", false, &url)) ||
	    (rc = ag_json_get_string(body, "path", false, &path)) ||
	    (rc = ag_json_get_string(body, "ref", false, &ref)))
		goto out;
	if (!url == !path) {
		rc = ag_error_set(AG_EINVAL, "give either 'url' or 'path'");
		goto out;
	}
	/* A path, or a file:// URL, reads the daemon's own disk: admins only. */
	if ((path || strncasecmp(url, "file:", 5) == 0) && !(req->principal->role & AGENTD_ROLE_ADMIN)) {
		rc = ag_error_set(AG_EDENIED, "only an admin may ingest a repository from the server's disk");
		goto out;
	}
	retrieval_principal p = principal_of(req);
	retrieval_git_result g;
	if ((rc = retrieval_ingest_git(&g, req->db, &p, coll, path ? path : url, ref,
				       max_document_bytes(req))))
		goto out;
	rc = agentd_reply_json(res, 200,
			       json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "collection", coll,
					 "commit", g.commit, "files", (json_int_t)g.files, "added",
					 (json_int_t)g.added, "updated", (json_int_t)g.updated, "unchanged",
					 (json_int_t)g.unchanged, "removed", (json_int_t)g.removed, "skipped",
					 (json_int_t)g.skipped));
out:
	json_decref(body);
	return rc;
}

static int ingest_url(agentd_request *req, agentd_response *res)
{
	json_t *body;
	int rc = agentd_req_json(req, &body);
	if (rc)
		return rc;
	static const char *const keys[] = {"collection", "url", "title", NULL};
	retrieval_ingest_opts o = {.max_bytes = max_document_bytes(req)};
	const char *url = NULL;
	if ((rc = ag_json_check_keys(body, keys)) ||
	    (rc = ag_json_get_string(body, "collection", true, &o.collection)) ||
	    (rc = ag_json_get_string(body, "url", true, &url)) ||
	    (rc = ag_json_get_string(body, "title", false, &o.title)))
		goto out;
	retrieval_principal p = principal_of(req);
	retrieval_ingest_result r;
	if (!(rc = retrieval_ingest_url(&r, req->db, &p, &o, url, 60, 5)))
		rc = reply_ingest(res, &r);
out:
	json_decref(body);
	return rc;
}

/* A time bound: milliseconds since the epoch, or an ISO 8601 date or UTC time. */
static int parse_time(const char *s, const char *what, int64_t *out)
{
	*out = 0;
	if (!s || !*s)
		return 0;
	long long v;
	if (ag_parse_long(s, 0, INT64_MAX, &v) == 0) {
		*out = v;
		return 0;
	}
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end) {
		memset(&tm, 0, sizeof tm);
		end = strptime(s, "%Y-%m-%d", &tm);
	}
	if (end && *end == '.')
		while (*++end >= '0' && *end <= '9')
			;
	if (!end || (*end && strcmp(end, "Z") != 0))
		return ag_error_set(AG_EINVAL, "%s must be a date (YYYY-MM-DD[THH:MM:SSZ]) or milliseconds",
				    what);
	*out = (int64_t)timegm(&tm) * 1000;
	return 0;
}

static int search(agentd_request *req, agentd_response *res)
{
	retrieval_principal p = principal_of(req);
	retrieval_query q = {
		.text = agentd_req_query(req, "q"),
		.document_id = agentd_req_query(req, "document"),
		.source = agentd_req_query(req, "source"),
	};
	const char *coll = agentd_req_query(req, "collection"), *k = agentd_req_query(req, "k");
	if (!q.text || !*q.text)
		return ag_error_set(AG_EINVAL, "the query parameter q is required");
	int rc;
	/* collection may name several, separated by commas. */
	const char *colls[16];
	if (coll && *coll) {
		char *copy = ag_arena_strdup(req->arena, coll);
		if (!copy)
			return ag_error_set(AG_ENOMEM, "out of memory");
		for (char *s = copy; s && *s;) {
			if (q.ncollections == 16)
				return ag_error_set(AG_ELIMIT, "at most 16 collections per search");
			char *comma = strchr(s, ',');
			if (comma)
				*comma = '\0';
			if (*s)
				colls[q.ncollections++] = s;
			s = comma ? comma + 1 : NULL;
		}
		q.collections = colls;
	}
	long long kv = 10;
	if (k && ag_parse_long(k, 1, 100, &kv))
		return ag_error_set(AG_EINVAL, "k must be a number from 1 to 100");
	q.k = (int)kv;
	if ((rc = parse_time(agentd_req_query(req, "since"), "since", &q.since_ms)) ||
	    (rc = parse_time(agentd_req_query(req, "until"), "until", &q.until_ms)))
		return rc;
	retrieval_hits *h;
	if ((rc = retrieval_search(&h, req->db, &p, &q)))
		return rc;
	json_t *a = json_array();
	for (size_t i = 0; a && i < h->count; i++) {
		const retrieval_hit *x = &h->items[i];
		char date[32];
		ag_format_time(date, sizeof date, x->date_ms);
		json_array_append_new(
			a,
			json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:I, s:I, s:s, s:s, s:s}",
				  "chunk_id", (json_int_t)x->chunk_id, "document_id", x->document_id,
				  "collection", x->collection, "title", x->title, "title_path", x->title_path,
				  "snippet", x->snippet, "text", x->text, "score", x->score, "start_byte",
				  (json_int_t)x->start_byte, "end_byte", (json_int_t)x->end_byte, "source",
				  x->source, "commit", x->commit, "date", date));
	}
	retrieval_hits_free(h);
	return agentd_reply_json(res, 200, json_pack("{s:s, s:o}", "query", q.text, "hits", a));
}

#define WRITERS (AGENTD_ROLE_ADMIN | AGENTD_ROLE_ANALYST)

const agentd_route agentd_routes_retrieval[] = {
	{"POST", "/v1/collections", WRITERS, create_collection},
	{"GET", "/v1/collections", AGENTD_ROLES_ANY, list_collections},
	{"POST", "/v1/documents", WRITERS, attach_document},
	{"GET", "/v1/documents", AGENTD_ROLES_ANY, list_documents},
	{"GET", "/v1/documents/{id}", AGENTD_ROLES_ANY, get_document},
	{"DELETE", "/v1/documents/{id}", WRITERS, delete_document},
	{"POST", "/v1/sources/git", WRITERS, ingest_git},
	{"POST", "/v1/sources/url", WRITERS, ingest_url},
	{"GET", "/v1/search", AGENTD_ROLES_ANY, search},
	{NULL, NULL, 0, NULL},
};
