/*
 * Built-in tools on real data, each through the full sandboxed call path:
 * sql on an SQLite file made here, git on a repository made here with
 * libgit2, http_get against a small HTTP server this test runs on
 * 127.0.0.1 (and a host off the allow list refused), plus the settings that
 * attach them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <git2.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tools/tools.h"

static char tmpdir[1024];
static sqlite3 *db; /* the daemon's database: settings */
static tools_env env = {.tenant = "acme", .user = "alice", .role = "admin"};

static int call(json_t **out, const char *tool, json_t *args)
{
	*out = NULL;
	tools_call_info info;
	int rc = tools_call(out, &info, &env, tool, args);
	printf("  %s -> %d %s (%.0f ms)\n", tool, rc, rc ? ag_error_last() : "ok", info.wall_ms);
	json_decref(args);
	return rc;
}

/* ----------------------------------------------------------------- sql */

static char data_db[1100];

static void make_data_db(void)
{
	snprintf(data_db, sizeof data_db, "%s/hr.db", tmpdir);
	sqlite3 *d;
	assert_int_equal(sqlite3_open(data_db, &d), SQLITE_OK);
	assert_int_equal(
		sqlite3_exec(
			d,
			"CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT, salary REAL, photo BLOB);"
			"INSERT INTO employees (name, salary, photo) VALUES ('Ann', 72000, x'00ff'),"
			" ('Bob', 48000, NULL), ('Cid', 91000.5, NULL), ('Dee', 55000, NULL);",
			NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(d);
}

static long long employee_count(void)
{
	sqlite3 *d;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_open(data_db, &d), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(d, "SELECT count(*) FROM employees", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	long long n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(d);
	return n;
}

static void test_sql(void **state)
{
	(void)state;
	json_t *out;
	assert_int_equal(
		call(&out, "sql",
		     json_pack("{s:s, s:s}", "database", "hr", "query",
			       "SELECT name, salary FROM employees WHERE salary > 50000 ORDER BY name")),
		0);
	json_t *rows = json_object_get(out, "rows");
	assert_int_equal(json_array_size(rows), 3);
	assert_string_equal(json_string_value(json_array_get(json_array_get(rows, 0), 0)), "Ann");
	assert_true(json_real_value(json_array_get(json_array_get(rows, 1), 1)) == 91000.5);
	assert_string_equal(json_string_value(json_array_get(json_object_get(out, "columns"), 1)), "salary");
	assert_false(json_is_true(json_object_get(out, "truncated")));
	json_decref(out);

	assert_int_equal(call(&out, "sql",
			      json_pack("{s:s, s:s, s:i}", "database", "hr", "query",
					"SELECT photo FROM employees ORDER BY id", "max_rows", 2)),
			 0);
	assert_int_equal(json_array_size(json_object_get(out, "rows")), 2);
	assert_true(json_is_true(json_object_get(out, "truncated")));
	json_t *blob = json_array_get(json_array_get(json_object_get(out, "rows"), 0), 0);
	assert_string_equal(json_string_value(json_object_get(blob, "blob_hex")), "00ff");
	json_decref(out);
}

static void test_sql_refuses_writes(void **state)
{
	(void)state;
	const char *bad[] = {
		"DELETE FROM employees",      "UPDATE employees SET salary = 0",
		"DROP TABLE employees",       "INSERT INTO employees (name) VALUES ('Eve')",
		"PRAGMA writable_schema = 1", "ATTACH DATABASE '/etc/passwd' AS p",
		"CREATE TABLE x (a)",         "SELECT load_extension('/tmp/evil')",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_t *out;
		int rc = call(&out, "sql", json_pack("{s:s, s:s}", "database", "hr", "query", bad[i]));
		if (rc == 0)
			fail_msg("'%s' was allowed", bad[i]);
		assert_true(rc == AG_EINVAL || rc == AG_EDENIED);
	}
	assert_int_equal(employee_count(), 4);
	json_t *out;
	assert_int_equal(
		call(&out, "sql",
		     json_pack("{s:s, s:s}", "database", "hr", "query", "SELECT 1; DELETE FROM employees")),
		AG_EINVAL);
	assert_non_null(strstr(ag_error_last(), "one statement"));
	assert_int_equal(employee_count(), 4);
}

static void test_sql_limits_and_names(void **state)
{
	(void)state;
	json_t *out;
	/* A query that never ends is stopped by the progress handler. */
	assert_int_equal(call(&out, "sql",
			      json_pack("{s:s, s:s}", "database", "hr", "query",
					"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
					"SELECT count(*) FROM c")),
			 AG_ETIMEOUT);
	assert_int_equal(call(&out, "sql", json_pack("{s:s, s:s}", "database", "nope", "query", "SELECT 1")),
			 AG_ENOTFOUND);
	/* Another tenant does not see acme's attachments. */
	env.tenant = "other";
	assert_int_equal(call(&out, "sql", json_pack("{s:s, s:s}", "database", "hr", "query", "SELECT 1")),
			 AG_ENOTFOUND);
	env.tenant = "acme";
	assert_int_equal(
		call(&out, "sql", json_pack("{s:s, s:s}", "database", "hr", "query", "SELEC nonsense")),
		AG_EINVAL);
}

/* A database in WAL mode opens read-only too, while another process writes it
 * and after that process is gone. The writer must be another process: SQLite
 * keeps per-process lock state that a forked child inherits but cannot use. */
static void test_sql_wal(void **state)
{
	(void)state;
	char path[1200];
	snprintf(path, sizeof path, "%s/wal.db", tmpdir);
	int go[2], ready[2];
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(ready), 0);
	pid_t writer = fork();
	if (writer == 0) {
		sqlite3 *d;
		if (sqlite3_open(path, &d) != SQLITE_OK ||
		    sqlite3_exec(
			    d,
			    "PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (41), (1);",
			    NULL, NULL, NULL) != SQLITE_OK)
			_exit(1);
		char c = 'r';
		if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(1);
		sqlite3_close(d);
		_exit(0);
	}
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	char settings[3000];
	snprintf(settings, sizeof settings,
		 "{\"databases\": [{\"name\": \"hr\", \"path\": \"%s\"}, {\"name\": \"wal\", \"path\": "
		 "\"%s\"}]}",
		 data_db, path);
	json_t *v;
	assert_int_equal(ag_json_parse(&v, settings, strlen(settings)), 0);
	assert_int_equal(tools_settings_put(db, "acme", v), 0);
	json_decref(v);
	json_t *out;
	/* While the writer holds the database open: its -wal and -shm exist. */
	assert_int_equal(call(&out, "sql",
			      json_pack("{s:s, s:s}", "database", "wal", "query", "SELECT sum(x) FROM t")),
			 0);
	assert_int_equal(
		json_integer_value(json_array_get(json_array_get(json_object_get(out, "rows"), 0), 0)), 42);
	json_decref(out);
	assert_int_equal(write(go[1], "g", 1), 1);
	int st;
	assert_int_equal(waitpid(writer, &st, 0), writer);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(go[0]), close(go[1]), close(ready[0]), close(ready[1]);
	/* After it closed: no -wal, no -shm, and a reader that may create neither. */
	assert_int_equal(call(&out, "sql",
			      json_pack("{s:s, s:s}", "database", "wal", "query", "SELECT count(*) FROM t")),
			 0);
	assert_int_equal(
		json_integer_value(json_array_get(json_array_get(json_object_get(out, "rows"), 0), 0)), 2);
	json_decref(out);
}

/* ----------------------------------------------------------------- git */

static char repo_dir[1100];

static void commit_file(git_repository *repo, const char *name, const char *text, const char *message,
			git_oid *out)
{
	char path[2048];
	snprintf(path, sizeof path, "%s/%s", repo_dir, name);
	assert_int_equal(ag_write_file(path, text, strlen(text), 0644), 0);
	git_index *idx;
	git_oid tree_id;
	git_tree *tree;
	git_signature *sig;
	assert_int_equal(git_repository_index(&idx, repo), 0);
	assert_int_equal(git_index_add_bypath(idx, name), 0);
	assert_int_equal(git_index_write(idx), 0);
	assert_int_equal(git_index_write_tree(&tree_id, idx), 0);
	assert_int_equal(git_tree_lookup(&tree, repo, &tree_id), 0);
	static int64_t when = 1700000000;
	assert_int_equal(git_signature_new(&sig, "Tess Ter", "tess@example.com", when += 60, 0), 0);
	git_commit *parent = NULL;
	git_oid head;
	int nparents = 0;
	if (git_reference_name_to_id(&head, repo, "HEAD") == 0) {
		assert_int_equal(git_commit_lookup(&parent, repo, &head), 0);
		nparents = 1;
	}
	const git_commit *parents[1] = {parent};
	assert_int_equal(
		git_commit_create(out, repo, "HEAD", sig, sig, NULL, message, tree, nparents, parents), 0);
	git_commit_free(parent);
	git_signature_free(sig);
	git_tree_free(tree);
	git_index_free(idx);
}

static void make_repo(void)
{
	snprintf(repo_dir, sizeof repo_dir, "%s/repo", tmpdir);
	git_libgit2_init();
	git_repository *repo;
	assert_int_equal(git_repository_init(&repo, repo_dir, 0), 0);
	git_oid a, b, c;
	commit_file(repo, "README.md", "# Widget\nold line\n", "initial: add the readme", &a);
	commit_file(repo, "README.md", "# Widget\nnew line\n", "fix: typo in the readme", &b);
	commit_file(repo, "src.c", "int main(void) { return 0; }\n", "feat: add the program", &c);
	git_repository_free(repo);
	git_libgit2_shutdown();
}

static void test_git(void **state)
{
	(void)state;
	json_t *out;
	assert_int_equal(call(&out, "git", json_pack("{s:s, s:s}", "repository", "widget", "action", "log")),
			 0);
	json_t *commits = json_object_get(out, "commits");
	assert_int_equal(json_array_size(commits), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(commits, 0), "summary")),
			    "feat: add the program");
	assert_string_equal(json_string_value(json_object_get(json_array_get(commits, 2), "author")),
			    "Tess Ter");
	json_decref(out);

	assert_int_equal(call(&out, "git",
			      json_pack("{s:s, s:s, s:s, s:s}", "repository", "widget", "action", "show",
					"ref", "HEAD~2", "path", "README.md")),
			 0);
	assert_string_equal(json_string_value(json_object_get(out, "content")), "# Widget\nold line\n");
	json_decref(out);

	assert_int_equal(call(&out, "git",
			      json_pack("{s:s, s:s, s:s, s:s}", "repository", "widget", "action", "diff",
					"from", "HEAD~2", "to", "HEAD~1")),
			 0);
	const char *patch = json_string_value(json_object_get(out, "patch"));
	assert_non_null(strstr(patch, "-old line"));
	assert_non_null(strstr(patch, "+new line"));
	assert_int_equal(json_integer_value(json_object_get(out, "files_changed")), 1);
	json_decref(out);

	assert_int_equal(call(&out, "git",
			      json_pack("{s:s, s:s, s:s}", "repository", "widget", "action", "search",
					"query", "TYPO")),
			 0);
	commits = json_object_get(out, "commits");
	assert_int_equal(json_array_size(commits), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(commits, 0), "summary")),
			    "fix: typo in the readme");
	json_decref(out);

	assert_int_equal(call(&out, "git",
			      json_pack("{s:s, s:s, s:s, s:s}", "repository", "widget", "action", "show",
					"ref", "HEAD", "path", "missing.txt")),
			 AG_ENOTFOUND);
	assert_int_equal(call(&out, "git",
			      json_pack("{s:s, s:s, s:s}", "repository", "widget", "action", "log", "ref",
					"no-such-branch")),
			 AG_ENOTFOUND);
	assert_int_equal(call(&out, "git", json_pack("{s:s, s:s}", "repository", "widget", "action", "rm")),
			 AG_EINVAL);
	/* A path escaping the repository is just a name libgit2 does not find in the tree. */
	assert_int_equal(call(&out, "git",
			      json_pack("{s:s, s:s, s:s}", "repository", "widget", "action", "show", "path",
					"../../etc/shadow")),
			 AG_ENOTFOUND);
}

/* ---------------------------------------------------------------- http */

static int server_fd = -1;
static unsigned server_port;
static volatile int server_stop;
static pthread_t server_thread;

static void respond(int c, const char *path)
{
	char head[512];
	if (strcmp(path, "/hello") == 0) {
		const char *body = "hello from the test server";
		int n = snprintf(head, sizeof head,
				 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
				 "Connection: close\r\n\r\n%s",
				 strlen(body), body);
		send(c, head, (size_t)n, MSG_NOSIGNAL);
	} else if (strcmp(path, "/redirect-in") == 0) {
		int n = snprintf(head, sizeof head,
				 "HTTP/1.1 302 Found\r\nLocation: /hello\r\nContent-Length: 0\r\nConnection: "
				 "close\r\n\r\n");
		send(c, head, (size_t)n, MSG_NOSIGNAL);
	} else if (strcmp(path, "/redirect-out") == 0) {
		int n = snprintf(
			head, sizeof head,
			"HTTP/1.1 302 Found\r\nLocation: http://localhost:%u/hello\r\nContent-Length: 0\r\n"
			"Connection: close\r\n\r\n",
			server_port);
		send(c, head, (size_t)n, MSG_NOSIGNAL);
	} else if (strcmp(path, "/big") == 0) {
		size_t total = 3u << 20;
		int n = snprintf(head, sizeof head,
				 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
				 "Connection: close\r\n\r\n",
				 total);
		send(c, head, (size_t)n, MSG_NOSIGNAL);
		static char chunk[65536];
		memset(chunk, 'x', sizeof chunk);
		for (size_t sent = 0; sent < total; sent += sizeof chunk)
			if (send(c, chunk, sizeof chunk, MSG_NOSIGNAL) < 0)
				break;
	} else if (strcmp(path, "/slow") == 0) {
		sleep(3);
	} else {
		int n = snprintf(head, sizeof head,
				 "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
		send(c, head, (size_t)n, MSG_NOSIGNAL);
	}
}

static void *serve(void *arg)
{
	(void)arg;
	while (!server_stop) {
		struct pollfd pf = {.fd = server_fd, .events = POLLIN};
		if (poll(&pf, 1, 100) <= 0)
			continue;
		int c = accept(server_fd, NULL, NULL);
		if (c < 0)
			continue;
		char req[4096];
		ssize_t n = recv(c, req, sizeof req - 1, 0);
		if (n > 0) {
			req[n] = '\0';
			char path[256] = "";
			sscanf(req, "GET %255s", path);
			respond(c, path);
		}
		close(c);
	}
	return NULL;
}

static void start_server(void)
{
	server_fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	assert_int_equal(bind(server_fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(server_fd, 16), 0);
	assert_int_equal(getsockname(server_fd, (struct sockaddr *)&a, &len), 0);
	server_port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&server_thread, NULL, serve, NULL), 0);
}

static json_t *get_args(const char *host, const char *path)
{
	char url[512];
	snprintf(url, sizeof url, "http://%s:%u%s", host, server_port, path);
	return json_pack("{s:s}", "url", url);
}

static void test_http_get(void **state)
{
	(void)state;
	json_t *out;
	assert_int_equal(call(&out, "http_get", get_args("127.0.0.1", "/hello")), 0);
	assert_int_equal(json_integer_value(json_object_get(out, "status")), 200);
	assert_string_equal(json_string_value(json_object_get(out, "body")), "hello from the test server");
	assert_string_equal(json_string_value(json_object_get(out, "content_type")), "text/plain");
	json_decref(out);

	assert_int_equal(call(&out, "http_get", get_args("127.0.0.1", "/redirect-in")), 0);
	assert_int_equal(json_integer_value(json_object_get(out, "redirects")), 1);
	assert_string_equal(json_string_value(json_object_get(out, "body")), "hello from the test server");
	json_decref(out);

	json_t *args = get_args("127.0.0.1", "/big");
	json_object_set_new(args, "max_bytes", json_integer(1000));
	assert_int_equal(call(&out, "http_get", args), 0);
	assert_true(json_is_true(json_object_get(out, "truncated")));
	assert_int_equal(json_integer_value(json_object_get(out, "bytes")), 1000);
	json_decref(out);

	assert_int_equal(call(&out, "http_get", get_args("127.0.0.1", "/missing")), 0);
	assert_int_equal(json_integer_value(json_object_get(out, "status")), 404);
	json_decref(out);
}

static void test_http_refusals(void **state)
{
	(void)state;
	json_t *out;
	/* localhost is the same machine but not the name on the list. */
	assert_int_equal(call(&out, "http_get", get_args("localhost", "/hello")), AG_EDENIED);
	assert_non_null(strstr(ag_error_last(), "not on the allowed hosts list"));
	assert_int_equal(call(&out, "http_get", get_args("10.1.2.3", "/hello")), AG_EDENIED);
	/* A redirect cannot lead off the list either. */
	assert_int_equal(call(&out, "http_get", get_args("127.0.0.1", "/redirect-out")), AG_EDENIED);
	assert_non_null(strstr(ag_error_last(), "redirect to host localhost"));
	assert_int_equal(call(&out, "http_get", json_pack("{s:s}", "url", "ftp://127.0.0.1/x")), AG_EINVAL);
	assert_int_equal(call(&out, "http_get", json_pack("{s:s}", "url", "file:///etc/passwd")), AG_EINVAL);
	/* The same host on another port is another entry. */
	char url[128];
	snprintf(url, sizeof url, "http://127.0.0.1:%u/", server_port == 65535 ? 1 : server_port + 1);
	assert_int_equal(call(&out, "http_get", json_pack("{s:s}", "url", url)), AG_EDENIED);
	json_t *args = get_args("127.0.0.1", "/slow");
	json_object_set_new(args, "timeout_seconds", json_integer(1));
	assert_int_equal(call(&out, "http_get", args), AG_ETIMEOUT);
}

/* A host name goes through the resolver (a thread, NSS, /etc/hosts) inside the sandbox. */
static void test_http_by_name(void **state)
{
	(void)state;
	char name[256];
	if (gethostname(name, sizeof name) != 0) {
		printf("  SKIP: no host name\n");
		skip();
	}
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
	bool loopback = false;
	if (getaddrinfo(name, NULL, &hints, &ai) == 0) {
		for (struct addrinfo *p = ai; p; p = p->ai_next)
			if (((struct sockaddr_in *)p->ai_addr)->sin_addr.s_addr == htonl(INADDR_LOOPBACK))
				loopback = true;
		freeaddrinfo(ai);
	}
	if (!loopback) {
		printf("  SKIP: host name '%s' does not resolve to 127.0.0.1 here\n", name);
		skip();
	}
	char settings[512];
	snprintf(settings, sizeof settings, "{\"allowed_hosts\": [\"127.0.0.1:%u\", \"%s:%u\"]}", server_port,
		 name, server_port);
	json_t *v;
	assert_int_equal(ag_json_parse(&v, settings, strlen(settings)), 0);
	assert_int_equal(tools_settings_put(db, "acme", v), 0);
	json_decref(v);
	json_t *out;
	assert_int_equal(call(&out, "http_get", get_args(name, "/hello")), 0);
	assert_string_equal(json_string_value(json_object_get(out, "body")), "hello from the test server");
	json_decref(out);
}

/* ------------------------------------------------------------ settings */

static void test_settings(void **state)
{
	(void)state;
	json_t *s;
	assert_int_equal(tools_settings_get(&s, db, "acme"), 0);
	assert_true(json_array_size(json_object_get(s, "databases")) >= 1);
	assert_int_equal(json_array_size(json_object_get(s, "repositories")), 1);
	assert_int_equal(json_array_size(json_object_get(s, "allowed_hosts")), 1);
	const char *bad[] = {
		"{\"databases\": [{\"name\": \"x\", \"path\": \"relative.db\"}]}",
		"{\"databases\": [{\"name\": \"x\", \"path\": \"/no/such/file.db\"}]}",
		"{\"databases\": [{\"name\": \"x\", \"path\": \"/tmp\"}]}",
		"{\"repositories\": [{\"name\": \"x\", \"path\": \"/etc/hostname\"}]}",
		"{\"databases\": [{\"name\": \"bad name\", \"path\": \"/etc/hostname\"}]}",
		"{\"allowed_hosts\": [\"evil host\"]}",
		"{\"allowed_hosts\": \"127.0.0.1\"}",
		"{\"other\": []}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_t *v;
		assert_int_equal(ag_json_parse(&v, bad[i], strlen(bad[i])), 0);
		if (tools_settings_put(db, "acme", v) != AG_EINVAL)
			fail_msg("accepted: %s", bad[i]);
		json_decref(v);
	}
	/* Refused updates changed nothing. */
	size_t before = json_array_size(json_object_get(s, "databases"));
	json_decref(s);
	assert_int_equal(tools_settings_get(&s, db, "acme"), 0);
	assert_int_equal(json_array_size(json_object_get(s, "databases")), before);
	json_decref(s);
	char *path;
	assert_int_equal(tools_settings_lookup(&path, db, "acme", "database", "hr"), 0);
	assert_string_equal(path, data_db);
	ag_free(path);
	assert_int_equal(tools_settings_host_allowed(db, "acme", "127.0.0.1", server_port), 0);
	assert_int_equal(tools_settings_host_allowed(db, "acme", "127.0.0.1", 80), AG_EDENIED);
	assert_int_equal(tools_settings_host_allowed(db, "other", "127.0.0.1", server_port), AG_EDENIED);
}

static int setup(void **state)
{
	(void)state;
	char path[1100];
	snprintf(path, sizeof path, "%s/agentd.db", tmpdir);
	if (ag_db_open(&db, path) || tools_migrate(db))
		return -1;
	env.db = db;
	make_data_db();
	make_repo();
	start_server();
	char settings[4096];
	snprintf(settings, sizeof settings,
		 "{\"databases\": [{\"name\": \"hr\", \"path\": \"%s\"}], \"repositories\": [{\"name\": "
		 "\"widget\", "
		 "\"path\": \"%s\"}], \"allowed_hosts\": [\"127.0.0.1:%u\"]}",
		 data_db, repo_dir, server_port);
	json_t *v;
	if (ag_json_parse(&v, settings, strlen(settings)))
		return -1;
	int rc = tools_settings_put(db, "acme", v);
	json_decref(v);
	return rc ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	server_stop = 1;
	pthread_join(server_thread, NULL);
	close(server_fd);
	ag_db_close(db);
	return 0;
}

int main(void)
{
	ag_alloc_init();
	ag_log_set_level(AG_LOG_WARN);
	const char *t = getenv("TEST_TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s", t && *t ? t : "/tmp");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sql),
		cmocka_unit_test(test_sql_refuses_writes),
		cmocka_unit_test(test_sql_limits_and_names),
		cmocka_unit_test(test_sql_wal),
		cmocka_unit_test(test_git),
		cmocka_unit_test(test_http_get),
		cmocka_unit_test(test_http_refusals),
		cmocka_unit_test(test_settings),
		cmocka_unit_test(test_http_by_name),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
