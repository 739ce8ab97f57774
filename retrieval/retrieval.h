/*
 * retrieval: the company document store. Documents (plain text, Markdown,
 * HTML, PDF, source files) are extracted to UTF-8 text, cut into chunks that
 * follow their structure, and indexed with SQLite FTS5 (external content,
 * porter/unicode61, prefix indexes). Search ranks with BM25 (title and heading
 * trail boosted) and returns snippets with citations: every hit names its
 * document and the byte range [start_byte, end_byte) of the document's stored
 * text (what retrieval_document_get returns), so a citation points to the
 * exact passage.
 *
 * Access: a collection belongs to a tenant. Its readable_by lists (roles,
 * users) restrict who reads it; when both lists are empty every role of the
 * tenant may read it. A tenant's admins and the collection's creator always
 * may. Writing (create a collection, attach, delete) needs the admin or
 * analyst role and read access. Another tenant's objects are "not found".
 * Search never returns a chunk the principal may not read.
 *
 * All functions take the caller's SQLite connection (schema from
 * retrieval_migrate) and return 0 or a negative AG_E* code with a message.
 */
#ifndef RETRIEVAL_H
#define RETRIEVAL_H

#include "common/common.h"

/* Who is asking. role is one of "admin", "analyst", "viewer", "auditor". */
typedef struct retrieval_principal {
	const char *tenant;
	const char *user;
	const char *role;
} retrieval_principal;

/* Creates or upgrades the module's tables (module "retrieval"). */
int retrieval_migrate(sqlite3 *db);
/* Merges the FTS5 index into one segment. Worth running after bulk ingestion:
 * queries then read one b-tree per term instead of several (on the man-page
 * benchmark, p50 from 6.8 to 4.3 ms of CPU). Takes the write lock for its duration. */
int retrieval_optimize(sqlite3 *db);

/* ----------------------------------------------------------- collections */

typedef struct retrieval_collection {
	char *id; /* "col_..." */
	char *tenant;
	char *name; /* unique within the tenant */
	char *description;
	char *created_by;
	char **roles; /* readable_by.roles */
	size_t nroles;
	char **users; /* readable_by.users */
	size_t nusers;
	int64_t created_ms;
	long long documents; /* number of documents */
} retrieval_collection;

typedef struct retrieval_collection_list {
	retrieval_collection *items;
	size_t count;
} retrieval_collection_list;

/* A new collection of p's tenant. AG_ECONFLICT if the name is taken, AG_EINVAL for a
 * bad name (1..128 bytes of letters, digits, '-', '_', '.') or an unknown role. */
int retrieval_collection_create(retrieval_collection **out, sqlite3 *db, const retrieval_principal *p,
				const char *name, const char *description, const char *const *roles,
				size_t nroles, const char *const *users, size_t nusers);
/* A collection by name (or id) that p may read; AG_ENOTFOUND otherwise. */
int retrieval_collection_get(retrieval_collection **out, sqlite3 *db, const retrieval_principal *p,
			     const char *name);
/* The collections p may read, by name. */
int retrieval_collection_list_readable(retrieval_collection_list **out, sqlite3 *db,
				       const retrieval_principal *p);
void retrieval_collection_free(retrieval_collection *c);
void retrieval_collection_list_free(retrieval_collection_list *l);

/* ------------------------------------------------------------- ingestion */

typedef enum retrieval_format {
	RETRIEVAL_FORMAT_AUTO = 0, /* decided from content_type, then filename, then content */
	RETRIEVAL_FORMAT_TEXT,
	RETRIEVAL_FORMAT_MARKDOWN,
	RETRIEVAL_FORMAT_HTML,
	RETRIEVAL_FORMAT_PDF,
	RETRIEVAL_FORMAT_SOURCE, /* program source: chunked at blank lines, no headings */
} retrieval_format;

const char *retrieval_format_name(retrieval_format f); /* "text", "markdown", ... */

typedef struct retrieval_ingest_opts {
	const char *collection;   /* name; required */
	const char *title;        /* NULL: the HTML <title>, the first heading or the file name */
	const char *source;       /* provenance (path, URL, "git:REPO:PATH"); the same source in
				     the same collection replaces that document */
	const char *content_type; /* MIME type or NULL */
	const char *filename;     /* for the format guess by extension, or NULL */
	const char *commit;       /* git commit id for provenance, or NULL */
	retrieval_format format;  /* RETRIEVAL_FORMAT_AUTO to guess */
	size_t max_bytes;         /* largest input accepted; 0 = 200 MiB. Over it: AG_ELIMIT */
	int64_t date_ms;          /* the document's date for since/until filters; 0 = now */
} retrieval_ingest_opts;

typedef struct retrieval_ingest_result {
	char document_id[40];
	bool unchanged; /* the same content was already stored (dedup); nothing written */
	bool replaced;  /* an older version from the same source was replaced */
	long long chunks;
	size_t text_bytes; /* bytes of extracted text */
	char format[16];
} retrieval_ingest_result;

/* Ingests a document held in memory. Unreadable input (binary junk, a corrupt
 * PDF, an empty file) is refused with AG_EUNSUPPORTED, AG_ECORRUPT or AG_EINVAL
 * and the store is left as it was. The whole write is one transaction. */
int retrieval_ingest_buffer(retrieval_ingest_result *out, sqlite3 *db, const retrieval_principal *p,
			    const retrieval_ingest_opts *opts, const void *data, size_t len);
/* Ingests a file. Text, Markdown and source files are streamed in bounded
 * memory whatever their size; HTML and PDF are read whole. source defaults to
 * the path, filename to its base name. */
int retrieval_ingest_file(retrieval_ingest_result *out, sqlite3 *db, const retrieval_principal *p,
			  const retrieval_ingest_opts *opts, const char *path);

/* A git repository (a local path or a URL libgit2 can clone) at ref (NULL =
 * HEAD): every text file of that commit becomes a document with source
 * "git:REPO:PATH" and the commit id. Re-ingestion only touches files whose
 * blob changed, and removes documents of files that are gone. */
typedef struct retrieval_git_result {
	char commit[41];
	long long files;     /* text files at the commit */
	long long added;     /* new documents */
	long long updated;   /* documents replaced because the file changed */
	long long unchanged; /* files left alone */
	long long removed;   /* documents deleted because the file is gone */
	long long skipped;   /* binary, unreadable or too large files */
} retrieval_git_result;

int retrieval_ingest_git(retrieval_git_result *out, sqlite3 *db, const retrieval_principal *p,
			 const char *collection, const char *repo, const char *ref, size_t max_bytes);

/* A URL through libcurl: http/https only, at most max_redirects redirects,
 * timeout_s seconds and opts->max_bytes bytes (AG_ELIMIT beyond), and a
 * content type of text, Markdown, HTML or PDF (AG_EUNSUPPORTED otherwise).
 * source defaults to the URL. */
int retrieval_ingest_url(retrieval_ingest_result *out, sqlite3 *db, const retrieval_principal *p,
			 const retrieval_ingest_opts *opts, const char *url, long timeout_s,
			 long max_redirects);

/* ------------------------------------------------------------- documents */

typedef struct retrieval_document {
	char *id; /* "doc_..." */
	char *collection;
	char *title;
	char *source;
	char *commit; /* "" when none */
	char *format;
	char *content_hash; /* hex SHA-256 of the input bytes */
	char *created_by;
	int64_t created_ms;
	int64_t date_ms;
	size_t text_bytes;
	long long chunks;
	char *text; /* the stored text when asked for, else NULL */
	size_t text_len;
} retrieval_document;

typedef struct retrieval_document_list {
	retrieval_document *items;
	size_t count;
} retrieval_document_list;

/* A document p may read; with_text also loads its whole text. */
int retrieval_document_get(retrieval_document **out, sqlite3 *db, const retrieval_principal *p,
			   const char *id, bool with_text);
/* Bytes [start, end) of a document's text (end clamped to its length); for citations. */
int retrieval_document_read(char **out, size_t *len_out, sqlite3 *db, const retrieval_principal *p,
			    const char *id, size_t start, size_t end);
/* Documents p may read, newest first; collection NULL = every readable collection. */
int retrieval_document_list_readable(retrieval_document_list **out, sqlite3 *db, const retrieval_principal *p,
				     const char *collection);
/* Removes a document, its text, its chunks and their FTS rows in one transaction. */
int retrieval_document_delete(sqlite3 *db, const retrieval_principal *p, const char *id);
void retrieval_document_free(retrieval_document *d);
void retrieval_document_list_free(retrieval_document_list *l);

/* ---------------------------------------------------------------- search */

typedef struct retrieval_query {
	const char *text;               /* free text; words are matched stemmed, "word*" as a prefix */
	const char *const *collections; /* names; NULL/0 = every collection p may read */
	size_t ncollections;
	const char *document_id; /* only this document, or NULL */
	const char *source;      /* only this source, or "PREFIX*" for a prefix; or NULL */
	int64_t since_ms;        /* document date >= since (0 = no bound) */
	int64_t until_ms;        /* document date < until (0 = no bound) */
	int k;                   /* hits wanted; 0 = 10, at most 100 */
} retrieval_query;

typedef struct retrieval_hit {
	long long chunk_id;
	char *document_id;
	char *collection;
	char *title;
	char *title_path; /* heading trail, " > " between headings */
	char *snippet;    /* with <mark>...</mark> around matched terms, "…" where cut */
	char *text;       /* the whole chunk text: exactly bytes [start_byte, end_byte) of the document */
	char *source;
	char *commit;
	double score; /* higher is better */
	size_t start_byte;
	size_t end_byte;
	int64_t date_ms;
} retrieval_hit;

typedef struct retrieval_hits {
	retrieval_hit *items;
	size_t count;
} retrieval_hits;

/* Ranked chunks p may read. An unknown or unreadable collection named in the
 * query is AG_ENOTFOUND; a query with no words is AG_EINVAL. */
int retrieval_search(retrieval_hits **out, sqlite3 *db, const retrieval_principal *p,
		     const retrieval_query *q);
void retrieval_hits_free(retrieval_hits *h);

/* ----------------------------------------------------- multipart uploads */

/* One part of a multipart/form-data body; pointers borrow from the body. */
typedef struct retrieval_part {
	const char *name; /* form field name (copied, NUL-terminated) */
	const char *filename;
	const char *content_type;
	const char *data; /* into the body, not NUL-terminated */
	size_t len;
} retrieval_part;

typedef struct retrieval_parts {
	retrieval_part *items;
	size_t count;
} retrieval_parts;

/* Parses body by the boundary in content_type ("multipart/form-data; boundary=...").
 * AG_EINVAL for malformed input. At most 64 parts. */
int retrieval_multipart_parse(retrieval_parts **out, const char *content_type, const char *body, size_t len);
void retrieval_parts_free(retrieval_parts *p);

#endif
