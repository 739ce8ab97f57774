/* The selective scan for training, forward and backward, as a small C kernel
 * loaded by models/train/scan.py through ctypes. It runs the exact step-by-
 * step recurrence of the engine (no clamping, no closed form):
 *   s_t = exp(dt_t * A) * s_{t-1} + dt_t * u_t * B_t,   y_t = <s_t, C_t>
 * per (batch, channel), which costs T*D*N multiply-adds; PyTorch's chunked
 * formulation needs a dozen full (B, T, D, N) tensor passes forward and more
 * backward. Layouts: u, dt, y are (B, T, D); Bm, Cm are (B, T, N); A is
 * (D, N); S, the saved states, is (B, T, D, N). All float32, contiguous. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#define MAXN 64

void scan_threads(int n) { omp_set_num_threads(n); }

int scan_fwd(int nb, int nt, int nd, int nn, const float *u, const float *dt, const float *A, const float *Bm,
	     const float *Cm, float *y, float *S)
{
	if (nn > MAXN)
		return -1;
#pragma omp parallel for schedule(static)
	for (long bd = 0; bd < (long)nb * nd; bd++) {
		long b = bd / nd, d = bd % nd;
		float s[MAXN] = {0};
		const float *a = A + d * nn;
		for (long t = 0; t < nt; t++) {
			long i = (b * nt + t) * nd + d;
			float de = dt[i], du = de * u[i], acc = 0;
			const float *bb = Bm + (b * nt + t) * nn, *cc = Cm + (b * nt + t) * nn;
			for (int n = 0; n < nn; n++) {
				s[n] = expf(de * a[n]) * s[n] + du * bb[n];
				acc += s[n] * cc[n];
			}
			y[i] = acc;
			if (S)
				memcpy(S + i * nn, s, nn * sizeof(float));
		}
	}
	return 0;
}

/* Reverse-time adjoint: h is the gradient reaching s_t (from y_t and from
 * s_{t+1} through its decay). gB and gC sum over channels, so each thread
 * accumulates them in its own buffer; gA is per channel and the parallel
 * loop is over channels, so it needs none. Outputs are overwritten. */
int scan_bwd(int nb, int nt, int nd, int nn, const float *u, const float *dt, const float *A, const float *Bm,
	     const float *Cm, const float *S, const float *gy, float *gu, float *gdt, float *gA, float *gB,
	     float *gC)
{
	if (nn > MAXN)
		return -1;
	long btn = (long)nb * nt * nn;
	int nth = omp_get_max_threads();
	float *buf = calloc((size_t)nth * 2 * btn, sizeof(float));
	if (!buf)
		return -1;
#pragma omp parallel
	{
		float *gBt = buf + (size_t)omp_get_thread_num() * 2 * btn, *gCt = gBt + btn;
#pragma omp for schedule(static)
		for (long d = 0; d < nd; d++) {
			const float *a = A + d * nn;
			float ga[MAXN] = {0};
			for (long b = 0; b < nb; b++) {
				float h[MAXN] = {0};
				for (long t = nt - 1; t >= 0; t--) {
					long i = (b * nt + t) * nd + d, bt = (b * nt + t) * nn;
					float g = gy[i], de = dt[i], uu = u[i], gde = 0, hb = 0;
					const float *sc = S + i * nn, *sp = t > 0 ? S + (i - nd) * nn : NULL;
					for (int n = 0; n < nn; n++) {
						float at = expf(de * a[n]);
						h[n] += g * Cm[bt + n];
						gCt[bt + n] += g * sc[n];
						float gda = sp ? h[n] * sp[n] * at : 0.0f;
						gde += gda * a[n];
						ga[n] += gda * de;
						hb += h[n] * Bm[bt + n];
						gBt[bt + n] += h[n] * de * uu;
						h[n] *= at;
					}
					gu[i] = de * hb;
					gdt[i] = gde + uu * hb;
				}
			}
			memcpy(gA + d * nn, ga, nn * sizeof(float));
		}
	}
	memset(gB, 0, btn * sizeof(float));
	memset(gC, 0, btn * sizeof(float));
	for (int th = 0; th < nth; th++)
		for (long k = 0; k < btn; k++) {
			gB[k] += buf[(size_t)th * 2 * btn + k];
			gC[k] += buf[(size_t)th * 2 * btn + btn + k];
		}
	free(buf);
	return 0;
}
