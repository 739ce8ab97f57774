/*
 * engine: hybrid Transformer/Mamba (Jamba) inference on GGUF files, with the
 * tokenizer, chat templates and sampling that turn text into tokens and
 * logits back into text. This is the module's one public header.
 */
#ifndef ENGINE_ENGINE_H
#define ENGINE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* =====================================================================
 * Tokenizer, chat templates and sampling
 * (engine/tokenizer*.c, engine/chat.c, engine/sample.c)
 * ===================================================================== */

/* Token types as GGUF's tokenizer.ggml.token_type stores them. */
enum {
	ENGINE_TOKEN_NORMAL = 1,
	ENGINE_TOKEN_UNKNOWN = 2,
	ENGINE_TOKEN_CONTROL = 3,      /* <|startoftext|>, <|im_end|> in AI21 vocabularies */
	ENGINE_TOKEN_USER_DEFINED = 4, /* <think>, <tool_call> in SentencePiece user symbols */
	ENGINE_TOKEN_UNUSED = 5,
	ENGINE_TOKEN_BYTE = 6 /* <0x00> .. <0xFF> byte fallback */
};

typedef struct engine_tokenizer engine_tokenizer;

/* The vocabulary as GGUF metadata describes it. Everything is copied by
 * engine_tokenizer_create, so the caller may free it afterwards. Call
 * engine_vocab_desc_init first: ids < 0 mean "none". */
typedef struct engine_vocab_desc {
	const char *model;         /* tokenizer.ggml.model: "llama" (SentencePiece BPE) or "gpt2" (byte BPE) */
	const char *pre;           /* tokenizer.ggml.pre: gpt2 pre-tokenizer ("default", "llama3", ...); may be NULL */
	const char *const *tokens; /* tokenizer.ggml.tokens, n_tokens NUL-terminated strings */
	const float *scores;       /* tokenizer.ggml.scores (n_tokens) or NULL */
	const int32_t *types;      /* tokenizer.ggml.token_type (n_tokens) or NULL: all normal */
	size_t n_tokens;
	const char *const *merges; /* tokenizer.ggml.merges ("a b", rank = index); gpt2 only */
	size_t n_merges;
	int32_t bos_id, eos_id, unk_id, pad_id; /* tokenizer.ggml.*_token_id, -1 = none */
	bool add_bos, add_eos;                  /* tokenizer.ggml.add_bos_token / add_eos_token */
	bool add_space_prefix;                  /* tokenizer.ggml.add_space_prefix (SPM; default true) */
	const char *chat_template;              /* tokenizer.chat_template or NULL */
} engine_vocab_desc;

/* Sets ids to -1, add_bos and add_space_prefix to true (the SPM defaults), the rest to zero. */
void engine_vocab_desc_init(engine_vocab_desc *d);

/* Builds a tokenizer. AG_EINVAL for an unknown model, an empty vocabulary, ids out of range,
 * a gpt2 vocabulary without merges or a merge naming an unknown token. */
int engine_tokenizer_create(engine_tokenizer **out, const engine_vocab_desc *desc);
void engine_tokenizer_free(engine_tokenizer *t);

size_t engine_tokenizer_n_vocab(const engine_tokenizer *t);
/* The token's string as stored in the vocabulary (borrowed), NULL if out of range. */
const char *engine_token_text(const engine_tokenizer *t, int32_t id);
int32_t engine_token_type(const engine_tokenizer *t, int32_t id); /* 0 if out of range */
/* The id of a token whose vocabulary string is exactly text, or -1. */
int32_t engine_token_lookup(const engine_tokenizer *t, const char *text);
int32_t engine_token_bos(const engine_tokenizer *t); /* -1 = none */
int32_t engine_token_eos(const engine_tokenizer *t);
int32_t engine_token_unk(const engine_tokenizer *t);
int32_t engine_token_pad(const engine_tokenizer *t);
/* True for tokens that end a generation: EOS, <|im_end|>, <|endoftext|>, <|eom|>, <|eot_id|>. */
bool engine_token_is_eog(const engine_tokenizer *t, int32_t id);
/* The chat template string given at creation (borrowed), or NULL. */
const char *engine_tokenizer_chat_template(const engine_tokenizer *t);

/* Text (any bytes, need not be valid UTF-8) to token ids; *out is the caller's (ag_free).
 * add_special: prepend BOS / append EOS as the vocabulary's add_bos/add_eos say.
 * parse_special: control and user-defined tokens written in the text ("<|im_end|>")
 * become their single token; when false they are never matched and are tokenized
 * as ordinary text (so untrusted text cannot forge them). */
int engine_tokenize(const engine_tokenizer *t, const char *text, size_t len, bool add_special,
		    bool parse_special, int32_t **out, size_t *n_out);

/* Appends the bytes of one token to out: U+2581 becomes a space (SPM), <0xNN> becomes
 * the raw byte, byte-level BPE characters map back to bytes. Control tokens append
 * their text only when render_special, otherwise nothing. AG_EINVAL for an id out of range. */
int engine_token_piece(const engine_tokenizer *t, int32_t id, bool render_special, ag_buf *out);

/* Tokens to text; *out (NUL-terminated, caller's) holds exactly the bytes of the pieces,
 * except that with an SPM vocabulary that adds a space prefix, the leading space
 * of the first piece is dropped (as the prefix was added by engine_tokenize).
 * BOS is skipped unless render_special. tokenize then detokenize gives the input back. */
int engine_detokenize(const engine_tokenizer *t, const int32_t *ids, size_t n, bool render_special,
		      char **out, size_t *len_out);

/* Streaming detokenizer: feed tokens one by one and get text that never ends in the
 * middle of a UTF-8 character; a character split across tokens (byte-fallback
 * tokens) comes out whole with the token that completes it. Bytes that can never
 * become valid UTF-8 are passed through, so the concatenated output of push and
 * finish equals engine_detokenize of the same tokens byte for byte. */
typedef struct engine_detok {
	const engine_tokenizer *tok;
	bool render_special;
	bool first; /* no text emitted yet (for the space-prefix rule) */
	uint8_t held[4];
	size_t n_held;
} engine_detok;

void engine_detok_init(engine_detok *d, const engine_tokenizer *t, bool render_special);
int engine_detok_push(engine_detok *d, int32_t id, ag_buf *out);
/* Appends whatever is still held (an incomplete character at the very end). */
int engine_detok_finish(engine_detok *d, ag_buf *out);

/* ---- chat templates ---- */

typedef enum engine_chat_format {
	ENGINE_CHAT_CHATML = 0, /* Jamba Reasoning 3B / agentd (models/FORMAT.md), the default */
	ENGINE_CHAT_JAMBA15 = 1 /* Jamba 1.5 / 1.6 / 1.7: <|bom|><|role|> content<|eom|> */
} engine_chat_format;

/* Which known template a tokenizer.chat_template string is; NULL or unknown gives ChatML. */
engine_chat_format engine_chat_detect(const char *chat_template);
const char *engine_chat_format_name(engine_chat_format f); /* "chatml", "jamba15" */

typedef struct engine_chat_options {
	engine_chat_format format;
	bool add_bos;               /* begin with "<|startoftext|>" */
	bool add_generation_prompt; /* end with the opened assistant turn */
	bool think;                 /* ChatML: thinking instruction and "<think>\n" generation prompt */
} engine_chat_options;

/* Sets ChatML, add_bos, add_generation_prompt and think to true. */
void engine_chat_options_init(engine_chat_options *o);

/* Renders OpenAI-shaped messages into prompt text (caller's, NUL-terminated).
 * messages: [{"role": "system"|"user"|"assistant"|"tool", "content": "..." or null,
 *             "reasoning_content"?: "...",
 *             "tool_calls"?: [{"name", "arguments"} or {"function": {"name", "arguments"}}]}]
 *   (arguments an object or a JSON string).
 * tools: NULL or [{"type": "function", "function": {...}}] or bare function objects.
 * JSON inside the prompt is written as Python's json.dumps does by default
 * (", " and ": " separators, non-ASCII escaped). AG_EINVAL naming the bad message. */
int engine_chat_render(char **out, size_t *len_out, const engine_chat_options *opt, const json_t *messages,
		       const json_t *tools);

/* Splits generated text into reasoning, answer and tool calls. The reasoning is the text
 * of a <think> block (or everything before a lone "</think>", since the generation prompt
 * opens the block); tool calls are the <tool_call>{JSON}</tool_call> blocks (ChatML) or
 * the array in <tool_calls>[...]</tool_calls> (Jamba 1.5). */
typedef struct engine_chat_parsed {
	char *reasoning;    /* NULL when there was none */
	char *content;      /* the rest, trimmed; never NULL */
	json_t *tool_calls; /* [{"name": ..., "arguments": {...}}], empty array when none */
	int n_bad_calls;    /* tool-call blocks whose JSON did not parse or lacked a name */
} engine_chat_parsed;

int engine_chat_parse(engine_chat_parsed **out, const char *text, size_t len);
void engine_chat_parsed_free(engine_chat_parsed *p);

/* ---- sampling ---- */

typedef struct engine_sampler_params {
	float temperature;    /* <= 0: greedy */
	int32_t top_k;        /* <= 0: off */
	float top_p;          /* >= 1: off */
	float min_p;          /* <= 0: off; keeps tokens with p >= min_p * p_max */
	float repeat_penalty; /* 1: off; positive logits divided, negative multiplied */
	int32_t repeat_last_n; /* window of recent accepted tokens the penalty looks at */
	uint64_t seed;
} engine_sampler_params;

/* temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat_penalty 1, repeat_last_n 64, seed 0. */
void engine_sampler_params_init(engine_sampler_params *p);

typedef struct engine_sampler engine_sampler;

int engine_sampler_new(engine_sampler **out, const engine_sampler_params *p);
void engine_sampler_free(engine_sampler *s);
/* Picks a token from logits (n_vocab floats; not modified). Deterministic for a seed and
 * the same sequence of calls. AG_EINVAL when n_vocab is 0 or every logit is NaN/-inf. */
int engine_sample(engine_sampler *s, const float *logits, size_t n_vocab, int32_t *token);
/* Records a token as part of the sequence (prompt or generated) for the repetition penalty. */
void engine_sampler_accept(engine_sampler *s, int32_t token);
/* Forgets accepted tokens and reseeds. */
void engine_sampler_reset(engine_sampler *s, uint64_t seed);

/* ===================== end of tokenizer, chat, sampling ===================== */

#endif
