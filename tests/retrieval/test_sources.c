/*
 * Sources: a git repository made in TEST_TMPDIR with the git command, ingested,
 * changed and re-ingested (only what changed is touched); URLs served by a tiny
 * libmicrohttpd server on 127.0.0.1 (content types, size limit, redirects, 404).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <microhttpd.h>

#include "tests/retrieval/helpers.h"

static sqlite3 *db;
static char repo[4096];

/* libgit2 1.5 leaves PCRE2 match data behind when it reads repository config
 * (allocated inside libpcre2, never by our code); LeakSanitizer is told so. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libpcre2-8.so\n"; }

static int setup(void **state)
{
	(void)state;
	db = open_db("sources");
	retrieval_collection *c;
	assert_int_equal(retrieval_collection_create(&c, db, &acme_admin, "code", NULL, NULL, 0, NULL, 0), 0);
	retrieval_collection_free(c);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ag_db_close(db);
	return 0;
}

static void sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	int rc = system(cmd);
	if (rc != 0)
		fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
	assert_int_equal(rc, 0);
}

static void write_repo_file(const char *name, const char *text)
{
	char path[8192];
	snprintf(path, sizeof path, "%s/%s", repo, name);
	assert_int_equal(ag_write_file(path, text, strlen(text), 0644), 0);
}

static void commit(const char *msg)
{
	sh("cd '%s' && git add -A && git -c user.name=t -c user.email=t@example.com commit -q -m '%s'", repo,
	   msg);
}

static long long chunk_id_of(const char *source_suffix)
{
	char sql[1024];
	snprintf(sql, sizeof sql,
		 "SELECT min(c.id) FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.source "
		 "LIKE '%%%s'",
		 source_suffix);
	return count_rows(db, sql);
}

static void test_git_reingest_touches_only_changes(void **state)
{
	(void)state;
	snprintf(repo, sizeof repo, "%s/repo", tmpdir());
	sh("rm -rf '%s' && mkdir -p '%s/docs' && cd '%s' && git init -q -b main", repo, repo, repo);
	write_repo_file("README.md", "# Widget\n\nWidget builds sprockets from cogs.\n");
	write_repo_file("docs/setup.md", "# Setup\n\nInstall the flux capacitor first.\n");
	write_repo_file("main.c", "int main(void) { return sprocket_count(); }\n");
	write_repo_file("old.txt", "This file will be removed soon: obsolete gizmo.\n");
	char bin[64] = {0x7f, 'E', 'L', 'F', 0, 1, 2, 3};
	char path[8192];
	snprintf(path, sizeof path, "%s/logo.bin", repo);
	assert_int_equal(ag_write_file(path, bin, sizeof bin, 0644), 0);
	commit("first");
	retrieval_git_result g;
	assert_int_equal(retrieval_ingest_git(&g, db, &acme_analyst, "code", repo, NULL, 0), 0);
	assert_int_equal(strlen(g.commit), 40);
	assert_int_equal(g.added, 4);
	assert_int_equal(g.skipped, 1); /* the binary */
	assert_int_equal(g.updated, 0);
	long long readme_chunk = chunk_id_of(":README.md"), setup_chunk = chunk_id_of(":docs/setup.md");
	assert_true(readme_chunk > 0 && setup_chunk > 0);
	char first_commit[41];
	memcpy(first_commit, g.commit, 41);

	/* Nothing changed: nothing touched. */
	assert_int_equal(retrieval_ingest_git(&g, db, &acme_analyst, "code", repo, "main", 0), 0);
	assert_int_equal(g.added + g.updated + g.removed, 0);
	assert_int_equal(g.unchanged, 4);

	/* Change one file, delete one, add one. */
	write_repo_file("docs/setup.md", "# Setup\n\nInstall the temporal stabiliser first.\n");
	write_repo_file("NEW.md", "# New\n\nA brand new hoverboard manual.\n");
	sh("cd '%s' && git rm -q old.txt", repo);
	commit("second");
	assert_int_equal(retrieval_ingest_git(&g, db, &acme_analyst, "code", repo, NULL, 0), 0);
	assert_string_not_equal(g.commit, first_commit);
	assert_int_equal(g.updated, 1);
	assert_int_equal(g.added, 1);
	assert_int_equal(g.removed, 1);
	assert_int_equal(g.unchanged, 2);
	/* Unchanged files kept their chunks (same ids); the changed one was re-chunked. */
	assert_int_equal(chunk_id_of(":README.md"), readme_chunk);
	assert_true(chunk_id_of(":docs/setup.md") != setup_chunk);
	retrieval_query q = {.text = "flux capacitor"};
	retrieval_hits *h;
	assert_int_equal(retrieval_search(&h, db, &acme_viewer, &q), 0);
	assert_int_equal(h->count, 0);
	retrieval_hits_free(h);
	q.text = "temporal stabiliser";
	assert_int_equal(retrieval_search(&h, db, &acme_viewer, &q), 0);
	assert_int_equal(h->count, 1);
	assert_string_equal(h->items[0].commit, g.commit);
	assert_non_null(strstr(h->items[0].source, ":docs/setup.md"));
	retrieval_hits_free(h);
	q.text = "obsolete gizmo";
	assert_int_equal(retrieval_search(&h, db, &acme_viewer, &q), 0);
	assert_int_equal(h->count, 0);
	retrieval_hits_free(h);
	/* README still carries the first commit: it was not touched. */
	q.text = "sprockets cogs";
	assert_int_equal(retrieval_search(&h, db, &acme_viewer, &q), 0);
	assert_true(h->count >= 1); /* main.c's sprocket_count matches "sprockets" alone, ranked below */
	assert_non_null(strstr(h->items[0].source, ":README.md"));
	assert_string_equal(h->items[0].commit, first_commit);
	retrieval_hits_free(h);
	/* An older ref can be ingested too; a bad ref or path is a clear error. */
	assert_int_equal(retrieval_ingest_git(&g, db, &acme_analyst, "code", repo, "no-such-ref", 0),
			 AG_ENOTFOUND);
	assert_int_equal(retrieval_ingest_git(&g, db, &acme_analyst, "code", "/nonexistent/repo", NULL, 0),
			 AG_ENOTFOUND);
	assert_int_equal(retrieval_ingest_git(&g, db, &acme_viewer, "code", repo, NULL, 0), AG_EDENIED);
	/* A file:// URL goes through a clone (into another collection: in this one the same
	 * contents are already stored, and dedup would store them once). */
	retrieval_collection *c;
	assert_int_equal(retrieval_collection_create(&c, db, &acme_admin, "mirror", NULL, NULL, 0, NULL, 0),
			 0);
	retrieval_collection_free(c);
	char url[8192];
	snprintf(url, sizeof url, "file://%s", repo);
	assert_int_equal(retrieval_ingest_git(&g, db, &acme_analyst, "mirror", url, NULL, 0), 0);
	assert_int_equal(g.added, 4);
	assert_int_equal(retrieval_ingest_git(&g, db, &acme_analyst, "code", url, NULL, 0), 0);
	assert_int_equal(g.added + g.updated, 0);
}

/* ------------------------------------------------------------ URL server */

static enum MHD_Result serve(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
			     const char *version, const char *upload, size_t *upload_len, void **con_cls)
{
	(void)cls, (void)method, (void)version, (void)upload, (void)upload_len, (void)con_cls;
	static char big[100000];
	const char *body = "", *type = "text/plain";
	size_t len = 0;
	unsigned status = 200;
	const char *location = NULL;
	if (strcmp(url, "/doc.txt") == 0) {
		body = "Fetched over HTTP: the quarterly zeppelin report.\n";
	} else if (strcmp(url, "/page.html") == 0) {
		body = "<html><head><title>Remote page</title></head><body><h1>Remote</h1><p>Blimp hangar "
		       "rules.</p></body></html>";
		type = "text/html";
	} else if (strcmp(url, "/big.txt") == 0) {
		memset(big, 'a', sizeof big);
		body = big;
		len = sizeof big;
	} else if (strcmp(url, "/image.png") == 0) {
		body = "\x89PNG....";
		type = "image/png";
	} else if (strcmp(url, "/redirect") == 0) {
		status = 302;
		location = "/doc.txt";
	} else if (strcmp(url, "/loop") == 0) {
		status = 302;
		location = "/loop";
	} else {
		status = 404;
		body = "not found";
	}
	if (!len)
		len = strlen(body);
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(r, "Content-Type", type);
	if (location)
		MHD_add_response_header(r, "Location", location);
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static void test_url(void **state)
{
	(void)state;
	struct MHD_Daemon *d = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, serve, NULL,
		MHD_OPTION_SOCK_ADDR,
		&(struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)},
		MHD_OPTION_END);
	assert_non_null(d);
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	unsigned port = info->port;
	char url[256];
	retrieval_ingest_result r;
	retrieval_ingest_opts o = {.collection = "code", .max_bytes = 50000};
	snprintf(url, sizeof url, "http://127.0.0.1:%u/doc.txt", port);
	assert_int_equal(retrieval_ingest_url(&r, db, &acme_analyst, &o, url, 10, 3), 0);
	assert_string_equal(r.format, "text");
	retrieval_document *doc;
	assert_int_equal(retrieval_document_get(&doc, db, &acme_viewer, r.document_id, false), 0);
	assert_string_equal(doc->source, url);
	retrieval_document_free(doc);
	snprintf(url, sizeof url, "http://127.0.0.1:%u/page.html", port);
	assert_int_equal(retrieval_ingest_url(&r, db, &acme_analyst, &o, url, 10, 3), 0);
	assert_string_equal(r.format, "html");
	retrieval_query q = {.text = "blimp hangar"};
	retrieval_hits *h;
	assert_int_equal(retrieval_search(&h, db, &acme_viewer, &q), 0);
	assert_int_equal(h->count, 1);
	assert_string_equal(h->items[0].title, "Remote page");
	retrieval_hits_free(h);
	snprintf(url, sizeof url, "http://127.0.0.1:%u/big.txt", port);
	assert_int_equal(retrieval_ingest_url(&r, db, &acme_analyst, &o, url, 10, 3), AG_ELIMIT);
	snprintf(url, sizeof url, "http://127.0.0.1:%u/image.png", port);
	assert_int_equal(retrieval_ingest_url(&r, db, &acme_analyst, &o, url, 10, 3), AG_EUNSUPPORTED);
	snprintf(url, sizeof url, "http://127.0.0.1:%u/missing", port);
	assert_int_equal(retrieval_ingest_url(&r, db, &acme_analyst, &o, url, 10, 3), AG_ENOTFOUND);
	snprintf(url, sizeof url, "http://127.0.0.1:%u/redirect", port);
	o.source = "redirected";
	assert_int_equal(retrieval_ingest_url(&r, db, &acme_analyst, &o, url, 10, 3), 0);
	assert_true(r.unchanged); /* the same bytes as doc.txt */
	snprintf(url, sizeof url, "http://127.0.0.1:%u/loop", port);
	assert_int_equal(retrieval_ingest_url(&r, db, &acme_analyst, &o, url, 10, 3), AG_ELIMIT);
	assert_int_equal(retrieval_ingest_url(&r, db, &acme_analyst, &o, "file:///etc/passwd", 10, 3),
			 AG_EINVAL);
	MHD_stop_daemon(d);
}

int main(void)
{
	ag_alloc_init();
	ag_log_set_level(AG_LOG_WARN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_git_reingest_touches_only_changes),
		cmocka_unit_test(test_url),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
