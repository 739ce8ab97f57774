/*
 * The daemon's implementation of agentd_services (internal to agentd/):
 * retrieval over the document store, and whichever model backend and tool
 * runtime the daemon runs with, plugged in as function pointers.
 */
#ifndef AGENTD_SERVICES_H
#define AGENTD_SERVICES_H

#include "agentd/daemon.h"
#include "agentd/planner.h"

typedef struct agentd_service_ctx {
	agentd_ctx *daemon; /* for the policy in force (agentd/policy_store.h) and the audit log */
	/* The model: the local engine or a remote server; NULL when none is configured. */
	agentd_model *model;
} agentd_service_ctx;

void agentd_services_init(agentd_services *svc, agentd_service_ctx *s);

/* The model named by the configuration: --remote URL (an OpenAI-compatible server) or
 * --model FILE.gguf (the local engine). *out is NULL when neither can be had; the
 * reason is logged and /v1/chat/completions and runs answer with it. */
int agentd_model_open(agentd_model **out, const agentd_config *cfg);
void agentd_model_close(agentd_model *m);

#endif
