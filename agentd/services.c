/*
 * The daemon's agentd_services: what runs act through. Retrieval searches the
 * document store with the run's principal, so a run never sees a chunk its
 * user may not read; the model and the tools are reached through the engine
 * backend and the tool runtime the daemon was started with.
 */
#include "agentd/services.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <string.h>

#include "agentd/audit.h"
#include "agentd/policy_store.h"
#include "memory/memory.h"
#include "retrieval/retrieval.h"
#include "tools/tools.h"

static void principal_of(const agentd_run *run, retrieval_principal *p)
{
	p->tenant = run->tenant;
	p->user = run->user;
	p->role = run->role;
}

/* "Leave policy" + "Vacation > Carry-over" -> "Leave policy › Vacation › Carry-over" (models/FORMAT.md). */
static char *title_trail(const char *title, const char *path)
{
	ag_buf b = AG_BUF_INIT;
	int rc = ag_buf_puts(&b, title ? title : "");
	if (path && *path) {
		const char *p = path;
		if (!rc && b.len)
			rc = ag_buf_puts(&b, " \xe2\x80\xba ");
		while (!rc && *p) {
			if (strncmp(p, " > ", 3) == 0) {
				rc = ag_buf_puts(&b, " \xe2\x80\xba ");
				p += 3;
			} else {
				rc = ag_buf_putc(&b, *p++);
			}
		}
	}
	if (rc) {
		ag_buf_free(&b);
		return NULL;
	}
	return ag_buf_detach(&b, NULL);
}

static int screen_hits(agentd_service_ctx *s, agentd_run *run, json_t *hits);

static int svc_retrieve(void *cls, agentd_run *run, const char *query, const json_t *collections, int k,
			json_t **hits_out)
{
	retrieval_principal p;
	principal_of(run, &p);
	const char *names[32];
	size_t n = 0;
	size_t i;
	json_t *c;
	json_array_foreach(collections, i, c)
	{
		if (n < 32 && json_is_string(c))
			names[n++] = json_string_value(c);
	}
	retrieval_query q = {.text = query, .collections = n ? names : NULL, .ncollections = n, .k = k};
	retrieval_hits *hits;
	int rc = retrieval_search(&hits, run->db, &p, &q);
	if (rc == AG_EINVAL) {
		/* A question with no searchable words simply finds nothing. */
		*hits_out = json_array();
		return *hits_out ? 0 : ag_error_set(AG_ENOMEM, "out of memory");
	}
	if (rc)
		return rc;
	json_t *arr = json_array();
	for (i = 0; arr && i < hits->count; i++) {
		retrieval_hit *h = &hits->items[i];
		char *title = title_trail(h->title, h->title_path);
		char chunk[32];
		snprintf(chunk, sizeof chunk, "%lld", h->chunk_id);
		json_t *o = title ? json_pack("{s:s, s:s, s:s, s:s, s:s?, s:I, s:I, s:f, s:s?}", "chunk_id",
					      chunk, "document_id", h->document_id, "title", title, "text",
					      h->text, "source", h->source, "start_byte",
					      (json_int_t)h->start_byte, "end_byte", (json_int_t)h->end_byte,
					      "score", h->score, "collection", h->collection)
				  : NULL;
		ag_free(title);
		if (!o || json_array_append_new(arr, o)) {
			json_decref(arr);
			arr = NULL;
		}
	}
	retrieval_hits_free(hits);
	if (!arr)
		return ag_error_set(AG_ENOMEM, "out of memory collecting search hits");
	if (cls && (rc = screen_hits(cls, run, arr))) {
		json_decref(arr);
		return rc;
	}
	*hits_out = arr;
	return 0;
}

static int svc_generate(void *cls, agentd_run *run, const agentd_gen_request *req, agentd_gen_result *out)
{
	(void)run;
	agentd_service_ctx *s = cls;
	memset(out, 0, sizeof *out);
	if (!s->model)
		return ag_error_set(
			AG_EUNSUPPORTED,
			"no model is loaded: start agentd with --model FILE.gguf or --remote URL");
	engine_chat_request cr = {
		.messages = req->messages,
		.tools = req->tools,
		.max_tokens = req->max_tokens,
		.quote_sources = req->quote_sources,
		.quote_cite_required = req->quote_sources != NULL,
		.quote_question = req->quote_question,
		.temperature = (float)req->temperature,
		.has_seed = true,
		.seed = req->seed,
		.on_text = req->on_text,
		.on_text_cls = req->on_text_cls,
		.should_stop = req->should_stop,
	};
	engine_chat_response r;
	int64_t t0 = ag_monotonic_ns();
	int rc;
	if (run->memory && s->model->local) {
		/* On top of the user's memory: the system turn is already in it, the rest is new. */
		json_t *turns = json_array();
		size_t i;
		json_t *m;
		json_array_foreach(req->messages, i, m)
		{
			const char *role = json_string_value(json_object_get(m, "role"));
			if (!(i == 0 && role && strcmp(role, "system") == 0))
				json_array_append(turns, m);
		}
		engine_state *fork = NULL;
		rc = turns ? engine_state_fork(&fork, memory_session_state(run->memory))
			   : ag_error_set(AG_ENOMEM, "out of memory");
		cr.messages = turns;
		if (!rc)
			rc = engine_local_chat_state(s->model->local, fork, &cr, &r);
		engine_state_free(fork);
		json_decref(turns);
	} else {
		rc = s->model->chat(s->model->cls, &cr, &r);
	}
	if (rc)
		return rc;
	out->content = r.content;
	out->reasoning = r.reasoning;
	out->tool_calls = r.tool_calls;
	out->prompt_tokens = r.prompt_tokens;
	out->completion_tokens = r.completion_tokens;
	out->seconds = (double)(ag_monotonic_ns() - t0) / 1e9;
	return 0;
}

/* ---------------------------------------------------------------- policy */

static void who_of(const agentd_run *run, policies_principal *w)
{
	w->tenant = run->tenant;
	w->user = run->user;
	w->role = run->role;
}

static int acquire_policy(agentd_service_ctx *s, agentd_run *run, policies_policy **out)
{
	return agentd_policies_acquire(s->daemon, run->db, out);
}

/* Records a policy decision that changed something, named by its rule. */
static void audit_decision(agentd_service_ctx *s, agentd_run *run, const char *what,
			   const policies_decision *d)
{
	if (!s->daemon || !s->daemon->audit || d->action == POLICIES_ALLOW)
		return;
	json_t *data = json_pack("{s:s, s:s, s:s, s:s}", "check", what, "action",
				 policies_action_name(d->action), "rule", d->rule, "reason", d->reason);
	if (data)
		agentd_audit_record(s->daemon->audit, run->db, "policy", run->tenant, run->user, run->id, 0,
				    data);
}

static int svc_check_input(void *cls, agentd_run *run, const char *input)
{
	agentd_service_ctx *s = cls;
	policies_policy *p;
	int rc = acquire_policy(s, run, &p);
	if (rc)
		return rc;
	policies_principal who;
	who_of(run, &who);
	policies_decision d;
	rc = policies_check_input(p, &who, input, strlen(input), &d);
	if (!rc) {
		audit_decision(s, run, "input", &d);
		if (d.action == POLICIES_DENY)
			rc = ag_error_set(AG_EDENIED, "refused by policy rule %s: %s", d.rule, d.reason);
	}
	policies_release(p);
	return rc;
}

static int svc_check_output(void *cls, agentd_run *run, const char *answer, char **out)
{
	agentd_service_ctx *s = cls;
	*out = NULL;
	policies_policy *p;
	int rc = acquire_policy(s, run, &p);
	if (rc)
		return rc;
	policies_principal who;
	who_of(run, &who);
	policies_decision d;
	policies_redaction red = {0};
	rc = policies_check_output(p, &who, answer, strlen(answer), &d);
	if (!rc && d.action == POLICIES_DENY) {
		audit_decision(s, run, "output", &d);
		rc = ag_error_set(AG_EDENIED, "answer withheld by policy rule %s: %s", d.rule, d.reason);
	}
	if (!rc)
		rc = policies_redact(p, &who, POLICIES_SINK_OUTPUT, answer, strlen(answer), &red);
	if (!rc) {
		audit_decision(s, run, "output_redaction", &red.decision);
		if (red.decision.action == POLICIES_DENY)
			rc = ag_error_set(AG_EDENIED, "answer withheld by policy rule %s", red.decision.rule);
		else if (red.count > 0) {
			*out = red.text;
			red.text = NULL;
		}
	}
	policies_redaction_free(&red);
	policies_release(p);
	return rc;
}

static void svc_role_budget(void *cls, agentd_run *run, long *steps, long *tokens, long *secs, long *tools)
{
	agentd_service_ctx *s = cls;
	policies_policy *p;
	if (acquire_policy(s, run, &p))
		return;
	policies_budget b;
	if (policies_role_budget(p, run->role, &b) == 0) {
		*steps = (long)b.steps;
		*tokens = (long)b.tokens;
		*secs = (long)b.seconds;
		*tools = (long)b.tool_calls;
	}
	policies_release(p);
}

/* Makes retrieved text fit for the model: drops chunks of collections the role may not use,
 * flags instruction-like text (and remembers it for tool checks), redacts for the context. */
static int screen_hits(agentd_service_ctx *s, agentd_run *run, json_t *hits)
{
	policies_policy *p;
	int rc = acquire_policy(s, run, &p);
	if (rc)
		return rc;
	policies_principal who;
	who_of(run, &who);
	for (size_t i = 0; !rc && i < json_array_size(hits);) {
		json_t *h = json_array_get(hits, i);
		const char *col = json_string_value(json_object_get(h, "collection"));
		const char *text = json_string_value(json_object_get(h, "text"));
		policies_decision d;
		if (col && (rc = policies_check_collection(p, &who, col, &d)) == 0 &&
		    d.action == POLICIES_DENY) {
			audit_decision(s, run, "collection", &d);
			json_array_remove(hits, i);
			continue;
		}
		if (rc || !text)
			break;
		if ((rc = policies_scan_injection(p, text, strlen(text), &d)))
			break;
		if (d.action != POLICIES_ALLOW) {
			json_object_set_new(h, "flagged", json_string(d.rule));
			if (!run->flagged_rule[0])
				snprintf(run->flagged_rule, sizeof run->flagged_rule, "%s", d.rule);
			audit_decision(s, run, "retrieved_text", &d);
		}
		policies_redaction red = {0};
		if ((rc = policies_redact(p, &who, POLICIES_SINK_CONTEXT, text, strlen(text), &red)))
			break;
		if (red.decision.action == POLICIES_DENY) {
			audit_decision(s, run, "context_redaction", &red.decision);
			json_array_remove(hits, i);
			policies_redaction_free(&red);
			continue;
		}
		if (red.count > 0) {
			json_object_set_new(h, "text", json_string(red.text));
			audit_decision(s, run, "context_redaction", &red.decision);
		}
		policies_redaction_free(&red);
		i++;
	}
	policies_release(p);
	return rc;
}

static json_t *tool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *tool_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

/* A tool call for the run's principal: policy first (role, approval, flagged context), then
 * the sandbox. Refusals and tool errors go back to the model as {"ok": false, "error"}. */
static int svc_call_tool(void *cls, agentd_run *run, const char *name, const json_t *args, json_t **result)
{
	agentd_service_ctx *s = cls;
	*result = NULL;
	const tools_tool *t = tools_find(name);
	if (!t) {
		*result = tool_error("there is no tool named '%s'", name);
		return *result ? 0 : ag_error_set(AG_ENOMEM, "out of memory");
	}
	policies_policy *p;
	int rc = acquire_policy(s, run, &p);
	if (rc)
		return rc;
	policies_principal who;
	who_of(run, &who);
	policies_tool_props props = {.writes = false, .network = (t->needs & TOOLS_NEED_NETWORK) != 0};
	policies_run_context rctx = {.untrusted_flagged = run->flagged_rule[0] != 0,
				     .flag_rule = run->flagged_rule[0] ? run->flagged_rule : NULL};
	policies_decision d;
	if ((rc = policies_check_tool(p, &who, name, &props, &rctx, &d))) {
		policies_release(p);
		return rc;
	}
	audit_decision(s, run, "tool", &d);
	if (d.action == POLICIES_DENY || d.action == POLICIES_NEEDS_APPROVAL) {
		*result = tool_error("%s by policy rule %s: %s",
				     d.action == POLICIES_DENY ? "refused" : "needs a person's approval",
				     d.rule, d.reason);
		policies_release(p);
		return *result ? 0 : ag_error_set(AG_ENOMEM, "out of memory");
	}
	tools_env env = {.db = run->db, .tenant = run->tenant, .user = run->user, .role = run->role};
	json_t *out = NULL;
	rc = tools_call(&out, NULL, &env, name, args);
	if (rc == AG_ENOMEM) {
		policies_release(p);
		return rc;
	}
	if (rc) {
		*result = tool_error("%s", ag_error_last());
	} else {
		/* Tool output is untrusted data: flag it and redact it for the context like a document. */
		char *text = NULL;
		policies_redaction red = {0};
		if (ag_json_dump(&text, NULL, out) == 0) {
			policies_decision inj;
			if (policies_scan_injection(p, text, strlen(text), &inj) == 0 &&
			    inj.action != POLICIES_ALLOW) {
				if (!run->flagged_rule[0])
					snprintf(run->flagged_rule, sizeof run->flagged_rule, "%s", inj.rule);
				audit_decision(s, run, "tool_result", &inj);
			}
			if (policies_redact(p, &who, POLICIES_SINK_CONTEXT, text, strlen(text), &red) == 0 &&
			    red.count > 0 && red.text)
				*result = json_pack("{s:b, s:s}", "ok", 1, "result", red.text);
		}
		if (!*result)
			*result = json_pack("{s:b, s:O}", "ok", 1, "result", out);
		policies_redaction_free(&red);
		ag_free(text);
		json_decref(out);
	}
	policies_release(p);
	return *result ? 0 : ag_error_set(AG_ENOMEM, "out of memory");
}

/* ---------------------------------------------------------------- memory */

/* Whose memory a run uses: its own user, or the end user an admin key names in "user". */
static const char *memory_user(const agentd_run *run)
{
	const char *u = json_string_value(json_object_get(run->request, "user"));
	if (u && *u && strcmp(run->role, "admin") == 0)
		return u;
	return run->user;
}

static int svc_tool_schema(void *cls, const char *name, json_t **function)
{
	(void)cls;
	*function = NULL;
	const tools_tool *t = tools_find(name);
	if (!t)
		return ag_error_set(AG_ENOTFOUND, "there is no tool named '%s'", name);
	json_t *d;
	int rc = tools_describe(&d, t);
	if (rc)
		return rc;
	*function = json_pack("{s:s, s:{s:O, s:O, s:O}}", "type", "function", "function", "name",
			      json_object_get(d, "name"), "description", json_object_get(d, "description"),
			      "parameters", json_object_get(d, "parameters"));
	json_decref(d);
	return *function ? 0 : ag_error_set(AG_ENOMEM, "out of memory describing tool '%s'", name);
}

/* Every tool of the catalogue as the model sees them: a memory's system turn is written once
 * for all the user's runs, so it lists them all (each run's calls are still constrained to
 * the tools that run offers). */
static json_t *catalogue_tools(void)
{
	json_t *all = json_array();
	for (size_t i = 0; all && i < tools_count(); i++) {
		json_t *fn;
		if (svc_tool_schema(NULL, tools_at(i)->name, &fn) || json_array_append_new(all, fn)) {
			json_decref(all);
			return NULL;
		}
	}
	return all;
}

static int svc_run_begin(void *cls, agentd_run *run)
{
	agentd_service_ctx *s = cls;
	run->memory = NULL;
	const json_t *want = json_object_get(run->request, "memory");
	if (!s->model || !s->model->local || json_is_false(want))
		return 0; /* remote models hold no state; the request may opt out */
	long long budget = 0;
	if (s->daemon && s->daemon->cfg)
		agentd_config_get_long(s->daemon->cfg, "memory_kv_tokens", 0, INT64_MAX, &budget);
	json_t *pre = json_pack("[{s:s, s:s}]", "role", "system", "content", agentd_prompt_system());
	json_t *tools = catalogue_tools();
	memory_options opt = {.preamble = pre, .tools = tools, .kv_budget = (uint64_t)budget};
	memory_session *m;
	int rc = pre && tools ? memory_session_open(&m, run->db, s->model->local, run->tenant,
						    memory_user(run), &opt)
			      : ag_error_set(AG_ENOMEM, "out of memory");
	json_decref(pre);
	json_decref(tools);
	if (rc)
		return rc;
	run->memory = m;
	return 0;
}

static void svc_run_end(void *cls, agentd_run *run, const char *question, const char *answer, bool succeeded)
{
	(void)cls;
	memory_session *m = run->memory;
	if (!m)
		return;
	if (succeeded) {
		/* Only the question and the final answer are remembered: no documents, no tool chatter. */
		json_t *turns = json_pack("[{s:s, s:s}, {s:s, s:s}]", "role", "user", "content", question,
					  "role", "assistant", "content", answer);
		if (!turns || memory_session_commit(m, run->db, turns))
			ag_warn("run %s: the answer could not be added to the user's memory: %s", run->id,
				ag_error_last());
		json_decref(turns);
	}
	memory_session_close(m);
	run->memory = NULL;
}

void agentd_services_init(agentd_services *svc, agentd_service_ctx *s)
{
	memset(svc, 0, sizeof *svc);
	svc->generate = svc_generate;
	svc->call_tool = svc_call_tool;
	svc->retrieve = svc_retrieve;
	svc->check_input = svc_check_input;
	svc->check_output = svc_check_output;
	svc->role_budget = svc_role_budget;
	svc->run_begin = svc_run_begin;
	svc->run_end = svc_run_end;
	svc->tool_schema = svc_tool_schema;
	svc->cls = s;
}

/* ------------------------------------------------------------ the model */

static int remote_chat(void *cls, const engine_chat_request *req, engine_chat_response *out)
{
	return engine_remote_chat(cls, req, out);
}

static int local_chat(void *cls, const engine_chat_request *req, engine_chat_response *out)
{
	return engine_local_chat(cls, req, out);
}

/* The local engine on the configured GGUF. A missing file is not fatal: the daemon
 * serves everything else and says why it has no model. */
static int open_local(agentd_model **out, const agentd_config *cfg)
{
	const char *path = agentd_config_get(cfg, "model");
	if (!path || !*path || access(path, R_OK) != 0) {
		ag_warn("no model: %s is not readable; chat and agent runs will answer that no model is "
			"loaded",
			path && *path ? path : "(none configured)");
		return 0;
	}
	long long threads;
	int rc = agentd_config_get_long(cfg, "engine_threads", 1, 64, &threads);
	if (rc)
		return rc;
	agentd_model *m = ag_calloc(1, sizeof *m);
	if (!m)
		return ag_error_set(AG_ENOMEM, "out of memory opening the model");
	engine_local *l;
	if ((rc = engine_local_open(&l, path, (int)threads))) {
		ag_free(m);
		return ag_error_wrap(rc, "loading %s", path);
	}
	if ((rc = engine_set_kernels(engine_local_model(l), agentd_config_get(cfg, "engine_kernels")))) {
		engine_local_free(l);
		ag_free(m);
		return ag_error_wrap(rc, "config engine_kernels");
	}
	snprintf(m->name, sizeof m->name, "%s", engine_local_name(l));
	m->n_ctx = engine_model_config(engine_local_model(l))->n_ctx_train;
	m->chat = local_chat;
	m->cls = l;
	m->local = l;
	ag_info("model %s loaded from %s (%u layers, %llu parameters)", m->name, path,
		engine_model_config(engine_local_model(l))->n_layer,
		(unsigned long long)engine_model_config(engine_local_model(l))->n_params);
	*out = m;
	return 0;
}

int agentd_model_open(agentd_model **out, const agentd_config *cfg)
{
	*out = NULL;
	const char *remote = agentd_config_get(cfg, "remote");
	if (!remote || !*remote)
		return open_local(out, cfg);
	const char *key = agentd_config_get(cfg, "remote_api_key");
	if (!key || !*key)
		key = getenv("AGENTD_REMOTE_API_KEY");
	engine_remote_config rc_cfg = {
		.url = remote,
		.model = agentd_config_get(cfg, "remote_model"),
		.api_key = key,
	};
	agentd_model *m = ag_calloc(1, sizeof *m);
	if (!m)
		return ag_error_set(AG_ENOMEM, "out of memory opening the model");
	engine_remote *r;
	int rc = engine_remote_new(&r, &rc_cfg);
	if (rc) {
		ag_free(m);
		return rc;
	}
	const char *name = agentd_config_get(cfg, "remote_model");
	snprintf(m->name, sizeof m->name, "%s", name && *name ? name : "remote");
	m->chat = remote_chat;
	m->cls = r;
	*out = m;
	return 0;
}

void agentd_model_close(agentd_model *m)
{
	if (!m)
		return;
	/* Streams whose clients left may still be finishing a token: wait for them. */
	for (int i = 0; i < 3000 && atomic_load(&m->active) > 0; i++) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	if (m->chat == remote_chat)
		engine_remote_free(m->cls);
	else if (m->chat == local_chat)
		engine_local_free(m->cls);
	ag_free(m);
}
