/*
 * The daemon's agentd_services: what runs act through. Retrieval searches the
 * document store with the run's principal, so a run never sees a chunk its
 * user may not read; the model and the tools are reached through the engine
 * backend and the tool runtime the daemon was started with.
 */
#include "agentd/services.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <string.h>

#include "retrieval/retrieval.h"

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

static int svc_retrieve(void *cls, agentd_run *run, const char *query, const json_t *collections, int k,
			json_t **hits_out)
{
	(void)cls;
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
		.temperature = (float)req->temperature,
		.has_seed = true,
		.seed = req->seed,
		.on_text = req->on_text,
		.on_text_cls = req->on_text_cls,
	};
	engine_chat_response r;
	int64_t t0 = ag_monotonic_ns();
	int rc = s->model->chat(s->model->cls, &cr, &r);
	if (rc)
		return rc;
	out->content = r.content;
	out->tool_calls = r.tool_calls;
	out->prompt_tokens = r.prompt_tokens;
	out->completion_tokens = r.completion_tokens;
	out->seconds = (double)(ag_monotonic_ns() - t0) / 1e9;
	return 0;
}

static int svc_call_tool(void *cls, agentd_run *run, const char *name, const json_t *args, json_t **result)
{
	agentd_service_ctx *s = cls;
	if (!s->call_tool)
		return ag_error_set(AG_EUNSUPPORTED, "tools are not available in this daemon");
	return s->call_tool(s->call_tool_cls, run, name, args, result);
}

void agentd_services_init(agentd_services *svc, agentd_service_ctx *s)
{
	svc->generate = svc_generate;
	svc->call_tool = svc_call_tool;
	svc->retrieve = svc_retrieve;
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
	snprintf(m->name, sizeof m->name, "%s", engine_local_name(l));
	m->n_ctx = engine_model_config(engine_local_model(l))->n_ctx_train;
	m->chat = local_chat;
	m->cls = l;
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
