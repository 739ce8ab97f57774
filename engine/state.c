/*
 * Sequence state: everything one sequence carries between tokens. Per Mamba
 * layer the conv window (the last d_conv-1 inputs, oldest first) and the SSM
 * state; per attention layer the K/V cache, which grows by doubling. States
 * fork (deep copy), serialise to a versioned little-endian byte format tagged
 * with the model identity, restore (refusing another model's bytes), and drop
 * their oldest K/V entries to bound memory.
 *
 * Byte format, version 1 (all little-endian):
 *   "AGSS" u32 version  u8[32] model identity
 *   u64 n_tokens  u64 n_kv  u32 n_mamba  u32 n_attn  u32 d_inner  u32 conv_len  u32 d_state
 *   u32 kv_dim[n_attn]
 *   f32 conv[n_mamba][d_inner][conv_len]  f32 ssm[n_mamba][d_inner][d_state]
 *   per attention layer: f32 K[n_kv][kv_dim], f32 V[n_kv][kv_dim]
 */
#include <string.h>

#include "engine/core_internal.h"

#define STATE_MAGIC   "AGSS"
#define STATE_VERSION 1u

int engine_state_new(engine_state **out, const engine_model *m)
{
	*out = NULL;
	const engine_config *c = &m->cfg;
	engine_state *s = ag_calloc(1, sizeof(*s));
	if (!s)
		return ag_error_set(AG_ENOMEM, "state: out of memory");
	s->m = m;
	s->n_mamba = c->n_mamba;
	s->n_attn = c->n_attention;
	s->d_inner = c->d_inner;
	s->conv_len = c->d_conv - 1;
	s->d_state = c->d_state;
	size_t nc = (size_t)s->n_mamba * s->d_inner * s->conv_len,
	       ns = (size_t)s->n_mamba * s->d_inner * s->d_state;
	s->conv = ag_calloc(nc ? nc : 1, sizeof(float));
	s->ssm = ag_calloc(ns ? ns : 1, sizeof(float));
	s->kv_dim = ag_calloc(s->n_attn + 1, sizeof(uint32_t));
	s->k = ag_calloc(s->n_attn + 1, sizeof(float *));
	s->v = ag_calloc(s->n_attn + 1, sizeof(float *));
	if (!s->conv || !s->ssm || !s->kv_dim || !s->k || !s->v) {
		engine_state_free(s);
		return ag_error_set(AG_ENOMEM, "state: out of memory");
	}
	for (uint32_t i = 0; i < c->n_layer; i++) {
		const engine_layer *L = &m->layers[i];
		if (L->kind == ENGINE_LAYER_ATTENTION)
			s->kv_dim[L->index] = L->n_head_kv * c->head_dim;
	}
	*out = s;
	return 0;
}

void engine_state_free(engine_state *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->n_attn; i++) {
		if (s->k)
			ag_free(s->k[i]);
		if (s->v)
			ag_free(s->v[i]);
	}
	for (uint32_t i = 0; s->k16 && i < s->n_attn; i++) {
		ag_free(s->k16[i]);
		ag_free(s->v16[i]);
	}
	ag_free(s->k16);
	ag_free(s->v16);
	ag_free(s->n16);
	ag_free(s->k);
	ag_free(s->v);
	ag_free(s->kv_dim);
	ag_free(s->conv);
	ag_free(s->ssm);
	ag_free(s);
}

int engine_state_reserve(engine_state *s, uint64_t need)
{
	if (need <= s->cap)
		return 0;
	uint64_t cap = s->cap ? s->cap : 16;
	while (cap < need)
		cap *= 2;
	for (uint32_t i = 0; i < s->n_attn; i++) {
		if (cap > SIZE_MAX / sizeof(float) / s->kv_dim[i])
			return ag_error_set(AG_ENOMEM, "state: %llu K/V entries do not fit in memory",
					    (unsigned long long)need);
		size_t bytes = (size_t)cap * s->kv_dim[i] * sizeof(float);
		float *k = ag_realloc(s->k[i], bytes);
		if (!k)
			return ag_error_set(AG_ENOMEM, "state: out of memory for %llu K/V entries",
					    (unsigned long long)cap);
		s->k[i] = k;
		float *v = ag_realloc(s->v[i], bytes);
		if (!v)
			return ag_error_set(AG_ENOMEM, "state: out of memory for %llu K/V entries",
					    (unsigned long long)cap);
		s->v[i] = v;
	}
	/* the capacity only moves once every layer holds it */
	s->cap = cap;
	return 0;
}

int engine_state_fork(engine_state **out, const engine_state *s)
{
	engine_state *d;
	int rc = engine_state_new(&d, s->m);
	if (rc)
		return rc;
	if ((rc = engine_state_reserve(d, s->n_kv))) {
		engine_state_free(d);
		return rc;
	}
	memcpy(d->conv, s->conv, (size_t)s->n_mamba * s->d_inner * s->conv_len * sizeof(float));
	memcpy(d->ssm, s->ssm, (size_t)s->n_mamba * s->d_inner * s->d_state * sizeof(float));
	for (uint32_t i = 0; i < s->n_attn; i++) {
		size_t bytes = (size_t)s->n_kv * s->kv_dim[i] * sizeof(float);
		if (bytes) {
			memcpy(d->k[i], s->k[i], bytes);
			memcpy(d->v[i], s->v[i], bytes);
		}
	}
	d->n_kv = s->n_kv;
	d->n_tokens = s->n_tokens;
	*out = d;
	return 0;
}

void engine_state_reset(engine_state *s)
{
	memset(s->conv, 0, (size_t)s->n_mamba * s->d_inner * s->conv_len * sizeof(float));
	memset(s->ssm, 0, (size_t)s->n_mamba * s->d_inner * s->d_state * sizeof(float));
	s->n_kv = 0;
	s->n_tokens = 0;
	if (s->n16)
		memset(s->n16, 0, s->n_attn * sizeof(uint64_t));
}

uint64_t engine_state_n_tokens(const engine_state *s) { return s->n_tokens; }

uint64_t engine_state_n_kv(const engine_state *s) { return s->n_kv; }

int engine_state_drop_oldest(engine_state *s, uint64_t n)
{
	if (n > s->n_kv)
		n = s->n_kv;
	if (!n)
		return 0;
	for (uint32_t i = 0; i < s->n_attn; i++) {
		size_t row = s->kv_dim[i];
		memmove(s->k[i], s->k[i] + n * row, (size_t)(s->n_kv - n) * row * sizeof(float));
		memmove(s->v[i], s->v[i] + n * row, (size_t)(s->n_kv - n) * row * sizeof(float));
	}
	s->n_kv -= n;
	if (s->n16) /* the copies' blocks no longer line up: rebuilt on next use */
		memset(s->n16, 0, s->n_attn * sizeof(uint64_t));
	return 0;
}

/* Grows every layer's BF16 copy to the F32 capacity; the new part is zeroed,
 * so positions past the end hold no NaN that a zero weight would spread. */
static int kv16_grow(engine_state *s)
{
	if (!s->k16) {
		s->k16 = ag_calloc(s->n_attn, sizeof(uint16_t *));
		s->v16 = ag_calloc(s->n_attn, sizeof(uint16_t *));
		s->n16 = ag_calloc(s->n_attn, sizeof(uint64_t));
		if (!s->k16 || !s->v16 || !s->n16) {
			ag_free(s->k16);
			ag_free(s->v16);
			ag_free(s->n16);
			s->k16 = s->v16 = NULL;
			s->n16 = NULL;
			return ag_error_set(AG_ENOMEM, "state: out of memory");
		}
	}
	for (uint32_t i = 0; i < s->n_attn; i++) {
		size_t old = (size_t)s->cap16 * s->kv_dim[i], want = (size_t)s->cap * s->kv_dim[i];
		uint16_t *k = ag_realloc(s->k16[i], want * sizeof(uint16_t));
		if (!k)
			return ag_error_set(AG_ENOMEM, "state: out of memory for the BF16 cache");
		s->k16[i] = k;
		uint16_t *v = ag_realloc(s->v16[i], want * sizeof(uint16_t));
		if (!v)
			return ag_error_set(AG_ENOMEM, "state: out of memory for the BF16 cache");
		s->v16[i] = v;
		memset(k + old, 0, (want - old) * sizeof(uint16_t));
		memset(v + old, 0, (want - old) * sizeof(uint16_t));
	}
	s->cap16 = s->cap;
	return 0;
}

int engine_state_kv16_sync(engine_state *s, uint32_t layer, uint64_t from, uint64_t upto)
{
	if (!s->k16 || s->cap16 < s->cap) {
		int rc = kv16_grow(s);
		if (rc)
			return rc;
	}
	size_t kvd = s->kv_dim[layer];
	uint64_t n = s->n16[layer] < from ? s->n16[layer] : from;
	for (; n < upto; n++)
		engine_kv16_put(s->k16[layer], s->v16[layer], kvd, n, s->k[layer] + n * kvd,
				s->v[layer] + n * kvd);
	s->n16[layer] = upto;
	return 0;
}

int engine_state_fill_synthetic(engine_state *s, uint64_t n, uint64_t seed)
{
	int rc = engine_state_reserve(s, s->n_kv + n);
	if (rc)
		return rc;
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
	for (uint32_t i = 0; i < s->n_attn; i++) {
		size_t count = (size_t)n * s->kv_dim[i];
		float *k = s->k[i] + s->n_kv * s->kv_dim[i], *v = s->v[i] + s->n_kv * s->kv_dim[i];
		for (size_t j = 0; j < count; j++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			k[j] = (float)((int64_t)(x >> 40) - (1 << 23)) * 0x1p-23f; /* in [-1, 1) */
			v[j] = (float)((int64_t)(x & 0xffffff) - (1 << 23)) * 0x1p-23f;
		}
	}
	s->n_kv += n;
	s->n_tokens += n;
	return 0;
}

/* ------------------------------------------------------------ bytes */

static void put32(ag_buf *b, uint32_t v, int *rc)
{
	uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	if (!*rc)
		*rc = ag_buf_append(b, x, 4);
}

static void put64(ag_buf *b, uint64_t v, int *rc)
{
	put32(b, (uint32_t)v, rc);
	put32(b, (uint32_t)(v >> 32), rc);
}

static void put_floats(ag_buf *b, const float *f, size_t n, int *rc)
{
	/* floats go out as their IEEE bits, little-endian like everything else */
	for (size_t i = 0; i < n && !*rc; i++) {
		uint32_t u;
		memcpy(&u, &f[i], 4);
		put32(b, u, rc);
	}
}

int engine_state_serialize(const engine_state *s, uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	ag_buf b = AG_BUF_INIT;
	size_t total = 4 + 4 + 32 + 16 + 20 + 4 * (size_t)s->n_attn +
		       4 * (size_t)s->n_mamba * s->d_inner * (s->conv_len + s->d_state);
	for (uint32_t i = 0; i < s->n_attn; i++)
		total += 8 * (size_t)s->n_kv * s->kv_dim[i];
	int rc = ag_buf_reserve(&b, total);
	if (!rc)
		rc = ag_buf_append(&b, STATE_MAGIC, 4);
	put32(&b, STATE_VERSION, &rc);
	if (!rc)
		rc = ag_buf_append(&b, s->m->identity, 32);
	put64(&b, s->n_tokens, &rc);
	put64(&b, s->n_kv, &rc);
	put32(&b, s->n_mamba, &rc);
	put32(&b, s->n_attn, &rc);
	put32(&b, s->d_inner, &rc);
	put32(&b, s->conv_len, &rc);
	put32(&b, s->d_state, &rc);
	for (uint32_t i = 0; i < s->n_attn; i++)
		put32(&b, s->kv_dim[i], &rc);
	put_floats(&b, s->conv, (size_t)s->n_mamba * s->d_inner * s->conv_len, &rc);
	put_floats(&b, s->ssm, (size_t)s->n_mamba * s->d_inner * s->d_state, &rc);
	for (uint32_t i = 0; i < s->n_attn; i++) {
		put_floats(&b, s->k[i], (size_t)s->n_kv * s->kv_dim[i], &rc);
		put_floats(&b, s->v[i], (size_t)s->n_kv * s->kv_dim[i], &rc);
	}
	if (rc) {
		ag_buf_free(&b);
		return ag_error_set(AG_ENOMEM, "state: out of memory serialising");
	}
	*out = (uint8_t *)ag_buf_detach(&b, len);
	return 0;
}

typedef struct reader {
	const uint8_t *p;
	size_t pos, len;
} reader;

static bool get32(reader *r, uint32_t *v)
{
	if (r->len - r->pos < 4)
		return false;
	const uint8_t *p = r->p + r->pos;
	*v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
	r->pos += 4;
	return true;
}

static bool get64(reader *r, uint64_t *v)
{
	uint32_t lo, hi;
	if (!get32(r, &lo) || !get32(r, &hi))
		return false;
	*v = (uint64_t)hi << 32 | lo;
	return true;
}

static bool get_floats(reader *r, float *f, size_t n)
{
	if ((r->len - r->pos) / 4 < n)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint32_t u = 0;
		get32(r, &u);
		memcpy(&f[i], &u, 4);
	}
	return true;
}

int engine_state_restore(engine_state **out, const engine_model *m, const uint8_t *data, size_t len)
{
	*out = NULL;
	reader r = {data, 0, len};
	uint32_t ver;
	if (len < 40 || memcmp(data, STATE_MAGIC, 4))
		return ag_error_set(AG_ECORRUPT, "state: not a saved engine state");
	r.pos = 4;
	get32(&r, &ver);
	if (ver != STATE_VERSION)
		return ag_error_set(AG_EUNSUPPORTED, "state: format version %u not supported", ver);
	if (memcmp(data + 8, m->identity, 32))
		return ag_error_set(AG_ECONFLICT, "state: saved for another model");
	r.pos = 40;
	engine_state *s;
	int rc = engine_state_new(&s, m);
	if (rc)
		return rc;
	uint64_t n_tokens, n_kv;
	uint32_t nm, na, di, cl, ds;
	if (!get64(&r, &n_tokens) || !get64(&r, &n_kv) || !get32(&r, &nm) || !get32(&r, &na) ||
	    !get32(&r, &di) || !get32(&r, &cl) || !get32(&r, &ds))
		goto corrupt;
	if (nm != s->n_mamba || na != s->n_attn || di != s->d_inner || cl != s->conv_len ||
	    ds != s->d_state || n_kv > n_tokens)
		goto corrupt;
	for (uint32_t i = 0; i < na; i++) {
		uint32_t kd;
		if (!get32(&r, &kd) || kd != s->kv_dim[i])
			goto corrupt;
	}
	/* check the K/V size against the bytes before allocating for it */
	uint64_t kv_bytes = 0;
	for (uint32_t i = 0; i < na; i++) {
		if (s->kv_dim[i] && n_kv > (len / 8) / s->kv_dim[i])
			goto corrupt;
		kv_bytes += 8 * n_kv * s->kv_dim[i];
	}
	if (kv_bytes > len)
		goto corrupt;
	if (!get_floats(&r, s->conv, (size_t)nm * di * cl) || !get_floats(&r, s->ssm, (size_t)nm * di * ds))
		goto corrupt;
	if ((rc = engine_state_reserve(s, n_kv)))
		goto fail;
	for (uint32_t i = 0; i < na; i++)
		if (!get_floats(&r, s->k[i], (size_t)n_kv * s->kv_dim[i]) ||
		    !get_floats(&r, s->v[i], (size_t)n_kv * s->kv_dim[i]))
			goto corrupt;
	if (r.pos != len)
		goto corrupt;
	s->n_tokens = n_tokens;
	s->n_kv = n_kv;
	*out = s;
	return 0;
corrupt:
	rc = ag_error_set(AG_ECORRUPT, "state: saved bytes are damaged or do not fit this model");
fail:
	engine_state_free(s);
	return rc;
}
