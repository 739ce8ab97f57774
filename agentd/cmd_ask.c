/*
 * `agentd ask [--collection C] "question"`: one agent run in this process,
 * over the same store, model, tools, policies and audit log the daemon uses.
 * The answer streams to stdout as it is generated; then the citations and
 * the run id (which `GET /v1/runs/{id}` and the audit log know too).
 */
#include "agentd/audit.h"
#include "agentd/daemon.h"
#include "agentd/policy_store.h"
#include "agentd/services.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static int wait_and_print(sqlite3 *db, const char *tenant, const char *id, json_t **run_out)
{
	int64_t after = 0;
	bool finished = false;
	struct timespec pause = {0, 50 * 1000 * 1000};
	while (!finished) {
		json_t *events;
		int rc = agentd_runs_events(db, tenant, id, after, 256, &events, &finished);
		if (rc)
			return rc;
		size_t i;
		json_t *e;
		json_array_foreach(events, i, e)
		{
			after = json_integer_value(json_object_get(e, "id"));
			if (strcmp(json_string_value(json_object_get(e, "event")), "run.answer.delta") == 0) {
				fputs(json_string_value(json_object_get(json_object_get(e, "data"), "text")),
				      stdout);
				fflush(stdout);
			}
		}
		json_decref(events);
		if (!finished)
			nanosleep(&pause, NULL);
	}
	return agentd_runs_get(db, tenant, id, run_out);
}

int agentd_cmd_ask(int argc, char **argv)
{
	agentd_config *cfg;
	if (agentd_config_new(&cfg))
		return 1;
	static const char *const extra[] = {"collection", "tenant", "user", "role", "tools", NULL};
	const char *vals[5], *pos[1];
	int npos, status = 1, rc;
	if ((status = agentd_cli_parse(argc, argv, cfg, extra, vals, pos, 1, &npos)))
		goto out_cfg;
	if (npos != 1 || !*pos[0]) {
		fprintf(stderr, "usage: agentd ask [--collection C] [--tenant T] [--user U] \"question\"\n");
		status = 2;
		goto out_cfg;
	}
	agentd_ctx ctx;
	memset(&ctx, 0, sizeof ctx);
	ctx.cfg = cfg;
	snprintf(ctx.data_dir, sizeof ctx.data_dir, "%s", agentd_config_get(cfg, "data"));
	agentd_service_ctx sctx = {.daemon = &ctx};
	agentd_services svc;
	sqlite3 *db = NULL;
	char db_path[PATH_MAX + 16], *id = NULL;
	long long every;
	json_t *request = NULL, *run = NULL;
	const char *tenant = vals[1] ? vals[1] : "default";
	snprintf(db_path, sizeof db_path, "%s/agentd.db", ctx.data_dir);
	status = 1;
	if ((rc = agentd_store_open(cfg, &db)) ||
	    (rc = agentd_config_get_long(cfg, "audit_checkpoint_every", 0, INT64_MAX, &every)) ||
	    (rc = agentd_audit_open(&ctx.audit, db, ctx.data_dir, every)) ||
	    (rc = agentd_policies_open(&ctx, db)) || (rc = agentd_model_open(&ctx.model, cfg)) ||
	    (rc = agentd_runs_start(&ctx.runs, db_path, 1)))
		goto fail;
	sctx.model = ctx.model;
	agentd_services_init(&svc, &sctx);
	agentd_runs_set_audit(ctx.runs, ctx.audit);
	agentd_runs_set_executor(ctx.runs, "agent", agentd_agent_execute, &svc);
	request = json_pack("{s:s, s:[s]}", "input", pos[0], "tools", "calculator");
	if (!request) {
		rc = ag_error_set(AG_ENOMEM, "out of memory");
		goto fail;
	}
	if (vals[0])
		json_object_set_new(request, "collections", json_pack("[s]", vals[0]));
	if (vals[4]) {
		json_t *tools = json_array();
		char buf[512];
		snprintf(buf, sizeof buf, "%s", vals[4]);
		for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
			json_array_append_new(tools, json_string(t));
		json_object_set_new(request, "tools", tools);
	}
	if ((rc = agentd_runs_submit(ctx.runs, db, "agent", tenant, vals[2] ? vals[2] : "cli",
				     vals[3] ? vals[3] : "admin", request, &id)) ||
	    (rc = wait_and_print(db, tenant, id, &run)))
		goto fail;
	const char *st = json_string_value(json_object_get(run, "status"));
	printf("\n");
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(run, "citations"), i, c)
	{
		printf("[%lld] %s (document %s, bytes %lld-%lld)\n",
		       (long long)json_integer_value(json_object_get(c, "n")),
		       json_string_value(json_object_get(c, "title"))
			       ? json_string_value(json_object_get(c, "title"))
			       : "",
		       json_string_value(json_object_get(c, "document_id"))
			       ? json_string_value(json_object_get(c, "document_id"))
			       : "",
		       (long long)json_integer_value(json_object_get(c, "start_byte")),
		       (long long)json_integer_value(json_object_get(c, "end_byte")));
	}
	printf("run: %s (%s)\n", id, st);
	if (strcmp(st, "succeeded") != 0) {
		const char *err = json_string_value(json_object_get(run, "error"));
		fprintf(stderr, "agentd: the run %s: %s\n", st, err ? err : "no answer");
		goto done;
	}
	status = 0;
	goto done;
fail:
	fprintf(stderr, "agentd: %s\n", ag_error_last());
	status = 1;
done:
	json_decref(run);
	json_decref(request);
	ag_free(id);
	agentd_runs_stop(ctx.runs);
	agentd_policies_close();
	agentd_model_close(ctx.model);
	agentd_audit_free(ctx.audit);
	ag_db_close(db);
out_cfg:
	agentd_config_free(cfg);
	return status;
}
