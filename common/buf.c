/* A growable byte/string buffer; every append keeps a NUL after the data. */
#include "common.h"

#include <stdio.h>
#include <string.h>

int ag_buf_reserve(ag_buf *b, size_t extra)
{
	if (extra > SIZE_MAX - b->len - 1)
		return ag_error_set(AG_ENOMEM, "buffer size overflow");
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	char *p = ag_realloc(b->data, cap);
	if (!p)
		return ag_error_set(AG_ENOMEM, "out of memory growing a buffer to %zu bytes", cap);
	b->data = p;
	b->cap = cap;
	return 0;
}

int ag_buf_append(ag_buf *b, const void *data, size_t n)
{
	int rc = ag_buf_reserve(b, n);
	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int ag_buf_puts(ag_buf *b, const char *s) { return ag_buf_append(b, s, strlen(s)); }
int ag_buf_putc(ag_buf *b, char c) { return ag_buf_append(b, &c, 1); }

int ag_buf_vprintf(ag_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return ag_error_set(AG_EINVAL, "bad format string");
	int rc = ag_buf_reserve(b, (size_t)n);
	if (rc)
		return rc;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int ag_buf_printf(ag_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = ag_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void ag_buf_clear(ag_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

char *ag_buf_detach(ag_buf *b, size_t *len_out)
{
	char *p = b->data;
	if (!p)
		p = ag_strdup("");
	if (len_out)
		*len_out = b->data ? b->len : 0;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

void ag_buf_free(ag_buf *b)
{
	ag_free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
