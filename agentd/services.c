/*
 * The daemon's agentd_services: what runs act through. Retrieval searches the
 * document store with the run's principal, so a run never sees a chunk its
 * user may not read; the model and the tools are reached through the engine
 * backend and the tool runtime the daemon was started with.
 */
#include "agentd/services.h"

#include <stdio.h>
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
	agentd_service_ctx *s = cls;
	if (!s->generate)
		return ag_error_set(
			AG_EUNSUPPORTED,
			"no model is loaded: start agentd with --model FILE.gguf or --remote URL");
	return s->generate(s->generate_cls, run, req, out);
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
