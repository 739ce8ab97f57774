/*
 * Verbatim quotes: while an answer is inside double quotes, only tokens that
 * keep the quoted text a substring of one of the sources (the documents the
 * answer may quote) may come next, and a citation marker right after the
 * closing quote (" [n]") may only name a source that contains the quote. A
 * small model then chooses what to quote and where, and the decoder makes sure
 * the words are the document's: the check the planner's validator makes
 * afterwards (agentd/validate.c) passes by construction.
 *
 * The matcher follows the generated text byte by byte. Inside a quote it keeps
 * the places in the sources where the quoted text so far ends; the mask walks
 * the vocabulary's trie (grammar_internal.h) along the source bytes from each
 * place, so a token is allowed iff its bytes continue the source there, or
 * close the quote after more than white space and then start a valid marker.
 * Quotes start and end between words, so a quote cannot stop short of the end of
 * a number or a word, which a small model is otherwise prone to.
 * Outside quotes, a token that opens a quote and goes on must go on with text
 * some source holds. Text that breaks the rule anyway (the matcher is fed what
 * was sampled, which a caller may not have masked) is followed, not rejected:
 * such a quote is unconstrained until it closes.
 */
#include "engine/grammar_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

enum { Q_OUT, Q_IN, Q_BROKEN, Q_CITE };
enum { C_START, C_SPACE, C_BRACKET, C_DIGITS, C_FREE, C_REJECT };

#define NO_NODE SIZE_MAX

typedef struct q_pos {
	uint32_t src, off; /* the quoted text so far ends just before src[off] */
} q_pos;

/* A citation marker being read, and which sources it may name. */
typedef struct cite_st {
	int state;
	uint8_t nd;
	char digits[8];
} cite_st;

typedef struct cite_ctx {
	const uint8_t *ok; /* ok[k]: source k (marker k + 1) may be named; NULL: only `only` */
	uint32_t only;
	size_t n;
	bool required;
} cite_ctx;

struct engine_quote_matcher {
	char **src;
	size_t *len;
	size_t n;
	bool cite_required;
	int mode;
	size_t qlen;   /* bytes quoted so far */
	bool has_text; /* they hold more than white space (a quote of blanks quotes nothing) */
	q_pos *live;
	size_t n_live;
	cite_st cite;
	uint8_t *cite_ok; /* (n) sources that contain the quote just closed */
	/* Per vocabulary (built on the first mask): which tokens may be sampled outside a quote,
	 * and the root's child for each byte. */
	const engine_grammar_vocab *vocab;
	uint32_t *out_ok;
	size_t root_child[256];
};

void engine_quote_matcher_free(engine_quote_matcher *q)
{
	if (!q)
		return;
	for (size_t i = 0; q->src && i < q->n; i++)
		ag_free(q->src[i]);
	ag_free(q->src);
	ag_free(q->len);
	ag_free(q->live);
	ag_free(q->cite_ok);
	ag_free(q->out_ok);
	ag_free(q);
}

int engine_quote_matcher_new(engine_quote_matcher **out, const char *const *sources, const size_t *lens,
			     size_t n, bool cite_required)
{
	*out = NULL;
	if (n > UINT32_MAX)
		return ag_error_set(AG_EINVAL, "verbatim quotes: too many sources");
	engine_quote_matcher *q = ag_calloc(1, sizeof *q);
	if (!q)
		return ag_error_set(AG_ENOMEM, "verbatim quotes: out of memory");
	q->n = n;
	q->cite_required = cite_required;
	q->src = ag_calloc(n, sizeof *q->src); /* ag_calloc gives a block for n == 0 too */
	q->len = ag_calloc(n, sizeof *q->len);
	q->cite_ok = ag_calloc(n, 1);
	size_t total = 0;
	int rc = q->src && q->len && q->cite_ok ? 0 : AG_ENOMEM;
	for (size_t i = 0; i < n && !rc; i++) {
		if (lens[i] >= UINT32_MAX) {
			engine_quote_matcher_free(q);
			return ag_error_set(AG_EINVAL, "verbatim quotes: a source of 4 GB or more");
		}
		if (!(q->src[i] = ag_malloc(lens[i] + 1)))
			rc = AG_ENOMEM;
		else
			memcpy(q->src[i], sources[i], lens[i]);
		q->len[i] = lens[i];
		total += lens[i];
	}
	/* a quote can be live at most once per source byte */
	if (!rc && !(q->live = ag_malloc(total * sizeof *q->live)))
		rc = AG_ENOMEM;
	if (rc) {
		engine_quote_matcher_free(q);
		return ag_error_set(AG_ENOMEM, "verbatim quotes: out of memory");
	}
	*out = q;
	return 0;
}

/* ------------------------------------------------------- citation markers */

static bool cite_ok_at(const cite_ctx *cx, size_t k) { return cx->ok ? cx->ok[k] != 0 : k == cx->only; }

/* Whether some source that may be named has a marker number starting with (exact: equal to) digits. */
static bool cite_number_ok(const cite_ctx *cx, const char *digits, size_t nd, bool exact)
{
	for (size_t k = 0; k < cx->n; k++) {
		char num[24];
		int w = snprintf(num, sizeof num, "%zu", k + 1);
		if (cite_ok_at(cx, k) && (size_t)w >= nd && memcmp(num, digits, nd) == 0 &&
		    (!exact || (size_t)w == nd))
			return true;
	}
	return false;
}

/* The marker state after byte c. Anything that is not a marker ends the constraint (C_FREE),
 * unless a marker is required. */
static cite_st cite_step(cite_st s, uint8_t c, const cite_ctx *cx)
{
	int other = cx->required ? C_REJECT : C_FREE;
	bool digit = c >= '0' && c <= '9';
	switch (s.state) {
	case C_START: s.state = c == ' ' ? C_SPACE : c == '[' ? C_BRACKET : other; break;
	case C_SPACE: s.state = c == '[' ? C_BRACKET : other; break;
	case C_BRACKET:
	case C_DIGITS:
		if (digit && s.nd < sizeof s.digits) {
			s.digits[s.nd++] = (char)c;
			s.state = cite_number_ok(cx, s.digits, s.nd, false) ? C_DIGITS : C_REJECT;
		} else if (c == ']' && s.state == C_DIGITS) {
			s.state = cite_number_ok(cx, s.digits, s.nd, true) ? C_FREE : C_REJECT;
		} else {
			s.state = digit ? C_REJECT : other;
		}
		break;
	default: break;
	}
	return s;
}

static void mark_node(const engine_grammar_vocab *v, size_t i, uint32_t *mask)
{
	for (uint32_t k = 0; k < v->tok_n[i]; k++) {
		int32_t t = v->toks[v->tok_at[i] + k];
		mask[t >> 5] |= 1u << (t & 31);
	}
}

/* Tokens of the subtree of node i (entered by byte[i]) that keep the marker valid, from state
 * st. Where the marker is over, the rest of a token is text outside quotes: free_ok (NULL: any)
 * says which tokens may go on so. */
static void cite_node(const engine_grammar_vocab *v, size_t i, cite_st st, const cite_ctx *cx,
		      const uint32_t *free_ok, uint32_t *mask)
{
	cite_st s = cite_step(st, v->byte[i], cx);
	if (s.state == C_REJECT)
		return;
	if (s.state == C_FREE) {
		for (uint32_t k = v->tok_pre[i]; k < v->tok_pre[v->end[i]]; k++) {
			int32_t t = v->toks[k];
			if (!free_ok || ((free_ok[t >> 5] >> (t & 31)) & 1))
				mask[t >> 5] |= 1u << (t & 31);
		}
		return;
	}
	mark_node(v, i, mask);
	for (size_t j = i + 1; j < v->end[i]; j = v->end[j])
		cite_node(v, j, s, cx, free_ok, mask);
}

/* Whether byte i of a source is inside a word: a letter or digit, or a mark between two of
 * them ("931.75", "H-326", "don't"). */
static bool in_word(const uint8_t *t, size_t len, size_t i)
{
	if (isalnum(t[i]))
		return true;
	return !isspace(t[i]) && i > 0 && i + 1 < len && isalnum(t[i - 1]) && isalnum(t[i + 1]);
}

/* A quote starts and ends between words: not inside one ("rice" of "price"), and not short
 * of the rest of a number ("$931." of "$931.75"), which a small model is prone to. */
static bool boundary(const engine_quote_matcher *q, uint32_t s, size_t off)
{
	const uint8_t *t = (const uint8_t *)q->src[s];
	size_t len = q->len[s];
	return off == 0 || off >= len || !in_word(t, len, off) || !in_word(t, len, off - 1);
}

static bool starts_ok(const engine_quote_matcher *q, uint32_t s, uint32_t off) { return boundary(q, s, off); }

static bool ends_ok(const engine_quote_matcher *q, q_pos p) { return boundary(q, p.src, p.off); }

/* ------------------------------------------------------------- the trie */

static size_t child(const engine_quote_matcher *q, const engine_grammar_vocab *v, size_t node, uint8_t c)
{
	if (node == NO_NODE)
		return q->root_child[c];
	for (size_t j = node + 1; j < v->end[node] && v->byte[j] <= c; j = v->end[j])
		if (v->byte[j] == c)
			return j;
	return NO_NODE;
}

/* Whether a quote may start with these bytes: a source holds them where a quote may start. */
static bool quote_may_start(const engine_quote_matcher *q, const uint8_t *s, size_t n)
{
	for (uint32_t k = 0; k < q->n; k++)
		for (const char *at = q->src[k], *end = q->src[k] + q->len[k];
		     (size_t)(end - at) >= n && (at = memmem(at, (size_t)(end - at), s, n)); at++)
			if (starts_ok(q, k, (uint32_t)(at - q->src[k])))
				return true;
	return false;
}

/* Per vocabulary: the root's children, and the tokens allowed outside a quote (all but those
 * that open a quote and go on with text no source holds, or close it again at once). */
static int bind_vocab(engine_quote_matcher *q, const engine_grammar_vocab *v)
{
	if (q->vocab == v)
		return 0;
	size_t words = (v->n_vocab + 31) / 32;
	uint32_t *ok = ag_malloc(words * sizeof *ok);
	if (!ok)
		return ag_error_set(AG_ENOMEM, "verbatim quotes: out of memory");
	memset(ok, 0xff, words * sizeof *ok);
	for (size_t c = 0; c < 256; c++)
		q->root_child[c] = NO_NODE;
	bool can_open = false; /* whether any quote can begin: not with no sources, or empty ones */
	for (uint32_t s = 0; s < q->n && !can_open; s++)
		for (uint32_t off = 0; off < q->len[s] && !can_open; off++)
			can_open = starts_ok(q, s, off);
	uint8_t path[MAX_PIECE + 1];
	size_t open_at[MAX_PIECE + 1]; /* depth of the first '"' on the path to this depth, or 0 */
	for (size_t i = 0; i < v->n_nodes; i++) {
		size_t d = v->depth[i];
		path[d - 1] = v->byte[i];
		if (d == 1)
			q->root_child[v->byte[i]] = i;
		size_t first = d > 1 ? open_at[d - 1] : 0;
		open_at[d] = first = first ? first : v->byte[i] == '"' ? d : 0;
		if (!first || !v->tok_n[i])
			continue;
		const uint8_t *rest = path + first;
		size_t rn = d - first;
		/* a token may open a quote only if its rest can begin one; a lone '"' if any can */
		if (memchr(rest, '"', rn) || (rn ? !quote_may_start(q, rest, rn) : !can_open))
			for (uint32_t k = 0; k < v->tok_n[i]; k++) {
				int32_t t = v->toks[v->tok_at[i] + k];
				ok[t >> 5] &= ~(1u << (t & 31));
			}
	}
	ag_free(q->out_ok);
	q->out_ok = ok;
	q->vocab = v;
	return 0;
}

/* From a place in a source: tokens that continue the quote there, and those that close it
 * (after a nonempty quotation) and go on with a marker naming this source. */
static void walk_from(const engine_quote_matcher *q, const engine_grammar_vocab *v, q_pos p, uint32_t *mask)
{
	const uint8_t *s = (const uint8_t *)q->src[p.src];
	size_t len = q->len[p.src], node = NO_NODE;
	cite_ctx cx = {.only = p.src, .n = q->n, .required = q->cite_required};
	bool text = q->has_text;
	for (size_t k = 0;; k++) {
		size_t close = text && ends_ok(q, (q_pos){p.src, (uint32_t)(p.off + k)})
				       ? child(q, v, node, '"')
				       : NO_NODE;
		if (close != NO_NODE) {
			mark_node(v, close, mask);
			for (size_t j = close + 1; j < v->end[close]; j = v->end[j])
				cite_node(v, j, (cite_st){.state = C_START}, &cx, NULL, mask);
		}
		if (p.off + k >= len || s[p.off + k] == '"')
			break;
		if ((node = child(q, v, node, s[p.off + k])) == NO_NODE)
			break;
		text = text || !isspace(s[p.off + k]);
		mark_node(v, node, mask);
	}
}

int engine_quote_mask(engine_quote_matcher *q, const engine_grammar_vocab *v, uint32_t *mask)
{
	int rc = bind_vocab(q, v);
	if (rc)
		return rc;
	size_t words = (v->n_vocab + 31) / 32;
	/* Special tokens (outside the trie: ends of turn, tool-call tags) may come unless a quote
	 * or a required marker is open. */
	bool specials = q->mode == Q_OUT || q->mode == Q_BROKEN || (q->mode == Q_CITE && !q->cite_required);
	if (q->mode == Q_OUT) {
		memcpy(mask, q->out_ok, words * sizeof *mask);
		return 0;
	}
	memset(mask, specials ? 0xff : 0, words * sizeof *mask);
	if (q->mode == Q_BROKEN)
		return 0;
	for (size_t k = 0; k < v->tok_pre[v->n_nodes]; k++)
		mask[v->toks[k] >> 5] &= ~(1u << (v->toks[k] & 31));
	if (q->mode == Q_CITE) {
		cite_ctx cx = {.ok = q->cite_ok, .n = q->n, .required = q->cite_required};
		for (size_t j = 0; j < v->n_nodes; j = v->end[j])
			cite_node(v, j, q->cite, &cx, q->out_ok, mask);
		return 0;
	}
	if (q->qlen > 0) {
		for (size_t i = 0; i < q->n_live; i++)
			walk_from(q, v, q->live[i], mask);
		return 0;
	}
	for (uint32_t s = 0; s < q->n; s++)
		for (uint32_t off = 0; off < q->len[s]; off++)
			if (starts_ok(q, s, off))
				walk_from(q, v, (q_pos){s, off}, mask);
	return 0;
}

/* ---------------------------------------------------------- following text */

static void close_quote(engine_quote_matcher *q)
{
	memset(q->cite_ok, 0, q->n);
	for (size_t i = 0; i < q->n_live; i++)
		if (ends_ok(q, q->live[i]))
			q->cite_ok[q->live[i].src] = 1;
	q->cite = (cite_st){.state = C_START};
	q->mode = Q_CITE;
}

static void quoted_byte(engine_quote_matcher *q, uint8_t c)
{
	size_t kept = 0;
	if (q->qlen == 0) {
		for (uint32_t s = 0; s < q->n; s++)
			for (uint32_t off = 0; off < q->len[s]; off++)
				if ((uint8_t)q->src[s][off] == c && starts_ok(q, s, off))
					q->live[kept++] = (q_pos){s, off + 1};
	} else {
		for (size_t i = 0; i < q->n_live; i++) {
			q_pos p = q->live[i];
			if (p.off < q->len[p.src] && (uint8_t)q->src[p.src][p.off] == c)
				q->live[kept++] = (q_pos){p.src, p.off + 1};
		}
	}
	q->n_live = kept;
	q->qlen++;
	q->has_text = q->has_text || !isspace(c);
	if (!kept)
		q->mode = Q_BROKEN;
}

static void feed_byte(engine_quote_matcher *q, uint8_t c)
{
	switch (q->mode) {
	case Q_OUT:
		if (c == '"') {
			q->mode = Q_IN;
			q->qlen = 0;
			q->has_text = false;
			q->n_live = 0;
		}
		break;
	case Q_IN:
		if (c != '"')
			quoted_byte(q, c);
		else if (!q->has_text)
			q->mode = Q_OUT; /* "" or " ": nothing quoted */
		else
			close_quote(q);
		break;
	case Q_BROKEN:
		if (c == '"')
			q->mode = Q_OUT;
		break;
	case Q_CITE: {
		cite_ctx cx = {.ok = q->cite_ok, .n = q->n, .required = q->cite_required};
		q->cite = cite_step(q->cite, c, &cx);
		if (q->cite.state == C_FREE || q->cite.state == C_REJECT) {
			bool marker_done = q->cite.state == C_FREE && c == ']';
			q->mode = Q_OUT;
			if (!marker_done)
				feed_byte(q, c); /* the byte belongs to the text after the quote */
		}
		break;
	}
	default: break;
	}
}

void engine_quote_matcher_feed(engine_quote_matcher *q, const void *bytes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		feed_byte(q, ((const uint8_t *)bytes)[i]);
}

void engine_quote_matcher_reset(engine_quote_matcher *q)
{
	q->mode = Q_OUT;
	q->has_text = false;
	q->qlen = 0;
	q->n_live = 0;
}

bool engine_quote_matcher_inside(const engine_quote_matcher *q)
{
	return q->mode == Q_IN || q->mode == Q_CITE;
}

bool engine_quote_matcher_quoting(const engine_quote_matcher *q) { return q->mode == Q_IN; }

/* Where the sentence holding source byte `from` ends: just past its . ? or ! (before white
 * space or the end), before a line break, or at the end; SIZE_MAX if a '"' comes first. */
static size_t sentence_end(const char *t, size_t len, size_t from)
{
	for (size_t i = from; i < len; i++) {
		if (t[i] == '"')
			return SIZE_MAX;
		if (t[i] == '\n')
			return i;
		if ((t[i] == '.' || t[i] == '?' || t[i] == '!') &&
		    (i + 1 == len || isspace((uint8_t)t[i + 1])))
			return i + 1;
	}
	return len;
}

static bool sentence_starts(const char *t, size_t off)
{
	if (off == 0)
		return !isspace((uint8_t)t[0]);
	if (isspace((uint8_t)t[off]))
		return false;
	size_t i = off;
	while (i > 0 && isspace((uint8_t)t[i - 1]))
		i--;
	return i < off && (i == 0 || t[i - 1] == '.' || t[i - 1] == '?' || t[i - 1] == '!' ||
			   t[i - 1] == '\n' || t[off - 1] == '\n');
}

/* Adds the rest of the sentence from place p as a completion, unless it is one already. */
static void add_completion(const engine_quote_matcher *q, q_pos p, const char **texts, size_t *lens,
			   uint32_t *srcs, size_t *n)
{
	const char *t = q->src[p.src];
	size_t len = q->len[p.src], off = p.off;
	bool at_end = q->qlen && off > 0 && (t[off - 1] == '.' || t[off - 1] == '?' || t[off - 1] == '!');
	size_t end = at_end ? off : sentence_end(t, len, off);
	if (end == SIZE_MAX || !boundary(q, p.src, end))
		return;
	bool text = q->has_text;
	for (size_t i = off; i < end && !text; i++)
		text = !isspace((uint8_t)t[i]);
	if (!text)
		return;
	for (size_t i = 0; i < *n; i++)
		if (srcs[i] == p.src && lens[i] == end - off && memcmp(texts[i], t + off, end - off) == 0)
			return;
	texts[*n] = t + off;
	srcs[*n] = p.src;
	lens[(*n)++] = end - off;
}

size_t engine_quote_matcher_completions(const engine_quote_matcher *q, const char **texts, size_t *lens,
					uint32_t *srcs, size_t max)
{
	size_t n = 0;
	if (q->mode != Q_IN)
		return 0;
	if (q->qlen) {
		for (size_t i = 0; i < q->n_live && n < max; i++)
			add_completion(q, q->live[i], texts, lens, srcs, &n);
		return n;
	}
	for (uint32_t s = 0; s < q->n; s++)
		for (uint32_t off = 0; off < q->len[s] && n < max; off++)
			if (sentence_starts(q->src[s], off))
				add_completion(q, (q_pos){s, off}, texts, lens, srcs, &n);
	return n;
}

bool engine_quote_matcher_cite_required(const engine_quote_matcher *q) { return q->cite_required; }
