/*
 * The Jamba model: reads the configuration from a GGUF file's `jamba.*`
 * metadata (layer kinds from the per-layer KV-head counts, MoE layers from
 * the presence of a router tensor, norms, state sizes), binds every weight by
 * its llama.cpp name with its shape checked, converts the small vectors
 * (norms, biases, conv taps, A, D) to floats, and collects the tokenizer
 * metadata for engine_tokenizer_create. Big matrices are used where the file
 * was read to: anonymous memory, not a mapping of the file, because decode
 * streams weights from page-cache pages at two thirds of the rate it gets from
 * anonymous ones (13.5 against 19 GB/s on one core, measured here).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>
#include <string.h>

#include <cblas.h>

#include "engine/core_internal.h"

#define MAX_DIM (1u << 20)

static int get_u32(const engine_gguf *g, const char *key, bool required, uint32_t def, uint32_t max,
		   uint32_t *out)
{
	uint64_t v;
	int rc = engine_gguf_get_u64(g, key, &v);
	if (rc == AG_ENOTFOUND && !required) {
		*out = def;
		return 0;
	}
	if (rc == AG_ENOTFOUND)
		return ag_error_set(AG_ECORRUPT, "model: missing metadata key %s", key);
	if (rc)
		return ag_error_set(AG_ECORRUPT, "model: metadata key %s is not an unsigned integer", key);
	if (v > max)
		return ag_error_set(AG_ECORRUPT, "model: %s = %llu is out of range (at most %u)", key,
				    (unsigned long long)v, max);
	*out = (uint32_t)v;
	return 0;
}

static bool type_supported(uint32_t t)
{
	return t == ENGINE_TYPE_F32 || t == ENGINE_TYPE_F16 || t == ENGINE_TYPE_BF16 ||
	       t == ENGINE_TYPE_Q8_0 || t == ENGINE_TYPE_Q4_0 || t == ENGINE_TYPE_Q4_K ||
	       t == ENGINE_TYPE_Q5_K || t == ENGINE_TYPE_Q6_K;
}

/* Finds name and checks its shape is (ne0, ne1, ne2), trailing dims 1. */
static int find_shaped(const engine_model *m, const char *name, uint64_t ne0, uint64_t ne1, uint64_t ne2,
		       const engine_gguf_tensor **out)
{
	const engine_gguf_tensor *t = engine_gguf_find_tensor(m->gguf, name);
	if (!t)
		return ag_error_set(AG_ECORRUPT, "model: missing tensor %s", name);
	if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != ne2 || t->ne[3] != 1)
		return ag_error_set(
			AG_ECORRUPT,
			"model: tensor %s has shape [%llu, %llu, %llu, %llu], expected [%llu, %llu, %llu]",
			name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
			(unsigned long long)t->ne[2], (unsigned long long)t->ne[3], (unsigned long long)ne0,
			(unsigned long long)ne1, (unsigned long long)ne2);
	if (!type_supported(t->type))
		return ag_error_set(AG_EUNSUPPORTED, "model: tensor %s has type %s, not supported", name,
				    engine_type_name(t->type));
	*out = t;
	return 0;
}

static void weight_from(engine_weight *w, const engine_gguf_tensor *t)
{
	w->type = t->type;
	w->layout = ENGINE_LAYOUT_ROWS;
	w->cols = t->ne[0];
	w->rows = t->ne[1];
	w->count = t->ne[2];
	w->row_bytes =
		(size_t)(t->ne[0] / engine_type_block_size(t->type) * engine_type_block_bytes(t->type));
	w->data = t->data;
}

static int bind_matrix(engine_model *m, const char *name, uint64_t cols, uint64_t rows, uint64_t n_exp,
		       engine_weight *w)
{
	const engine_gguf_tensor *t;
	int rc = find_shaped(m, name, cols, rows, n_exp, &t);
	if (rc)
		return rc;
	weight_from(w, t);
	return 0;
}

/* A small tensor of ne0 * ne1 values, converted to floats (owned by the model). */
static int bind_floats(engine_model *m, const char *name, uint64_t ne0, uint64_t ne1, float **out)
{
	const engine_gguf_tensor *t;
	int rc = find_shaped(m, name, ne0, ne1, 1, &t);
	if (rc)
		return rc;
	engine_weight w;
	weight_from(&w, t);
	float *f = ag_malloc((size_t)(ne0 * ne1) * sizeof(float));
	if (!f)
		return ag_error_set(AG_ENOMEM, "model: out of memory");
	for (uint64_t r = 0; r < ne1; r++)
		m->kern->row_to_f32(&w, r, f + r * ne0);
	*out = f;
	return 0;
}

static const char *tname(char *buf, size_t n, uint32_t layer, const char *what)
{
	snprintf(buf, n, "blk.%u.%s", layer, what);
	return buf;
}

static int bind_mamba(engine_model *m, uint32_t i, engine_layer *L)
{
	const engine_config *c = &m->cfg;
	uint64_t D = c->d_inner, N = c->d_state, R = c->dt_rank, E = c->n_embd;
	char b[96];
	int rc;
	if ((rc = bind_matrix(m, tname(b, sizeof b, i, "ssm_in.weight"), E, 2 * D, 1, &L->ssm_in)) ||
	    (rc = bind_floats(m, tname(b, sizeof b, i, "ssm_conv1d.weight"), c->d_conv, D, &L->conv_w)) ||
	    (rc = bind_floats(m, tname(b, sizeof b, i, "ssm_conv1d.bias"), D, 1, &L->conv_b)) ||
	    (rc = bind_matrix(m, tname(b, sizeof b, i, "ssm_x.weight"), D, R + 2 * N, 1, &L->ssm_x)) ||
	    (rc = bind_floats(m, tname(b, sizeof b, i, "ssm_dt_norm.weight"), R, 1, &L->dt_norm)) ||
	    (rc = bind_floats(m, tname(b, sizeof b, i, "ssm_b_norm.weight"), N, 1, &L->b_norm)) ||
	    (rc = bind_floats(m, tname(b, sizeof b, i, "ssm_c_norm.weight"), N, 1, &L->c_norm)) ||
	    (rc = bind_matrix(m, tname(b, sizeof b, i, "ssm_dt.weight"), R, D, 1, &L->ssm_dt)) ||
	    (rc = bind_floats(m, tname(b, sizeof b, i, "ssm_dt.bias"), D, 1, &L->dt_b)) ||
	    (rc = bind_matrix(m, tname(b, sizeof b, i, "ssm_out.weight"), D, E, 1, &L->ssm_out)))
		return rc;
	/* llama.cpp names A and D without a ".weight" suffix; accept it too */
	const char *a =
		engine_gguf_find_tensor(m->gguf, tname(b, sizeof b, i, "ssm_a")) ? "ssm_a" : "ssm_a.weight";
	if ((rc = bind_floats(m, tname(b, sizeof b, i, a), N, D, &L->ssm_a)))
		return rc;
	const char *d =
		engine_gguf_find_tensor(m->gguf, tname(b, sizeof b, i, "ssm_d")) ? "ssm_d" : "ssm_d.weight";
	return bind_floats(m, tname(b, sizeof b, i, d), D, 1, &L->ssm_d);
}

static int bind_attention(engine_model *m, uint32_t i, engine_layer *L)
{
	const engine_config *c = &m->cfg;
	uint64_t E = c->n_embd, q = (uint64_t)c->n_head * c->head_dim,
		 kv = (uint64_t)L->n_head_kv * c->head_dim;
	char b[96];
	int rc;
	if ((rc = bind_matrix(m, tname(b, sizeof b, i, "attn_q.weight"), E, q, 1, &L->wq)) ||
	    (rc = bind_matrix(m, tname(b, sizeof b, i, "attn_k.weight"), E, kv, 1, &L->wk)) ||
	    (rc = bind_matrix(m, tname(b, sizeof b, i, "attn_v.weight"), E, kv, 1, &L->wv)) ||
	    (rc = bind_matrix(m, tname(b, sizeof b, i, "attn_output.weight"), q, E, 1, &L->wo)))
		return rc;
	return 0;
}

static int bind_ffn(engine_model *m, uint32_t i, engine_layer *L)
{
	const engine_config *c = &m->cfg;
	uint64_t E = c->n_embd, F = c->n_ff, X = c->n_expert;
	char b[96];
	int rc;
	if (L->moe) {
		if ((rc = bind_matrix(m, tname(b, sizeof b, i, "ffn_gate_inp.weight"), E, X, 1,
				      &L->router)) ||
		    (rc = bind_matrix(m, tname(b, sizeof b, i, "ffn_gate_exps.weight"), E, F, X,
				      &L->gate_x)) ||
		    (rc = bind_matrix(m, tname(b, sizeof b, i, "ffn_up_exps.weight"), E, F, X, &L->up_x)) ||
		    (rc = bind_matrix(m, tname(b, sizeof b, i, "ffn_down_exps.weight"), F, E, X, &L->down_x)))
			return rc;
		return 0;
	}
	if ((rc = bind_matrix(m, tname(b, sizeof b, i, "ffn_gate.weight"), E, F, 1, &L->gate)) ||
	    (rc = bind_matrix(m, tname(b, sizeof b, i, "ffn_up.weight"), E, F, 1, &L->up)) ||
	    (rc = bind_matrix(m, tname(b, sizeof b, i, "ffn_down.weight"), F, E, 1, &L->down)))
		return rc;
	return 0;
}

static int read_config(engine_model *m)
{
	const engine_gguf *g = m->gguf;
	engine_config *c = &m->cfg;
	const char *arch;
	size_t alen;
	if (engine_gguf_get_str(g, "general.architecture", &arch, &alen))
		return ag_error_set(AG_ECORRUPT, "model: no general.architecture string");
	if (alen != 5 || memcmp(arch, "jamba", 5))
		return ag_error_set(AG_EUNSUPPORTED, "model: architecture %.*s is not jamba",
				    (int)(alen > 64 ? 64 : alen), arch);
	int rc;
	if ((rc = get_u32(g, "jamba.block_count", true, 0, 4096, &c->n_layer)) ||
	    (rc = get_u32(g, "jamba.embedding_length", true, 0, MAX_DIM, &c->n_embd)) ||
	    (rc = get_u32(g, "jamba.feed_forward_length", true, 0, MAX_DIM, &c->n_ff)) ||
	    (rc = get_u32(g, "jamba.context_length", false, 0, UINT32_MAX, &c->n_ctx_train)) ||
	    (rc = get_u32(g, "jamba.attention.head_count", false, 0, MAX_DIM, &c->n_head)) ||
	    (rc = get_u32(g, "jamba.ssm.conv_kernel", true, 0, 64, &c->d_conv)) ||
	    (rc = get_u32(g, "jamba.ssm.inner_size", true, 0, MAX_DIM, &c->d_inner)) ||
	    (rc = get_u32(g, "jamba.ssm.state_size", true, 0, 1024, &c->d_state)) ||
	    (rc = get_u32(g, "jamba.ssm.time_step_rank", true, 0, MAX_DIM, &c->dt_rank)) ||
	    (rc = get_u32(g, "jamba.expert_count", false, 0, 1024, &c->n_expert)) ||
	    (rc = get_u32(g, "jamba.expert_used_count", false, 0, 1024, &c->n_expert_used)))
		return rc;
	if (!c->n_layer || !c->n_embd || !c->n_ff || !c->d_conv || !c->d_inner || !c->d_state || !c->dt_rank)
		return ag_error_set(AG_ECORRUPT, "model: a jamba size (layers, embedding, ff, ssm) is zero");
	double eps = 1e-6;
	rc = engine_gguf_get_f64(g, "jamba.attention.layer_norm_rms_epsilon", &eps);
	if (rc && rc != AG_ENOTFOUND)
		return ag_error_set(AG_ECORRUPT, "model: layer_norm_rms_epsilon is not a number");
	if (!(eps > 0 && eps < 1))
		return ag_error_set(AG_ECORRUPT, "model: rms epsilon %g out of range", eps);
	c->rms_eps = (float)eps;
	m->layers = ag_calloc(c->n_layer, sizeof(*m->layers));
	if (!m->layers)
		return ag_error_set(AG_ENOMEM, "model: out of memory");
	/* head_count_kv: an array (one per layer, 0 = Mamba) or, in generic writers, a scalar */
	int et;
	uint64_t cnt;
	bool kv_array = engine_gguf_get_array(g, "jamba.attention.head_count_kv", &et, &cnt) == 0;
	uint32_t kv_scalar = 0;
	if (kv_array && cnt != c->n_layer)
		return ag_error_set(AG_ECORRUPT, "model: head_count_kv has %llu entries for %u layers",
				    (unsigned long long)cnt, c->n_layer);
	if (!kv_array && (rc = get_u32(g, "jamba.attention.head_count_kv", true, 0, MAX_DIM, &kv_scalar)))
		return rc;
	for (uint32_t i = 0; i < c->n_layer; i++) {
		int64_t kv = kv_scalar;
		if (kv_array && engine_gguf_array_i64(g, "jamba.attention.head_count_kv", i, &kv))
			return ag_error_set(AG_ECORRUPT, "model: head_count_kv is not an integer array");
		if (kv < 0 || kv > MAX_DIM)
			return ag_error_set(AG_ECORRUPT, "model: head_count_kv[%u] = %lld", i, (long long)kv);
		engine_layer *L = &m->layers[i];
		L->kind = kv ? ENGINE_LAYER_ATTENTION : ENGINE_LAYER_MAMBA;
		L->n_head_kv = (uint32_t)kv;
		if (kv) {
			if (!c->n_head || c->n_head % kv)
				return ag_error_set(
					AG_ECORRUPT,
					"model: layer %u: %u heads do not group over %lld KV heads", i,
					c->n_head, (long long)kv);
			L->index = c->n_attention++;
		} else {
			L->index = c->n_mamba++;
		}
		char b[96];
		L->moe = engine_gguf_find_tensor(g, tname(b, sizeof b, i, "ffn_gate_inp.weight")) != NULL;
		if (L->moe)
			c->n_moe++;
	}
	if (c->n_attention) {
		uint32_t kl = 0;
		if ((rc = get_u32(g, "jamba.attention.key_length", false, 0, MAX_DIM, &kl)))
			return rc;
		c->head_dim = kl ? kl : c->n_embd / c->n_head;
		if (!c->head_dim)
			return ag_error_set(AG_ECORRUPT, "model: head dimension is zero");
	}
	if (c->n_moe && (!c->n_expert || !c->n_expert_used || c->n_expert_used > c->n_expert))
		return ag_error_set(AG_ECORRUPT, "model: MoE layers with %u experts, %u used", c->n_expert,
				    c->n_expert_used);
	return 0;
}

static char *dup_bytes(const char *s, size_t n)
{
	char *d = ag_strndup(s, n);
	if (!d)
		ag_error_set(AG_ENOMEM, "model: out of memory");
	return d;
}

static int read_vocab(engine_model *m)
{
	const engine_gguf *g = m->gguf;
	engine_vocab_desc *v = &m->vocab;
	memset(v, 0, sizeof(*v));
	v->bos_id = v->eos_id = v->unk_id = v->pad_id = -1;
	v->add_bos = true;
	v->add_space_prefix = true;
	const char *s;
	size_t n;
	if (!engine_gguf_get_str(g, "tokenizer.ggml.model", &s, &n) && !(m->vocab_model = dup_bytes(s, n)))
		return AG_ENOMEM;
	if (!engine_gguf_get_str(g, "tokenizer.ggml.pre", &s, &n) && !(m->vocab_pre = dup_bytes(s, n)))
		return AG_ENOMEM;
	if (!engine_gguf_get_str(g, "tokenizer.chat_template", &s, &n) &&
	    !(m->vocab_chat_template = dup_bytes(s, n)))
		return AG_ENOMEM;
	v->model = m->vocab_model;
	v->pre = m->vocab_pre;
	v->chat_template = m->vocab_chat_template;
	int et;
	uint64_t cnt;
	if (engine_gguf_get_array(g, "tokenizer.ggml.tokens", &et, &cnt) == 0) {
		if (et != ENGINE_GGUF_STRING)
			return ag_error_set(AG_ECORRUPT,
					    "model: tokenizer.ggml.tokens is not a string array");
		m->vocab_tokens = ag_calloc((size_t)cnt + 1, sizeof(char *));
		if (!m->vocab_tokens)
			return ag_error_set(AG_ENOMEM, "model: out of memory");
		v->n_tokens = (size_t)cnt;
		for (uint64_t i = 0; i < cnt; i++) {
			engine_gguf_array_str(g, "tokenizer.ggml.tokens", i, &s, &n);
			if (!(m->vocab_tokens[i] = dup_bytes(s, n)))
				return AG_ENOMEM;
		}
		v->tokens = (const char *const *)m->vocab_tokens;
		uint64_t c2;
		if (engine_gguf_get_array(g, "tokenizer.ggml.scores", &et, &c2) == 0) {
			if (c2 != cnt)
				return ag_error_set(AG_ECORRUPT, "model: %llu scores for %llu tokens",
						    (unsigned long long)c2, (unsigned long long)cnt);
			m->vocab_scores = ag_malloc((size_t)(cnt ? cnt : 1) * sizeof(float));
			if (!m->vocab_scores)
				return ag_error_set(AG_ENOMEM, "model: out of memory");
			for (uint64_t i = 0; i < cnt; i++) {
				double d;
				if (engine_gguf_array_f64(g, "tokenizer.ggml.scores", i, &d))
					return ag_error_set(AG_ECORRUPT,
							    "model: tokenizer.ggml.scores is not numeric");
				m->vocab_scores[i] = (float)d;
			}
			v->scores = m->vocab_scores;
		}
		if (engine_gguf_get_array(g, "tokenizer.ggml.token_type", &et, &c2) == 0) {
			if (c2 != cnt)
				return ag_error_set(AG_ECORRUPT, "model: %llu token types for %llu tokens",
						    (unsigned long long)c2, (unsigned long long)cnt);
			m->vocab_types = ag_malloc((size_t)(cnt ? cnt : 1) * sizeof(int32_t));
			if (!m->vocab_types)
				return ag_error_set(AG_ENOMEM, "model: out of memory");
			for (uint64_t i = 0; i < cnt; i++) {
				int64_t t;
				if (engine_gguf_array_i64(g, "tokenizer.ggml.token_type", i, &t) ||
				    t < INT32_MIN || t > INT32_MAX)
					return ag_error_set(
						AG_ECORRUPT,
						"model: tokenizer.ggml.token_type is not integer");
				m->vocab_types[i] = (int32_t)t;
			}
			v->types = m->vocab_types;
		}
	}
	if (engine_gguf_get_array(g, "tokenizer.ggml.merges", &et, &cnt) == 0 && et == ENGINE_GGUF_STRING) {
		m->vocab_merges = ag_calloc((size_t)cnt + 1, sizeof(char *));
		if (!m->vocab_merges)
			return ag_error_set(AG_ENOMEM, "model: out of memory");
		v->n_merges = (size_t)cnt;
		for (uint64_t i = 0; i < cnt; i++) {
			engine_gguf_array_str(g, "tokenizer.ggml.merges", i, &s, &n);
			if (!(m->vocab_merges[i] = dup_bytes(s, n)))
				return AG_ENOMEM;
		}
		v->merges = (const char *const *)m->vocab_merges;
	}
	static const char *const ids[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
					  "tokenizer.ggml.unknown_token_id",
					  "tokenizer.ggml.padding_token_id"};
	int32_t *dst[] = {&v->bos_id, &v->eos_id, &v->unk_id, &v->pad_id};
	for (int i = 0; i < 4; i++) {
		int64_t id;
		if (engine_gguf_get_i64(g, ids[i], &id) == 0)
			*dst[i] = id >= 0 && (uint64_t)id < v->n_tokens ? (int32_t)id : -1;
	}
	engine_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos);
	engine_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos);
	engine_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix);
	ag_error_clear();
	return 0;
}

static int bind_all(engine_model *m)
{
	engine_config *c = &m->cfg;
	const engine_gguf_tensor *te = engine_gguf_find_tensor(m->gguf, "token_embd.weight");
	if (!te)
		return ag_error_set(AG_ECORRUPT, "model: missing tensor token_embd.weight");
	if (te->ne[1] > UINT32_MAX / 2)
		return ag_error_set(AG_ECORRUPT, "model: vocabulary too large");
	c->n_vocab = (uint32_t)te->ne[1];
	int rc;
	if ((rc = bind_matrix(m, "token_embd.weight", c->n_embd, c->n_vocab, 1, &m->tok_embd)) ||
	    (rc = bind_floats(m, "output_norm.weight", c->n_embd, 1, &m->out_norm)))
		return rc;
	if (engine_gguf_find_tensor(m->gguf, "output.weight")) {
		if ((rc = bind_matrix(m, "output.weight", c->n_embd, c->n_vocab, 1, &m->output)))
			return rc;
	} else {
		m->output = m->tok_embd; /* tied embeddings */
	}
	for (uint32_t i = 0; i < c->n_layer; i++) {
		engine_layer *L = &m->layers[i];
		char b[96];
		if ((rc = bind_floats(m, tname(b, sizeof b, i, "attn_norm.weight"), c->n_embd, 1,
				      &L->attn_norm)) ||
		    (rc = bind_floats(m, tname(b, sizeof b, i, "ffn_norm.weight"), c->n_embd, 1,
				      &L->ffn_norm)))
			return rc;
		rc = L->kind == ENGINE_LAYER_MAMBA ? bind_mamba(m, i, L) : bind_attention(m, i, L);
		if (rc || (rc = bind_ffn(m, i, L)))
			return rc;
		size_t kvd = (size_t)L->n_head_kv * c->head_dim;
		if (kvd > m->max_kv_dim)
			m->max_kv_dim = kvd;
	}
	for (size_t i = 0; i < engine_gguf_n_tensors(m->gguf); i++) {
		const engine_gguf_tensor *t = engine_gguf_tensor_at(m->gguf, i);
		c->n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
	}
	return 0;
}

/* The identity saved states are tagged with: the hash of the header and metadata
 * (engine_gguf_identity) extended with a sample of every tensor's bytes (its first and
 * last 64), so two files that differ only in their weights (two fine-tunes of one
 * shape) never accept each other's states. Reading 128 bytes a tensor costs nothing. */
static void model_identity(engine_model *m)
{
	uint8_t head[32];
	engine_gguf_identity(m->gguf, head);
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, head, sizeof head);
	size_t n = engine_gguf_n_tensors(m->gguf);
	for (size_t i = 0; i < n; i++) {
		const engine_gguf_tensor *t = engine_gguf_tensor_at(m->gguf, i);
		size_t k = t->n_bytes < 64 ? (size_t)t->n_bytes : 64;
		crypto_hash_sha256_update(&st, t->data, k);
		crypto_hash_sha256_update(&st, (const uint8_t *)t->data + t->n_bytes - k, k);
	}
	crypto_hash_sha256_final(&st, m->identity);
}

/* The whole file into anonymous memory, read-only afterwards, in 2 MiB pages
 * where the kernel has them (transparent huge pages on request): decode
 * streams the weights every token, and with 4 KiB pages on the virtual
 * machine this was measured on, reading 1 GB into them took 2 s (0.1 s in
 * huge pages), and making them writable again for engine_set_kernels to
 * rewrite the matrices (repack.c) another 3 s (0.07). */
static int read_file(engine_model *m, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ag_error_set(AG_EIO, "cannot open: %s", strerror(errno));
	struct stat st;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return ag_error_set(AG_EIO, "not a readable file");
	}
	size_t size = (size_t)st.st_size, huge = (size_t)2 << 20, map_size = size ? size + huge : 0;
	void *map = size ? mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
			 : NULL;
	if (size && map == MAP_FAILED) {
		close(fd);
		return ag_error_set(AG_ENOMEM, "no memory for the %zu-byte model", size);
	}
	/* the file from a 2 MiB boundary, so every whole huge page of it can be one */
	uint8_t *p = size ? (uint8_t *)(((uintptr_t)map + huge - 1) & ~(uintptr_t)(huge - 1)) : NULL;
#ifdef MADV_HUGEPAGE
	if (size)
		madvise(p, size, MADV_HUGEPAGE); /* a hint: 4 KiB pages otherwise */
#endif
	size_t done = 0;
	while (done < size) {
		ssize_t n =
			read(fd, (uint8_t *)p + done, size - done < (1u << 30) ? size - done : (1u << 30));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = errno;
			close(fd);
			munmap(map, map_size);
			return ag_error_set(AG_EIO, "read failed at byte %zu: %s", done,
					    n ? strerror(e) : "file shrank");
		}
		done += (size_t)n;
	}
	close(fd);
	if (size)
		mprotect(p, size, PROT_READ);
	m->map = map;
	m->map_size = map_size;
	m->file = p;
	m->file_size = size;
	return 0;
}

int engine_model_load(engine_model **out, const char *path)
{
	*out = NULL;
	engine_model *m = ag_calloc(1, sizeof(*m));
	if (!m)
		return ag_error_set(AG_ENOMEM, "model: out of memory");
	m->kern = engine_kernels_find("best");
	openblas_set_num_threads(1); /* forward.c splits sgemm over its own pool */
	pthread_mutex_init(&m->pool_lock, NULL);
	int rc = read_file(m, path);
	if (!rc)
		rc = engine_gguf_open_memory(&m->gguf, m->file, m->file_size);
	if (!rc)
		rc = read_config(m);
	if (!rc)
		rc = bind_all(m);
	if (!rc)
		rc = read_vocab(m);
	if (rc) {
		rc = ag_error_wrap(rc, "%s", path);
		engine_model_free(m);
		return rc;
	}
	model_identity(m);
	*out = m;
	return 0;
}

static void free_strs(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		ag_free(v[i]);
	ag_free(v);
}

void engine_model_free(engine_model *m)
{
	if (!m)
		return;
	if (m->layers)
		for (uint32_t i = 0; i < m->cfg.n_layer; i++) {
			engine_layer *L = &m->layers[i];
			float *fs[] = {L->attn_norm, L->ffn_norm, L->conv_w, L->conv_b, L->dt_norm,
				       L->b_norm,    L->c_norm,   L->dt_b,   L->ssm_a,  L->ssm_d};
			for (size_t j = 0; j < sizeof(fs) / sizeof(fs[0]); j++)
				ag_free(fs[j]);
		}
	ag_free(m->layers);
	ag_free(m->out_norm);
	free_strs(m->vocab_tokens, m->vocab.n_tokens);
	free_strs(m->vocab_merges, m->vocab.n_merges);
	ag_free(m->vocab_scores);
	ag_free(m->vocab_types);
	ag_free(m->vocab_model);
	ag_free(m->vocab_pre);
	ag_free(m->vocab_chat_template);
	engine_pool_free(m->pool);
	ag_free(m->deq);
	ag_free(m->arena);
	pthread_mutex_destroy(&m->pool_lock);
	engine_gguf_free(m->gguf);
	if (m->map)
		munmap(m->map, m->map_size);
	ag_free(m);
}

const engine_config *engine_model_config(const engine_model *m) { return &m->cfg; }

engine_layer_kind engine_model_layer_kind(const engine_model *m, uint32_t layer)
{
	return layer < m->cfg.n_layer ? m->layers[layer].kind : ENGINE_LAYER_MAMBA;
}

bool engine_model_layer_moe(const engine_model *m, uint32_t layer)
{
	return layer < m->cfg.n_layer && m->layers[layer].moe;
}

uint32_t engine_model_layer_kv_heads(const engine_model *m, uint32_t layer)
{
	return layer < m->cfg.n_layer ? m->layers[layer].n_head_kv : 0;
}

const engine_vocab_desc *engine_model_vocab(const engine_model *m) { return &m->vocab; }

const uint8_t *engine_model_identity(const engine_model *m) { return m->identity; }

int engine_set_threads(engine_model *m, int n)
{
	if (n < 1 || n > 64)
		return ag_error_set(AG_EINVAL, "threads must be between 1 and 64, not %d", n);
	pthread_mutex_lock(&m->pool_lock);
	int rc = 0;
	if (engine_pool_size(m->pool) != n) {
		engine_pool *p = NULL;
		if (n > 1)
			rc = engine_pool_new(&p, n);
		if (!rc) {
			engine_pool_free(m->pool);
			m->pool = p;
		}
	}
	pthread_mutex_unlock(&m->pool_lock);
	if (!rc)
		openblas_set_num_threads(1); /* forward.c splits sgemm over its own pool */
	return rc;
}

int engine_set_kernels(engine_model *m, const char *name)
{
	const engine_kernels *k = engine_kernels_find(name);
	if (!k)
		return ag_error_set(AG_EUNSUPPORTED, "kernels \"%s\": unknown, or not supported by this CPU",
				    name ? name : "(null)");
	pthread_mutex_lock(&m->pool_lock);
	/* the weights in the order the new set reads them (repack.c) */
	int rc = engine_model_relayout(m, k->layout);
	if (!rc)
		m->kern = k;
	pthread_mutex_unlock(&m->pool_lock);
	return rc;
}

const char *engine_kernels_name(const engine_model *m) { return m->kern->name; }
