/*
 * GGUF writer: builds a GGUF v3 file in memory — metadata of every type,
 * tensors converted from floats to F32/F16/BF16/Q8_0/Q4_0 the way ggml
 * quantises them — and writes it out. Used by the random-model tool and by
 * the tests, which also take its bytes apart to make malformed files.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/core_internal.h"

#define ALIGN 32

struct engine_gguf_writer {
	ag_buf kv; /* serialised key/values */
	uint64_t n_kv;
	ag_buf info; /* serialised tensor infos */
	uint64_t n_tensors;
	ag_buf data; /* tensor data, each aligned */
	int err;
};

int engine_gguf_writer_new(engine_gguf_writer **out)
{
	*out = ag_calloc(1, sizeof(**out));
	return *out ? 0 : ag_error_set(AG_ENOMEM, "out of memory");
}

void engine_gguf_writer_free(engine_gguf_writer *w)
{
	if (!w)
		return;
	ag_buf_free(&w->kv);
	ag_buf_free(&w->info);
	ag_buf_free(&w->data);
	ag_free(w);
}

static void put(engine_gguf_writer *w, ag_buf *b, const void *p, size_t n)
{
	if (n && !w->err && ag_buf_append(b, p, n))
		w->err = AG_ENOMEM;
}

static void put_le(engine_gguf_writer *w, ag_buf *b, uint64_t v, int n)
{
	uint8_t x[8];
	for (int i = 0; i < n; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	put(w, b, x, (size_t)n);
}

static void put_str(engine_gguf_writer *w, ag_buf *b, const char *s)
{
	size_t n = strlen(s);
	put_le(w, b, n, 8);
	put(w, b, s, n);
}

static size_t type_size(int t)
{
	switch (t) {
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

/* Values are C values of the host (little-endian x86/ARM): copy their bytes. */
static void put_value(engine_gguf_writer *w, int type, const void *v) { put(w, &w->kv, v, type_size(type)); }

static int done(engine_gguf_writer *w)
{
	return w->err ? ag_error_set(AG_ENOMEM, "GGUF writer: out of memory") : 0;
}

int engine_gguf_writer_kv(engine_gguf_writer *w, const char *key, int type, const void *value)
{
	if (!type_size(type))
		return ag_error_set(AG_EINVAL, "GGUF writer: %d is not a scalar type", type);
	put_str(w, &w->kv, key);
	put_le(w, &w->kv, (uint32_t)type, 4);
	put_value(w, type, value);
	w->n_kv++;
	return done(w);
}

int engine_gguf_writer_kv_str(engine_gguf_writer *w, const char *key, const char *s)
{
	put_str(w, &w->kv, key);
	put_le(w, &w->kv, ENGINE_GGUF_STRING, 4);
	put_str(w, &w->kv, s);
	w->n_kv++;
	return done(w);
}

int engine_gguf_writer_kv_array(engine_gguf_writer *w, const char *key, int elem_type, const void *values,
				uint64_t count)
{
	size_t es = type_size(elem_type);
	if (!es)
		return ag_error_set(AG_EINVAL, "GGUF writer: %d is not a scalar type", elem_type);
	put_str(w, &w->kv, key);
	put_le(w, &w->kv, ENGINE_GGUF_ARRAY, 4);
	put_le(w, &w->kv, (uint32_t)elem_type, 4);
	put_le(w, &w->kv, count, 8);
	put(w, &w->kv, values, (size_t)count * es);
	w->n_kv++;
	return done(w);
}

int engine_gguf_writer_kv_str_array(engine_gguf_writer *w, const char *key, const char *const *s,
				    uint64_t count)
{
	put_str(w, &w->kv, key);
	put_le(w, &w->kv, ENGINE_GGUF_ARRAY, 4);
	put_le(w, &w->kv, ENGINE_GGUF_STRING, 4);
	put_le(w, &w->kv, count, 8);
	for (uint64_t i = 0; i < count; i++)
		put_str(w, &w->kv, s[i]);
	w->n_kv++;
	return done(w);
}

/* ggml's reference quantisers (quantize_row_q8_0_ref / q4_0_ref), restated. */
static void quant_q8_0(engine_gguf_writer *w, const float *x, uint64_t n)
{
	for (uint64_t b = 0; b < n / 32; b++, x += 32) {
		float amax = 0;
		for (int j = 0; j < 32; j++)
			amax = fmaxf(amax, fabsf(x[j]));
		float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
		uint8_t blk[34];
		uint16_t h = engine_f32_to_fp16(d);
		blk[0] = (uint8_t)h;
		blk[1] = (uint8_t)(h >> 8);
		for (int j = 0; j < 32; j++)
			blk[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
		put(w, &w->data, blk, 34);
	}
}

static void quant_q4_0(engine_gguf_writer *w, const float *x, uint64_t n)
{
	for (uint64_t b = 0; b < n / 32; b++, x += 32) {
		float amax = 0, max = 0;
		for (int j = 0; j < 32; j++)
			if (fabsf(x[j]) > amax) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		float d = max / -8.0f, id = d ? 1.0f / d : 0.0f;
		uint8_t blk[18];
		uint16_t h = engine_f32_to_fp16(d);
		blk[0] = (uint8_t)h;
		blk[1] = (uint8_t)(h >> 8);
		for (int j = 0; j < 16; j++) {
			float a = x[j] * id + 8.5f, c = x[j + 16] * id + 8.5f;
			uint8_t qa = (uint8_t)(a < 15.0f ? (a > 0 ? a : 0) : 15.0f);
			uint8_t qc = (uint8_t)(c < 15.0f ? (c > 0 ? c : 0) : 15.0f);
			blk[2 + j] = (uint8_t)(qa | (qc << 4));
		}
		put(w, &w->data, blk, 18);
	}
}

int engine_gguf_writer_tensor(engine_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
			      const uint64_t *ne, const float *values)
{
	size_t bs = engine_type_block_size(type);
	if (type != ENGINE_TYPE_F32 && type != ENGINE_TYPE_F16 && type != ENGINE_TYPE_BF16 &&
	    type != ENGINE_TYPE_Q8_0 && type != ENGINE_TYPE_Q4_0 && type != ENGINE_TYPE_Q4_K &&
	    type != ENGINE_TYPE_Q5_K && type != ENGINE_TYPE_Q6_K)
		return ag_error_set(AG_EUNSUPPORTED, "GGUF writer: cannot write type %s",
				    engine_type_name(type));
	if (n_dims < 1 || n_dims > 4 || ne[0] % bs)
		return ag_error_set(AG_EINVAL, "GGUF writer: tensor %s: bad shape for %s", name,
				    engine_type_name(type));
	uint64_t count = 1;
	for (uint32_t i = 0; i < n_dims; i++)
		count *= ne[i];
	/* pad the data so this tensor starts aligned */
	static const uint8_t zeros[ALIGN];
	put(w, &w->data, zeros, (ALIGN - w->data.len % ALIGN) % ALIGN);
	uint64_t offset = w->data.len;
	put_str(w, &w->info, name);
	put_le(w, &w->info, n_dims, 4);
	for (uint32_t i = 0; i < n_dims; i++)
		put_le(w, &w->info, ne[i], 8);
	put_le(w, &w->info, type, 4);
	put_le(w, &w->info, offset, 8);
	switch (type) {
	case ENGINE_TYPE_F32: put(w, &w->data, values, (size_t)count * 4); break;
	case ENGINE_TYPE_F16:
		for (uint64_t i = 0; i < count; i++)
			put_le(w, &w->data, engine_f32_to_fp16(values[i]), 2);
		break;
	case ENGINE_TYPE_BF16:
		for (uint64_t i = 0; i < count; i++)
			put_le(w, &w->data, engine_f32_to_bf16(values[i]), 2);
		break;
	case ENGINE_TYPE_Q8_0: quant_q8_0(w, values, count); break;
	case ENGINE_TYPE_Q4_K:
	case ENGINE_TYPE_Q5_K:
	case ENGINE_TYPE_Q6_K: {
		uint8_t blk[210];
		size_t bb = engine_type_block_bytes(type);
		for (uint64_t b = 0; b < count / 256; b++) {
			if (type == ENGINE_TYPE_Q4_K)
				engine_quant_q4_k(values + b * 256, blk);
			else if (type == ENGINE_TYPE_Q5_K)
				engine_quant_q5_k(values + b * 256, blk);
			else
				engine_quant_q6_k(values + b * 256, blk);
			put(w, &w->data, blk, bb);
		}
		break;
	}
	default: quant_q4_0(w, values, count); break;
	}
	w->n_tensors++;
	return done(w);
}

int engine_gguf_writer_bytes(engine_gguf_writer *w, uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	ag_buf b = AG_BUF_INIT;
	engine_gguf_writer *ww = w;
	put(ww, &b, "GGUF", 4);
	put_le(ww, &b, 3, 4);
	put_le(ww, &b, w->n_tensors, 8);
	put_le(ww, &b, w->n_kv, 8);
	put(ww, &b, w->kv.data, w->kv.len);
	put(ww, &b, w->info.data, w->info.len);
	static const uint8_t zeros[ALIGN];
	if (w->n_tensors) {
		put(ww, &b, zeros, (ALIGN - b.len % ALIGN) % ALIGN);
		put(ww, &b, w->data.data, w->data.len);
	}
	if (w->err) {
		ag_buf_free(&b);
		return done(w);
	}
	*out = (uint8_t *)ag_buf_detach(&b, len);
	return 0;
}

int engine_gguf_writer_save(engine_gguf_writer *w, const char *path)
{
	/* written piecewise: a large model's data is not copied a second time */
	if (w->err)
		return done(w);
	ag_buf head = AG_BUF_INIT;
	put(w, &head, "GGUF", 4);
	put_le(w, &head, 3, 4);
	put_le(w, &head, w->n_tensors, 8);
	put_le(w, &head, w->n_kv, 8);
	put(w, &head, w->kv.data, w->kv.len);
	put(w, &head, w->info.data, w->info.len);
	static const uint8_t zeros[ALIGN];
	if (w->n_tensors)
		put(w, &head, zeros, (ALIGN - head.len % ALIGN) % ALIGN);
	if (w->err) {
		ag_buf_free(&head);
		return done(w);
	}
	FILE *f = fopen(path, "wb");
	if (!f) {
		ag_buf_free(&head);
		return ag_error_set(AG_EIO, "cannot create %s: %s", path, strerror(errno));
	}
	bool ok = fwrite(head.data, 1, head.len, f) == head.len;
	if (ok && w->data.len)
		ok = fwrite(w->data.data, 1, w->data.len, f) == w->data.len;
	ok = (fclose(f) == 0) && ok;
	ag_buf_free(&head);
	if (!ok)
		return ag_error_set(AG_EIO, "cannot write %s", path);
	return 0;
}
