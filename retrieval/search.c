/*
 * Search: free text becomes an FTS5 query of quoted terms (so no user input
 * is ever read as FTS5 syntax), ranked by BM25 with the title column (the
 * document title and heading trail) weighted four times the body. Chunks
 * from collections the caller may not read are excluded in the same SQL
 * statement, never filtered afterwards, so a limit cannot be filled with
 * hidden rows and nothing hidden can leak into a result.
 *
 * English stop words are dropped. Terms are first required together (AND);
 * when that finds fewer than 3 chunks, queries leaving out one term at a
 * time fill the list; when nothing is found at all, the rarest terms are
 * accepted alone (OR), even a single one. Ranking every chunk that holds any common word is
 * what would make a search slow, so OR is never run over common terms.
 */
#include "retrieval/internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_TERMS 32
/* All terms together found fewer chunks than this: also rank chunks with any of them. */
#define OR_FALLBACK_BELOW 3
/* Queries of up to this many terms are relaxed by leaving one term out at a time. */
#define MAX_RELAX 8

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

/* Phase 1 ranks chunk ids only (no snippet, no text: those cost per matched row,
 * not per returned row); phase 2 fetches the k winners. Filters are added to the
 * SQL only when asked for. Collections come as a JSON array of readable ids. */
static int rank_chunks(long long *ids, double *scores, int *n, sqlite3 *db, const retrieval_query *q,
		       const char *match, const char *colls_json, const char *source_prefix, int k)
{
	ag_buf sql = AG_BUF_INIT;
	bool docs = q->source || q->since_ms || q->until_ms;
	int rc = ag_buf_puts(&sql,
			     "SELECT c.id, -rank FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid");
	if (!rc && docs)
		rc = ag_buf_puts(&sql, " JOIN documents d ON d.id = c.document_id");
	if (!rc)
		rc = ag_buf_puts(&sql, " WHERE chunks_fts MATCH :match"
				       " AND c.collection_id IN (SELECT value FROM json_each(:colls))");
	if (!rc && q->document_id)
		rc = ag_buf_puts(&sql, " AND c.document_id = :doc");
	if (!rc && q->source)
		rc = ag_buf_puts(&sql, source_prefix ? " AND substr(d.source, 1, length(:prefix)) = :prefix"
						     : " AND d.source = :source");
	if (!rc && q->since_ms)
		rc = ag_buf_puts(&sql, " AND d.date_ms >= :since");
	if (!rc && q->until_ms)
		rc = ag_buf_puts(&sql, " AND d.date_ms < :until");
	if (!rc)
		rc = ag_buf_puts(&sql, " ORDER BY rank LIMIT :k");
	if (rc) {
		ag_buf_free(&sql);
		return ag_error_set(AG_ENOMEM, "out of memory");
	}
	sqlite3_stmt *st;
	rc = ag_db_prepare(db, &st, sql.data);
	ag_buf_free(&sql);
	if (rc)
		return rc;
	if (retrieval_bind_named(st, ":match", match) || retrieval_bind_named(st, ":colls", colls_json) ||
	    retrieval_bind_named(st, ":doc", q->document_id) ||
	    retrieval_bind_named(st, ":source", q->source) ||
	    retrieval_bind_named(st, ":prefix", source_prefix)) {
		sqlite3_finalize(st);
		return ag_error_set(AG_ENOMEM, "out of memory");
	}
	sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":since"), q->since_ms);
	sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":until"), q->until_ms);
	sqlite3_bind_int(st, sqlite3_bind_parameter_index(st, ":k"), k);
	int s;
	*n = 0;
	while ((s = sqlite3_step(st)) == SQLITE_ROW && *n < k) {
		ids[*n] = sqlite3_column_int64(st, 0);
		scores[*n] = sqlite3_column_double(st, 1);
		(*n)++;
	}
	sqlite3_finalize(st);
	if (s != SQLITE_DONE && s != SQLITE_ROW)
		return ag_db_error(db, s, "searching");
	return 0;
}

static int fetch_hit(retrieval_hit *x, sqlite3_stmt *st, const char *match, long long id, double score)
{
	sqlite3_reset(st);
	retrieval_bind_named(st, ":match", match);
	sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":id"), id);
	int s = sqlite3_step(st);
	if (s != SQLITE_ROW)
		return s == SQLITE_DONE ? ag_error_set(AG_ERR, "chunk %lld vanished during the search", id)
					: ag_db_error(sqlite3_db_handle(st), s, "reading a hit");
	memset(x, 0, sizeof *x);
	x->chunk_id = id;
	x->score = score;
	x->snippet = ag_db_column_strdup(st, 0);
	x->document_id = ag_db_column_strdup(st, 1);
	x->collection = ag_db_column_strdup(st, 2);
	x->title = ag_db_column_strdup(st, 3);
	x->title_path = ag_db_column_strdup(st, 4);
	x->text = ag_db_column_strdup(st, 5);
	x->source = ag_db_column_strdup(st, 6);
	x->commit = ag_db_column_strdup(st, 7);
	x->start_byte = (size_t)sqlite3_column_int64(st, 8);
	x->end_byte = (size_t)sqlite3_column_int64(st, 9);
	x->date_ms = sqlite3_column_int64(st, 10);
	if (!x->document_id || !x->collection || !x->title || !x->title_path || !x->snippet || !x->text ||
	    !x->source || !x->commit)
		return ag_error_set(AG_ENOMEM, "out of memory");
	return 0;
}

static bool have_chunk(const retrieval_hits *h, long long id)
{
	for (size_t i = 0; i < h->count; i++)
		if (h->items[i].chunk_id == id)
			return true;
	return false;
}

/* Ranks up to k chunks for match and appends those not yet in h (h has room for cap). */
static int run_query(retrieval_hits *h, size_t cap, sqlite3 *db, const retrieval_query *q, const char *match,
		     const char *colls_json, const char *source_prefix, int k)
{
	long long ids[100];
	double scores[100];
	int n = 0;
	int rc = rank_chunks(ids, scores, &n, db, q, match, colls_json, source_prefix, k);
	if (rc || n == 0)
		return rc;
	sqlite3_stmt *st;
	if ((rc = ag_db_prepare(
		     db, &st,
		     "SELECT snippet(chunks_fts, 1, '<mark>', '</mark>', '…', 24), c.document_id, col.name,"
		     " d.title, c.title_path, c.body, d.source, d.commit_id, c.start_byte, c.end_byte, "
		     "d.date_ms"
		     " FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid"
		     " JOIN documents d ON d.id = c.document_id JOIN collections col ON col.id = "
		     "c.collection_id"
		     " WHERE chunks_fts MATCH :match AND chunks_fts.rowid = :id")))
		return rc;
	for (int i = 0; i < n && !rc && h->count < cap; i++) {
		if (have_chunk(h, ids[i]))
			continue;
		rc = fetch_hit(&h->items[h->count], st, match, ids[i], scores[i]);
		h->count++; /* counted even on failure, so retrieval_hits_free frees what was copied */
	}
	sqlite3_finalize(st);
	return rc;
}

/* The ids of the collections p may read (restricted to those named in q), as a JSON array. */
static int readable_collections(char **out, size_t *count, sqlite3 *db, const retrieval_principal *p,
				const retrieval_query *q)
{
	json_t *a = json_array();
	int rc = a ? 0 : ag_error_set(AG_ENOMEM, "out of memory");
	if (!rc && q->ncollections) {
		for (size_t i = 0; i < q->ncollections && !rc; i++) {
			coll_ref ref;
			if (!(rc = retrieval_coll_resolve(&ref, db, p, q->collections[i], false)) &&
			    json_array_append_new(a, json_string(ref.id)))
				rc = ag_error_set(AG_ENOMEM, "out of memory");
		}
	} else if (!rc) {
		sqlite3_stmt *st = NULL;
		if (!(rc = ag_db_prepare(db, &st,
					 "SELECT col.id FROM collections col WHERE " RETRIEVAL_ACL_SQL)) &&
		    !(rc = retrieval_acl_bind(st, p))) {
			int s = SQLITE_DONE;
			while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW)
				if (json_array_append_new(
					    a, json_string((const char *)sqlite3_column_text(st, 0))))
					rc = ag_error_set(AG_ENOMEM, "out of memory");
			if (!rc && s != SQLITE_DONE)
				rc = ag_db_error(db, s, "listing readable collections");
		}
		sqlite3_finalize(st);
	}
	if (!rc) {
		*count = json_array_size(a);
		rc = ag_json_dump(out, NULL, a);
	}
	json_decref(a);
	return rc;
}

/* Drops stop words (unless nothing else is left) and repeated terms. */
static size_t content_terms(term *t, size_t n)
{
	size_t content = 0;
	for (size_t i = 0; i < n; i++)
		content += !is_stop(t[i].s, t[i].n);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (content && is_stop(t[i].s, t[i].n))
			continue;
		bool dup = false;
		for (size_t j = 0; j < o && !dup; j++)
			dup = t[j].n == t[i].n && t[j].prefix == t[i].prefix &&
			      strncasecmp(t[j].s, t[i].s, t[i].n) == 0;
		if (!dup)
			t[o++] = t[i];
	}
	return o;
}

/* How many chunks hold the term, counted up to a cap: cheap, and enough to tell rare from common. */
static long long term_frequency(sqlite3 *db, const term *t)
{
	ag_buf m = AG_BUF_INIT;
	sqlite3_stmt *st = NULL;
	long long n = -1;
	if (build_match(&m, t, 1, "AND", false) >= 0 &&
	    ag_db_prepare(
		    db, &st,
		    "SELECT count(*) FROM (SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH ?1 LIMIT 5000)") ==
		    0) {
		ag_db_bind_text(st, 1, m.data);
		if (sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	ag_buf_free(&m);
	return n;
}

static int by_score(const void *a, const void *b)
{
	double x = ((const retrieval_hit *)a)->score, y = ((const retrieval_hit *)b)->score;
	return x > y ? -1 : x < y;
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
	size_t n = content_terms(terms, split_terms(q->text, terms, MAX_TERMS));
	if (!n)
		return ag_error_set(AG_EINVAL, "the query has no words to search for");
	char *colls_json = NULL, *source_prefix = NULL;
	ag_buf match = AG_BUF_INIT;
	retrieval_hits *h = NULL;
	size_t ncolls = 0, cap = (size_t)k * (1 + MAX_RELAX);
	if ((rc = readable_collections(&colls_json, &ncolls, db, p, q)))
		goto out;
	if (q->source && *q->source && q->source[strlen(q->source) - 1] == '*' &&
	    !(source_prefix = ag_strndup(q->source, strlen(q->source) - 1))) {
		rc = ag_error_set(AG_ENOMEM, "out of memory");
		goto out;
	}
	if (!(h = ag_calloc(1, sizeof *h)) || !(h->items = ag_calloc(cap, sizeof *h->items))) {
		rc = ag_error_set(AG_ENOMEM, "out of memory");
		goto out;
	}
	if (ncolls == 0)
		goto out; /* nothing readable: no hits */
	/* 1. Every term. */
	if (build_match(&match, terms, n, "AND", false) < 0 ||
	    (rc = run_query(h, cap, db, q, match.data, colls_json, source_prefix, k)))
		goto out_match;
	/* 2. Too few: every term but one, for each term (a word the passage words differently). */
	if (h->count < OR_FALLBACK_BELOW && n >= 2 && n <= MAX_RELAX) {
		size_t base = h->count;
		for (size_t skip = 0; skip < n && !rc; skip++) {
			term rest[MAX_RELAX];
			size_t m = 0;
			for (size_t i = 0; i < n; i++)
				if (i != skip)
					rest[m++] = terms[i];
			if (build_match(&match, rest, m, "AND", false) < 0)
				goto out_match;
			rc = run_query(h, cap, db, q, match.data, colls_json, source_prefix, k);
		}
		if (rc)
			goto out;
		qsort(h->items + base, h->count - base, sizeof *h->items, by_score);
	}
	/* 3. Still nothing: any of the (at most 3) rarest terms. Common terms are left out, because
	 * ranking every chunk that holds a common word is what makes a search slow. */
	if (h->count == 0 && n >= 2) {
		term rare[3];
		long long df[3] = {0, 0, 0};
		size_t m = 0;
		for (size_t i = 0; i < n; i++) {
			long long f = term_frequency(db, &terms[i]);
			if (f <= 0)
				continue;
			size_t at = m < 3 ? m++ : 3;
			while (at > 0 && df[at - 1] > f) {
				if (at < 3) {
					rare[at] = rare[at - 1];
					df[at] = df[at - 1];
				}
				at--;
			}
			if (at < 3) {
				rare[at] = terms[i];
				df[at] = f;
			}
		}
		/* one term found alone is searched alone: no slower than a one-word query */
		if (m >= 1) {
			if (build_match(&match, rare, m, "OR", false) < 0)
				goto out_match;
			rc = run_query(h, cap, db, q, match.data, colls_json, source_prefix, k);
		}
	}
	goto out;
out_match:
	if (!rc)
		rc = ag_error_set(AG_ENOMEM, "out of memory");
out:
	if (h) {
		while (h->count > (size_t)k)
			hit_clear(&h->items[--h->count]);
	}
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
