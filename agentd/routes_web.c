/*
 * Web console routes: the static HTML, CSS and JavaScript of web/ served at
 * "/" and "/{file}" without a key (the page holds no data; every data call
 * the console makes carries the user's key). Files come from the directory
 * named by the web_root configuration key: as given when absolute, else
 * relative to the current directory, else relative to the parent of the
 * directory holding the agentd executable (an installed layout: bin/agentd
 * next to web/). Only flat names of safe characters are served, so no
 * request can leave that directory. Every console response carries a
 * Content-Security-Policy without inline script, frame denial and no referrer.
 */
#include "agentd/cli.h"
#include "agentd/daemon.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WEB_MAX_FILE ((size_t)4 << 20) /* the console's files are small; refuse anything odd */

static const char csp[] = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
			  "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

static const struct web_type {
	const char *ext;
	const char *type;
} web_types[] = {
	{".html", "text/html; charset=utf-8"},
	{".js", "text/javascript; charset=utf-8"},
	{".mjs", "text/javascript; charset=utf-8"},
	{".css", "text/css; charset=utf-8"},
	{".svg", "image/svg+xml"},
	{".png", "image/png"},
	{".ico", "image/x-icon"},
	{".json", "application/json"},
	{".txt", "text/plain; charset=utf-8"},
};

/* The content type for a file name, or NULL for a kind the console does not serve. */
static const char *type_of(const char *name)
{
	const char *dot = strrchr(name, '.');
	if (!dot)
		return NULL;
	for (size_t i = 0; i < sizeof web_types / sizeof web_types[0]; i++)
		if (strcmp(dot, web_types[i].ext) == 0)
			return web_types[i].type;
	return NULL;
}

/* A flat file name: letters, digits, '-', '_' and '.', not starting with '.'.
 * The router has percent-decoded it, so "%2e%2e" and "%2f" arrive as "..", "/". */
static bool safe_name(const char *s)
{
	if (!s || !*s || *s == '.' || strlen(s) > 128)
		return false;
	for (; *s; s++) {
		char c = *s;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '-' || c == '_' || c == '.';
		if (!ok)
			return false;
	}
	return true;
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Resolves web_root into out (see the top of the file for the order). */
static int web_dir(const agentd_request *req, char *out, size_t cap)
{
	const char *root = agentd_config_get(agentd_ctx_config(req->ctx), "web_root");
	if (!root || !*root)
		return ag_error_set(AG_ENOTFOUND, "the web console is disabled (web_root is empty)");
	if (root[0] == '/' || is_dir(root)) {
		if ((size_t)snprintf(out, cap, "%s", root) >= cap)
			return ag_error_set(AG_EINVAL, "web_root is too long");
		return is_dir(out) ? 0 : ag_error_set(AG_ENOTFOUND, "web_root '%s' is not a directory", root);
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return ag_error_set(AG_ENOTFOUND, "web_root '%s' not found", root);
	exe[n] = '\0';
	for (int up = 0; up < 2; up++) { /* strip the file name, then its directory */
		char *slash = strrchr(exe, '/');
		if (!slash)
			return ag_error_set(AG_ENOTFOUND, "web_root '%s' not found", root);
		*slash = '\0';
	}
	if ((size_t)snprintf(out, cap, "%s/%s", exe[0] ? exe : "", root) >= cap)
		return ag_error_set(AG_EINVAL, "web_root is too long");
	return is_dir(out) ? 0 : ag_error_set(AG_ENOTFOUND, "web_root '%s' not found", root);
}

static int add_security_headers(agentd_response *res)
{
	if (agentd_reply_header(res, "Content-Security-Policy", csp) ||
	    agentd_reply_header(res, "X-Frame-Options", "DENY") ||
	    agentd_reply_header(res, "Referrer-Policy", "no-referrer") ||
	    agentd_reply_header(res, "Cross-Origin-Opener-Policy", "same-origin"))
		return ag_error_set(AG_ENOMEM, "out of memory adding headers");
	return 0;
}

static int serve(agentd_request *req, agentd_response *res, const char *name)
{
	if (!safe_name(name))
		return ag_error_set(AG_ENOTFOUND, "no such page");
	const char *type = type_of(name);
	if (!type)
		return ag_error_set(AG_ENOTFOUND, "no such page");
	char dir[PATH_MAX], path[PATH_MAX + 160];
	int rc = web_dir(req, dir, sizeof dir);
	if (rc)
		return rc;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return ag_error_set(AG_ENOTFOUND, "no such page");
	char *data;
	size_t len;
	if ((rc = ag_read_file(path, WEB_MAX_FILE, &data, &len)))
		return rc;
	rc = agentd_reply_text(res, 200, type, data, len);
	ag_free(data);
	if (rc)
		return ag_error_set(AG_ENOMEM, "out of memory serving %s", name);
	return add_security_headers(res);
}

static int get_index(agentd_request *req, agentd_response *res) { return serve(req, res, "index.html"); }

static int get_file(agentd_request *req, agentd_response *res)
{
	return serve(req, res, agentd_req_param(req, "file"));
}

/* Listed last in the router so every literal route ("/healthz", "/metrics") wins. */
const agentd_route agentd_routes_web[] = {
	{"GET", "/", AGENTD_PUBLIC, get_index},
	{"HEAD", "/", AGENTD_PUBLIC, get_index},
	{"GET", "/{file}", AGENTD_PUBLIC, get_file},
	{"HEAD", "/{file}", AGENTD_PUBLIC, get_file},
	{NULL, NULL, 0, NULL},
};
