/*
 * `agentd serve`: opens the store, creates the first admin key on first
 * start, starts the HTTP server and waits for signals. SIGINT and SIGTERM
 * stop it gracefully (in-flight requests finish, the database is closed
 * cleanly); SIGHUP reloads the policy file, keeping the policy in force if the
 * file is invalid.
 */
#include "agentd/auth.h"
#include "agentd/audit.h"
#include "agentd/daemon.h"
#include "agentd/policy_store.h"
#include "agentd/services.h"
#include "retrieval/retrieval.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

/* On first start there are no keys: make an admin key, show it once and keep it 0600 in DATA/admin.key. */
static int ensure_admin_key(sqlite3 *db, const char *data_dir)
{
	long long nkeys;
	int rc = agentd_auth_count_keys(db, &nkeys);
	if (rc || nkeys > 0)
		return rc;
	char *key, *key_id;
	if ((rc = agentd_auth_create_key(db, "default", "admin", "admin", &key, &key_id)))
		return rc;
	char path[PATH_MAX];
	if ((size_t)snprintf(path, sizeof path, "%s/admin.key", data_dir) >= sizeof path)
		return ag_error_set(AG_EINVAL, "data directory path too long");
	char line[128];
	int n = snprintf(line, sizeof line, "%s\n", key);
	rc = ag_write_file(path, line, (size_t)n, 0600);
	if (!rc) {
		printf("agentd: created the first admin key (tenant 'default', user 'admin'); it is shown "
		       "once here "
		       "and kept in %s\nagentd: admin key: %s\n",
		       path, key);
		fflush(stdout);
	}
	memset(key, 0, strlen(key));
	memset(line, 0, sizeof line);
	ag_free(key);
	ag_free(key_id);
	return rc;
}

int agentd_cmd_serve(int argc, char **argv)
{
	agentd_config *cfg;
	if (agentd_config_new(&cfg)) {
		fprintf(stderr, "agentd: %s\n", ag_error_last());
		return 1;
	}
	const char *pos[1];
	int npos, status = 1;
	int rc = agentd_cli_parse(argc, argv, cfg, NULL, NULL, pos, 0, &npos);
	if (rc) {
		agentd_config_free(cfg);
		return rc;
	}
	ag_log_level level;
	if (ag_log_parse_level(agentd_config_get(cfg, "log_level"), &level)) {
		fprintf(stderr, "agentd: %s\n", ag_error_last());
		agentd_config_free(cfg);
		return 2;
	}
	ag_log_set_level(level);

	agentd_ctx ctx;
	memset(&ctx, 0, sizeof ctx);
	ctx.cfg = cfg;
	snprintf(ctx.data_dir, sizeof ctx.data_dir, "%s", agentd_config_get(cfg, "data"));
	ctx.fault_injection = strcmp(agentd_config_get(cfg, "fault_injection"), "1") == 0;

	/* Signals are taken by sigwait below; block them before any thread starts. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	sqlite3 *db = NULL;
	long long threads, shutdown_s;
	agentd_service_ctx service_ctx = {0};
	agentd_services services;
	char db_path[PATH_MAX + 16];
	if ((rc = agentd_store_open(cfg, &db)) || (rc = ensure_admin_key(db, ctx.data_dir)))
		goto fail;
	if ((rc = agentd_config_get_long(cfg, "threads", 1, 256, &threads)) ||
	    (rc = agentd_config_get_long(cfg, "shutdown_timeout", 0, 3600, &shutdown_s)))
		goto fail;
	snprintf(db_path, sizeof db_path, "%s/agentd.db", ctx.data_dir);
	if ((rc = agentd_dbpool_new(&ctx.pool, db_path, (int)threads + 4)) ||
	    (rc = agentd_metrics_new(&ctx.metrics)))
		goto fail;
	long long workers, checkpoint_every;
	if ((rc = agentd_config_get_long(cfg, "run_workers", 1, 64, &workers)) ||
	    (rc = agentd_config_get_long(cfg, "audit_checkpoint_every", 0, INT64_MAX, &checkpoint_every)) ||
	    (rc = agentd_audit_open(&ctx.audit, db, ctx.data_dir, checkpoint_every)) ||
	    (rc = agentd_runs_start(&ctx.runs, db_path, (int)workers)))
		goto fail;
	agentd_runs_set_audit(ctx.runs, ctx.audit);
	if ((rc = agentd_model_open(&ctx.model, cfg)))
		goto fail;
	service_ctx.model = ctx.model;
	service_ctx.daemon = &ctx;
	agentd_services_init(&services, &service_ctx);
	ctx.services = &services;
	agentd_runs_set_executor(ctx.runs, "agent", agentd_agent_execute, &services);
	agentd_runs_set_executor(ctx.runs, "workflow", agentd_workflow_execute, &services);
	/* The policy before any run resumes: its redaction rules apply to what runs put on record. */
	if ((rc = agentd_policies_open(&ctx, db)))
		goto fail;
	if ((rc = agentd_runs_resume(ctx.runs, db)))
		goto fail;
	if ((rc = agentd_http_start(&ctx)))
		goto fail;
	const char *listen = agentd_config_get(cfg, "listen");
	const char *colon = strrchr(listen, ':');
	printf("agentd: listening on http://%.*s:%u (data in %s)\n", (int)(colon - listen), listen, ctx.port,
	       ctx.data_dir);
	fflush(stdout);
	ag_info("serving on port %u with %lld threads", ctx.port, threads);

	long long retention_days;
	if ((rc = agentd_config_get_long(cfg, "audit_retention_days", 0, 36500, &retention_days)))
		goto fail;
	int64_t next_retention = 0;
	int64_t next_optimize = ag_now_ms() + 10 * 60 * 1000;
	for (;;) {
		/* Wake once a minute for housekeeping; signals end the wait at once. */
		struct timespec tick = {60, 0};
		int sig = sigtimedwait(&sigs, NULL, &tick);
		if (sig < 0) {
			if (retention_days > 0 && ag_now_ms() >= next_retention) {
				int64_t archived = 0;
				char *file = NULL;
				if (agentd_audit_retain(ctx.audit, db, ctx.data_dir, retention_days,
							&archived, &file))
					ag_warn("audit retention: %s", ag_error_last());
				else if (archived)
					ag_info("audit retention: archived %lld records to %s",
						(long long)archived, file);
				ag_free(file);
				next_retention = ag_now_ms() + 3600 * 1000;
			}
			if (ag_now_ms() >= next_optimize) {
				/* Documents attached one by one leave the FTS index in segments; merge them
				 * now and then so searches stay fast. */
				if (retrieval_optimize(db))
					ag_warn("search index merge: %s", ag_error_last());
				next_optimize = ag_now_ms() + 3600 * 1000;
			}
			continue;
		}
		if (sig == SIGHUP) {
			agentd_policies_reload(&ctx, db);
			continue;
		}
		ag_info("%s: stopping; in-flight requests may finish (up to %llds)",
			sig == SIGINT ? "SIGINT" : "SIGTERM", shutdown_s);
		break;
	}
	atomic_store(&ctx.stopping, true);
	agentd_http_stop(&ctx, shutdown_s * 1000);
	agentd_runs_stop(ctx.runs);
	ctx.runs = NULL;
	/* Sign the final head so an outside copy can tell later whether anything was cut. */
	if (agentd_audit_checkpoint_now(ctx.audit, db, NULL) && ag_error_code() != AG_ENOTFOUND)
		ag_warn("final audit checkpoint: %s", ag_error_last());
	status = 0;
	goto done;
fail:
	fprintf(stderr, "agentd: %s\n", ag_error_last());
	status = 1;
done:
	agentd_runs_stop(ctx.runs); /* unfinished runs stay 'running' and resume on the next start */
	agentd_policies_close();
	agentd_model_close(ctx.model);
	agentd_audit_free(ctx.audit);
	agentd_dbpool_free(ctx.pool);
	agentd_metrics_free(ctx.metrics);
	ag_db_close(db);
	agentd_config_free(cfg);
	if (status == 0) {
		printf("agentd: stopped\n");
		fflush(stdout);
	}
	return status;
}
