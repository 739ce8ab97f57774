/* Shared helpers of the retrieval tests: a fresh database, principals, and a PDF writer. */
#ifndef TEST_RETRIEVAL_HELPERS_H
#define TEST_RETRIEVAL_HELPERS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "retrieval/retrieval.h"

static const retrieval_principal acme_admin = {"acme", "alice", "admin"};
static const retrieval_principal acme_analyst = {"acme", "ann", "analyst"};
static const retrieval_principal acme_viewer = {"acme", "victor", "viewer"};
static const retrieval_principal acme_auditor = {"acme", "aud", "auditor"};
static const retrieval_principal globex_admin = {"globex", "gina", "admin"};

static inline const char *tmpdir(void)
{
	const char *t = getenv("TEST_TMPDIR");
	return t && *t ? t : "/tmp";
}

/* A new database file under TEST_TMPDIR with the schema in place. */
static inline sqlite3 *open_db(const char *name)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s.db", tmpdir(), name);
	remove(path);
	sqlite3 *db = NULL;
	if (ag_db_open(&db, path) || retrieval_migrate(db)) {
		fprintf(stderr, "open_db: %s\n", ag_error_last());
		abort();
	}
	return db;
}

static inline long long count_rows(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	if (ag_db_prepare(db, &st, sql))
		return -1;
	long long n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	return n;
}

/* A minimal valid PDF, one page per string, Helvetica text with a correct xref. */
static inline char *make_pdf(const char *const *pages, int npages, size_t *len_out)
{
	ag_buf b = AG_BUF_INIT;
	size_t offs[64];
	int nobj = 0;
	ag_buf_puts(&b, "%PDF-1.4\n");
	offs[++nobj] = b.len;
	ag_buf_printf(&b, "1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n");
	offs[++nobj] = b.len;
	ag_buf_puts(&b, "2 0 obj << /Type /Pages /Kids [");
	for (int i = 0; i < npages; i++)
		ag_buf_printf(&b, "%d 0 R ", 4 + 2 * i);
	ag_buf_printf(&b, "] /Count %d >> endobj\n", npages);
	offs[++nobj] = b.len;
	ag_buf_puts(&b, "3 0 obj << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> endobj\n");
	for (int i = 0; i < npages; i++) {
		offs[++nobj] = b.len;
		ag_buf_printf(&b,
			      "%d 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R"
			      " /Resources << /Font << /F1 3 0 R >> >> >> endobj\n",
			      4 + 2 * i, 5 + 2 * i);
		ag_buf content = AG_BUF_INIT;
		ag_buf_printf(&content, "BT /F1 12 Tf 72 712 Td (%s) Tj ET\n", pages[i]);
		offs[++nobj] = b.len;
		ag_buf_printf(&b, "%d 0 obj << /Length %zu >> stream\n%s\nendstream endobj\n", 5 + 2 * i,
			      content.len, content.data);
		ag_buf_free(&content);
	}
	size_t xref = b.len;
	ag_buf_printf(&b, "xref\n0 %d\n0000000000 65535 f \n", nobj + 1);
	for (int i = 1; i <= nobj; i++)
		ag_buf_printf(&b, "%010zu 00000 n \n", offs[i]);
	ag_buf_printf(&b, "trailer << /Size %d /Root 1 0 R >>\nstartxref\n%zu\n%%%%EOF\n", nobj + 1, xref);
	return ag_buf_detach(&b, len_out);
}

static inline int ingest_str(retrieval_ingest_result *r, sqlite3 *db, const retrieval_principal *p,
			     const char *coll, const char *filename, const char *source, const char *text)
{
	retrieval_ingest_opts o = {.collection = coll, .filename = filename, .source = source};
	return retrieval_ingest_buffer(r, db, p, &o, text, strlen(text));
}

/* Removes <mark>, </mark> and splits at "…": every fragment must lie within text. */
static inline int snippet_within(const char *snippet, const char *text, size_t text_len)
{
	ag_buf clean = AG_BUF_INIT;
	for (const char *s = snippet; *s;) {
		if (strncmp(s, "<mark>", 6) == 0) {
			s += 6;
		} else if (strncmp(s, "</mark>", 7) == 0) {
			s += 7;
		} else if (strncmp(s, "…", strlen("…")) == 0) {
			ag_buf_putc(&clean, '\x01');
			s += strlen("…");
		} else {
			ag_buf_putc(&clean, *s++);
		}
	}
	int ok = 1;
	char *save = clean.data, *frag = clean.data;
	while (ok && frag) {
		char *end = strchr(frag, '\x01');
		if (end)
			*end = '\0';
		if (*frag && !memmem(text, text_len, frag, strlen(frag)))
			ok = 0;
		frag = end ? end + 1 : NULL;
	}
	ag_free(save);
	return ok;
}

#endif
