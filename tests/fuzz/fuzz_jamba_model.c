/* Fuzz harness: the Jamba model loader (metadata, layer kinds, tensor binding and
 * shape checks, vocabulary) over arbitrary files, then a short prefill and decode
 * on whatever loads, so a shape the loader let through cannot crash the pass. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	snprintf(path, sizeof path, "/tmp/fuzz-jamba-%d.gguf", (int)getpid());
	FILE *f = fopen(path, "wb");
	if (!f)
		return 0;
	bool ok = fwrite(data, 1, size, f) == size;
	if (fclose(f) || !ok) {
		unlink(path);
		return 0;
	}
	engine_model *m;
	if (engine_model_load(&m, path) == 0) {
		const engine_config *c = engine_model_config(m);
		float *logits = ag_malloc((size_t)c->n_vocab * sizeof(float));
		engine_state *s;
		if (logits && engine_state_new(&s, m) == 0) {
			int32_t toks[3] = {0, (int32_t)(c->n_vocab - 1), (int32_t)(c->n_vocab / 2)};
			if (engine_prefill(m, s, toks, 3, logits) == 0)
				engine_decode(m, s, 0, logits);
			engine_state_free(s);
		}
		ag_free(logits);
		engine_model_free(m);
	}
	unlink(path);
	return 0;
}
