/*
 * GGUF reader, module-internal: the parsed file's layout, shared by the parser
 * (gguf.c) and the accessors (gguf_access.c).
 */
#ifndef ENGINE_GGUF_INTERNAL_H
#define ENGINE_GGUF_INTERNAL_H

#include "engine/engine.h"

typedef struct gguf_kv {
	char *key;
	int type;
	int elem_type;        /* arrays */
	uint64_t count;       /* arrays */
	const uint8_t *value; /* scalar bytes, a string's length field, or the first array element */
	const uint8_t **strs; /* string arrays: each element's u64 length field */
} gguf_kv;

struct engine_gguf {
	const uint8_t *base;
	size_t size;
	bool mapped;
	uint32_t version;
	uint32_t alignment;
	uint64_t n_kv, n_tensors;
	gguf_kv *kvs;
	engine_gguf_tensor *tensors;
	size_t *sorted;    /* tensor indices sorted by name */
	size_t *kv_sorted; /* key/value indices sorted by key */
	size_t meta_end;   /* end of the key/value section: the identity hash covers [0, meta_end) */
	size_t data_start;
};

#endif
