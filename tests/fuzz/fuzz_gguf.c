/* Fuzz harness: the GGUF reader over arbitrary bytes, then every accessor on
 * whatever it accepted, touching the first and last byte of every tensor so
 * a bounds mistake shows up under ASan. */
#include <stdint.h>
#include <string.h>

#include "engine/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a private copy: the reader must stay inside exactly these bytes */
	uint8_t *copy = ag_malloc(size ? size : 1);
	if (!copy)
		return 0;
	if (size)
		memcpy(copy, data, size);
	engine_gguf *g;
	if (engine_gguf_open_memory(&g, copy, size) == 0) {
		volatile uint8_t sink = 0;
		for (size_t i = 0; i < engine_gguf_n_kv(g); i++) {
			const char *key = engine_gguf_kv_key(g, i), *s;
			size_t n;
			uint64_t u, cnt;
			int64_t v;
			double d;
			bool b;
			int et;
			engine_gguf_get_u64(g, key, &u);
			engine_gguf_get_i64(g, key, &v);
			engine_gguf_get_f64(g, key, &d);
			engine_gguf_get_bool(g, key, &b);
			if (engine_gguf_get_str(g, key, &s, &n) == 0 && n)
				sink ^= (uint8_t)(s[0] ^ s[n - 1]);
			if (engine_gguf_get_array(g, key, &et, &cnt) == 0 && cnt) {
				uint64_t idx[2] = {0, cnt - 1};
				for (int k = 0; k < 2; k++) {
					engine_gguf_array_i64(g, key, idx[k], &v);
					engine_gguf_array_f64(g, key, idx[k], &d);
					if (engine_gguf_array_str(g, key, idx[k], &s, &n) == 0 && n)
						sink ^= (uint8_t)(s[0] ^ s[n - 1]);
				}
			}
		}
		for (size_t i = 0; i < engine_gguf_n_tensors(g); i++) {
			const engine_gguf_tensor *t = engine_gguf_tensor_at(g, i);
			const uint8_t *p = t->data;
			if (t->n_bytes)
				sink ^= (uint8_t)(p[0] ^ p[t->n_bytes - 1]);
			if (engine_gguf_find_tensor(g, t->name) == NULL)
				__builtin_trap();
		}
		uint8_t id[32];
		engine_gguf_identity(g, id);
		(void)sink;
		engine_gguf_free(g);
	}
	ag_free(copy);
	return 0;
}
