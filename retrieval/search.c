/*
 * Search: free text becomes an FTS5 query of quoted terms (so no user input
 * is ever read as FTS5 syntax), ranked by BM25 with the title column (the
 * document title and heading trail) weighted four times the body. Chunks
 * from collections the caller may not read are excluded in the same SQL
 * statement, never filtered afterwards, so a limit cannot be filled with
 * hidden rows and nothing hidden can leak into a result.
 *
 * Terms are first required together (AND); when that finds fewer than k
 * chunks, the remaining places are filled from a query that accepts any of
 * the terms (OR), with English stop words left out of it.
 */
#include "retrieval/internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_TERMS 32

static const char *const stop_words[] = {
	"a",    "an",   "and",  "are",  "as",   "at",    "be",    "by",    "for",  "from", "has",
	"have", "in",   "is",   "it",   "its",  "of",    "on",    "or",    "that", "the",  "this",
	"to",   "was",  "were", "will", "with", "what",  "which", "who",   "how",  "when", "where",
	"do",   "does", "can",  "i",    "you",  "we",    "they",  "he",    "she",  "not",  "no",
	"but",  "if",   "into", "than", "then", "there", "these", "those", "so",   "such", "about",
	"all",  "any",  "my",   "your", "our",  NULL};

static bool is_stop(const char *w, size_t n)
{
	for (size_t i = 0; stop_words[i]; i++)
		if (strlen(stop_words[i]) == n && strncasecmp(stop_words[i], w, n) == 0)
			return true;
	return false;
}

typedef struct term {
	const char *s;
	size_t n;
	bool prefix;
} term;

static bool word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static size_t split_terms(const char *q, term *t, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; q[i] && n < max;) {
		if (!word_byte((unsigned char)q[i])) {
			i++;
			continue;
		}
		size_t s = i;
		while (q[i] && word_byte((unsigned char)q[i]))
			i++;
		t[n].s = q + s;
		t[n].n = i - s;
		t[n].prefix = q[i] == '*';
		n++;
	}
	return n;
}

/* Builds an FTS5 expression of quoted terms joined by op, skipping stop words when asked. */
static int build_match(ag_buf *b, const term *t, size_t n, const char *op, bool skip_stop)
{
	size_t used = 0;
	b->len = 0;
	for (size_t i = 0; i < n; i++) {
		if (skip_stop && is_stop(t[i].s, t[i].n))
			continue;
		if (used++ && ag_buf_printf(b, " %s ", op))
			return ag_error_set(AG_ENOMEM, "out of memory");
		if (ag_buf_printf(b, "\"%.*s\"%s", (int)t[i].n, t[i].s, t[i].prefix ? "*" : ""))
			return ag_error_set(AG_ENOMEM, "out of memory");
	}
	return (int)used;
}

static void hit_clear(retrieval_hit *h)
{
	ag_free(h->document_id);
	ag_free(h->collection);
	ag_free(h->title);
	ag_free(h->title_path);
	ag_free(h->snippet);
	ag_free(h->text);
	ag_free(h->source);
	ag_free(h->commit);
	memset(h, 0, sizeof *h);
}

void retrieval_hits_free(retrieval_hits *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->count; i++)
		hit_clear(&h->items[i]);
	ag_free(h->items);
	ag_free(h);
}

static const char search_sql[] =
	"SELECT c.id, c.document_id, col.name, d.title, c.title_path,"
	" snippet(chunks_fts, 1, '<mark>', '</mark>', '…', 24), c.body, d.source, d.commit_id,"
	" -rank, c.start_byte, c.end_byte, d.date_ms"
	" FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid"
	" JOIN collections col ON col.id = c.collection_id"
	" JOIN documents d ON d.id = c.document_id"
	" WHERE chunks_fts MATCH :match AND " RETRIEVAL_ACL_SQL
	" AND (:colls IS NULL OR col.id IN (SELECT value FROM json_each(:colls)))"
	" AND (:doc IS NULL OR c.document_id = :doc)"
	" AND (:source IS NULL OR d.source = :source OR"
	"      (:source_prefix IS NOT NULL AND substr(d.source, 1, length(:source_prefix)) = :source_prefix))"
	" AND (:since = 0 OR d.date_ms >= :since) AND (:until = 0 OR d.date_ms < :until)"
	" ORDER BY rank LIMIT :k";

static bool have_chunk(const retrieval_hits *h, long long id)
{
	for (size_t i = 0; i < h->count; i++)
		if (h->items[i].chunk_id == id)
			return true;
	return false;
}

static int run_query(retrieval_hits *h, sqlite3 *db, const retrieval_principal *p, const retrieval_query *q,
		     const char *match, const char *colls_json, const char *source_prefix, int k)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st, search_sql);
	if (rc)
		return rc;
	rc = retrieval_acl_bind(st, p);
	if (!rc)
		rc = retrieval_bind_named(st, ":match", match);
	if (!rc)
		rc = retrieval_bind_named(st, ":colls", colls_json);
	if (!rc)
		rc = retrieval_bind_named(st, ":doc", q->document_id);
	if (!rc)
		rc = retrieval_bind_named(st, ":source", source_prefix ? NULL : q->source);
	if (!rc)
		rc = retrieval_bind_named(st, ":source_prefix", source_prefix);
	sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":since"), q->since_ms);
	sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":until"), q->until_ms);
	sqlite3_bind_int(st, sqlite3_bind_parameter_index(st, ":k"), k);
	if (source_prefix)
		sqlite3_bind_int(st, sqlite3_bind_parameter_index(st, ":source"),
				 1); /* not NULL: use the prefix */
	int s = SQLITE_DONE;
	while (!rc && h->count < (size_t)k && (s = sqlite3_step(st)) == SQLITE_ROW) {
		long long id = sqlite3_column_int64(st, 0);
		if (have_chunk(h, id))
			continue;
		retrieval_hit *x = &h->items[h->count];
		memset(x, 0, sizeof *x);
		x->chunk_id = id;
		x->document_id = ag_db_column_strdup(st, 1);
		x->collection = ag_db_column_strdup(st, 2);
		x->title = ag_db_column_strdup(st, 3);
		x->title_path = ag_db_column_strdup(st, 4);
		x->snippet = ag_db_column_strdup(st, 5);
		x->text = ag_db_column_strdup(st, 6);
		x->source = ag_db_column_strdup(st, 7);
		x->commit = ag_db_column_strdup(st, 8);
		x->score = sqlite3_column_double(st, 9);
		x->start_byte = (size_t)sqlite3_column_int64(st, 10);
		x->end_byte = (size_t)sqlite3_column_int64(st, 11);
		x->date_ms = sqlite3_column_int64(st, 12);
		h->count++;
		if (!x->document_id || !x->collection || !x->title || !x->title_path || !x->snippet ||
		    !x->text || !x->source || !x->commit)
			rc = ag_error_set(AG_ENOMEM, "out of memory");
	}
	if (!rc && s != SQLITE_DONE && s != SQLITE_ROW)
		rc = ag_db_error(db, s, "searching");
	sqlite3_finalize(st);
	return rc;
}

int retrieval_search(retrieval_hits **out, sqlite3 *db, const retrieval_principal *p,
		     const retrieval_query *q)
{
	int rc = retrieval_check_principal(p);
	if (rc)
		return rc;
	if (!q || !q->text)
		return ag_error_set(AG_EINVAL, "a query text is required");
	if (q->k < 0 || q->k > 100)
		return ag_error_set(AG_EINVAL, "k must be between 1 and 100");
	int k = q->k ? q->k : 10;
	term terms[MAX_TERMS];
	size_t nterms = split_terms(q->text, terms, MAX_TERMS);
	if (!nterms)
		return ag_error_set(AG_EINVAL, "the query has no words to search for");
	char *colls_json = NULL, *source_prefix = NULL;
	ag_buf match = AG_BUF_INIT;
	retrieval_hits *h = NULL;
	if (q->ncollections) {
		json_t *a = json_array();
		for (size_t i = 0; a && i < q->ncollections && !rc; i++) {
			coll_ref ref;
			if (!(rc = retrieval_coll_resolve(&ref, db, p, q->collections[i], false)) &&
			    json_array_append_new(a, json_string(ref.id)))
				rc = ag_error_set(AG_ENOMEM, "out of memory");
		}
		if (!a)
			rc = ag_error_set(AG_ENOMEM, "out of memory");
		if (!rc)
			rc = ag_json_dump(&colls_json, NULL, a);
		json_decref(a);
		if (rc)
			goto out;
	}
	if (q->source && *q->source && q->source[strlen(q->source) - 1] == '*' &&
	    !(source_prefix = ag_strndup(q->source, strlen(q->source) - 1))) {
		rc = ag_error_set(AG_ENOMEM, "out of memory");
		goto out;
	}
	if (!(h = ag_calloc(1, sizeof *h)) || !(h->items = ag_calloc((size_t)k, sizeof *h->items))) {
		rc = ag_error_set(AG_ENOMEM, "out of memory");
		goto out;
	}
	int used = build_match(&match, terms, nterms, "AND", false);
	if (used < 0) {
		rc = used;
		goto out;
	}
	if ((rc = run_query(h, db, p, q, match.data, colls_json, source_prefix, k)))
		goto out;
	if (h->count < (size_t)k && nterms > 1) {
		used = build_match(&match, terms, nterms, "OR", true);
		if (used < 0) {
			rc = used;
			goto out;
		}
		if (used > 0)
			rc = run_query(h, db, p, q, match.data, colls_json, source_prefix, k);
	}
out:
	ag_buf_free(&match);
	ag_free(colls_json);
	ag_free(source_prefix);
	if (rc) {
		retrieval_hits_free(h);
		return rc;
	}
	*out = h;
	return 0;
}
