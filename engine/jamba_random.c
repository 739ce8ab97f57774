/*
 * Random-weight Jamba models: writes a GGUF laid out exactly as llama.cpp's
 * converter lays out arch `jamba` (keys, tensor names, ggml shapes, A stored
 * as -exp(A_log), conv taps squeezed to (d_conv, d_inner), experts stacked),
 * of any shape and weight type, with a small SentencePiece-style vocabulary so
 * the tokenizer and `agentd generate` work on it. Weights are scaled so the
 * activations stay near unit size through any number of layers. Deterministic
 * for a seed.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/core_internal.h"

void engine_jamba_random_init(engine_jamba_random *p)
{
	memset(p, 0, sizeof(*p));
	p->n_vocab = 320;
	p->n_embd = 64;
	p->n_layer = 4;
	p->n_ff = 96;
	p->n_head = 4;
	p->n_head_kv = 2;
	p->attn_period = 4;
	p->attn_offset = 2;
	p->n_expert = 4;
	p->n_expert_used = 2;
	p->expert_period = 2;
	p->expert_offset = 1;
	p->d_state = 8;
	p->d_conv = 4;
	p->expand = 2;
	p->weight_type = ENGINE_TYPE_F32;
	p->seed = 1;
}

typedef struct rng {
	uint64_t s;
} rng;

static float uni(rng *r) /* [-1, 1) */
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return (float)((double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* ------------------------------------------------------------ vocabulary */

typedef struct vocab {
	char **tok;
	float *score;
	int32_t *type;
	uint32_t n, cap;
	uint32_t *hash; /* open addressing: index + 1, 0 = empty */
	uint32_t hcap;
} vocab;

static uint32_t fnv(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

/* Adds a piece unless present or full; 1 when added, 0 when skipped, <0 on error. */
static int vocab_add(vocab *v, const char *piece, int32_t type)
{
	if (v->n >= v->cap)
		return 0;
	uint32_t h = fnv(piece) & (v->hcap - 1);
	while (v->hash[h]) {
		if (!strcmp(v->tok[v->hash[h] - 1], piece))
			return 0;
		h = (h + 1) & (v->hcap - 1);
	}
	char *d = ag_strdup(piece);
	if (!d)
		return ag_error_set(AG_ENOMEM, "out of memory");
	v->tok[v->n] = d;
	v->type[v->n] = type;
	v->score[v->n] = type == 1 ? -(float)v->n : 0.0f;
	v->hash[h] = ++v->n;
	return 1;
}

static const char *const WORDS[] = {
	"the",   "and",    "that",   "have",      "for",      "not",    "with",   "you",      "this",
	"but",   "his",    "from",   "they",      "say",      "her",    "she",    "will",     "one",
	"all",   "would",  "there",  "their",     "what",     "out",    "about",  "who",      "get",
	"which", "when",   "make",   "can",       "like",     "time",   "just",   "him",      "know",
	"take",  "people", "into",   "year",      "your",     "good",   "some",   "could",    "them",
	"see",   "other",  "than",   "then",      "now",      "look",   "only",   "come",     "its",
	"over",  "think",  "also",   "back",      "after",    "use",    "two",    "how",      "our",
	"work",  "first",  "well",   "way",       "even",     "new",    "want",   "because",  "any",
	"these", "give",   "day",    "most",      "document", "policy", "answer", "question", "search",
	"tool",  "user",   "system", "assistant", "model",    "data",   "file"};

#define SPACE "\xe2\x96\x81" /* U+2581, SentencePiece's word boundary */

static int build_vocab(vocab *v, uint32_t n)
{
	v->cap = n;
	v->hcap = 1;
	while (v->hcap < 2 * n)
		v->hcap <<= 1;
	v->tok = ag_calloc(n, sizeof(char *));
	v->score = ag_calloc(n, sizeof(float));
	v->type = ag_calloc(n, sizeof(int32_t));
	v->hash = ag_calloc(v->hcap, sizeof(uint32_t));
	if (!v->tok || !v->score || !v->type || !v->hash)
		return ag_error_set(AG_ENOMEM, "out of memory");
	char b[64];
	int rc = 0;
	if ((rc = vocab_add(v, "<unk>", ENGINE_TOKEN_UNKNOWN)) < 0 ||
	    (rc = vocab_add(v, "<s>", ENGINE_TOKEN_CONTROL)) < 0 ||
	    (rc = vocab_add(v, "</s>", ENGINE_TOKEN_CONTROL)) < 0)
		return rc;
	for (int i = 0; i < 256; i++) {
		snprintf(b, sizeof b, "<0x%02X>", i);
		if ((rc = vocab_add(v, b, ENGINE_TOKEN_BYTE)) < 0)
			return rc;
	}
	if ((rc = vocab_add(v, "<|im_start|>", ENGINE_TOKEN_CONTROL)) < 0 ||
	    (rc = vocab_add(v, "<|im_end|>", ENGINE_TOKEN_CONTROL)) < 0 || (rc = vocab_add(v, SPACE, 1)) < 0)
		return rc;
	for (int c = 33; c < 127; c++) {
		b[0] = (char)c;
		b[1] = 0;
		if ((rc = vocab_add(v, b, 1)) < 0)
			return rc;
	}
	for (int c = 'a'; c <= 'z'; c++) {
		snprintf(b, sizeof b, SPACE "%c", c);
		if ((rc = vocab_add(v, b, 1)) < 0)
			return rc;
	}
	/* words with every prefix, so BPE merges can reach them */
	for (size_t w = 0; w < sizeof(WORDS) / sizeof(WORDS[0]); w++) {
		size_t len = strlen(WORDS[w]);
		for (size_t k = 2; k <= len; k++) {
			snprintf(b, sizeof b, SPACE "%.*s", (int)k, WORDS[w]);
			if ((rc = vocab_add(v, b, 1)) < 0)
				return rc;
		}
	}
	for (int x = 'a'; x <= 'z'; x++)
		for (int y = 'a'; y <= 'z'; y++) {
			snprintf(b, sizeof b, "%c%c", x, y);
			if ((rc = vocab_add(v, b, 1)) < 0)
				return rc;
		}
	for (int x = 'a'; x <= 'z'; x++)
		for (int y = 'a'; y <= 'z'; y++) {
			snprintf(b, sizeof b, SPACE "%c%c", x, y);
			if ((rc = vocab_add(v, b, 1)) < 0)
				return rc;
		}
	for (int x = 'a'; x <= 'z' && v->n < n; x++)
		for (int y = 'a'; y <= 'z' && v->n < n; y++)
			for (int z = 'a'; z <= 'z' && v->n < n; z++) {
				snprintf(b, sizeof b, "%c%c%c", x, y, z);
				if ((rc = vocab_add(v, b, 1)) < 0 ||
				    (snprintf(b, sizeof b, SPACE "%c%c%c", x, y, z),
				     rc = vocab_add(v, b, 1)) < 0)
					return rc;
			}
	/* very large vocabularies: numbered filler pieces */
	for (uint32_t i = 0; v->n < n; i++) {
		snprintf(b, sizeof b, "<|filler_%u|>", i);
		if ((rc = vocab_add(v, b, ENGINE_TOKEN_UNUSED)) < 0)
			return rc;
	}
	return 0;
}

static void vocab_free(vocab *v)
{
	for (uint32_t i = 0; v->tok && i < v->n; i++)
		ag_free(v->tok[i]);
	ag_free(v->tok);
	ag_free(v->score);
	ag_free(v->type);
	ag_free(v->hash);
}

/* ------------------------------------------------------------ tensors */

typedef struct gen {
	engine_gguf_writer *w;
	const engine_jamba_random *p;
	rng r;
	float *buf;
	size_t cap;
} gen;

enum { FILL_UNIFORM, FILL_NORM, FILL_A, FILL_DT_BIAS };

/* Writes one tensor filled by kind; quantisable matrices get the weight type. */
static int tensor(gen *g, const char *name, uint32_t n_dims, uint64_t ne0, uint64_t ne1, uint64_t ne2,
		  int fill, float scale, bool quantise)
{
	uint64_t ne[3] = {ne0, ne1, ne2};
	size_t n = (size_t)(ne0 * ne1 * ne2);
	if (n > g->cap) {
		float *b = ag_realloc(g->buf, n * sizeof(float));
		if (!b)
			return ag_error_set(AG_ENOMEM, "out of memory for tensor %s", name);
		g->buf = b;
		g->cap = n;
	}
	for (size_t i = 0; i < n; i++) {
		float u = uni(&g->r);
		switch (fill) {
		case FILL_NORM: g->buf[i] = 1.0f + 0.1f * u; break;
		case FILL_A: /* A = -exp(A_log) with A_log = log(n + 1), S4D-real, jittered */
			g->buf[i] = -(float)(i % ne0 + 1) * (1.0f + 0.05f * u);
			break;
		case FILL_DT_BIAS: { /* inverse softplus of dt in [0.001, 0.1], log-uniform */
			double dt = exp(log(0.001) + (u + 1.0) * 0.5 * (log(0.1) - log(0.001)));
			g->buf[i] = (float)(dt + log(-expm1(-dt)));
			break;
		}
		default: g->buf[i] = scale * u;
		}
	}
	uint32_t type = quantise ? g->p->weight_type : ENGINE_TYPE_F32;
	if (ne0 % engine_type_block_size(type))
		type = ENGINE_TYPE_F32;
	return engine_gguf_writer_tensor(g->w, name, type, n_dims, ne, g->buf);
}

static float fan(uint64_t in) { return sqrtf(3.0f / (float)in); /* uniform with unit output variance */ }

static int layer_tensors(gen *g, uint32_t i, bool attn, bool moe, uint32_t D, uint32_t R)
{
	const engine_jamba_random *p = g->p;
	uint64_t E = p->n_embd, F = p->n_ff, N = p->d_state, X = p->n_expert, hd = p->n_embd / p->n_head;
	char b[96];
#define T(suffix, nd, a, bb, c, fill, sc, q)                                                                 \
	do {                                                                                                 \
		snprintf(b, sizeof b, "blk.%u." suffix, i);                                                  \
		int rc_ = tensor(g, b, nd, a, bb, c, fill, sc, q);                                           \
		if (rc_)                                                                                     \
			return rc_;                                                                          \
	} while (0)
	T("attn_norm.weight", 1, E, 1, 1, FILL_NORM, 0, false);
	if (attn) {
		T("attn_q.weight", 2, E, p->n_head * hd, 1, FILL_UNIFORM, fan(E), true);
		T("attn_k.weight", 2, E, p->n_head_kv * hd, 1, FILL_UNIFORM, fan(E), true);
		T("attn_v.weight", 2, E, p->n_head_kv * hd, 1, FILL_UNIFORM, fan(E), true);
		T("attn_output.weight", 2, p->n_head * hd, E, 1, FILL_UNIFORM, fan(p->n_head * hd), true);
	} else {
		T("ssm_in.weight", 2, E, 2 * (uint64_t)D, 1, FILL_UNIFORM, fan(E), true);
		T("ssm_conv1d.weight", 2, p->d_conv, D, 1, FILL_UNIFORM, fan(p->d_conv), false);
		T("ssm_conv1d.bias", 1, D, 1, 1, FILL_UNIFORM, 0.1f, false);
		T("ssm_x.weight", 2, D, R + 2 * N, 1, FILL_UNIFORM, fan(D), true);
		T("ssm_dt_norm.weight", 1, R, 1, 1, FILL_NORM, 0, false);
		T("ssm_b_norm.weight", 1, N, 1, 1, FILL_NORM, 0, false);
		T("ssm_c_norm.weight", 1, N, 1, 1, FILL_NORM, 0, false);
		T("ssm_dt.weight", 2, R, D, 1, FILL_UNIFORM, 0.5f * fan(R), true);
		T("ssm_dt.bias", 1, D, 1, 1, FILL_DT_BIAS, 0, false);
		T("ssm_a", 2, N, D, 1, FILL_A, 0, false);
		T("ssm_d", 1, D, 1, 1, FILL_NORM, 0, false);
		T("ssm_out.weight", 2, D, E, 1, FILL_UNIFORM, fan(D), true);
	}
	T("ffn_norm.weight", 1, E, 1, 1, FILL_NORM, 0, false);
	if (moe) {
		T("ffn_gate_inp.weight", 2, E, X, 1, FILL_UNIFORM, fan(E), false);
		T("ffn_gate_exps.weight", 3, E, F, X, FILL_UNIFORM, fan(E), true);
		T("ffn_up_exps.weight", 3, E, F, X, FILL_UNIFORM, fan(E), true);
		T("ffn_down_exps.weight", 3, F, E, X, FILL_UNIFORM, fan(F), true);
	} else {
		T("ffn_gate.weight", 2, E, F, 1, FILL_UNIFORM, fan(E), true);
		T("ffn_up.weight", 2, E, F, 1, FILL_UNIFORM, fan(E), true);
		T("ffn_down.weight", 2, F, E, 1, FILL_UNIFORM, fan(F), true);
	}
#undef T
	return 0;
}

static int check(const engine_jamba_random *p)
{
	if (p->n_vocab < 300 || p->n_vocab > (1u << 22) || !p->n_embd || !p->n_layer || !p->n_ff ||
	    !p->d_state || !p->d_conv || !p->expand || !p->attn_period || !p->expert_period)
		return ag_error_set(AG_EINVAL,
				    "random model: sizes must be positive (vocabulary at least 300)");
	if (p->attn_offset >= p->attn_period || p->expert_offset >= p->expert_period)
		return ag_error_set(AG_EINVAL, "random model: an offset must be below its period");
	if (!p->n_head || p->n_embd % p->n_head || !p->n_head_kv || p->n_head % p->n_head_kv)
		return ag_error_set(AG_EINVAL,
				    "random model: heads must divide the embedding and group the KV heads");
	if (p->n_expert > 1 && (!p->n_expert_used || p->n_expert_used > p->n_expert))
		return ag_error_set(AG_EINVAL,
				    "random model: experts used must be between 1 and the expert count");
	if (!engine_type_block_size(p->weight_type))
		return ag_error_set(AG_EINVAL, "random model: unknown weight type");
	return 0;
}

int engine_jamba_random_write(const engine_jamba_random *p, const char *path)
{
	int rc = check(p);
	if (rc)
		return rc;
	uint32_t D = p->expand * p->n_embd, R = p->dt_rank ? p->dt_rank : (p->n_embd + 15) / 16;
	bool experts = p->n_expert > 1;
	gen g = {NULL, p, {p->seed}, NULL, 0};
	vocab v = {0};
	int32_t *kv = ag_calloc(p->n_layer, sizeof(int32_t));
	if (!kv || (rc = engine_gguf_writer_new(&g.w)))
		goto done;
	for (uint32_t i = 0; i < p->n_layer; i++)
		kv[i] = i % p->attn_period == p->attn_offset ? (int32_t)p->n_head_kv : 0;
	engine_gguf_writer *w = g.w;
	uint32_t u, align = 32, ctx = 262144, zero = 0, ftype = p->weight_type == ENGINE_TYPE_F32 ? 0 : 1;
	float eps = 1e-6f;
	uint8_t yes = 1;
	uint32_t bos = 1, eos = 2, unk = 0;
#define U32(key, val) (u = (val), engine_gguf_writer_kv(w, key, ENGINE_GGUF_U32, &u))
	if ((rc = engine_gguf_writer_kv_str(w, "general.architecture", "jamba")) ||
	    (rc = engine_gguf_writer_kv_str(w, "general.name", "jamba-random")) ||
	    (rc = engine_gguf_writer_kv(w, "general.alignment", ENGINE_GGUF_U32, &align)) ||
	    (rc = engine_gguf_writer_kv(w, "general.file_type", ENGINE_GGUF_U32, &ftype)) ||
	    (rc = engine_gguf_writer_kv(w, "jamba.context_length", ENGINE_GGUF_U32, &ctx)) ||
	    (rc = U32("jamba.embedding_length", p->n_embd)) || (rc = U32("jamba.block_count", p->n_layer)) ||
	    (rc = U32("jamba.feed_forward_length", p->n_ff)) ||
	    (rc = U32("jamba.attention.head_count", p->n_head)) ||
	    (rc = engine_gguf_writer_kv_array(w, "jamba.attention.head_count_kv", ENGINE_GGUF_I32, kv,
					      p->n_layer)) ||
	    (rc = engine_gguf_writer_kv(w, "jamba.attention.layer_norm_rms_epsilon", ENGINE_GGUF_F32,
					&eps)) ||
	    (rc = U32("jamba.ssm.conv_kernel", p->d_conv)) || (rc = U32("jamba.ssm.inner_size", D)) ||
	    (rc = U32("jamba.ssm.state_size", p->d_state)) || (rc = U32("jamba.ssm.time_step_rank", R)) ||
	    (rc = engine_gguf_writer_kv(w, "jamba.expert_count", ENGINE_GGUF_U32,
					experts ? &p->n_expert : &zero)) ||
	    (rc = engine_gguf_writer_kv(w, "jamba.expert_used_count", ENGINE_GGUF_U32,
					experts ? &p->n_expert_used : &zero)))
		goto done;
#undef U32
	if ((rc = build_vocab(&v, p->n_vocab)) ||
	    (rc = engine_gguf_writer_kv_str(w, "tokenizer.ggml.model", "llama")) ||
	    (rc = engine_gguf_writer_kv_str(w, "tokenizer.ggml.pre", "default")) ||
	    (rc = engine_gguf_writer_kv_str_array(w, "tokenizer.ggml.tokens", (const char *const *)v.tok,
						  v.n)) ||
	    (rc = engine_gguf_writer_kv_array(w, "tokenizer.ggml.scores", ENGINE_GGUF_F32, v.score, v.n)) ||
	    (rc = engine_gguf_writer_kv_array(w, "tokenizer.ggml.token_type", ENGINE_GGUF_I32, v.type,
					      v.n)) ||
	    (rc = engine_gguf_writer_kv(w, "tokenizer.ggml.bos_token_id", ENGINE_GGUF_U32, &bos)) ||
	    (rc = engine_gguf_writer_kv(w, "tokenizer.ggml.eos_token_id", ENGINE_GGUF_U32, &eos)) ||
	    (rc = engine_gguf_writer_kv(w, "tokenizer.ggml.unknown_token_id", ENGINE_GGUF_U32, &unk)) ||
	    (rc = engine_gguf_writer_kv(w, "tokenizer.ggml.add_bos_token", ENGINE_GGUF_BOOL, &yes)) ||
	    (rc = engine_gguf_writer_kv(w, "tokenizer.ggml.add_space_prefix", ENGINE_GGUF_BOOL, &yes)) ||
	    (rc = engine_gguf_writer_kv_str(w, "tokenizer.chat_template",
					    "{% for message in messages %}{{'<|im_start|>' + message['role'] "
					    "+ '\\n' + message['content'] + "
					    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt "
					    "%}{{ '<|im_start|>assistant\\n' "
					    "}}{% endif %}")))
		goto done;
	if ((rc = tensor(&g, "token_embd.weight", 2, p->n_embd, p->n_vocab, 1, FILL_UNIFORM, 1.0f, true)) ||
	    (rc = tensor(&g, "output_norm.weight", 1, p->n_embd, 1, 1, FILL_NORM, 0, false)))
		goto done;
	if (!p->tied && (rc = tensor(&g, "output.weight", 2, p->n_embd, p->n_vocab, 1, FILL_UNIFORM,
				     fan(p->n_embd), true)))
		goto done;
	for (uint32_t i = 0; i < p->n_layer; i++) {
		bool moe = experts && i % p->expert_period == p->expert_offset;
		if ((rc = layer_tensors(&g, i, kv[i] != 0, moe, D, R)))
			goto done;
	}
	rc = engine_gguf_writer_save(w, path);
done:
	if (!kv && !rc)
		rc = ag_error_set(AG_ENOMEM, "out of memory");
	vocab_free(&v);
	ag_free(g.buf);
	ag_free(kv);
	engine_gguf_writer_free(g.w);
	return rc;
}
