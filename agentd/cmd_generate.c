/* `agentd generate --model FILE.gguf --prompt TEXT [--max-tokens N]
 * [--temperature T] [--seed S] [--threads N] [--quote-sources FILE [--quote-question TEXT]]
 * [--tools FILE]`:
 * tokenizes the prompt (with the vocabulary's BOS; special tokens written in it
 * are honoured), runs it through the engine and samples a continuation, printing
 * text as it comes; stops at an end-of-generation token or after N tokens.
 * Speeds go to stderr. With --quote-sources (a JSON array of texts) and/or
 * --tools (a JSON array of tool definitions, as the chat API takes them) the
 * answer is decoded as an agent run's is (engine_local_complete): quotes held to
 * those texts and chosen by whole sentences, tool calls held to the tools'
 * schemas; it is printed when whole. --quote-question names the question the
 * quotes answer, as an agent run does, so its words weigh in the choice of
 * the sentence quoted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentd/cli.h"
#include "engine/engine.h"

static int parse_double(const char *s, double min, double max, double *out)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || !(v >= min && v <= max))
		return AG_EINVAL;
	*out = v;
	return 0;
}

static int emit(ag_buf *b)
{
	if (b->len && fwrite(b->data, 1, b->len, stdout) != b->len)
		return ag_error_set(AG_EIO, "cannot write the output");
	fflush(stdout);
	ag_buf_clear(b);
	return 0;
}

/* A JSON array from path (NULL path: NULL, no error); on failure prints why and
 * returns nonzero. */
static int load_array(const char *flag, const char *path, json_t **out)
{
	*out = NULL;
	if (!path)
		return 0;
	json_error_t jerr;
	json_t *a = json_load_file(path, 0, &jerr);
	if (!json_is_array(a)) {
		fprintf(stderr, "agentd: --%s %s: %s\n", flag, path, a ? "not a JSON array" : jerr.text);
		json_decref(a);
		return 2;
	}
	*out = a;
	return 0;
}

/* The agent-run way: the local backend's decoding loop over the raw prompt. */
static int generate_constrained(const char *model, const char *prompt, const char *sources_path,
				const char *question, const char *tools_path, long long max_tokens,
				double temperature, long long seed, long long threads)
{
	json_t *sources, *tools;
	if (load_array("quote-sources", sources_path, &sources))
		return 2;
	if (load_array("tools", tools_path, &tools)) {
		json_decref(sources);
		return 2;
	}
	engine_local *l = NULL;
	engine_chat_response r = {0};
	engine_chat_request req = {
		.max_tokens = (int)max_tokens,
		.temperature = (float)temperature,
		.has_seed = true,
		.seed = (uint64_t)seed,
		.quote_sources = sources,
		.quote_cite_required = true,
		.quote_question = question,
		.tools = tools,
	};
	int64_t t0 = ag_monotonic_ns();
	int status = 1;
	if (engine_local_open(&l, model, (int)threads) ||
	    engine_local_complete(l, prompt, strlen(prompt), &req, &r)) {
		fprintf(stderr, "agentd: %s\n", ag_error_last());
		goto done;
	}
	/* As the plain path prints it: reasoning, its closing tag, the answer, then any calls. */
	if (r.reasoning)
		printf("%s\n</think>\n\n", r.reasoning);
	printf("%s", r.content);
	size_t i;
	json_t *call;
	json_array_foreach(r.tool_calls, i, call)
	{
		char *js = json_dumps(call, JSON_COMPACT);
		printf("<tool_call>\n%s\n</tool_call>", js ? js : "{}");
		ag_free(js);
	}
	printf("\n");
	fprintf(stderr, "agentd: prompt %ld tokens; generated %ld tokens in %.3f s; %lld threads\n",
		r.prompt_tokens, r.completion_tokens, (double)(ag_monotonic_ns() - t0) / 1e9, threads);
	status = 0;
done:
	engine_chat_response_clear(&r);
	engine_local_free(l);
	json_decref(sources);
	json_decref(tools);
	return status;
}

int agentd_cmd_generate(int argc, char **argv)
{
	agentd_config *cfg;
	if (agentd_config_new(&cfg)) {
		fprintf(stderr, "agentd: %s\n", ag_error_last());
		return 1;
	}
	static const char *const extra[] = {"prompt", "max-tokens",     "temperature",
					    "seed",   "threads",        "quote-sources",
					    "tools",  "quote-question", NULL};
	const char *v[8], *pos[1];
	int npos, status;
	long long max_tokens = 128, seed = 0, threads = 0;
	double temperature = 0.8;
	engine_model *m = NULL;
	engine_tokenizer *tok = NULL;
	engine_sampler *smp = NULL;
	engine_state *s = NULL;
	int32_t *ids = NULL;
	float *logits = NULL;
	ag_buf out = AG_BUF_INIT;
	if ((status = agentd_cli_parse(argc, argv, cfg, extra, v, pos, 0, &npos)))
		goto done;
	if (!v[0] || (v[1] && ag_parse_long(v[1], 0, 1 << 20, &max_tokens)) ||
	    (v[2] && parse_double(v[2], 0, 100, &temperature)) ||
	    (v[3] && ag_parse_long(v[3], 0, INT64_MAX, &seed)) ||
	    (v[4] && ag_parse_long(v[4], 1, 64, &threads)) || (v[7] && !v[5])) {
		fprintf(stderr, "usage: agentd generate --model FILE.gguf --prompt TEXT [--max-tokens N] "
				"[--temperature T] [--seed S] [--threads N] [--quote-sources FILE "
				"[--quote-question TEXT]] [--tools FILE]\n");
		status = 2;
		goto done;
	}
	if (!threads && agentd_config_get_long(cfg, "engine_threads", 1, 64, &threads))
		threads = 1;
	if (v[5] || v[6]) {
		status = generate_constrained(agentd_config_get(cfg, "model"), v[0], v[5], v[7], v[6],
					      max_tokens, temperature, seed, threads);
		goto done;
	}
	status = 1;
	int64_t t0 = ag_monotonic_ns();
	if (engine_model_load(&m, agentd_config_get(cfg, "model")) || engine_set_threads(m, (int)threads) ||
	    engine_set_kernels(m, agentd_config_get(cfg, "engine_kernels")) ||
	    engine_tokenizer_create(&tok, engine_model_vocab(m)))
		goto fail;
	size_t n = 0;
	if (engine_tokenize(tok, v[0], strlen(v[0]), true, true, &ids, &n))
		goto fail;
	if (!n) {
		fprintf(stderr, "agentd: the prompt has no tokens\n");
		status = 2;
		goto done;
	}
	engine_sampler_params sp;
	engine_sampler_params_init(&sp);
	sp.temperature = (float)temperature;
	sp.seed = (uint64_t)seed;
	uint32_t V = engine_model_config(m)->n_vocab;
	logits = ag_malloc(V * sizeof(float));
	if (!logits) {
		ag_error_set(AG_ENOMEM, "out of memory");
		goto fail;
	}
	if (engine_sampler_new(&smp, &sp) || engine_state_new(&s, m))
		goto fail;
	int64_t t1 = ag_monotonic_ns();
	if (engine_prefill(m, s, ids, n, logits))
		goto fail;
	for (size_t i = 0; i < n; i++)
		engine_sampler_accept(smp, ids[i]);
	int64_t t2 = ag_monotonic_ns();
	engine_detok dt;
	engine_detok_init(&dt, tok, false);
	long long produced = 0;
	while (produced < max_tokens) {
		int32_t next;
		if (engine_sample(smp, logits, V, &next))
			goto fail;
		produced++;
		if (engine_token_is_eog(tok, next))
			break;
		engine_sampler_accept(smp, next);
		if (engine_detok_push(&dt, next, &out) || emit(&out))
			goto fail;
		if (produced < max_tokens && engine_decode(m, s, next, logits))
			goto fail;
	}
	if (engine_detok_finish(&dt, &out) || emit(&out))
		goto fail;
	int64_t t3 = ag_monotonic_ns();
	printf("\n");
	double pre = (double)(t2 - t1) / 1e9, gen = (double)(t3 - t2) / 1e9;
	fprintf(stderr,
		"agentd: load %.2f s; prompt %zu tokens in %.3f s (%.1f tokens/s); generated %lld tokens in "
		"%.3f s "
		"(%.2f tokens/s); %lld threads\n",
		(double)(t1 - t0) / 1e9, n, pre, pre > 0 ? (double)n / pre : 0.0, produced, gen,
		gen > 0 ? (double)produced / gen : 0.0, threads);
	status = 0;
	goto done;
fail:
	fprintf(stderr, "agentd: %s\n", ag_error_last());
done:
	ag_buf_free(&out);
	ag_free(ids);
	ag_free(logits);
	engine_state_free(s);
	engine_sampler_free(smp);
	engine_tokenizer_free(tok);
	engine_model_free(m);
	agentd_config_free(cfg);
	return status;
}
