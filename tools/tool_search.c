/*
 * The search_docs tool: retrieval's ranked search with the caller's
 * principal, so only chunks the caller may read come back. The search itself
 * runs in the parent's prepare step: it reads the daemon's database, which a
 * sandboxed child cannot open (its descriptors are closed and Landlock hides
 * the data directory), and retrieval is trusted code whose only untrusted
 * input is the query text, bound by the FTS5 query parser. The child shapes
 * the answer, so the call still passes through the same size and time caps
 * as every other tool.
 */
#include "retrieval/retrieval.h"
#include "tools/tools_int.h"

#include <string.h>

static int search_prepare(tools_job *job, const json_t *args, const tools_env *env)
{
	if (!env->db)
		return ag_error_set(AG_EINVAL, "search_docs needs the document store");
	retrieval_principal p = {env->tenant, env->user, env->role};
	const char *collection = tools_arg_str(args, "collection", NULL);
	retrieval_query q = {.text = tools_arg_str(args, "query", ""),
			     .collections = collection ? &collection : NULL,
			     .ncollections = collection ? 1 : 0,
			     .k = (int)tools_arg_int(args, "k", 5)};
	retrieval_hits *hits;
	int rc = retrieval_search(&hits, env->db, &p, &q);
	if (rc)
		return rc;
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < hits->count; i++) {
		const retrieval_hit *h = &hits->items[i];
		json_t *v = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:I, s:I}", "document_id",
				      h->document_id, "collection", h->collection, "title",
				      h->title ? h->title : "", "heading", h->title_path ? h->title_path : "",
				      "text", h->text ? h->text : "", "source", h->source ? h->source : "",
				      "score", h->score, "start_byte", (json_int_t)h->start_byte, "end_byte",
				      (json_int_t)h->end_byte);
		if (!v || json_array_append_new(arr, v)) {
			json_decref(arr);
			arr = NULL;
		}
	}
	retrieval_hits_free(hits);
	if (!arr)
		return ag_error_set(AG_ENOMEM, "out of memory");
	json_t *input = json_pack("{s:o}", "hits", arr);
	if (!input)
		return ag_error_set(AG_ENOMEM, "out of memory preparing the call");
	tools_job_set_input(job, input);
	return 0;
}

static int search_run(json_t **out, const json_t *args, const json_t *input)
{
	(void)args;
	json_t *hits = json_object_get(input, "hits");
	*out = json_pack("{s:O, s:I}", "hits", hits ? hits : json_null(), "count",
			 (json_int_t)json_array_size(hits));
	return *out ? 0 : ag_error_set(AG_ENOMEM, "out of memory");
}

const tools_tool tools_builtin_search_docs = {
	.name = "search_docs",
	.description = "Searches the company documents the caller may read and returns the best-matching "
		       "passages with their document, collection and byte range for citations.",
	.schema = "{\"type\": \"object\", \"properties\": {"
		  "\"query\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 1000}, "
		  "\"collection\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 128}, "
		  "\"k\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 50}}, "
		  "\"required\": [\"query\"], \"additionalProperties\": false}",
	.limits = {.cpu_seconds = 2, .wall_seconds = 5, .memory_bytes = 256u << 20, .output_bytes = 4u << 20},
	.needs = 0,
	.prepare = search_prepare,
	.run = search_run,
};
