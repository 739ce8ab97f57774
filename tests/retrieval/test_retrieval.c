/*
 * Unit tests of retrieval/: every format ingests and is found, citations
 * point at their text, structure-following chunks, ACLs across tenants and
 * roles, dedup, replacement, deletion, refusals that leave the store as it
 * was, size limits and the multipart parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/retrieval/helpers.h"

static sqlite3 *db;

static int setup(void **state)
{
	(void)state;
	db = open_db("retrieval");
	retrieval_collection *c;
	assert_int_equal(retrieval_collection_create(&c, db, &acme_admin, "handbook", "HR", NULL, 0, NULL, 0),
			 0);
	retrieval_collection_free(c);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ag_db_close(db);
	return 0;
}

static retrieval_hits *search(const retrieval_principal *p, const char *q, const char *coll)
{
	retrieval_query query = {.text = q, .collections = coll ? &coll : NULL, .ncollections = coll ? 1 : 0};
	retrieval_hits *h = NULL;
	int rc = retrieval_search(&h, db, p, &query);
	if (rc)
		fprintf(stderr, "search: %s\n", ag_error_last());
	assert_int_equal(rc, 0);
	return h;
}

/* Every hit's range, read back from the document, is its chunk text and holds its snippet. */
static void check_citations(const retrieval_principal *p, const retrieval_hits *h)
{
	for (size_t i = 0; i < h->count; i++) {
		const retrieval_hit *x = &h->items[i];
		char *text;
		size_t len;
		assert_int_equal(retrieval_document_read(&text, &len, db, p, x->document_id, x->start_byte,
							 x->end_byte),
				 0);
		assert_int_equal(len, x->end_byte - x->start_byte);
		assert_memory_equal(text, x->text, len);
		assert_true(snippet_within(x->snippet, text, len));
		assert_non_null(strstr(x->snippet, "<mark>"));
		ag_free(text);
	}
}

static const char markdown[] = "# Travel policy\n\nEmployees book travel through the portal.\n\n"
			       "## Expenses\n\nReceipts are required for every expense over twenty euros.\n\n"
			       "```\nexpense_tool --submit receipt.pdf\n```\n\n"
			       "## Per diem\n\nThe per diem for Zurich is sixty francs.\n";

static void test_markdown_structure_and_citations(void **state)
{
	(void)state;
	retrieval_ingest_result r;
	assert_int_equal(ingest_str(&r, db, &acme_analyst, "handbook", "travel.md", "travel.md", markdown),
			 0);
	assert_string_equal(r.format, "markdown");
	assert_true(r.chunks >= 3);
	assert_false(r.unchanged);
	retrieval_hits *h = search(&acme_viewer, "receipts", NULL);
	assert_int_equal(h->count, 1);
	assert_string_equal(h->items[0].title, "Travel policy");
	assert_string_equal(h->items[0].title_path, "Travel policy > Expenses");
	assert_string_equal(h->items[0].document_id, r.document_id);
	assert_string_equal(h->items[0].source, "travel.md");
	check_citations(&acme_viewer, h);
	/* The range is a range of the original Markdown: the source text itself. */
	const char *at = strstr(markdown, "## Expenses");
	assert_int_equal(h->items[0].start_byte, (size_t)(at - markdown));
	retrieval_hits_free(h);
	h = search(&acme_viewer, "zurich per diem", NULL);
	assert_true(h->count >= 1);
	assert_string_equal(h->items[0].title_path, "Travel policy > Per diem");
	check_citations(&acme_viewer, h);
	retrieval_hits_free(h);
	/* A prefix query and a stemmed one. */
	h = search(&acme_viewer, "expen*", NULL);
	assert_true(h->count >= 1);
	retrieval_hits_free(h);
	h = search(&acme_viewer, "booking", NULL);
	assert_true(h->count >= 1);
	assert_non_null(strstr(h->items[0].text, "book travel"));
	retrieval_hits_free(h);
}

static void test_plain_text_and_source(void **state)
{
	(void)state;
	retrieval_ingest_result r;
	assert_int_equal(
		ingest_str(&r, db, &acme_analyst, "handbook", "notes.txt", NULL,
			   "Quarterly numbers.\n\nRevenue grew by eleven percent in the northern region.\n"),
		0);
	assert_string_equal(r.format, "text");
	static const char src[] = "/* payroll.c */\n#include <stdio.h>\n\nint compute_payroll(int hours)\n{\n"
				  "\treturn hours * 42;\n}\n";
	assert_int_equal(ingest_str(&r, db, &acme_analyst, "handbook", "payroll.c", "repo/payroll.c", src),
			 0);
	assert_string_equal(r.format, "source");
	retrieval_hits *h = search(&acme_viewer, "compute_payroll", NULL);
	assert_int_equal(h->count, 1);
	assert_string_equal(h->items[0].title, "payroll.c");
	check_citations(&acme_viewer, h);
	retrieval_hits_free(h);
	h = search(&acme_viewer, "revenue northern", NULL);
	assert_int_equal(h->count, 1);
	check_citations(&acme_viewer, h);
	retrieval_hits_free(h);
}

static void test_html(void **state)
{
	(void)state;
	static const char html[] =
		"<!DOCTYPE html><html><head><title>Security  guide</title><style>p{color:red}</style>"
		"<script>var secretvariable=1;</script></head><body><h1>Security</h1><p>Badges must be worn"
		" <b>visibly</b> at all times.</p><h2>Passwords</h2><p>Rotate passwords every ninety "
		"days.</p>"
		"<pre>passwd --rotate</pre><ul><li>first item</li><li>second item</li></ul></body></html>";
	retrieval_ingest_result r;
	retrieval_ingest_opts o = {.collection = "handbook", .content_type = "text/html; charset=utf-8"};
	assert_int_equal(retrieval_ingest_buffer(&r, db, &acme_analyst, &o, html, strlen(html)), 0);
	assert_string_equal(r.format, "html");
	retrieval_hits *h = search(&acme_viewer, "rotate passwords", NULL);
	assert_true(h->count >= 1);
	assert_string_equal(h->items[0].title, "Security guide");
	assert_string_equal(h->items[0].title_path, "Security > Passwords");
	check_citations(&acme_viewer, h);
	retrieval_hits_free(h);
	h = search(&acme_viewer, "secretvariable", NULL);
	assert_int_equal(h->count, 0); /* scripts are not text */
	retrieval_hits_free(h);
	retrieval_document *d;
	assert_int_equal(retrieval_document_get(&d, db, &acme_viewer, r.document_id, true), 0);
	assert_non_null(strstr(d->text, "# Security\n\nBadges must be worn visibly at all times."));
	assert_non_null(strstr(d->text, "```\npasswd --rotate\n```"));
	assert_int_equal(d->text_len, d->text_bytes);
	retrieval_document_free(d);
}

static void test_pdf(void **state)
{
	(void)state;
	const char *pages[] = {"Warehouse opening hours are seven to five.", "Forklift licences expire after"
									     " three years."};
	size_t len;
	char *pdf = make_pdf(pages, 2, &len);
	retrieval_ingest_result r;
	retrieval_ingest_opts o = {
		.collection = "handbook", .filename = "warehouse.pdf", .title = "Warehouse"};
	assert_int_equal(retrieval_ingest_buffer(&r, db, &acme_analyst, &o, pdf, len), 0);
	ag_free(pdf);
	assert_string_equal(r.format, "pdf");
	retrieval_hits *h = search(&acme_viewer, "forklift licences", NULL);
	assert_int_equal(h->count, 1);
	assert_string_equal(h->items[0].title_path, "p. 2");
	check_citations(&acme_viewer, h);
	retrieval_hits_free(h);
	h = search(&acme_viewer, "warehouse opening", NULL);
	assert_true(h->count >= 1);
	assert_string_equal(h->items[0].title_path, "p. 1");
	retrieval_hits_free(h);
}

static void test_encodings(void **state)
{
	(void)state;
	/* Latin-1 bytes become UTF-8; UTF-16 with a BOM is converted. */
	static const char latin1[] = "Caf\xe9 men\xfc: cr\xe8me br\xfbl\xe9\x65 on Fridays.\n";
	retrieval_ingest_result r;
	assert_int_equal(ingest_str(&r, db, &acme_analyst, "handbook", "menu.txt", NULL, latin1), 0);
	retrieval_document *d;
	assert_int_equal(retrieval_document_get(&d, db, &acme_viewer, r.document_id, true), 0);
	assert_non_null(strstr(d->text, "Café menü: crème"));
	retrieval_document_free(d);
	static const char utf16[] = "\xff\xfeS\0a\0u\0n\0a\0 \0r\0u\0l\0e\0s\0\n\0";
	retrieval_ingest_opts o = {.collection = "handbook", .filename = "sauna.txt"};
	assert_int_equal(retrieval_ingest_buffer(&r, db, &acme_analyst, &o, utf16, sizeof utf16 - 1), 0);
	retrieval_hits *h = search(&acme_viewer, "sauna", NULL);
	assert_int_equal(h->count, 1);
	assert_string_equal(h->items[0].text, "Sauna rules");
	retrieval_hits_free(h);
}

static void test_refusals_leave_store_unchanged(void **state)
{
	(void)state;
	const char *counts[] = {"SELECT count(*) FROM documents", "SELECT count(*) FROM chunks",
				"SELECT count(*) FROM document_text", "SELECT count(*) FROM chunks_fts"};
	long long before[4];
	for (int i = 0; i < 4; i++)
		before[i] = count_rows(db, counts[i]);
	retrieval_ingest_result r;
	retrieval_ingest_opts o = {.collection = "handbook", .filename = "broken.pdf"};
	static const char corrupt[] =
		"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\ntrailer garbage";
	assert_int_equal(retrieval_ingest_buffer(&r, db, &acme_analyst, &o, corrupt, sizeof corrupt - 1),
			 AG_ECORRUPT);
	assert_non_null(strstr(ag_error_last(), "PDF"));
	unsigned char junk[4096];
	uint32_t x = 12345;
	for (size_t i = 0; i < sizeof junk; i++) {
		x = x * 1103515245u + 12345u;
		junk[i] = (unsigned char)(x >> 16);
	}
	o.filename = "junk.bin";
	assert_int_equal(retrieval_ingest_buffer(&r, db, &acme_analyst, &o, junk, sizeof junk),
			 AG_EUNSUPPORTED);
	assert_non_null(strstr(ag_error_last(), "binary"));
	o.filename = "junk.txt"; /* the name does not make junk text */
	assert_int_equal(retrieval_ingest_buffer(&r, db, &acme_analyst, &o, junk, sizeof junk),
			 AG_EUNSUPPORTED);
	o.filename = "empty.txt";
	assert_int_equal(retrieval_ingest_buffer(&r, db, &acme_analyst, &o, "", 0), AG_EINVAL);
	assert_non_null(strstr(ag_error_last(), "empty"));
	assert_int_equal(retrieval_ingest_buffer(&r, db, &acme_analyst, &o, " \n\n \n", 5), AG_EINVAL);
	o.content_type = "image/png";
	assert_int_equal(retrieval_ingest_buffer(&r, db, &acme_analyst, &o, "abc", 3), AG_EUNSUPPORTED);
	o.content_type = NULL;
	o.max_bytes = 10;
	assert_int_equal(retrieval_ingest_buffer(&r, db, &acme_analyst, &o, "eleven byte", 11), AG_ELIMIT);
	/* A file on disk: empty, junk, over the limit. */
	char path[4096];
	snprintf(path, sizeof path, "%s/empty.txt", tmpdir());
	assert_int_equal(ag_write_file(path, "", 0, 0600), 0);
	o.max_bytes = 0;
	assert_int_equal(retrieval_ingest_file(&r, db, &acme_analyst, &o, path), AG_EINVAL);
	snprintf(path, sizeof path, "%s/junk.txt", tmpdir());
	assert_int_equal(ag_write_file(path, junk, sizeof junk, 0600), 0);
	assert_int_equal(retrieval_ingest_file(&r, db, &acme_analyst, &o, path), AG_EUNSUPPORTED);
	/* Text that turns binary after the first megabyte is refused mid-stream, rolled back. */
	size_t big = (3u << 20) + 100;
	char *mixed = ag_malloc(big);
	for (size_t i = 0; i < big; i++)
		mixed[i] = (i % 61 == 60) ? '\n' : (char)('a' + i % 26);
	mixed[big - 50] = '\0';
	snprintf(path, sizeof path, "%s/mixed.txt", tmpdir());
	assert_int_equal(ag_write_file(path, mixed, big, 0600), 0);
	ag_free(mixed);
	assert_int_equal(retrieval_ingest_file(&r, db, &acme_analyst, &o, path), AG_EUNSUPPORTED);
	o.max_bytes = 1000;
	assert_int_equal(retrieval_ingest_file(&r, db, &acme_analyst, &o, path), AG_ELIMIT);
	for (int i = 0; i < 4; i++)
		assert_int_equal(count_rows(db, counts[i]), before[i]);
	assert_int_equal(ag_db_exec(db, "INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')"), 0);
}

static void test_dedup_replace_delete(void **state)
{
	(void)state;
	retrieval_ingest_result a, b;
	assert_int_equal(ingest_str(&a, db, &acme_analyst, "handbook", "v.txt", "wiki/vacation",
				    "Vacation requests go to the manager.\n"),
			 0);
	/* The same bytes again, from anywhere: stored once. */
	assert_int_equal(ingest_str(&b, db, &acme_analyst, "handbook", "copy.txt", NULL,
				    "Vacation requests go to the manager.\n"),
			 0);
	assert_true(b.unchanged);
	assert_string_equal(a.document_id, b.document_id);
	/* The same source with new content: replaced under the same id. */
	assert_int_equal(ingest_str(&b, db, &acme_analyst, "handbook", "v.txt", "wiki/vacation",
				    "Vacation requests go to the team lead via the portal.\n"),
			 0);
	assert_true(b.replaced);
	assert_string_equal(a.document_id, b.document_id);
	retrieval_hits *h = search(&acme_viewer, "manager", NULL);
	assert_int_equal(h->count, 0);
	retrieval_hits_free(h);
	h = search(&acme_viewer, "vacation lead", NULL);
	assert_int_equal(h->count, 1);
	check_citations(&acme_viewer, h);
	retrieval_hits_free(h);
	/* Viewers cannot delete; an analyst can, and every trace goes. */
	assert_int_equal(retrieval_document_delete(db, &acme_viewer, a.document_id), AG_EDENIED);
	assert_int_equal(retrieval_document_delete(db, &acme_analyst, a.document_id), 0);
	char sql[256];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM chunks WHERE document_id = '%s'", a.document_id);
	assert_int_equal(count_rows(db, sql), 0);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM document_text WHERE document_id = '%s'",
		 a.document_id);
	assert_int_equal(count_rows(db, sql), 0);
	assert_int_equal(count_rows(db, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'vacation'"),
			 0);
	assert_int_equal(ag_db_exec(db, "INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')"), 0);
	h = search(&acme_admin, "vacation", NULL);
	assert_int_equal(h->count, 0);
	retrieval_hits_free(h);
	retrieval_document *d;
	assert_int_equal(retrieval_document_get(&d, db, &acme_admin, a.document_id, false), AG_ENOTFOUND);
	assert_int_equal(retrieval_document_delete(db, &acme_admin, a.document_id), AG_ENOTFOUND);
}

static void test_acl(void **state)
{
	(void)state;
	retrieval_collection *c;
	/* Restricted to analysts and the user "victor"; viewers in general may not read it. */
	const char *roles[] = {"analyst"}, *users[] = {"vera"};
	assert_int_equal(
		retrieval_collection_create(&c, db, &acme_admin, "finance", NULL, roles, 1, users, 1), 0);
	assert_int_equal(c->nroles, 1);
	assert_string_equal(c->users[0], "vera");
	retrieval_collection_free(c);
	assert_int_equal(retrieval_collection_create(&c, db, &acme_viewer, "mine", NULL, NULL, 0, NULL, 0),
			 AG_EDENIED);
	assert_int_equal(retrieval_collection_create(&c, db, &acme_admin, "finance", NULL, NULL, 0, NULL, 0),
			 AG_ECONFLICT);
	assert_int_equal(
		retrieval_collection_create(&c, db, &acme_admin, "bad name!", NULL, NULL, 0, NULL, 0),
		AG_EINVAL);
	const char *bad_role[] = {"wizard"};
	assert_int_equal(retrieval_collection_create(&c, db, &acme_admin, "x", NULL, bad_role, 1, NULL, 0),
			 AG_EINVAL);
	/* Another tenant may use the same name; its collection is its own. */
	assert_int_equal(
		retrieval_collection_create(&c, db, &globex_admin, "finance", NULL, NULL, 0, NULL, 0), 0);
	retrieval_collection_free(c);
	retrieval_ingest_result r;
	assert_int_equal(ingest_str(&r, db, &acme_analyst, "finance", "b.txt", NULL,
				    "The acquisition budget is confidential: nine million.\n"),
			 0);
	assert_int_equal(ingest_str(&r, db, &globex_admin, "finance", "g.txt", NULL,
				    "Globex acquisition budget: two million.\n"),
			 0);
	/* acme's analyst sees only acme's chunk; globex's admin only globex's. */
	retrieval_hits *h = search(&acme_analyst, "acquisition budget", NULL);
	assert_int_equal(h->count, 1);
	assert_non_null(strstr(h->items[0].text, "nine million"));
	retrieval_hits_free(h);
	h = search(&globex_admin, "acquisition budget", NULL);
	assert_int_equal(h->count, 1);
	assert_non_null(strstr(h->items[0].text, "two million"));
	retrieval_hits_free(h);
	/* A viewer without the collection gets nothing, even naming it; vera (a viewer) is listed. */
	h = search(&acme_viewer, "acquisition budget", NULL);
	assert_int_equal(h->count, 0);
	retrieval_hits_free(h);
	retrieval_query q = {
		.text = "acquisition", .collections = (const char *[]){"finance"}, .ncollections = 1};
	assert_int_equal(retrieval_search(&h, db, &acme_viewer, &q), AG_ENOTFOUND);
	assert_int_equal(
		retrieval_document_get(&(retrieval_document *){NULL}, db, &acme_viewer, r.document_id, true),
		AG_ENOTFOUND);
	retrieval_principal vera = {"acme", "vera", "viewer"};
	h = search(&vera, "acquisition budget", NULL);
	assert_int_equal(h->count, 1);
	retrieval_hits_free(h);
	/* The auditor role is not listed either; acme's admin reads everything of acme. */
	h = search(&acme_auditor, "acquisition", NULL);
	assert_int_equal(h->count, 0);
	retrieval_hits_free(h);
	h = search(&acme_admin, "acquisition", NULL);
	assert_int_equal(h->count, 1);
	retrieval_hits_free(h);
	/* Listing follows the same rule. */
	retrieval_collection_list *l;
	assert_int_equal(retrieval_collection_list_readable(&l, db, &acme_viewer), 0);
	for (size_t i = 0; i < l->count; i++)
		assert_string_not_equal(l->items[i].name, "finance");
	retrieval_collection_list_free(l);
	assert_int_equal(retrieval_collection_list_readable(&l, db, &globex_admin), 0);
	assert_int_equal(l->count, 1);
	assert_string_equal(l->items[0].tenant, "globex");
	retrieval_collection_list_free(l);
	retrieval_document_list *dl;
	assert_int_equal(retrieval_document_list_readable(&dl, db, &globex_admin, NULL), 0);
	assert_int_equal(dl->count, 1);
	retrieval_document_list_free(dl);
	/* Writing into another tenant's collection is "not found", into a readable one as a viewer denied. */
	assert_int_equal(ingest_str(&r, db, &globex_admin, "handbook", "x.txt", NULL, "intrusion\n"),
			 AG_ENOTFOUND);
	assert_int_equal(ingest_str(&r, db, &acme_viewer, "handbook", "x.txt", NULL, "viewer text\n"),
			 AG_EDENIED);
}

static void test_filters(void **state)
{
	(void)state;
	retrieval_collection *c;
	assert_int_equal(retrieval_collection_create(&c, db, &acme_admin, "filters", NULL, NULL, 0, NULL, 0),
			 0);
	retrieval_collection_free(c);
	retrieval_ingest_result r1, r2;
	retrieval_ingest_opts o = {.collection = "filters", .source = "crm/old", .date_ms = 1000000};
	const char *t1 = "Lighthouse maintenance schedule for the old harbour.\n";
	assert_int_equal(retrieval_ingest_buffer(&r1, db, &acme_analyst, &o, t1, strlen(t1)), 0);
	o.source = "wiki/new";
	o.date_ms = 2000000;
	const char *t2 = "Lighthouse keeper rota for the new harbour.\n";
	assert_int_equal(retrieval_ingest_buffer(&r2, db, &acme_analyst, &o, t2, strlen(t2)), 0);
	const char *coll = "filters";
	retrieval_query q = {.text = "lighthouse harbour", .collections = &coll, .ncollections = 1};
	retrieval_hits *h;
	assert_int_equal(retrieval_search(&h, db, &acme_viewer, &q), 0);
	assert_int_equal(h->count, 2);
	retrieval_hits_free(h);
	q.since_ms = 1500000;
	assert_int_equal(retrieval_search(&h, db, &acme_viewer, &q), 0);
	assert_int_equal(h->count, 1);
	assert_string_equal(h->items[0].document_id, r2.document_id);
	retrieval_hits_free(h);
	q.since_ms = 0;
	q.until_ms = 1500000;
	assert_int_equal(retrieval_search(&h, db, &acme_viewer, &q), 0);
	assert_int_equal(h->count, 1);
	assert_string_equal(h->items[0].document_id, r1.document_id);
	retrieval_hits_free(h);
	q.until_ms = 0;
	q.source = "wiki/*";
	assert_int_equal(retrieval_search(&h, db, &acme_viewer, &q), 0);
	assert_int_equal(h->count, 1);
	assert_string_equal(h->items[0].source, "wiki/new");
	retrieval_hits_free(h);
	q.source = "crm/old";
	assert_int_equal(retrieval_search(&h, db, &acme_viewer, &q), 0);
	assert_int_equal(h->count, 1);
	retrieval_hits_free(h);
	q.source = NULL;
	q.document_id = r1.document_id;
	assert_int_equal(retrieval_search(&h, db, &acme_viewer, &q), 0);
	assert_int_equal(h->count, 1);
	assert_string_equal(h->items[0].document_id, r1.document_id);
	retrieval_hits_free(h);
	/* FTS syntax in the query is just text; a query with no words is an error. */
	q.document_id = NULL;
	q.text = "lighthouse\" OR NEAR(x y) AND -harbour:*";
	assert_int_equal(retrieval_search(&h, db, &acme_viewer, &q), 0);
	retrieval_hits_free(h);
	q.text = " ?! ";
	assert_int_equal(retrieval_search(&h, db, &acme_viewer, &q), AG_EINVAL);
	q.text = "x";
	q.k = 1000;
	assert_int_equal(retrieval_search(&h, db, &acme_viewer, &q), AG_EINVAL);
	/* Merging the index changes no result. */
	assert_int_equal(retrieval_optimize(db), 0);
	assert_int_equal(ag_db_exec(db, "INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')"), 0);
	q.text = "lighthouse harbour";
	q.k = 0;
	assert_int_equal(retrieval_search(&h, db, &acme_viewer, &q), 0);
	assert_int_equal(h->count, 2);
	retrieval_hits_free(h);
	/* A question whose only indexed word is one term still finds its chunks: the other words
	 * appear nowhere, so neither AND nor any pair can match. */
	q.text = "How often is maintenance done on weekdays?";
	assert_int_equal(retrieval_search(&h, db, &acme_viewer, &q), 0);
	assert_int_equal(h->count, 1);
	assert_string_equal(h->items[0].document_id, r1.document_id);
	retrieval_hits_free(h);
}

static void test_chunk_budget_and_overlap(void **state)
{
	(void)state;
	/* A long section: chunks stay within budget, overlap, and tile the section. */
	ag_buf b = AG_BUF_INIT;
	ag_buf_puts(&b, "# Long\n\n");
	for (int i = 0; i < 400; i++)
		ag_buf_printf(&b, "Sentence number %d talks about topic%d in detail.%s", i, i,
			      i % 7 == 6 ? "\n\n" : " ");
	retrieval_ingest_result r;
	assert_int_equal(ingest_str(&r, db, &acme_analyst, "handbook", "long.md", "long.md", b.data), 0);
	assert_true(r.chunks > 10);
	sqlite3_stmt *st;
	assert_int_equal(
		ag_db_prepare(
			db, &st,
			"SELECT start_byte, end_byte, body, title_path FROM chunks WHERE document_id = ?1"
			" ORDER BY seq"),
		0);
	ag_db_bind_text(st, 1, r.document_id);
	size_t prev_end = 0;
	int n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		size_t s = (size_t)sqlite3_column_int64(st, 0), e = (size_t)sqlite3_column_int64(st, 1);
		assert_true(e - s <= 1200);
		assert_memory_equal(b.data + s, sqlite3_column_text(st, 2), e - s);
		assert_string_equal((const char *)sqlite3_column_text(st, 3), "Long");
		if (n++ > 0)
			assert_true(s <= prev_end + 2); /* no gap: overlapping or adjacent */
		prev_end = e;
	}
	sqlite3_finalize(st);
	assert_true(prev_end >= b.len - 2);
	ag_buf_free(&b);
	retrieval_hits *h = search(&acme_viewer, "topic399", NULL);
	assert_int_equal(h->count, 1);
	check_citations(&acme_viewer, h);
	retrieval_hits_free(h);
}

static void test_multipart(void **state)
{
	(void)state;
	static const char body[] =
		"--XyZ\r\nContent-Disposition: form-data; name=\"collection\"\r\n\r\nhandbook\r\n"
		"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a b.txt\"\r\n"
		"Content-Type: text/plain\r\n\r\nline one\r\nline two\r\n--XyZ--\r\n";
	retrieval_parts *p;
	assert_int_equal(
		retrieval_multipart_parse(&p, "multipart/form-data; boundary=XyZ", body, sizeof body - 1), 0);
	assert_int_equal(p->count, 2);
	assert_string_equal(p->items[0].name, "collection");
	assert_int_equal(p->items[0].len, 8);
	assert_memory_equal(p->items[0].data, "handbook", 8);
	assert_string_equal(p->items[1].filename, "a b.txt");
	assert_string_equal(p->items[1].content_type, "text/plain");
	assert_int_equal(p->items[1].len, strlen("line one\r\nline two"));
	retrieval_parts_free(p);
	assert_int_equal(
		retrieval_multipart_parse(&p, "multipart/form-data; boundary=\"XyZ\"", body, sizeof body - 1),
		0);
	retrieval_parts_free(p);
	/* Truncated, wrong boundary, no boundary. */
	assert_int_equal(retrieval_multipart_parse(&p, "multipart/form-data; boundary=XyZ", body, 60),
			 AG_EINVAL);
	assert_int_equal(
		retrieval_multipart_parse(&p, "multipart/form-data; boundary=Q", body, sizeof body - 1),
		AG_EINVAL);
	assert_int_equal(retrieval_multipart_parse(&p, "multipart/form-data", body, sizeof body - 1),
			 AG_EINVAL);
	assert_int_equal(retrieval_multipart_parse(&p, "text/plain", body, sizeof body - 1), AG_EINVAL);
}

static void test_allocation_failures(void **state)
{
	(void)state;
	/* Every allocation of an ingestion and a search fails in turn: errors, never crashes or leaks. */
	for (long n = 1; n < 400; n++) {
		retrieval_ingest_result r;
		ag_alloc_fail_after(n);
		int rc = ingest_str(&r, db, &acme_analyst, "handbook", "af.md", "af.md",
				    "# Alloc\n\nFailure injection paragraph.\n");
		ag_alloc_fail_after(0);
		assert_true(rc == 0 || rc == AG_ENOMEM || rc == AG_EIO || rc == AG_ERR);
		if (rc == 0)
			break;
	}
	assert_int_equal(ag_db_exec(db, "INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')"), 0);
	for (long n = 1; n < 200; n++) {
		retrieval_query q = {.text = "failure injection"};
		retrieval_hits *h = NULL;
		ag_alloc_fail_after(n);
		int rc = retrieval_search(&h, db, &acme_viewer, &q);
		ag_alloc_fail_after(0);
		retrieval_hits_free(h);
		if (rc == 0)
			break;
	}
}

int main(void)
{
	ag_alloc_init();
	ag_log_set_level(AG_LOG_WARN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_markdown_structure_and_citations),
		cmocka_unit_test(test_plain_text_and_source),
		cmocka_unit_test(test_html),
		cmocka_unit_test(test_pdf),
		cmocka_unit_test(test_encodings),
		cmocka_unit_test(test_refusals_leave_store_unchanged),
		cmocka_unit_test(test_dedup_replace_delete),
		cmocka_unit_test(test_acl),
		cmocka_unit_test(test_filters),
		cmocka_unit_test(test_chunk_budget_and_overlap),
		cmocka_unit_test(test_multipart),
		cmocka_unit_test(test_allocation_failures),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
