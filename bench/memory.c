/*
 * bench/memory: what a per-user memory saves. For a history of N tokens on a
 * ~100M-parameter random Jamba, compares resuming the user from their saved
 * state (load from SQLite, decompress, restore) with re-reading the history
 * through prefill, in time and bytes.
 *
 *   build/bench/memory [--history 8192,32768] [--threads 2] [--layers 6] [--embd 768]
 *                      [--vocab 32000] [--ff 2048] [--dir /tmp]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "memory/memory.h"

static double seconds_since(int64_t t0) { return (double)(ag_monotonic_ns() - t0) / 1e9; }

int main(int argc, char **argv)
{
	ag_alloc_init();
	ag_log_set_level(AG_LOG_WARN);
	const char *history = "8192,32768", *dir = "/tmp";
	long threads = 2, layers = 6, embd = 768, vocab = 32000, ff = 2048;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--history"))
			history = argv[i + 1];
		else if (!strcmp(argv[i], "--threads"))
			threads = strtol(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--layers"))
			layers = strtol(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--embd"))
			embd = strtol(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--vocab"))
			vocab = strtol(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--ff"))
			ff = strtol(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--dir"))
			dir = argv[i + 1];
		else {
			fprintf(stderr, "unknown option %s\n", argv[i]);
			return 2;
		}
	}
	char model_path[1024], db_path[1024];
	snprintf(model_path, sizeof model_path, "%s/bench-memory.gguf", dir);
	snprintf(db_path, sizeof db_path, "%s/bench-memory.db", dir);
	engine_jamba_random p;
	engine_jamba_random_init(&p);
	p.n_vocab = (uint32_t)vocab;
	p.n_embd = (uint32_t)embd;
	p.n_layer = (uint32_t)layers;
	p.n_ff = (uint32_t)ff;
	p.n_head = 12;
	p.n_head_kv = 4;
	p.attn_period = 8;
	p.attn_offset = 4;
	p.n_expert = 1;
	p.weight_type = ENGINE_TYPE_F32;
	if (engine_jamba_random_write(&p, model_path)) {
		fprintf(stderr, "writing the model: %s\n", ag_error_last());
		return 1;
	}
	engine_local *l;
	if (engine_local_open(&l, model_path, (int)threads)) {
		fprintf(stderr, "%s\n", ag_error_last());
		return 1;
	}
	engine_model *m = engine_local_model(l);
	const engine_config *cfg = engine_model_config(m);
	printf("model: %llu parameters, %u layers (%u Mamba, %u attention), d_model %u, %ld threads\n",
	       (unsigned long long)cfg->n_params, cfg->n_layer, cfg->n_mamba, cfg->n_attention, cfg->n_embd,
	       threads);
	remove(db_path);
	sqlite3 *db;
	if (ag_db_open(&db, db_path) || memory_migrate(db)) {
		fprintf(stderr, "%s\n", ag_error_last());
		return 1;
	}
	char model_id[MEMORY_MODEL_ID_MAX + 1];
	memory_model_id(l, model_id);
	printf("%8s %12s %12s %12s %12s %12s %9s\n", "history", "prefill_s", "resume_s", "speedup",
	       "state_bytes", "stored_bytes", "tok_bytes");
	char buf[256];
	snprintf(buf, sizeof buf, "%s", history);
	uint64_t seed = 7;
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		long n = strtol(tok, NULL, 10);
		int32_t *ids = malloc((size_t)n * sizeof *ids);
		for (long i = 0; i < n; i++) {
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			ids[i] = (int32_t)(300 + (seed >> 33) % (uint64_t)(vocab - 300));
		}
		float *logits = malloc((size_t)cfg->n_vocab * sizeof *logits);
		/* Re-reading the history: a fresh state and the whole prefill. */
		engine_state *s;
		engine_state_new(&s, m);
		int64_t t0 = ag_monotonic_ns();
		if (engine_prefill(m, s, ids, (size_t)n, logits)) {
			fprintf(stderr, "prefill: %s\n", ag_error_last());
			return 1;
		}
		double prefill_s = seconds_since(t0);
		uint8_t *bytes;
		size_t len;
		engine_state_serialize(s, &bytes, &len);
		char user[32];
		snprintf(user, sizeof user, "user%ld", n);
		if (memory_save(db, "bench", user, model_id, bytes, len, n, 0, NULL)) {
			fprintf(stderr, "save: %s\n", ag_error_last());
			return 1;
		}
		ag_free(bytes);
		memory_info info;
		memory_get_info(db, "bench", user, &info);
		/* Resuming: load from the database, decompress, restore; best of three. */
		double resume_s = 1e9;
		for (int rep = 0; rep < 3; rep++) {
			t0 = ag_monotonic_ns();
			uint8_t *b2;
			size_t l2;
			engine_state *r;
			if (memory_load(db, "bench", user, model_id, &b2, &l2, NULL) ||
			    engine_state_restore(&r, m, b2, l2)) {
				fprintf(stderr, "resume: %s\n", ag_error_last());
				return 1;
			}
			double t = seconds_since(t0);
			if (t < resume_s)
				resume_s = t;
			ag_free(b2);
			engine_state_free(r);
		}
		printf("%8ld %12.3f %12.4f %11.0fx %12lld %12lld %9ld\n", n, prefill_s, resume_s,
		       prefill_s / resume_s, (long long)info.state_bytes, (long long)info.stored_bytes,
		       (long)(n * 4));
		fflush(stdout);
		engine_state_free(s);
		free(ids);
		free(logits);
	}
	ag_db_close(db);
	engine_local_free(l);
	remove(db_path);
	remove(model_path);
	return 0;
}
