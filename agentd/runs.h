/*
 * Runs (internal to agentd/): the durable record of agent runs and workflow
 * runs, their event stream, and the worker pool that executes them apart from
 * the HTTP threads.
 *
 * A run is a row in `runs` with a status (queued, running, waiting_approval,
 * succeeded, failed, cancelled) and an append-only list of events in
 * `run_events`, numbered from 1 — the steps, answer deltas and the final
 * result — which is what GET /v1/runs/{id}/events streams (resumable with
 * Last-Event-ID). An executor (the planner, the workflow engine) does the
 * work of a run on a worker thread, reporting through agentd_run_emit().
 * On start-up, runs that were running when the daemon stopped are queued
 * again; their executor resumes from the state it saved.
 */
#ifndef AGENTD_RUNS_H
#define AGENTD_RUNS_H

#include <stdatomic.h>

#include "common/common.h"

typedef struct agentd_runs agentd_runs;
typedef struct agentd_run agentd_run;

/* What an executor sees of the run it executes. */
struct agentd_run {
	agentd_runs *runs;
	sqlite3 *db; /* the worker's own connection */
	char id[40];
	char tenant[64];
	char user[128];
	char role[16];
	char kind[16];         /* "agent" or "workflow" */
	json_t *request;       /* the run's request as submitted (borrowed) */
	json_t *state;         /* what the executor saved last (borrowed; NULL at first start) */
	json_t *approval;      /* the last approval decision {approved, user, comment} or NULL */
	int64_t started_ns;    /* monotonic time the current execution began */
	atomic_bool *cancel;   /* set when cancellation is requested */
	char flagged_rule[96]; /* set when untrusted text in the context was flagged (policy rule id) */
	void *memory;          /* the services' per-run memory session, if any */
};

/* Does the run's work. Returns 0 after agentd_run_finish() or
 * agentd_run_wait_approval(); a negative code fails the run with the message. */
typedef int (*agentd_run_executor)(agentd_run *run, void *cls);

int agentd_runs_migrate(sqlite3 *db);

/* Starts `workers` threads taking runs from the queue; db_path opens their connections. */
int agentd_runs_start(agentd_runs **out, const char *db_path, int workers);
/* Records every step, approval and answer in the audit log, each in the same
 * transaction as the event it records. */
struct agentd_audit;
void agentd_runs_set_audit(agentd_runs *r, struct agentd_audit *audit);
/* Registers the executor for a kind of run ("agent", "workflow"). */
void agentd_runs_set_executor(agentd_runs *r, const char *kind, agentd_run_executor fn, void *cls);
/* Queues runs left running or queued by a previous daemon. Call after the executors are set. */
int agentd_runs_resume(agentd_runs *r, sqlite3 *db);
/* Stops taking work, asks running runs to stop at their next step and joins the workers.
 * Runs interrupted this way stay 'running' in the store and resume on the next start. */
void agentd_runs_stop(agentd_runs *r);

/* Creates a queued run and hands it to the workers; *id_out is the caller's. */
int agentd_runs_submit(agentd_runs *r, sqlite3 *db, const char *kind, const char *tenant, const char *user,
		       const char *role, const json_t *request, char **id_out);

/* The run as the API shows it (tenant-scoped: another tenant's run is not found). */
int agentd_runs_get(sqlite3 *db, const char *tenant, const char *id, json_t **out);
/* Lists the tenant's runs, newest first, with optional filters (NULL: any). */
int agentd_runs_list(sqlite3 *db, const char *tenant, const char *user, const char *status, int limit,
		     json_t **out);
/* Events after `after` (at most `max`), each {"id": seq, "event": type, "data": {...}}. */
int agentd_runs_events(sqlite3 *db, const char *tenant, const char *id, int64_t after, int max, json_t **out,
		       bool *finished);
/* True for the statuses a run never leaves: succeeded, failed, cancelled. */
bool agentd_run_status_final(const char *status);
/* The highest event number of a live run, without touching the database (-1 if not live). */
int64_t agentd_runs_last_event(agentd_runs *r, const char *id);

/* Requests cancellation; a waiting or queued run is cancelled at once. */
int agentd_runs_cancel(agentd_runs *r, sqlite3 *db, const char *tenant, const char *id);
/* Approves (or rejects) a run waiting for approval; it is queued to continue. */
int agentd_runs_approve(agentd_runs *r, sqlite3 *db, const char *tenant, const char *id, const char *user,
			bool approved, const char *comment);

/* ---- for executors ---- */

/* Appends an event to the run (steps: "run.step.started", "run.step.completed",
 * "run.answer.delta", ...); data is stolen. *seq_out may be NULL. */
int agentd_run_emit(agentd_run *run, const char *type, json_t *data, int64_t *seq_out);
/* Saves the executor's state (stolen) so a restart resumes from it. */
int agentd_run_save_state(agentd_run *run, json_t *state);
/* Ends the run: status "succeeded" or "failed"; result (stolen) holds answer, citations, usage... */
int agentd_run_finish(agentd_run *run, const char *status, json_t *result, const char *error);
/* Pauses the run until a permitted user approves; `what` (stolen) describes the step. */
int agentd_run_wait_approval(agentd_run *run, json_t *what);
bool agentd_run_cancelled(const agentd_run *run);

#endif
