/*
 * URLs as a source, through libcurl: http and https only (redirects too),
 * a bounded number of redirects, a total time limit and a size limit that
 * aborts the transfer as soon as it is crossed. The response must be 2xx
 * with a content type we can read; its body is then ingested like an upload.
 */
#include "retrieval/internal.h"

#include <curl/curl.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

typedef struct sink {
	ag_buf b;
	size_t max;
	bool over;
	bool nomem;
} sink;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
	sink *s = ud;
	size_t n = size * nmemb;
	if (s->b.len + n > s->max) {
		s->over = true;
		return 0; /* aborts the transfer */
	}
	if (ag_buf_append(&s->b, ptr, n)) {
		s->nomem = true;
		return 0;
	}
	return n;
}

static bool readable_type(const char *ct)
{
	static const char *const ok[] = {"text/",
					 "application/pdf",
					 "application/xhtml+xml",
					 "application/json",
					 "application/xml",
					 "application/javascript",
					 NULL};
	for (size_t i = 0; ok[i]; i++)
		if (strncasecmp(ct, ok[i], strlen(ok[i])) == 0)
			return true;
	return false;
}

int retrieval_ingest_url(retrieval_ingest_result *out, sqlite3 *db, const retrieval_principal *p,
			 const retrieval_ingest_opts *opts, const char *url, long timeout_s,
			 long max_redirects)
{
	memset(out, 0, sizeof *out);
	if (!url || (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0))
		return ag_error_set(AG_EINVAL, "only http and https URLs can be ingested");
	if (!opts || !opts->collection)
		return ag_error_set(AG_EINVAL, "a collection is required");
	coll_ref coll;
	int rc = retrieval_coll_resolve(&coll, db, p, opts->collection, true);
	if (rc)
		return rc;
	pthread_once(&curl_once, curl_init);
	CURL *c = curl_easy_init();
	if (!c)
		return ag_error_set(AG_ENOMEM, "cannot start a transfer");
	sink s = {.max = opts->max_bytes ? opts->max_bytes : RETRIEVAL_DEFAULT_MAX_BYTES};
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, max_redirects >= 0 ? max_redirects : 5L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s > 0 ? timeout_s : 30L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)s.max);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "agentd-retrieval/1");
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
	CURLcode cc = curl_easy_perform(c);
	long status = 0;
	char *ct = NULL, *eff = NULL;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
	curl_easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &eff);
	if (s.over || cc == CURLE_FILESIZE_EXCEEDED)
		rc = ag_error_set(AG_ELIMIT, "%s: the document is over the limit of %zu bytes", url, s.max);
	else if (s.nomem)
		rc = ag_error_set(AG_ENOMEM, "out of memory");
	else if (cc == CURLE_OPERATION_TIMEDOUT)
		rc = ag_error_set(AG_ETIMEOUT, "%s: no complete answer within %ld s", url, timeout_s);
	else if (cc == CURLE_TOO_MANY_REDIRECTS)
		rc = ag_error_set(AG_ELIMIT, "%s: more than %ld redirects", url, max_redirects);
	else if (cc != CURLE_OK)
		rc = ag_error_set(AG_EIO, "%s: %s", url, curl_easy_strerror(cc));
	else if (status < 200 || status > 299)
		rc = ag_error_set(status == 404 ? AG_ENOTFOUND : AG_EIO, "%s: HTTP status %ld", url, status);
	else if (ct && !readable_type(ct))
		rc = ag_error_set(AG_EUNSUPPORTED, "%s: cannot read content type '%s'", url, ct);
	if (!rc) {
		retrieval_ingest_opts o = *opts;
		o.collection = coll.id;
		if (!o.content_type)
			o.content_type = ct;
		if (!o.source)
			o.source = url;
		if (!o.filename) {
			const char *slash = strrchr(eff ? eff : url, '/');
			o.filename = slash ? slash + 1 : NULL;
		}
		rc = retrieval_ingest_buffer(out, db, p, &o, s.b.data ? s.b.data : "", s.b.len);
	}
	curl_easy_cleanup(c);
	ag_buf_free(&s.b);
	return rc;
}
