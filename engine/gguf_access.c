/*
 * GGUF access: typed getters over the parsed metadata, tensor lookup by name,
 * the model identity hash, and the table of ggml types (block sizes) with the
 * half/bfloat16 conversions every other layer uses. The values were checked
 * against the file's bounds by gguf.c, so these only decode.
 */
#include <math.h>
#include <string.h>

#include "engine/core_internal.h"
#include "engine/gguf_internal.h"

static uint64_t le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

uint32_t engine_gguf_version(const engine_gguf *g) { return g->version; }
uint32_t engine_gguf_alignment(const engine_gguf *g) { return g->alignment; }
size_t engine_gguf_n_kv(const engine_gguf *g) { return (size_t)g->n_kv; }
size_t engine_gguf_n_tensors(const engine_gguf *g) { return (size_t)g->n_tensors; }

const char *engine_gguf_kv_key(const engine_gguf *g, size_t i) { return i < g->n_kv ? g->kvs[i].key : NULL; }

int engine_gguf_kv_type(const engine_gguf *g, size_t i) { return i < g->n_kv ? g->kvs[i].type : -1; }

long engine_gguf_find_kv(const engine_gguf *g, const char *key)
{
	size_t lo = 0, hi = (size_t)g->n_kv;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(g->kvs[g->kv_sorted[mid]].key, key);
		if (!c)
			return (long)g->kv_sorted[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static const gguf_kv *find(const engine_gguf *g, const char *key)
{
	long i = engine_gguf_find_kv(g, key);
	if (i < 0) {
		ag_error_set(AG_ENOTFOUND, "GGUF: no key %s", key);
		return NULL;
	}
	return &g->kvs[i];
}

/* Decodes one integer-like scalar of type at p. is_signed tells how to read v. */
static int scalar_int(int type, const uint8_t *p, int64_t *sv, uint64_t *uv, bool *neg)
{
	int64_t s = 0;
	switch (type) {
	case ENGINE_GGUF_U8:
	case ENGINE_GGUF_BOOL: s = p[0]; break;
	case ENGINE_GGUF_I8: s = (int8_t)p[0]; break;
	case ENGINE_GGUF_U16: s = (int64_t)le(p, 2); break;
	case ENGINE_GGUF_I16: s = (int16_t)le(p, 2); break;
	case ENGINE_GGUF_U32: s = (int64_t)le(p, 4); break;
	case ENGINE_GGUF_I32: s = (int32_t)le(p, 4); break;
	case ENGINE_GGUF_U64:
		*uv = le(p, 8);
		*neg = false;
		*sv = (int64_t)*uv;
		return 0;
	case ENGINE_GGUF_I64: s = (int64_t)le(p, 8); break;
	default: return AG_EINVAL;
	}
	*sv = s;
	*neg = s < 0;
	*uv = (uint64_t)s;
	return 0;
}

static int scalar_f64(int type, const uint8_t *p, double *out)
{
	if (type == ENGINE_GGUF_F32) {
		uint32_t b = (uint32_t)le(p, 4);
		float f;
		memcpy(&f, &b, 4);
		*out = f;
		return 0;
	}
	if (type == ENGINE_GGUF_F64) {
		uint64_t b = le(p, 8);
		memcpy(out, &b, 8);
		return 0;
	}
	int64_t sv;
	uint64_t uv;
	bool neg;
	if (scalar_int(type, p, &sv, &uv, &neg))
		return AG_EINVAL;
	*out = type == ENGINE_GGUF_U64 ? (double)uv : (double)sv;
	return 0;
}

int engine_gguf_get_u64(const engine_gguf *g, const char *key, uint64_t *out)
{
	const gguf_kv *kv = find(g, key);
	if (!kv)
		return AG_ENOTFOUND;
	int64_t sv;
	uint64_t uv;
	bool neg;
	if (kv->type == ENGINE_GGUF_BOOL || scalar_int(kv->type, kv->value, &sv, &uv, &neg) || neg)
		return ag_error_set(AG_EINVAL, "GGUF: key %s is not an unsigned integer", key);
	*out = uv;
	return 0;
}

int engine_gguf_get_i64(const engine_gguf *g, const char *key, int64_t *out)
{
	const gguf_kv *kv = find(g, key);
	if (!kv)
		return AG_ENOTFOUND;
	int64_t sv;
	uint64_t uv;
	bool neg;
	if (kv->type == ENGINE_GGUF_BOOL || scalar_int(kv->type, kv->value, &sv, &uv, &neg) ||
	    (kv->type == ENGINE_GGUF_U64 && uv > INT64_MAX))
		return ag_error_set(AG_EINVAL, "GGUF: key %s is not a signed integer", key);
	*out = sv;
	return 0;
}

int engine_gguf_get_f64(const engine_gguf *g, const char *key, double *out)
{
	const gguf_kv *kv = find(g, key);
	if (!kv)
		return AG_ENOTFOUND;
	if (kv->type == ENGINE_GGUF_BOOL || scalar_f64(kv->type, kv->value, out))
		return ag_error_set(AG_EINVAL, "GGUF: key %s is not a number", key);
	return 0;
}

int engine_gguf_get_bool(const engine_gguf *g, const char *key, bool *out)
{
	const gguf_kv *kv = find(g, key);
	if (!kv)
		return AG_ENOTFOUND;
	if (kv->type != ENGINE_GGUF_BOOL)
		return ag_error_set(AG_EINVAL, "GGUF: key %s is not a bool", key);
	*out = kv->value[0] != 0;
	return 0;
}

int engine_gguf_get_str(const engine_gguf *g, const char *key, const char **s, size_t *len)
{
	const gguf_kv *kv = find(g, key);
	if (!kv)
		return AG_ENOTFOUND;
	if (kv->type != ENGINE_GGUF_STRING)
		return ag_error_set(AG_EINVAL, "GGUF: key %s is not a string", key);
	*len = (size_t)le(kv->value, 8);
	*s = (const char *)kv->value + 8;
	return 0;
}

int engine_gguf_get_array(const engine_gguf *g, const char *key, int *elem_type, uint64_t *count)
{
	const gguf_kv *kv = find(g, key);
	if (!kv)
		return AG_ENOTFOUND;
	if (kv->type != ENGINE_GGUF_ARRAY)
		return ag_error_set(AG_EINVAL, "GGUF: key %s is not an array", key);
	*elem_type = kv->elem_type;
	*count = kv->count;
	return 0;
}

static const gguf_kv *find_elem(const engine_gguf *g, const char *key, uint64_t i)
{
	const gguf_kv *kv = find(g, key);
	if (!kv)
		return NULL;
	if (kv->type != ENGINE_GGUF_ARRAY) {
		ag_error_set(AG_EINVAL, "GGUF: key %s is not an array", key);
		return NULL;
	}
	if (i >= kv->count) {
		ag_error_set(AG_EINVAL, "GGUF: index %llu past the end of %s", (unsigned long long)i, key);
		return NULL;
	}
	return kv;
}

static size_t elem_size(int type)
{
	switch (type) {
	case ENGINE_GGUF_U8:
	case ENGINE_GGUF_I8:
	case ENGINE_GGUF_BOOL: return 1;
	case ENGINE_GGUF_U16:
	case ENGINE_GGUF_I16: return 2;
	case ENGINE_GGUF_U32:
	case ENGINE_GGUF_I32:
	case ENGINE_GGUF_F32: return 4;
	case ENGINE_GGUF_U64:
	case ENGINE_GGUF_I64:
	case ENGINE_GGUF_F64: return 8;
	default: return 0;
	}
}

int engine_gguf_array_i64(const engine_gguf *g, const char *key, uint64_t i, int64_t *out)
{
	const gguf_kv *kv = find_elem(g, key, i);
	if (!kv)
		return ag_error_code();
	size_t es = elem_size(kv->elem_type);
	int64_t sv;
	uint64_t uv;
	bool neg;
	if (!es || scalar_int(kv->elem_type, kv->value + i * es, &sv, &uv, &neg) ||
	    (kv->elem_type == ENGINE_GGUF_U64 && uv > INT64_MAX))
		return ag_error_set(AG_EINVAL, "GGUF: %s is not an integer array", key);
	*out = sv;
	return 0;
}

int engine_gguf_array_f64(const engine_gguf *g, const char *key, uint64_t i, double *out)
{
	const gguf_kv *kv = find_elem(g, key, i);
	if (!kv)
		return ag_error_code();
	size_t es = elem_size(kv->elem_type);
	if (!es || scalar_f64(kv->elem_type, kv->value + i * es, out))
		return ag_error_set(AG_EINVAL, "GGUF: %s is not a numeric array", key);
	return 0;
}

int engine_gguf_array_str(const engine_gguf *g, const char *key, uint64_t i, const char **s, size_t *len)
{
	const gguf_kv *kv = find_elem(g, key, i);
	if (!kv)
		return ag_error_code();
	if (kv->elem_type != ENGINE_GGUF_STRING || !kv->strs)
		return ag_error_set(AG_EINVAL, "GGUF: %s is not a string array", key);
	*len = (size_t)le(kv->strs[i], 8);
	*s = (const char *)kv->strs[i] + 8;
	return 0;
}

const engine_gguf_tensor *engine_gguf_tensor_at(const engine_gguf *g, size_t i)
{
	return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const engine_gguf_tensor *engine_gguf_find_tensor(const engine_gguf *g, const char *name)
{
	size_t lo = 0, hi = (size_t)g->n_tensors;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const engine_gguf_tensor *t = &g->tensors[g->sorted[mid]];
		int c = strcmp(t->name, name);
		if (!c)
			return t;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void engine_gguf_identity(const engine_gguf *g, uint8_t out[32]) { ag_sha256(out, g->base, g->meta_end); }

/* ---------------------------------------------------------------- types */

typedef struct type_info {
	uint32_t id;
	const char *name;
	uint32_t block, bytes;
} type_info;

/* ggml's type table (ggml.c type_traits), enough to size every tensor of a
 * real file even when the engine cannot compute with its type. */
static const type_info TYPES[] = {
	{0, "F32", 1, 4},       {1, "F16", 1, 2},       {2, "Q4_0", 32, 18},    {3, "Q4_1", 32, 20},
	{6, "Q5_0", 32, 22},    {7, "Q5_1", 32, 24},    {8, "Q8_0", 32, 34},    {9, "Q8_1", 32, 36},
	{10, "Q2_K", 256, 84},  {11, "Q3_K", 256, 110}, {12, "Q4_K", 256, 144}, {13, "Q5_K", 256, 176},
	{14, "Q6_K", 256, 210}, {15, "Q8_K", 256, 292}, {24, "I8", 1, 1},       {25, "I16", 1, 2},
	{26, "I32", 1, 4},      {27, "I64", 1, 8},      {28, "F64", 1, 8},      {30, "BF16", 1, 2},
};

static const type_info *type_find(uint32_t t)
{
	for (size_t i = 0; i < sizeof(TYPES) / sizeof(TYPES[0]); i++)
		if (TYPES[i].id == t)
			return &TYPES[i];
	return NULL;
}

size_t engine_type_block_size(uint32_t type)
{
	const type_info *t = type_find(type);
	return t ? t->block : 0;
}

size_t engine_type_block_bytes(uint32_t type)
{
	const type_info *t = type_find(type);
	return t ? t->bytes : 0;
}

const char *engine_type_name(uint32_t type)
{
	const type_info *t = type_find(type);
	return t ? t->name : "?";
}

float engine_fp16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	if (exp == 0) {
		/* zero or subnormal: value = man * 2^-24 */
		float f = ldexpf((float)man, -24);
		return sign ? -f : f;
	}
	if (exp == 31)
		bits = sign | 0x7f800000u | (man << 13);
	else
		bits = sign | ((exp + 112) << 23) | (man << 13);
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t engine_f32_to_fp16(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	uint32_t sign = (x >> 16) & 0x8000;
	uint32_t ax = x & 0x7fffffffu;
	if (ax >= 0x7f800000u) /* inf or nan */
		return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
	if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
		return (uint16_t)(sign | 0x7c00);
	if (ax < 0x38800000u) { /* below 2^-14: subnormal half, round to nearest even */
		float a;
		memcpy(&a, &ax, 4);
		float q = a * 16777216.0f; /* a / 2^-24 */
		float r = nearbyintf(q);   /* default rounding mode: nearest even */
		return (uint16_t)(sign | (uint32_t)r);
	}
	uint32_t e = ((ax >> 23) - 112) << 10, m = (ax >> 13) & 0x3ff;
	uint32_t h = e | m;
	uint32_t rest = ax & 0x1fff;
	if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
		h++;
	return (uint16_t)(sign | h);
}

float engine_bf16_to_f32(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t engine_f32_to_bf16(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	if ((x & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((x >> 16) | 64); /* quiet nan */
	return (uint16_t)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}
