/*
 * The daemon's implementation of agentd_services (internal to agentd/):
 * retrieval over the document store, and whichever model backend and tool
 * runtime the daemon runs with, plugged in as function pointers.
 */
#ifndef AGENTD_SERVICES_H
#define AGENTD_SERVICES_H

#include "agentd/planner.h"

typedef struct agentd_service_ctx {
	/* The model: the local engine or a remote server; NULL when none is configured. */
	int (*generate)(void *cls, agentd_run *run, const agentd_gen_request *req, agentd_gen_result *out);
	void *generate_cls;
	/* The tool runtime (policy-checked, sandboxed); NULL when tools are unavailable. */
	int (*call_tool)(void *cls, agentd_run *run, const char *name, const json_t *args, json_t **result);
	void *call_tool_cls;
} agentd_service_ctx;

void agentd_services_init(agentd_services *svc, agentd_service_ctx *s);

#endif
