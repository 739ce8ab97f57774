/*
 * Reading, listing and deleting documents. Every query joins the document's
 * collection and applies the caller's read rule, so a document in a
 * collection the caller may not read is simply not found. A document's text
 * is reassembled from its segments; a byte range reads only the segments it
 * overlaps.
 */
#include "retrieval/internal.h"

#include <stdio.h>
#include <string.h>

#define DOC_COLUMNS                                                                                          \
	"d.id, col.name, d.title, d.source, d.commit_id, d.format, d.content_hash, d.created_by, "           \
	"d.created_ms, "                                                                                     \
	"d.date_ms, d.text_bytes, d.chunks"

static void document_clear(retrieval_document *d)
{
	ag_free(d->id);
	ag_free(d->collection);
	ag_free(d->title);
	ag_free(d->source);
	ag_free(d->commit);
	ag_free(d->format);
	ag_free(d->content_hash);
	ag_free(d->created_by);
	ag_free(d->text);
	memset(d, 0, sizeof *d);
}

void retrieval_document_free(retrieval_document *d)
{
	if (!d)
		return;
	document_clear(d);
	ag_free(d);
}

void retrieval_document_list_free(retrieval_document_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->count; i++)
		document_clear(&l->items[i]);
	ag_free(l->items);
	ag_free(l);
}

static int document_from_row(retrieval_document *d, sqlite3_stmt *st)
{
	memset(d, 0, sizeof *d);
	char **fields[] = {&d->id,     &d->collection, &d->title,        &d->source,
			   &d->commit, &d->format,     &d->content_hash, &d->created_by};
	for (int i = 0; i < 8; i++) {
		if (!(*fields[i] = ag_db_column_strdup(st, i))) {
			document_clear(d);
			return ag_error_set(AG_ENOMEM, "out of memory");
		}
	}
	d->created_ms = sqlite3_column_int64(st, 8);
	d->date_ms = sqlite3_column_int64(st, 9);
	d->text_bytes = (size_t)sqlite3_column_int64(st, 10);
	d->chunks = sqlite3_column_int64(st, 11);
	return 0;
}

/* Bytes [start, end) of a document's text from its segments, into b. */
static int read_range(ag_buf *b, sqlite3 *db, const char *id, size_t start, size_t end)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st,
			       "SELECT start_byte, data FROM document_text WHERE document_id = ?1 AND"
			       " start_byte < ?3 AND start_byte + length(data) > ?2 ORDER BY seq");
	if (rc)
		return rc;
	ag_db_bind_text(st, 1, id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)start);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)end);
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		size_t seg_start = (size_t)sqlite3_column_int64(st, 0);
		const char *data = sqlite3_column_blob(st, 1);
		size_t n = (size_t)sqlite3_column_bytes(st, 1);
		size_t from = start > seg_start ? start - seg_start : 0;
		size_t to = end - seg_start < n ? end - seg_start : n;
		if (from < to && ag_buf_append(b, data + from, to - from)) {
			sqlite3_finalize(st);
			return ag_error_set(AG_ENOMEM, "out of memory");
		}
	}
	sqlite3_finalize(st);
	if (s != SQLITE_DONE)
		return ag_db_error(db, s, "reading document text");
	if (ag_buf_reserve(b, 1))
		return ag_error_set(AG_ENOMEM, "out of memory");
	b->data[b->len] = '\0';
	return 0;
}

int retrieval_document_get(retrieval_document **out, sqlite3 *db, const retrieval_principal *p,
			   const char *id, bool with_text)
{
	int rc = retrieval_check_principal(p);
	if (rc)
		return rc;
	if (!id || !*id)
		return ag_error_set(AG_EINVAL, "a document id is required");
	sqlite3_stmt *st;
	if ((rc = ag_db_prepare(db, &st,
				"SELECT " DOC_COLUMNS
				" FROM documents d JOIN collections col ON col.id = d.collection_id"
				" WHERE d.id = :id AND " RETRIEVAL_ACL_SQL)))
		return rc;
	if ((rc = retrieval_acl_bind(st, p)) || (rc = retrieval_bind_named(st, ":id", id))) {
		sqlite3_finalize(st);
		return rc;
	}
	int s = sqlite3_step(st);
	retrieval_document *d = NULL;
	if (s != SQLITE_ROW)
		rc = s == SQLITE_DONE ? ag_error_set(AG_ENOTFOUND, "no document '%s'", id)
				      : ag_db_error(db, s, "reading a document");
	else if (!(d = ag_malloc(sizeof *d)))
		rc = ag_error_set(AG_ENOMEM, "out of memory");
	else if ((rc = document_from_row(d, st))) {
		ag_free(d);
		d = NULL;
	}
	sqlite3_finalize(st);
	if (!rc && with_text) {
		ag_buf b = AG_BUF_INIT;
		if ((rc = read_range(&b, db, d->id, 0, d->text_bytes))) {
			ag_buf_free(&b);
		} else {
			d->text = ag_buf_detach(&b, &d->text_len);
		}
	}
	if (rc) {
		retrieval_document_free(d);
		return rc;
	}
	*out = d;
	return 0;
}

int retrieval_document_read(char **out, size_t *len_out, sqlite3 *db, const retrieval_principal *p,
			    const char *id, size_t start, size_t end)
{
	retrieval_document *d;
	int rc = retrieval_document_get(&d, db, p, id, false);
	if (rc)
		return rc;
	if (end > d->text_bytes)
		end = d->text_bytes;
	if (start > end) {
		retrieval_document_free(d);
		return ag_error_set(AG_EINVAL, "range starts after its end or the document's end");
	}
	ag_buf b = AG_BUF_INIT;
	rc = read_range(&b, db, d->id, start, end);
	retrieval_document_free(d);
	if (rc) {
		ag_buf_free(&b);
		return rc;
	}
	*out = ag_buf_detach(&b, len_out);
	return 0;
}

int retrieval_document_list_readable(retrieval_document_list **out, sqlite3 *db, const retrieval_principal *p,
				     const char *collection)
{
	int rc = retrieval_check_principal(p);
	if (rc)
		return rc;
	coll_ref ref;
	if (collection && (rc = retrieval_coll_resolve(&ref, db, p, collection, false)))
		return rc;
	sqlite3_stmt *st;
	if ((rc = ag_db_prepare(db, &st,
				"SELECT " DOC_COLUMNS
				" FROM documents d JOIN collections col ON col.id = d.collection_id"
				" WHERE (:coll IS NULL OR col.id = :coll) AND " RETRIEVAL_ACL_SQL
				" ORDER BY d.created_ms DESC, d.id")))
		return rc;
	if ((rc = retrieval_acl_bind(st, p)) ||
	    (rc = retrieval_bind_named(st, ":coll", collection ? ref.id : NULL))) {
		sqlite3_finalize(st);
		return rc;
	}
	retrieval_document_list *l = ag_calloc(1, sizeof *l);
	size_t cap = 0;
	int s = SQLITE_DONE;
	if (!l)
		rc = ag_error_set(AG_ENOMEM, "out of memory");
	while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW) {
		if (l->count == cap) {
			size_t nc = cap ? cap * 2 : 16;
			retrieval_document *n = ag_realloc(l->items, nc * sizeof *n);
			if (!n) {
				rc = ag_error_set(AG_ENOMEM, "out of memory");
				break;
			}
			l->items = n;
			cap = nc;
		}
		if ((rc = document_from_row(&l->items[l->count], st)))
			break;
		l->count++;
	}
	if (!rc && s != SQLITE_DONE)
		rc = ag_db_error(db, s, "listing documents");
	sqlite3_finalize(st);
	if (rc) {
		retrieval_document_list_free(l);
		return rc;
	}
	*out = l;
	return 0;
}

int retrieval_document_delete(sqlite3 *db, const retrieval_principal *p, const char *id)
{
	retrieval_document *d;
	int rc = retrieval_document_get(&d, db, p, id, false);
	if (rc)
		return rc;
	coll_ref ref;
	rc = retrieval_coll_resolve(&ref, db, p, d->collection, true);
	retrieval_document_free(d);
	if (rc)
		return rc;
	bool own;
	if ((rc = retrieval_tx_begin(db, &own)))
		return rc;
	if ((rc = retrieval_document_delete_rows(db, id)) || (rc = retrieval_tx_commit(db, own))) {
		retrieval_tx_rollback(db, own);
		return rc;
	}
	return 0;
}
