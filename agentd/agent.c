/*
 * The agent run: retrieve, let the model answer or call tools, feed the
 * results back, check the draft against the documents and the requirements,
 * retry within budget, and finish with an answer and its citations.
 *
 * Budgets count exactly: max_steps counts model calls and tool calls, and a
 * run whose next step would pass the limit stops before taking it; tokens
 * (prompt + completion) and seconds are checked after every step; tool calls
 * have their own limit. Answer text streams out as run.answer.delta events,
 * gathered into pieces of about 100 ms so the store is not written per token.
 */
#include "agentd/planner.h"

#include <stdio.h>
#include <string.h>

#define DEFAULT_MAX_STEPS      8
#define DEFAULT_MAX_TOKENS     8192
#define DEFAULT_MAX_SECONDS    300
#define DEFAULT_MAX_TOOL_CALLS 4
#define DEFAULT_K              5
#define DELTA_FLUSH_NS         (100 * 1000 * 1000)

typedef struct budget {
	long max_steps, max_tokens, max_seconds, max_tool_calls;
	long steps, tokens, tool_calls;
} budget;

typedef struct agent {
	agentd_run *run;
	agentd_services *svc;
	budget b;
	json_t *documents;    /* what the model was shown */
	json_t *quote_texts;  /* their texts: what the answer may quote */
	const char *question; /* the run's input (the request owns it) */
	json_t *messages;
	json_t *tools; /* tool schemas offered, or NULL */
	json_t *requirements;
	ag_buf delta; /* answer text not yet emitted */
	int64_t delta_since;
	bool cancelled_by_stream;
	ag_buf final_answer; /* the answer as returned, for the user's memory */
	bool succeeded;
} agent;

static long budget_value(const json_t *budget, const char *key, long def, long max)
{
	const json_t *v = json_object_get(budget, key);
	if (!json_is_integer(v) || json_integer_value(v) <= 0)
		return def;
	return json_integer_value(v) > max ? max : (long)json_integer_value(v);
}

/* Why the run must stop now, or NULL. */
static const char *over_budget(agent *a, char *buf, size_t n)
{
	budget *b = &a->b;
	double secs = (double)(ag_monotonic_ns() - a->run->started_ns) / 1e9;
	if (b->tokens > b->max_tokens)
		snprintf(buf, n, "token budget of %ld tokens exhausted", b->max_tokens);
	else if (secs > (double)b->max_seconds)
		snprintf(buf, n, "time budget of %ld seconds exhausted", b->max_seconds);
	else
		return NULL;
	return buf;
}

static void flush_delta(agent *a)
{
	if (!a->delta.len)
		return;
	agentd_run_emit(a->run, "run.answer.delta", json_pack("{s:s}", "text", a->delta.data), NULL);
	ag_buf_clear(&a->delta);
	a->delta_since = ag_monotonic_ns();
}

static int on_text(void *cls, const char *piece, size_t len)
{
	agent *a = cls;
	ag_buf_append(&a->delta, piece, len);
	if (ag_monotonic_ns() - a->delta_since > DELTA_FLUSH_NS)
		flush_delta(a);
	if (agentd_run_cancelled(a->run)) {
		a->cancelled_by_stream = true;
		return 1;
	}
	return 0;
}

static int should_stop(void *cls)
{
	agent *a = cls;
	if (agentd_run_cancelled(a->run)) {
		a->cancelled_by_stream = true;
		return 1;
	}
	return 0;
}

static int finish(agent *a, const char *status, json_t *extra, const char *error)
{
	flush_delta(a);
	json_t *result = json_pack("{s:{s:I, s:I, s:I}}", "usage", "steps", (json_int_t)a->b.steps, "tokens",
				   (json_int_t)a->b.tokens, "tool_calls", (json_int_t)a->b.tool_calls);
	if (result && extra)
		json_object_update(result, extra);
	json_decref(extra);
	return agentd_run_finish(a->run, status, result, error);
}

static int stop_for_budget(agent *a, const char *why)
{
	return finish(a, "failed", json_pack("{s:s}", "stopped_by", "budget"), why);
}

static int retrieve(agent *a, const char *question)
{
	const json_t *req = a->run->request;
	const json_t *collections = json_object_get(req, "collections");
	int k = (int)budget_value(req, "k", DEFAULT_K, 20);
	int64_t t0 = ag_monotonic_ns();
	agentd_run_emit(a->run, "run.step.started", json_pack("{s:s}", "kind", "retrieval"), NULL);
	json_t *hits = NULL;
	int rc = a->svc->retrieve(a->svc->cls, a->run, question, collections, k, &hits);
	if (rc)
		return rc;
	a->documents = hits;
	size_t i;
	json_t *h;
	/* Quotes are checked against exactly these texts (agentd_answer_check), so a local model is
	 * held to them while it writes: what it puts in quotes is copied, and cited where it is.
	 * When nothing was found the list is empty and the model may open no quote at all, which
	 * the check would only send back. */
	if (!(a->quote_texts = json_array()))
		return ag_error_set(AG_ENOMEM, "out of memory listing the documents");
	json_array_foreach(hits, i, h)
	{
		json_t *t = json_object_get(h, "text");
		if (json_is_string(t) ? json_array_append(a->quote_texts, t)
				      : json_array_append_new(a->quote_texts, json_string("")))
			return ag_error_set(AG_ENOMEM, "out of memory listing the documents");
	}
	json_t *ids = json_array();
	json_array_foreach(hits, i, h) json_array_append(ids, json_object_get(h, "chunk_id"));
	agentd_run_emit(a->run, "run.step.completed",
			json_pack("{s:s, s:s, s:o, s:I}", "kind", "retrieval", "query", question, "chunk_ids",
				  ids, "duration_ms", (json_int_t)((ag_monotonic_ns() - t0) / 1000000)),
			NULL);
	return 0;
}

static int build_messages(agent *a, const char *question)
{
	char *user;
	int rc = agentd_prompt_user_message(a->documents, question, &user);
	if (rc)
		return rc;
	a->messages = json_pack("[{s:s, s:s}, {s:s, s:s}]", "role", "system", "content",
				agentd_prompt_system(), "role", "user", "content", user);
	ag_free(user);
	return a->messages ? 0 : ag_error_set(AG_ENOMEM, "out of memory building the prompt");
}

/* One model call; *out is filled. Counts the step and its tokens. */
static int model_call(agent *a, agentd_gen_result *out)
{
	const json_t *req = a->run->request;
	agentd_gen_request g = {
		.messages = a->messages,
		.tools = a->tools,
		.max_tokens = (int)budget_value(req, "max_answer_tokens", 512, 8192),
		.quote_sources = a->quote_texts,
		.quote_question = a->question,
		.temperature = 0,
		.seed = 0,
		.on_text = on_text,
		.on_text_cls = a,
		.should_stop = should_stop,
	};
	int64_t t0 = ag_monotonic_ns();
	a->b.steps++;
	agentd_run_emit(a->run, "run.step.started",
			json_pack("{s:s, s:I}", "kind", "model_call", "step", (json_int_t)a->b.steps), NULL);
	int rc = a->svc->generate(a->svc->cls, a->run, &g, out);
	if (rc)
		return rc;
	a->b.tokens += out->prompt_tokens + out->completion_tokens;
	agentd_run_emit(a->run, "run.step.completed",
			json_pack("{s:s, s:I, s:I, s:I, s:I, s:s, s:s?, s:O?}", "kind", "model_call", "step",
				  (json_int_t)a->b.steps, "prompt_tokens", (json_int_t)out->prompt_tokens,
				  "completion_tokens", (json_int_t)out->completion_tokens, "duration_ms",
				  (json_int_t)((ag_monotonic_ns() - t0) / 1000000), "output",
				  out->content ? out->content : "", "reasoning", out->reasoning, "tool_calls",
				  out->tool_calls),
			NULL);
	return 0;
}

static bool tool_allowed(agent *a, const char *name)
{
	if (!a->tools)
		return false;
	size_t i;
	json_t *t;
	json_array_foreach(a->tools, i, t)
	{
		const char *n = json_string_value(json_object_get(json_object_get(t, "function"), "name"));
		if (n && strcmp(n, name) == 0)
			return true;
	}
	return false;
}

/* Runs the model's tool calls and appends them and their results to the conversation. */
static int run_tools(agent *a, const json_t *calls, const char *content, const char *reasoning, bool *stopped)
{
	json_t *assistant =
		json_pack("{s:s, s:s, s:O, s:s?}", "role", "assistant", "content", content ? content : "",
			  "tool_calls", calls, "reasoning_content", reasoning);
	if (!assistant || json_array_append_new(a->messages, assistant))
		return ag_error_set(AG_ENOMEM, "out of memory recording a tool call");
	size_t i;
	json_t *call;
	json_array_foreach(calls, i, call)
	{
		char why[96];
		if (a->b.tool_calls >= a->b.max_tool_calls) {
			snprintf(why, sizeof why, "tool call budget of %ld calls exhausted",
				 a->b.max_tool_calls);
			*stopped = true;
			return stop_for_budget(a, why);
		}
		if (a->b.steps >= a->b.max_steps) {
			snprintf(why, sizeof why, "step budget of %ld steps exhausted", a->b.max_steps);
			*stopped = true;
			return stop_for_budget(a, why);
		}
		a->b.steps++;
		a->b.tool_calls++;
		const char *name = json_string_value(json_object_get(call, "name"));
		const json_t *args = json_object_get(call, "arguments");
		int64_t t0 = ag_monotonic_ns();
		agentd_run_emit(
			a->run, "run.step.started",
			json_pack("{s:s, s:s?, s:O?}", "kind", "tool_call", "tool", name, "arguments", args),
			NULL);
		json_t *result = NULL;
		int rc = 0;
		if (!name)
			result = json_pack("{s:b, s:s}", "ok", 0, "error", "the tool call names no tool");
		else if (!tool_allowed(a, name))
			result = json_pack("{s:b, s:s}", "ok", 0, "error",
					   "this tool is not available in this run");
		else
			rc = a->svc->call_tool(a->svc->cls, a->run, name, args ? args : json_object(),
					       &result);
		if (rc)
			return rc;
		if (!result)
			return ag_error_set(AG_ENOMEM, "out of memory running a tool");
		agentd_run_emit(a->run, "run.step.completed",
				json_pack("{s:s, s:s?, s:O?, s:O, s:I}", "kind", "tool_call", "tool", name,
					  "arguments", args, "result", result, "duration_ms",
					  (json_int_t)((ag_monotonic_ns() - t0) / 1000000)),
				NULL);
		/* As models/FORMAT.md writes it (Python's json.dumps: ", " and ": ", ASCII), the form
		 * the shipped model was trained on: on 8 held-out arithmetic questions it gave the right
		 * result after 4 tool messages written so and after none written compactly. */
		char *text = json_dumps(result, JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
		json_decref(result);
		if (!text)
			return ag_error_set(AG_ENOMEM, "out of memory serialising a tool result");
		json_t *msg = json_pack("{s:s, s:s}", "role", "tool", "content", text);
		ag_free(text);
		if (!msg || json_array_append_new(a->messages, msg))
			return ag_error_set(AG_ENOMEM, "out of memory recording a tool result");
	}
	return 0;
}

static int answer_with_feedback(agent *a, const char *draft, const json_t *problems)
{
	ag_buf b = AG_BUF_INIT;
	int rc = ag_buf_puts(&b, "Your answer did not pass these checks:");
	size_t i;
	json_t *p;
	json_array_foreach(problems, i, p)
	{
		if (!rc)
			rc = ag_buf_printf(&b, "\n- %s", json_string_value(p));
	}
	if (!rc)
		rc = ag_buf_puts(&b, "\nAnswer again, quoting the documents exactly and citing them as [n].");
	json_t *m1 = json_pack("{s:s, s:s}", "role", "assistant", "content", draft);
	json_t *m2 = rc ? NULL : json_pack("{s:s, s:s}", "role", "user", "content", b.data);
	ag_buf_free(&b);
	if (!m1 || !m2 || json_array_append_new(a->messages, m1) || json_array_append_new(a->messages, m2)) {
		json_decref(m2);
		return ag_error_set(AG_ENOMEM, "out of memory asking for a better answer");
	}
	return 0;
}

static int agent_loop(agent *a)
{
	char why[128];
	json_t *last_problems = NULL;
	int rc = 0;
	for (;;) {
		if (agentd_run_cancelled(a->run))
			break;
		if (a->b.steps >= a->b.max_steps) {
			snprintf(why, sizeof why, "step budget of %ld steps exhausted", a->b.max_steps);
			if (last_problems) {
				/* Out of tries with an answer that fails its checks: say so plainly. */
				json_t *extra = json_pack(
					"{s:s, s:[], s:{s:b, s:O}}", "answer",
					"I could not produce an answer that satisfies the checks.",
					"citations", "validation", "ok", 0, "problems", last_problems);
				json_decref(last_problems);
				return finish(a, "succeeded", extra, NULL);
			}
			return stop_for_budget(a, why);
		}
		agentd_gen_result g = {0};
		if ((rc = model_call(a, &g)))
			break;
		if (a->cancelled_by_stream) {
			agentd_gen_result_clear(&g);
			break;
		}
		const char *stop = over_budget(a, why, sizeof why);
		if (stop) {
			agentd_gen_result_clear(&g);
			json_decref(last_problems);
			return stop_for_budget(a, stop);
		}
		if (g.tool_calls && json_array_size(g.tool_calls) > 0) {
			bool stopped = false;
			rc = run_tools(a, g.tool_calls, g.content, g.reasoning, &stopped);
			agentd_gen_result_clear(&g);
			if (rc || stopped)
				break;
			continue;
		}
		const char *draft = g.content ? g.content : "";
		json_t *citations = NULL, *problems = NULL;
		if ((rc = agentd_answer_check(draft, a->documents, a->requirements, &citations, &problems))) {
			agentd_gen_result_clear(&g);
			break;
		}
		agentd_run_emit(a->run, "run.step.completed",
				json_pack("{s:s, s:b, s:O}", "kind", "validation", "ok",
					  json_array_size(problems) == 0, "problems", problems),
				NULL);
		if (json_array_size(problems) == 0) {
			char *released = NULL;
			if (a->svc->check_output) {
				int orc = a->svc->check_output(a->svc->cls, a->run, draft, &released);
				if (orc) {
					json_decref(citations);
					json_decref(problems);
					agentd_gen_result_clear(&g);
					json_decref(last_problems);
					if (orc != AG_EDENIED)
						return orc;
					return finish(a, "failed", json_pack("{s:s}", "stopped_by", "policy"),
						      ag_error_last());
				}
			}
			json_t *extra =
				json_pack("{s:s, s:o, s:{s:b}}", "answer", released ? released : draft,
					  "citations", citations, "validation", "ok", 1);
			ag_buf_puts(&a->final_answer, released ? released : draft);
			a->succeeded = true;
			ag_free(released);
			json_decref(problems);
			agentd_gen_result_clear(&g);
			json_decref(last_problems);
			return finish(a, "succeeded", extra, NULL);
		}
		json_decref(citations);
		json_decref(last_problems);
		last_problems = problems;
		rc = answer_with_feedback(a, draft, problems);
		agentd_gen_result_clear(&g);
		if (rc)
			break;
	}
	json_decref(last_problems);
	return rc;
}

/* The tools offered to the model: the run's "tools" list, each name resolved to its description
 * and argument schema through the services, so the model reads what the tool takes and its
 * call is constrained to that schema. A name the catalogue lacks (or services without one)
 * becomes a stub the model may still call, to be told there is no such tool. */
static int offered_tools(agent *a)
{
	const json_t *list = json_object_get(a->run->request, "tools");
	const json_t *schemas = json_object_get(a->run->request, "tool_schemas");
	if (json_is_array(schemas) && json_array_size(schemas) > 0) {
		a->tools = json_deep_copy(schemas);
		return a->tools ? 0 : ag_error_set(AG_ENOMEM, "out of memory offering tools");
	}
	if (!json_is_array(list) || json_array_size(list) == 0)
		return 0;
	a->tools = json_array();
	size_t i;
	json_t *t;
	json_array_foreach(list, i, t)
	{
		if (!json_is_string(t))
			return ag_error_set(AG_EINVAL, "tools[%zu] must be a tool name", i);
		json_t *fn = NULL;
		int rc = a->svc->tool_schema ? a->svc->tool_schema(a->svc->cls, json_string_value(t), &fn)
					     : AG_ENOTFOUND;
		if (rc == AG_ENOTFOUND) {
			ag_error_clear();
			fn = json_pack("{s:s, s:{s:s, s:s, s:{s:s}}}", "type", "function", "function", "name",
				       json_string_value(t), "description", "", "parameters", "type",
				       "object");
		} else if (rc) {
			return rc;
		}
		if (!fn || json_array_append_new(a->tools, fn))
			return ag_error_set(AG_ENOMEM, "out of memory offering tools");
	}
	return 0;
}

int agentd_agent_execute(agentd_run *run, void *cls)
{
	agent a;
	memset(&a, 0, sizeof a);
	a.run = run;
	a.svc = cls;
	a.delta_since = ag_monotonic_ns();
	const json_t *req = run->request;
	const char *question = json_string_value(json_object_get(req, "input"));
	if (!question || !*question)
		return ag_error_set(AG_EINVAL, "input must be a non-empty string");
	a.question = question;
	const json_t *bud = json_object_get(req, "budget");
	a.b.max_steps = budget_value(bud, "max_steps", DEFAULT_MAX_STEPS, 1000);
	a.b.max_tokens = budget_value(bud, "max_tokens", DEFAULT_MAX_TOKENS, 10000000);
	a.b.max_seconds = budget_value(bud, "max_seconds", DEFAULT_MAX_SECONDS, 86400);
	a.b.max_tool_calls = budget_value(bud, "max_tool_calls", DEFAULT_MAX_TOOL_CALLS, 1000);
	if (a.svc->role_budget) {
		/* The role's limits are a ceiling the request can only lower. */
		long lim[4] = {0, 0, 0, 0};
		a.svc->role_budget(a.svc->cls, run, &lim[0], &lim[1], &lim[2], &lim[3]);
		long *have[4] = {&a.b.max_steps, &a.b.max_tokens, &a.b.max_seconds, &a.b.max_tool_calls};
		for (int i = 0; i < 4; i++)
			if (lim[i] > 0 && *have[i] > lim[i])
				*have[i] = lim[i];
	}
	if (a.svc->check_input) {
		int irc = a.svc->check_input(a.svc->cls, run, question);
		if (irc == AG_EDENIED)
			return agentd_run_finish(run, "failed", json_pack("{s:s}", "stopped_by", "policy"),
						 ag_error_last());
		if (irc)
			return irc;
	}
	/* An agent run keeps no resumable position: one interrupted by a restart ends honestly. */
	if (run->state)
		return agentd_run_finish(run, "failed", NULL,
					 "interrupted by a daemon restart; submit it again");
	int rc = agentd_run_save_state(run, json_pack("{s:b}", "started", 1));
	if (!rc)
		rc = agentd_requirements_parse(json_object_get(req, "requirements"), &a.requirements);
	if (!rc)
		rc = offered_tools(&a);
	bool begun = false;
	if (!rc && a.svc->run_begin) {
		rc = a.svc->run_begin(a.svc->cls, run);
		begun = rc == 0;
	}
	if (!rc)
		rc = retrieve(&a, question);
	if (!rc)
		rc = build_messages(&a, question);
	if (!rc)
		rc = agent_loop(&a);
	if (begun) {
		const char *answer = a.final_answer.data;
		a.svc->run_end(a.svc->cls, run, question, answer ? answer : "", a.succeeded && answer);
	}
	ag_buf_free(&a.final_answer);
	json_decref(a.documents);
	json_decref(a.quote_texts);
	json_decref(a.messages);
	json_decref(a.tools);
	json_decref(a.requirements);
	ag_buf_free(&a.delta);
	return rc;
}
