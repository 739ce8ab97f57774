/*
 * engine core, module-internal: the loaded model's layout, the kernel vtable
 * and the thread pool shared by forward.c, reference.c, state.c and model.c.
 * Nothing outside engine/ includes this header.
 */
#ifndef ENGINE_CORE_INTERNAL_H
#define ENGINE_CORE_INTERNAL_H

#include <math.h>
#include <pthread.h>

#include "engine/engine.h"

/* How a Q8_0 / Q4_0 matrix's bytes are ordered. ROWS: as GGUF stores them,
 * row after row. I16: rows in groups of 16, each group the same bytes as its
 * 16 rows but ordered for AVX-512 VNNI (one vector holds 4 columns of 16 rows),
 * so a pass reads one sequential stream instead of one per row; rows past the
 * last whole group stay row-major where they were. A group per block of 32
 * columns: 16 fp16 scales (32 bytes), then Q8_0: 8 x 64 bytes, vector k lane i
 * = row i's weights 4k..4k+3 plus 128 (unsigned, as VPDPBUSD takes them);
 * Q4_0: 4 x 64 bytes, vector k lane i = row i's packed bytes 4k..4k+3 as
 * stored (low nibbles weights 4k.., high nibbles 16 + 4k..). A group takes
 * 16 rows' bytes exactly, so a matrix, and each expert in a 3-D tensor, keeps
 * its size and place. */
enum { ENGINE_LAYOUT_ROWS = 0, ENGINE_LAYOUT_I16 = 1 };

/* A weight matrix viewed as rows of ne0 values (rows = ne1 * ne2 * ne3). */
typedef struct engine_weight {
	uint32_t type;
	uint32_t layout;     /* ENGINE_LAYOUT_*: ROWS but for Q8_0 / Q4_0 under avx512vnni */
	uint64_t cols;       /* ne0 */
	uint64_t rows;       /* ne1 (one expert of a 3-D tensor) */
	uint64_t count;      /* ne2: matrices of rows x cols one after another (experts) */
	size_t row_bytes;    /* bytes of one row */
	const uint8_t *data; /* inside the model's copy of the file */
} engine_weight;

/* Rows of w in whole interleaved groups (0 unless w->layout is I16). */
static inline uint64_t engine_weight_grouped(const engine_weight *w)
{
	return w->layout == ENGINE_LAYOUT_I16 ? w->rows / 16 * 16 : 0;
}

typedef struct engine_layer {
	engine_layer_kind kind;
	bool moe;
	uint32_t index;     /* among layers of the same kind (state slot) */
	uint32_t n_head_kv; /* attention only */
	float *attn_norm;   /* (n_embd) */
	float *ffn_norm;    /* (n_embd) */
	/* Mamba */
	engine_weight ssm_in;  /* (2*d_inner, n_embd) */
	float *conv_w;         /* (d_inner, d_conv) */
	float *conv_b;         /* (d_inner) */
	engine_weight ssm_x;   /* (dt_rank + 2*d_state, d_inner) */
	float *dt_norm;        /* (dt_rank) */
	float *b_norm;         /* (d_state) */
	float *c_norm;         /* (d_state) */
	engine_weight ssm_dt;  /* (d_inner, dt_rank) */
	float *dt_b;           /* (d_inner) */
	float *ssm_a;          /* (d_inner, d_state): A = -exp(A_log) */
	float *ssm_d;          /* (d_inner) */
	engine_weight ssm_out; /* (n_embd, d_inner) */
	/* attention */
	engine_weight wq, wk, wv, wo; /* (n_head*hd, n_embd), (kv*hd, n_embd) x2, (n_embd, n_head*hd) */
	/* feed-forward: dense, or router + experts */
	engine_weight gate, up, down;       /* (n_ff, n_embd), (n_ff, n_embd), (n_embd, n_ff) */
	engine_weight router;               /* (n_expert, n_embd) */
	engine_weight gate_x, up_x, down_x; /* per expert as gate/up/down; rows of one expert */
} engine_layer;

/* Activations of n_tok tokens quantised like Q8_0 blocks: per block of 32
 * values a scale d and 32 integers in [-127, 127]. VNNI multiplies unsigned
 * by signed bytes, so the kernel offsets the weights instead (Q8_0 by 128, Q4_0
 * by its own 8) and subtracts offset x (the block's sum of activations): neg_sum
 * holds those sums, negated, laid out for it (per pair of blocks 16 lanes:
 * lane 0 the first block's, lane 8 the second's, the rest 0). */
typedef struct engine_q8act {
	const int8_t *q;        /* (n_tok, n) */
	const float *d;         /* (n_tok, n / 32) */
	const int32_t *neg_sum; /* (n_tok, pairs, 16), pairs = (n / 32 + 1) / 2 */
	size_t n;               /* values per token, a multiple of 32 */
} engine_q8act;

/* Matrix-vector kernels. A vtable so faster variants (AVX2, AVX-512) can
 * replace the portable ones without touching the forward pass. */
typedef struct engine_kernels {
	const char *name;
	/* Dot of two float vectors of n values. */
	float (*dot)(const float *a, const float *b, size_t n);
	/* Converts one row of w (w->cols values) to floats. */
	void (*row_to_f32)(const engine_weight *w, uint64_t row, float *out);
	/* y[t * ldy + r] = W[r] . x[t * w->cols] for rows r in [r0, r1) and t < n_tok.
	 * scratch holds w->cols floats (the dequantised row, reused for every token). */
	void (*rows)(const engine_weight *w, const float *x, size_t n_tok, float *y, size_t ldy, uint64_t r0,
		     uint64_t r1, float *scratch);
	/* Attention over a block of n cached positions (rows of stride floats):
	 * s[h * lds + p] = (q_h . K_p) * scale for the group's query heads q_h (hd apart); */
	void (*att_scores)(const float *q, size_t group, size_t hd, const float *K, size_t stride, size_t n,
			   float scale, float *s, size_t lds);
	/* s[p] = exp(s[p] - m) for p < n; returns their sum; */
	float (*att_exp)(float *s, size_t n, float m);
	/* o[e] += sum over p < n of w[p] * V_p[e], for e < hd. */
	void (*att_accum)(float *o, const float *w, const float *V, size_t stride, size_t n, size_t hd);
	/* One token's Mamba scan over n channels (each array at the first one):
	 * dl = softplus(delta + dt_b), s = s * exp(dl * A) + B * (dl * u) per
	 * state value, y = (s . C + Dsk * u) * silu(z); A rows and states of N
	 * floats, B and C the token's N values. */
	void (*ssm_scan)(float *s, const float *A, const float *B, const float *C, const float *delta,
			 const float *dt_b, const float *u, const float *Dsk, const float *z, float *y,
			 size_t n, size_t N);
	/* x[i] = silu(x[i]) * m[i] (m NULL: silu alone), i < n. */
	void (*silu_mul)(float *x, const float *m, size_t n);
	/* Optional (NULL in the exact sets): Q8_0 and Q4_0 rows against activations
	 * quantised to 8 bits per block of 32 (engine_act_quant), so the products
	 * are integer (AVX-512 VNNI). Same contract as rows otherwise. */
	void (*rows_q8)(const engine_weight *w, const engine_q8act *xq, size_t n_tok, float *y, size_t ldy,
			uint64_t r0, uint64_t r1);
	/* With rows_q8: engine_act_quant, the same bytes. */
	void (*act_quant)(const float *x, size_t n_tok, size_t n, int8_t *q, float *d, int32_t *neg_sum);
	/* Optional (NULL in the exact sets): attention over the cache's BF16 copy
	 * (kernels_att16.c: blocks of 16 positions, engine_kv16_put). For KV head g
	 * and nblk blocks, s[h * lds + p] = (q_h . K_p) * scale for all 16 * nblk
	 * positions p, q16 the group's query heads rounded to BF16; */
	void (*att16_scores)(const uint16_t *q16, size_t group, size_t hd, const uint16_t *K, size_t kvd,
			     size_t g, size_t nblk, float scale, float *s, size_t lds);
	/* o[e] += sum over p < 16 * nblk of bf16(w[p]) * V_p[e] (w zero past the last position). */
	void (*att16_accum)(float *o, const float *w, const uint16_t *V, size_t kvd, size_t g, size_t nblk,
			    size_t hd);
	/* The layout this set wants Q8_0 / Q4_0 matrices in (ENGINE_LAYOUT_ROWS in
	 * the exact sets, which only read row-major weights): engine_set_kernels
	 * rewrites the model's matrices to it. Every slot above then takes either. */
	uint32_t layout;
} engine_kernels;

/* Int32s that engine_act_quant's neg_sum needs for n_tok tokens of n values. */
size_t engine_act_quant_sums(size_t n_tok, size_t n);
/* Quantises n_tok rows of n floats (n a multiple of 32) into q, d and neg_sum. */
void engine_act_quant(const float *x, size_t n_tok, size_t n, int8_t *q, float *d, int32_t *neg_sum);
/* engine_act_quant with AVX-512 (kernels_vnni.c; x86-64 only). */
void engine_act_quant_avx512(const float *x, size_t n_tok, size_t n, int8_t *q, float *d, int32_t *neg_sum);
/* The portable rows_q8, the reference the SIMD version is checked against. */
void engine_rows_q8_portable(const engine_weight *w, const engine_q8act *xq, size_t n_tok, float *y,
			     size_t ldy, uint64_t r0, uint64_t r1);
/* BF16 attention (kernels_att16.c): x rounded to BF16 (to nearest, ties to
 * even); position pos's k and v (kvd values each) into a layer's BF16 copy;
 * the portable definitions, and the AVX-512 versions with and without the
 * BF16 instructions (x86-64 only). */
uint16_t engine_bf16(float x);
void engine_kv16_put(uint16_t *K16, uint16_t *V16, size_t kvd, uint64_t pos, const float *k, const float *v);
void engine_att16_scores_portable(const uint16_t *q16, size_t group, size_t hd, const uint16_t *K, size_t kvd,
				  size_t g, size_t nblk, float scale, float *s, size_t lds);
void engine_att16_accum_portable(float *o, const float *w, const uint16_t *V, size_t kvd, size_t g,
				 size_t nblk, size_t hd);
void engine_att16_scores_avx512bf16(const uint16_t *q16, size_t group, size_t hd, const uint16_t *K,
				    size_t kvd, size_t g, size_t nblk, float scale, float *s, size_t lds);
void engine_att16_accum_avx512bf16(float *o, const float *w, const uint16_t *V, size_t kvd, size_t g,
				   size_t nblk, size_t hd);
void engine_att16_scores_avx512(const uint16_t *q16, size_t group, size_t hd, const uint16_t *K, size_t kvd,
				size_t g, size_t nblk, float scale, float *s, size_t lds);
void engine_att16_accum_avx512(float *o, const float *w, const uint16_t *V, size_t kvd, size_t g, size_t nblk,
			       size_t hd);
/* The AVX-512 VNNI rows_q8 (kernels_vnni.c; x86-64 only). */
void engine_rows_q8_vnni(const engine_weight *w, const engine_q8act *xq, size_t n_tok, float *y, size_t ldy,
			 uint64_t r0, uint64_t r1);
/* Row row (< engine_weight_grouped(w)) of an I16 matrix to floats, the same
 * floats row_to_f32 gives for it row-major (kernels_vnni.c; x86-64 only). */
void engine_row_to_f32_i16(const engine_weight *w, uint64_t row, float *out);

/* Layouts (repack.c). Block b of row r of a Q8_0 / Q4_0 matrix in either
 * layout as 32 signed integers; returns the block's scale. */
float engine_weight_block(const engine_weight *w, uint64_t r, size_t b, int out[32]);
/* Reorders the count x rows x cols matrix w in place (its bytes writable) to
 * layout, and sets w->layout. tmp holds 16 * w->row_bytes bytes. */
void engine_weight_relayout(engine_weight *w, uint8_t *data, uint32_t layout, uint8_t *tmp);
/* Every Q8_0 / Q4_0 matrix of m the row products read (the output head, and
 * with it tied embeddings) to layout, in place. */
int engine_model_relayout(engine_model *m, uint32_t layout);

/* The portable attention kernels, which the SIMD sets fall back to. */
void engine_att_scores_portable(const float *q, size_t group, size_t hd, const float *K, size_t stride,
				size_t n, float scale, float *s, size_t lds);
float engine_att_exp_portable(float *s, size_t n, float m);
void engine_att_accum_portable(float *o, const float *w, const float *V, size_t stride, size_t n, size_t hd);
/* The Mamba and SwiGLU arithmetic (kernels_mamba.c): portable, and AVX-512
 * (x86-64 only). */
void engine_ssm_scan_portable(float *s, const float *A, const float *B, const float *C, const float *delta,
			      const float *dt_b, const float *u, const float *Dsk, const float *z, float *y,
			      size_t n, size_t N);
void engine_silu_mul_portable(float *x, const float *m, size_t n);
void engine_ssm_scan_avx512(float *s, const float *A, const float *B, const float *C, const float *delta,
			    const float *dt_b, const float *u, const float *Dsk, const float *z, float *y,
			    size_t n, size_t N);
void engine_silu_mul_avx512(float *x, const float *m, size_t n);

extern const engine_kernels engine_kernels_portable;

/* A kernel set by name: "portable", "avx2", "avx512", "avx512vnni" (int8
 * activations, not exact: opt-in), or "best" (the widest exact set this CPU
 * runs). NULL for an unknown name or one the CPU cannot run. */
const engine_kernels *engine_kernels_find(const char *name);

/* K-quant blocks of 256 values (kquants.c): dequantise one block, quantise one block. */
void engine_dequant_q4_k(const uint8_t *block, float *out);
void engine_dequant_q5_k(const uint8_t *block, float *out);
void engine_dequant_q6_k(const uint8_t *block, float *out);
void engine_quant_q4_k(const float *x, uint8_t *block);
void engine_quant_q5_k(const float *x, uint8_t *block);
void engine_quant_q6_k(const float *x, uint8_t *block);

/* Persistent worker threads. engine_pool_run calls fn(ctx, i, n) for i in
 * [0, n) with i == 0 on the calling thread, and returns when all are done.
 * Runs are serialised by a mutex, so one pool may be shared by threads. */
typedef struct engine_pool engine_pool;
typedef void (*engine_pool_fn)(void *ctx, int i, int n);
int engine_pool_new(engine_pool **out, int n_threads);
void engine_pool_free(engine_pool *p);
int engine_pool_size(const engine_pool *p);
void engine_pool_run(engine_pool *p, engine_pool_fn fn, void *ctx);

struct engine_model {
	void *file; /* the whole GGUF file, read into anonymous memory (model.c says why) */
	size_t file_size;
	void *map; /* the mapping file lies in (from its first 2 MiB boundary) */
	size_t map_size;
	engine_gguf *gguf;
	engine_config cfg;
	engine_layer *layers;   /* (n_layer) */
	engine_weight tok_embd; /* (n_vocab, n_embd) */
	float *out_norm;        /* (n_embd) */
	engine_weight output;   /* (n_vocab, n_embd); token_embd when tied */
	uint8_t identity[32];
	const engine_kernels *kern;
	engine_pool *pool;
	pthread_mutex_t pool_lock; /* engine_set_threads against running passes */
	float *deq;                /* sgemm's dequantised row blocks (forward.c), under pool_lock */
	size_t deq_floats;
	uint8_t *arena; /* a pass's scratch buffers (forward.c), under pool_lock */
	size_t arena_cap, arena_peak;
	size_t max_kv_dim; /* largest n_head_kv * head_dim */
	/* vocabulary handed to the tokenizer */
	engine_vocab_desc vocab;
	char **vocab_tokens;
	float *vocab_scores;
	int32_t *vocab_types;
	char **vocab_merges;
	char *vocab_model, *vocab_pre, *vocab_chat_template;
};

struct engine_state {
	const engine_model *m;
	uint32_t n_mamba, n_attn;
	uint32_t d_inner, conv_len, d_state; /* conv_len = d_conv - 1 */
	float *conv;                         /* (n_mamba, d_inner, conv_len), oldest first */
	float *ssm;                          /* (n_mamba, d_inner, d_state) */
	uint32_t *kv_dim;                    /* (n_attn) n_head_kv * head_dim */
	float **k, **v;                      /* (n_attn) each (cap, kv_dim) */
	uint64_t n_kv, cap;
	uint64_t n_tokens;
	/* BF16 copies of the cache for kernel sets with att16 (NULL until one
	 * runs): derived from k and v, so never saved nor forked, only rebuilt. */
	uint16_t **k16, **v16; /* (n_attn) each (cap16, kv_dim), blocks of 16 positions */
	uint64_t *n16;         /* (n_attn) positions copied */
	uint64_t cap16;
};

/* Attention for T tokens (attention.c): token t's H query heads (q, T rows of
 * H * hd) over its cache k[t], v[t] (rows of kvh * hd) up to len[t] positions;
 * heads concatenated into att (T rows of H * hd). */
int engine_attention(engine_pool *pool, const engine_kernels *kern, size_t T, size_t H, size_t hd, size_t kvh,
		     const float *q, const float *const *k, const float *const *v, const uint64_t *len,
		     float *att);
/* The same over BF16 copies (kern->att16_*). */
int engine_attention16(engine_pool *pool, const engine_kernels *kern, size_t T, size_t H, size_t hd,
		       size_t kvh, const float *q, const uint16_t *const *k, const uint16_t *const *v,
		       const uint64_t *len, float *att);

/* Brings attention layer layer's BF16 copy up to position upto (exclusive)
 * from the F32 cache, first dropping what it held at or past from (positions
 * being rewritten). */
int engine_state_kv16_sync(engine_state *s, uint32_t layer, uint64_t from, uint64_t upto);

/* Grows every attention layer's cache to hold at least need entries. */
int engine_state_reserve(engine_state *s, uint64_t need);

/* A little-endian 16-bit value (GGUF's halves and bfloats, block scales). */
static inline uint16_t engine_rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* Small math shared by both passes. */
static inline float engine_silu(float x) { return x / (1.0f + expf(-x)); }
static inline float engine_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

#endif
