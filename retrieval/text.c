/*
 * Text normalisation and format detection. Everything stored is UTF-8:
 * valid UTF-8 passes through byte for byte (so offsets into a UTF-8 source
 * stay true), a leading BOM is dropped, UTF-16 with a BOM is converted with
 * iconv, and bytes that are not UTF-8 are read as Latin-1. Content with NUL
 * bytes or mostly control characters is refused as binary.
 */
#include "retrieval/internal.h"

#include <iconv.h>
#include <string.h>
#include <strings.h>

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if invalid,
 * -1 if it may be valid but is cut off by the end of the input. */
static int utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	int len;
	unsigned min;
	unsigned cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	for (int i = 1; i < len; i++) {
		if ((size_t)i >= n)
			return -1;
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

int retrieval_sniff_binary(const unsigned char *data, size_t len)
{
	size_t n = len < 8192 ? len : 8192, control = 0, invalid = 0;
	for (size_t i = 0; i < n;) {
		unsigned char c = data[i];
		if (c == 0)
			return ag_error_set(AG_EUNSUPPORTED,
					    "binary content (NUL bytes): not a text format agentd can read");
		if (c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v' && c != 0x1b)
			control++;
		int k = utf8_seq(data + i, n - i);
		if (k <= 0) {
			if (k == 0)
				invalid++;
			i++;
		} else {
			i += (size_t)k;
		}
	}
	/* Text in a legacy encoding has some invalid bytes; junk has many and control characters too. */
	if (n && (control * 50 > n || invalid * 4 > n))
		return ag_error_set(AG_EUNSUPPORTED, "binary content: not a text format agentd can read");
	return 0;
}

static int put_latin1(ag_buf *out, unsigned char c)
{
	char two[2] = {(char)(0xc0 | c >> 6), (char)(0x80 | (c & 0x3f))};
	return ag_buf_append(out, two, 2);
}

int retrieval_utf8_feed(utf8_norm *n, const char *in_s, size_t len, bool final, ag_buf *out)
{
	const unsigned char *in = (const unsigned char *)in_s;
	/* Finish a sequence cut by the previous block first. */
	while (n->ncarry && (len || final)) {
		unsigned char tmp[4];
		size_t take = len < 4 - n->ncarry ? len : 4 - n->ncarry;
		memcpy(tmp, n->carry, n->ncarry);
		memcpy(tmp + n->ncarry, in, take);
		int k = utf8_seq(tmp, n->ncarry + take);
		if (k == -1 && !final) { /* still incomplete: all of in belongs to the sequence */
			memcpy(n->carry + n->ncarry, in, take);
			n->ncarry += take;
			n->seen += len;
			return 0;
		}
		if (k > 0) {
			if (ag_buf_append(out, tmp, (size_t)k))
				return ag_error_set(AG_ENOMEM, "out of memory");
			size_t used = (size_t)k - n->ncarry;
			in += used;
			len -= used;
			n->ncarry = 0;
		} else {
			if (put_latin1(out, n->carry[0]))
				return ag_error_set(AG_ENOMEM, "out of memory");
			memmove(n->carry, n->carry + 1, --n->ncarry);
		}
	}
	if (!n->started && len) {
		n->started = true;
		if (len >= 3 && in[0] == 0xef && in[1] == 0xbb && in[2] == 0xbf) {
			in += 3;
			len -= 3;
		}
	}
	size_t i = 0, run = 0;
	while (i < len) {
		unsigned char c = in[i];
		if (c == 0)
			return ag_error_set(AG_EUNSUPPORTED,
					    "binary content (NUL byte at offset %zu): not a text "
					    "format agentd can read",
					    n->seen + i);
		if (c < 0x80) {
			i++;
			continue;
		}
		int k = utf8_seq(in + i, len - i);
		if (k > 0) {
			i += (size_t)k;
			continue;
		}
		if (ag_buf_append(out, in + run, i - run))
			return ag_error_set(AG_ENOMEM, "out of memory");
		if (k == -1 && !final) {
			n->ncarry = len - i;
			memcpy(n->carry, in + i, n->ncarry);
			n->seen += len;
			return 0;
		}
		if (put_latin1(out, c))
			return ag_error_set(AG_ENOMEM, "out of memory");
		run = ++i;
	}
	if (ag_buf_append(out, in + run, len - run))
		return ag_error_set(AG_ENOMEM, "out of memory");
	n->seen += len;
	return 0;
}

static int from_utf16(char **out, size_t *len_out, const char *data, size_t len, const char *enc)
{
	iconv_t cd = iconv_open("UTF-8", enc);
	if (cd == (iconv_t)-1)
		return ag_error_set(AG_EUNSUPPORTED, "cannot convert from %s", enc);
	size_t cap = len * 2 + 16;
	char *buf = ag_malloc(cap + 1);
	if (!buf) {
		iconv_close(cd);
		return ag_error_set(AG_ENOMEM, "out of memory");
	}
	char *in = (char *)data, *o = buf;
	size_t inleft = len, outleft = cap;
	size_t r = iconv(cd, &in, &inleft, &o, &outleft);
	iconv_close(cd);
	if (r == (size_t)-1) {
		ag_free(buf);
		return ag_error_set(AG_ECORRUPT, "invalid %s text", enc);
	}
	*o = '\0';
	*out = buf;
	*len_out = (size_t)(o - buf);
	return 0;
}

int retrieval_to_utf8(char **out, size_t *len_out, const char *data, size_t len)
{
	const unsigned char *u = (const unsigned char *)data;
	if (len >= 2 && u[0] == 0xff && u[1] == 0xfe)
		return from_utf16(out, len_out, data + 2, len - 2, "UTF-16LE");
	if (len >= 2 && u[0] == 0xfe && u[1] == 0xff)
		return from_utf16(out, len_out, data + 2, len - 2, "UTF-16BE");
	int rc = retrieval_sniff_binary(u, len);
	if (rc)
		return rc;
	utf8_norm n = {0};
	ag_buf b = AG_BUF_INIT;
	if ((rc = retrieval_utf8_feed(&n, data, len, true, &b)) || (rc = ag_buf_reserve(&b, 1))) {
		ag_buf_free(&b);
		return rc;
	}
	b.data[b.len] = '\0';
	*len_out = b.len;
	*out = ag_buf_detach(&b, NULL);
	return 0;
}

static bool has_ext(const char *filename, const char *const *exts)
{
	const char *dot = filename ? strrchr(filename, '.') : NULL;
	if (!dot)
		return false;
	for (size_t i = 0; exts[i]; i++)
		if (strcasecmp(dot + 1, exts[i]) == 0)
			return true;
	return false;
}

static bool starts_with_ci(const char *s, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);
	return n >= k && strncasecmp(s, prefix, k) == 0;
}

retrieval_format retrieval_guess_format(const char *content_type, const char *filename,
					const unsigned char *head, size_t head_len, int *err)
{
	static const char *const md[] = {"md", "markdown", "mdown", "mkd", NULL};
	static const char *const html[] = {"html", "htm", "xhtml", NULL};
	static const char *const text[] = {"txt", "text", "rst", "log", "csv", "tsv", "adoc", "org", NULL};
	static const char *const src[] = {
		"c",     "h",     "cc",   "cpp",   "hpp",    "cxx",  "py",   "js",  "ts",   "go",  "rs",
		"java",  "kt",    "rb",   "pl",    "php",    "sh",   "bash", "zsh", "lua",  "sql", "json",
		"yaml",  "yml",   "toml", "ini",   "cfg",    "conf", "xml",  "css", "scss", "mk",  "cmake",
		"swift", "scala", "cs",   "m",     "r",      "jl",   "hs",   "ml",  "ex",   "exs", "erl",
		"vim",   "el",    "tf",   "proto", "gradle", "jsx",  "tsx",  "vue", "dart", NULL};
	*err = 0;
	if (content_type && *content_type) {
		size_t n = strcspn(content_type, "; ");
		const char *ct = content_type;
		if (starts_with_ci(ct, n, "text/markdown") || starts_with_ci(ct, n, "text/x-markdown"))
			return RETRIEVAL_FORMAT_MARKDOWN;
		if (starts_with_ci(ct, n, "text/html") || starts_with_ci(ct, n, "application/xhtml+xml"))
			return RETRIEVAL_FORMAT_HTML;
		if (starts_with_ci(ct, n, "application/pdf"))
			return RETRIEVAL_FORMAT_PDF;
		if (starts_with_ci(ct, n, "text/x-") || starts_with_ci(ct, n, "application/json") ||
		    starts_with_ci(ct, n, "application/javascript") ||
		    starts_with_ci(ct, n, "application/xml") || starts_with_ci(ct, n, "application/x-sh") ||
		    starts_with_ci(ct, n, "application/x-yaml") || starts_with_ci(ct, n, "application/toml"))
			return RETRIEVAL_FORMAT_SOURCE;
		if (starts_with_ci(ct, n, "text/plain")) {
			if (has_ext(filename, md))
				return RETRIEVAL_FORMAT_MARKDOWN;
			if (has_ext(filename, src))
				return RETRIEVAL_FORMAT_SOURCE;
			return RETRIEVAL_FORMAT_TEXT;
		}
		if (starts_with_ci(ct, n, "text/"))
			return RETRIEVAL_FORMAT_TEXT;
		/* Generic types say nothing; anything else is a format we do not read. */
		if (!starts_with_ci(ct, n, "application/octet-stream") &&
		    !starts_with_ci(ct, n, "application/x-www-form-urlencoded") &&
		    !starts_with_ci(ct, n, "multipart/")) {
			*err = ag_error_set(AG_EUNSUPPORTED,
					    "cannot read content type '%.*s' (text, Markdown, HTML, "
					    "PDF and source files are supported)",
					    (int)(n > 80 ? 80 : n), ct);
			return RETRIEVAL_FORMAT_AUTO;
		}
	}
	if (head_len >= 5 && memcmp(head, "%PDF-", 5) == 0)
		return RETRIEVAL_FORMAT_PDF;
	if (has_ext(filename, md))
		return RETRIEVAL_FORMAT_MARKDOWN;
	if (has_ext(filename, html))
		return RETRIEVAL_FORMAT_HTML;
	if (has_ext(filename, (const char *const[]){"pdf", NULL}))
		return RETRIEVAL_FORMAT_PDF;
	if (has_ext(filename, text))
		return RETRIEVAL_FORMAT_TEXT;
	if (has_ext(filename, src))
		return RETRIEVAL_FORMAT_SOURCE;
	if (filename) {
		const char *base = strrchr(filename, '/');
		base = base ? base + 1 : filename;
		if (strcmp(base, "Makefile") == 0 || strcmp(base, "Dockerfile") == 0 ||
		    strcmp(base, "CMakeLists.txt") == 0)
			return RETRIEVAL_FORMAT_SOURCE;
	}
	size_t i = 0;
	while (i < head_len && (head[i] == ' ' || head[i] == '\t' || head[i] == '\r' || head[i] == '\n'))
		i++;
	const char *h = (const char *)head + i;
	size_t hn = head_len - i;
	if (starts_with_ci(h, hn, "<!doctype html") || starts_with_ci(h, hn, "<html"))
		return RETRIEVAL_FORMAT_HTML;
	return RETRIEVAL_FORMAT_TEXT;
}

const char *retrieval_format_name(retrieval_format f)
{
	switch (f) {
	case RETRIEVAL_FORMAT_TEXT: return "text";
	case RETRIEVAL_FORMAT_MARKDOWN: return "markdown";
	case RETRIEVAL_FORMAT_HTML: return "html";
	case RETRIEVAL_FORMAT_PDF: return "pdf";
	case RETRIEVAL_FORMAT_SOURCE: return "source";
	default: return "auto";
	}
}
