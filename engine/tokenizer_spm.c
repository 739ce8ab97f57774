/*
 * SentencePiece-style BPE (tokenizer.ggml.model = "llama"), the tokenizer of
 * AI21's Jamba models and of agentd's shipped model. Spaces become U+2581,
 * the text is split into UTF-8 characters, and the adjacent pair whose joined
 * string is a vocabulary token with the highest score is merged, repeatedly
 * (a priority queue; ties go to the leftmost pair), as llama.cpp's SPM
 * tokenizer and SentencePiece's BPE encoder do. A character that is no token
 * falls back to its <0xNN> byte tokens.
 *
 * Two choices keep tokenize -> detokenize exact for any bytes: an invalid
 * UTF-8 byte is its own symbol (never swallowing a following space), and a
 * literal U+2581 in the input is spelled with byte tokens rather than the
 * space marker, so it does not come back as a space.
 */
#include "engine/tokenizer_internal.h"

#include <string.h>

enum { SYM_SPACE = 1, SYM_LITERAL = 2 };

typedef struct sym {
	uint32_t off; /* into the escaped text */
	uint32_t n;   /* bytes; 0 once merged into its left neighbour */
	int32_t prev, next;
	uint8_t flags;
} sym;

typedef struct bigram {
	int32_t left, right;
	float score;
	uint32_t size;
} bigram;

typedef struct spm_session {
	const engine_tokenizer *t;
	char *buf; /* escaped text */
	sym *syms;
	bigram *heap;
	size_t n_heap, cap_heap;
} spm_session;

/* Higher score first; on a tie the leftmost pair. */
static bool before(const bigram *a, const bigram *b)
{
	if (a->score != b->score)
		return a->score > b->score;
	return a->left < b->left;
}

static int heap_push(spm_session *s, bigram g)
{
	if (s->n_heap == s->cap_heap) {
		size_t nc = s->cap_heap ? s->cap_heap * 2 : 64;
		bigram *p = ag_realloc(s->heap, nc * sizeof *p);
		if (!p)
			return ag_error_set(AG_ENOMEM, "tokenizer: out of memory");
		s->heap = p;
		s->cap_heap = nc;
	}
	size_t i = s->n_heap++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!before(&g, &s->heap[parent]))
			break;
		s->heap[i] = s->heap[parent];
		i = parent;
	}
	s->heap[i] = g;
	return 0;
}

static bigram heap_pop(spm_session *s)
{
	bigram top = s->heap[0];
	bigram last = s->heap[--s->n_heap];
	size_t i = 0, n = s->n_heap;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && before(&s->heap[c + 1], &s->heap[c]))
			c++;
		if (!before(&s->heap[c], &last))
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (n)
		s->heap[i] = last;
	return top;
}

/* A token that ordinary text may become: normal pieces only, never control or user symbols. */
static int32_t text_token(const engine_tokenizer *t, const char *p, size_t n)
{
	int32_t id = tok_find(t, p, n);
	return id >= 0 && t->type[id] == ENGINE_TOKEN_NORMAL ? id : -1;
}

static int try_bigram(spm_session *s, int32_t l, int32_t r)
{
	if (l < 0 || r < 0)
		return 0;
	const sym *a = &s->syms[l], *b = &s->syms[r];
	if ((a->flags | b->flags) & SYM_LITERAL)
		return 0;
	int32_t id = text_token(s->t, s->buf + a->off, a->n + b->n);
	if (id < 0)
		return 0;
	bigram g = {l, r, s->t->score[id], a->n + b->n};
	return heap_push(s, g);
}

static int emit_symbol(spm_session *s, const sym *y, int32_t **ids, size_t *n, size_t *cap)
{
	const engine_tokenizer *t = s->t;
	const char *p = s->buf + y->off;
	if (!(y->flags & SYM_LITERAL)) {
		int32_t id = text_token(t, p, y->n);
		if (id >= 0)
			return tok_push(ids, n, cap, id);
	}
	/* Byte fallback: a space symbol stands for the byte 0x20, not for U+2581's bytes. */
	const uint8_t space = ' ';
	const uint8_t *bytes = (y->flags & SYM_SPACE) ? &space : (const uint8_t *)p;
	size_t nb = (y->flags & SYM_SPACE) ? 1 : y->n;
	for (size_t i = 0; i < nb; i++) {
		int32_t id = t->byte_token[bytes[i]];
		if (id < 0) {
			if (t->unk < 0)
				return ag_error_set(
					AG_EINVAL,
					"tokenizer: byte 0x%02X has no token and the vocabulary has no unk",
					bytes[i]);
			return tok_push(ids, n, cap, t->unk); /* one unk for the whole symbol */
		}
		int rc = tok_push(ids, n, cap, id);
		if (rc)
			return rc;
	}
	return 0;
}

/* Splits text into symbols over the escaped copy. */
static size_t split(spm_session *s, const char *text, size_t len, bool space_prefix)
{
	size_t n_sym = 0, off = 0;
	if (space_prefix) {
		memcpy(s->buf, "\xe2\x96\x81", 3);
		s->syms[n_sym++] = (sym){0, 3, -1, -1, SYM_SPACE};
		off = 3;
	}
	for (size_t i = 0; i < len;) {
		const uint8_t *u = (const uint8_t *)text + i;
		sym y = {(uint32_t)off, 0, -1, -1, 0};
		size_t adv;
		if (u[0] == ' ') {
			memcpy(s->buf + off, "\xe2\x96\x81", 3);
			y.n = 3;
			y.flags = SYM_SPACE;
			adv = 1;
		} else {
			size_t want = tok_utf8_len(u[0]);
			adv = 1;
			while (adv < want && i + adv < len && (u[adv] & 0xC0) == 0x80)
				adv++;
			memcpy(s->buf + off, u, adv);
			y.n = (uint32_t)adv;
			if (adv == 3 && u[0] == 0xE2 && u[1] == 0x96 && u[2] == 0x81)
				y.flags = SYM_LITERAL;
		}
		off += y.n;
		i += adv;
		s->syms[n_sym++] = y;
	}
	for (size_t k = 0; k < n_sym; k++) {
		s->syms[k].prev = (int32_t)k - 1;
		s->syms[k].next = k + 1 < n_sym ? (int32_t)k + 1 : -1;
	}
	return n_sym;
}

/* Runs the merges over symbols [a, b) and appends their ids. */
static int merge_segment(spm_session *s, size_t a, size_t b, int32_t **ids, size_t *n, size_t *cap)
{
	s->syms[a].prev = -1;
	s->syms[b - 1].next = -1;
	s->n_heap = 0;
	int rc = 0;
	for (size_t k = a + 1; k < b && !rc; k++)
		rc = try_bigram(s, (int32_t)k - 1, (int32_t)k);
	while (s->n_heap && !rc) {
		bigram g = heap_pop(s);
		sym *l = &s->syms[g.left], *r = &s->syms[g.right];
		if (l->n == 0 || r->n == 0 || l->n + r->n != g.size)
			continue; /* stale: one side has merged since */
		l->n += r->n;
		r->n = 0;
		l->flags = 0;
		l->next = r->next;
		if (r->next >= 0)
			s->syms[r->next].prev = g.left;
		rc = try_bigram(s, l->prev, g.left);
		if (!rc)
			rc = try_bigram(s, g.left, l->next);
	}
	for (int32_t k = (int32_t)a; k >= 0 && !rc; k = s->syms[k].next)
		rc = emit_symbol(s, &s->syms[k], ids, n, cap);
	return rc;
}

int tok_spm_encode(const engine_tokenizer *t, const char *text, size_t len, bool space_prefix, int32_t **ids,
		   size_t *n, size_t *cap)
{
	if (len > (UINT32_MAX - 8) / 3)
		return ag_error_set(AG_ELIMIT, "tokenizer: text of %zu bytes is too long", len);
	spm_session s = {.t = t};
	s.buf = ag_malloc(len * 3 + 4);
	s.syms = ag_malloc((len + 1) * sizeof *s.syms);
	int rc = 0;
	if (!s.buf || !s.syms) {
		rc = ag_error_set(AG_ENOMEM, "tokenizer: out of memory for %zu bytes of text", len);
		goto done;
	}
	size_t n_sym = split(&s, text, len, space_prefix);
	/* When no piece joins a character to a following space, a word boundary ("x" then " ")
	 * is one no merge can cross: the words merge independently, giving the same ids with
	 * small, cache-friendly queues. */
	size_t start = 0;
	for (size_t k = 1; k <= n_sym && !rc; k++) {
		if (k == n_sym || (t->spm_word_split && (s.syms[k].flags & SYM_SPACE) &&
				   !(s.syms[k - 1].flags & SYM_SPACE))) {
			rc = merge_segment(&s, start, k, ids, n, cap);
			start = k;
		}
	}
done:
	ag_free(s.buf);
	ag_free(s.syms);
	ag_free(s.heap);
	return rc;
}
