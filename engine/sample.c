/*
 * Sampling: turns one position's logits into the next token. The chain
 * follows llama.cpp's default order: repetition penalty over a window of
 * recently accepted tokens (positive logits divided, negative multiplied,
 * once per distinct token), then top-k, top-p and min-p on the untempered
 * distribution, then temperature and a draw. Temperature <= 0 is greedy.
 * The PRNG is our own xoshiro256** seeded through splitmix64, so a seed
 * gives the same tokens on every machine.
 */
#include "engine/engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
	float logit;
	int32_t id;
} cand;

struct engine_sampler {
	engine_sampler_params p;
	uint64_t rng[4];
	int32_t *recent; /* ring of the last repeat_last_n accepted tokens */
	size_t n_recent, next_recent;
	cand *cands;
	size_t cap_cands;
	double *probs;
};

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro(uint64_t *s)
{
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double uniform(engine_sampler *s) { return (double)(xoshiro(s->rng) >> 11) * 0x1.0p-53; }

void engine_sampler_params_init(engine_sampler_params *p)
{
	memset(p, 0, sizeof *p);
	p->temperature = 0.8f;
	p->top_k = 40;
	p->top_p = 0.95f;
	p->min_p = 0.05f;
	p->repeat_penalty = 1.0f;
	p->repeat_last_n = 64;
}

void engine_sampler_reset(engine_sampler *s, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		s->rng[i] = splitmix64(&x);
	s->n_recent = s->next_recent = 0;
}

int engine_sampler_new(engine_sampler **out, const engine_sampler_params *p)
{
	*out = NULL;
	if (!p)
		return ag_error_set(AG_EINVAL, "sampler: no parameters");
	if (isnan(p->temperature) || isnan(p->top_p) || isnan(p->min_p) || !(p->repeat_penalty > 0) ||
	    isinf(p->repeat_penalty))
		return ag_error_set(AG_EINVAL, "sampler: parameters must be numbers and repeat_penalty > 0");
	if (p->repeat_last_n < 0 || p->repeat_last_n > (1 << 20))
		return ag_error_set(AG_EINVAL, "sampler: repeat_last_n %d is outside 0..1048576",
				    (int)p->repeat_last_n);
	engine_sampler *s = ag_calloc(1, sizeof *s);
	if (!s)
		return ag_error_set(AG_ENOMEM, "sampler: out of memory");
	s->p = *p;
	if (p->repeat_last_n > 0 && !(s->recent = ag_calloc((size_t)p->repeat_last_n, sizeof *s->recent))) {
		ag_free(s);
		return ag_error_set(AG_ENOMEM, "sampler: out of memory");
	}
	engine_sampler_reset(s, p->seed);
	*out = s;
	return 0;
}

void engine_sampler_free(engine_sampler *s)
{
	if (!s)
		return;
	ag_free(s->recent);
	ag_free(s->cands);
	ag_free(s->probs);
	ag_free(s);
}

void engine_sampler_accept(engine_sampler *s, int32_t token)
{
	if (!s || s->p.repeat_last_n <= 0)
		return;
	s->recent[s->next_recent] = token;
	s->next_recent = (s->next_recent + 1) % (size_t)s->p.repeat_last_n;
	if (s->n_recent < (size_t)s->p.repeat_last_n)
		s->n_recent++;
}

/* Higher logit first; equal logits by lower id so the order is total and reproducible. */
static int cand_cmp(const void *a, const void *b)
{
	const cand *x = a, *y = b;
	if (x->logit != y->logit)
		return x->logit > y->logit ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static void penalize(engine_sampler *s, size_t n)
{
	float pen = s->p.repeat_penalty;
	if (pen == 1.0f || s->n_recent == 0)
		return;
	for (size_t i = 0; i < s->n_recent; i++) {
		int32_t id = s->recent[i];
		if (id < 0 || (size_t)id >= n)
			continue;
		bool seen = false; /* once per distinct token, however often it occurred */
		for (size_t j = 0; j < i && !seen; j++)
			seen = s->recent[j] == id;
		if (seen)
			continue;
		float *l = &s->cands[id].logit;
		*l = *l > 0 ? *l / pen : *l * pen;
	}
}

/* Sifts c[i] down a heap whose root is the candidate that sorts last (the worst kept). */
static void sift_worst(cand *c, size_t k, size_t i)
{
	for (;;) {
		size_t w = i, l = 2 * i + 1, r = l + 1;
		if (l < k && cand_cmp(&c[l], &c[w]) > 0)
			w = l;
		if (r < k && cand_cmp(&c[r], &c[w]) > 0)
			w = r;
		if (w == i)
			return;
		cand t = c[i];
		c[i] = c[w];
		c[w] = t;
		i = w;
	}
}

/* Moves the k best candidates to the front (unordered): a heap of the k best so far. */
static void select_top(cand *c, size_t n, size_t k)
{
	for (size_t i = k / 2; i-- > 0;)
		sift_worst(c, k, i);
	for (size_t i = k; i < n; i++) {
		if (cand_cmp(&c[i], &c[0]) < 0) {
			c[0] = c[i];
			sift_worst(c, k, 0);
		}
	}
}

/* top-p: the smallest set of best candidates holding top_p of the probability mass, among
 * the top-k survivors (min-p filters afterwards, as in llama.cpp's order). Rather than sort
 * the whole vocabulary, candidates go into buckets by distance from the best logit; the
 * buckets are taken best first until they hold the mass, and only those candidates are
 * sorted. Returns how many lead c afterwards, best first. */
#define TOP_P_BUCKETS 1024
#define TOP_P_SCALE   32.0 /* buckets per unit of logit: the last one holds everything below max - 32 */

static size_t bucket_of(double d)
{
	double b = d * TOP_P_SCALE;
	return b < TOP_P_BUCKETS - 1 ? (size_t)b : TOP_P_BUCKETS - 1;
}

static size_t top_p_prefix(cand *c, double *pr, size_t n, double max, double top_p)
{
	double mass[TOP_P_BUCKETS] = {0}, sum = 0;
	for (size_t i = 0; i < n; i++) {
		double p = exp((double)c[i].logit - max);
		mass[bucket_of(max - (double)c[i].logit)] += p;
		sum += p;
	}
	double target = top_p * sum, cum = 0;
	size_t last = 0;
	while (last < TOP_P_BUCKETS - 1 && (cum += mass[last]) < target)
		last++;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (bucket_of(max - (double)c[i].logit) <= last) {
			cand t = c[k];
			c[k++] = c[i];
			c[i] = t;
		}
	}
	qsort(c, k, sizeof *c, cand_cmp);
	cum = 0;
	for (size_t i = 0; i < k; i++) {
		cum += pr[i] = exp((double)c[i].logit - max);
		if (cum >= target)
			return i + 1;
	}
	return k ? k : 1; /* rounding left the sum a hair short: all of them */
}

/* Temperature alone (the local backend's default): the same draw as the general path,
 * which keeps candidates in id order when nothing filters them, without copying them. */
static int sample_plain(engine_sampler *s, const float *logits, size_t n_vocab, int32_t *token)
{
	if (n_vocab > s->cap_cands) {
		double *pr = ag_realloc(s->probs, n_vocab * sizeof *pr);
		if (!pr)
			return ag_error_set(AG_ENOMEM, "sample: out of memory for %zu candidates", n_vocab);
		s->probs = pr;
		cand *c = ag_realloc(s->cands, n_vocab * sizeof *c);
		if (!c)
			return ag_error_set(AG_ENOMEM, "sample: out of memory for %zu candidates", n_vocab);
		s->cands = c;
		s->cap_cands = n_vocab;
	}
	float max = -INFINITY;
	for (size_t i = 0; i < n_vocab; i++)
		if (logits[i] > max)
			max = logits[i];
	if (max == -INFINITY)
		return ag_error_set(AG_EINVAL, "sample: every logit is NaN or -inf");
	double *pr = s->probs, inv_t = 1.0 / (double)s->p.temperature, total = 0;
	size_t last = 0;
	for (size_t i = 0; i < n_vocab; i++) {
		double x = ((double)logits[i] - max) * inv_t;
		pr[i] = isnan(x) || x < -80 ? 0 : (double)expf((float)x);
		total += pr[i];
		if (pr[i] > 0)
			last = i;
	}
	double r = uniform(s) * total;
	size_t pick = 0;
	for (double acc = pr[0]; pick < last && acc <= r; acc += pr[++pick])
		;
	*token = (int32_t)pick;
	return 0;
}

int engine_sample(engine_sampler *s, const float *logits, size_t n_vocab, int32_t *token)
{
	if (!s || !logits || !token || n_vocab == 0 || n_vocab > INT32_MAX)
		return ag_error_set(AG_EINVAL, "sample: no logits");
	if (!(s->p.temperature > 0) && (s->p.repeat_penalty == 1.0f || s->n_recent == 0)) {
		size_t best = 0; /* plain greedy: no need for the candidate copy */
		while (best + 1 < n_vocab && isnan(logits[best]))
			best++;
		for (size_t i = best + 1; i < n_vocab; i++)
			if (logits[i] > logits[best])
				best = i;
		if (isnan(logits[best]) || logits[best] == -INFINITY)
			return ag_error_set(AG_EINVAL, "sample: every logit is NaN or -inf");
		*token = (int32_t)best;
		return 0;
	}
	bool penalty = s->p.repeat_penalty != 1.0f && s->n_recent > 0;
	if (s->p.top_k <= 0 && !(s->p.top_p < 1.0f) && !(s->p.min_p > 0) && !penalty)
		return sample_plain(s, logits, n_vocab, token);
	if (n_vocab > s->cap_cands) {
		cand *c = ag_realloc(s->cands, n_vocab * sizeof *c);
		double *pr = c ? ag_realloc(s->probs, n_vocab * sizeof *pr) : NULL;
		if (c)
			s->cands = c;
		if (!pr)
			return ag_error_set(AG_ENOMEM, "sample: out of memory for %zu candidates", n_vocab);
		s->probs = pr;
		s->cap_cands = n_vocab;
	}
	cand *c = s->cands;
	for (size_t i = 0; i < n_vocab; i++) {
		c[i].id = (int32_t)i;
		c[i].logit = isnan(logits[i]) ? -INFINITY : logits[i];
	}
	penalize(s, n_vocab);
	size_t best = 0;
	for (size_t i = 1; i < n_vocab; i++)
		if (c[i].logit > c[best].logit)
			best = i;
	if (c[best].logit == -INFINITY)
		return ag_error_set(AG_EINVAL, "sample: every logit is NaN or -inf");
	if (!(s->p.temperature > 0)) {
		*token = (int32_t)best;
		return 0;
	}
	/* Candidates that can never be drawn are dropped first, then top-k. */
	double max = c[best].logit;
	size_t n = 0;
	for (size_t i = 0; i < n_vocab; i++)
		if (c[i].logit != -INFINITY)
			c[n++] = c[i];
	if (s->p.top_k > 0 && (size_t)s->p.top_k < n) {
		select_top(c, n, (size_t)s->p.top_k);
		n = (size_t)s->p.top_k;
	}
	double *pr = s->probs;
	if (s->p.top_p < 1.0f)
		n = top_p_prefix(c, pr, n, max, (double)s->p.top_p);
	/* min-p: p >= min_p * p_max is logit >= max + log(min_p), no softmax needed. */
	if (s->p.min_p > 0) {
		double floor_logit = s->p.min_p >= 1.0f ? max : max + log((double)s->p.min_p);
		size_t keep = 0;
		for (size_t i = 0; i < n; i++)
			if (c[i].logit >= floor_logit) /* the best one always passes */
				c[keep++] = c[i];
		n = keep;
	}
	/* Temperature on the survivors, then one draw. Terms below e^-80 of the best cannot
	 * change a draw made with 53-bit uniforms, so they are not computed. */
	double inv_t = 1.0 / (double)s->p.temperature, total = 0;
	size_t last = 0; /* the last candidate that can be drawn: rounding never lands past it */
	for (size_t i = 0; i < n; i++) {
		double x = ((double)c[i].logit - max) * inv_t;
		total += pr[i] = x < -80 ? 0 : (double)expf((float)x);
		if (pr[i] > 0)
			last = i;
	}
	double r = uniform(s) * total;
	size_t pick = 0;
	for (double acc = pr[0]; pick < last && acc <= r; acc += pr[++pick])
		;
	*token = c[pick].id;
	return 0;
}
