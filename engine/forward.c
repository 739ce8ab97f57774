/*
 * The fast forward pass: float32 activations over the mapped weights, one
 * chunk of tokens at a time (a whole prompt, or one token when decoding).
 * Matrix products go through the kernel vtable with rows split over the
 * model's thread pool, or, for chunks of GEMM_MIN tokens and more, through
 * OpenBLAS sgemm (on the F32 weights directly, on dequantised row blocks
 * otherwise). The Mamba conv and scan are split over channels, attention over
 * (token, head) pairs. The maths is jamba-spec.md's; reference.c holds the
 * same pass in plain double precision.
 */
#include <string.h>

#include <cblas.h>

#include "engine/core_internal.h"

#define GEMM_MIN   8          /* tokens from which sgemm beats the row kernels */
#define CHUNK_MAX  256        /* prompt tokens processed together (bounds scratch memory) */
#define DEQ_FLOATS (1u << 22) /* per thread: 16 MiB of dequantised rows per sgemm call */
#if defined(__SANITIZE_ADDRESS__)
#define ARENA_MAX 0 /* every buffer its own allocation, so ASan sees overruns between them */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_MAX 0
#endif
#endif
#ifndef ARENA_MAX
#define ARENA_MAX (64u << 20) /* largest scratch arena a model keeps between passes */
#endif
#define SPILL_MAX 64

typedef struct pass {
	engine_model *m;
	engine_state *const *seq; /* (T) the sequence each token advances */
	const uint64_t *pos;      /* (T) each token's K/V position in its sequence */
	size_t T;
	size_t gemm_min; /* tokens from which products go through sgemm */
	int n_threads;
	float *scratch; /* (n_threads, max_cols) dequantised rows */
	size_t max_cols;
	float *deq;     /* (n_threads, DEQ_FLOATS) dequantised row blocks for sgemm */
	int8_t *act_q;  /* (T, max_cols) 8-bit activations, when the kernels have rows_q8 */
	float *act_d;   /* (T, max_cols / 32) their scales */
	int32_t *act_s; /* their sums (engine_act_quant) */
	/* scratch: a stack in the model's arena, spilling to the heap past it */
	size_t used, peak;
	void *spill[SPILL_MAX];
	size_t spill_at[SPILL_MAX];
	int n_spill;
} pass;

/* ------------------------------------------------------------ scratch */

/* A pass's buffers come from an arena the model keeps: malloc'd buffers of
 * this size come and go as fresh pages, and in a 16-sequence decode step the
 * page faults on them cost about 7% (perf). The arena is sized to the largest
 * pass seen so far (up to ARENA_MAX); a pass that needs more spills to the heap
 * for what does not fit. Buffers are released in stack order (scratch_mark,
 * scratch_release). */
static void *scratch_alloc(pass *P, size_t bytes)
{
	size_t at = P->used;
	bytes = (bytes + 63) & ~(size_t)63;
	P->used += bytes;
	P->peak = P->used > P->peak ? P->used : P->peak;
	if (P->used <= P->m->arena_cap)
		return P->m->arena + at;
	void *p = P->n_spill < SPILL_MAX ? ag_malloc(bytes) : NULL;
	if (!p) {
		P->used = at;
		return NULL;
	}
	P->spill[P->n_spill] = p;
	P->spill_at[P->n_spill++] = at;
	return p;
}

static size_t scratch_mark(const pass *P) { return P->used; }

static void scratch_release(pass *P, size_t mark)
{
	while (P->n_spill && P->spill_at[P->n_spill - 1] >= mark)
		ag_free(P->spill[--P->n_spill]);
	P->used = mark;
}

/* Before a pass: the arena grows to the largest need seen (its contents are
 * scratch, so nothing is copied). A failure only means spilling. */
static void scratch_begin(pass *P)
{
	engine_model *m = P->m;
	if (m->arena_cap < m->arena_peak) {
		ag_free(m->arena);
		m->arena = ag_malloc(m->arena_peak);
		m->arena_cap = m->arena ? m->arena_peak : 0;
	}
	P->used = P->peak = 0;
	P->n_spill = 0;
}

static void scratch_end(pass *P)
{
	scratch_release(P, 0);
	size_t want = P->peak > (size_t)ARENA_MAX ? (size_t)ARENA_MAX : P->peak;
	P->m->arena_peak = want > P->m->arena_peak ? want : P->m->arena_peak;
}

/* ------------------------------------------------------------ matmul */

/* Up to three matrices that read the same activations (q/k/v, gate/up) go
 * out as one job: their rows are dealt over the threads together, so the pool
 * is woken once instead of three times. */
enum { MM_MAX = 3 };

typedef struct mm_job {
	const pass *P;
	int n;
	const engine_weight *w[MM_MAX];
	float *y[MM_MAX];
	size_t ldy[MM_MAX];
	const float *x;
	engine_q8act xq; /* x quantised (xq.q NULL: not) for the Q8_0/Q4_0 matrices */
	size_t T;
	bool gemm; /* sgemm over each thread's share of w[0]'s rows */
} mm_job;

/* Thread i's share of w's rows through sgemm: dequantised block by block into
 * its own scratch (F32 weights are used in place). OpenBLAS runs one thread
 * per call (engine_set_threads), so our pool is the only parallelism: no
 * OpenBLAS threads spinning beside our workers. */
static void gemm_share(const mm_job *j, int i, int n)
{
	const engine_weight *w = j->w[0];
	int cols = (int)w->cols;
	uint64_t a = w->rows * (uint64_t)i / (uint64_t)n, b = w->rows * (uint64_t)(i + 1) / (uint64_t)n;
	if (w->type == ENGINE_TYPE_F32) {
		if (b > a)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->T, (int)(b - a), cols,
				    1.0f, j->x, cols,
				    (const float *)(const void *)(w->data + a * w->row_bytes), cols, 0.0f,
				    j->y[0] + a, (int)j->ldy[0]);
		return;
	}
	float *deq = j->P->deq + (size_t)i * DEQ_FLOATS;
	uint64_t chunk = DEQ_FLOATS / w->cols;
	for (uint64_t r0 = a; r0 < b; r0 += chunk) {
		uint64_t r1 = r0 + chunk < b ? r0 + chunk : b;
		for (uint64_t r = r0; r < r1; r++)
			j->P->m->kern->row_to_f32(w, r, deq + (r - r0) * w->cols);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->T, (int)(r1 - r0), cols, 1.0f,
			    j->x, cols, deq, cols, 0.0f, j->y[0] + r0, (int)j->ldy[0]);
	}
}

static bool is_q8_type(uint32_t type) { return type == ENGINE_TYPE_Q8_0 || type == ENGINE_TYPE_Q4_0; }

/* Where thread i of n starts in the job's rows (all its matrices end to end):
 * an even split, moved to the nearest group boundary inside an interleaved
 * matrix so that no thread reads a group another thread reads too. */
static uint64_t share_start(const mm_job *j, uint64_t total, int i, int n)
{
	uint64_t a = total * (uint64_t)i / (uint64_t)n, base = 0;
	for (int q = 0; q < j->n; base += j->w[q]->rows, q++) {
		uint64_t grouped = engine_weight_grouped(j->w[q]);
		if (a < base + grouped)
			return base + (a - base + 8) / 16 * 16;
		if (a < base + j->w[q]->rows)
			break;
	}
	return a;
}

static void mm_task(void *ctx, int i, int n)
{
	mm_job *j = ctx;
	const engine_kernels *k = j->P->m->kern;
	if (j->gemm) {
		gemm_share(j, i, n);
		return;
	}
	uint64_t total = 0;
	for (int q = 0; q < j->n; q++)
		total += j->w[q]->rows;
	uint64_t a = share_start(j, total, i, n), b = share_start(j, total, i + 1, n), base = 0;
	for (int q = 0; q < j->n; q++) {
		uint64_t rows = j->w[q]->rows, lo = a > base ? a - base : 0,
			 hi = b - base < rows ? b - base : rows;
		if (b > base && lo < rows && lo < hi) {
			if (j->xq.q && is_q8_type(j->w[q]->type))
				k->rows_q8(j->w[q], &j->xq, j->T, j->y[q], j->ldy[q], lo, hi);
			else
				k->rows(j->w[q], j->x, j->T, j->y[q], j->ldy[q], lo, hi,
					j->P->scratch + (size_t)i * j->P->max_cols);
		}
		base += rows;
	}
}

static void gemm(const pass *P, const engine_weight *w, const float *x, size_t T, float *y, size_t ldy)
{
	mm_job j = {.P = P, .n = 1, .w = {w}, .y = {y}, .ldy = {ldy}, .x = x, .T = T, .gemm = true};
	engine_pool_run(P->m->pool, mm_task, &j);
}

static void rows_job(const pass *P, int n, const engine_weight *const *w, const float *x, size_t T,
		     float *const *y, const size_t *ldy)
{
	mm_job j = {.P = P, .n = n, .x = x, .T = T};
	bool quant = false;
	for (int q = 0; q < n; q++) {
		j.w[q] = w[q];
		j.y[q] = y[q];
		j.ldy[q] = ldy[q];
		quant |= is_q8_type(w[q]->type);
	}
	/* the matrices of a job share x, so it is quantised once, here */
	if (quant && P->act_q && T <= P->T) {
		size_t cols = (size_t)w[0]->cols;
		P->m->kern->act_quant(x, T, cols, P->act_q, P->act_d, P->act_s);
		j.xq = (engine_q8act){.q = P->act_q, .d = P->act_d, .neg_sum = P->act_s, .n = cols};
	}
	engine_pool_run(P->m->pool, mm_task, &j);
}

/* y_q[t * ldy_q + r] = w_q[r] . x[t] for the n matrices (same input width),
 * all rows r and tokens t < T. */
static void matmul_n(const pass *P, int n, const engine_weight *const *w, const float *x, size_t T,
		     float *const *y, const size_t *ldy)
{
	if (T < P->gemm_min) {
		rows_job(P, n, w, x, T, y, ldy);
		return;
	}
	for (int q = 0; q < n; q++) {
		if (w[q]->type == ENGINE_TYPE_F32 || DEQ_FLOATS / w[q]->cols >= 16)
			gemm(P, w[q], x, T, y[q], ldy[q]);
		else /* rows too long to tile for sgemm */
			rows_job(P, 1, &w[q], x, T, &y[q], &ldy[q]);
	}
}

static void matmul(const pass *P, const engine_weight *w, const float *x, size_t T, float *y, size_t ldy)
{
	matmul_n(P, 1, &w, x, T, &y, &ldy);
}

static void rmsnorm(const engine_kernels *k, float *out, const float *x, const float *w, size_t n, float eps)
{
	float ss = k->dot(x, x, n);
	float scale = 1.0f / sqrtf(ss / (float)n + eps);
	for (size_t i = 0; i < n; i++)
		out[i] = x[i] * scale * w[i];
}

/* ------------------------------------------------------------ Mamba */

typedef struct mamba_job {
	const pass *P;
	const engine_layer *L;
	float *xz;    /* (T, 2D): x then z */
	float *u;     /* (T, D) conv output after SiLU */
	float *p;     /* (T, R + 2N): dt, B, C (B and C normalised) */
	float *delta; /* (T, D) dt_proj output (before bias and softplus) */
	float *y;     /* (T, D) */
	bool scan;    /* false: conv step, true: scan step */
} mamba_job;

static void mamba_task(void *ctx, int i, int n)
{
	mamba_job *j = ctx;
	const engine_config *c = &j->P->m->cfg;
	const engine_kernels *kern = j->P->m->kern;
	const engine_layer *L = j->L;
	size_t D = c->d_inner, N = c->d_state, R = c->dt_rank, K = c->d_conv, CL = K - 1, T = j->P->T;
	/* ranges start at multiples of 16: a channel keeps its lane in the vector
	 * kernels whatever the thread count (kernels_mamba.c) */
	size_t d0 = D * (size_t)i / (size_t)n / 16 * 16,
	       d1 = i + 1 == n ? D : D * (size_t)(i + 1) / (size_t)n / 16 * 16;
	if (d0 >= d1)
		return;
	if (!j->scan) {
		for (size_t t = 0; t < T; t++) {
			/* this token's sequence, this layer; each channel's window oldest first */
			float *conv = j->P->seq[t]->conv + (size_t)L->index * D * CL;
			const float *xt = j->xz + t * 2 * D;
			float *ut = j->u + t * D;
			for (size_t d = d0; d < d1; d++) {
				const float *w = L->conv_w + d * K;
				float *win = conv + d * CL, acc = L->conv_b[d];
				for (size_t q = 0; q < CL; q++)
					acc += w[q] * win[q];
				acc += w[CL] * xt[d];
				for (size_t q = 0; q + 1 < CL; q++)
					win[q] = win[q + 1];
				if (CL)
					win[CL - 1] = xt[d];
				ut[d] = acc;
			}
			kern->silu_mul(ut + d0, NULL, d1 - d0);
		}
		return;
	}
	for (size_t t = 0; t < T; t++) {
		float *st = j->P->seq[t]->ssm + ((size_t)L->index * D + d0) * N;
		const float *B = j->p + t * (R + 2 * N) + R;
		kern->ssm_scan(st, L->ssm_a + d0 * N, B, B + N, j->delta + t * D + d0, L->dt_b + d0,
			       j->u + t * D + d0, L->ssm_d + d0, j->xz + t * 2 * D + D + d0,
			       j->y + t * D + d0, d1 - d0, N);
	}
}

static int mamba(pass *P, const engine_layer *L, const float *xn, float *out)
{
	const engine_config *c = &P->m->cfg;
	size_t T = P->T, D = c->d_inner, N = c->d_state, R = c->dt_rank, mark = scratch_mark(P);
	float *xz = scratch_alloc(P, T * 2 * D * sizeof(float)), *u = scratch_alloc(P, T * D * sizeof(float));
	float *p = scratch_alloc(P, T * (R + 2 * N) * sizeof(float)),
	      *dtn = scratch_alloc(P, T * R * sizeof(float));
	float *delta = scratch_alloc(P, T * D * sizeof(float)), *y = scratch_alloc(P, T * D * sizeof(float));
	int rc = 0;
	if (!xz || !u || !p || !dtn || !delta || !y) {
		rc = ag_error_set(AG_ENOMEM, "forward: out of memory");
		goto done;
	}
	mamba_job j = {P, L, xz, u, p, delta, y, false};
	matmul(P, &L->ssm_in, xn, T, xz, 2 * D);
	engine_pool_run(P->m->pool, mamba_task, &j);
	matmul(P, &L->ssm_x, u, T, p, R + 2 * N);
	for (size_t t = 0; t < T; t++) {
		float *pt = p + t * (R + 2 * N);
		rmsnorm(P->m->kern, dtn + t * R, pt, L->dt_norm, R, c->rms_eps);
		rmsnorm(P->m->kern, pt + R, pt + R, L->b_norm, N, c->rms_eps);
		rmsnorm(P->m->kern, pt + R + N, pt + R + N, L->c_norm, N, c->rms_eps);
	}
	matmul(P, &L->ssm_dt, dtn, T, delta, D);
	j.scan = true;
	engine_pool_run(P->m->pool, mamba_task, &j);
	matmul(P, &L->ssm_out, y, T, out, c->n_embd);
done:
	scratch_release(P, mark);
	return rc;
}

/* ------------------------------------------------------------ attention */

/* Q, K and V for the chunk; K and V go to each token's sequence at its
 * position, then every token attends to its own sequence's cache up to and
 * including itself (attention.c). */
static int attention(pass *P, const engine_layer *L, const float *xn, float *out)
{
	const engine_config *c = &P->m->cfg;
	size_t T = P->T, qd = (size_t)c->n_head * c->head_dim, kvd = (size_t)L->n_head_kv * c->head_dim;
	size_t mark = scratch_mark(P);
	float *q = scratch_alloc(P, T * qd * sizeof(float)), *att = scratch_alloc(P, T * qd * sizeof(float));
	float *kv = scratch_alloc(P, 2 * T * kvd * sizeof(float));
	const float **caches = scratch_alloc(P, 2 * T * sizeof(float *));
	const uint16_t **caches16 = scratch_alloc(P, 2 * T * sizeof(uint16_t *));
	uint64_t *len = scratch_alloc(P, T * sizeof(uint64_t));
	int rc = 0;
	if (!q || !att || !kv || !caches || !caches16 || !len) {
		rc = ag_error_set(AG_ENOMEM, "forward: out of memory");
		goto done;
	}
	const engine_weight *w[3] = {&L->wq, &L->wk, &L->wv};
	float *ys[3] = {q, kv, kv + T * kvd};
	size_t ld[3] = {qd, kvd, kvd};
	matmul_n(P, 3, w, xn, T, ys, ld);
	/* the kernel set may attend over a BF16 copy, kept up to date as the cache is written */
	bool bf16 = P->m->kern->att16_scores != NULL;
	for (size_t t = 0; t < T && !rc; t++) {
		engine_state *s = P->seq[t];
		float *kc = s->k[L->index], *vc = s->v[L->index];
		memcpy(kc + P->pos[t] * kvd, kv + t * kvd, kvd * sizeof(float));
		memcpy(vc + P->pos[t] * kvd, kv + (T + t) * kvd, kvd * sizeof(float));
		caches[t] = kc;
		caches[T + t] = vc;
		len[t] = P->pos[t] + 1;
		if (bf16 && !(rc = engine_state_kv16_sync(s, L->index, P->pos[t], P->pos[t] + 1))) {
			caches16[t] = s->k16[L->index];
			caches16[T + t] = s->v16[L->index];
		}
	}
	if (rc)
		goto done;
	if (bf16)
		rc = engine_attention16(P->m->pool, P->m->kern, T, c->n_head, c->head_dim, L->n_head_kv, q,
					caches16, caches16 + T, len, att);
	else
		rc = engine_attention(P->m->pool, P->m->kern, T, c->n_head, c->head_dim, L->n_head_kv, q,
				      caches, caches + T, len, att);
	if (!rc)
		matmul(P, &L->wo, att, T, out, c->n_embd);
done:
	scratch_release(P, mark);
	return rc;
}

/* ------------------------------------------------------------ feed-forward */

static void swiglu(const pass *P, const engine_weight *gate, const engine_weight *up,
		   const engine_weight *down, const float *x, size_t T, float *g, float *u, float *out)
{
	size_t F = gate->rows;
	const engine_weight *w[2] = {gate, up};
	float *ys[2] = {g, u};
	size_t ld[2] = {F, F};
	matmul_n(P, 2, w, x, T, ys, ld);
	P->m->kern->silu_mul(g, u, T * F);
	matmul(P, down, g, T, out, down->rows);
}

static engine_weight expert_view(const engine_weight *w, uint32_t e)
{
	engine_weight v = *w;
	v.data = w->data + (size_t)e * w->rows * w->row_bytes;
	return v;
}

static int moe(pass *P, const engine_layer *L, const float *xn, float *out)
{
	const engine_config *c = &P->m->cfg;
	size_t T = P->T, E = c->n_embd, F = c->n_ff, X = c->n_expert, K = c->n_expert_used;
	size_t mark = scratch_mark(P);
	float *logits = scratch_alloc(P, T * X * sizeof(float)),
	      *xe = scratch_alloc(P, T * E * sizeof(float));
	float *g = scratch_alloc(P, T * F * sizeof(float)), *u = scratch_alloc(P, T * F * sizeof(float));
	float *oe = scratch_alloc(P, T * E * sizeof(float)), *wsel = scratch_alloc(P, T * K * sizeof(float));
	uint32_t *sel = scratch_alloc(P, T * K * sizeof(uint32_t)),
		 *tok = scratch_alloc(P, T * sizeof(uint32_t));
	float *tw = scratch_alloc(P, T * sizeof(float));
	int rc = 0;
	if (!logits || !xe || !g || !u || !oe || !wsel || !sel || !tok || !tw) {
		rc = ag_error_set(AG_ENOMEM, "forward: out of memory");
		goto done;
	}
	matmul(P, &L->router, xn, T, logits, X);
	for (size_t t = 0; t < T; t++) {
		float *l = logits + t * X, mx = -INFINITY, sum = 0;
		for (size_t e = 0; e < X; e++)
			mx = l[e] > mx ? l[e] : mx;
		for (size_t e = 0; e < X; e++)
			sum += (l[e] = expf(l[e] - mx));
		for (size_t e = 0; e < X; e++)
			l[e] /= sum;
		/* top-k of the softmax; the weights stay as they are (Jamba does not renormalise) */
		for (size_t k = 0; k < K; k++) {
			size_t best = X;
			for (size_t e = 0; e < X; e++) {
				bool taken = false;
				for (size_t q = 0; q < k; q++)
					taken |= sel[t * K + q] == e;
				if (!taken && (best == X || l[e] > l[best]))
					best = e;
			}
			sel[t * K + k] = (uint32_t)best;
			wsel[t * K + k] = l[best];
		}
	}
	memset(out, 0, T * E * sizeof(float));
	for (uint32_t e = 0; e < X; e++) {
		size_t n = 0;
		for (size_t t = 0; t < T; t++)
			for (size_t k = 0; k < K; k++)
				if (sel[t * K + k] == e) {
					tok[n] = (uint32_t)t;
					tw[n] = wsel[t * K + k];
					memcpy(xe + n * E, xn + t * E, E * sizeof(float));
					n++;
				}
		if (!n)
			continue;
		engine_weight ge = expert_view(&L->gate_x, e), ue = expert_view(&L->up_x, e),
			      de = expert_view(&L->down_x, e);
		swiglu(P, &ge, &ue, &de, xe, n, g, u, oe);
		for (size_t q = 0; q < n; q++)
			for (size_t i = 0; i < E; i++)
				out[tok[q] * E + i] += tw[q] * oe[q * E + i];
	}
done:
	scratch_release(P, mark);
	return rc;
}

static int dense(pass *P, const engine_layer *L, const float *xn, float *out)
{
	size_t T = P->T, F = P->m->cfg.n_ff, mark = scratch_mark(P);
	float *g = scratch_alloc(P, T * F * sizeof(float)), *u = scratch_alloc(P, T * F * sizeof(float));
	int rc = 0;
	if (!g || !u)
		rc = ag_error_set(AG_ENOMEM, "forward: out of memory");
	else
		swiglu(P, &L->gate, &L->up, &L->down, xn, T, g, u, out);
	scratch_release(P, mark);
	return rc;
}

/* ------------------------------------------------------------ the pass */

/* T tokens through every layer; token t advances seq[t] at K/V position pos[t]
 * (caches already reserved). Logits: of the last token only, or of every
 * token when all_logits (T rows). */
static int run_chunk(pass *P, const int32_t *tokens, float *logits, bool all_logits)
{
	engine_model *m = P->m;
	const engine_config *c = &m->cfg;
	size_t E = c->n_embd, T = P->T;
	int rc = 0;
	P->n_threads = engine_pool_size(m->pool);
	size_t mc = E;
	size_t dims[] = {c->d_inner, c->n_ff, (size_t)c->n_head * c->head_dim, c->dt_rank};
	for (size_t i = 0; i < 4; i++)
		mc = dims[i] > mc ? dims[i] : mc;
	P->max_cols = mc;
	scratch_begin(P);
	P->scratch = scratch_alloc(P, (size_t)P->n_threads * mc * sizeof(float));
	bool gemm = T >= P->gemm_min;
	P->act_q = NULL;
	P->act_d = NULL;
	P->act_s = NULL;
	bool quant = m->kern->rows_q8 && !gemm;
	if (quant) {
		P->act_q = scratch_alloc(P, T * mc);
		P->act_d = scratch_alloc(P, T * (mc / 32 + 1) * sizeof(float));
		P->act_s = scratch_alloc(P, engine_act_quant_sums(T, mc + 32) * sizeof(int32_t));
	}
	if (gemm && m->deq_floats < (size_t)P->n_threads * DEQ_FLOATS) {
		/* kept by the model: fresh pages for every prompt chunk cost page faults */
		ag_free(m->deq);
		m->deq = ag_malloc((size_t)P->n_threads * DEQ_FLOATS * sizeof(float));
		m->deq_floats = m->deq ? (size_t)P->n_threads * DEQ_FLOATS : 0;
	}
	P->deq = gemm ? m->deq : NULL;
	float *x = scratch_alloc(P, T * E * sizeof(float)), *xn = scratch_alloc(P, T * E * sizeof(float));
	float *out = scratch_alloc(P, T * E * sizeof(float));
	if (!P->scratch || (gemm && !P->deq) || !x || !xn || !out ||
	    (quant && (!P->act_q || !P->act_d || !P->act_s))) {
		rc = ag_error_set(AG_ENOMEM, "forward: out of memory");
		goto done;
	}
	for (size_t t = 0; t < T; t++)
		m->kern->row_to_f32(&m->tok_embd, (uint64_t)tokens[t], x + t * E);
	for (uint32_t i = 0; i < c->n_layer && !rc; i++) {
		const engine_layer *L = &m->layers[i];
		for (size_t t = 0; t < T; t++)
			rmsnorm(m->kern, xn + t * E, x + t * E, L->attn_norm, E, c->rms_eps);
		rc = L->kind == ENGINE_LAYER_MAMBA ? mamba(P, L, xn, out) : attention(P, L, xn, out);
		if (rc)
			break;
		for (size_t q = 0; q < T * E; q++)
			x[q] += out[q];
		for (size_t t = 0; t < T; t++)
			rmsnorm(m->kern, xn + t * E, x + t * E, L->ffn_norm, E, c->rms_eps);
		rc = L->moe ? moe(P, L, xn, out) : dense(P, L, xn, out);
		if (rc)
			break;
		for (size_t q = 0; q < T * E; q++)
			x[q] += out[q];
	}
	if (!rc) {
		for (size_t t = 0; t < T; t++) {
			P->seq[t]->n_kv = P->pos[t] + 1;
			P->seq[t]->n_tokens++;
		}
		if (logits) {
			size_t first = all_logits ? 0 : T - 1, n = T - first;
			for (size_t t = first; t < T; t++)
				rmsnorm(m->kern, xn + (t - first) * E, x + t * E, m->out_norm, E, c->rms_eps);
			P->T = n;
			matmul(P, &m->output, xn, n, logits, c->n_vocab);
		}
	}
done:
	scratch_end(P);
	return rc;
}

static int check_tokens(const engine_model *m, const int32_t *tokens, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (tokens[i] < 0 || (uint32_t)tokens[i] >= m->cfg.n_vocab)
			return ag_error_set(AG_EINVAL, "forward: token %d outside the vocabulary (%u)",
					    tokens[i], m->cfg.n_vocab);
	return 0;
}

int engine_prefill(engine_model *m, engine_state *s, const int32_t *tokens, size_t n, float *logits)
{
	if (s->m != m)
		return ag_error_set(AG_EINVAL, "forward: state belongs to another model");
	if (!n)
		return ag_error_set(AG_EINVAL, "forward: no tokens");
	int rc = check_tokens(m, tokens, n);
	if (rc)
		return rc;
	engine_state *seq[CHUNK_MAX];
	uint64_t pos[CHUNK_MAX];
	for (size_t t = 0; t < CHUNK_MAX; t++)
		seq[t] = s;
	/* The pool is taken chunk by chunk, so passes of other sequences (a batched
	 * decode of other users) go on between the chunks of a long prompt. */
	for (size_t i = 0; i < n && !rc; i += CHUNK_MAX) {
		size_t T = n - i < CHUNK_MAX ? n - i : CHUNK_MAX;
		for (size_t t = 0; t < T; t++)
			pos[t] = s->n_kv + t;
		pthread_mutex_lock(&m->pool_lock);
		rc = engine_state_reserve(s, s->n_kv + T);
		if (!rc) {
			pass P = {.m = m, .seq = seq, .pos = pos, .T = T, .gemm_min = GEMM_MIN};
			rc = run_chunk(&P, tokens + i, i + T == n ? logits : NULL, false);
		}
		pthread_mutex_unlock(&m->pool_lock);
	}
	return rc;
}

int engine_decode(engine_model *m, engine_state *s, int32_t token, float *logits)
{
	return engine_decode_batch(m, &s, &token, 1, logits);
}

int engine_decode_batch(engine_model *m, engine_state *const *states, const int32_t *tokens, size_t n,
			float *logits)
{
	if (!n)
		return ag_error_set(AG_EINVAL, "forward: no sequences");
	int rc = check_tokens(m, tokens, n);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (states[i]->m != m)
			return ag_error_set(AG_EINVAL, "forward: state %zu belongs to another model", i);
		for (size_t j = 0; j < i; j++)
			if (states[j] == states[i])
				return ag_error_set(AG_EINVAL, "forward: state %zu is also state %zu", i, j);
	}
	uint64_t pos[CHUNK_MAX];
	pthread_mutex_lock(&m->pool_lock);
	for (size_t i = 0; i < n && !rc; i += CHUNK_MAX) {
		size_t T = n - i < CHUNK_MAX ? n - i : CHUNK_MAX;
		for (size_t t = 0; t < T && !rc; t++) {
			pos[t] = states[i + t]->n_kv;
			rc = engine_state_reserve(states[i + t], pos[t] + 1);
		}
		if (rc)
			break;
		/* the row kernels keep each sequence's sums independent of its batch */
		pass P = {.m = m, .seq = states + i, .pos = pos, .T = T, .gemm_min = SIZE_MAX};
		rc = run_chunk(&P, tokens + i, logits ? logits + i * m->cfg.n_vocab : NULL, true);
	}
	pthread_mutex_unlock(&m->pool_lock);
	return rc;
}
