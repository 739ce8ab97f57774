/* Engine benchmark, for one GGUF and thread count:
 *   - the machine's memory bandwidth (read, and STREAM-style triad, over as
 *     many bytes as decode reads a token) and the decode bound it implies
 *     (bandwidth / weight bytes read per token);
 *   - prefill tokens/s on a 512-token prompt, against OpenBLAS sgemm on the
 *     same matrix shapes (F32, M = 512);
 *   - decode tokens/s over 128 tokens, and the fraction of the bound reached;
 *   - batched decode aggregate tokens/s at 1, 4 and 16 sequences;
 *   - decode tokens/s at 1K, 8K and 32K tokens of context (the attention
 *     caches filled synthetically: the time to prefill 32K would dwarf the run);
 *   - state bytes per sequence and peak memory.
 * Without --model it writes (or reuses) a random Jamba of about 1B parameters
 * in the shape of Jamba Reasoning 3B with fewer layers (d 2560, 8 layers, one
 * attention layer with 20 query heads on 1 KV head, ff 8192, vocab 65536).
 *
 *   build/bench/engine [--model F.gguf] [--type Q8_0|Q4_0|F16|BF16|F32] [--threads N]
 *                      [--kernels best|avx512vnni|avx512|avx2|portable] [--dir DIR] [--quick]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cblas.h>

#include "engine/engine.h"

static double now_s(void) { return (double)ag_monotonic_ns() / 1e9; }

/* ------------------------------------------------------------ bandwidth */

typedef struct bw_arg {
	float *a, *b, *c;
	size_t n;
	int triad;
	double sum;
} bw_arg;

static void *bw_worker(void *p)
{
	bw_arg *w = p;
	if (w->triad) {
		for (size_t i = 0; i < w->n; i++)
			w->a[i] = w->b[i] + 3.0f * w->c[i];
	} else {
		float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
		for (size_t i = 0; i + 8 <= w->n; i += 8) {
			s0 += w->b[i];
			s1 += w->b[i + 1];
			s2 += w->b[i + 2];
			s3 += w->b[i + 3];
			s4 += w->b[i + 4];
			s5 += w->b[i + 5];
			s6 += w->b[i + 6];
			s7 += w->b[i + 7];
		}
		w->sum = (double)(s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7);
	}
	return NULL;
}

/* Best of 3 passes over bytes of memory (as much as decode reads a token, so
 * no cache holds a useful part of it: over 128 MiB this host reads ~20% faster
 * than over 1 GiB), split over the threads: a read pass, or a triad over three
 * arrays of a third each. */
static double bandwidth_here(int threads, int triad, size_t bytes)
{
	size_t n = bytes / 4 / 3;
	float *a = malloc(n * 4), *b = malloc(n * 4 * 3), *c = malloc(n * 4);
	if (!a || !b || !c) {
		free(a);
		free(b);
		free(c);
		return 0;
	}
	if (!triad)
		n *= 3; /* the read pass reads all of b */
	for (size_t i = 0; i < n; i++)
		b[i] = (float)(i & 255);
	for (size_t i = 0; triad && i < n; i++)
		a[i] = c[i] = (float)(i & 255);
	double best = 0;
	for (int rep = 0; rep < 3; rep++) {
		pthread_t th[64];
		bw_arg args[64];
		double t0 = now_s();
		for (int i = 0; i < threads; i++) {
			size_t lo = n * (size_t)i / (size_t)threads,
			       hi = n * (size_t)(i + 1) / (size_t)threads;
			args[i] = (bw_arg){a + lo, b + lo, c + lo, hi - lo, triad, 0};
			pthread_create(&th[i], NULL, bw_worker, &args[i]);
		}
		for (int i = 0; i < threads; i++)
			pthread_join(th[i], NULL);
		double dt = now_s() - t0, moved = (double)n * 4 * (triad ? 3 : 1);
		if (moved / dt > best)
			best = moved / dt;
	}
	free(a);
	free(b);
	free(c);
	return best / 1e9;
}

/* The same in a child process, so its buffers do not count in this
 * process's peak memory, which the benchmark reports for the engine. */
static double bandwidth(int threads, int triad, double decode_bytes)
{
	size_t bytes = decode_bytes > 512e6 ? (size_t)decode_bytes : (size_t)512 << 20;
	int fd[2];
	if (pipe(fd))
		return 0;
	pid_t pid = fork();
	if (pid == 0) {
		double v = bandwidth_here(threads, triad, bytes);
		ssize_t w = write(fd[1], &v, sizeof v);
		_exit(w == (ssize_t)sizeof v ? 0 : 1);
	}
	close(fd[1]);
	double v = 0;
	if (pid < 0 || read(fd[0], &v, sizeof v) != (ssize_t)sizeof v)
		v = 0;
	close(fd[0]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	return v;
}

/* ------------------------------------------------------------ model facts */

static bool is_matmul(const char *name)
{
	static const char *const parts[] = {
		"attn_q.",  "attn_k.",   "attn_v.", "attn_output.", "ssm_in.",       "ssm_x.", "ssm_dt.",
		"ssm_out.", "ffn_gate.", "ffn_up.", "ffn_down.",    "ffn_gate_inp.", "_exps."};
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
		if (strstr(name, parts[i]))
			return true;
	return false;
}

typedef struct facts {
	double decode_bytes;  /* weight bytes one decoded token reads */
	double prefill_flops; /* per prompt token, in the layers' projections */
	double sgemm_s;       /* sgemm time for those projections over 512 tokens */
} facts;

static double time_sgemm(int M, int N, int K, int reps)
{
	float *a = malloc((size_t)M * K * 4), *b = malloc((size_t)N * K * 4), *c = malloc((size_t)M * N * 4);
	for (size_t i = 0; i < (size_t)M * K; i++)
		a[i] = (float)(i % 7) * 0.1f;
	for (size_t i = 0; i < (size_t)N * K; i++)
		b[i] = (float)(i % 5) * 0.1f;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
	double best = 1e30;
	for (int r = 0; r < reps; r++) {
		double t0 = now_s();
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
		double dt = now_s() - t0;
		best = dt < best ? dt : best;
	}
	free(a);
	free(b);
	free(c);
	return best;
}

static int model_facts(const char *path, const engine_config *c, int prompt, int threads, facts *f)
{
	engine_gguf *g;
	if (engine_gguf_open(&g, path))
		return -1;
	memset(f, 0, sizeof *f);
	bool tied = !engine_gguf_find_tensor(g, "output.weight");
	/* shapes seen, to time sgemm once per shape */
	struct shape {
		uint64_t rows, cols;
		double count;
		double s;
	} shapes[64];
	size_t n_shapes = 0;
	for (size_t i = 0; i < engine_gguf_n_tensors(g); i++) {
		const engine_gguf_tensor *t = engine_gguf_tensor_at(g, i);
		double frac = 1;
		if (strstr(t->name, "_exps."))
			frac = (double)c->n_expert_used / (double)(c->n_expert ? c->n_expert : 1);
		if (!strcmp(t->name, "output.weight") || (tied && !strcmp(t->name, "token_embd.weight"))) {
			f->decode_bytes += (double)t->n_bytes; /* the logits of every token */
			continue;
		}
		if (!is_matmul(t->name))
			continue;
		f->decode_bytes += (double)t->n_bytes * frac;
		double values = (double)t->ne[0] * (double)t->ne[1] * (double)t->ne[2] * frac;
		f->prefill_flops += 2 * values;
		uint64_t rows = t->ne[1], cols = t->ne[0];
		double count = (double)t->ne[2] * frac;
		size_t k = 0;
		while (k < n_shapes && !(shapes[k].rows == rows && shapes[k].cols == cols))
			k++;
		if (k == n_shapes && n_shapes < 64)
			shapes[n_shapes++] = (struct shape){rows, cols, 0, 0};
		if (k < n_shapes)
			shapes[k].count += count;
	}
	/* OpenBLAS with the bench's threads (the engine runs it single-threaded in each of its own) */
	openblas_set_num_threads(threads);
	for (size_t k = 0; k < n_shapes; k++) {
		shapes[k].s = time_sgemm(prompt, (int)shapes[k].rows, (int)shapes[k].cols, 3);
		f->sgemm_s += shapes[k].s * shapes[k].count;
	}
	openblas_set_num_threads(1);
	engine_gguf_free(g);
	return 0;
}

/* ------------------------------------------------------------ runs */

static int32_t token_at(uint64_t i, uint32_t vocab)
{
	return (int32_t)(300 + (i * 7919) % (vocab > 300 ? vocab - 300 : 1));
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Decode steps tokens on one state; tokens/s. */
static double decode_rate(engine_model *m, engine_state *s, int steps, float *logits)
{
	uint32_t V = engine_model_config(m)->n_vocab;
	double t0 = now_s();
	for (int i = 0; i < steps; i++)
		if (engine_decode(m, s, token_at((uint64_t)i + 11, V), logits))
			return -1;
	return steps / (now_s() - t0);
}

static void batch_free(engine_state **s, int n)
{
	for (int i = 0; s && i < n; i++)
		engine_state_free(s[i]);
	free(s);
}

/* n (at most 16) sequences with 16 prompt tokens each, and one warm step. */
static engine_state **batch_new(engine_model *m, int n)
{
	uint32_t V = engine_model_config(m)->n_vocab;
	engine_state **s = calloc((size_t)n, sizeof *s);
	int32_t tok[16];
	for (int i = 0; s && i < n; i++) {
		int32_t p[16];
		for (int k = 0; k < 16; k++)
			p[k] = token_at((uint64_t)(i * 16 + k), V);
		if (engine_state_new(&s[i], m) || engine_prefill(m, s[i], p, 16, NULL)) {
			batch_free(s, n);
			return NULL;
		}
		tok[i] = token_at((uint64_t)i, V);
	}
	if (s && engine_decode_batch(m, s, tok, (size_t)n, NULL)) {
		batch_free(s, n);
		return NULL;
	}
	return s;
}

/* Aggregate tokens/s of steps batched steps of the n sequences s. */
static double batch_rate(engine_model *m, engine_state **s, int n, int steps, float *logits)
{
	uint32_t V = engine_model_config(m)->n_vocab;
	int32_t tok[16];
	double t0 = now_s();
	for (int step = 0; step < steps; step++) {
		for (int i = 0; i < n; i++)
			tok[i] = token_at((uint64_t)(step * n + i), V);
		if (engine_decode_batch(m, s, tok, (size_t)n, logits))
			return -1;
	}
	return (double)n * steps / (now_s() - t0);
}

static int write_default(const char *path, uint32_t type)
{
	if (access(path, R_OK) == 0)
		return 0;
	fprintf(stderr, "bench: writing %s (about a minute)\n", path);
	engine_jamba_random p;
	engine_jamba_random_init(&p);
	p.n_vocab = 65536;
	p.n_embd = 2560;
	p.n_layer = 8;
	p.n_ff = 8192;
	p.n_head = 20;
	p.n_head_kv = 1;
	p.attn_period = 8;
	p.attn_offset = 4;
	p.n_expert = 1;
	p.d_state = 16;
	p.tied = true;
	p.weight_type = type;
	p.seed = 7;
	return engine_jamba_random_write(&p, path);
}

int main(int argc, char **argv)
{
	ag_alloc_init();
	const char *model = NULL, *dir = "/tmp", *kernels = "best", *tname = "Q8_0";
	long long threads = 2;
	bool quick = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--model") && i + 1 < argc)
			model = argv[++i];
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--kernels") && i + 1 < argc)
			kernels = argv[++i];
		else if (!strcmp(argv[i], "--type") && i + 1 < argc)
			tname = argv[++i];
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			ag_parse_long(argv[++i], 1, 64, &threads);
		else if (!strcmp(argv[i], "--quick"))
			quick = true;
		else {
			fprintf(stderr,
				"usage: %s [--model F] [--type T] [--threads N] [--kernels K] [--dir D] "
				"[--quick]\n",
				argv[0]);
			return 2;
		}
	}
	char path[1024];
	if (!model) {
		uint32_t types[] = {ENGINE_TYPE_Q8_0, ENGINE_TYPE_Q4_0, ENGINE_TYPE_F16, ENGINE_TYPE_BF16,
				    ENGINE_TYPE_F32};
		uint32_t type = ENGINE_TYPE_Q8_0;
		for (size_t i = 0; i < 5; i++)
			if (!strcmp(tname, engine_type_name(types[i])))
				type = types[i];
		snprintf(path, sizeof path, "%s/agentd-bench-jamba1b-%s.gguf", dir, engine_type_name(type));
		if (write_default(path, type)) {
			fprintf(stderr, "bench: %s\n", ag_error_last());
			return 1;
		}
		model = path;
	}
	engine_model *m;
	if (engine_model_load(&m, model) || engine_set_threads(m, (int)threads) ||
	    engine_set_kernels(m, kernels)) {
		fprintf(stderr, "bench: %s\n", ag_error_last());
		return 1;
	}
	const engine_config *c = engine_model_config(m);
	int prompt = 512, gen = quick ? 32 : 128, steps = quick ? 16 : 48;
	facts f;
	if (model_facts(model, c, prompt, (int)threads, &f)) {
		fprintf(stderr, "bench: %s\n", ag_error_last());
		return 1;
	}
	printf("model: %s\n", model);
	printf("  %.3fB parameters, %u layers (%u Mamba, %u attention, %u MoE), d %u, ff %u, vocab %u\n",
	       (double)c->n_params / 1e9, c->n_layer, c->n_mamba, c->n_attention, c->n_moe, c->n_embd,
	       c->n_ff, c->n_vocab);
	printf("  threads %lld, kernels %s\n", threads, engine_kernels_name(m));

	double bw_read = bandwidth((int)threads, 0, f.decode_bytes),
	       bw_triad = bandwidth((int)threads, 1, f.decode_bytes);
	double bound = bw_read * 1e9 / f.decode_bytes, bound_triad = bw_triad * 1e9 / f.decode_bytes;
	printf("memory bandwidth: read %.1f GB/s, triad %.1f GB/s (%lld threads)\n", bw_read, bw_triad,
	       threads);
	printf("decode reads %.1f MB of weights a token: bound %.2f tokens/s at the read bandwidth (%.2f at "
	       "the triad's)\n",
	       f.decode_bytes / 1e6, bound, bound_triad);

	uint32_t V = c->n_vocab;
	float *logits = malloc(V * sizeof(float));
	int32_t *toks = malloc((size_t)prompt * sizeof(int32_t));
	for (int i = 0; i < prompt; i++)
		toks[i] = token_at((uint64_t)i, V);
	engine_state *s;
	engine_state_new(&s, m);
	double t0 = now_s();
	if (engine_prefill(m, s, toks, (size_t)prompt, logits)) {
		fprintf(stderr, "bench: %s\n", ag_error_last());
		return 1;
	}
	double pre = now_s() - t0;
	double gf = f.prefill_flops * prompt / pre / 1e9, gsg = f.prefill_flops * prompt / f.sgemm_s / 1e9;
	printf("prefill %d tokens: %.1f tokens/s, %.1f GFLOP/s in the projections; sgemm on the same "
	       "shapes %.1f GFLOP/s (%.1f tokens/s): %.0f%% of sgemm\n",
	       prompt, prompt / pre, gf, gsg, prompt / f.sgemm_s, 100 * gf / gsg);

	double dec = decode_rate(m, s, gen, logits);
	printf("decode %d tokens: %.2f tokens/s = %.1f GB/s of weights: %.0f%% of the read-bandwidth bound, "
	       "%.0f%% of the triad bound\n",
	       gen, dec, dec * f.decode_bytes / 1e9, 100 * dec / bound, 100 * dec / bound_triad);
	/* The read figure above comes from a few milliseconds before the decode, and the host's
	 * bandwidth drifts by 2x from one second to the next; so decode is measured again in turns
	 * with the read measurement, five rounds of gen/4 tokens, each against its own round's
	 * bound, and the median round reported. */
	double frac[5], rbw[5];
	for (int r = 0; r < 5; r++) {
		rbw[r] = bandwidth((int)threads, 0, f.decode_bytes);
		frac[r] =
			decode_rate(m, s, gen / 4 > 4 ? gen / 4 : 4, logits) * f.decode_bytes / 1e9 / rbw[r];
	}
	qsort(frac, 5, sizeof(double), cmp_double);
	qsort(rbw, 5, sizeof(double), cmp_double);
	printf("decode in turns with the read measurement: %.0f%% of the read-bandwidth bound (median round; "
	       "rounds %.0f..%.0f%%, read %.1f..%.1f GB/s)\n",
	       100 * frac[2], 100 * frac[0], 100 * frac[4], rbw[0], rbw[4]);

	uint8_t *bytes;
	size_t len0, len1;
	engine_state *e;
	engine_state_new(&e, m);
	engine_state_serialize(e, &bytes, &len0);
	ag_free(bytes);
	engine_state_fill_synthetic(e, 1000, 1);
	engine_state_serialize(e, &bytes, &len1);
	ag_free(bytes);
	engine_state_free(e);
	double kv = (double)(len1 - len0) / 1000.0;
	printf("state per sequence: %zu bytes fixed (Mamba conv + SSM), plus %.0f bytes of K/V a token", len0,
	       kv);
	if (!strcmp(engine_kernels_name(m), "avx512vnni")) /* it attends over a BF16 copy besides */
		printf(" (and %.0f of their BF16 copy in memory)", kv / 2);
	printf("\n");

	/* Batch sizes are measured in turns too (see the contexts below): five
	 * rounds of steps/4 batched steps each, each size's median round. */
	int sizes[] = {1, 4, 16};
	engine_state **bs[3];
	double brates[3][5];
	float *blogits = malloc((size_t)16 * V * sizeof(float));
	for (int i = 0; i < 3; i++)
		if (!(bs[i] = batch_new(m, sizes[i]))) {
			fprintf(stderr, "bench: %s\n", ag_error_last());
			return 1;
		}
	for (int round = 0; round < 5; round++)
		for (int i = 0; i < 3; i++)
			brates[i][round] =
				batch_rate(m, bs[i], sizes[i], steps / 4 > 4 ? steps / 4 : 4, blogits);
	for (int i = 0; i < 3; i++) {
		qsort(brates[i], 5, sizeof(double), cmp_double);
		printf("batched decode, %2d sequences: %.2f tokens/s aggregate (%.1fx one sequence; rounds "
		       "%.2f..%.2f)\n",
		       sizes[i], brates[i][2], brates[i][2] / brates[0][2], brates[i][0], brates[i][4]);
		batch_free(bs[i], sizes[i]);
	}
	free(blogits);

	/* The three contexts are measured in turns, five rounds of steps/4 tokens each, and
	 * each one's median round is reported: the host's bandwidth drifts, and turns keep
	 * that drift out of the comparison. */
	long ctx[] = {1024, 8192, 32768};
	engine_state *cs[3];
	double rates[3][5];
	for (int i = 0; i < 3; i++) {
		engine_state_new(&cs[i], m);
		int32_t p[8];
		for (int k = 0; k < 8; k++)
			p[k] = token_at((uint64_t)k, V);
		engine_prefill(m, cs[i], p, 8, NULL);
		engine_state_fill_synthetic(cs[i], (uint64_t)ctx[i] - 8, 3);
		decode_rate(m, cs[i], 2, logits); /* warm */
	}
	for (int round = 0; round < 5; round++)
		for (int i = 0; i < 3; i++)
			rates[i][round] = decode_rate(m, cs[i], steps / 4 > 4 ? steps / 4 : 4, logits);
	double med[3];
	for (int i = 0; i < 3; i++) {
		qsort(rates[i], 5, sizeof(double), cmp_double);
		med[i] = rates[i][2];
		printf("decode at %5ld tokens of context: %.2f tokens/s (%+.1f%% against 1K; rounds "
		       "%.2f..%.2f)\n",
		       ctx[i], med[i], 100 * (med[i] - med[0]) / med[0], rates[i][0], rates[i][4]);
		engine_state_free(cs[i]);
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("peak memory (RSS): %.0f MB\n", (double)ru.ru_maxrss / 1024.0);
	free(logits);
	free(toks);
	engine_state_free(s);
	engine_model_free(m);
	return 0;
}
