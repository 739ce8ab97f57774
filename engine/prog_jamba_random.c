/*
 * jamba_random: writes a random-weight Jamba GGUF of any shape, for tests and
 * benchmarks (see engine_jamba_random_write).
 *
 *   jamba_random OUT.gguf [--vocab N] [--embd N] [--layers N] [--ff N] [--heads N]
 *       [--kv-heads N] [--attn-period N] [--attn-offset N] [--experts N]
 *       [--experts-used N] [--expert-period N] [--expert-offset N] [--d-state N]
 *       [--d-conv N] [--expand N] [--dt-rank N] [--type f32|f16|bf16|q8_0|q4_0|q4_k|q5_k|q6_k]
 *       [--tied] [--seed N]
 */
#include <stdio.h>
#include <string.h>

#include "engine/engine.h"

static int usage(const char *msg)
{
	fprintf(stderr,
		"jamba_random: %s\nusage: jamba_random OUT.gguf [--vocab N] [--embd N] [--layers N] [--ff N] "
		"[--heads N] [--kv-heads N] [--attn-period N] [--attn-offset N] [--experts N] "
		"[--experts-used N] [--expert-period N] [--expert-offset N] [--d-state N] [--d-conv N] "
		"[--expand N] [--dt-rank N] [--type f32|f16|bf16|q8_0|q4_0|q4_k|q5_k|q6_k] [--tied] [--seed "
		"N]\n",
		msg);
	return 2;
}

int main(int argc, char **argv)
{
	ag_alloc_init();
	engine_jamba_random p;
	engine_jamba_random_init(&p);
	const char *out = NULL;
	struct {
		const char *name;
		uint32_t *dst;
	} opts[] = {{"--vocab", &p.n_vocab},
		    {"--embd", &p.n_embd},
		    {"--layers", &p.n_layer},
		    {"--ff", &p.n_ff},
		    {"--heads", &p.n_head},
		    {"--kv-heads", &p.n_head_kv},
		    {"--attn-period", &p.attn_period},
		    {"--attn-offset", &p.attn_offset},
		    {"--experts", &p.n_expert},
		    {"--experts-used", &p.n_expert_used},
		    {"--expert-period", &p.expert_period},
		    {"--expert-offset", &p.expert_offset},
		    {"--d-state", &p.d_state},
		    {"--d-conv", &p.d_conv},
		    {"--expand", &p.expand},
		    {"--dt-rank", &p.dt_rank}};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--tied")) {
			p.tied = true;
			continue;
		}
		if (a[0] != '-') {
			if (out)
				return usage("more than one output file");
			out = a;
			continue;
		}
		if (i + 1 >= argc)
			return usage("an option lacks its value");
		const char *v = argv[++i];
		long long n;
		if (!strcmp(a, "--type")) {
			static const struct {
				const char *n;
				uint32_t t;
			} types[] = {{"f32", ENGINE_TYPE_F32},   {"f16", ENGINE_TYPE_F16},
				     {"bf16", ENGINE_TYPE_BF16}, {"q8_0", ENGINE_TYPE_Q8_0},
				     {"q4_0", ENGINE_TYPE_Q4_0}, {"q4_k", ENGINE_TYPE_Q4_K},
				     {"q5_k", ENGINE_TYPE_Q5_K}, {"q6_k", ENGINE_TYPE_Q6_K}};
			size_t k = 0;
			for (; k < sizeof(types) / sizeof(types[0]) && strcmp(types[k].n, v); k++)
				;
			if (k == sizeof(types) / sizeof(types[0]))
				return usage("unknown --type");
			p.weight_type = types[k].t;
			continue;
		}
		if (!strcmp(a, "--seed")) {
			if (ag_parse_long(v, 0, INT64_MAX, &n))
				return usage("bad --seed");
			p.seed = (uint64_t)n;
			continue;
		}
		size_t k = 0;
		for (; k < sizeof(opts) / sizeof(opts[0]) && strcmp(opts[k].name, a); k++)
			;
		if (k == sizeof(opts) / sizeof(opts[0]))
			return usage("unknown option");
		if (ag_parse_long(v, 0, 1 << 24, &n))
			return usage("a size is not a number in range");
		*opts[k].dst = (uint32_t)n;
	}
	if (!out)
		return usage("no output file");
	if (engine_jamba_random_write(&p, out)) {
		fprintf(stderr, "jamba_random: %s\n", ag_error_last());
		return 1;
	}
	return 0;
}
