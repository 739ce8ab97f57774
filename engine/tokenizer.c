/*
 * The tokenizer's common layer: it copies the GGUF vocabulary, indexes token
 * strings, finds special tokens in text when asked to, hands the ordinary
 * runs of text to the SentencePiece BPE (tokenizer_spm.c) or byte-level BPE
 * (tokenizer_bpe.c) encoder, and turns ids back into bytes — whole, or
 * streamed without ever splitting a UTF-8 character.
 *
 * Behaviour follows llama.cpp's llama-vocab.cpp (read, not copied), with one
 * deliberate difference: user-defined tokens are matched in text only when
 * parse_special is set, so text from outside cannot forge "<tool_call>".
 */
#include "engine/tokenizer_internal.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ hash map */

uint64_t tok_hash(const void *data, size_t len)
{
	/* FNV-1a with a final avalanche; never 0, which marks an empty slot. */
	const uint8_t *p = data;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h ? h : 1;
}

int tok_map_init(tok_map *m, size_t capacity)
{
	size_t slots = 16;
	while (slots < capacity * 2)
		slots <<= 1;
	m->keys = ag_calloc(slots, sizeof *m->keys);
	m->values = ag_calloc(slots, sizeof *m->values);
	m->mask = slots - 1;
	if (!m->keys || !m->values) {
		tok_map_free(m);
		return ag_error_set(AG_ENOMEM, "tokenizer: out of memory for %zu map slots", slots);
	}
	return 0;
}

void tok_map_free(tok_map *m)
{
	ag_free(m->keys);
	ag_free(m->values);
	memset(m, 0, sizeof *m);
}

void tok_map_put(tok_map *m, uint64_t key, int32_t value)
{
	for (size_t i = key & m->mask;; i = (i + 1) & m->mask) {
		if (m->keys[i] == key)
			return;
		if (!m->keys[i]) {
			m->keys[i] = key;
			m->values[i] = value;
			return;
		}
	}
}

int32_t tok_map_get(const tok_map *m, uint64_t key)
{
	if (!m->keys)
		return -1;
	for (size_t i = key & m->mask; m->keys[i]; i = (i + 1) & m->mask)
		if (m->keys[i] == key)
			return m->values[i];
	return -1;
}

int32_t tok_find(const engine_tokenizer *t, const char *data, size_t len)
{
	uint64_t h = tok_hash(data, len);
	const tok_map *m = &t->by_text;
	for (size_t i = h & m->mask; m->keys[i]; i = (i + 1) & m->mask) {
		int32_t id = m->values[i];
		if (m->keys[i] == h && t->len[id] == len && memcmp(t->text[id], data, len) == 0)
			return id;
	}
	return -1;
}

/* Inserts token id under its string unless an earlier id has the same string. */
static void index_token(engine_tokenizer *t, int32_t id)
{
	if (tok_find(t, t->text[id], t->len[id]) >= 0)
		return;
	uint64_t h = tok_hash(t->text[id], t->len[id]);
	tok_map *m = &t->by_text;
	size_t i = h & m->mask;
	while (m->keys[i])
		i = (i + 1) & m->mask;
	m->keys[i] = h;
	m->values[i] = id;
}

size_t tok_utf8_len(uint8_t lead)
{
	if (lead >= 0xF0 && lead <= 0xF7)
		return 4;
	if (lead >= 0xE0 && lead <= 0xEF)
		return 3;
	if (lead >= 0xC0 && lead <= 0xDF)
		return 2;
	return 1;
}

int tok_push(int32_t **ids, size_t *n, size_t *cap, int32_t id)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		int32_t *p = ag_realloc(*ids, nc * sizeof *p);
		if (!p)
			return ag_error_set(AG_ENOMEM, "tokenizer: out of memory for %zu tokens", nc);
		*ids = p;
		*cap = nc;
	}
	(*ids)[(*n)++] = id;
	return 0;
}

/* ------------------------------------------------------------- creation */

void engine_vocab_desc_init(engine_vocab_desc *d)
{
	memset(d, 0, sizeof *d);
	d->bos_id = d->eos_id = d->unk_id = d->pad_id = -1;
	d->add_bos = true;
	d->add_space_prefix = true;
}

static int check_id(const char *what, int32_t id, size_t n)
{
	if (id < -1 || (id >= 0 && (size_t)id >= n))
		return ag_error_set(AG_EINVAL, "tokenizer: %s id %d outside the vocabulary of %zu tokens",
				    what, (int)id, n);
	return 0;
}

static int special_cmp(const void *a, const void *b, void *ctx)
{
	const engine_tokenizer *t = ctx;
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	uint8_t fx = (uint8_t)t->text[x][0], fy = (uint8_t)t->text[y][0];
	if (fx != fy)
		return fx < fy ? -1 : 1;
	if (t->len[x] != t->len[y])
		return t->len[x] > t->len[y] ? -1 : 1; /* longest first: "<|im_end|>" before "<|im" */
	return x < y ? -1 : x > y;
}

/* Texts matched whole when parse_special: control, user-defined and unknown ("<unk>") tokens. */
static bool is_special(const engine_tokenizer *t, size_t i)
{
	int32_t ty = t->type[i];
	return (ty == ENGINE_TOKEN_CONTROL || ty == ENGINE_TOKEN_USER_DEFINED ||
		ty == ENGINE_TOKEN_UNKNOWN) &&
	       t->len[i];
}

static int index_specials(engine_tokenizer *t)
{
	size_t count = 0;
	for (size_t i = 0; i < t->n; i++)
		if (is_special(t, i))
			count++;
	t->special = ag_calloc(count ? count : 1, sizeof *t->special);
	if (!t->special)
		return ag_error_set(AG_ENOMEM, "tokenizer: out of memory");
	for (size_t i = 0; i < t->n; i++)
		if (is_special(t, i))
			t->special[t->n_special++] = (int32_t)i;
	qsort_r(t->special, t->n_special, sizeof *t->special, special_cmp, t);
	size_t k = 0;
	for (int b = 0; b < 256; b++) {
		t->special_start[b] = (uint32_t)k;
		while (k < t->n_special && (uint8_t)t->text[t->special[k]][0] == b)
			k++;
	}
	t->special_start[256] = (uint32_t)k;
	return 0;
}

static void add_eog(engine_tokenizer *t, int32_t id)
{
	if (id < 0 || t->n_eog == sizeof t->eog / sizeof t->eog[0])
		return;
	for (size_t i = 0; i < t->n_eog; i++)
		if (t->eog[i] == id)
			return;
	t->eog[t->n_eog++] = id;
}

static int copy_vocab(engine_tokenizer *t, const engine_vocab_desc *d)
{
	t->text = ag_calloc(t->n, sizeof *t->text);
	t->len = ag_calloc(t->n, sizeof *t->len);
	t->score = ag_calloc(t->n, sizeof *t->score);
	t->type = ag_calloc(t->n, sizeof *t->type);
	if (!t->text || !t->len || !t->score || !t->type)
		return ag_error_set(AG_ENOMEM, "tokenizer: out of memory for %zu tokens", t->n);
	for (size_t i = 0; i < t->n; i++) {
		if (!d->tokens[i])
			return ag_error_set(AG_EINVAL, "tokenizer: token %zu has no text", i);
		size_t len = strlen(d->tokens[i]);
		if (len > UINT32_MAX / 2)
			return ag_error_set(AG_EINVAL, "tokenizer: token %zu is too long", i);
		t->text[i] = ag_strndup(d->tokens[i], len);
		if (!t->text[i])
			return ag_error_set(AG_ENOMEM, "tokenizer: out of memory for token %zu", i);
		t->len[i] = (uint32_t)len;
		t->score[i] = d->scores ? d->scores[i] : 0.0f;
		int32_t ty = d->types ? d->types[i] : ENGINE_TOKEN_NORMAL;
		t->type[i] =
			(ty >= ENGINE_TOKEN_NORMAL && ty <= ENGINE_TOKEN_BYTE) ? ty : ENGINE_TOKEN_NORMAL;
	}
	int rc = tok_map_init(&t->by_text, t->n);
	if (rc)
		return rc;
	for (size_t i = 0; i < t->n; i++)
		index_token(t, (int32_t)i);
	return 0;
}

/* True when no normal piece contains U+2581 right after another character ("a\u2581"),
 * so the SPM encoder may merge word by word (tokenizer_spm.c). */
static bool spm_words_independent(const engine_tokenizer *t)
{
	for (size_t i = 0; i < t->n; i++) {
		if (t->type[i] != ENGINE_TOKEN_NORMAL)
			continue;
		const char *s = t->text[i];
		for (const char *p = s; (p = strstr(p, "\xe2\x96\x81")); p += 3)
			if (p > s && !(p - s >= 3 && memcmp(p - 3, "\xe2\x96\x81", 3) == 0))
				return false;
	}
	return true;
}

int engine_tokenizer_create(engine_tokenizer **out, const engine_vocab_desc *d)
{
	*out = NULL;
	if (!d || !d->tokens || d->n_tokens == 0)
		return ag_error_set(AG_EINVAL, "tokenizer: the vocabulary is empty");
	if (d->n_tokens > INT32_MAX)
		return ag_error_set(AG_EINVAL, "tokenizer: %zu tokens is too many", d->n_tokens);
	int kind;
	const char *model = d->model ? d->model : "llama";
	if (strcmp(model, "llama") == 0)
		kind = TOK_SPM;
	else if (strcmp(model, "gpt2") == 0)
		kind = TOK_BPE;
	else
		return ag_error_set(AG_EUNSUPPORTED, "tokenizer: model \"%s\" is not supported (llama, gpt2)",
				    model);
	int rc;
	if ((rc = check_id("bos", d->bos_id, d->n_tokens)) ||
	    (rc = check_id("eos", d->eos_id, d->n_tokens)) ||
	    (rc = check_id("unk", d->unk_id, d->n_tokens)) || (rc = check_id("pad", d->pad_id, d->n_tokens)))
		return rc;

	engine_tokenizer *t = ag_calloc(1, sizeof *t);
	if (!t)
		return ag_error_set(AG_ENOMEM, "tokenizer: out of memory");
	t->kind = kind;
	t->n = d->n_tokens;
	t->bos = d->bos_id;
	t->eos = d->eos_id;
	t->unk = d->unk_id;
	t->pad = d->pad_id;
	t->add_bos = d->add_bos && d->bos_id >= 0;
	t->add_eos = d->add_eos && d->eos_id >= 0;
	t->add_space_prefix = kind == TOK_SPM && d->add_space_prefix;
	rc = copy_vocab(t, d);
	if (!rc)
		rc = index_specials(t);
	if (!rc && d->chat_template && !(t->chat_template = ag_strdup(d->chat_template)))
		rc = ag_error_set(AG_ENOMEM, "tokenizer: out of memory");
	for (int b = 0; b < 256 && !rc; b++) {
		char name[8];
		snprintf(name, sizeof name, "<0x%02X>", b);
		t->byte_token[b] = kind == TOK_SPM ? tok_find(t, name, 6) : -1;
	}
	if (!rc && kind == TOK_BPE)
		rc = tok_bpe_setup(t, d);
	if (!rc && kind == TOK_SPM)
		t->spm_word_split = spm_words_independent(t);
	if (rc) {
		engine_tokenizer_free(t);
		return rc;
	}
	add_eog(t, t->eos);
	static const char *const eog_names[] = {"<|im_end|>", "<|endoftext|>", "<|eom|>", "<|eot_id|>", NULL};
	for (int i = 0; eog_names[i]; i++)
		add_eog(t, engine_token_lookup(t, eog_names[i]));
	*out = t;
	return 0;
}

void engine_tokenizer_free(engine_tokenizer *t)
{
	if (!t)
		return;
	for (size_t i = 0; t->text && i < t->n; i++)
		ag_free(t->text[i]);
	ag_free(t->text);
	ag_free(t->len);
	ag_free(t->score);
	ag_free(t->type);
	ag_free(t->special);
	ag_free(t->chat_template);
	tok_map_free(&t->by_text);
	tok_map_free(&t->merges);
	if (t->pre)
		pcre2_code_free(t->pre);
	if (t->pcre_ctx)
		pcre2_general_context_free(t->pcre_ctx);
	ag_free(t);
}

/* ------------------------------------------------------------ accessors */

size_t engine_tokenizer_n_vocab(const engine_tokenizer *t) { return t ? t->n : 0; }

const char *engine_token_text(const engine_tokenizer *t, int32_t id)
{
	return t && id >= 0 && (size_t)id < t->n ? t->text[id] : NULL;
}

int32_t engine_token_type(const engine_tokenizer *t, int32_t id)
{
	return t && id >= 0 && (size_t)id < t->n ? t->type[id] : 0;
}

int32_t engine_token_lookup(const engine_tokenizer *t, const char *text)
{
	return t && text ? tok_find(t, text, strlen(text)) : -1;
}

int32_t engine_token_bos(const engine_tokenizer *t) { return t ? t->bos : -1; }
int32_t engine_token_eos(const engine_tokenizer *t) { return t ? t->eos : -1; }
int32_t engine_token_unk(const engine_tokenizer *t) { return t ? t->unk : -1; }
int32_t engine_token_pad(const engine_tokenizer *t) { return t ? t->pad : -1; }
const char *engine_tokenizer_chat_template(const engine_tokenizer *t) { return t ? t->chat_template : NULL; }

bool engine_token_is_eog(const engine_tokenizer *t, int32_t id)
{
	if (!t || id < 0)
		return false;
	for (size_t i = 0; i < t->n_eog; i++)
		if (t->eog[i] == id)
			return true;
	return false;
}

/* ----------------------------------------------------------- tokenizing */

static int encode_run(const engine_tokenizer *t, const char *text, size_t len, bool after_special,
		      int32_t **ids, size_t *n, size_t *cap)
{
	if (t->kind == TOK_SPM)
		return tok_spm_encode(t, text, len, t->add_space_prefix && after_special, ids, n, cap);
	return tok_bpe_encode(t, text, len, ids, n, cap);
}

/* The longest special token starting at text[0], or -1. */
static int32_t match_special(const engine_tokenizer *t, const char *text, size_t len)
{
	uint8_t b = (uint8_t)text[0];
	for (uint32_t k = t->special_start[b]; k < t->special_start[b + 1]; k++) {
		int32_t id = t->special[k];
		if (t->len[id] <= len && memcmp(t->text[id], text, t->len[id]) == 0)
			return id;
	}
	return -1;
}

int engine_tokenize(const engine_tokenizer *t, const char *text, size_t len, bool add_special,
		    bool parse_special, int32_t **out, size_t *n_out)
{
	*out = NULL;
	*n_out = 0;
	if (!t)
		return ag_error_set(AG_EINVAL, "tokenize: no tokenizer");
	if (!text && len)
		return ag_error_set(AG_EINVAL, "tokenize: no text");
	int32_t *ids = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	if (add_special && t->add_bos)
		rc = tok_push(&ids, &n, &cap, t->bos);
	/* Like llama.cpp, an SPM run that starts the text or follows a special token gets the space prefix.
	 */
	bool after_special = true;
	size_t run = 0;
	for (size_t i = 0; i < len && !rc;) {
		int32_t sp = parse_special ? match_special(t, text + i, len - i) : -1;
		if (sp < 0) {
			i++;
			continue;
		}
		if (i > run)
			rc = encode_run(t, text + run, i - run, after_special, &ids, &n, &cap);
		if (!rc)
			rc = tok_push(&ids, &n, &cap, sp);
		after_special = true;
		i += t->len[sp];
		run = i;
	}
	if (!rc && len > run)
		rc = encode_run(t, text + run, len - run, after_special, &ids, &n, &cap);
	if (!rc && add_special && t->add_eos)
		rc = tok_push(&ids, &n, &cap, t->eos);
	if (rc) {
		ag_free(ids);
		return rc;
	}
	if (!ids && !(ids = ag_malloc(sizeof *ids)))
		return ag_error_set(AG_ENOMEM, "tokenize: out of memory");
	*out = ids;
	*n_out = n;
	return 0;
}

/* ------------------------------------------------------- detokenizing */

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* SPM normal piece: U+2581 stands for a space. */
static int spm_piece(const char *s, size_t len, ag_buf *out)
{
	size_t run = 0;
	int rc = 0;
	for (size_t i = 0; i + 2 < len && !rc;) {
		if ((uint8_t)s[i] == 0xE2 && (uint8_t)s[i + 1] == 0x96 && (uint8_t)s[i + 2] == 0x81) {
			rc = ag_buf_append(out, s + run, i - run);
			if (!rc)
				rc = ag_buf_putc(out, ' ');
			i += 3;
			run = i;
		} else {
			i++;
		}
	}
	return rc ? rc : ag_buf_append(out, s + run, len - run);
}

int engine_token_piece(const engine_tokenizer *t, int32_t id, bool render_special, ag_buf *out)
{
	if (!t || id < 0 || (size_t)id >= t->n)
		return ag_error_set(AG_EINVAL, "token %d is outside the vocabulary", (int)id);
	const char *s = t->text[id];
	size_t len = t->len[id];
	switch (t->type[id]) {
	case ENGINE_TOKEN_CONTROL: return render_special ? ag_buf_append(out, s, len) : 0;
	case ENGINE_TOKEN_USER_DEFINED: return ag_buf_append(out, s, len);
	case ENGINE_TOKEN_UNKNOWN: return render_special ? ag_buf_append(out, s, len) : 0;
	case ENGINE_TOKEN_UNUSED: return 0; /* as llama.cpp: suppressed */
	case ENGINE_TOKEN_BYTE:
		if (len == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' && hex_digit(s[3]) >= 0 &&
		    hex_digit(s[4]) >= 0)
			return ag_buf_putc(out, (char)(hex_digit(s[3]) * 16 + hex_digit(s[4])));
		return ag_buf_append(out, s, len);
	default: break;
	}
	if (t->kind == TOK_SPM)
		return spm_piece(s, len, out);
	return tok_bpe_piece(t, id, out);
}

void engine_detok_init(engine_detok *d, const engine_tokenizer *t, bool render_special)
{
	memset(d, 0, sizeof *d);
	d->tok = t;
	d->render_special = render_special;
	d->first = true;
}

/* Bytes at the end of p[0..n) that begin a UTF-8 character still missing continuation bytes. */
static size_t incomplete_tail(const uint8_t *p, size_t n)
{
	for (size_t k = 1; k <= 3 && k <= n; k++) {
		uint8_t b = p[n - k];
		if ((b & 0xC0) == 0x80)
			continue;
		size_t need = (b >= 0xC2 && b <= 0xDF)   ? 2
			      : (b >= 0xE0 && b <= 0xEF) ? 3
			      : (b >= 0xF0 && b <= 0xF4) ? 4
							 : 0;
		return need > k ? k : 0;
	}
	return 0;
}

int engine_detok_push(engine_detok *d, int32_t id, ag_buf *out)
{
	const engine_tokenizer *t = d->tok;
	if (!t || id < 0 || (size_t)id >= t->n)
		return ag_error_set(AG_EINVAL, "token %d is outside the vocabulary", (int)id);
	if (id == t->bos && !d->render_special)
		return 0; /* skipped without ending the "first token" state */
	size_t start = out->len;
	int rc = ag_buf_append(out, d->held, d->n_held);
	if (rc)
		return rc;
	size_t piece_at = out->len;
	if ((rc = engine_token_piece(t, id, d->render_special, out))) {
		out->len = start;
		if (out->data)
			out->data[start] = 0;
		return rc;
	}
	if (d->first && t->add_space_prefix && out->len > piece_at && out->data[piece_at] == ' ') {
		memmove(out->data + piece_at, out->data + piece_at + 1, out->len - piece_at - 1);
		out->len--;
	}
	d->first = false;
	size_t tail = incomplete_tail((const uint8_t *)out->data + start, out->len - start);
	memcpy(d->held, out->data + out->len - tail, tail);
	d->n_held = tail;
	out->len -= tail;
	if (out->data)
		out->data[out->len] = 0;
	return 0;
}

int engine_detok_finish(engine_detok *d, ag_buf *out)
{
	int rc = ag_buf_append(out, d->held, d->n_held);
	if (!rc)
		d->n_held = 0;
	return rc;
}

int engine_detokenize(const engine_tokenizer *t, const int32_t *ids, size_t n, bool render_special,
		      char **out, size_t *len_out)
{
	*out = NULL;
	if (len_out)
		*len_out = 0;
	if (!t || (!ids && n))
		return ag_error_set(AG_EINVAL, "detokenize: no tokenizer or tokens");
	engine_detok d;
	engine_detok_init(&d, t, render_special);
	ag_buf b = AG_BUF_INIT;
	int rc = ag_buf_reserve(&b, n * 4 + 1);
	for (size_t i = 0; i < n && !rc; i++)
		rc = engine_detok_push(&d, ids[i], &b);
	if (!rc)
		rc = engine_detok_finish(&d, &b);
	if (rc) {
		ag_buf_free(&b);
		return rc;
	}
	size_t len = b.len;
	char *s = ag_buf_detach(&b, NULL);
	if (!s)
		return ag_error_set(AG_ENOMEM, "detokenize: out of memory");
	*out = s;
	if (len_out)
		*len_out = len;
	return 0;
}
