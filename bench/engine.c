/* Engine benchmark: writes random Jamba models (about 100M parameters by
 * default) to a temporary directory and prints prompt (prefill) and decode
 * tokens/s for F32 and Q8_0 weights on 1 and 2 threads, plus the weight bytes
 * each decoded token reads and the bandwidth that implies.
 *
 *   build/bench/engine [DIR] [--tokens N] [--prompt N]
 * Models go to DIR (default /tmp) and are removed afterwards. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"

static double now_s(void) { return (double)ag_monotonic_ns() / 1e9; }

int main(int argc, char **argv)
{
	ag_alloc_init();
	const char *dir = "/tmp";
	long long n_gen = 64, n_prompt = 128;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--tokens") && i + 1 < argc)
			ag_parse_long(argv[++i], 1, 100000, &n_gen);
		else if (!strcmp(argv[i], "--prompt") && i + 1 < argc)
			ag_parse_long(argv[++i], 1, 100000, &n_prompt);
		else
			dir = argv[i];
	}
	uint32_t types[] = {ENGINE_TYPE_F32, ENGINE_TYPE_Q8_0};
	printf("model: vocab 32000, embd 768, 6 layers (2 attention, GQA 12/4), ff 2048, d_state 16, no "
	       "experts\n");
	printf("%-6s %7s %8s %16s %16s %12s\n", "type", "threads", "MB", "prompt tok/s", "decode tok/s",
	       "GB/s");
	for (size_t k = 0; k < 2; k++) {
		engine_jamba_random p;
		engine_jamba_random_init(&p);
		p.n_vocab = 32000;
		p.n_embd = 768;
		p.n_layer = 6;
		p.n_ff = 2048;
		p.n_head = 12;
		p.n_head_kv = 4;
		p.attn_period = 4;
		p.attn_offset = 1;
		p.n_expert = 1;
		p.d_state = 16;
		p.weight_type = types[k];
		p.seed = 5;
		char path[1024];
		snprintf(path, sizeof path, "%s/agentd-bench-engine-%d-%s.gguf", dir, (int)getpid(),
			 engine_type_name(types[k]));
		engine_model *m;
		if (engine_jamba_random_write(&p, path) || engine_model_load(&m, path)) {
			fprintf(stderr, "bench: %s\n", ag_error_last());
			unlink(path);
			return 1;
		}
		const engine_config *c = engine_model_config(m);
		/* bytes of the matrices a decoded token reads: everything but the embedding table */
		FILE *f = fopen(path, "rb");
		fseek(f, 0, SEEK_END);
		double mb = (double)ftell(f) / 1e6;
		fclose(f);
		double emb = (double)c->n_vocab * c->n_embd *
			     (types[k] == ENGINE_TYPE_F32 ? 4.0 : 34.0 / 32.0) / 1e6;
		int32_t *toks = malloc((size_t)n_prompt * sizeof(int32_t));
		for (long long i = 0; i < n_prompt; i++)
			toks[i] = (int32_t)(300 + (i * 7919) % (c->n_vocab - 300));
		float *logits = malloc(c->n_vocab * sizeof(float));
		for (int th = 1; th <= 2; th++) {
			engine_set_threads(m, th);
			engine_state *s;
			engine_state_new(&s, m);
			double t0 = now_s();
			engine_prefill(m, s, toks, (size_t)n_prompt, logits);
			double t1 = now_s();
			int32_t next = 300;
			for (long long i = 0; i < n_gen; i++) {
				engine_decode(m, s, next, logits);
				int32_t best = 0;
				for (uint32_t v = 1; v < c->n_vocab; v++)
					best = logits[v] > logits[best] ? (int32_t)v : best;
				next = best;
			}
			double t2 = now_s();
			double dec = (double)n_gen / (t2 - t1);
			printf("%-6s %7d %8.0f %16.1f %16.2f %12.2f\n", engine_type_name(types[k]), th, mb,
			       (double)n_prompt / (t1 - t0), dec, dec * (mb - emb) / 1e3);
			engine_state_free(s);
		}
		free(toks);
		free(logits);
		engine_model_free(m);
		unlink(path);
	}
	return 0;
}
