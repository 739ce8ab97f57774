/*
 * GGUF reader: maps a file (or takes bytes in memory) and parses the header,
 * the typed key/value metadata and the tensor infos of GGUF v2/v3, as ggml's
 * docs/gguf.md lays them out. Every read goes through a bounds-checked cursor
 * and every count and size is checked against the bytes that remain, so a
 * truncated, oversized or inconsistent file is refused with the offset where
 * it went wrong instead of being read out of bounds. Tensor data is not
 * copied: tensors point into the mapping.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/core_internal.h"
#include "engine/gguf_internal.h"

#define GGUF_MAGIC     0x46554747u /* "GGUF" little-endian */
#define GGUF_MAX_DEPTH 3           /* nested arrays */
#define GGUF_MAX_NAME  64          /* ggml's limit on tensor names, NUL included */
#define GGUF_MAX_KEY   65536

typedef struct cursor {
	const uint8_t *p;
	size_t pos, size;
} cursor;

static int corrupt(const cursor *c, const char *what)
{
	return ag_error_set(AG_ECORRUPT, "GGUF: %s at byte %zu", what, c->pos);
}

static int need(const cursor *c, uint64_t n, const char *what)
{
	if (n > c->size - c->pos)
		return corrupt(c, what);
	return 0;
}

static uint64_t le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static int rd_u32(cursor *c, uint32_t *v, const char *what)
{
	if (need(c, 4, what))
		return AG_ECORRUPT;
	*v = (uint32_t)le(c->p + c->pos, 4);
	c->pos += 4;
	return 0;
}

static int rd_u64(cursor *c, uint64_t *v, const char *what)
{
	if (need(c, 8, what))
		return AG_ECORRUPT;
	*v = le(c->p + c->pos, 8);
	c->pos += 8;
	return 0;
}

static int rd_str(cursor *c, const uint8_t **s, uint64_t *len, const char *what)
{
	if (rd_u64(c, len, what))
		return AG_ECORRUPT;
	if (need(c, *len, what))
		return AG_ECORRUPT;
	*s = c->p + c->pos;
	c->pos += *len;
	return 0;
}

static size_t scalar_size(int type)
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

/* Skips one value of type (used for nested arrays, whose elements we do not index). */
static int skip_value(cursor *c, int type, int depth)
{
	size_t sz = scalar_size(type);
	if (sz) {
		if (need(c, sz, "truncated value"))
			return AG_ECORRUPT;
		if (type == ENGINE_GGUF_BOOL && c->p[c->pos] > 1)
			return corrupt(c, "bool value not 0 or 1");
		c->pos += sz;
		return 0;
	}
	if (type == ENGINE_GGUF_STRING) {
		const uint8_t *s;
		uint64_t len;
		return rd_str(c, &s, &len, "truncated string");
	}
	if (type != ENGINE_GGUF_ARRAY)
		return corrupt(c, "unknown value type");
	if (depth >= GGUF_MAX_DEPTH)
		return corrupt(c, "arrays nested too deep");
	uint32_t et;
	uint64_t n;
	if (rd_u32(c, &et, "truncated array type") || rd_u64(c, &n, "truncated array count"))
		return AG_ECORRUPT;
	size_t esz = scalar_size((int)et);
	if (esz) {
		if (n > (c->size - c->pos) / esz)
			return corrupt(c, "array larger than the file");
		if (et == ENGINE_GGUF_BOOL) {
			for (uint64_t i = 0; i < n; i++)
				if (c->p[c->pos + i] > 1)
					return corrupt(c, "bool value not 0 or 1");
		}
		c->pos += n * esz;
		return 0;
	}
	if (et != ENGINE_GGUF_STRING && et != ENGINE_GGUF_ARRAY)
		return corrupt(c, "unknown array element type");
	/* every string or array element takes at least 8 bytes */
	if (n > (c->size - c->pos) / 8)
		return corrupt(c, "array count larger than the file");
	for (uint64_t i = 0; i < n; i++) {
		int rc = skip_value(c, (int)et, depth + 1);
		if (rc)
			return rc;
	}
	return 0;
}

static int parse_kv(engine_gguf *g, cursor *c, gguf_kv *kv)
{
	const uint8_t *k;
	uint64_t klen;
	uint32_t type;
	if (rd_str(c, &k, &klen, "truncated key"))
		return AG_ECORRUPT;
	if (klen == 0 || klen > GGUF_MAX_KEY)
		return corrupt(c, "empty or oversized key");
	if (memchr(k, 0, klen))
		return corrupt(c, "key with a NUL byte");
	kv->key = ag_strndup((const char *)k, klen);
	if (!kv->key)
		return ag_error_set(AG_ENOMEM, "GGUF: out of memory");
	if (rd_u32(c, &type, "truncated value type"))
		return AG_ECORRUPT;
	kv->type = (int)type;
	if (type == ENGINE_GGUF_ARRAY) {
		uint32_t et;
		uint64_t n;
		if (rd_u32(c, &et, "truncated array type") || rd_u64(c, &n, "truncated array count"))
			return AG_ECORRUPT;
		kv->elem_type = (int)et;
		kv->count = n;
		kv->value = c->p + c->pos;
		size_t esz = scalar_size((int)et);
		if (esz) { /* back over the array header: skip_value checks the elements */
			c->pos -= 12;
			return skip_value(c, ENGINE_GGUF_ARRAY, 0);
		}
		if (et == ENGINE_GGUF_STRING) {
			if (n > (c->size - c->pos) / 8)
				return corrupt(c, "string array count larger than the file");
			kv->strs = ag_malloc((size_t)(n ? n : 1) * sizeof(*kv->strs));
			if (!kv->strs)
				return ag_error_set(AG_ENOMEM, "GGUF: out of memory");
			for (uint64_t i = 0; i < n; i++) {
				const uint8_t *s;
				uint64_t len;
				kv->strs[i] = c->p + c->pos;
				if (rd_str(c, &s, &len, "truncated string in array"))
					return AG_ECORRUPT;
			}
			return 0;
		}
		if (et == ENGINE_GGUF_ARRAY) {
			c->pos -= 12;
			return skip_value(c, ENGINE_GGUF_ARRAY, 0);
		}
		return corrupt(c, "unknown array element type");
	}
	kv->value = c->p + c->pos;
	(void)g;
	return skip_value(c, (int)type, 0);
}

static int cmp_keys(const void *a, const void *b, void *ctx)
{
	const engine_gguf *g = ctx;
	return strcmp(g->kvs[*(const size_t *)a].key, g->kvs[*(const size_t *)b].key);
}

static int cmp_names(const void *a, const void *b, void *ctx)
{
	const engine_gguf *g = ctx;
	return strcmp(g->tensors[*(const size_t *)a].name, g->tensors[*(const size_t *)b].name);
}

static int parse_tensor(engine_gguf *g, cursor *c, engine_gguf_tensor *t)
{
	const uint8_t *name;
	uint64_t nlen;
	if (rd_str(c, &name, &nlen, "truncated tensor name"))
		return AG_ECORRUPT;
	if (nlen == 0 || nlen >= GGUF_MAX_NAME || memchr(name, 0, nlen))
		return corrupt(c, "tensor name empty, too long or with a NUL byte");
	t->name = ag_strndup((const char *)name, nlen);
	if (!t->name)
		return ag_error_set(AG_ENOMEM, "GGUF: out of memory");
	if (rd_u32(c, &t->n_dims, "truncated tensor dims"))
		return AG_ECORRUPT;
	if (t->n_dims < 1 || t->n_dims > 4)
		return ag_error_set(AG_ECORRUPT, "GGUF: tensor %s has %u dimensions", t->name, t->n_dims);
	for (int i = 0; i < 4; i++)
		t->ne[i] = 1;
	uint64_t count = 1;
	for (uint32_t i = 0; i < t->n_dims; i++) {
		if (rd_u64(c, &t->ne[i], "truncated tensor shape"))
			return AG_ECORRUPT;
		/* ggml keeps element counts below 2^63; anything near that is absurd */
		if (t->ne[i] == 0 || t->ne[i] > (UINT64_C(1) << 40) || count > (UINT64_C(1) << 48) / t->ne[i])
			return ag_error_set(AG_ECORRUPT, "GGUF: tensor %s has an absurd shape", t->name);
		count *= t->ne[i];
	}
	if (rd_u32(c, &t->type, "truncated tensor type") || rd_u64(c, &t->offset, "truncated tensor offset"))
		return AG_ECORRUPT;
	size_t bs = engine_type_block_size(t->type), bb = engine_type_block_bytes(t->type);
	if (!bs)
		return ag_error_set(AG_ECORRUPT, "GGUF: tensor %s has unknown type %u", t->name, t->type);
	if (t->ne[0] % bs)
		return ag_error_set(AG_ECORRUPT,
				    "GGUF: tensor %s: row of %llu values is not a multiple of %s blocks",
				    t->name, (unsigned long long)t->ne[0], engine_type_name(t->type));
	t->n_bytes = count / bs * bb;
	if (t->offset % g->alignment)
		return ag_error_set(AG_ECORRUPT, "GGUF: tensor %s offset %llu is not aligned to %u", t->name,
				    (unsigned long long)t->offset, g->alignment);
	return 0;
}

static int parse(engine_gguf *g)
{
	cursor c = {g->base, 0, g->size};
	uint32_t magic;
	if (rd_u32(&c, &magic, "file too short for a GGUF header"))
		return AG_ECORRUPT;
	if (magic != GGUF_MAGIC)
		return ag_error_set(AG_ECORRUPT, "GGUF: bad magic (not a GGUF file)");
	if (rd_u32(&c, &g->version, "truncated header"))
		return AG_ECORRUPT;
	if (g->version == 0x02000000u || g->version == 0x03000000u)
		return ag_error_set(AG_EUNSUPPORTED, "GGUF: big-endian files are not supported");
	if (g->version < 2 || g->version > 3)
		return ag_error_set(AG_EUNSUPPORTED, "GGUF: version %u not supported (2 or 3)", g->version);
	if (rd_u64(&c, &g->n_tensors, "truncated header") || rd_u64(&c, &g->n_kv, "truncated header"))
		return AG_ECORRUPT;
	/* a key/value takes at least 8+1+4+1 bytes, a tensor info 8+1+4+8+4+8 */
	if (g->n_kv > (c.size - c.pos) / 14)
		return corrupt(&c, "metadata count larger than the file");
	if (g->n_tensors > (c.size - c.pos) / 33)
		return corrupt(&c, "tensor count larger than the file");
	g->kvs = ag_calloc((size_t)g->n_kv + 1, sizeof(*g->kvs));
	g->tensors = ag_calloc((size_t)g->n_tensors + 1, sizeof(*g->tensors));
	g->sorted = ag_calloc((size_t)g->n_tensors + 1, sizeof(*g->sorted));
	g->kv_sorted = ag_calloc((size_t)g->n_kv + 1, sizeof(*g->kv_sorted));
	if (!g->kvs || !g->tensors || !g->sorted || !g->kv_sorted)
		return ag_error_set(AG_ENOMEM, "GGUF: out of memory");
	for (uint64_t i = 0; i < g->n_kv; i++) {
		int rc = parse_kv(g, &c, &g->kvs[i]);
		if (rc)
			return rc;
		g->kv_sorted[i] = (size_t)i;
	}
	/* sorted once: duplicates found in n log n (a hostile file may hold many keys) */
	qsort_r(g->kv_sorted, (size_t)g->n_kv, sizeof(size_t), cmp_keys, g);
	for (uint64_t i = 1; i < g->n_kv; i++)
		if (!strcmp(g->kvs[g->kv_sorted[i]].key, g->kvs[g->kv_sorted[i - 1]].key))
			return ag_error_set(AG_ECORRUPT, "GGUF: duplicate key %s",
					    g->kvs[g->kv_sorted[i]].key);
	g->meta_end = c.pos;
	g->alignment = 32;
	long ai = engine_gguf_find_kv(g, "general.alignment");
	if (ai >= 0) {
		if (g->kvs[ai].type != ENGINE_GGUF_U32)
			return ag_error_set(AG_ECORRUPT, "GGUF: general.alignment is not a UINT32");
		uint32_t a = (uint32_t)le(g->kvs[ai].value, 4);
		if (a == 0 || (a & (a - 1)) || a > (1u << 20))
			return ag_error_set(AG_ECORRUPT, "GGUF: general.alignment %u is not a power of two",
					    a);
		g->alignment = a;
	}
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		int rc = parse_tensor(g, &c, &g->tensors[i]);
		if (rc)
			return rc;
		g->sorted[i] = (size_t)i;
	}
	uint64_t start = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
	if (g->n_tensors && start > c.size)
		return corrupt(&c, "file ends before the tensor data");
	g->data_start = (size_t)(start < c.size ? start : c.size);
	uint64_t data_size = c.size - g->data_start;
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		engine_gguf_tensor *t = &g->tensors[i];
		if (t->offset > data_size || t->n_bytes > data_size - t->offset)
			return ag_error_set(
				AG_ECORRUPT,
				"GGUF: tensor %s (%llu bytes at offset %llu) lies beyond the end of the file",
				t->name, (unsigned long long)t->n_bytes, (unsigned long long)t->offset);
		t->data = g->base + g->data_start + t->offset;
	}
	qsort_r(g->sorted, (size_t)g->n_tensors, sizeof(size_t), cmp_names, g);
	for (uint64_t i = 1; i < g->n_tensors; i++)
		if (!strcmp(g->tensors[g->sorted[i]].name, g->tensors[g->sorted[i - 1]].name))
			return ag_error_set(AG_ECORRUPT, "GGUF: duplicate tensor %s",
					    g->tensors[g->sorted[i]].name);
	return 0;
}

int engine_gguf_open_memory(engine_gguf **out, const void *data, size_t size)
{
	*out = NULL;
	engine_gguf *g = ag_calloc(1, sizeof(*g));
	if (!g)
		return ag_error_set(AG_ENOMEM, "GGUF: out of memory");
	g->base = data;
	g->size = size;
	int rc = parse(g);
	if (rc) {
		engine_gguf_free(g);
		return rc;
	}
	*out = g;
	return 0;
}

int engine_gguf_open(engine_gguf **out, const char *path)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ag_error_set(AG_EIO, "cannot open %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return ag_error_set(AG_EIO, "%s is not a readable regular file", path);
	}
	size_t size = (size_t)st.st_size;
	void *map = NULL;
	if (size) {
		/* populated up front, as llama.cpp does: no page fault per 4 KiB in the first pass */
		map = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
		if (map == MAP_FAILED) {
			close(fd);
			return ag_error_set(AG_EIO, "cannot map %s: %s", path, strerror(errno));
		}
	}
	close(fd);
	static const uint8_t empty[1];
	int rc = engine_gguf_open_memory(out, map ? map : empty, size);
	if (rc) {
		if (map)
			munmap(map, size);
		return ag_error_wrap(rc, "%s", path);
	}
	(*out)->mapped = map != NULL;
	return 0;
}

void engine_gguf_free(engine_gguf *g)
{
	if (!g)
		return;
	if (g->kvs)
		for (uint64_t i = 0; i < g->n_kv; i++) {
			ag_free(g->kvs[i].key);
			ag_free(g->kvs[i].strs);
		}
	if (g->tensors)
		for (uint64_t i = 0; i < g->n_tensors; i++)
			ag_free((char *)g->tensors[i].name);
	ag_free(g->kvs);
	ag_free(g->tensors);
	ag_free(g->sorted);
	ag_free(g->kv_sorted);
	if (g->mapped)
		munmap((void *)g->base, g->size);
	ag_free(g);
}
