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
	const char *model; /* tokenizer.ggml.model: "llama" (SentencePiece BPE) or "gpt2" (byte BPE) */
	const char *pre; /* tokenizer.ggml.pre: gpt2 pre-tokenizer ("default", "llama3", ...); may be NULL */
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

/* Builds a tokenizer. AG_EINVAL for an empty vocabulary, ids out of range or a gpt2
 * vocabulary without merges; AG_EUNSUPPORTED for another model. (gpt2 merges that name
 * strings which are not tokens are skipped: they could never apply.) */
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
 * parse_special: control, user-defined and unknown tokens written in the text
 * ("<|im_end|>") become their single token (longest match first); when false they are
 * never matched and are tokenized as ordinary text (so untrusted text cannot forge
 * them; llama.cpp would still match user-defined ones). With an SPM vocabulary that
 * adds a space prefix, it goes before the text and after each special token, as in
 * llama.cpp. Exact round trip: detokenize(tokenize(x, parse_special=false)) == x for
 * any bytes x when the vocabulary has byte tokens (SPM) or always (gpt2). */
int engine_tokenize(const engine_tokenizer *t, const char *text, size_t len, bool add_special,
		    bool parse_special, int32_t **out, size_t *n_out);

/* Appends the bytes of one token to out: U+2581 becomes a space (SPM), <0xNN> becomes
 * the raw byte, byte-level BPE characters map back to bytes. Control and unknown tokens
 * append their text only when render_special, unused ones nothing, user-defined ones
 * their text always (as llama.cpp). AG_EINVAL for an id out of range. */
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
 * the array in <tool_calls>[...]</tool_calls> (Jamba 1.5); the content is what is left,
 * cut at a stop token written as text (<|im_end|>, <|eom|>, <|endoftext|>). */
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
	float temperature;     /* <= 0: greedy */
	int32_t top_k;         /* <= 0: off */
	float top_p;           /* >= 1: off */
	float min_p;           /* <= 0: off; keeps tokens with p >= min_p * p_max */
	float repeat_penalty;  /* 1: off; positive logits divided, negative multiplied */
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

/* =====================================================================
 * Engine core: GGUF files, the Jamba model, the forward passes and the
 * sequence state (engine/gguf*.c, model.c, forward.c, kernels*.c,
 * threads.c, reference.c, state.c)
 * ===================================================================== */

/* ---- GGUF files (read through mmap, every offset and size checked) ---- */

/* GGUF metadata value types, as stored in the file. */
enum {
	ENGINE_GGUF_U8 = 0,
	ENGINE_GGUF_I8 = 1,
	ENGINE_GGUF_U16 = 2,
	ENGINE_GGUF_I16 = 3,
	ENGINE_GGUF_U32 = 4,
	ENGINE_GGUF_I32 = 5,
	ENGINE_GGUF_F32 = 6,
	ENGINE_GGUF_BOOL = 7,
	ENGINE_GGUF_STRING = 8,
	ENGINE_GGUF_ARRAY = 9,
	ENGINE_GGUF_U64 = 10,
	ENGINE_GGUF_I64 = 11,
	ENGINE_GGUF_F64 = 12
};

/* ggml tensor types the engine computes with (others are parsed, then refused at load). */
enum {
	ENGINE_TYPE_F32 = 0,
	ENGINE_TYPE_F16 = 1,
	ENGINE_TYPE_Q4_0 = 2,
	ENGINE_TYPE_Q8_0 = 8,
	ENGINE_TYPE_Q4_K = 12,
	ENGINE_TYPE_Q5_K = 13,
	ENGINE_TYPE_Q6_K = 14,
	ENGINE_TYPE_BF16 = 30
};

typedef struct engine_gguf engine_gguf;

typedef struct engine_gguf_tensor {
	const char *name; /* NUL-terminated copy */
	uint32_t type;    /* ggml type id */
	uint32_t n_dims;  /* 1..4 */
	uint64_t ne[4];   /* ne[0] is the contiguous dimension; unused dims are 1 */
	uint64_t offset;  /* from the start of the data section */
	uint64_t n_bytes;
	const void *data; /* inside the mapping; valid until engine_gguf_free */
} engine_gguf_tensor;

/* Maps and parses a GGUF v2/v3 file. AG_ECORRUPT (with the byte offset) for a
 * truncated, oversized or inconsistent file; AG_EIO if it cannot be read. */
int engine_gguf_open(engine_gguf **out, const char *path);
/* The same over bytes in memory (not copied: they must outlive the handle). */
int engine_gguf_open_memory(engine_gguf **out, const void *data, size_t size);
void engine_gguf_free(engine_gguf *g);

uint32_t engine_gguf_version(const engine_gguf *g);
uint32_t engine_gguf_alignment(const engine_gguf *g);
size_t engine_gguf_n_kv(const engine_gguf *g);
size_t engine_gguf_n_tensors(const engine_gguf *g);
/* Key name of entry i (borrowed) and its type (ENGINE_GGUF_*); NULL/-1 out of range. */
const char *engine_gguf_kv_key(const engine_gguf *g, size_t i);
int engine_gguf_kv_type(const engine_gguf *g, size_t i);
/* Index of a key or -1. */
long engine_gguf_find_kv(const engine_gguf *g, const char *key);

/* Typed getters by key: AG_ENOTFOUND when absent, AG_EINVAL when the stored
 * type cannot represent the request (integers of any width and sign convert
 * when the value fits; floats accept F32/F64). */
int engine_gguf_get_u64(const engine_gguf *g, const char *key, uint64_t *out);
int engine_gguf_get_i64(const engine_gguf *g, const char *key, int64_t *out);
int engine_gguf_get_f64(const engine_gguf *g, const char *key, double *out);
int engine_gguf_get_bool(const engine_gguf *g, const char *key, bool *out);
/* A string value (borrowed, not NUL-terminated in general: use len). */
int engine_gguf_get_str(const engine_gguf *g, const char *key, const char **s, size_t *len);
/* Array: element type and count. */
int engine_gguf_get_array(const engine_gguf *g, const char *key, int *elem_type, uint64_t *count);
/* Element i of a numeric/bool array as int64 or double. */
int engine_gguf_array_i64(const engine_gguf *g, const char *key, uint64_t i, int64_t *out);
int engine_gguf_array_f64(const engine_gguf *g, const char *key, uint64_t i, double *out);
/* Element i of a string array (borrowed bytes and length). */
int engine_gguf_array_str(const engine_gguf *g, const char *key, uint64_t i, const char **s, size_t *len);

const engine_gguf_tensor *engine_gguf_tensor_at(const engine_gguf *g, size_t i);
const engine_gguf_tensor *engine_gguf_find_tensor(const engine_gguf *g, const char *name);
/* sha256 of the header and metadata section: names the model for saved states. */
void engine_gguf_identity(const engine_gguf *g, uint8_t out[32]);

/* Block size (values) and block bytes of a ggml type; 0 for unknown types. */
size_t engine_type_block_size(uint32_t type);
size_t engine_type_block_bytes(uint32_t type);
const char *engine_type_name(uint32_t type); /* "F32", "Q8_0", ... or "?" */
/* Half and bfloat16 conversions (round to nearest even). */
float engine_fp16_to_f32(uint16_t h);
uint16_t engine_f32_to_fp16(float f);
float engine_bf16_to_f32(uint16_t h);
uint16_t engine_f32_to_bf16(float f);

/* ---- writing GGUF files (tests and the random-model tool) ---- */

typedef struct engine_gguf_writer engine_gguf_writer;

int engine_gguf_writer_new(engine_gguf_writer **out);
void engine_gguf_writer_free(engine_gguf_writer *w);
/* Scalars: type is one of the numeric/bool ENGINE_GGUF_* types, value points at
 * a value of that C type (uint8_t, int8_t, ..., bool as uint8_t, float, double). */
int engine_gguf_writer_kv(engine_gguf_writer *w, const char *key, int type, const void *value);
int engine_gguf_writer_kv_str(engine_gguf_writer *w, const char *key, const char *s);
/* Numeric array of count elements of elem_type laid out as C values. */
int engine_gguf_writer_kv_array(engine_gguf_writer *w, const char *key, int elem_type, const void *values,
				uint64_t count);
int engine_gguf_writer_kv_str_array(engine_gguf_writer *w, const char *key, const char *const *s,
				    uint64_t count);
/* A tensor from float values (ne[0] innermost), stored as type (converted and
 * quantised here: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K; ne[0] must be a
 * multiple of the type's block size). */
int engine_gguf_writer_tensor(engine_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
			      const uint64_t *ne, const float *values);
/* The whole file as bytes (caller's, ag_free) or written to path. */
int engine_gguf_writer_bytes(engine_gguf_writer *w, uint8_t **out, size_t *len);
int engine_gguf_writer_save(engine_gguf_writer *w, const char *path);

/* Shape of a random-weight Jamba model (engine_jamba_random_init gives a tiny default). */
typedef struct engine_jamba_random {
	uint32_t n_vocab; /* >= 300: specials, 256 bytes, ChatML tokens, pieces */
	uint32_t n_embd, n_layer, n_ff;
	uint32_t n_head, n_head_kv;        /* head_dim = n_embd / n_head */
	uint32_t attn_period, attn_offset; /* layer i is attention iff i % period == offset */
	uint32_t n_expert, n_expert_used;  /* n_expert <= 1: dense MLPs only */
	uint32_t expert_period, expert_offset;
	uint32_t d_state, d_conv, expand, dt_rank; /* dt_rank 0: ceil(n_embd / 16) */
	uint32_t weight_type;                      /* ENGINE_TYPE_* of the matrices */
	bool tied;                                 /* no output.weight: logits use token_embd */
	uint64_t seed;
} engine_jamba_random;

void engine_jamba_random_init(engine_jamba_random *p);
/* Writes a llama.cpp-layout Jamba GGUF with random weights and a small
 * SentencePiece-style vocabulary (<unk> <s> </s>, <0x00>..<0xFF>,
 * <|im_start|> <|im_end|>, then scored pieces). */
int engine_jamba_random_write(const engine_jamba_random *p, const char *path);

/* ---- the model ---- */

typedef struct engine_model engine_model;

typedef enum engine_layer_kind { ENGINE_LAYER_MAMBA = 0, ENGINE_LAYER_ATTENTION = 1 } engine_layer_kind;

typedef struct engine_config {
	uint32_t n_vocab, n_embd, n_layer, n_ff, n_ctx_train;
	uint32_t n_head, head_dim; /* attention layers */
	uint32_t n_expert, n_expert_used;
	uint32_t d_inner, d_state, d_conv, dt_rank;
	float rms_eps;
	uint32_t n_mamba, n_attention, n_moe; /* layer counts by kind */
	uint64_t n_params;                    /* values in all tensors */
} engine_config;

/* Loads a Jamba GGUF: config from metadata, every weight bound by name with
 * its shape checked. AG_ECORRUPT / AG_EUNSUPPORTED with a message naming the key or tensor. */
int engine_model_load(engine_model **out, const char *path);
void engine_model_free(engine_model *m);
const engine_config *engine_model_config(const engine_model *m);
engine_layer_kind engine_model_layer_kind(const engine_model *m, uint32_t layer);
bool engine_model_layer_moe(const engine_model *m, uint32_t layer);
uint32_t engine_model_layer_kv_heads(const engine_model *m, uint32_t layer); /* 0 for Mamba */
/* The vocabulary from the file's tokenizer.ggml.* keys (borrowed; valid while m lives),
 * ready for engine_tokenizer_create. */
const engine_vocab_desc *engine_model_vocab(const engine_model *m);
/* The model's identity: sha256 of the file's header and metadata (engine_gguf_identity)
 * and of the first and last 64 bytes of every tensor, so same-shaped files with other
 * weights differ too. Saved states carry it. */
const uint8_t *engine_model_identity(const engine_model *m);
/* Worker threads for the fast pass (1..64; default 1). OpenBLAS runs single-threaded
 * inside each of them. */
int engine_set_threads(engine_model *m, int n);
/* The kernels the fast pass uses: "best" (the default: AVX-512, else AVX2, else
 * portable, as the CPU allows), "avx512", "avx2" or "portable", all exact against the
 * reference; or "avx512vnni": AVX-512 with Q8_0/Q4_0 products on activations
 * rounded to 8 bits per block of 32 in decode (llama.cpp's way: faster, but logits
 * move by a few percent of the largest instead of 1e-5). AG_EUNSUPPORTED when this
 * CPU cannot run them. For tests and benchmarks comparing the paths. Switching to or
 * from avx512vnni rewrites the Q8_0 / Q4_0 matrices in place into the order that set
 * reads (rows interleaved by 16; about 0.2 s a GB): not while engine_reference_logits
 * runs on the model in another thread (passes of this model wait for it). */
int engine_set_kernels(engine_model *m, const char *name);
const char *engine_kernels_name(const engine_model *m);

/* ---- sequence state ---- */

/* One sequence: per Mamba layer the conv state (d_inner, d_conv-1) and the
 * SSM state (d_inner, d_state); per attention layer the K/V cache. Not
 * thread-safe; one sequence is advanced by one thread at a time. */
typedef struct engine_state engine_state;

int engine_state_new(engine_state **out, const engine_model *m);
void engine_state_free(engine_state *s);
int engine_state_fork(engine_state **out, const engine_state *s);
void engine_state_reset(engine_state *s);
uint64_t engine_state_n_tokens(const engine_state *s); /* tokens processed */
uint64_t engine_state_n_kv(const engine_state *s);     /* K/V entries held */
/* Versioned little-endian bytes (caller's, ag_free), tagged with the model identity. */
int engine_state_serialize(const engine_state *s, uint8_t **out, size_t *len);
/* Rebuilds a state for model m; AG_ECONFLICT for another model's state,
 * AG_ECORRUPT for damaged bytes. */
int engine_state_restore(engine_state **out, const engine_model *m, const uint8_t *data, size_t len);
/* Forgets the n oldest K/V entries of every attention layer (no positions to
 * re-index: Jamba attention has none); the Mamba state keeps what it carried. */
int engine_state_drop_oldest(engine_state *s, uint64_t n);
/* Appends n positions of pseudo-random K/V to every attention layer, as if n
 * tokens had been read (their content means nothing). For benchmarks that need a
 * long context without the time to prefill one. */
int engine_state_fill_synthetic(engine_state *s, uint64_t n, uint64_t seed);

/* ---- forward passes ---- */

/* Feeds tokens (a whole prompt) and writes the logits after the last one
 * (n_vocab floats) to logits (may be NULL to only advance the state).
 * AG_EINVAL (bad token, state of another model) leaves the state untouched;
 * after AG_ENOMEM the state may be partly advanced: reset or free it.
 * Passes on one model are serialised (they share its thread pool); a long prompt
 * lets other passes run between its 256-token chunks. */
int engine_prefill(engine_model *m, engine_state *s, const int32_t *tokens, size_t n, float *logits);
/* One token. */
int engine_decode(engine_model *m, engine_state *s, int32_t token, float *logits);
/* Batched decode: n distinct sequences advance by one token each (states[i] takes
 * tokens[i]) in one pass over the weights, so N users cost far less than N passes.
 * logits (may be NULL) receives n rows of n_vocab. Each sequence gets exactly the
 * logits engine_decode would give it alone. AG_EINVAL (a repeated state, a state of
 * another model, a bad token) changes no state. */
int engine_decode_batch(engine_model *m, engine_state *const *states, const int32_t *tokens, size_t n,
			float *logits);
/* Serving many sequences: steps that concurrent threads decode through one batcher
 * are merged into engine_decode_batch passes (engine/batcher.c). */
typedef struct engine_batcher engine_batcher;

/* max_batch: most sequences in one pass (1..256). */
int engine_batcher_new(engine_batcher **out, engine_model *m, size_t max_batch);
void engine_batcher_free(engine_batcher *b);
/* A sequence joins before its first step and leaves after its last: a pass waits
 * (at most 2 ms) for every joined sequence to queue its next token. */
void engine_batcher_join(engine_batcher *b);
void engine_batcher_leave(engine_batcher *b);
/* engine_decode of one sequence, merged with other threads' steps; blocks until the
 * pass that holds it is done. The same logits as engine_decode alone. */
int engine_batcher_decode(engine_batcher *b, engine_state *s, int32_t token, float *logits);
/* Passes run and steps decoded so far (steps / passes is the mean batch). */
void engine_batcher_stats(engine_batcher *b, uint64_t *passes, uint64_t *steps);
/* The plain double-precision pass from an empty state over tokens: logits
 * after the last (n_vocab doubles). Slow; for tests. */
int engine_reference_logits(const engine_model *m, const int32_t *tokens, size_t n, double *logits);

/* ===================== end of engine core ===================== */

/* =====================================================================
 * Grammar-constrained decoding from JSON Schema
 * (engine/grammar.c, grammar_schema.c, grammar_vocab.c)
 * ===================================================================== */

/* How a schema compiles. The caps keep generation finite: a string, an array, a number
 * or an object without bounds of its own never grows past them, whatever the model
 * prefers (an explicit maxLength / maxItems is honoured as given, up to 2^20 / 65536). */
typedef struct engine_grammar_options {
	uint32_t max_string; /* characters in a string without a maxLength (256) */
	uint32_t max_items;  /* items in an array without a maxItems (64) */
	uint32_t max_digits; /* digits of an integer part or a fraction, 1..18 (15) */
	uint32_t max_props;  /* additional (undeclared) properties per object (16) */
	uint32_t max_depth;  /* nesting of values, schemaless ones included, 1..24 (12) */
	bool closed_objects; /* objects without additionalProperties take it as false */
	bool newlines;       /* one optional '\n' before the value, and after it when no suffix */
	const char *prefix;  /* text that must come before the value (e.g. "<tool_call>\n"), or NULL */
	const char *suffix;  /* text that must follow it, or NULL */
} engine_grammar_options;

void engine_grammar_options_init(engine_grammar_options *o);

/* A compiled schema: immutable, may be shared by many matchers and threads. */
typedef struct engine_grammar engine_grammar;

/* Compiles a JSON Schema into a byte-level matcher that accepts exactly the compact JSON
 * texts the schema allows (at most one space after ':' and ',', no other white space),
 * within the caps; object keys in any order, each at most once. Supported: type (one or
 * a list), properties, required, additionalProperties (boolean or schema), items,
 * minItems, maxItems, minLength, maxLength, enum, const, anyOf, oneOf (as anyOf).
 * Annotations are ignored, and so are keywords that only narrow values (minimum, maximum,
 * pattern, format, ...: see grammar_schema.c); keywords that change the structure ($ref,
 * allOf, not, if, patternProperties, ...) are refused with AG_EUNSUPPORTED naming them;
 * AG_EINVAL for a malformed or unsatisfiable schema, AG_ELIMIT past the caps. opt may be
 * NULL (the defaults). */
int engine_grammar_compile(engine_grammar **out, const json_t *schema, const engine_grammar_options *opt);
/* The tool-call grammar: {"name": one of the tools' names, "arguments": that tool's
 * parameters}, name first (it picks the arguments' schema), for tools in the OpenAI shape
 * ([{"type": "function", "function": {"name", "parameters"}}] or bare function objects;
 * no parameters: any object). only: NULL, or the one tool allowed (AG_EINVAL if absent). */
int engine_grammar_compile_tools(engine_grammar **out, const json_t *tools, const char *only,
				 const engine_grammar_options *opt);
void engine_grammar_free(engine_grammar *g);

/* Where a generation stands in a grammar. */
typedef struct engine_grammar_matcher engine_grammar_matcher;

int engine_grammar_matcher_new(engine_grammar_matcher **out, const engine_grammar *g);
void engine_grammar_matcher_free(engine_grammar_matcher *m);
void engine_grammar_matcher_reset(engine_grammar_matcher *m);
/* Advances by bytes; AG_EINVAL (state unchanged) when the grammar does not accept them. */
int engine_grammar_matcher_feed(engine_grammar_matcher *m, const void *bytes, size_t n);
/* Whether bytes would be accepted from here (state unchanged). */
bool engine_grammar_matcher_accepts(const engine_grammar_matcher *m, const void *bytes, size_t n);
/* A whole value (and the suffix) has been read: the text may end here. */
bool engine_grammar_matcher_complete(const engine_grammar_matcher *m);
/* No byte can follow: the text must end here. */
bool engine_grammar_matcher_finished(const engine_grammar_matcher *m);

/* A vocabulary as bytes, in a trie, for masking. */
typedef struct engine_grammar_vocab engine_grammar_vocab;

/* From a tokenizer: normal tokens by their pieces (U+2581 as a space, byte-level BPE
 * mapped back), <0xNN> tokens as their byte; control, user-defined, unknown and unused
 * tokens are never allowed by the grammar (they are special, not JSON). */
int engine_grammar_vocab_new(engine_grammar_vocab **out, const engine_tokenizer *t);
/* From explicit pieces: piece i (lens[i] bytes) or NULL for a token the grammar never allows. */
int engine_grammar_vocab_new_pieces(engine_grammar_vocab **out, const char *const *pieces, const size_t *lens,
				    size_t n_vocab);
void engine_grammar_vocab_free(engine_grammar_vocab *v);
size_t engine_grammar_vocab_size(const engine_grammar_vocab *v);

/* The tokens that may come next: bit i of mask (ceil(n_vocab / 32) words, all written) is
 * set iff every byte of token i is accepted in turn; the end_ids (EOS, end of turn,
 * </tool_call>) are allowed iff the value is complete. */
int engine_grammar_mask(engine_grammar_matcher *m, const engine_grammar_vocab *v, const int32_t *end_ids,
			size_t n_end, uint32_t *mask);
/* Sets logits of tokens outside the mask to -inf; returns how many stay allowed. */
size_t engine_grammar_mask_apply(float *logits, const uint32_t *mask, size_t n_vocab);

/* Verbatim quotes (grammar_quote.c): text an answer puts between double quotes must be
 * copied from one of n sources (the documents it may quote), and a citation marker right
 * after the closing quote (" [k]") may only name a source that holds the quote (source i
 * is k = i + 1). cite_required: every closed quote must be followed by its marker. With no
 * sources (n == 0) nothing can be quoted: no token that opens a quote is allowed. */
typedef struct engine_quote_matcher engine_quote_matcher;

int engine_quote_matcher_new(engine_quote_matcher **out, const char *const *sources, const size_t *lens,
			     size_t n, bool cite_required);
void engine_quote_matcher_free(engine_quote_matcher *q);
/* Follows generated answer text (never fails: text that breaks the rule anyway leaves
 * that quote unconstrained until it closes). */
void engine_quote_matcher_feed(engine_quote_matcher *q, const void *bytes, size_t n);
/* Back to outside any quote (e.g. after a tool call's own text). */
void engine_quote_matcher_reset(engine_quote_matcher *q);
/* Inside a quote or the marker after one. */
bool engine_quote_matcher_inside(const engine_quote_matcher *q);
/* Sets the bits of the tokens that may come next (all of v's tokens, special ones included). */
int engine_quote_mask(engine_quote_matcher *q, const engine_grammar_vocab *v, uint32_t *mask);
/* Inside a quote (not yet closed). */
bool engine_quote_matcher_quoting(const engine_quote_matcher *q);
/* Inside a quote: the ways it can go on to the end of a sentence (up to max, distinct), as
 * texts[i] (lens[i] bytes, pointers into the matcher's copies of the sources) to write
 * before the closing quote, from source srcs[i]. */
size_t engine_quote_matcher_completions(const engine_quote_matcher *q, const char **texts, size_t *lens,
					uint32_t *srcs, size_t max);
bool engine_quote_matcher_cite_required(const engine_quote_matcher *q);

/* ================== end of grammar-constrained decoding ================== */

/* ============ chat requests, and the remote backend (OpenAI-compatible) ============ */

/* One chat completion, in the OpenAI shape, as both backends take it. */
typedef struct engine_chat_request {
	const json_t *messages;        /* [{"role", "content", "tool_calls"?}] */
	const json_t *tools;           /* [{"type": "function", "function": {...}}] or NULL */
	const json_t *tool_choice;     /* "auto", "required", {"function": {"name"}} or NULL (auto) */
	const json_t *response_format; /* {"type": "json_schema", ...} or NULL */
	const json_t *stop;            /* a string or an array of strings, or NULL */
	/* Verbatim quotes (the local backend; a remote one ignores them): the texts the answer
	 * may quote, an array of strings, or NULL. Text the answer puts between double quotes is
	 * then copied from one of them, and a marker " [k]" right after a quote names one that
	 * holds it (the k-th, from 1); quote_cite_required: every quote is followed by one. An
	 * empty array: the answer may quote nothing (no double quote may open). */
	const json_t *quote_sources;
	bool quote_cite_required;
	/* The question the quotes answer (its text alone, without the documents), or NULL: a
	 * quote's sentence is then chosen by the model's likelihood and by how many of the
	 * question's rarer words it holds. Must outlive the call. */
	const char *quote_question;
	int max_tokens;    /* 0: the backend's default */
	float temperature; /* < 0: the backend's default */
	float top_p;       /* <= 0: the backend's default */
	bool has_seed;
	uint64_t seed;
	/* Receives answer text as it is generated; nonzero stops the generation. May be NULL. */
	int (*on_text)(void *cls, const char *piece, size_t len);
	void *on_text_cls;
	/* Polled at every token (with on_text_cls), text or not: nonzero stops the generation
	 * ("cancelled"), so a client that left or a cancelled run frees its slot even while
	 * the model is still thinking. May be NULL. */
	int (*should_stop)(void *cls);
} engine_chat_request;

typedef struct engine_chat_response {
	char *content;      /* the answer (reasoning removed); never NULL after success */
	char *reasoning;    /* the <think> text, or NULL */
	json_t *tool_calls; /* [{"name", "arguments": {...}}] or NULL */
	long prompt_tokens;
	long completion_tokens;
	char finish_reason[16]; /* "stop", "length", "tool_calls", "cancelled" */
} engine_chat_response;

void engine_chat_response_clear(engine_chat_response *r);

typedef struct engine_remote engine_remote;

typedef struct engine_remote_config {
	const char *url;        /* base URL; "/v1/chat/completions" is appended unless already there */
	const char *model;      /* the model name sent with each request */
	const char *api_key;    /* sent as a Bearer token; NULL for none. Never logged. */
	long connect_timeout_s; /* 0: 10 s */
	long timeout_s;         /* whole request; 0: 600 s */
	int max_retries;        /* on 429 and 5xx before any text was received; 0: 3 */
	long backoff_ms;        /* first retry delay, doubled each time; 0: 500 ms */
} engine_remote_config;

int engine_remote_new(engine_remote **out, const engine_remote_config *cfg);
void engine_remote_free(engine_remote *r);
/* Streams a chat completion from the server. Errors: AG_ETIMEOUT, AG_EBUSY (429 after the
 * retries), AG_EIO (network, 5xx), AG_EUNAUTH (401/403), AG_EINVAL (400, with the server's
 * message), AG_ECORRUPT (an answer that is not the protocol). */
int engine_remote_chat(engine_remote *r, const engine_chat_request *req, engine_chat_response *out);

/* The local backend: a GGUF model on this machine behind the same chat call. */
typedef struct engine_local engine_local;

/* Loads the model, its tokenizer and chat format; threads for the forward pass. */
int engine_local_open(engine_local **out, const char *path, int threads);
void engine_local_free(engine_local *l);
engine_model *engine_local_model(engine_local *l);
const engine_tokenizer *engine_local_tokenizer(const engine_local *l);
const char *engine_local_name(const engine_local *l); /* the file name without .gguf */
/* Batched decode so far: passes run and sequence steps they carried (engine_batcher_stats). */
void engine_local_batch_stats(engine_local *l, uint64_t *passes, uint64_t *steps);
/* A chat completion from an empty sequence. Thread-safe: prompts are fed one at a time,
 * then concurrent requests decode together in batched passes (up to 16 sequences). */
int engine_local_chat(engine_local *l, const engine_chat_request *req, engine_chat_response *out);
/* The same, continuing `state` (a user's memory): req->messages are the new turns only,
 * rendered without BOS when the state already holds tokens. Afterwards the state holds
 * the prompt and the generated tokens (not the end-of-turn token). */
int engine_local_chat_state(engine_local *l, engine_state *state, const engine_chat_request *req,
			    engine_chat_response *out);
/* A completion of raw prompt text (tokenized with BOS, special tokens in it honoured) from an
 * empty sequence, decoded as a chat request's answer is: req's sampling, max_tokens and
 * quote_sources apply, its messages and tools do not. A prompt that ends inside an open
 * <think> block is answered after the model's </think>. For evaluating the chat format
 * outside the daemon. */
int engine_local_complete(engine_local *l, const char *prompt, size_t len, const engine_chat_request *req,
			  engine_chat_response *out);
/* Feeds whole turns (rendered without a generation prompt) into state, e.g. to commit a
 * user's question and the final answer to their memory. tools (NULL: none) are rendered
 * into the system turn as a chat request's are, when the state is empty. */
int engine_local_absorb(engine_local *l, engine_state *state, const json_t *messages, const json_t *tools);
/* The token ids the backend would feed for these messages (fresh: with BOS), with special-token
 * spellings inside contents neutralised; *out is the caller's. For counting and tests. */
int engine_local_tokens(engine_local *l, const json_t *messages, const json_t *tools, bool fresh,
			bool generation_prompt, int32_t **out, size_t *n);

/* ====================== end of chat requests and remote ====================== */

#endif
