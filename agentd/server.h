/*
 * agentd's HTTP layer as route handlers see it (internal to agentd/).
 *
 * A handler receives a parsed request (method, path parameters, query, body,
 * the authenticated principal, a per-request arena and a database handle)
 * and fills a response. Handlers live in agentd/routes_*.c, each exporting a
 * table of agentd_route that agentd/router.c lists. Returning a negative AG_E*
 * code with ag_error_set() produces the JSON error body
 * {"error": {"code": ..., "message": ...}} with the matching HTTP status.
 */
#ifndef AGENTD_SERVER_H
#define AGENTD_SERVER_H

#include "common/common.h"

/* Roles, as a bitmask so a route can name who may call it. */
enum {
	AGENTD_ROLE_ADMIN = 1u << 0,
	AGENTD_ROLE_ANALYST = 1u << 1,
	AGENTD_ROLE_VIEWER = 1u << 2,
	AGENTD_ROLE_AUDITOR = 1u << 3,
};
#define AGENTD_ROLES_ANY (AGENTD_ROLE_ADMIN | AGENTD_ROLE_ANALYST | AGENTD_ROLE_VIEWER | AGENTD_ROLE_AUDITOR)
#define AGENTD_PUBLIC    0u /* no key needed */

int agentd_role_parse(const char *name, unsigned *out); /* "admin" -> AGENTD_ROLE_ADMIN */
const char *agentd_role_name(unsigned role);

/* Who is calling: resolved from the Bearer key. Every query is scoped by tenant. */
typedef struct agentd_principal {
	char tenant[64];
	char user[128];
	char role_name[16];
	unsigned role; /* one AGENTD_ROLE_* bit */
	char key_id[32];
} agentd_principal;

typedef struct agentd_ctx agentd_ctx; /* daemon-wide state, see agentd/daemon.h */

typedef struct agentd_request {
	const char *method;
	const char *path; /* without the query string */
	const char *body; /* NUL-terminated; NULL when there was none */
	size_t body_len;
	const agentd_principal *principal; /* NULL on public routes */
	const char *request_id;
	ag_arena *arena; /* freed when the request ends */
	sqlite3 *db;     /* this request's connection (WAL; not shared with other threads) */
	agentd_ctx *ctx;
	int nparams; /* path parameters from {name} segments */
	const char *param_names[8];
	const char *param_values[8];
	void *conn; /* private: the libmicrohttpd connection */
} agentd_request;

const char *agentd_req_param(const agentd_request *r, const char *name);  /* path parameter or NULL */
const char *agentd_req_query(const agentd_request *r, const char *name);  /* query argument or NULL */
const char *agentd_req_header(const agentd_request *r, const char *name); /* request header or NULL */
/* The body parsed as a JSON object (AG_EINVAL naming the problem otherwise); the caller decrefs. */
int agentd_req_json(const agentd_request *r, json_t **out);

/* A streaming body: called repeatedly to produce the next bytes. Return the
 * number of bytes written into buf (at most max), 0 when nothing is ready yet
 * (it will be called again shortly), or -1 at the end of the stream. */
typedef long (*agentd_stream_fn)(void *cls, char *buf, size_t max);

typedef struct agentd_response {
	int status;
	char *body; /* ag_malloc'd; the response owns it */
	size_t body_len;
	const char *content_type; /* static string */
	int nheaders;
	const char *header_names[8]; /* static strings */
	char *header_values[8];      /* ag_malloc'd */
	agentd_stream_fn stream;     /* set for streaming responses (SSE) */
	void *stream_cls;
	void (*stream_free)(void *cls); /* called once when the stream ends or the client goes away */
} agentd_response;

/* Fill the response. Each returns 0 or AG_ENOMEM. */
int agentd_reply_json(agentd_response *res, int status, json_t *v); /* steals the reference to v */
int agentd_reply_text(agentd_response *res, int status, const char *content_type, const char *data,
		      size_t len);
int agentd_reply_header(agentd_response *res, const char *name, const char *value);
/* An error body for code (AG_E*) with message; also used for errors handlers return. */
int agentd_reply_error(agentd_response *res, int code, const char *message);
void agentd_reply_stream(agentd_response *res, const char *content_type, agentd_stream_fn fn, void *cls,
			 void (*free_fn)(void *));

typedef int (*agentd_handler_fn)(agentd_request *req, agentd_response *res);

typedef struct agentd_route {
	const char *method;  /* "GET", "POST", ... */
	const char *pattern; /* "/v1/documents/{id}" */
	unsigned roles;      /* who may call; AGENTD_PUBLIC for no key */
	agentd_handler_fn handler;
} agentd_route;

/* 403 unless the principal has one of the roles. For checks inside a handler. */
int agentd_require_role(const agentd_request *r, unsigned roles);

/* The daemon's configuration (see agentd/cli.h for the accessors) and data directory. */
struct agentd_config;
const struct agentd_config *agentd_ctx_config(const agentd_ctx *ctx);
const char *agentd_ctx_data_dir(const agentd_ctx *ctx);

/* Route tables, one per routes_*.c file, each ending with a {NULL} entry. */
extern const agentd_route agentd_routes_core[];      /* routes_core.c: health, metrics, keys */
extern const agentd_route agentd_routes_retrieval[]; /* routes_retrieval.c */
extern const agentd_route agentd_routes_audit[];     /* routes_audit.c */
extern const agentd_route agentd_routes_tools[];     /* routes_tools.c */
extern const agentd_route agentd_routes_policies[];  /* routes_policies.c */
extern const agentd_route agentd_routes_memory[];    /* routes_memory.c */
extern const agentd_route agentd_routes_runs[];      /* routes_runs.c: runs and workflows */
extern const agentd_route agentd_routes_openai[];    /* routes_openai.c: chat completions, models */
extern const agentd_route agentd_routes_web[];       /* routes_web.c: the browser console (static files) */

#endif
