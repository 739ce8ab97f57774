/*
 * The ingestion pipeline: raw bytes -> UTF-8 text -> chunks -> rows, in one
 * transaction per document. Input is hashed first: the same content in the
 * same collection is stored once, and re-ingesting a source whose content
 * changed replaces its text and chunks under the same document id. Text
 * formats flow through in 1 MiB pieces (normaliser, 256 KiB text segments,
 * the chunker's small window), so memory stays bounded whatever the file's
 * size; HTML and PDF are extracted whole first. Any failure rolls back, so a
 * refused document leaves the store as it was.
 */
#include "retrieval/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PIECE_BYTES   ((size_t)1 << 20)
#define SEGMENT_BYTES ((size_t)256 << 10)

typedef struct pipeline {
	sqlite3 *db;
	const char *doc_id;
	const char *coll_id;
	const char *title;
	sqlite3_stmt *ins_chunk, *ins_seg;
	chunker ch;
	utf8_norm norm;
	ag_buf piece; /* normalised text of the current piece */
	ag_buf seg;   /* text not yet written as a segment */
	size_t seg_start;
	int nseg;
	long long nchunks;
	size_t text_bytes;
	ag_buf chunk_title;
} pipeline;

static int emit_chunk(void *cls, const char *text, size_t start, size_t end, const char *title_path)
{
	pipeline *p = cls;
	p->chunk_title.len = 0;
	if (ag_buf_puts(&p->chunk_title, p->title) ||
	    (*title_path && ag_buf_printf(&p->chunk_title, "\n%s", title_path)))
		return ag_error_set(AG_ENOMEM, "out of memory");
	sqlite3_stmt *st = p->ins_chunk;
	sqlite3_reset(st);
	ag_db_bind_text(st, 1, p->doc_id);
	ag_db_bind_text(st, 2, p->coll_id);
	sqlite3_bind_int64(st, 3, p->nchunks);
	ag_db_bind_text(st, 4, p->chunk_title.data);
	ag_db_bind_text(st, 5, title_path);
	sqlite3_bind_text(st, 6, text, (int)(end - start), SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)start);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)end);
	int s = sqlite3_step(st);
	if (s != SQLITE_DONE)
		return ag_db_error(p->db, s, "storing a chunk");
	p->nchunks++;
	return 0;
}

static int write_segment(pipeline *p)
{
	if (!p->seg.len)
		return 0;
	sqlite3_stmt *st = p->ins_seg;
	sqlite3_reset(st);
	ag_db_bind_text(st, 1, p->doc_id);
	sqlite3_bind_int(st, 2, p->nseg);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)p->seg_start);
	sqlite3_bind_blob(st, 4, p->seg.data, (int)p->seg.len, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s != SQLITE_DONE)
		return ag_db_error(p->db, s, "storing document text");
	p->nseg++;
	p->seg_start += p->seg.len;
	p->seg.len = 0;
	return 0;
}

static int pipeline_open(pipeline *p, sqlite3 *db, const char *doc_id, const char *coll_id, const char *title,
			 retrieval_format fmt)
{
	memset(p, 0, sizeof *p);
	p->db = db;
	p->doc_id = doc_id;
	p->coll_id = coll_id;
	p->title = title;
	retrieval_chunker_init(&p->ch, fmt == RETRIEVAL_FORMAT_MARKDOWN || fmt == RETRIEVAL_FORMAT_HTML,
			       fmt == RETRIEVAL_FORMAT_PDF, emit_chunk, p);
	int rc = ag_db_prepare(db, &p->ins_chunk,
			       "INSERT INTO chunks (document_id, collection_id, seq, title, title_path, body,"
			       " start_byte, end_byte) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
	if (!rc)
		rc = ag_db_prepare(db, &p->ins_seg,
				   "INSERT INTO document_text (document_id, seq, start_byte, data) VALUES "
				   "(?1, ?2, ?3, ?4)");
	return rc;
}

static void pipeline_close(pipeline *p)
{
	sqlite3_finalize(p->ins_chunk);
	sqlite3_finalize(p->ins_seg);
	retrieval_chunker_free(&p->ch);
	ag_buf_free(&p->piece);
	ag_buf_free(&p->seg);
	ag_buf_free(&p->chunk_title);
}

/* Pushes raw bytes (at most a piece at a time) through normaliser, text segments and chunker. */
static int pipeline_feed(pipeline *p, const char *data, size_t len, bool final)
{
	p->piece.len = 0;
	int rc = retrieval_utf8_feed(&p->norm, data, len, final, &p->piece);
	if (rc)
		return rc;
	p->text_bytes += p->piece.len;
	if (p->piece.len && ag_buf_append(&p->seg, p->piece.data, p->piece.len))
		return ag_error_set(AG_ENOMEM, "out of memory");
	if (p->seg.len >= SEGMENT_BYTES || final)
		if ((rc = write_segment(p)))
			return rc;
	if (p->piece.len && (rc = retrieval_chunker_feed(&p->ch, p->piece.data, p->piece.len)))
		return rc;
	if (final)
		rc = retrieval_chunker_finish(&p->ch);
	return rc;
}

/* ------------------------------------------------------------ documents */

typedef struct doc_plan {
	coll_ref coll;
	char *id;       /* the document id to write */
	bool exists;    /* a row with this id exists (replacement) */
	bool unchanged; /* nothing to do */
	char hash[65];
} doc_plan;

int retrieval_tx_begin(sqlite3 *db, bool *own)
{
	*own = sqlite3_get_autocommit(db) != 0;
	return *own ? ag_db_begin(db) : ag_db_exec(db, "SAVEPOINT retrieval_doc");
}

int retrieval_tx_commit(sqlite3 *db, bool own)
{
	return own ? ag_db_commit(db) : ag_db_exec(db, "RELEASE retrieval_doc");
}

void retrieval_tx_rollback(sqlite3 *db, bool own)
{
	if (own) {
		ag_db_rollback(db);
		return;
	}
	sqlite3_exec(db, "ROLLBACK TO retrieval_doc; RELEASE retrieval_doc", NULL, NULL, NULL);
}

/* Inside the transaction: decides between dedup, replacement and a new document. */
static int plan_document(doc_plan *dp, sqlite3 *db, const char *source)
{
	sqlite3_stmt *st;
	int rc, s;
	if (source) {
		if ((rc = ag_db_prepare(db, &st,
					"SELECT id, content_hash FROM documents WHERE collection_id = ?1 AND "
					"source = ?2")))
			return rc;
		ag_db_bind_text(st, 1, dp->coll.id);
		ag_db_bind_text(st, 2, source);
		s = sqlite3_step(st);
		if (s == SQLITE_ROW) {
			dp->id = ag_db_column_strdup(st, 0);
			dp->exists = true;
			dp->unchanged = strcmp((const char *)sqlite3_column_text(st, 1), dp->hash) == 0;
		}
		sqlite3_finalize(st);
		if (s != SQLITE_ROW && s != SQLITE_DONE)
			return ag_db_error(db, s, "looking up the document");
		if (s == SQLITE_ROW)
			return dp->id ? 0 : ag_error_set(AG_ENOMEM, "out of memory");
	}
	if ((rc = ag_db_prepare(db, &st,
				"SELECT id FROM documents WHERE collection_id = ?1 AND content_hash = ?2")))
		return rc;
	ag_db_bind_text(st, 1, dp->coll.id);
	ag_db_bind_text(st, 2, dp->hash);
	s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		dp->id = ag_db_column_strdup(st, 0);
		dp->unchanged = true;
	}
	sqlite3_finalize(st);
	if (s != SQLITE_ROW && s != SQLITE_DONE)
		return ag_db_error(db, s, "looking up the content hash");
	if (s == SQLITE_DONE)
		dp->id = ag_new_id("doc");
	return dp->id ? 0 : ag_error_set(AG_ENOMEM, "out of memory");
}

int retrieval_document_delete_rows(sqlite3 *db, const char *id)
{
	static const char *const sql[] = {
		"DELETE FROM chunks WHERE document_id = ?1",
		"DELETE FROM document_text WHERE document_id = ?1",
		"DELETE FROM documents WHERE id = ?1",
	};
	for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
		sqlite3_stmt *st;
		int rc = ag_db_prepare(db, &st, sql[i]);
		if (rc)
			return rc;
		ag_db_bind_text(st, 1, id);
		int s = sqlite3_step(st);
		sqlite3_finalize(st);
		if (s != SQLITE_DONE)
			return ag_db_error(db, s, "deleting a document");
	}
	return 0;
}

static int clear_content(sqlite3 *db, const char *id)
{
	static const char *const sql[] = {
		"DELETE FROM chunks WHERE document_id = ?1",
		"DELETE FROM document_text WHERE document_id = ?1",
	};
	for (size_t i = 0; i < 2; i++) {
		sqlite3_stmt *st;
		int rc = ag_db_prepare(db, &st, sql[i]);
		if (rc)
			return rc;
		ag_db_bind_text(st, 1, id);
		int s = sqlite3_step(st);
		sqlite3_finalize(st);
		if (s != SQLITE_DONE)
			return ag_db_error(db, s, "replacing a document");
	}
	return 0;
}

/* The input one document is made of: a buffer, or a file read in pieces. */
typedef struct doc_input {
	const char *data; /* whole input in memory, or NULL */
	size_t len;
	int fd; /* else a file, read from the start */
} doc_input;

typedef struct doc_meta {
	const char *title;
	const char *source;
	retrieval_format format;
	const char *commit;
	const char *blob_id;
	int64_t date_ms;
} doc_meta;

static int feed_input(pipeline *pl, const doc_input *in)
{
	int rc = 0;
	if (in->data) {
		size_t off = 0;
		do {
			size_t n = in->len - off < PIECE_BYTES ? in->len - off : PIECE_BYTES;
			rc = pipeline_feed(pl, in->data + off, n, off + n == in->len);
			off += n;
		} while (!rc && off < in->len);
		return rc;
	}
	char *buf = ag_malloc(PIECE_BYTES);
	if (!buf)
		return ag_error_set(AG_ENOMEM, "out of memory");
	if (lseek(in->fd, 0, SEEK_SET) < 0)
		rc = ag_error_set(AG_EIO, "seek: %s", strerror(errno));
	while (!rc) {
		ssize_t n = read(in->fd, buf, PIECE_BYTES);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = ag_error_set(AG_EIO, "read: %s", strerror(errno));
			break;
		}
		rc = pipeline_feed(pl, buf, (size_t)n, n == 0);
		if (n == 0)
			break;
	}
	ag_free(buf);
	return rc;
}

/* Writes one document in one transaction. */
static int store_document(retrieval_ingest_result *out, sqlite3 *db, const retrieval_principal *p,
			  doc_plan *dp, const doc_meta *m, const doc_input *in)
{
	bool own;
	int rc = retrieval_tx_begin(db, &own);
	if (rc)
		return rc;
	char *source_buf = NULL;
	if ((rc = plan_document(dp, db, m->source)))
		goto fail;
	if (dp->unchanged) {
		retrieval_tx_rollback(db, own);
		out->unchanged = true;
		snprintf(out->document_id, sizeof out->document_id, "%s", dp->id);
		return 0;
	}
	const char *source = m->source;
	if (!source) {
		size_t n = strlen(dp->id) + 8;
		if (!(source_buf = ag_malloc(n))) {
			rc = ag_error_set(AG_ENOMEM, "out of memory");
			goto fail;
		}
		snprintf(source_buf, n, "upload:%s", dp->id);
		source = source_buf;
	}
	sqlite3_stmt *st;
	if (dp->exists) {
		rc = clear_content(db, dp->id);
		out->replaced = true;
	} else if (!(rc = ag_db_prepare(
			     db, &st,
			     "INSERT INTO documents (id, collection_id, title, source, format, content_hash,"
			     " created_by, created_ms, date_ms) VALUES (?1, ?2, '', ?3, '', '', ?4, ?5, "
			     "0)"))) {
		ag_db_bind_text(st, 1, dp->id);
		ag_db_bind_text(st, 2, dp->coll.id);
		ag_db_bind_text(st, 3, source);
		ag_db_bind_text(st, 4, p->user);
		sqlite3_bind_int64(st, 5, ag_now_ms());
		int s = sqlite3_step(st);
		sqlite3_finalize(st);
		if (s != SQLITE_DONE)
			rc = ag_db_error(db, s, "storing the document");
	}
	if (rc)
		goto fail;
	pipeline pl;
	if (!(rc = pipeline_open(&pl, db, dp->id, dp->coll.id, m->title, m->format)))
		rc = feed_input(&pl, in);
	long long nchunks = pl.nchunks;
	size_t text_bytes = pl.text_bytes;
	pipeline_close(&pl);
	if (rc)
		goto fail;
	if (nchunks == 0) {
		rc = ag_error_set(AG_EINVAL, "the document has no text to index");
		goto fail;
	}
	if ((rc = ag_db_prepare(
		     db, &st,
		     "UPDATE documents SET title = ?2, format = ?3, content_hash = ?4, commit_id = ?5,"
		     " blob_id = ?6, date_ms = ?7, text_bytes = ?8, chunks = ?9, created_by = ?10"
		     " WHERE id = ?1")))
		goto fail;
	ag_db_bind_text(st, 1, dp->id);
	ag_db_bind_text(st, 2, m->title);
	ag_db_bind_text(st, 3, retrieval_format_name(m->format));
	ag_db_bind_text(st, 4, dp->hash);
	ag_db_bind_text(st, 5, m->commit ? m->commit : "");
	ag_db_bind_text(st, 6, m->blob_id ? m->blob_id : "");
	sqlite3_bind_int64(st, 7, m->date_ms ? m->date_ms : ag_now_ms());
	sqlite3_bind_int64(st, 8, (sqlite3_int64)text_bytes);
	sqlite3_bind_int64(st, 9, nchunks);
	ag_db_bind_text(st, 10, p->user);
	int s = sqlite3_step(st);
	sqlite3_finalize(st);
	if (s != SQLITE_DONE) {
		rc = ag_db_error(db, s, "storing the document");
		goto fail;
	}
	if ((rc = retrieval_tx_commit(db, own)))
		goto fail;
	ag_free(source_buf);
	snprintf(out->document_id, sizeof out->document_id, "%s", dp->id);
	out->chunks = nchunks;
	out->text_bytes = text_bytes;
	return 0;
fail:
	retrieval_tx_rollback(db, own);
	ag_free(source_buf);
	return rc;
}

/* The first Markdown "# " heading in text, as a title. */
static char *markdown_title(const char *text, size_t len)
{
	size_t n = len < 65536 ? len : 65536;
	for (size_t i = 0; i < n;) {
		const char *l = text + i;
		const char *nl = memchr(l, '\n', n - i);
		size_t ll = nl ? (size_t)(nl - l) : n - i;
		if (ll > 2 && l[0] == '#' && l[1] == ' ') {
			while (ll && (l[ll - 1] == '\r' || l[ll - 1] == ' ' || l[ll - 1] == '#'))
				ll--;
			return ll > 2 ? ag_strndup(l + 2, ll - 2 > 200 ? 200 : ll - 2) : NULL;
		}
		i += ll + 1;
	}
	return NULL;
}

static const char *base_name(const char *path)
{
	const char *s = path ? strrchr(path, '/') : NULL;
	return s ? s + 1 : path;
}

static void hash_hex(char out[65], const unsigned char digest[32]) { ag_hex_encode(out, digest, 32); }

/* The shared front half: checks, format, text extraction, title; then store_document. */
static int ingest_common(retrieval_ingest_result *out, sqlite3 *db, const retrieval_principal *p,
			 const retrieval_ingest_opts *o, const ingest_extra *extra, const char *data,
			 size_t len, int fd, size_t file_size, const char *hash_hex_in, const char *path)
{
	memset(out, 0, sizeof *out);
	if (!o || !o->collection)
		return ag_error_set(AG_EINVAL, "a collection is required");
	size_t max = o->max_bytes ? o->max_bytes : RETRIEVAL_DEFAULT_MAX_BYTES;
	size_t size = data ? len : file_size;
	if (size > max)
		return ag_error_set(AG_ELIMIT, "the document is %zu bytes, over the limit of %zu", size, max);
	if (size == 0)
		return ag_error_set(AG_EINVAL, "the document is empty");
	doc_plan dp = {0};
	int rc = retrieval_coll_resolve(&dp.coll, db, p, o->collection, true);
	if (rc)
		return rc;
	const char *filename = o->filename ? o->filename : base_name(path ? path : o->source);
	unsigned char head[8192];
	size_t head_len = 0;
	if (data) {
		head_len = len < sizeof head ? len : sizeof head;
		memcpy(head, data, head_len);
	} else {
		ssize_t n = pread(fd, head, sizeof head, 0);
		if (n < 0)
			return ag_error_set(AG_EIO, "read: %s", strerror(errno));
		head_len = (size_t)n;
	}
	retrieval_format fmt = o->format;
	if (fmt == RETRIEVAL_FORMAT_AUTO) {
		fmt = retrieval_guess_format(o->content_type, filename, head, head_len, &rc);
		if (rc)
			return rc;
	}
	bool utf16 = head_len >= 2 &&
		     ((head[0] == 0xff && head[1] == 0xfe) || (head[0] == 0xfe && head[1] == 0xff));
	char *whole = NULL, *text = NULL, *title = NULL;
	size_t whole_len = 0, text_len = 0;
	if (!data && (fmt == RETRIEVAL_FORMAT_HTML || fmt == RETRIEVAL_FORMAT_PDF || utf16)) {
		if ((rc = ag_read_file(path, max, &whole, &whole_len)))
			return rc;
		data = whole;
		len = whole_len;
	}
	if (data) {
		unsigned char d[32];
		crypto_hash_sha256(d, (const unsigned char *)data, len);
		hash_hex(dp.hash, d);
	} else {
		snprintf(dp.hash, sizeof dp.hash, "%s", hash_hex_in);
	}
	if (fmt == RETRIEVAL_FORMAT_HTML) {
		rc = retrieval_html_to_text(&text, &text_len, &title, data, len);
	} else if (fmt == RETRIEVAL_FORMAT_PDF) {
		rc = retrieval_pdf_to_text(&text, &text_len, &title, data, len);
	} else if (utf16) {
		rc = retrieval_to_utf8(&text, &text_len, data, len);
	} else {
		rc = retrieval_sniff_binary(head, head_len);
	}
	if (rc)
		goto out;
	if (title) {
		/* Titles from HTML and PDF metadata: collapse their white space. */
		size_t w = 0;
		bool sp = false;
		for (size_t r = 0; title[r]; r++) {
			char ch = title[r];
			if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
				sp = w > 0;
				continue;
			}
			if (sp)
				title[w++] = ' ';
			sp = false;
			title[w++] = ch;
		}
		title[w] = '\0';
		if (!*title) {
			ag_free(title);
			title = NULL;
		}
	}
	if (!title && fmt == RETRIEVAL_FORMAT_MARKDOWN)
		title = text ? markdown_title(text, text_len)
			     : markdown_title(data ? data : (const char *)head, data ? len : head_len);
	doc_meta m = {
		.title = o->title && *o->title   ? o->title
			 : title                 ? title
			 : filename && *filename ? filename
						 : "untitled",
		.source = o->source && *o->source ? o->source : path,
		.format = fmt,
		.commit = o->commit,
		.blob_id = extra ? extra->blob_id : NULL,
		.date_ms = o->date_ms,
	};
	doc_input in = {.data = text ? text : data, .len = text ? text_len : len, .fd = fd};
	if ((rc = store_document(out, db, p, &dp, &m, &in)))
		goto out;
	snprintf(out->format, sizeof out->format, "%s", retrieval_format_name(fmt));
out:
	ag_free(dp.id);
	ag_free(whole);
	ag_free(text);
	ag_free(title);
	return rc;
}

int retrieval_ingest_internal(retrieval_ingest_result *out, sqlite3 *db, const retrieval_principal *p,
			      const retrieval_ingest_opts *opts, const ingest_extra *extra, const void *data,
			      size_t len)
{
	if (!data && len)
		return ag_error_set(AG_EINVAL, "no document data");
	return ingest_common(out, db, p, opts, extra, data ? data : "", len, -1, 0, NULL, NULL);
}

int retrieval_ingest_buffer(retrieval_ingest_result *out, sqlite3 *db, const retrieval_principal *p,
			    const retrieval_ingest_opts *opts, const void *data, size_t len)
{
	return retrieval_ingest_internal(out, db, p, opts, NULL, data, len);
}

int retrieval_ingest_file(retrieval_ingest_result *out, sqlite3 *db, const retrieval_principal *p,
			  const retrieval_ingest_opts *opts, const char *path)
{
	memset(out, 0, sizeof *out);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ag_error_set(errno == ENOENT ? AG_ENOTFOUND : AG_EIO, "%s: %s", path, strerror(errno));
	struct stat sb;
	int rc = 0;
	if (fstat(fd, &sb) < 0)
		rc = ag_error_set(AG_EIO, "%s: %s", path, strerror(errno));
	else if (!S_ISREG(sb.st_mode))
		rc = ag_error_set(AG_EINVAL, "%s: not a regular file", path);
	size_t max = opts && opts->max_bytes ? opts->max_bytes : RETRIEVAL_DEFAULT_MAX_BYTES;
	char hex[65] = "";
	if (!rc && (size_t)sb.st_size <= max && sb.st_size > 0) {
		/* First pass: the content hash, so a duplicate costs no writes. */
		crypto_hash_sha256_state hs;
		crypto_hash_sha256_init(&hs);
		char *buf = ag_malloc(PIECE_BYTES);
		if (!buf)
			rc = ag_error_set(AG_ENOMEM, "out of memory");
		while (!rc) {
			ssize_t n = read(fd, buf, PIECE_BYTES);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				rc = ag_error_set(AG_EIO, "%s: %s", path, strerror(errno));
			if (n <= 0)
				break;
			crypto_hash_sha256_update(&hs, (const unsigned char *)buf, (unsigned long long)n);
		}
		ag_free(buf);
		unsigned char d[32];
		crypto_hash_sha256_final(&hs, d);
		hash_hex(hex, d);
	}
	if (!rc)
		rc = ingest_common(out, db, p, opts, NULL, NULL, 0, fd, (size_t)sb.st_size, hex, path);
	close(fd);
	if (rc)
		return ag_error_wrap(rc, "%s", base_name(path));
	return 0;
}
