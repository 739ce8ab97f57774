/*
 * The reference forward pass: the Jamba maths of jamba-spec.md written as
 * plainly as possible in double precision, one token at a time from an empty
 * state, with every weight row dequantised and widened to double. It shares
 * nothing with forward.c but the weight binding and row dequantisation, so
 * the tests can hold the fast pass to it. Slow on purpose; never used to serve.
 */
#include <string.h>

#include "engine/core_internal.h"

typedef struct ref {
	const engine_model *m;
	float *row;         /* one dequantised row */
	double *conv, *ssm; /* (n_mamba, D, d_conv - 1), (n_mamba, D, N) */
	double **k, **v;    /* (n_attn) each (n, kvd) */
	size_t n_past;
} ref;

static double silu(double x) { return x / (1.0 + exp(-x)); }

static double softplus(double x) { return x > 20.0 ? x : log1p(exp(x)); }

/* y[r] = w[r] . x for every row r. */
static void matvec(ref *R, const engine_weight *w, const double *x, double *y)
{
	for (uint64_t r = 0; r < w->rows; r++) {
		R->m->kern->row_to_f32(w, r, R->row);
		double acc = 0;
		for (uint64_t i = 0; i < w->cols; i++)
			acc += (double)R->row[i] * x[i];
		y[r] = acc;
	}
}

static void rmsnorm(double *out, const double *x, const float *w, size_t n, double eps)
{
	double ss = 0;
	for (size_t i = 0; i < n; i++)
		ss += x[i] * x[i];
	double scale = 1.0 / sqrt(ss / (double)n + eps);
	for (size_t i = 0; i < n; i++)
		out[i] = x[i] * scale * (double)w[i];
}

static void mamba(ref *R, const engine_layer *L, const double *h, double *out, double *buf)
{
	const engine_config *c = &R->m->cfg;
	size_t D = c->d_inner, N = c->d_state, Rk = c->dt_rank, K = c->d_conv, CL = K - 1;
	double *xz = buf, *u = xz + 2 * D, *p = u + D, *dtn = p + Rk + 2 * N, *dl = dtn + Rk, *y = dl + D;
	double *conv = R->conv + (size_t)L->index * D * CL, *ssm = R->ssm + (size_t)L->index * D * N;
	matvec(R, &L->ssm_in, h, xz);
	for (size_t d = 0; d < D; d++) {
		double acc = L->conv_b[d];
		for (size_t j = 0; j < CL; j++)
			acc += (double)L->conv_w[d * K + j] * conv[d * CL + j];
		acc += (double)L->conv_w[d * K + CL] * xz[d];
		for (size_t j = 0; j + 1 < CL; j++)
			conv[d * CL + j] = conv[d * CL + j + 1];
		if (CL)
			conv[d * CL + CL - 1] = xz[d];
		u[d] = silu(acc);
	}
	matvec(R, &L->ssm_x, u, p);
	rmsnorm(dtn, p, L->dt_norm, Rk, c->rms_eps);
	double *B = p + Rk, *C = B + N;
	rmsnorm(B, B, L->b_norm, N, c->rms_eps);
	rmsnorm(C, C, L->c_norm, N, c->rms_eps);
	matvec(R, &L->ssm_dt, dtn, dl);
	for (size_t d = 0; d < D; d++) {
		double delta = softplus(dl[d] + (double)L->dt_b[d]), acc = 0;
		for (size_t n = 0; n < N; n++) {
			double *s = &ssm[d * N + n];
			*s = exp(delta * (double)L->ssm_a[d * N + n]) * *s + delta * B[n] * u[d];
			acc += *s * C[n];
		}
		acc += (double)L->ssm_d[d] * u[d];
		y[d] = acc * silu(xz[D + d]);
	}
	matvec(R, &L->ssm_out, y, out);
}

static void attention(ref *R, const engine_layer *L, const double *h, double *out, double *buf)
{
	const engine_config *c = &R->m->cfg;
	size_t H = c->n_head, hd = c->head_dim, kvh = L->n_head_kv, kvd = kvh * hd, n = R->n_past + 1;
	double *q = buf, *att = q + H * hd, *sc = att + H * hd;
	double *kc = R->k[L->index], *vc = R->v[L->index];
	matvec(R, &L->wq, h, q);
	matvec(R, &L->wk, h, kc + R->n_past * kvd);
	matvec(R, &L->wv, h, vc + R->n_past * kvd);
	for (size_t hh = 0; hh < H; hh++) {
		size_t g = hh / (H / kvh);
		double mx = -INFINITY, sum = 0;
		for (size_t p = 0; p < n; p++) {
			double d = 0;
			for (size_t e = 0; e < hd; e++)
				d += q[hh * hd + e] * kc[p * kvd + g * hd + e];
			sc[p] = d / sqrt((double)hd);
			mx = sc[p] > mx ? sc[p] : mx;
		}
		for (size_t p = 0; p < n; p++)
			sum += (sc[p] = exp(sc[p] - mx));
		for (size_t e = 0; e < hd; e++) {
			double acc = 0;
			for (size_t p = 0; p < n; p++)
				acc += sc[p] / sum * vc[p * kvd + g * hd + e];
			att[hh * hd + e] = acc;
		}
	}
	matvec(R, &L->wo, att, out);
}

static void swiglu(ref *R, const engine_weight *gate, const engine_weight *up, const engine_weight *down,
		   const double *h, double *out, double *buf)
{
	size_t F = gate->rows;
	double *g = buf, *u = g + F;
	matvec(R, gate, h, g);
	matvec(R, up, h, u);
	for (size_t i = 0; i < F; i++)
		g[i] = silu(g[i]) * u[i];
	matvec(R, down, g, out);
}

static void ffn(ref *R, const engine_layer *L, const double *h, double *out, double *buf)
{
	const engine_config *c = &R->m->cfg;
	if (!L->moe) {
		swiglu(R, &L->gate, &L->up, &L->down, h, out, buf);
		return;
	}
	size_t X = c->n_expert, E = c->n_embd;
	double *p = buf, *o = p + X, *rest = o + E;
	matvec(R, &L->router, h, p);
	double mx = -INFINITY, sum = 0;
	for (size_t e = 0; e < X; e++)
		mx = p[e] > mx ? p[e] : mx;
	for (size_t e = 0; e < X; e++)
		sum += (p[e] = exp(p[e] - mx));
	for (size_t e = 0; e < X; e++)
		p[e] /= sum;
	bool used[1024] = {false};
	memset(out, 0, E * sizeof(double));
	/* the k most probable experts, weighted by their probabilities (no renormalisation) */
	for (uint32_t k = 0; k < c->n_expert_used; k++) {
		size_t best = X;
		for (size_t e = 0; e < X; e++)
			if (!used[e] && (best == X || p[e] > p[best]))
				best = e;
		used[best] = true;
		engine_weight g = L->gate_x, u = L->up_x, d = L->down_x;
		g.data += best * g.rows * g.row_bytes;
		u.data += best * u.rows * u.row_bytes;
		d.data += best * d.rows * d.row_bytes;
		swiglu(R, &g, &u, &d, h, o, rest);
		for (size_t i = 0; i < E; i++)
			out[i] += p[best] * o[i];
	}
}

int engine_reference_logits(const engine_model *m, const int32_t *tokens, size_t n, double *logits)
{
	const engine_config *c = &m->cfg;
	if (!n)
		return ag_error_set(AG_EINVAL, "reference: no tokens");
	for (size_t i = 0; i < n; i++)
		if (tokens[i] < 0 || (uint32_t)tokens[i] >= c->n_vocab)
			return ag_error_set(AG_EINVAL, "reference: token %d outside the vocabulary",
					    tokens[i]);
	size_t E = c->n_embd, D = c->d_inner, N = c->d_state, F = c->n_ff;
	size_t maxc = E > D ? E : D;
	maxc = maxc > F ? maxc : F;
	maxc = maxc > (size_t)c->n_head * c->head_dim ? maxc : (size_t)c->n_head * c->head_dim;
	size_t nbuf = 8 * D + 4 * F + 4 * E + 2 * (size_t)c->n_head * c->head_dim + c->dt_rank * 2 + 4 * N +
		      c->n_expert + n + c->n_vocab + 64;
	ref R = {m, NULL, NULL, NULL, NULL, NULL, 0};
	double *x = ag_calloc(E, sizeof(double)), *hn = ag_calloc(E, sizeof(double)),
	       *o = ag_calloc(E, sizeof(double));
	double *buf = ag_calloc(nbuf, sizeof(double));
	R.row = ag_malloc((maxc > c->n_vocab ? maxc : c->n_vocab) * sizeof(float));
	R.conv = ag_calloc((size_t)c->n_mamba * D * (c->d_conv - 1) + 1, sizeof(double));
	R.ssm = ag_calloc((size_t)c->n_mamba * D * N + 1, sizeof(double));
	R.k = ag_calloc(c->n_attention + 1, sizeof(double *));
	R.v = ag_calloc(c->n_attention + 1, sizeof(double *));
	int rc = 0;
	if (!x || !hn || !o || !buf || !R.row || !R.conv || !R.ssm || !R.k || !R.v) {
		rc = ag_error_set(AG_ENOMEM, "reference: out of memory");
		goto done;
	}
	for (uint32_t i = 0; i < c->n_layer; i++) {
		const engine_layer *L = &m->layers[i];
		if (L->kind != ENGINE_LAYER_ATTENTION)
			continue;
		size_t kvd = (size_t)L->n_head_kv * c->head_dim;
		R.k[L->index] = ag_calloc(n * kvd, sizeof(double));
		R.v[L->index] = ag_calloc(n * kvd, sizeof(double));
		if (!R.k[L->index] || !R.v[L->index]) {
			rc = ag_error_set(AG_ENOMEM, "reference: out of memory");
			goto done;
		}
	}
	for (size_t t = 0; t < n; t++) {
		m->kern->row_to_f32(&m->tok_embd, (uint64_t)tokens[t], R.row);
		for (size_t i = 0; i < E; i++)
			x[i] = R.row[i];
		for (uint32_t i = 0; i < c->n_layer; i++) {
			const engine_layer *L = &m->layers[i];
			rmsnorm(hn, x, L->attn_norm, E, c->rms_eps);
			if (L->kind == ENGINE_LAYER_MAMBA)
				mamba(&R, L, hn, o, buf);
			else
				attention(&R, L, hn, o, buf);
			for (size_t q = 0; q < E; q++)
				x[q] += o[q];
			rmsnorm(hn, x, L->ffn_norm, E, c->rms_eps);
			ffn(&R, L, hn, o, buf);
			for (size_t q = 0; q < E; q++)
				x[q] += o[q];
		}
		R.n_past++;
	}
	rmsnorm(hn, x, m->out_norm, E, c->rms_eps);
	matvec(&R, &m->output, hn, logits);
done:
	for (uint32_t i = 0; i < c->n_attention; i++) {
		if (R.k)
			ag_free(R.k[i]);
		if (R.v)
			ag_free(R.v[i]);
	}
	ag_free(R.k);
	ag_free(R.v);
	ag_free(R.conv);
	ag_free(R.ssm);
	ag_free(R.row);
	ag_free(x);
	ag_free(hn);
	ag_free(o);
	ag_free(buf);
	return rc;
}
