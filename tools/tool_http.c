/*
 * The http_get tool: a libcurl GET of a URL whose host an admin allowed
 * (PUT /v1/tools/settings, "allowed_hosts"). The parent refuses a host off
 * the list before anything runs and hands the child the list; the child
 * follows redirects itself, checking every target against the list, so a
 * redirect cannot lead outside it. http and https only, no proxies, a size
 * cap (the body is cut there and marked truncated), a total timeout and at
 * most five redirects. With Landlock ABI 4+ the child can connect only to
 * the ports on the list.
 */
#include "tools/tools_int.h"

#include <curl/curl.h>
#include <string.h>
#include <strings.h>

#define HTTP_MAX_REDIRECTS 5

/* Files name resolution and TLS read; nothing else on the disk is visible. */
static const char *const resolver_files[] = {
	"/etc/hosts",
	"/etc/resolv.conf",
	"/etc/nsswitch.conf",
	"/etc/host.conf",
	"/etc/gai.conf",
	"/etc/ssl/certs",
	"/etc/ssl/openssl.cnf",
	"/usr/share/ca-certificates",
	"/usr/lib/ssl",
	"/usr/lib/x86_64-linux-gnu",
	"/usr/lib/aarch64-linux-gnu",
	"/etc/ld.so.cache",
};

typedef struct target {
	char *host;
	unsigned port;
	bool https;
} target;

static int parse_url(target *t, const char *url)
{
	memset(t, 0, sizeof *t);
	CURLU *u = curl_url();
	if (!u)
		return ag_error_set(AG_ENOMEM, "out of memory");
	char *scheme = NULL, *host = NULL, *port = NULL;
	int rc = 0;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
		rc = ag_error_set(AG_EINVAL, "'%.200s' is not a valid http or https URL", url);
	} else if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
		rc = ag_error_set(AG_EINVAL, "only http and https URLs are allowed");
	} else {
		long long p = 0;
		if (ag_parse_long(port, 1, 65535, &p))
			rc = ag_error_set(AG_EINVAL, "bad port in '%.200s'", url);
		t->port = (unsigned)p;
		t->https = strcasecmp(scheme, "https") == 0;
		/* curl keeps IPv6 literals in brackets; the allow list compares the bare address. */
		size_t n = strlen(host);
		if (!rc && n >= 2 && host[0] == '[' && host[n - 1] == ']')
			t->host = ag_strndup(host + 1, n - 2);
		else if (!rc)
			t->host = ag_strdup(host);
		if (!rc && !t->host)
			rc = ag_error_set(AG_ENOMEM, "out of memory");
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

static bool allowed(const json_t *list, const target *t)
{
	return tools_host_listed(list, t->host, t->port, t->https ? 443 : 80);
}

static int http_prepare(tools_job *job, const json_t *args, const tools_env *env)
{
	json_t *settings;
	int rc = tools_settings_get(&settings, env->db, env->tenant);
	if (rc)
		return rc;
	json_t *list = json_incref(json_object_get(settings, "allowed_hosts"));
	json_decref(settings);
	target t;
	if ((rc = parse_url(&t, tools_arg_str(args, "url", "")))) {
		json_decref(list);
		return rc;
	}
	if (!allowed(list, &t)) {
		rc = ag_error_set(AG_EDENIED, "host %s (port %u) is not on the allowed hosts list", t.host,
				  t.port);
		ag_free(t.host);
		json_decref(list);
		return rc;
	}
	ag_free(t.host);
	/* Every port on the list may be connected to (redirects stay within the list). */
	size_t i;
	const json_t *e;
	json_array_foreach(list, i, e)
	{
		const char *s = json_string_value(e);
		const char *colon = s ? strrchr(s, ':') : NULL;
		const char *bracket = s ? strrchr(s, ']') : NULL;
		long long p;
		if (colon && (!bracket || colon > bracket) && ag_parse_long(colon + 1, 1, 65535, &p) == 0 &&
		    (s[0] == '[' || strchr(s, ':') == colon))
			rc = tools_job_allow_port(job, (unsigned)p);
		else
			rc = tools_job_allow_port(job, 80) || tools_job_allow_port(job, 443);
		if (rc)
			break;
	}
	for (size_t k = 0; !rc && k < sizeof resolver_files / sizeof resolver_files[0]; k++)
		rc = tools_job_grant_read(job, resolver_files[k]);
	if (rc) {
		json_decref(list);
		return rc;
	}
	json_t *input = json_pack("{s:o}", "allowed_hosts", list);
	if (!input)
		return ag_error_set(AG_ENOMEM, "out of memory preparing the call");
	tools_job_set_input(job, input);
	return 0;
}

typedef struct body {
	ag_buf buf;
	size_t max;
	bool truncated;
} body;

static size_t on_data(char *data, size_t size, size_t n, void *ud)
{
	body *b = ud;
	size_t len = size * n;
	size_t room = b->max - b->buf.len;
	if (len > room) {
		ag_buf_append(&b->buf, data, room);
		b->truncated = true;
		return 0; /* stops the transfer */
	}
	if (ag_buf_append(&b->buf, data, len))
		return 0;
	return len;
}

/* Bytes as a JSON string, invalid UTF-8 replaced so the answer stays valid JSON. */
static json_t *text_value(const char *data, size_t len)
{
	json_t *s = json_stringn(data, len);
	if (s)
		return s;
	char *copy = ag_malloc(len + 1);
	if (!copy)
		return NULL;
	for (size_t i = 0; i < len; i++)
		copy[i] = (unsigned char)data[i] < 0x80 ? data[i] : '?';
	s = json_stringn(copy, len);
	ag_free(copy);
	return s;
}

static int http_run(json_t **out, const json_t *args, const json_t *input)
{
	const json_t *list = json_object_get(input, "allowed_hosts");
	long long max_bytes = tools_arg_int(args, "max_bytes", 1 << 20);
	long long timeout_ms = tools_arg_int(args, "timeout_seconds", 10) * 1000;
	int64_t deadline = ag_monotonic_ns() / 1000000 + timeout_ms;
	char *url = ag_strdup(tools_arg_str(args, "url", ""));
	if (!url)
		return ag_error_set(AG_ENOMEM, "out of memory");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		ag_free(url);
		return ag_error_set(AG_ERR, "curl_global_init failed");
	}
	int rc = 0;
	body b = {.buf = AG_BUF_INIT, .max = (size_t)max_bytes};
	long status = 0;
	char content_type[256] = "";
	int redirects = 0;
	for (;;) {
		target t;
		if ((rc = parse_url(&t, url)))
			break;
		if (!allowed(list, &t)) {
			rc = ag_error_set(AG_EDENIED,
					  "%s to host %s (port %u) refused: not on the allowed hosts list",
					  redirects ? "redirect" : "request", t.host, t.port);
			ag_free(t.host);
			break;
		}
		ag_free(t.host);
		long left = (long)(deadline - ag_monotonic_ns() / 1000000);
		if (left <= 0) {
			rc = ag_error_set(AG_ETIMEOUT, "the request took longer than %lld s",
					  timeout_ms / 1000);
			break;
		}
		CURL *h = curl_easy_init();
		if (!h) {
			rc = ag_error_set(AG_ENOMEM, "curl_easy_init failed");
			break;
		}
		ag_buf_clear(&b.buf);
		b.truncated = false;
		char errbuf[CURL_ERROR_SIZE] = "";
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
		curl_easy_setopt(h, CURLOPT_PROXY, "");
		curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, left);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, left < 5000 ? left : 5000L);
		curl_easy_setopt(h, CURLOPT_USERAGENT, "agentd-http_get/1");
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
		CURLcode cc = curl_easy_perform(h);
		if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && b.truncated)) {
			rc = ag_error_set(cc == CURLE_OPERATION_TIMEDOUT ? AG_ETIMEOUT : AG_EIO,
					  "GET %.200s failed: %s", url,
					  *errbuf ? errbuf : curl_easy_strerror(cc));
			curl_easy_cleanup(h);
			break;
		}
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		char *ct = NULL, *next = NULL;
		curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
		snprintf(content_type, sizeof content_type, "%s", ct ? ct : "");
		curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &next);
		if (status >= 300 && status < 400 && next) {
			if (++redirects > HTTP_MAX_REDIRECTS) {
				rc = ag_error_set(AG_ELIMIT, "more than %d redirects", HTTP_MAX_REDIRECTS);
				curl_easy_cleanup(h);
				break;
			}
			char *n = ag_strdup(next);
			curl_easy_cleanup(h);
			if (!n) {
				rc = ag_error_set(AG_ENOMEM, "out of memory");
				break;
			}
			ag_free(url);
			url = n;
			continue;
		}
		curl_easy_cleanup(h);
		break;
	}
	if (!rc) {
		json_t *text = text_value(b.buf.data ? b.buf.data : "", b.buf.len);
		*out = json_pack("{s:s, s:i, s:s, s:o*, s:I, s:b, s:i}", "url", url, "status", (int)status,
				 "content_type", content_type, "body", text, "bytes", (json_int_t)b.buf.len,
				 "truncated", b.truncated, "redirects", redirects);
		if (!*out)
			rc = ag_error_set(AG_ENOMEM, "out of memory");
	}
	ag_buf_free(&b.buf);
	ag_free(url);
	return rc;
}

const tools_tool tools_builtin_http_get = {
	.name = "http_get",
	.description =
		"Fetches a web page or file with an HTTP GET, only from hosts an administrator allowed; "
		"returns the status, content type and body (cut at max_bytes).",
	.schema = "{\"type\": \"object\", \"properties\": {"
		  "\"url\": {\"type\": \"string\", \"minLength\": 8, \"maxLength\": 2048}, "
		  "\"max_bytes\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 2097152}, "
		  "\"timeout_seconds\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 20}}, "
		  "\"required\": [\"url\"], \"additionalProperties\": false}",
	.limits = {.cpu_seconds = 10,
		   .wall_seconds = 25,
		   .memory_bytes = 512u << 20,
		   .output_bytes = 16u << 20},
	.needs = TOOLS_NEED_NETWORK | TOOLS_NEED_FILES | TOOLS_NEED_THREADS,
	.prepare = http_prepare,
	.run = http_run,
};
