/*
 * Byte-level BPE (tokenizer.ggml.model = "gpt2"): every byte of the text is
 * first written as a printable stand-in character (GPT-2's bytes_to_unicode
 * table), a pre-tokenizer regex splits the text into words (PCRE2 with UTF
 * and Unicode properties; the pattern depends on tokenizer.ggml.pre), and in
 * each word the adjacent pair with the lowest merge rank is merged until no
 * merge applies, as llama.cpp's BPE tokenizer does. Every byte has a stand-in,
 * so any input, valid UTF-8 or not, round-trips exactly.
 */
#include "engine/tokenizer_internal.h"

#include <string.h>

static const char gpt2_pattern[] =
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char llama3_pattern[] =
	"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?"
	"\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char qwen2_pattern[] =
	"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?"
	"\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static void *pcre_alloc(size_t n, void *cls)
{
	(void)cls;
	return ag_malloc(n);
}

static void pcre_release(void *p, void *cls)
{
	(void)cls;
	ag_free(p);
}

static bool name_in(const char *name, const char *const *list)
{
	for (int i = 0; list[i]; i++)
		if (strcmp(name, list[i]) == 0)
			return true;
	return false;
}

static void setup_bytes(engine_tokenizer *t)
{
	for (int i = 0; i < 324; i++)
		t->unbyte[i] = -1;
	int extra = 0;
	for (int b = 0; b < 256; b++) {
		bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
		int cp = printable ? b : 256 + extra++;
		t->unbyte[cp] = (int16_t)b;
		if (cp < 0x80) {
			t->byte_chars[b][0] = (uint8_t)cp;
			t->byte_chars_len[b] = 1;
		} else {
			t->byte_chars[b][0] = (uint8_t)(0xC0 | (cp >> 6));
			t->byte_chars[b][1] = (uint8_t)(0x80 | (cp & 0x3F));
			t->byte_chars_len[b] = 2;
		}
	}
}

static uint64_t pair_key(int32_t l, int32_t r) { return (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1; }

int tok_bpe_setup(engine_tokenizer *t, const engine_vocab_desc *d)
{
	if (!d->merges || d->n_merges == 0)
		return ag_error_set(AG_EINVAL, "tokenizer: a gpt2 vocabulary needs merges");
	setup_bytes(t);
	int rc = tok_map_init(&t->merges, d->n_merges);
	if (rc)
		return rc;
	for (size_t i = 0; i < d->n_merges && i < INT32_MAX; i++) {
		const char *m = d->merges[i];
		const char *sp = m && m[0] ? strchr(m + 1, ' ') : NULL;
		if (!sp)
			return ag_error_set(AG_EINVAL, "tokenizer: merge %zu is not \"left right\"", i);
		int32_t l = tok_find(t, m, (size_t)(sp - m));
		int32_t r = tok_find(t, sp + 1, strlen(sp + 1));
		if (l >= 0 && r >= 0)
			tok_map_put(&t->merges, pair_key(l, r), (int32_t)i);
	}
	static const char *const llama3[] = {"llama3",    "llama-bpe", "llama-v3", "dbrx",
					     "smaug-bpe", "falcon3",   "pixtral",  NULL};
	static const char *const qwen2[] = {"qwen2", "deepseek-r1-qwen", "stablelm2", "hunyuan", NULL};
	const char *pre = d->pre ? d->pre : "default";
	const char *pattern = gpt2_pattern;
	if (name_in(pre, llama3)) {
		pattern = llama3_pattern;
		t->ignore_merges = strcmp(pre, "llama3") == 0 || strcmp(pre, "llama-bpe") == 0;
	} else if (name_in(pre, qwen2)) {
		pattern = qwen2_pattern;
	}
	t->pcre_ctx = pcre2_general_context_create(pcre_alloc, pcre_release, NULL);
	if (!t->pcre_ctx)
		return ag_error_set(AG_ENOMEM, "tokenizer: out of memory");
	pcre2_compile_context *cc = pcre2_compile_context_create(t->pcre_ctx);
	if (!cc)
		return ag_error_set(AG_ENOMEM, "tokenizer: out of memory");
	int err;
	PCRE2_SIZE erroff;
	t->pre = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
			       PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &erroff, cc);
	pcre2_compile_context_free(cc);
	if (!t->pre) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(err, msg, sizeof msg);
		return ag_error_set(AG_ERR, "tokenizer: pre-tokenizer pattern: %s", (const char *)msg);
	}
	(void)pcre2_jit_compile(t->pre, PCRE2_JIT_COMPLETE); /* optional: the interpreter is the fallback */
	return 0;
}

/* ------------------------------------------------------------- encoding */

typedef struct bsym {
	uint32_t off, n; /* into the stand-in text; n = 0 once merged away */
	int32_t id;      /* token of this text, or -1 */
	int32_t prev, next;
} bsym;

typedef struct bpair {
	int32_t left, right, rank;
	uint32_t size;
} bpair;

typedef struct bpe_session {
	const engine_tokenizer *t;
	char *buf;
	bsym *syms;
	bpair *heap;
	size_t n_heap, cap_heap;
	size_t cap_buf, cap_syms;
} bpe_session;

static bool pair_before(const bpair *a, const bpair *b)
{
	return a->rank != b->rank ? a->rank < b->rank : a->left < b->left;
}

static int pair_push(bpe_session *s, bpair g)
{
	if (s->n_heap == s->cap_heap) {
		size_t nc = s->cap_heap ? s->cap_heap * 2 : 64;
		bpair *p = ag_realloc(s->heap, nc * sizeof *p);
		if (!p)
			return ag_error_set(AG_ENOMEM, "tokenizer: out of memory");
		s->heap = p;
		s->cap_heap = nc;
	}
	size_t i = s->n_heap++;
	while (i > 0 && pair_before(&g, &s->heap[(i - 1) / 2])) {
		s->heap[i] = s->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->heap[i] = g;
	return 0;
}

static bpair pair_pop(bpe_session *s)
{
	bpair top = s->heap[0], last = s->heap[--s->n_heap];
	size_t i = 0, n = s->n_heap;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && pair_before(&s->heap[c + 1], &s->heap[c]))
			c++;
		if (!pair_before(&s->heap[c], &last))
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (n)
		s->heap[i] = last;
	return top;
}

static int try_pair(bpe_session *s, int32_t l, int32_t r)
{
	if (l < 0 || r < 0 || s->syms[l].id < 0 || s->syms[r].id < 0)
		return 0;
	int32_t rank = tok_map_get(&s->t->merges, pair_key(s->syms[l].id, s->syms[r].id));
	if (rank < 0)
		return 0;
	return pair_push(s, (bpair){l, r, rank, s->syms[l].n + s->syms[r].n});
}

static int emit(bpe_session *s, const bsym *y, int32_t **ids, size_t *n, size_t *cap)
{
	const engine_tokenizer *t = s->t;
	if (y->id >= 0)
		return tok_push(ids, n, cap, y->id);
	/* No token for this text (a vocabulary lacking some byte): character by character, else unk. */
	const uint8_t *p = (const uint8_t *)s->buf + y->off;
	for (uint32_t i = 0; i < y->n;) {
		uint32_t cl = p[i] < 0x80 ? 1 : 2;
		int32_t id = tok_find(t, (const char *)p + i, cl);
		if (id < 0)
			id = t->unk;
		if (id < 0)
			return ag_error_set(
				AG_EINVAL, "tokenizer: the vocabulary cannot spell this text and has no unk");
		int rc = tok_push(ids, n, cap, id);
		if (rc)
			return rc;
		i += cl;
	}
	return 0;
}

static int grow(bpe_session *s, size_t len)
{
	if (len * 2 > s->cap_buf) {
		ag_free(s->buf);
		s->cap_buf = len * 2;
		if (!(s->buf = ag_malloc(s->cap_buf)))
			return ag_error_set(AG_ENOMEM, "tokenizer: out of memory");
	}
	if (len > s->cap_syms) {
		ag_free(s->syms);
		s->cap_syms = len;
		if (!(s->syms = ag_malloc(len * sizeof *s->syms)))
			return ag_error_set(AG_ENOMEM, "tokenizer: out of memory");
	}
	return 0;
}

static int encode_word(bpe_session *s, const uint8_t *w, size_t len, int32_t **ids, size_t *n, size_t *cap)
{
	const engine_tokenizer *t = s->t;
	int rc = grow(s, len);
	if (rc)
		return rc;
	size_t off = 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t cl = t->byte_chars_len[w[i]];
		memcpy(s->buf + off, t->byte_chars[w[i]], cl);
		s->syms[i] = (bsym){(uint32_t)off, cl, tok_find(t, s->buf + off, cl), (int32_t)i - 1,
				    i + 1 < len ? (int32_t)i + 1 : -1};
		off += cl;
	}
	if (t->ignore_merges) {
		int32_t whole = tok_find(t, s->buf, off);
		if (whole >= 0 && t->type[whole] == ENGINE_TOKEN_NORMAL)
			return tok_push(ids, n, cap, whole);
	}
	s->n_heap = 0;
	for (size_t i = 1; i < len && !rc; i++)
		rc = try_pair(s, (int32_t)i - 1, (int32_t)i);
	while (s->n_heap && !rc) {
		bpair g = pair_pop(s);
		bsym *l = &s->syms[g.left], *r = &s->syms[g.right];
		if (l->n == 0 || r->n == 0 || l->n + r->n != g.size || l->next != g.right)
			continue;
		l->n += r->n;
		r->n = 0;
		l->id = tok_find(t, s->buf + l->off, l->n);
		l->next = r->next;
		if (r->next >= 0)
			s->syms[r->next].prev = g.left;
		rc = try_pair(s, l->prev, g.left);
		if (!rc)
			rc = try_pair(s, g.left, l->next);
	}
	for (int32_t k = 0; k >= 0 && !rc; k = s->syms[k].next)
		rc = emit(s, &s->syms[k], ids, n, cap);
	return rc;
}

int tok_bpe_encode(const engine_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n,
		   size_t *cap)
{
	if (len == 0)
		return 0;
	bpe_session s = {.t = t};
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(t->pre, t->pcre_ctx);
	if (!md)
		return ag_error_set(AG_ENOMEM, "tokenizer: out of memory");
	int rc = 0;
	size_t pos = 0;
	while (pos < len && !rc) {
		int m = pcre2_match(t->pre, (PCRE2_SPTR)text, len, pos, 0, md, NULL);
		size_t start = len, end = len;
		if (m >= 0) {
			PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
			start = ov[0];
			end = ov[1];
		} else if (m != PCRE2_ERROR_NOMATCH) {
			rc = ag_error_set(AG_ERR, "tokenizer: pre-tokenizer failed (%d)", m);
			break;
		}
		/* Bytes no pattern matches (invalid UTF-8) form words of their own. */
		if (start > pos)
			rc = encode_word(&s, (const uint8_t *)text + pos, start - pos, ids, n, cap);
		if (!rc && end > start)
			rc = encode_word(&s, (const uint8_t *)text + start, end - start, ids, n, cap);
		pos = end > start ? end : start + 1;
		if (!rc && end == start && start < len) /* an empty match: take one byte as a word */
			rc = encode_word(&s, (const uint8_t *)text + start, 1, ids, n, cap);
	}
	pcre2_match_data_free(md);
	ag_free(s.buf);
	ag_free(s.syms);
	ag_free(s.heap);
	return rc;
}

int tok_bpe_piece(const engine_tokenizer *t, int32_t id, ag_buf *out)
{
	const uint8_t *p = (const uint8_t *)t->text[id];
	size_t len = t->len[id];
	int rc = 0;
	for (size_t i = 0; i < len && !rc;) {
		uint32_t cp = p[i];
		size_t cl = 1;
		if (p[i] >= 0xC0 && p[i] < 0xE0 && i + 1 < len && (p[i + 1] & 0xC0) == 0x80) {
			cp = ((uint32_t)(p[i] & 0x1F) << 6) | (p[i + 1] & 0x3F);
			cl = 2;
		}
		if (cp < 324 && t->unbyte[cp] >= 0 && (cl == 2 || cp < 0x80))
			rc = ag_buf_putc(out, (char)t->unbyte[cp]);
		else
			rc = ag_buf_append(out, p + i, cl); /* not a stand-in: copied as it is */
		i += cl;
	}
	return rc;
}
