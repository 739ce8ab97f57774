/*
 * The chunker: cuts a document's text into chunks that follow its structure
 * (Markdown headings, paragraphs, fenced code blocks, PDF pages) within a
 * byte budget (about 300 tokens), carrying a small overlap between chunks of
 * one section. Each chunk is a contiguous byte range of the text, so a
 * citation's range always holds exactly what was indexed, and each carries
 * the heading trail above it.
 *
 * Text is pushed in pieces of any size and only complete lines are read, so
 * a 100 MB file passes through a window of a few budgets: whatever lies
 * before the current chunk and block is released as soon as it is emitted.
 */
#include "retrieval/internal.h"

#include <string.h>

/* A paragraph or code block longer than this is cut even without a blank line. */
#define BLOCK_MAX(c) ((c)->budget * 4)
/* A line longer than this is read in pieces (minified files, a text without newlines). */
#define LINE_MAX_BYTES (64 * 1024)

void retrieval_chunker_init(chunker *c, bool headings, bool pages, chunk_emit_fn emit, void *cls)
{
	memset(c, 0, sizeof *c);
	c->budget = RETRIEVAL_CHUNK_BYTES;
	c->overlap = RETRIEVAL_OVERLAP_BYTES;
	c->headings = headings;
	c->pages = pages;
	c->page = 1;
	c->emit = emit;
	c->cls = cls;
}

void retrieval_chunker_free(chunker *c)
{
	ag_buf_free(&c->win);
	for (int i = 0; i < 6; i++)
		ag_free(c->trail[i]);
	memset(c, 0, sizeof *c);
}

static const char *at(const chunker *c, size_t off) { return c->win.data + (off - c->win_base); }

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

static int title_path(const chunker *c, ag_buf *b)
{
	b->len = 0;
	int rc = ag_buf_puts(b, "");
	for (int i = 0; i < 6 && !rc; i++) {
		if (!c->trail[i])
			continue;
		if (b->len)
			rc = ag_buf_puts(b, " > ");
		if (!rc)
			rc = ag_buf_puts(b, c->trail[i]);
	}
	if (!rc && c->pages)
		rc = ag_buf_printf(b, "%sp. %d", b->len ? " > " : "", c->page);
	return rc ? ag_error_set(AG_ENOMEM, "out of memory") : 0;
}

/* Emits [s, e) trimmed of surrounding white space, if anything is left. */
static int emit_range(chunker *c, size_t s, size_t e)
{
	while (s < e && is_space(*at(c, s)))
		s++;
	while (e > s && is_space(*at(c, e - 1)))
		e--;
	if (s == e)
		return 0;
	ag_buf path = AG_BUF_INIT;
	int rc = title_path(c, &path);
	if (!rc)
		rc = c->emit(c->cls, at(c, s), s, e, path.data);
	ag_buf_free(&path);
	return rc;
}

static size_t utf8_back(const chunker *c, size_t off, size_t min)
{
	while (off > min && ((unsigned char)*at(c, off) & 0xc0) == 0x80)
		off--;
	return off;
}

/* The start of the overlap for a chunk following [s, e): about `overlap` bytes back, at a word start. */
static size_t overlap_start(const chunker *c, size_t s, size_t e)
{
	if (e - s <= c->overlap * 2)
		return e;
	size_t o = e - c->overlap;
	while (o < e && !is_space(*at(c, o)))
		o++;
	while (o < e && is_space(*at(c, o)))
		o++;
	return o;
}

/* Cuts the current chunk while it is over budget, at a line or word break where there is one. */
static int split_current(chunker *c)
{
	while (c->ce - c->cs > c->budget) {
		size_t limit = c->cs + c->budget, cut = limit, floor = c->cs + c->budget / 2;
		while (cut > floor && *at(c, cut - 1) != '\n')
			cut--;
		if (cut == floor) {
			cut = limit;
			while (cut > floor && !is_space(*at(c, cut - 1)))
				cut--;
		}
		if (cut == floor)
			cut = utf8_back(c, limit, c->cs + 1);
		int rc = emit_range(c, c->cs, cut);
		if (rc)
			return rc;
		size_t next = overlap_start(c, c->cs, cut);
		c->cs = next > c->cs ? next : cut;
	}
	return 0;
}

static int flush(chunker *c)
{
	if (!c->have_chunk)
		return 0;
	c->have_chunk = false;
	return emit_range(c, c->cs, c->ce);
}

static int add_block(chunker *c, size_t s, size_t e)
{
	if (c->have_chunk && !c->only_headings && e - c->cs > c->budget) {
		size_t o = overlap_start(c, c->cs, c->ce);
		int rc = flush(c);
		if (rc)
			return rc;
		c->have_chunk = true;
		c->cs = o < s ? o : s;
		c->ce = e;
	} else if (c->have_chunk) {
		c->ce = e;
	} else {
		c->have_chunk = true;
		c->cs = s;
		c->ce = e;
	}
	c->only_headings = false;
	return split_current(c);
}

static int end_block(chunker *c)
{
	if (!c->in_block)
		return 0;
	c->in_block = false;
	return add_block(c, c->bs, c->be);
}

static int add_heading(chunker *c, int level, const char *text, size_t n, size_t s, size_t e)
{
	int rc;
	if (!c->only_headings && (rc = flush(c)))
		return rc;
	while (n && is_space(text[n - 1]))
		n--;
	while (n && text[n - 1] == '#') /* closing hashes */
		n--;
	while (n && is_space(text[n - 1]))
		n--;
	if (n > 200)
		n = 200;
	char *h = ag_strndup(text, n);
	if (!h)
		return ag_error_set(AG_ENOMEM, "out of memory");
	for (int i = level - 1; i < 6; i++) {
		ag_free(c->trail[i]);
		c->trail[i] = NULL;
	}
	c->trail[level - 1] = h;
	if (!c->have_chunk) {
		c->have_chunk = true;
		c->cs = s;
	}
	c->ce = e;
	c->only_headings = true;
	return 0;
}

/* "```" or "~~~" (3 or more) at the start of a line. */
static int fence_len(const char *l, size_t n, char *ch)
{
	size_t i = 0;
	while (i < n && i < 3 && l[i] == ' ')
		i++;
	if (i >= n || (l[i] != '`' && l[i] != '~'))
		return 0;
	char f = l[i];
	size_t k = i;
	while (k < n && l[k] == f)
		k++;
	if (k - i < 3)
		return 0;
	*ch = f;
	return (int)(k - i);
}

static int heading_level(const char *l, size_t n, size_t *text_at)
{
	size_t i = 0;
	while (i < n && l[i] == '#')
		i++;
	size_t level = i;
	if (i == 0 || i > 6 || i >= n || (l[i] != ' ' && l[i] != '\t'))
		return 0;
	while (i < n && (l[i] == ' ' || l[i] == '\t'))
		i++;
	if (i >= n || l[i] == '\n' || l[i] == '\r')
		return 0;
	*text_at = i;
	return (int)level;
}

static int process_line(chunker *c, size_t s, size_t e)
{
	const char *l = at(c, s);
	size_t n = e - s;
	size_t k = 0;
	while (k < n && (l[k] == ' ' || l[k] == '\t' || l[k] == '\r' || l[k] == '\n' || l[k] == '\v'))
		k++;
	bool blank = k == n;
	int rc;
	if (c->in_fence) {
		char ch;
		int fl = fence_len(l, n, &ch);
		c->be = e;
		if (fl >= c->fence_len && ch == c->fence_ch) {
			c->in_fence = false;
			return end_block(c);
		}
		if (c->be - c->bs > BLOCK_MAX(c)) {
			if ((rc = end_block(c)))
				return rc;
			c->in_block = true;
			c->bs = c->be = e;
		}
		return 0;
	}
	if (memchr(l, '\f', n)) {
		if ((rc = end_block(c)) || (rc = flush(c)))
			return rc;
		for (size_t i = 0; i < n; i++)
			c->page += l[i] == '\f';
		return 0;
	}
	if (blank)
		return end_block(c);
	if (c->headings) {
		size_t ta;
		int level = heading_level(l, n, &ta);
		if (level) {
			if ((rc = end_block(c)))
				return rc;
			return add_heading(c, level, l + ta, n - ta, s, e);
		}
		char ch;
		int fl = fence_len(l, n, &ch);
		if (fl) {
			if ((rc = end_block(c)))
				return rc;
			c->in_fence = true;
			c->fence_ch = ch;
			c->fence_len = fl;
			c->in_block = true;
			c->bs = s;
			c->be = e;
			return 0;
		}
	}
	if (!c->in_block) {
		c->in_block = true;
		c->bs = s;
	}
	c->be = e;
	if (c->be - c->bs > BLOCK_MAX(c))
		return end_block(c);
	return 0;
}

/* Drops text nobody can need any more: before the current chunk, block and unread line. */
static void release(chunker *c)
{
	size_t keep = c->scan;
	if (c->have_chunk && c->cs < keep)
		keep = c->cs;
	if (c->in_block && c->bs < keep)
		keep = c->bs;
	size_t drop = keep - c->win_base;
	if (drop < 65536 || drop * 2 < c->win.len)
		return;
	memmove(c->win.data, c->win.data + drop, c->win.len - drop);
	c->win.len -= drop;
	c->win_base += drop;
}

static int run_lines(chunker *c, bool final)
{
	size_t end = c->win_base + c->win.len;
	while (c->scan < end) {
		const char *l = at(c, c->scan);
		size_t avail = end - c->scan;
		const char *nl = memchr(l, '\n', avail);
		size_t n;
		if (nl) {
			n = (size_t)(nl - l) + 1;
		} else if (final) {
			n = avail;
		} else if (avail > LINE_MAX_BYTES) {
			/* A very long line: take it up to a space, so it is cut between words. */
			n = LINE_MAX_BYTES;
			while (n > LINE_MAX_BYTES / 2 && !is_space(l[n - 1]))
				n--;
			if (n == LINE_MAX_BYTES / 2)
				n = utf8_back(c, c->scan + LINE_MAX_BYTES, c->scan + 1) - c->scan;
		} else {
			break;
		}
		int rc = process_line(c, c->scan, c->scan + n);
		c->scan += n;
		if (rc)
			return c->err = rc;
	}
	release(c);
	return 0;
}

int retrieval_chunker_feed(chunker *c, const char *text, size_t len)
{
	if (c->err)
		return c->err;
	if (ag_buf_append(&c->win, text, len))
		return c->err = ag_error_set(AG_ENOMEM, "out of memory");
	return run_lines(c, false);
}

int retrieval_chunker_finish(chunker *c)
{
	if (c->err)
		return c->err;
	int rc = run_lines(c, true);
	if (!rc)
		rc = end_block(c);
	if (!rc)
		rc = flush(c);
	return rc;
}
