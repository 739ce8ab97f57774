/*
 * The grep tool: a PCRE2 search over the documents of one collection the
 * caller may read. The parent loads those documents through retrieval's
 * public API with the caller's principal (so ACLs are retrieval's, not
 * ours) up to a byte budget; the child compiles the model-supplied pattern
 * and runs it with match, depth and heap limits, so a catastrophic pattern
 * costs at most the limits (and the sandbox's CPU limit behind them).
 */
#include "retrieval/retrieval.h"
#include "tools/tools_int.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>

#define GREP_MAX_BYTES   (64u << 20) /* text handed to one call */
#define GREP_LINE_CLIP   300
#define GREP_MATCH_LIMIT 1000000
#define GREP_DEPTH_LIMIT 10000
#define GREP_HEAP_KIB    20480

static int grep_prepare(tools_job *job, const json_t *args, const tools_env *env)
{
	if (!env->db)
		return ag_error_set(AG_EINVAL, "grep needs the document store");
	retrieval_principal p = {env->tenant, env->user, env->role};
	const char *collection = tools_arg_str(args, "collection", "");
	retrieval_collection *c;
	int rc = retrieval_collection_get(&c, env->db, &p, collection);
	if (rc)
		return rc;
	retrieval_collection_free(c);
	retrieval_document_list *list;
	if ((rc = retrieval_document_list_readable(&list, env->db, &p, collection)))
		return rc;
	json_t *docs = json_array();
	size_t total = 0;
	bool incomplete = false;
	for (size_t i = 0; docs && i < list->count && !rc; i++) {
		if (total + list->items[i].text_bytes > GREP_MAX_BYTES) {
			incomplete = true;
			break;
		}
		retrieval_document *d;
		if ((rc = retrieval_document_get(&d, env->db, &p, list->items[i].id, true)))
			break;
		total += d->text_len;
		json_t *text = json_stringn(d->text ? d->text : "", d->text_len);
		if (!text)
			text = json_string("");
		json_t *doc = json_pack("{s:s, s:s, s:o}", "id", d->id, "title", d->title ? d->title : "",
					"text", text);
		retrieval_document_free(d);
		if (!doc || json_array_append_new(docs, doc))
			rc = ag_error_set(AG_ENOMEM, "out of memory loading documents");
	}
	retrieval_document_list_free(list);
	if (!rc && !docs)
		rc = ag_error_set(AG_ENOMEM, "out of memory");
	if (rc) {
		json_decref(docs);
		return rc;
	}
	json_t *input = json_pack("{s:o, s:b}", "documents", docs, "incomplete", incomplete);
	if (!input)
		return ag_error_set(AG_ENOMEM, "out of memory preparing the call");
	tools_job_set_input(job, input);
	return 0;
}

/* A piece of text clipped to at most max bytes without splitting a UTF-8 character. */
static json_t *clip(const char *s, size_t len, size_t max)
{
	if (len > max) {
		len = max;
		while (len && ((unsigned char)s[len] & 0xC0) == 0x80)
			len--;
	}
	json_t *v = json_stringn(s, len);
	return v ? v : json_string("");
}

static int grep_run(json_t **out, const json_t *args, const json_t *input)
{
	const char *pattern = tools_arg_str(args, "pattern", "");
	long long max = tools_arg_int(args, "max_matches", 50);
	uint32_t opts = PCRE2_UTF | PCRE2_MULTILINE | PCRE2_MATCH_INVALID_UTF;
	if (tools_arg_bool(args, "case_insensitive", false))
		opts |= PCRE2_CASELESS;
	int err;
	PCRE2_SIZE erroff;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &err, &erroff, NULL);
	if (!re) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(err, msg, sizeof msg);
		return ag_error_set(AG_EINVAL, "bad pattern at offset %zu: %s", (size_t)erroff,
				    (const char *)msg);
	}
	pcre2_match_context *mc = pcre2_match_context_create(NULL);
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	if (!mc || !md) {
		pcre2_match_context_free(mc);
		pcre2_code_free(re);
		return ag_error_set(AG_ENOMEM, "out of memory");
	}
	pcre2_set_match_limit(mc, GREP_MATCH_LIMIT);
	pcre2_set_depth_limit(mc, GREP_DEPTH_LIMIT);
	pcre2_set_heap_limit(mc, GREP_HEAP_KIB);

	json_t *matches = json_array();
	bool truncated = false;
	int rc = 0;
	size_t i;
	const json_t *doc;
	json_array_foreach(json_object_get(input, "documents"), i, doc)
	{
		const char *text = json_string_value(json_object_get(doc, "text"));
		size_t len = json_string_length(json_object_get(doc, "text"));
		size_t offset = 0, line = 1, counted = 0;
		while (offset <= len) {
			int m = pcre2_match(re, (PCRE2_SPTR)text, len, offset, 0, md, mc);
			if (m == PCRE2_ERROR_NOMATCH)
				break;
			if (m < 0) {
				PCRE2_UCHAR msg[256];
				pcre2_get_error_message(m, msg, sizeof msg);
				rc = ag_error_set(m == PCRE2_ERROR_MATCHLIMIT ||
								  m == PCRE2_ERROR_DEPTHLIMIT ||
								  m == PCRE2_ERROR_HEAPLIMIT
							  ? AG_ELIMIT
							  : AG_EINVAL,
						  "the pattern is too costly to run: %s", (const char *)msg);
				break;
			}
			PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
			size_t start = ov[0], end = ov[1];
			for (; counted < start; counted++)
				if (text[counted] == '\n')
					line++;
			if ((long long)json_array_size(matches) == max) {
				truncated = true;
				break;
			}
			size_t ls = start, le = start;
			while (ls > 0 && text[ls - 1] != '\n')
				ls--;
			while (le < len && text[le] != '\n')
				le++;
			json_array_append_new(matches,
					      json_pack("{s:O, s:O, s:I, s:I, s:o, s:o}", "document_id",
							json_object_get(doc, "id"), "title",
							json_object_get(doc, "title"), "line",
							(json_int_t)line, "offset", (json_int_t)start,
							"match", clip(text + start, end - start, 200), "text",
							clip(text + ls, le - ls, GREP_LINE_CLIP)));
			/* An empty match moves one character on so the loop ends. */
			offset = end > start ? end : end + 1;
			while (offset < len && ((unsigned char)text[offset] & 0xC0) == 0x80)
				offset++;
		}
		if (rc || truncated)
			break;
	}
	pcre2_match_data_free(md);
	pcre2_match_context_free(mc);
	pcre2_code_free(re);
	if (rc) {
		json_decref(matches);
		return rc;
	}
	*out = json_pack("{s:o, s:I, s:b, s:b}", "matches", matches, "count",
			 (json_int_t)json_array_size(matches), "truncated", truncated, "incomplete",
			 json_is_true(json_object_get(input, "incomplete")));
	return *out ? 0 : ag_error_set(AG_ENOMEM, "out of memory");
}

const tools_tool tools_builtin_grep = {
	.name = "grep",
	.description =
		"Searches the documents of one collection with a regular expression (PCRE2 syntax) and "
		"returns matching lines with their document, line number and byte offset.",
	.schema = "{\"type\": \"object\", \"properties\": {"
		  "\"collection\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 128}, "
		  "\"pattern\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 1000}, "
		  "\"case_insensitive\": {\"type\": \"boolean\"}, "
		  "\"max_matches\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 500}}, "
		  "\"required\": [\"collection\", \"pattern\"], \"additionalProperties\": false}",
	.limits = {.cpu_seconds = 5,
		   .wall_seconds = 10,
		   .memory_bytes = 512u << 20,
		   .output_bytes = 4u << 20},
	.needs = 0,
	.prepare = grep_prepare,
	.run = grep_run,
};
