/*
 * Executing a workflow run: walks the step graph from the saved position,
 * calling the model, tools and retrieval through agentd_services, emitting
 * a started/completed event pair per step and saving the position and
 * variables after each one (see workflow.c for the definition format).
 */
#include "agentd/planner.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_STEPS 100

typedef struct wf_exec {
	agentd_run *run;
	agentd_services *svc;
	const json_t *steps;
	json_t *vars;
	char current[72]; /* "" when the graph has ended */
	long steps_done;
	long max_steps;
	long map_index;      /* progress inside a map step */
	json_t *map_results; /* results so far inside a map step */
	char awaiting[72];   /* the approval step the run is paused at */
} wf_exec;

static const json_t *find_step(const json_t *steps, const char *id)
{
	size_t i;
	json_t *s;
	json_array_foreach(steps, i, s)
	{
		const char *sid = json_string_value(json_object_get(s, "id"));
		if (sid && strcmp(sid, id) == 0)
			return s;
	}
	return NULL;
}

static void set_current(wf_exec *x, const json_t *id)
{
	const char *s = json_is_string(id) ? json_string_value(id) : "";
	snprintf(x->current, sizeof x->current, "%s", s);
}

static int save(wf_exec *x)
{
	json_t *st = json_pack("{s:s, s:O, s:I, s:I, s:O?, s:s}", "current", x->current, "vars", x->vars,
			       "steps", (json_int_t)x->steps_done, "map_index", (json_int_t)x->map_index,
			       "map_results", x->map_results, "awaiting", x->awaiting);
	if (!st)
		return ag_error_set(AG_ENOMEM, "out of memory saving workflow state");
	return agentd_run_save_state(x->run, st);
}

/* Arguments with templates expanded; a string that is exactly "{{name}}" takes the value itself. */
static json_t *expand_json(const json_t *v, const json_t *vars)
{
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = strlen(s);
		if (n > 4 && strncmp(s, "{{", 2) == 0 && strcmp(s + n - 2, "}}") == 0 &&
		    !strstr(s + 2, "{{")) {
			char path[128];
			size_t pl = n - 4;
			if (pl < sizeof path) {
				memcpy(path, s + 2, pl);
				path[pl] = '\0';
				const json_t *found = agentd_vars_lookup(vars, path);
				if (found)
					return json_deep_copy(found);
			}
		}
		char *out;
		if (agentd_template_expand(s, vars, &out))
			return NULL;
		json_t *r = json_string(out);
		ag_free(out);
		return r;
	}
	if (json_is_object(v)) {
		json_t *o = json_object();
		const char *k;
		json_t *e;
		json_object_foreach((json_t *)v, k, e)
		{
			json_t *c = expand_json(e, vars);
			if (!c || json_object_set_new(o, k, c)) {
				json_decref(o);
				return NULL;
			}
		}
		return o;
	}
	if (json_is_array(v)) {
		json_t *a = json_array();
		size_t i;
		json_t *e;
		json_array_foreach(v, i, e)
		{
			json_t *c = expand_json(e, vars);
			if (!c || json_array_append_new(a, c)) {
				json_decref(a);
				return NULL;
			}
		}
		return a;
	}
	return json_deep_copy(v);
}

static double as_number(const json_t *v, bool *ok)
{
	*ok = true;
	if (json_is_number(v))
		return json_number_value(v);
	if (json_is_string(v)) {
		char *end;
		double d = strtod(json_string_value(v), &end);
		if (end != json_string_value(v) && *end == '\0')
			return d;
	}
	*ok = false;
	return 0;
}

static bool not_empty(const json_t *v)
{
	if (!v || json_is_null(v))
		return false;
	if (json_is_string(v))
		return json_string_length(v) > 0;
	if (json_is_array(v))
		return json_array_size(v) > 0;
	if (json_is_object(v))
		return json_object_size(v) > 0;
	if (json_is_false(v))
		return false;
	return true;
}

static bool evaluate(const json_t *cond, const json_t *vars)
{
	const char *op = json_string_value(json_object_get(cond, "op"));
	const json_t *v = agentd_vars_lookup(vars, json_string_value(json_object_get(cond, "var")));
	const json_t *want = json_object_get(cond, "value");
	if (strcmp(op, "not_empty") == 0)
		return not_empty(v);
	if (strcmp(op, "empty") == 0)
		return !not_empty(v);
	if (!v)
		return strcmp(op, "not_equals") == 0;
	if (strcmp(op, "equals") == 0 || strcmp(op, "not_equals") == 0) {
		bool eq = json_equal(v, want);
		bool a_ok, b_ok;
		double a = as_number(v, &a_ok), b = as_number(want, &b_ok);
		if (!eq && a_ok && b_ok)
			eq = a == b;
		return strcmp(op, "equals") == 0 ? eq : !eq;
	}
	if (strcmp(op, "contains") == 0) {
		if (json_is_string(v) && json_is_string(want))
			return strstr(json_string_value(v), json_string_value(want)) != NULL;
		if (json_is_array(v)) {
			size_t i;
			json_t *e;
			json_array_foreach(v, i, e) if (json_equal(e, want)) return true;
		}
		return false;
	}
	bool a_ok, b_ok;
	double a = as_number(v, &a_ok), b = as_number(want, &b_ok);
	if (!a_ok || !b_ok)
		return false;
	if (strcmp(op, "gt") == 0)
		return a > b;
	if (strcmp(op, "lt") == 0)
		return a < b;
	if (strcmp(op, "gte") == 0)
		return a >= b;
	return a <= b;
}

/* Runs a retrieve, generate or tool step body; *out (caller's) is its result. */
static int run_action(wf_exec *x, const json_t *step, json_t **out)
{
	const char *type = json_string_value(json_object_get(step, "type"));
	agentd_services *svc = x->svc;
	int rc;
	if (strcmp(type, "retrieve") == 0) {
		char *query;
		if ((rc = agentd_template_expand(json_string_value(json_object_get(step, "query")), x->vars,
						 &query)))
			return rc;
		const json_t *k = json_object_get(step, "k");
		rc = svc->retrieve(svc->cls, x->run, query, json_object_get(step, "collections"),
				   k ? (int)json_integer_value(k) : 5, out);
		ag_free(query);
		return rc;
	}
	if (strcmp(type, "generate") == 0) {
		char *prompt;
		if ((rc = agentd_template_expand(json_string_value(json_object_get(step, "prompt")), x->vars,
						 &prompt)))
			return rc;
		json_t *messages = json_pack("[{s:s, s:s}, {s:s, s:s}]", "role", "system", "content",
					     agentd_prompt_system(), "role", "user", "content", prompt);
		ag_free(prompt);
		if (!messages)
			return ag_error_set(AG_ENOMEM, "out of memory building a prompt");
		const json_t *mt = json_object_get(step, "max_tokens");
		agentd_gen_request req = {.messages = messages,
					  .max_tokens = mt ? (int)json_integer_value(mt) : 256};
		agentd_gen_result res = {0};
		rc = svc->generate(svc->cls, x->run, &req, &res);
		json_decref(messages);
		if (!rc) {
			*out = json_string(res.content ? res.content : "");
			if (!*out)
				rc = ag_error_set(AG_ENOMEM, "out of memory keeping a step result");
		}
		agentd_gen_result_clear(&res);
		return rc;
	}
	/* tool */
	const json_t *args_tpl = json_object_get(step, "arguments");
	json_t *args = args_tpl ? expand_json(args_tpl, x->vars) : json_object();
	if (!args)
		return ag_error_set(AG_ENOMEM, "out of memory expanding tool arguments");
	json_t *result = NULL;
	rc = svc->call_tool(svc->cls, x->run, json_string_value(json_object_get(step, "tool")), args,
			    &result);
	json_decref(args);
	if (rc)
		return rc;
	/* A successful call yields its result; a refused or failed one yields the whole answer. */
	if (json_is_true(json_object_get(result, "ok")) && json_object_get(result, "result")) {
		*out = json_incref(json_object_get(result, "result"));
		json_decref(result);
	} else {
		*out = result;
	}
	return 0;
}

static int fail_run(wf_exec *x, const char *msg) { return agentd_run_finish(x->run, "failed", NULL, msg); }

/* Executes the current step. Returns 0 to continue, 1 when the run has paused or
 * ended, or a negative error. */
static int run_step(wf_exec *x)
{
	const json_t *step = find_step(x->steps, x->current);
	if (!step)
		return ag_error_set(AG_ECORRUPT, "workflow has no step '%s'", x->current);
	const char *id = x->current;
	const char *type = json_string_value(json_object_get(step, "type"));
	if (x->steps_done >= x->max_steps && strcmp(x->awaiting, id) != 0) {
		char msg[96];
		snprintf(msg, sizeof msg, "step budget of %ld steps exhausted", x->max_steps);
		return fail_run(x, msg) ? -1 : 1;
	}
	int64_t t0 = ag_monotonic_ns();
	if (strcmp(x->awaiting, id) != 0 || !x->run->approval)
		agentd_run_emit(x->run, "run.step.started",
				json_pack("{s:I, s:s, s:s}", "index", (json_int_t)x->steps_done, "id", id,
					  "type", type),
				NULL);
	json_t *output = NULL;
	const json_t *next = json_object_get(step, "next");
	int rc = 0;

	if (strcmp(type, "condition") == 0) {
		bool taken = evaluate(json_object_get(step, "if"), x->vars);
		next = json_object_get(step, taken ? "then" : "else");
		output = json_boolean(taken);
	} else if (strcmp(type, "approval") == 0) {
		if (strcmp(x->awaiting, id) != 0 || !x->run->approval) {
			char *message;
			if ((rc = agentd_template_expand(json_string_value(json_object_get(step, "message")),
							 x->vars, &message)))
				return rc;
			snprintf(x->awaiting, sizeof x->awaiting, "%s", id);
			rc = save(x);
			if (!rc)
				rc = agentd_run_wait_approval(
					x->run, json_pack("{s:s, s:s}", "step", id, "message", message));
			ag_free(message);
			return rc ? rc : 1;
		}
		bool approved = json_is_true(json_object_get(x->run->approval, "approved"));
		const char *who = json_string_value(json_object_get(x->run->approval, "user"));
		x->awaiting[0] = '\0';
		output = json_pack("{s:b, s:s?}", "approved", approved, "by", who);
		if (!approved) {
			const json_t *alt = json_object_get(step, "on_reject");
			if (!alt || json_is_null(alt)) {
				char msg[200];
				snprintf(msg, sizeof msg, "step '%s' was rejected by %s", id,
					 who ? who : "an approver");
				agentd_run_emit(x->run, "run.step.completed",
						json_pack("{s:I, s:s, s:s, s:o}", "index",
							  (json_int_t)x->steps_done, "id", id, "type", type,
							  "output", output),
						NULL);
				return fail_run(x, msg) ? -1 : 1;
			}
			next = alt;
		}
	} else if (strcmp(type, "answer") == 0) {
		char *text;
		if ((rc = agentd_template_expand(json_string_value(json_object_get(step, "text")), x->vars,
						 &text)))
			return rc;
		agentd_run_emit(x->run, "run.step.completed",
				json_pack("{s:I, s:s, s:s, s:s}", "index", (json_int_t)x->steps_done, "id",
					  id, "type", type, "output", text),
				NULL);
		rc = agentd_run_finish(x->run, "succeeded",
				       json_pack("{s:s, s:O, s:{s:I}}", "answer", text, "variables", x->vars,
						 "usage", "steps", (json_int_t)x->steps_done + 1),
				       NULL);
		ag_free(text);
		return rc ? rc : 1;
	} else if (strcmp(type, "map") == 0) {
		const json_t *items =
			agentd_vars_lookup(x->vars, json_string_value(json_object_get(step, "over")));
		const char *as = json_string_value(json_object_get(step, "as"));
		if (!x->map_results)
			x->map_results = json_array();
		size_t n = json_is_array(items) ? json_array_size(items) : 0;
		while (!rc && (size_t)x->map_index < n) {
			if (agentd_run_cancelled(x->run))
				return 1;
			json_object_set(x->vars, as, json_array_get(items, (size_t)x->map_index));
			json_t *r = NULL;
			rc = run_action(x, json_object_get(step, "step"), &r);
			if (rc)
				break;
			json_array_append_new(x->map_results, r);
			x->map_index++;
			rc = save(x); /* a restart resumes at the next item */
		}
		if (rc)
			return rc;
		json_object_del(x->vars, as);
		output = x->map_results;
		x->map_results = NULL;
		x->map_index = 0;
	} else {
		rc = run_action(x, step, &output);
		if (rc)
			return rc;
	}
	const char *out_name = json_string_value(json_object_get(step, "output"));
	if (out_name && output)
		json_object_set(x->vars, out_name, output);
	int64_t ms = (ag_monotonic_ns() - t0) / 1000000;
	agentd_run_emit(x->run, "run.step.completed",
			json_pack("{s:I, s:s, s:s, s:O?, s:I}", "index", (json_int_t)x->steps_done, "id", id,
				  "type", type, "output", output, "duration_ms", (json_int_t)ms),
			NULL);
	json_decref(output);
	x->steps_done++;
	set_current(x, next);
	if ((rc = save(x)))
		return rc;
	return 0;
}

int agentd_workflow_execute(agentd_run *run, void *cls)
{
	wf_exec x;
	memset(&x, 0, sizeof x);
	x.run = run;
	x.svc = cls;
	const json_t *def = json_object_get(run->request, "workflow");
	int rc = agentd_workflow_validate(def);
	if (rc)
		return rc;
	x.steps = json_object_get(def, "steps");
	const json_t *ms = json_object_get(json_object_get(run->request, "budget"), "max_steps");
	x.max_steps = json_is_integer(ms) && json_integer_value(ms) > 0 ? (long)json_integer_value(ms)
									: DEFAULT_MAX_STEPS;
	if (run->state) {
		x.vars = json_deep_copy(json_object_get(run->state, "vars"));
		set_current(&x, json_object_get(run->state, "current"));
		x.steps_done = (long)json_integer_value(json_object_get(run->state, "steps"));
		x.map_index = (long)json_integer_value(json_object_get(run->state, "map_index"));
		const json_t *mr = json_object_get(run->state, "map_results");
		x.map_results = json_is_array(mr) ? json_deep_copy(mr) : NULL;
		const char *aw = json_string_value(json_object_get(run->state, "awaiting"));
		snprintf(x.awaiting, sizeof x.awaiting, "%s", aw ? aw : "");
	} else {
		const json_t *input = json_object_get(run->request, "input");
		x.vars = json_pack("{s:O}", "input", input ? input : json_null());
		const json_t *start = json_object_get(def, "start");
		set_current(&x, start ? start : json_object_get(json_array_get(x.steps, 0), "id"));
	}
	if (!x.vars) {
		json_decref(x.map_results);
		return ag_error_set(AG_ENOMEM, "out of memory starting a workflow");
	}
	while (!rc) {
		if (agentd_run_cancelled(run))
			break;
		if (!x.current[0]) {
			/* The graph ran off its end without an answer step: the variables are the result. */
			rc = agentd_run_finish(run, "succeeded",
					       json_pack("{s:s, s:O, s:{s:I}}", "answer", "", "variables",
							 x.vars, "usage", "steps", (json_int_t)x.steps_done),
					       NULL);
			break;
		}
		rc = run_step(&x);
		if (rc == 1) {
			rc = 0;
			break;
		}
	}
	json_decref(x.vars);
	json_decref(x.map_results);
	return rc;
}
