/*
 * multipart/form-data (RFC 7578) for document uploads: the boundary from the
 * Content-Type, then each part's headers (Content-Disposition name and
 * filename, Content-Type) and its bytes, which stay in the caller's body.
 * Every scan is bounded by the body's length; malformed input is AG_EINVAL.
 */
#include "retrieval/internal.h"

#include <string.h>
#include <strings.h>

#define MAX_PARTS 64

static void part_clear(retrieval_part *p)
{
	ag_free((char *)p->name);
	ag_free((char *)p->filename);
	ag_free((char *)p->content_type);
}

void retrieval_parts_free(retrieval_parts *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->count; i++)
		part_clear(&p->items[i]);
	ag_free(p->items);
	ag_free(p);
}

/* A parameter value (token or quoted string) of a header like `form-data; name="x"`. */
static int header_param(char **out, const char *h, size_t n, const char *name)
{
	size_t nl = strlen(name);
	*out = NULL;
	for (size_t i = 0; i < n; i++) {
		if (h[i] != ';')
			continue;
		size_t j = i + 1;
		while (j < n && (h[j] == ' ' || h[j] == '\t'))
			j++;
		if (j + nl + 1 > n || strncasecmp(h + j, name, nl) != 0 || h[j + nl] != '=')
			continue;
		j += nl + 1;
		if (j < n && h[j] == '"') {
			size_t s = ++j;
			while (j < n && h[j] != '"')
				j++;
			if (j >= n)
				return ag_error_set(AG_EINVAL, "multipart: unterminated quoted %s", name);
			*out = ag_strndup(h + s, j - s);
		} else {
			size_t s = j;
			while (j < n && h[j] != ';' && h[j] != ' ' && h[j] != '\t')
				j++;
			*out = ag_strndup(h + s, j - s);
		}
		return *out ? 0 : ag_error_set(AG_ENOMEM, "out of memory");
	}
	return 0;
}

static int parse_headers(retrieval_part *p, const char *h, size_t n)
{
	size_t i = 0;
	bool disposition = false;
	while (i < n) {
		const char *line = h + i;
		const char *e = memmem(line, n - i, "\r\n", 2);
		size_t ll = e ? (size_t)(e - line) : n - i;
		const char *colon = memchr(line, ':', ll);
		if (!colon)
			return ag_error_set(AG_EINVAL, "multipart: a part header without ':'");
		size_t kl = (size_t)(colon - line);
		const char *v = colon + 1;
		size_t vl = ll - kl - 1;
		while (vl && (*v == ' ' || *v == '\t')) {
			v++;
			vl--;
		}
		int rc = 0;
		if (kl == 19 && strncasecmp(line, "Content-Disposition", 19) == 0) {
			if (vl < 9 || strncasecmp(v, "form-data", 9) != 0)
				return ag_error_set(AG_EINVAL,
						    "multipart: Content-Disposition must be form-data");
			char *name, *filename;
			if ((rc = header_param(&name, v, vl, "name")))
				return rc;
			if ((rc = header_param(&filename, v, vl, "filename"))) {
				ag_free(name);
				return rc;
			}
			ag_free((char *)p->name);
			ag_free((char *)p->filename);
			p->name = name;
			p->filename = filename;
			disposition = true;
		} else if (kl == 12 && strncasecmp(line, "Content-Type", 12) == 0) {
			ag_free((char *)p->content_type);
			if (!(p->content_type = ag_strndup(v, vl)))
				return ag_error_set(AG_ENOMEM, "out of memory");
		}
		i += ll + 2;
	}
	if (!disposition || !p->name)
		return ag_error_set(AG_EINVAL, "multipart: a part without a Content-Disposition name");
	return 0;
}

int retrieval_multipart_parse(retrieval_parts **out, const char *content_type, const char *body, size_t len)
{
	if (!content_type || strncasecmp(content_type, "multipart/form-data", 19) != 0)
		return ag_error_set(AG_EINVAL, "not a multipart/form-data body");
	char *boundary;
	const char *params = content_type + 19;
	int rc = header_param(&boundary, params, strlen(params), "boundary");
	if (rc)
		return rc;
	size_t bl = boundary ? strlen(boundary) : 0;
	if (bl == 0 || bl > 70) {
		ag_free(boundary);
		return ag_error_set(AG_EINVAL, "multipart: a boundary of 1..70 characters is required");
	}
	/* Delimiters inside the body are CRLF "--" boundary; the first may open the body. */
	char delim[80];
	memcpy(delim, "\r\n--", 4);
	memcpy(delim + 4, boundary, bl);
	size_t dl = bl + 4;
	ag_free(boundary);
	retrieval_parts *ps = ag_calloc(1, sizeof *ps);
	if (!ps)
		return ag_error_set(AG_ENOMEM, "out of memory");
	size_t pos;
	if (len >= dl - 2 && memcmp(body, delim + 2, dl - 2) == 0) {
		pos = dl - 2;
	} else {
		const char *d = body ? memmem(body, len, delim, dl) : NULL;
		if (!d) {
			rc = ag_error_set(AG_EINVAL, "multipart: the boundary does not occur in the body");
			goto fail;
		}
		pos = (size_t)(d - body) + dl;
	}
	for (;;) {
		/* After a delimiter: "--" closes the body, CRLF opens a part. */
		if (pos + 2 <= len && body[pos] == '-' && body[pos + 1] == '-')
			break;
		while (pos < len && (body[pos] == ' ' || body[pos] == '\t'))
			pos++;
		if (pos + 2 > len || body[pos] != '\r' || body[pos + 1] != '\n') {
			rc = ag_error_set(AG_EINVAL, "multipart: the body ends without its closing boundary");
			goto fail;
		}
		pos += 2;
		if (ps->count == MAX_PARTS) {
			rc = ag_error_set(AG_ELIMIT, "multipart: more than %d parts", MAX_PARTS);
			goto fail;
		}
		const char *he = memmem(body + pos, len - pos, "\r\n\r\n", 4);
		size_t hlen;
		size_t data_at;
		if (len - pos >= 2 && body[pos] == '\r' && body[pos + 1] == '\n') {
			hlen = 0; /* no headers at all */
			data_at = pos + 2;
		} else if (he) {
			hlen = (size_t)(he - (body + pos));
			data_at = pos + hlen + 4;
		} else {
			rc = ag_error_set(AG_EINVAL, "multipart: a part's headers do not end");
			goto fail;
		}
		const char *d = memmem(body + data_at, len - data_at, delim, dl);
		if (!d) {
			rc = ag_error_set(AG_EINVAL, "multipart: a part is not closed by the boundary");
			goto fail;
		}
		if (!ps->count || ps->count % 8 == 0) {
			retrieval_part *n = ag_realloc(ps->items, (ps->count + 8) * sizeof *n);
			if (!n) {
				rc = ag_error_set(AG_ENOMEM, "out of memory");
				goto fail;
			}
			ps->items = n;
		}
		retrieval_part *p = &ps->items[ps->count++];
		memset(p, 0, sizeof *p);
		if ((rc = parse_headers(p, body + pos, hlen)))
			goto fail;
		p->data = body + data_at;
		p->len = (size_t)(d - (body + data_at));
		pos = (size_t)(d - body) + dl;
	}
	*out = ps;
	return 0;
fail:
	retrieval_parts_free(ps);
	return rc;
}
