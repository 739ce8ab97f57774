/*
 * The running daemon's shared state (internal to agentd/): configuration,
 * the database connection pool, metrics and the HTTP server. One agentd_ctx
 * lives for the whole of `agentd serve`; every request sees it read-only
 * except through the synchronised pieces (pool, metrics, counters).
 */
#ifndef AGENTD_DAEMON_H
#define AGENTD_DAEMON_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#include "agentd/cli.h"
#include "agentd/server.h"
#include "engine/engine.h"

/* ------------------------------------------------ database connection pool */

typedef struct agentd_dbpool agentd_dbpool;

int agentd_dbpool_new(agentd_dbpool **out, const char *path, int max_idle);
/* Hands out a connection for one thread's exclusive use until released. */
int agentd_dbpool_acquire(agentd_dbpool *p, sqlite3 **out);
/* Returns it; an open transaction is rolled back first. */
void agentd_dbpool_release(agentd_dbpool *p, sqlite3 *db);
void agentd_dbpool_free(agentd_dbpool *p);

/* ---------------------------------------------------------------- metrics */

typedef struct agentd_metrics agentd_metrics;

int agentd_metrics_new(agentd_metrics **out);
void agentd_metrics_free(agentd_metrics *m);
void agentd_metrics_request(agentd_metrics *m, const char *method, const char *route, int status,
			    double seconds);
void agentd_metrics_connection(agentd_metrics *m, int delta);
/* Prometheus text exposition format; caller frees. */
int agentd_metrics_render(agentd_metrics *m, char **out, size_t *len);

/* ----------------------------------------------------------------- router */

typedef struct agentd_match {
	const agentd_route *route; /* NULL: no route for this path and method */
	bool path_known;           /* some route has this path (so the method is wrong: 405) */
	char allow[64];            /* methods this path accepts, for the Allow header */
	int nparams;
	const char *param_names[8];
	char *param_values[8]; /* arena-allocated, percent-decoded */
} agentd_match;

/* Finds the route for method and path; path parameters are copied into the arena. */
int agentd_router_match(const char *method, const char *path, ag_arena *arena, agentd_match *out);

/* ------------------------------------------------------------- the model */

/* The model the daemon serves: the local engine or a remote server, behind one call. */
typedef struct agentd_model {
	char name[128]; /* the id /v1/models shows */
	long n_ctx;     /* context window in tokens; 0 when unknown */
	/* One chat completion; thread-safe. */
	int (*chat)(void *cls, const engine_chat_request *req, engine_chat_response *out);
	void *cls;
	atomic_int active;   /* generations running on threads of their own (streams) */
	engine_local *local; /* the local engine (states, memory), or NULL for a remote model */
} agentd_model;

/* ------------------------------------------------------------ the daemon */

struct agentd_ctx {
	agentd_config *cfg;
	char data_dir[PATH_MAX];
	agentd_dbpool *pool;
	agentd_metrics *metrics;
	size_t max_body;
	bool fault_injection;
	atomic_int inflight; /* requests between their first byte and their completion */
	struct MHD_Daemon *mhd;
	unsigned short port;              /* the bound port (useful when the configuration asked for 0) */
	struct agentd_runs *runs;         /* the run workers */
	struct agentd_services *services; /* what runs act through (model, tools, retrieval) */
	agentd_model *model;              /* NULL when the daemon runs without a model */
	struct agentd_audit *audit;       /* the audit log (key and settings; thread-safe) */
	atomic_bool stopping;             /* set on SIGTERM: event streams end */
};

/* Starts the HTTP server on the configured address. */
int agentd_http_start(agentd_ctx *ctx);
/* Stops accepting, lets in-flight requests finish (up to timeout_ms), then stops. */
void agentd_http_stop(agentd_ctx *ctx, int64_t timeout_ms);

#endif
