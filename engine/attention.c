/*
 * Attention over the K/V cache, blocked so it stays fast at long context.
 *
 * Each (token, KV head) pair walks its cache in fixed segments of SEG
 * positions; a segment is read block by block, and each K row is dotted with
 * every query head of its group while it sits in L1 (with one KV head and 20
 * query heads, the cache is read once instead of 20 times). Softmax is done
 * online (running max and sum per head), so no temporary grows with the
 * context. Segments are the unit of work dealt to the threads, so one long
 * sequence still keeps every core busy; their partial results are merged in
 * segment order. Segment boundaries depend only on positions, never on the
 * batch or the thread count, so a sequence gets the same result decoded alone,
 * in a batch, or on another number of threads. engine_attention16 walks the
 * cache's BF16 copy the same way (kernels_att16.c has why and the layout).
 */
#include <string.h>

#include "engine/core_internal.h"

#define SEG 2048 /* positions per unit of work */
#define BLK 64   /* positions scored together (K and V rows stay in L1) */
#define TOK 32   /* tokens per round: bounds the partial results held */

typedef struct attn_round {
	const engine_kernels *kern;
	size_t H, hd, kvh, group, kvd;
	float scale;
	const float *q;                          /* (T, H * hd) */
	const float *const *k, *const *v;        /* per token: its cache (len, kvd) */
	const uint16_t *const *k16, *const *v16; /* or its BF16 copy (kernels_att16.c) */
	const uint64_t *len;                     /* per token: positions it attends to */
	size_t t0, t1;                           /* tokens of this round */
	size_t n_items;
	size_t *item_t, *item_seg, *item_g; /* (n_items) */
	float *part;                        /* (n_items, group, hd + 2): o, then max, sum */
	float *sc;                          /* (n_threads, group * BLK) */
	uint16_t *q16;                      /* (T, H * hd): q rounded to BF16, with k16 */
} attn_round;

static void part_init(float *part, size_t group, size_t hd)
{
	for (size_t h = 0; h < group; h++) {
		memset(part + h * (hd + 2), 0, hd * sizeof(float));
		part[h * (hd + 2) + hd] = -INFINITY;
		part[h * (hd + 2) + hd + 1] = 0;
	}
}

/* Online softmax over one scored block s of nb positions for one head (o,
 * then its running max and sum): rescales o and the sum when the block raises
 * the max, turns s into weights exp(s - max) and adds them to the sum. */
static void softmax_block(const engine_kernels *kern, float *o, float *s, size_t nb, size_t hd)
{
	float *m = o + hd, *l = o + hd + 1;
	float bm = s[0];
	for (size_t p = 1; p < nb; p++)
		bm = s[p] > bm ? s[p] : bm;
	if (bm > *m) {
		float corr = expf(*m - bm);
		for (size_t e = 0; e < hd; e++)
			o[e] *= corr;
		*l *= corr;
		*m = bm;
	}
	*l += kern->att_exp(s, nb, *m);
}

/* One segment over the BF16 copy: blocks of 16 positions, the last one's
 * positions past the end weighted 0. */
static void segment16(const attn_round *r, size_t item, float *sc)
{
	size_t t = r->item_t[item], g = r->item_g[item], hd = r->hd, group = r->group;
	size_t p0 = r->item_seg[item] * SEG, p1 = p0 + SEG < r->len[t] ? p0 + SEG : r->len[t];
	const uint16_t *q16 = r->q16 + t * r->H * hd + g * group * hd;
	float *part = r->part + item * group * (hd + 2);
	part_init(part, group, hd);
	const engine_kernels *kern = r->kern;
	for (size_t b0 = p0; b0 < p1; b0 += BLK) {
		size_t nb = p1 - b0 < BLK ? p1 - b0 : BLK, nblk = (nb + 15) / 16;
		const uint16_t *K = r->k16[t] + b0 * r->kvd, *V = r->v16[t] + b0 * r->kvd;
		kern->att16_scores(q16, group, hd, K, r->kvd, g, nblk, r->scale, sc, BLK);
		for (size_t h = 0; h < group; h++) {
			float *s = sc + h * BLK;
			softmax_block(kern, part + h * (hd + 2), s, nb, hd);
			memset(s + nb, 0, (nblk * 16 - nb) * sizeof(float));
			kern->att16_accum(part + h * (hd + 2), s, V, r->kvd, g, nblk, hd);
		}
	}
}

/* One segment of one (token, KV head): partial o, max and sum per head of the group. */
static void segment(const attn_round *r, size_t item, float *sc)
{
	size_t t = r->item_t[item], g = r->item_g[item], hd = r->hd, group = r->group;
	size_t p0 = r->item_seg[item] * SEG, p1 = p0 + SEG < r->len[t] ? p0 + SEG : r->len[t];
	const float *q = r->q + t * r->H * hd + g * group * hd;
	const float *K = r->k[t] + g * hd, *V = r->v[t] + g * hd;
	float *part = r->part + item * group * (hd + 2);
	part_init(part, group, hd);
	const engine_kernels *kern = r->kern;
	for (size_t b0 = p0; b0 < p1; b0 += BLK) {
		size_t nb = p1 - b0 < BLK ? p1 - b0 : BLK;
		kern->att_scores(q, group, hd, K + b0 * r->kvd, r->kvd, nb, r->scale, sc, BLK);
		for (size_t h = 0; h < group; h++) {
			float *o = part + h * (hd + 2), *s = sc + h * BLK;
			softmax_block(kern, o, s, nb, hd);
			kern->att_accum(o, s, V + b0 * r->kvd, r->kvd, nb, hd);
		}
	}
}

static void round_task(void *ctx, int i, int n)
{
	attn_round *r = ctx;
	float *sc = r->sc + (size_t)i * r->group * BLK;
	for (size_t item = (size_t)i; item < r->n_items; item += (size_t)n)
		if (r->k16)
			segment16(r, item, sc);
		else
			segment(r, item, sc);
}

/* Merges the segments of each (token, head) in order into att. */
static void merge(const attn_round *r, float *att)
{
	size_t hd = r->hd, group = r->group, stride = group * (hd + 2);
	size_t item = 0;
	for (size_t t = r->t0; t < r->t1; t++)
		for (size_t g = 0; g < r->kvh; g++) {
			size_t nseg = (size_t)((r->len[t] + SEG - 1) / SEG);
			for (size_t h = 0; h < group; h++) {
				float *out = att + t * r->H * hd + (g * group + h) * hd;
				float M = -INFINITY, L = 0;
				for (size_t s = 0; s < nseg; s++) {
					const float *p = r->part + (item + s) * stride + h * (hd + 2);
					M = p[hd] > M ? p[hd] : M;
				}
				memset(out, 0, hd * sizeof(float));
				for (size_t s = 0; s < nseg; s++) {
					const float *p = r->part + (item + s) * stride + h * (hd + 2);
					float w = expf(p[hd] - M);
					L += w * p[hd + 1];
					r->kern->att_accum(out, &w, p, 0, 1, hd);
				}
				for (size_t e = 0; e < hd; e++)
					out[e] /= L;
			}
			item += nseg;
		}
}

static int run(engine_pool *pool, attn_round *rp, size_t T, float *att)
{
	attn_round r = *rp;
	int n_threads = engine_pool_size(pool);
	size_t group = r.group, kvh = r.kvh, hd = r.hd, max_items = 0;
	const uint64_t *len = r.len;
	for (size_t t0 = 0; t0 < T; t0 += TOK) {
		size_t t1 = t0 + TOK < T ? t0 + TOK : T, n = 0;
		for (size_t t = t0; t < t1; t++)
			n += kvh * (size_t)((len[t] + SEG - 1) / SEG);
		max_items = n > max_items ? n : max_items;
	}
	r.item_t = ag_malloc(max_items * 3 * sizeof(size_t));
	r.part = ag_malloc(max_items * group * (hd + 2) * sizeof(float));
	r.sc = ag_malloc((size_t)n_threads * group * BLK * sizeof(float));
	/* every segment of a token reads its queries: rounded once, here */
	r.q16 = r.k16 ? ag_malloc(T * r.H * hd * sizeof(uint16_t)) : NULL;
	if (!r.item_t || !r.part || !r.sc || (r.k16 && !r.q16)) {
		ag_free(r.item_t);
		ag_free(r.part);
		ag_free(r.sc);
		ag_free(r.q16);
		return ag_error_set(AG_ENOMEM, "attention: out of memory");
	}
	for (size_t i = 0; r.q16 && i < T * r.H * hd; i++)
		r.q16[i] = engine_bf16(r.q[i]);
	r.item_seg = r.item_t + max_items;
	r.item_g = r.item_seg + max_items;
	for (size_t t0 = 0; t0 < T; t0 += TOK) {
		r.t0 = t0;
		r.t1 = t0 + TOK < T ? t0 + TOK : T;
		r.n_items = 0;
		for (size_t t = r.t0; t < r.t1; t++)
			for (size_t g = 0; g < kvh; g++)
				for (size_t s = 0; s < (size_t)((len[t] + SEG - 1) / SEG); s++) {
					r.item_t[r.n_items] = t;
					r.item_g[r.n_items] = g;
					r.item_seg[r.n_items++] = s;
				}
		engine_pool_run(pool, round_task, &r);
		merge(&r, att);
	}
	ag_free(r.item_t);
	ag_free(r.part);
	ag_free(r.sc);
	ag_free(r.q16);
	return 0;
}

static attn_round round_for(const engine_kernels *kern, size_t H, size_t hd, size_t kvh, const float *q,
			    const uint64_t *len)
{
	return (attn_round){.kern = kern,
			    .H = H,
			    .hd = hd,
			    .kvh = kvh,
			    .group = H / kvh,
			    .kvd = kvh * hd,
			    .scale = 1.0f / sqrtf((float)hd),
			    .q = q,
			    .len = len};
}

int engine_attention(engine_pool *pool, const engine_kernels *kern, size_t T, size_t H, size_t hd, size_t kvh,
		     const float *q, const float *const *k, const float *const *v, const uint64_t *len,
		     float *att)
{
	attn_round r = round_for(kern, H, hd, kvh, q, len);
	r.k = k;
	r.v = v;
	return run(pool, &r, T, att);
}

int engine_attention16(engine_pool *pool, const engine_kernels *kern, size_t T, size_t H, size_t hd,
		       size_t kvh, const float *q, const uint16_t *const *k, const uint16_t *const *v,
		       const uint64_t *len, float *att)
{
	attn_round r = round_for(kern, H, hd, kvh, q, len);
	r.k16 = k;
	r.v16 = v;
	return run(pool, &r, T, att);
}
