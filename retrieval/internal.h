/*
 * retrieval's module-internal interfaces: text normalisation, extraction of
 * HTML and PDF, the structure-following chunker, the ingestion pipeline and
 * the access checks shared by the files of this module. Nothing outside
 * retrieval/ includes this header.
 */
#ifndef RETRIEVAL_INTERNAL_H
#define RETRIEVAL_INTERNAL_H

#include "retrieval/retrieval.h"

#define RETRIEVAL_DEFAULT_MAX_BYTES ((size_t)200 << 20)
/* Chunk budget in bytes (about 4 bytes a token: 300 tokens) and the overlap carried over. */
#define RETRIEVAL_CHUNK_BYTES   1200
#define RETRIEVAL_OVERLAP_BYTES 150

/* ------------------------------------------------------------------ acl.c */

typedef struct coll_ref {
	char id[40];
	char name[130];
} coll_ref;

bool retrieval_role_valid(const char *role);
/* Looks up a collection by name or id within p's tenant that p may read (write: and change). */
int retrieval_coll_resolve(coll_ref *out, sqlite3 *db, const retrieval_principal *p, const char *name,
			   bool write);
/* The SQL condition "p may read the collection row aliased `col`", with parameters
 * ?tenant ?user ?role bound by retrieval_acl_bind. */
#define RETRIEVAL_ACL_SQL                                                                                    \
	"(col.tenant = :tenant AND (:role = 'admin' OR col.created_by = :user OR "                           \
	"(col.readable_roles = '[]' AND col.readable_users = '[]') OR "                                      \
	"EXISTS (SELECT 1 FROM json_each(col.readable_roles) WHERE value = :role) OR "                       \
	"EXISTS (SELECT 1 FROM json_each(col.readable_users) WHERE value = :user)))"
int retrieval_acl_bind(sqlite3_stmt *st, const retrieval_principal *p);
int retrieval_check_principal(const retrieval_principal *p);
/* Binds text to a named parameter if the statement has it. */
int retrieval_bind_named(sqlite3_stmt *st, const char *name, const char *value);

/* ----------------------------------------------------------------- text.c */

/* Streaming UTF-8 normaliser: valid UTF-8 passes unchanged (a leading BOM is
 * dropped), bytes that are not UTF-8 are read as Latin-1. NUL bytes and text
 * that is mostly control characters are refused as binary. */
typedef struct utf8_norm {
	unsigned char carry[4];
	size_t ncarry;
	bool started;
	size_t seen;
} utf8_norm;

int retrieval_utf8_feed(utf8_norm *n, const char *in, size_t len, bool final, ag_buf *out);
/* AG_EUNSUPPORTED when the first bytes look binary. */
int retrieval_sniff_binary(const unsigned char *data, size_t len);
/* Whole-buffer conversion to UTF-8 (handles UTF-16 with a BOM). */
int retrieval_to_utf8(char **out, size_t *len_out, const char *data, size_t len);
retrieval_format retrieval_guess_format(const char *content_type, const char *filename,
					const unsigned char *head, size_t head_len, int *err);

/* -------------------------------------------------------------- extract.c */

/* HTML to text: headings become Markdown "#" lines, <pre> becomes a fenced
 * block, scripts and styles are dropped. title_out gets <title> (or NULL). */
int retrieval_html_to_text(char **out, size_t *len_out, char **title_out, const char *html, size_t len);
/* PDF to text with poppler, pages separated by form feeds. */
int retrieval_pdf_to_text(char **out, size_t *len_out, char **title_out, const char *pdf, size_t len);

/* -------------------------------------------------------------- chunker.c */

/* Called for each chunk: text is bytes [start, end) of the document text. */
typedef int (*chunk_emit_fn)(void *cls, const char *text, size_t start, size_t end, const char *title_path);

typedef struct chunker {
	size_t budget, overlap;
	bool headings; /* Markdown headings and code fences */
	bool pages;    /* form feeds number pages in the title path */
	chunk_emit_fn emit;
	void *cls;
	ag_buf win;      /* text not yet released */
	size_t win_base; /* document offset of win.data[0] */
	size_t scan;     /* document offset of the next unread line */
	bool have_chunk, only_headings;
	size_t cs, ce; /* current chunk */
	bool in_block;
	size_t bs, be; /* current block (paragraph or code fence) */
	bool in_fence;
	char fence_ch;
	int fence_len;
	char *trail[6];
	int page;
	int err;
} chunker;

void retrieval_chunker_init(chunker *c, bool headings, bool pages, chunk_emit_fn emit, void *cls);
int retrieval_chunker_feed(chunker *c, const char *text, size_t len);
int retrieval_chunker_finish(chunker *c);
void retrieval_chunker_free(chunker *c);

/* --------------------------------------------------------------- ingest.c */

/* A write of one document: its own BEGIN IMMEDIATE transaction, or a savepoint
 * inside the caller's transaction (so bulk ingestion can batch many documents
 * into one commit). own tells which. */
int retrieval_tx_begin(sqlite3 *db, bool *own);
int retrieval_tx_commit(sqlite3 *db, bool own);
void retrieval_tx_rollback(sqlite3 *db, bool own);

typedef struct ingest_extra {
	const char *blob_id; /* git blob id, kept to skip unchanged files */
} ingest_extra;

int retrieval_ingest_internal(retrieval_ingest_result *out, sqlite3 *db, const retrieval_principal *p,
			      const retrieval_ingest_opts *opts, const ingest_extra *extra, const void *data,
			      size_t len);
/* Deletes a document's rows (the caller holds the transaction). */
int retrieval_document_delete_rows(sqlite3 *db, const char *id);

#endif
