/* Unit tests of the tokenizer: small SentencePiece and byte-level BPE vocabularies built
 * here, hand-computed encodings, exact round trips of arbitrary text and bytes, special
 * tokens only when asked, streaming without split characters, bad vocabularies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

/* ------------------------------------------------------------ vocabularies */

typedef struct vocab {
	const char *tokens[600];
	float scores[600];
	int32_t types[600];
	size_t n;
	const char *merges[64];
	size_t n_merges;
	char byte_names[256][8];
} vocab;

static int32_t add(vocab *v, const char *text, float score, int32_t type)
{
	v->tokens[v->n] = text;
	v->scores[v->n] = score;
	v->types[v->n] = type;
	return (int32_t)v->n++;
}

/* SPM ids: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then pieces and specials. */
enum { SPM_BYTE0 = 3 };
static int32_t id_lt_bar, id_hello, id_sp_hello, id_sp_world, id_h, id_sp, id_im_start, id_im_end, id_think,
	id_e_acute;

static void spm_vocab(vocab *v)
{
	memset(v, 0, sizeof *v);
	add(v, "<unk>", 0, ENGINE_TOKEN_UNKNOWN);
	add(v, "<s>", 0, ENGINE_TOKEN_CONTROL);
	add(v, "</s>", 0, ENGINE_TOKEN_CONTROL);
	for (int b = 0; b < 256; b++) {
		snprintf(v->byte_names[b], sizeof v->byte_names[b], "<0x%02X>", b);
		add(v, v->byte_names[b], 0, ENGINE_TOKEN_BYTE);
	}
	id_sp = add(v, "\xe2\x96\x81", -1, ENGINE_TOKEN_NORMAL);
	static const char *const chars[] = {"e", "l", "o", "w", "r", "d", NULL};
	id_h = add(v, "h", -2, ENGINE_TOKEN_NORMAL);
	for (int i = 0; chars[i]; i++)
		add(v, chars[i], -2, ENGINE_TOKEN_NORMAL);
	id_e_acute = add(v, "\xc3\xa9", -2, ENGINE_TOKEN_NORMAL);
	add(v, "ll", -3, ENGINE_TOKEN_NORMAL);
	add(v, "he", -4, ENGINE_TOKEN_NORMAL);
	add(v, "llo", -5, ENGINE_TOKEN_NORMAL);
	id_hello = add(v, "hello", -6, ENGINE_TOKEN_NORMAL);
	id_sp_hello = add(v, "\xe2\x96\x81hello", -7, ENGINE_TOKEN_NORMAL);
	add(v, "or", -8, ENGINE_TOKEN_NORMAL);
	add(v, "ld", -9, ENGINE_TOKEN_NORMAL);
	add(v, "\xe2\x96\x81w", -10, ENGINE_TOKEN_NORMAL);
	add(v, "orld", -11, ENGINE_TOKEN_NORMAL);
	id_sp_world = add(v, "\xe2\x96\x81world", -12, ENGINE_TOKEN_NORMAL);
	/* Specials written as text must not be reachable by merging ordinary text. */
	id_lt_bar = add(v, "<|", -0.5f, ENGINE_TOKEN_NORMAL);
	id_im_start = add(v, "<|im_start|>", -1000, ENGINE_TOKEN_CONTROL);
	id_im_end = add(v, "<|im_end|>", -1000, ENGINE_TOKEN_CONTROL);
	id_think = add(v, "<think>", 0, ENGINE_TOKEN_USER_DEFINED);
}

static engine_tokenizer *spm_tok(bool space_prefix)
{
	static vocab v;
	spm_vocab(&v);
	engine_vocab_desc d;
	engine_vocab_desc_init(&d);
	d.model = "llama";
	d.tokens = v.tokens;
	d.scores = v.scores;
	d.types = v.types;
	d.n_tokens = v.n;
	d.unk_id = 0;
	d.bos_id = 1;
	d.eos_id = 2;
	d.add_space_prefix = space_prefix;
	engine_tokenizer *t;
	assert_int_equal(engine_tokenizer_create(&t, &d), 0);
	return t;
}

/* GPT-2: ids 0..255 are the byte stand-ins of bytes 0..255, then merged words. */
static char stand_in[256][3];
static int32_t id_g_hello, id_g_world, id_g_endoftext;

static void gpt2_vocab(vocab *v)
{
	memset(v, 0, sizeof *v);
	int extra = 0;
	for (int b = 0; b < 256; b++) {
		bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
		int cp = printable ? b : 256 + extra++;
		if (cp < 0x80) {
			stand_in[b][0] = (char)cp;
			stand_in[b][1] = 0;
		} else {
			stand_in[b][0] = (char)(0xC0 | (cp >> 6));
			stand_in[b][1] = (char)(0x80 | (cp & 0x3F));
			stand_in[b][2] = 0;
		}
		add(v, stand_in[b], 0, ENGINE_TOKEN_NORMAL);
	}
	static const char *const merged[] = {"he", "ll",          "hell", "hello",         "\xc4\xa0w",
					     "or", "\xc4\xa0wor", "ld",   "\xc4\xa0world", NULL};
	static const char *const merges[] = {"h e", "l l",          "he ll", "hell o",         "\xc4\xa0 w",
					     "o r", "\xc4\xa0w or", "l d",   "\xc4\xa0wor ld", NULL};
	for (int i = 0; merged[i]; i++)
		add(v, merged[i], 0, ENGINE_TOKEN_NORMAL);
	for (int i = 0; merges[i]; i++)
		v->merges[v->n_merges++] = merges[i];
	id_g_hello = 256 + 3;
	id_g_world = 256 + 8;
	id_g_endoftext = add(v, "<|endoftext|>", 0, ENGINE_TOKEN_CONTROL);
}

static engine_tokenizer *gpt2_tok(const char *pre)
{
	static vocab v;
	gpt2_vocab(&v);
	engine_vocab_desc d;
	engine_vocab_desc_init(&d);
	d.model = "gpt2";
	d.pre = pre;
	d.tokens = v.tokens;
	d.types = v.types;
	d.n_tokens = v.n;
	d.merges = v.merges;
	d.n_merges = v.n_merges;
	d.eos_id = id_g_endoftext;
	d.add_bos = false;
	engine_tokenizer *t;
	assert_int_equal(engine_tokenizer_create(&t, &d), 0);
	return t;
}

static void expect_ids(const engine_tokenizer *t, const char *text, bool parse_special, const int32_t *want,
		       size_t n_want)
{
	int32_t *ids;
	size_t n;
	assert_int_equal(engine_tokenize(t, text, strlen(text), false, parse_special, &ids, &n), 0);
	if (n != n_want) {
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, "  got[%zu] = %d %s\n", i, ids[i], engine_token_text(t, ids[i]));
	}
	assert_int_equal(n, n_want);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ids[i], want[i]);
	ag_free(ids);
}

static void expect_round_trip(const engine_tokenizer *t, const char *text, size_t len)
{
	int32_t *ids;
	size_t n, out_len;
	char *out;
	assert_int_equal(engine_tokenize(t, text, len, true, false, &ids, &n), 0);
	assert_int_equal(engine_detokenize(t, ids, n, false, &out, &out_len), 0);
	assert_int_equal(out_len, len);
	assert_memory_equal(out, text, len);
	ag_free(out);
	ag_free(ids);
}

/* ------------------------------------------------------------ SPM tests */

static void test_spm_known_encodings(void **state)
{
	(void)state;
	engine_tokenizer *t = spm_tok(false);
	/* Merges by score: ll, he, llo, hello, or, ld, ▁w, orld, ▁world. */
	expect_ids(t, "hello world", false, (int32_t[]){id_hello, id_sp_world}, 2);
	/* "i" has no piece: byte fallback; so does the newline. */
	expect_ids(t, "hi\n", false, (int32_t[]){id_h, SPM_BYTE0 + 'i', SPM_BYTE0 + '\n'}, 3);
	/* A 4-byte character with no piece becomes its four byte tokens; é is a piece. */
	expect_ids(t, "\xf0\x9f\x98\x80\xc3\xa9", false,
		   (int32_t[]){SPM_BYTE0 + 0xF0, SPM_BYTE0 + 0x9F, SPM_BYTE0 + 0x98, SPM_BYTE0 + 0x80,
			       id_e_acute},
		   5);
	/* Equal scores: the leftmost pair merges first, as SentencePiece and llama.cpp do. */
	int32_t ll = engine_token_lookup(t, "ll"), l = engine_token_lookup(t, "l");
	expect_ids(t, "lll", false, (int32_t[]){ll, l}, 2);
	expect_ids(t, "lllll", false, (int32_t[]){ll, ll, l}, 3);
	/* Two spaces: the first is the ▁ piece, the second starts ▁world. */
	expect_ids(t, "hello  world", false, (int32_t[]){id_hello, id_sp, id_sp_world}, 3);
	/* A literal U+2581 is spelled in bytes, so it does not come back as a space. */
	expect_ids(t, "h\xe2\x96\x81", false,
		   (int32_t[]){id_h, SPM_BYTE0 + 0xE2, SPM_BYTE0 + 0x96, SPM_BYTE0 + 0x81}, 4);
	engine_tokenizer_free(t);

	t = spm_tok(true);
	expect_ids(t, "hello world", false, (int32_t[]){id_sp_hello, id_sp_world}, 2);
	int32_t *ids;
	size_t n;
	assert_int_equal(engine_tokenize(t, "hello", 5, true, false, &ids, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], 1); /* BOS: add_bos defaults to true */
	assert_int_equal(ids[1], id_sp_hello);
	ag_free(ids);
	assert_int_equal(engine_tokenize(t, "", 0, false, false, &ids, &n), 0);
	assert_int_equal(n, 0);
	ag_free(ids);
	engine_tokenizer_free(t);
}

static void test_spm_special_tokens(void **state)
{
	(void)state;
	engine_tokenizer *t = spm_tok(false);
	const char *text = "<|im_start|>hello<think><|im_end|>";
	expect_ids(t, text, true, (int32_t[]){id_im_start, id_hello, id_think, id_im_end}, 4);
	/* Not asked: no special id may appear, and the text comes back unchanged. */
	int32_t *ids;
	size_t n;
	assert_int_equal(engine_tokenize(t, text, strlen(text), false, false, &ids, &n), 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_not_equal(ids[i], id_im_start);
		assert_int_not_equal(ids[i], id_im_end);
		assert_int_not_equal(ids[i], id_think);
	}
	ag_free(ids);
	expect_round_trip(t, text, strlen(text));
	/* A partial special is plain text. */
	expect_ids(t, "<|im_sta", true,
		   (int32_t[]){id_lt_bar, SPM_BYTE0 + 'i', SPM_BYTE0 + 'm', SPM_BYTE0 + '_', SPM_BYTE0 + 's',
			       SPM_BYTE0 + 't', SPM_BYTE0 + 'a'},
		   7);
	assert_int_equal(engine_token_lookup(t, "<|im_end|>"), id_im_end);
	assert_int_equal(engine_token_lookup(t, "<|nope|>"), -1);
	assert_true(engine_token_is_eog(t, 2));
	assert_true(engine_token_is_eog(t, id_im_end));
	assert_false(engine_token_is_eog(t, id_hello));
	assert_int_equal(engine_token_type(t, id_think), ENGINE_TOKEN_USER_DEFINED);
	engine_tokenizer_free(t);
}

static void test_spm_pieces(void **state)
{
	(void)state;
	engine_tokenizer *t = spm_tok(true);
	ag_buf b = AG_BUF_INIT;
	assert_int_equal(engine_token_piece(t, id_sp_hello, false, &b), 0);
	assert_int_equal(engine_token_piece(t, SPM_BYTE0 + 0x41, false, &b), 0);
	assert_int_equal(engine_token_piece(t, id_im_end, false, &b), 0); /* control: hidden */
	assert_string_equal(b.data, " helloA");
	assert_int_equal(engine_token_piece(t, id_im_end, true, &b), 0);
	assert_int_equal(engine_token_piece(t, id_think, false, &b), 0); /* user-defined: shown */
	assert_string_equal(b.data, " helloA<|im_end|><think>");
	ag_buf_clear(&b);
	assert_int_equal(engine_token_piece(t, 0, false, &b), 0); /* unknown: hidden unless asked */
	assert_int_equal(b.len, 0);
	assert_int_equal(engine_token_piece(t, 0, true, &b), 0);
	assert_string_equal(b.data, "<unk>");
	assert_int_equal(engine_token_piece(t, 100000, false, &b), AG_EINVAL);
	assert_int_equal(engine_token_piece(t, -1, false, &b), AG_EINVAL);
	ag_buf_free(&b);
	/* Detokenize drops the space prefix tokenize added, and BOS unless asked. */
	int32_t ids[] = {1, id_sp_hello, id_sp_world};
	char *s;
	size_t len;
	assert_int_equal(engine_detokenize(t, ids, 3, false, &s, &len), 0);
	assert_string_equal(s, "hello world");
	ag_free(s);
	assert_int_equal(engine_detokenize(t, ids, 3, true, &s, &len), 0);
	assert_string_equal(s, "<s> hello world");
	ag_free(s);
	assert_int_equal(engine_detokenize(t, ids, 0, false, &s, &len), 0);
	assert_string_equal(s, "");
	ag_free(s);
	engine_tokenizer_free(t);
}

/* --------------------------------------------------------- random text */

static uint64_t rng = 12345;
static uint32_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static size_t put_utf8(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Random valid UTF-8 mixing ASCII words, spaces, newlines, accents, combining marks,
 * CJK, emoji (4 bytes), U+2581 and special-token look-alikes. */
static size_t random_utf8(char *out, size_t max_chars)
{
	static const uint32_t picks[] = {'h',    'e',    'l',     'o',      ' ', ' ',  '\n',   '\t',
					 'w',    'r',    'd',     '<',      '|', '>',  0xE9,   0x301,
					 0x2581, 0x4E2D, 0x1F600, 0x10FFFF, 0x0, 0x7F, 0xFEFF, 0x1F468};
	size_t len = 0, n = next_rand() % max_chars;
	for (size_t i = 0; i < n; i++) {
		uint32_t cp = (next_rand() % 4 == 0) ? 0x20 + next_rand() % 0x5F : picks[next_rand() % 24];
		if (next_rand() % 16 == 0) {
			cp = next_rand() % 0x110000;
			if (cp >= 0xD800 && cp < 0xE000)
				cp = 0x41;
		}
		len += put_utf8(out + len, cp);
	}
	if (next_rand() % 8 == 0) {
		memcpy(out + len, "<|im_end|>", 10);
		len += 10;
	}
	return len;
}

static void test_round_trip_utf8(void **state)
{
	(void)state;
	engine_tokenizer *toks[] = {spm_tok(false), spm_tok(true), gpt2_tok(NULL), gpt2_tok("llama3"),
				    gpt2_tok("qwen2")};
	char text[4 * 200 + 16];
	for (int round = 0; round < 400; round++) {
		size_t len = random_utf8(text, 200);
		for (size_t k = 0; k < sizeof toks / sizeof toks[0]; k++)
			expect_round_trip(toks[k], text, len);
	}
	for (size_t k = 0; k < sizeof toks / sizeof toks[0]; k++)
		engine_tokenizer_free(toks[k]);
}

static void test_round_trip_bytes(void **state)
{
	(void)state;
	engine_tokenizer *toks[] = {spm_tok(false), spm_tok(true), gpt2_tok(NULL), gpt2_tok("llama3")};
	char text[300];
	for (int round = 0; round < 400; round++) {
		size_t len = next_rand() % sizeof text;
		for (size_t i = 0; i < len; i++)
			text[i] = (char)next_rand();
		/* Truncated and overlong sequences, stray continuation bytes, 0xFF. */
		if (len > 4 && round % 3 == 0)
			memcpy(text + len - 3, "\xf0\x9f\x98", 3);
		for (size_t k = 0; k < sizeof toks / sizeof toks[0]; k++)
			expect_round_trip(toks[k], text, len);
	}
	expect_round_trip(toks[0], "\xc0\x80 \xed\xa0\x80 \xff\xfe \x80", 12);
	expect_round_trip(toks[2], "\xc0\x80 \xed\xa0\x80 \xff\xfe \x80", 12);
	for (size_t k = 0; k < sizeof toks / sizeof toks[0]; k++)
		engine_tokenizer_free(toks[k]);
}

/* Word-by-word merging (used when no piece joins a character to a following space) gives
 * the same ids as merging the whole run: a piece "\u01c2\u2581" that never matches turns
 * it off in a second tokenizer, which must agree with the first on every text. */
static void test_spm_word_split_equivalence(void **state)
{
	(void)state;
	static vocab v;
	spm_vocab(&v);
	engine_tokenizer *split = spm_tok(false), *whole;
	add(&v, "\xc7\x82\xe2\x96\x81", -1, ENGINE_TOKEN_NORMAL);
	engine_vocab_desc d;
	engine_vocab_desc_init(&d);
	d.tokens = v.tokens;
	d.scores = v.scores;
	d.types = v.types;
	d.n_tokens = v.n;
	d.unk_id = 0;
	d.add_space_prefix = false;
	assert_int_equal(engine_tokenizer_create(&whole, &d), 0);
	char text[4 * 200 + 16];
	for (int round = 0; round < 300; round++) {
		size_t len = random_utf8(text, 200);
		int32_t *a, *b;
		size_t na, nb;
		assert_int_equal(engine_tokenize(split, text, len, false, false, &a, &na), 0);
		assert_int_equal(engine_tokenize(whole, text, len, false, false, &b, &nb), 0);
		assert_int_equal(na, nb);
		assert_memory_equal(a, b, na * sizeof *a);
		ag_free(a);
		ag_free(b);
	}
	/* and the piece itself is used where it fits */
	expect_ids(whole, "\xc7\x82 ", false, (int32_t[]){(int32_t)v.n - 1}, 1);
	engine_tokenizer_free(split);
	engine_tokenizer_free(whole);
}

/* ------------------------------------------------------------ streaming */

/* Length of the longest prefix of s that is whole UTF-8 characters (lenient about ranges). */
static bool ends_whole(const char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = (uint8_t)s[i];
		size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
		if (i + n > len)
			return false;
		i += n;
	}
	return true;
}

static void test_streaming(void **state)
{
	(void)state;
	engine_tokenizer *t = spm_tok(true);
	/* The emoji and CJK fall back to bytes: each token carries part of a character. */
	const char *text = "hello \xf0\x9f\x98\x80\xe4\xb8\xad w\xc3\xa9";
	int32_t *ids;
	size_t n;
	assert_int_equal(engine_tokenize(t, text, strlen(text), true, false, &ids, &n), 0);
	engine_detok d;
	engine_detok_init(&d, t, false);
	ag_buf out = AG_BUF_INIT;
	size_t prev = 0;
	int grew_late = 0;
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(engine_detok_push(&d, ids[i], &out), 0);
		assert_true(ends_whole(out.data ? out.data : "", out.len));
		if (i + 1 < n && out.len == prev)
			grew_late++; /* a partial character was held back */
		prev = out.len;
	}
	assert_true(grew_late >= 4);
	assert_int_equal(engine_detok_finish(&d, &out), 0);
	assert_int_equal(out.len, strlen(text));
	assert_memory_equal(out.data, text, out.len);
	ag_buf_free(&out);
	ag_free(ids);

	/* Invalid bytes still come out, so the stream equals engine_detokenize. */
	const char bad[] = "a\xe4\xb8 \xf0\x9f";
	assert_int_equal(engine_tokenize(t, bad, sizeof bad - 1, false, false, &ids, &n), 0);
	engine_detok_init(&d, t, false);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(engine_detok_push(&d, ids[i], &out), 0);
	assert_int_equal(out.len, sizeof bad - 3); /* the trailing \xf0\x9f is held */
	assert_int_equal(engine_detok_finish(&d, &out), 0);
	assert_int_equal(out.len, sizeof bad - 1);
	assert_memory_equal(out.data, bad, sizeof bad - 1);
	assert_int_equal(engine_detok_push(&d, -5, &out), AG_EINVAL);
	ag_buf_free(&out);
	ag_free(ids);
	engine_tokenizer_free(t);
}

/* ------------------------------------------------------------- GPT-2 BPE */

static void test_gpt2_known_encodings(void **state)
{
	(void)state;
	engine_tokenizer *t = gpt2_tok("default");
	expect_ids(t, "hello world", false, (int32_t[]){id_g_hello, id_g_world}, 2);
	/* "\s+(?!\S)" leaves the last space to the word: "hello", " ", " world". */
	expect_ids(t, "hello  world", false, (int32_t[]){id_g_hello, ' ', id_g_world}, 3);
	/* Contractions and digits split off; unmerged bytes are their own tokens. */
	expect_ids(t, "he's 42", false, (int32_t[]){256 + 0 /* he */, '\'', 's', ' ', '4', '2'}, 6);
	expect_ids(t, "\xc3\xa9", false, (int32_t[]){0xC3, 0xA9}, 2);
	expect_ids(t, "lll", false, (int32_t[]){256 + 1 /* ll */, 'l'}, 2); /* leftmost pair first */
	expect_ids(t, "hello<|endoftext|>", true, (int32_t[]){id_g_hello, id_g_endoftext}, 2);
	int32_t *ids;
	size_t n;
	assert_int_equal(engine_tokenize(t, "<|endoftext|>", 13, false, false, &ids, &n), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_not_equal(ids[i], id_g_endoftext);
	ag_free(ids);
	engine_tokenizer_free(t);
	/* llama3 splits digits in threes. */
	t = gpt2_tok("llama3");
	expect_ids(t, "12345", false, (int32_t[]){'1', '2', '3', '4', '5'}, 5);
	engine_tokenizer_free(t);
}

/* --------------------------------------------------------------- errors */

static void test_bad_vocabularies(void **state)
{
	(void)state;
	static vocab v;
	spm_vocab(&v);
	engine_vocab_desc d;
	engine_vocab_desc_init(&d);
	engine_tokenizer *t = (engine_tokenizer *)&d;
	assert_int_equal(engine_tokenizer_create(&t, &d), AG_EINVAL); /* no tokens */
	assert_null(t);
	d.tokens = v.tokens;
	d.n_tokens = v.n;
	d.bos_id = (int32_t)v.n;
	assert_int_equal(engine_tokenizer_create(&t, &d), AG_EINVAL);
	assert_non_null(strstr(ag_error_last(), "bos"));
	d.bos_id = 1;
	d.model = "bert";
	assert_int_equal(engine_tokenizer_create(&t, &d), AG_EUNSUPPORTED);
	d.model = "gpt2";
	assert_int_equal(engine_tokenizer_create(&t, &d), AG_EINVAL); /* no merges */
	const char *bad_merge[] = {"nospace"};
	d.merges = bad_merge;
	d.n_merges = 1;
	assert_int_equal(engine_tokenizer_create(&t, &d), AG_EINVAL);
	d.model = "llama";
	v.tokens[5] = NULL;
	assert_int_equal(engine_tokenizer_create(&t, &d), AG_EINVAL);
	/* A vocabulary without byte tokens or unk cannot spell everything: an error, not a crash. */
	const char *tiny[] = {"a", "b"};
	engine_vocab_desc_init(&d);
	d.tokens = tiny;
	d.n_tokens = 2;
	assert_int_equal(engine_tokenizer_create(&t, &d), 0);
	int32_t *ids;
	size_t n;
	assert_int_equal(engine_tokenize(t, "ac", 2, false, false, &ids, &n), AG_EINVAL);
	assert_null(ids);
	engine_tokenizer_free(t);
	engine_tokenizer_free(NULL);
	assert_null(engine_token_text(NULL, 0));
}

static void test_allocation_failures(void **state)
{
	(void)state;
	static vocab v;
	spm_vocab(&v);
	for (long k = 1; k < 400; k++) {
		ag_alloc_fail_after(k);
		engine_vocab_desc d;
		engine_vocab_desc_init(&d);
		d.tokens = v.tokens;
		d.scores = v.scores;
		d.types = v.types;
		d.n_tokens = v.n;
		engine_tokenizer *t;
		int rc = engine_tokenizer_create(&t, &d);
		if (rc) {
			assert_int_equal(rc, AG_ENOMEM);
			continue;
		}
		int32_t *ids;
		size_t n;
		rc = engine_tokenize(t, "hello world \xf0\x9f\x98\x80", 16, true, true, &ids, &n);
		if (!rc) {
			char *s;
			if (engine_detokenize(t, ids, n, false, &s, NULL) == 0)
				ag_free(s);
			ag_free(ids);
		}
		engine_tokenizer_free(t);
	}
	ag_alloc_fail_after(0);
	engine_tokenizer *t = gpt2_tok(NULL);
	for (long k = 1; k < 60; k++) {
		ag_alloc_fail_after(k);
		int32_t *ids;
		size_t n;
		if (engine_tokenize(t, "hello world, hello", 18, false, false, &ids, &n) == 0)
			ag_free(ids);
	}
	ag_alloc_fail_after(0);
	engine_tokenizer_free(t);
}

int main(void)
{
	ag_alloc_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spm_known_encodings), cmocka_unit_test(test_spm_special_tokens),
		cmocka_unit_test(test_spm_pieces),          cmocka_unit_test(test_round_trip_utf8),
		cmocka_unit_test(test_round_trip_bytes),    cmocka_unit_test(test_spm_word_split_equivalence),
		cmocka_unit_test(test_streaming),           cmocka_unit_test(test_gpt2_known_encodings),
		cmocka_unit_test(test_bad_vocabularies),    cmocka_unit_test(test_allocation_failures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
