/*
 * Runs: storage of runs and their events, and the worker pool. See runs.h.
 *
 * Event numbers come from runs.last_event, bumped in the same transaction
 * that inserts the event, so numbers are dense and never reused even across
 * restarts. Live runs also keep the last number in memory so that event
 * streams can poll cheaply without touching the database.
 */
#include "agentd/runs.h"
#include "agentd/audit.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static const char *const runs_sql[] = {
	"CREATE TABLE runs ("
	"  id TEXT PRIMARY KEY,"
	"  tenant TEXT NOT NULL,"
	"  user TEXT NOT NULL,"
	"  role TEXT NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'waiting_approval', 'succeeded',"
	"                                         'failed', 'cancelled')),"
	"  request TEXT NOT NULL,"
	"  state TEXT,"
	"  result TEXT,"
	"  error TEXT,"
	"  approval TEXT,"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL,"
	"  finished_at INTEGER,"
	"  last_event INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX runs_tenant_created ON runs(tenant, created_at);"
	"CREATE INDEX runs_status ON runs(status);"
	"CREATE TABLE run_events ("
	"  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
	"  seq INTEGER NOT NULL,"
	"  type TEXT NOT NULL,"
	"  data TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  PRIMARY KEY (run_id, seq)) WITHOUT ROWID;",
};

int agentd_runs_migrate(sqlite3 *db)
{
	static const ag_migration_set set = {"runs", runs_sql, sizeof runs_sql / sizeof runs_sql[0]};
	return ag_db_migrate(db, &set);
}

typedef struct queued {
	struct queued *next;
	char id[40];
} queued;

typedef struct live_run {
	struct live_run *next;
	char id[40];
	atomic_llong last_event;
	atomic_bool cancel;
} live_run;

#define MAX_EXECUTORS 4

struct agentd_runs {
	char *db_path;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	queued *head, *tail;
	live_run *live;
	bool stopping;
	atomic_bool shutdown; /* tells executors to stop at their next step */
	int nworkers;
	pthread_t *threads;
	struct {
		const char *kind;
		agentd_run_executor fn;
		void *cls;
	} executors[MAX_EXECUTORS];
	int nexecutors;
	agentd_audit *audit; /* NULL: events are not audited */
};

/* ------------------------------------------------------------- storage */

static int step_done(sqlite3 *db, sqlite3_stmt *st, const char *what)
{
	int s = sqlite3_step(st);
	sqlite3_finalize(st);
	if (s != SQLITE_DONE && s != SQLITE_ROW)
		return ag_db_error(db, s, what);
	return 0;
}

static char *dump_or_null(const json_t *v)
{
	char *s = NULL;
	if (v && ag_json_dump(&s, NULL, v))
		return NULL;
	return s;
}

static int set_status(sqlite3 *db, const char *id, const char *status, const char *only_from)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(
		db, &st,
		only_from ? "UPDATE runs SET status = ?, updated_at = ? WHERE id = ? AND status = ?"
			  : "UPDATE runs SET status = ?, updated_at = ? WHERE id = ?");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, ag_now_ms());
	sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
	if (only_from)
		sqlite3_bind_text(st, 4, only_from, -1, SQLITE_STATIC);
	return step_done(db, st, "updating run status");
}

/* The audit record kind for a run event, or NULL for events not audited on their own
 * (a step's start is covered by its completion; answer deltas by the final answer). */
static const char *audit_kind(const char *type, const json_t *data)
{
	if (strcmp(type, "run.step.completed") == 0) {
		const char *k = json_string_value(json_object_get(data, "kind"));
		return k ? k : "step";
	}
	if (strcmp(type, "run.created") == 0)
		return "run";
	if (strcmp(type, "run.completed") == 0)
		return "answer";
	if (strcmp(type, "run.waiting_approval") == 0 || strcmp(type, "run.approved") == 0 ||
	    strcmp(type, "run.rejected") == 0)
		return "approval";
	return NULL;
}

/* Inserts event type/data for run id, and its audit record in the same transaction (so
 * a step is never stored without its record); in the caller's transaction if one is open. */
static int insert_event(agentd_audit *audit, sqlite3 *db, const char *id, const char *tenant,
			const char *user, const char *type, json_t *data, int64_t *seq_out)
{
	char *text = NULL;
	int rc = ag_json_dump(&text, NULL, data);
	if (rc)
		return rc;
	bool own_tx = sqlite3_get_autocommit(db);
	if (own_tx && (rc = ag_db_begin(db))) {
		ag_free(text);
		return rc;
	}
	sqlite3_stmt *st;
	int64_t seq = 0;
	if ((rc = ag_db_prepare(db, &st,
				"UPDATE runs SET last_event = last_event + 1, updated_at = ? "
				"WHERE id = ? RETURNING last_event")))
		goto fail;
	sqlite3_bind_int64(st, 1, ag_now_ms());
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW)
		seq = sqlite3_column_int64(st, 0);
	else
		rc = s == SQLITE_DONE ? ag_error_set(AG_ENOTFOUND, "no run '%s'", id)
				      : ag_db_error(db, s, "event");
	sqlite3_finalize(st);
	if (rc)
		goto fail;
	if ((rc = ag_db_prepare(db, &st,
				"INSERT INTO run_events(run_id, seq, type, data, created_at) "
				"VALUES (?, ?, ?, ?, ?)")))
		goto fail;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, seq);
	sqlite3_bind_text(st, 3, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, text, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, ag_now_ms());
	if ((rc = step_done(db, st, "storing event")))
		goto fail;
	const char *kind = audit ? audit_kind(type, data) : NULL;
	if (kind) {
		json_t *rec = json_pack("{s:s, s:O}", "event", type, "data", data);
		if (!rec) {
			rc = ag_error_set(AG_ENOMEM, "out of memory auditing an event");
			goto fail;
		}
		if ((rc = agentd_audit_record(audit, db, kind, tenant ? tenant : "", user ? user : "", id,
					      seq, rec)))
			goto fail;
	}
	if (own_tx && (rc = ag_db_commit(db)))
		goto fail;
	ag_free(text);
	if (seq_out)
		*seq_out = seq;
	return 0;
fail:
	if (own_tx)
		ag_db_rollback(db);
	ag_free(text);
	return rc;
}

/* ------------------------------------------------------------ live runs */

static live_run *find_live(agentd_runs *r, const char *id)
{
	for (live_run *l = r->live; l; l = l->next)
		if (strcmp(l->id, id) == 0)
			return l;
	return NULL;
}

int64_t agentd_runs_last_event(agentd_runs *r, const char *id)
{
	pthread_mutex_lock(&r->lock);
	live_run *l = find_live(r, id);
	int64_t v = l ? atomic_load(&l->last_event) : -1;
	pthread_mutex_unlock(&r->lock);
	return v;
}

static void enqueue(agentd_runs *r, const char *id)
{
	queued *q = ag_calloc(1, sizeof *q);
	if (!q) {
		/* The run stays queued in the store and is picked up at the next start. */
		ag_error("out of memory queueing run %s; it will resume on restart", id);
		return;
	}
	snprintf(q->id, sizeof q->id, "%s", id);
	pthread_mutex_lock(&r->lock);
	if (r->tail)
		r->tail->next = q;
	else
		r->head = q;
	r->tail = q;
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
}

/* ------------------------------------------------------------- workers */

static int load_run(sqlite3 *db, const char *id, agentd_run *run, char *status, size_t status_len)
{
	sqlite3_stmt *st;
	int rc =
		ag_db_prepare(db, &st,
			      "SELECT tenant, user, role, kind, status, request, state, approval, last_event "
			      "FROM runs WHERE id = ?");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s != SQLITE_ROW) {
		sqlite3_finalize(st);
		return s == SQLITE_DONE ? ag_error_set(AG_ENOTFOUND, "no run '%s'", id)
					: ag_db_error(db, s, "run");
	}
	snprintf(run->id, sizeof run->id, "%s", id);
	snprintf(run->tenant, sizeof run->tenant, "%s", (const char *)sqlite3_column_text(st, 0));
	snprintf(run->user, sizeof run->user, "%s", (const char *)sqlite3_column_text(st, 1));
	snprintf(run->role, sizeof run->role, "%s", (const char *)sqlite3_column_text(st, 2));
	snprintf(run->kind, sizeof run->kind, "%s", (const char *)sqlite3_column_text(st, 3));
	snprintf(status, status_len, "%s", (const char *)sqlite3_column_text(st, 4));
	const char *texts[3] = {(const char *)sqlite3_column_text(st, 5),
				(const char *)sqlite3_column_text(st, 6),
				(const char *)sqlite3_column_text(st, 7)};
	json_t **slots[3] = {&run->request, &run->state, &run->approval};
	for (int i = 0; i < 3 && !rc; i++)
		if (texts[i])
			rc = ag_json_parse(slots[i], texts[i], strlen(texts[i]));
	sqlite3_finalize(st);
	return rc;
}

static void run_clear(agentd_run *run)
{
	json_decref(run->request);
	json_decref(run->state);
	json_decref(run->approval);
	run->request = run->state = run->approval = NULL;
}

static void execute_one(agentd_runs *r, sqlite3 *db, const char *id)
{
	agentd_run run;
	memset(&run, 0, sizeof run);
	char status[32];
	if (load_run(db, id, &run, status, sizeof status)) {
		ag_error("run %s: %s", id, ag_error_last());
		run_clear(&run);
		return;
	}
	if (strcmp(status, "queued") != 0 && strcmp(status, "running") != 0) {
		run_clear(&run);
		return;
	}
	agentd_run_executor fn = NULL;
	void *cls = NULL;
	for (int i = 0; i < r->nexecutors; i++)
		if (strcmp(r->executors[i].kind, run.kind) == 0) {
			fn = r->executors[i].fn;
			cls = r->executors[i].cls;
		}
	live_run *l = ag_calloc(1, sizeof *l);
	if (!fn || !l) {
		ag_free(l);
		run.runs = r;
		run.db = db;
		agentd_run_finish(&run, "failed", NULL,
				  fn ? "out of memory starting the run" : "no executor for this kind of run");
		run_clear(&run);
		return;
	}
	snprintf(l->id, sizeof l->id, "%s", id);
	sqlite3_stmt *st;
	if (ag_db_prepare(db, &st, "SELECT last_event FROM runs WHERE id = ?") == 0) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			atomic_store(&l->last_event, sqlite3_column_int64(st, 0));
		sqlite3_finalize(st);
	}
	pthread_mutex_lock(&r->lock);
	l->next = r->live;
	r->live = l;
	pthread_mutex_unlock(&r->lock);

	run.runs = r;
	run.db = db;
	run.cancel = &l->cancel;
	run.started_ns = ag_monotonic_ns();
	set_status(db, id, "running", NULL);
	ag_log_set_request_id(id);
	int rc = fn(&run, cls);

	/* Whatever the executor left unfinished is settled here. */
	char now_status[32] = "";
	if (ag_db_prepare(db, &st, "SELECT status FROM runs WHERE id = ?") == 0) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			snprintf(now_status, sizeof now_status, "%s",
				 (const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
	}
	if (strcmp(now_status, "running") == 0) {
		if (atomic_load(&l->cancel)) {
			agentd_run_finish(&run, "cancelled", NULL, "cancelled");
		} else if (atomic_load(&r->shutdown)) {
			ag_info("run %s interrupted by shutdown; it resumes on the next start", id);
		} else if (rc) {
			agentd_run_finish(&run, "failed", NULL, ag_error_last());
		} else {
			agentd_run_finish(&run, "failed", NULL, "the executor ended without a result");
		}
	}
	ag_log_set_request_id(NULL);
	pthread_mutex_lock(&r->lock);
	for (live_run **pp = &r->live; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	pthread_mutex_unlock(&r->lock);
	ag_free(l);
	run_clear(&run);
}

static void *worker_main(void *arg)
{
	agentd_runs *r = arg;
	sqlite3 *db = NULL;
	if (ag_db_open(&db, r->db_path)) {
		ag_error("run worker cannot open the database: %s", ag_error_last());
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&r->lock);
		while (!r->head && !r->stopping)
			pthread_cond_wait(&r->wake, &r->lock);
		if (r->stopping) {
			pthread_mutex_unlock(&r->lock);
			break;
		}
		queued *q = r->head;
		r->head = q->next;
		if (!r->head)
			r->tail = NULL;
		pthread_mutex_unlock(&r->lock);
		execute_one(r, db, q->id);
		ag_free(q);
	}
	ag_db_close(db);
	return NULL;
}

int agentd_runs_start(agentd_runs **out, const char *db_path, int workers)
{
	agentd_runs *r = ag_calloc(1, sizeof *r);
	if (!r)
		return ag_error_set(AG_ENOMEM, "out of memory starting run workers");
	r->db_path = ag_strdup(db_path);
	r->threads = ag_calloc((size_t)workers, sizeof *r->threads);
	if (!r->db_path || !r->threads) {
		ag_free(r->db_path);
		ag_free(r->threads);
		ag_free(r);
		return ag_error_set(AG_ENOMEM, "out of memory starting run workers");
	}
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->wake, NULL);
	for (int i = 0; i < workers; i++) {
		if (pthread_create(&r->threads[i], NULL, worker_main, r) != 0) {
			agentd_runs_stop(r);
			return ag_error_set(AG_ERR, "could not start run worker %d", i);
		}
		r->nworkers++;
	}
	*out = r;
	return 0;
}

void agentd_runs_set_audit(agentd_runs *r, struct agentd_audit *audit) { r->audit = audit; }

void agentd_runs_set_executor(agentd_runs *r, const char *kind, agentd_run_executor fn, void *cls)
{
	for (int i = 0; i < r->nexecutors; i++)
		if (strcmp(r->executors[i].kind, kind) == 0) {
			r->executors[i].fn = fn;
			r->executors[i].cls = cls;
			return;
		}
	if (r->nexecutors < MAX_EXECUTORS) {
		r->executors[r->nexecutors].kind = kind;
		r->executors[r->nexecutors].fn = fn;
		r->executors[r->nexecutors].cls = cls;
		r->nexecutors++;
	}
}

int agentd_runs_resume(agentd_runs *r, sqlite3 *db)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(
		db, &st, "SELECT id FROM runs WHERE status IN ('queued', 'running') ORDER BY created_at");
	if (rc)
		return rc;
	int s, n = 0;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		enqueue(r, (const char *)sqlite3_column_text(st, 0));
		n++;
	}
	sqlite3_finalize(st);
	if (s != SQLITE_DONE)
		return ag_db_error(db, s, "resuming runs");
	if (n)
		ag_info("resuming %d runs left by the previous start", n);
	return 0;
}

void agentd_runs_stop(agentd_runs *r)
{
	if (!r)
		return;
	atomic_store(&r->shutdown, true);
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	pthread_cond_broadcast(&r->wake);
	pthread_mutex_unlock(&r->lock);
	for (int i = 0; i < r->nworkers; i++)
		pthread_join(r->threads[i], NULL);
	while (r->head) {
		queued *q = r->head;
		r->head = q->next;
		ag_free(q);
	}
	pthread_cond_destroy(&r->wake);
	pthread_mutex_destroy(&r->lock);
	ag_free(r->threads);
	ag_free(r->db_path);
	ag_free(r);
}

int agentd_runs_submit(agentd_runs *r, sqlite3 *db, const char *kind, const char *tenant, const char *user,
		       const char *role, const json_t *request, char **id_out)
{
	*id_out = NULL;
	char *id = ag_new_id("run");
	char *req = dump_or_null(request);
	int rc = 0;
	if (!id || !req) {
		rc = ag_error_set(AG_ENOMEM, "out of memory creating a run");
		goto out;
	}
	sqlite3_stmt *st;
	if ((rc = ag_db_prepare(db, &st,
				"INSERT INTO runs(id, tenant, user, role, kind, status, request, "
				"created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?)")))
		goto out;
	int64_t now = ag_now_ms();
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, role, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, req, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, now);
	sqlite3_bind_int64(st, 8, now);
	if ((rc = step_done(db, st, "creating run")))
		goto out;
	json_t *ev = json_pack("{s:s, s:s}", "id", id, "kind", kind);
	if ((rc = insert_event(r ? r->audit : NULL, db, id, tenant, user, "run.created", ev, NULL))) {
		json_decref(ev);
		goto out;
	}
	json_decref(ev);
	if (r)
		enqueue(r, id);
	*id_out = id;
	id = NULL;
out:
	ag_free(id);
	ag_free(req);
	return rc;
}

int agentd_runs_cancel(agentd_runs *r, sqlite3 *db, const char *tenant, const char *id)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st, "SELECT status FROM runs WHERE id = ? AND tenant = ?");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	char status[32] = "";
	if (s == SQLITE_ROW)
		snprintf(status, sizeof status, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (s != SQLITE_ROW)
		return s == SQLITE_DONE ? ag_error_set(AG_ENOTFOUND, "no run '%s'", id)
					: ag_db_error(db, s, "run");
	if (agentd_run_status_final(status))
		return ag_error_set(AG_ECONFLICT, "run '%s' has already ended (%s)", id, status);
	if (r) {
		pthread_mutex_lock(&r->lock);
		live_run *l = find_live(r, id);
		if (l)
			atomic_store(&l->cancel, true);
		pthread_mutex_unlock(&r->lock);
		if (l)
			return 0; /* the worker settles it at the run's next step */
	}
	/* Not executing: queued or waiting for approval, so cancel it here. */
	agentd_run run;
	memset(&run, 0, sizeof run);
	snprintf(run.id, sizeof run.id, "%s", id);
	run.db = db;
	run.runs = r;
	return agentd_run_finish(&run, "cancelled", NULL, "cancelled");
}

int agentd_runs_approve(agentd_runs *r, sqlite3 *db, const char *tenant, const char *id, const char *user,
			bool approved, const char *comment)
{
	int rc = ag_db_begin(db);
	if (rc)
		return rc;
	sqlite3_stmt *st;
	if ((rc = ag_db_prepare(db, &st, "SELECT status FROM runs WHERE id = ? AND tenant = ?")))
		goto fail;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	bool waiting =
		s == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "waiting_approval") == 0;
	sqlite3_finalize(st);
	if (s != SQLITE_ROW) {
		rc = s == SQLITE_DONE ? ag_error_set(AG_ENOTFOUND, "no run '%s'", id)
				      : ag_db_error(db, s, "run");
		goto fail;
	}
	if (!waiting) {
		rc = ag_error_set(AG_ECONFLICT, "run '%s' is not waiting for approval", id);
		goto fail;
	}
	json_t *decision = json_pack("{s:b, s:s, s:s?, s:I}", "approved", approved, "user", user, "comment",
				     comment, "at", (json_int_t)ag_now_ms());
	char *text = dump_or_null(decision);
	if (!text) {
		json_decref(decision);
		rc = ag_error_set(AG_ENOMEM, "out of memory approving a run");
		goto fail;
	}
	if ((rc = ag_db_prepare(db, &st,
				"UPDATE runs SET approval = ?, status = 'queued', updated_at = ? "
				"WHERE id = ?"))) {
		ag_free(text);
		json_decref(decision);
		goto fail;
	}
	sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, ag_now_ms());
	sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
	rc = step_done(db, st, "approving run");
	ag_free(text);
	if (!rc)
		rc = insert_event(r ? r->audit : NULL, db, id, tenant, user,
				  approved ? "run.approved" : "run.rejected", decision, NULL);
	json_decref(decision);
	if (rc || (rc = ag_db_commit(db)))
		goto fail;
	if (r)
		enqueue(r, id);
	return 0;
fail:
	ag_db_rollback(db);
	return rc;
}

bool agentd_run_status_final(const char *status)
{
	return strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 ||
	       strcmp(status, "cancelled") == 0;
}

/* --------------------------------------------------------- for executors */

static void note_event(agentd_runs *r, const char *id, int64_t seq)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	live_run *l = find_live(r, id);
	if (l && atomic_load(&l->last_event) < seq)
		atomic_store(&l->last_event, seq);
	pthread_mutex_unlock(&r->lock);
}

int agentd_run_emit(agentd_run *run, const char *type, json_t *data, int64_t *seq_out)
{
	if (!data)
		return ag_error_set(AG_ENOMEM, "out of memory recording an event");
	int64_t seq;
	int rc = insert_event(run->runs ? run->runs->audit : NULL, run->db, run->id, run->tenant, run->user,
			      type, data, &seq);
	json_decref(data);
	if (rc)
		return rc;
	note_event(run->runs, run->id, seq);
	if (seq_out)
		*seq_out = seq;
	return 0;
}

int agentd_run_save_state(agentd_run *run, json_t *state)
{
	char *text = dump_or_null(state);
	json_decref(state);
	if (!text)
		return ag_error_set(AG_ENOMEM, "out of memory saving run state");
	sqlite3_stmt *st;
	int rc = ag_db_prepare(run->db, &st, "UPDATE runs SET state = ?, updated_at = ? WHERE id = ?");
	if (!rc) {
		sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, ag_now_ms());
		sqlite3_bind_text(st, 3, run->id, -1, SQLITE_STATIC);
		rc = step_done(run->db, st, "saving run state");
	}
	ag_free(text);
	return rc;
}

int agentd_run_finish(agentd_run *run, const char *status, json_t *result, const char *error)
{
	char *text = dump_or_null(result);
	if (result && !text) {
		json_decref(result);
		return ag_error_set(AG_ENOMEM, "out of memory finishing a run");
	}
	sqlite3 *db = run->db;
	bool own_tx = sqlite3_get_autocommit(db);
	int rc = own_tx ? ag_db_begin(db) : 0;
	sqlite3_stmt *st;
	if (!rc && !(rc = ag_db_prepare(db, &st,
					"UPDATE runs SET status = ?, result = ?, error = ?, "
					"finished_at = ?, updated_at = ? WHERE id = ?"))) {
		int64_t now = ag_now_ms();
		sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
		ag_db_bind_text(st, 2, text);
		ag_db_bind_text(st, 3, error);
		sqlite3_bind_int64(st, 4, now);
		sqlite3_bind_int64(st, 5, now);
		sqlite3_bind_text(st, 6, run->id, -1, SQLITE_STATIC);
		rc = step_done(db, st, "finishing run");
	}
	int64_t seq = 0;
	if (!rc) {
		json_t *ev = json_pack("{s:s, s:s?}", "status", status, "error", error);
		if (ev && result && json_is_object(result))
			json_object_update(ev, result);
		rc = ev ? insert_event(run->runs ? run->runs->audit : NULL, db, run->id, run->tenant,
				       run->user, "run.completed", ev, &seq)
			: ag_error_set(AG_ENOMEM, "out of memory finishing a run");
		json_decref(ev);
	}
	if (!rc && own_tx)
		rc = ag_db_commit(db);
	if (rc && own_tx)
		ag_db_rollback(db);
	ag_free(text);
	json_decref(result);
	if (!rc)
		note_event(run->runs, run->id, seq);
	return rc;
}

int agentd_run_wait_approval(agentd_run *run, json_t *what)
{
	char *text = dump_or_null(what);
	if (!text) {
		json_decref(what);
		return ag_error_set(AG_ENOMEM, "out of memory pausing a run");
	}
	sqlite3 *db = run->db;
	int rc = ag_db_begin(db);
	sqlite3_stmt *st;
	if (!rc && !(rc = ag_db_prepare(db, &st,
					"UPDATE runs SET status = 'waiting_approval', approval = NULL, "
					"updated_at = ? WHERE id = ?"))) {
		sqlite3_bind_int64(st, 1, ag_now_ms());
		sqlite3_bind_text(st, 2, run->id, -1, SQLITE_STATIC);
		rc = step_done(db, st, "pausing run");
	}
	int64_t seq = 0;
	if (!rc)
		rc = insert_event(run->runs ? run->runs->audit : NULL, db, run->id, run->tenant, run->user,
				  "run.waiting_approval", what, &seq);
	if (!rc)
		rc = ag_db_commit(db);
	if (rc)
		ag_db_rollback(db);
	ag_free(text);
	json_decref(what);
	if (!rc)
		note_event(run->runs, run->id, seq);
	return rc;
}

bool agentd_run_cancelled(const agentd_run *run)
{
	return (run->cancel && atomic_load(run->cancel)) || (run->runs && atomic_load(&run->runs->shutdown));
}
