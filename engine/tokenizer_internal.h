/*
 * Internal to engine/: the tokenizer's data structure, shared by the common
 * layer (tokenizer.c: vocabulary, special tokens, pieces, streaming), the
 * SentencePiece BPE encoder (tokenizer_spm.c) and the byte-level BPE encoder
 * (tokenizer_bpe.c). No other module includes this.
 */
#ifndef ENGINE_TOKENIZER_INTERNAL_H
#define ENGINE_TOKENIZER_INTERNAL_H

#include "engine/engine.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

enum { TOK_SPM = 1, TOK_BPE = 2 };

/* An open-addressing hash from nonzero 64-bit keys to int32 values: merge ranks keyed
 * by the id pair, and token ids keyed by string hash (where the lookup also compares
 * the string, so hash collisions cost a probe, never a wrong answer). */
typedef struct tok_map {
	uint64_t *keys; /* 0 = empty slot */
	int32_t *values;
	size_t mask;
} tok_map;

struct engine_tokenizer {
	int kind;
	size_t n;
	char **text;     /* (n) token strings, NUL-terminated */
	uint32_t *len;   /* (n) their lengths */
	float *score;    /* (n) */
	int32_t *type;   /* (n) */
	tok_map by_text; /* token string -> id */
	int32_t bos, eos, unk, pad;
	bool add_bos, add_eos, add_space_prefix;
	int32_t byte_token[256]; /* SPM: id of <0xNN>, or -1 */
	bool spm_word_split;     /* SPM: no normal piece has U+2581 after a non-U+2581 character */
	/* Control and user-defined tokens, grouped by first byte, longest first within a group. */
	int32_t *special;
	size_t n_special;
	uint32_t special_start[257]; /* special[special_start[b] .. special_start[b+1]) start with byte b */
	int32_t eog[8];
	size_t n_eog;
	char *chat_template;
	/* byte-level BPE only */
	tok_map merges;             /* hash of (left id, right id) -> rank */
	pcre2_code *pre;            /* pre-tokenizer */
	bool ignore_merges;         /* llama3: a word that is a token is taken whole */
	uint8_t byte_chars[256][3]; /* byte -> UTF-8 of its printable stand-in */
	uint8_t byte_chars_len[256];
	int16_t unbyte[324]; /* code point of a stand-in -> its byte, or -1 */
	pcre2_general_context *pcre_ctx;
};

uint64_t tok_hash(const void *data, size_t len);
int tok_map_init(tok_map *m, size_t capacity);
void tok_map_free(tok_map *m);
/* Exact-key map: inserts unless the key exists (the first insertion wins). */
void tok_map_put(tok_map *m, uint64_t key, int32_t value);
int32_t tok_map_get(const tok_map *m, uint64_t key); /* -1 if absent */

/* The id of the token whose string is exactly data[0..len), or -1. */
int32_t tok_find(const engine_tokenizer *t, const char *data, size_t len);

/* Length of the UTF-8 sequence a lead byte announces (1 for stray bytes). */
size_t tok_utf8_len(uint8_t lead);

/* Encoders: append the ids of one run of ordinary text (no special tokens) to out.
 * first_fragment: this run starts the text or follows a special token (SPM space prefix). */
int tok_spm_encode(const engine_tokenizer *t, const char *text, size_t len, bool space_prefix, int32_t **ids,
		   size_t *n, size_t *cap);
int tok_bpe_setup(engine_tokenizer *t, const engine_vocab_desc *d);
int tok_bpe_encode(const engine_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n,
		   size_t *cap);
/* Appends the bytes a byte-level BPE token stands for. */
int tok_bpe_piece(const engine_tokenizer *t, int32_t id, ag_buf *out);

/* Appends one id to a growable array. */
int tok_push(int32_t **ids, size_t *n, size_t *cap, int32_t id);

#endif
