/*
 * The planner's view of the world (internal to agentd/): the services a run
 * acts through, and the two executors built on them — agent runs (plan, call
 * tools, retrieve, answer with citations) and declared workflows (a JSON graph
 * of steps).
 *
 * The services are a table of function pointers so that the planner's logic
 * is tested with a scripted model, tools and retrieval, and runs unchanged on
 * the real engine, sandboxed tools and the document store.
 */
#ifndef AGENTD_PLANNER_H
#define AGENTD_PLANNER_H

#include "agentd/runs.h"

/* A chat request in the OpenAI shape, so local and remote backends take the same thing:
 * the local one renders it with the model's chat template (models/FORMAT.md), a
 * remote one sends it as it is. */
typedef struct agentd_gen_request {
	const json_t *
		messages; /* [{"role": system|user|assistant|tool, "content": "...", "tool_calls"?: [...]}] */
	const json_t *tools; /* [{"type": "function", "function": {name, description, parameters}}] or NULL */
	int max_tokens;
	/* Texts the answer may quote (array of strings) or NULL: a local model's quotes are then
	 * copied from them verbatim and cited with a marker naming one that holds the quote
	 * (engine_chat_request.quote_sources). */
	const json_t *quote_sources;
	/* The question the quotes answer, or NULL (engine_chat_request.quote_question). */
	const char *quote_question;
	double temperature; /* 0: greedy */
	uint64_t seed;
	/* Called with each piece of answer text as it is generated; nonzero stops generation. May be NULL. */
	int (*on_text)(void *cls, const char *piece, size_t len);
	void *on_text_cls;
	/* Polled at every token with on_text_cls; nonzero stops generation. May be NULL. */
	int (*should_stop)(void *cls);
} agentd_gen_request;

typedef struct agentd_gen_result {
	char *content;      /* the answer text, reasoning (<think>) removed; caller frees */
	char *reasoning;    /* the model's reasoning, kept to render its turn back as it was; or NULL */
	json_t *tool_calls; /* [{"name": ..., "arguments": {...}}] when the model called tools, else NULL */
	long prompt_tokens;
	long completion_tokens;
	double seconds;
} agentd_gen_result;

void agentd_gen_result_clear(agentd_gen_result *r);

typedef struct agentd_services {
	/* Generates the model's continuation of req->prompt. */
	int (*generate)(void *cls, agentd_run *run, const agentd_gen_request *req, agentd_gen_result *out);
	/* Runs a tool for the run's principal (policy-checked and sandboxed by the implementation);
	 * *result (caller's) is the tool's JSON answer {"ok": true, "result": ...} or {"ok": false, "error":
	 * ...}. */
	int (*call_tool)(void *cls, agentd_run *run, const char *name, const json_t *args, json_t **result);
	/* Searches the given collections (NULL: all the principal may read); *hits (caller's) is an
	 * array of {chunk_id, document_id, title, title_path, text, start_byte, end_byte, score}. */
	int (*retrieve)(void *cls, agentd_run *run, const char *query, const json_t *collections, int k,
			json_t **hits);
	/* Optional policy gates (NULL: everything passes). check_input sees the question before
	 * anything runs; check_output sees the draft answer and may replace it (*answer_out,
	 * caller's, NULL to keep it). Either returns AG_EDENIED with the rule in the message. */
	int (*check_input)(void *cls, agentd_run *run, const char *input);
	int (*check_output)(void *cls, agentd_run *run, const char *answer, char **answer_out);
	/* Optional: the role's budget limits, which a request may lower but never raise.
	 * Fills the fields it knows (0: no limit from policy). */
	void (*role_budget)(void *cls, agentd_run *run, long *max_steps, long *max_tokens, long *max_seconds,
			    long *max_tool_calls);
	/* Optional: called once before the first model call and once at the end. With a
	 * per-user memory, begin restores the user's state (and holds the user's lock) and end
	 * commits the question and the final answer to it when the run succeeded. */
	int (*run_begin)(void *cls, agentd_run *run);
	/* Optional: the tool named, as the model is to see it: {"type": "function", "function":
	 * {"name", "description", "parameters": its JSON Schema}} (*function, caller's).
	 * AG_ENOTFOUND for a name the catalogue does not hold. */
	int (*tool_schema)(void *cls, const char *name, json_t **function);
	void (*run_end)(void *cls, agentd_run *run, const char *question, const char *answer, bool succeeded);
	void *cls;
} agentd_services;

/* ----------------------------------------------------------- agent runs */

/* The executor for runs of kind "agent"; cls is an agentd_services. The request:
 * {"input": QUESTION, "collections": [...], "tools": [...], "requirements": [...],
 *  "budget": {"max_steps", "max_tokens", "max_seconds", "max_tool_calls"}, "k": N}. */
int agentd_agent_execute(agentd_run *run, void *cls);

/* Checks a draft answer against the run's documents and requirements. documents is the
 * array given to the model (each {"title", "text", "chunk_id", "document_id", "start_byte"});
 * *citations (caller's) lists the quotes found, *problems (caller's) what failed (empty: ok). */
int agentd_answer_check(const char *answer, const json_t *documents, const json_t *requirements,
			json_t **citations, json_t **problems);
/* Parses requirements given as objects ({"type": "min_citations", "value": 2}) or as
 * sentences ("cite at least two documents", "answer in under 100 words",
 * "must mention X"); *out is the normalised array. AG_EINVAL for one it cannot read. */
int agentd_requirements_parse(const json_t *in, json_t **out);

/* ------------------------------------------------------------ workflows */

int agentd_workflows_migrate(sqlite3 *db);
/* Checks a workflow definition; AG_EINVAL naming the first problem ("steps[2].next: ..."). */
int agentd_workflow_validate(const json_t *def);
/* Stores a validated definition for the tenant; *id_out is the caller's. */
int agentd_workflow_create(sqlite3 *db, const char *tenant, const char *user, const json_t *def,
			   char **id_out);
int agentd_workflow_get(sqlite3 *db, const char *tenant, const char *id, json_t **out);
int agentd_workflow_list(sqlite3 *db, const char *tenant, json_t **out);
/* The executor for runs of kind "workflow"; cls is an agentd_services. The run's
 * request holds {"workflow": DEFINITION, "input": ..., "budget": {...}}. */
int agentd_workflow_execute(agentd_run *run, void *cls);

/* The prompt pieces of models/FORMAT.md that are agentd's own. */
const char *agentd_prompt_system(void);
/* The user message: the <documents> block (each {"title", "text"}; ids from 1) and the question. */
int agentd_prompt_user_message(const json_t *documents, const char *question, char **out);

/* Expands {{name}} and {{name.field.0}} references against vars; strings go in as
 * they are, other values as compact JSON, missing ones as "". Caller frees. */
int agentd_template_expand(const char *tpl, const json_t *vars, char **out);
/* The value at "name.field.0" in vars (borrowed), or NULL. */
const json_t *agentd_vars_lookup(const json_t *vars, const char *path);

#endif
