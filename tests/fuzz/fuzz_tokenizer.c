/*
 * Fuzz harness for the tokenizer and the chat parser. The first input byte picks
 * what the rest is: text for fixed SentencePiece and byte-level BPE vocabularies
 * (tokenize must round-trip exactly, and the streaming detokenizer must agree
 * with the whole one: a mismatch aborts), a vocabulary of its own (one token
 * per line), generated text for engine_chat_parse, or JSON messages to render.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

static engine_tokenizer *spm[2], *bpe[2];

static const char *const pieces[] = {"\xe2\x96\x81",
				     "e",
				     "l",
				     "o",
				     "h",
				     "ll",
				     "he",
				     "llo",
				     "hello",
				     "\xe2\x96\x81hello",
				     "\xe2\x96\x81w",
				     "or",
				     "ld",
				     "orld",
				     "\xe2\x96\x81world",
				     "<|im_start|>",
				     "<|im_end|>",
				     "<think>",
				     NULL};

static void setup(void)
{
	static const char *tokens[600];
	static float scores[600];
	static int32_t types[600];
	static char names[256][8];
	size_t n = 0;
	tokens[n] = "<unk>", types[n++] = ENGINE_TOKEN_UNKNOWN;
	tokens[n] = "<s>", types[n++] = ENGINE_TOKEN_CONTROL;
	tokens[n] = "</s>", types[n++] = ENGINE_TOKEN_CONTROL;
	for (int b = 0; b < 256; b++) {
		snprintf(names[b], sizeof names[b], "<0x%02X>", b);
		tokens[n] = names[b], types[n++] = ENGINE_TOKEN_BYTE;
	}
	for (int i = 0; pieces[i]; i++) {
		tokens[n] = pieces[i];
		scores[n] = -(float)i;
		types[n++] = pieces[i][0] == '<' ? (pieces[i][1] == '|' ? ENGINE_TOKEN_CONTROL
									: ENGINE_TOKEN_USER_DEFINED)
						 : ENGINE_TOKEN_NORMAL;
	}
	engine_vocab_desc d;
	for (int k = 0; k < 2; k++) {
		engine_vocab_desc_init(&d);
		d.tokens = tokens;
		d.scores = scores;
		d.types = types;
		d.n_tokens = n;
		d.bos_id = 1;
		d.eos_id = 2;
		d.unk_id = 0;
		d.add_space_prefix = k == 1;
		if (engine_tokenizer_create(&spm[k], &d))
			abort();
	}
	/* Byte-level BPE: the 256 stand-ins, a few merges. */
	static char stand[256][3];
	static const char *btokens[300];
	int extra = 0;
	for (int b = 0; b < 256; b++) {
		bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
		int cp = printable ? b : 256 + extra++;
		if (cp < 0x80) {
			stand[b][0] = (char)cp;
		} else {
			stand[b][0] = (char)(0xC0 | (cp >> 6));
			stand[b][1] = (char)(0x80 | (cp & 0x3F));
		}
		btokens[b] = stand[b];
	}
	static const char *const merged[] = {"he", "ll", "hell", "hello", "\xc4\xa0w", "<|endoftext|>"};
	static const char *const merges[] = {"h e", "l l", "he ll", "hell o", "\xc4\xa0 w"};
	for (int i = 0; i < 6; i++)
		btokens[256 + i] = merged[i];
	static int32_t btypes[262];
	for (int i = 0; i < 262; i++)
		btypes[i] = i == 261 ? ENGINE_TOKEN_CONTROL : ENGINE_TOKEN_NORMAL;
	static const char *const pres[] = {"default", "llama3"};
	for (int k = 0; k < 2; k++) {
		engine_vocab_desc_init(&d);
		d.model = "gpt2";
		d.pre = pres[k];
		d.tokens = btokens;
		d.types = btypes;
		d.n_tokens = 262;
		d.merges = merges;
		d.n_merges = 5;
		d.eos_id = 261;
		d.add_bos = false;
		if (engine_tokenizer_create(&bpe[k], &d))
			abort();
	}
}

static void round_trip(const engine_tokenizer *t, const char *text, size_t len)
{
	int32_t *ids;
	size_t n;
	if (engine_tokenize(t, text, len, true, false, &ids, &n))
		return; /* only allocation failures may get here */
	char *out;
	size_t out_len;
	if (engine_detokenize(t, ids, n, false, &out, &out_len) == 0) {
		if (out_len != len || memcmp(out, text, len) != 0) {
			fprintf(stderr, "round trip mismatch\n");
			abort();
		}
		/* The stream, token by token, gives the same bytes. */
		engine_detok d;
		engine_detok_init(&d, t, false);
		ag_buf b = AG_BUF_INIT;
		for (size_t i = 0; i < n; i++)
			if (engine_detok_push(&d, ids[i], &b))
				abort();
		if (engine_detok_finish(&d, &b) || b.len != len || (len && memcmp(b.data, text, len) != 0)) {
			fprintf(stderr, "stream mismatch\n");
			abort();
		}
		ag_buf_free(&b);
		ag_free(out);
	}
	ag_free(ids);
	if (engine_tokenize(t, text, len, false, true, &ids, &n) == 0) {
		if (engine_detokenize(t, ids, n, true, &out, NULL) == 0)
			ag_free(out);
		ag_free(ids);
	}
}

/* One token per line; the first byte of a line (mod 7) is its type when it is a digit. */
static void own_vocabulary(const char *s, size_t len, bool gpt2)
{
	const char *tokens[256];
	char *copies[256];
	int32_t types[256];
	float scores[256];
	const char *merges[255];
	char *merge_text[255];
	size_t n = 0, n_merges = 0;
	for (size_t i = 0; i < len && n < 256;) {
		const char *e = memchr(s + i, '\n', len - i);
		size_t l = e ? (size_t)(e - (s + i)) : len - i;
		int32_t type = ENGINE_TOKEN_NORMAL;
		if (l > 1 && s[i] >= '1' && s[i] <= '6') {
			type = s[i] - '0';
			i++;
			l--;
		}
		copies[n] = ag_strndup(s + i, l);
		if (!copies[n])
			break;
		tokens[n] = copies[n];
		types[n] = type;
		scores[n] = (float)((int)(n * 7919 % 101) - 50);
		n++;
		i += l + 1;
	}
	for (size_t i = 0; i + 1 < n && n_merges < 255; i++) {
		size_t a = strlen(tokens[i]), b = strlen(tokens[i + 1]);
		char *m = ag_malloc(a + b + 2);
		if (!m)
			break;
		memcpy(m, tokens[i], a);
		m[a] = ' ';
		memcpy(m + a + 1, tokens[i + 1], b + 1);
		merge_text[n_merges] = m;
		merges[n_merges++] = m;
	}
	engine_vocab_desc d;
	engine_vocab_desc_init(&d);
	d.model = gpt2 ? "gpt2" : "llama";
	d.tokens = tokens;
	d.types = types;
	d.scores = scores;
	d.n_tokens = n;
	d.merges = merges;
	d.n_merges = n_merges;
	d.unk_id = n > 0 ? 0 : -1;
	engine_tokenizer *t;
	if (engine_tokenizer_create(&t, &d) == 0) {
		int32_t *ids;
		size_t k;
		if (engine_tokenize(t, s, len, true, true, &ids, &k) == 0) {
			char *out;
			if (engine_detokenize(t, ids, k, true, &out, NULL) == 0)
				ag_free(out);
			ag_free(ids);
		}
		engine_tokenizer_free(t);
	}
	for (size_t i = 0; i < n; i++)
		ag_free(copies[i]);
	for (size_t i = 0; i < n_merges; i++)
		ag_free(merge_text[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!spm[0]) {
		ag_alloc_init();
		setup();
	}
	if (size == 0)
		return 0;
	const char *s = (const char *)data + 1;
	size_t len = size - 1;
	switch (data[0] % 6) {
	case 0:
	case 1:
		for (int k = 0; k < 2; k++) {
			round_trip(spm[k], s, len);
			round_trip(bpe[k], s, len);
		}
		break;
	case 2: own_vocabulary(s, len, false); break;
	case 3: own_vocabulary(s, len, true); break;
	case 4: {
		engine_chat_parsed *p;
		if (engine_chat_parse(&p, s, len) == 0)
			engine_chat_parsed_free(p);
		break;
	}
	default: {
		json_t *m;
		if (ag_json_parse(&m, s, len) == 0) {
			char *out;
			engine_chat_options o;
			engine_chat_options_init(&o);
			o.format = (len & 1) ? ENGINE_CHAT_JAMBA15 : ENGINE_CHAT_CHATML;
			json_t *tools = json_is_object(m) ? json_object_get(m, "tools") : NULL;
			json_t *msgs = json_is_object(m) ? json_object_get(m, "messages") : m;
			if (engine_chat_render(&out, NULL, &o, msgs, tools) == 0)
				ag_free(out);
			json_decref(m);
		}
		break;
	}
	}
	return 0;
}
