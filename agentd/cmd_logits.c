/* `agentd logits --model FILE.gguf --tokens "ID ID ..."`: runs the prompt through
 * the engine and prints the logits of the position after the last token, one
 * decimal number a line, n_vocab lines. `--reference 1` prints the plain
 * double-precision reference pass instead (slow; for checking the fast one). */
#include <stdio.h>
#include <string.h>

#include "agentd/cli.h"
#include "engine/engine.h"

/* Whitespace-separated decimal token ids. */
static int parse_tokens(const char *s, int32_t **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	size_t cap = 0;
	int32_t *v = NULL;
	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == '\n' || *s == ',')
			s++;
		if (!*s)
			break;
		char num[24];
		size_t k = 0;
		while (*s && *s != ' ' && *s != '\t' && *s != '\n' && *s != ',') {
			if (k + 1 >= sizeof num) {
				ag_free(v);
				return ag_error_set(AG_EINVAL, "token id too long");
			}
			num[k++] = *s++;
		}
		num[k] = 0;
		long long id;
		if (ag_parse_long(num, 0, INT32_MAX, &id)) {
			ag_free(v);
			return ag_error_set(AG_EINVAL, "bad token id '%s'", num);
		}
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			int32_t *nv = ag_realloc(v, cap * sizeof(int32_t));
			if (!nv) {
				ag_free(v);
				return ag_error_set(AG_ENOMEM, "out of memory");
			}
			v = nv;
		}
		v[(*n)++] = (int32_t)id;
	}
	if (!*n)
		return ag_error_set(AG_EINVAL, "no tokens given");
	*out = v;
	return 0;
}

int agentd_cmd_logits(int argc, char **argv)
{
	agentd_config *cfg;
	if (agentd_config_new(&cfg)) {
		fprintf(stderr, "agentd: %s\n", ag_error_last());
		return 1;
	}
	static const char *const extra[] = {"tokens", "threads", "reference", NULL};
	const char *vals[3], *pos[1];
	int npos, status = 0;
	int32_t *toks = NULL;
	size_t n = 0;
	engine_model *m = NULL;
	engine_state *s = NULL;
	float *lf = NULL;
	double *ld = NULL;
	long long threads = 1, reference = 0;
	if ((status = agentd_cli_parse(argc, argv, cfg, extra, vals, pos, 0, &npos)))
		goto out;
	if (!vals[0]) {
		fprintf(stderr,
			"usage: agentd logits --model FILE.gguf --tokens \"ID ID ...\" [--threads N]\n");
		status = 2;
		goto out;
	}
	if (parse_tokens(vals[0], &toks, &n) || (vals[1] && ag_parse_long(vals[1], 1, 64, &threads)) ||
	    (vals[2] && ag_parse_long(vals[2], 0, 1, &reference))) {
		fprintf(stderr, "agentd: %s\n",
			vals[1] || vals[2] ? "bad --tokens, --threads or --reference" : ag_error_last());
		status = 2;
		goto out;
	}
	const char *path = agentd_config_get(cfg, "model");
	if (engine_model_load(&m, path) || engine_set_threads(m, (int)threads) ||
	    engine_set_kernels(m, agentd_config_get(cfg, "engine_kernels"))) {
		fprintf(stderr, "agentd: %s\n", ag_error_last());
		status = 1;
		goto out;
	}
	uint32_t V = engine_model_config(m)->n_vocab;
	int rc;
	if (reference) {
		ld = ag_malloc(V * sizeof(double));
		rc = ld ? engine_reference_logits(m, toks, n, ld) : ag_error_set(AG_ENOMEM, "out of memory");
	} else {
		lf = ag_malloc(V * sizeof(float));
		rc = lf ? engine_state_new(&s, m) : ag_error_set(AG_ENOMEM, "out of memory");
		if (!rc)
			rc = engine_prefill(m, s, toks, n, lf);
	}
	if (rc) {
		fprintf(stderr, "agentd: %s\n", ag_error_last());
		status = rc == AG_EINVAL ? 2 : 1;
		goto out;
	}
	for (uint32_t i = 0; i < V; i++)
		printf("%.9g\n", reference ? ld[i] : (double)lf[i]);
	if (fflush(stdout)) {
		fprintf(stderr, "agentd: cannot write the logits\n");
		status = 1;
	}
out:
	ag_free(toks);
	ag_free(lf);
	ag_free(ld);
	engine_state_free(s);
	engine_model_free(m);
	agentd_config_free(cfg);
	return status;
}
