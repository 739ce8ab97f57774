/*
 * Tokenizer and sampler speed: tokenize and detokenize a 1 MiB synthetic text
 * with a SentencePiece-style and a byte-level BPE vocabulary built here, and
 * time engine_sample over a 65,536-token vocabulary (Jamba's size) with the
 * default chain and with temperature only. Prints MB/s and microseconds.
 */
#include <stdio.h>
#include <string.h>

#include "engine/engine.h"

static uint64_t rng = 1;
static uint32_t next_rand(void)
{
	rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(rng >> 33);
}

static const char *const words[] = {"the",    "employee", "travel",      "policy",
				    "allows", "meals",    "of",          "up",
				    "to",     "forty",    "euros",       "per",
				    "day",    "and",      "hotels",      "within",
				    "city",   "limits",   "caf\xc3\xa9", "\xe4\xb8\xad\xe6\x96\x87",
				    "2024",   "answer",   "document"};
#define N_WORDS (sizeof words / sizeof words[0])

static char *make_text(size_t size)
{
	char *t = ag_malloc(size + 32);
	size_t n = 0;
	while (n < size) {
		const char *w = words[next_rand() % N_WORDS];
		size_t l = strlen(w);
		memcpy(t + n, w, l);
		n += l;
		t[n++] = next_rand() % 12 == 0 ? '\n' : ' ';
	}
	t[size] = 0;
	return t;
}

static void run(const char *name, engine_tokenizer *tok, const char *text, size_t len)
{
	int32_t *ids = NULL;
	size_t n = 0;
	int64_t t0 = ag_monotonic_ns();
	int reps = 3;
	for (int r = 0; r < reps; r++) {
		ag_free(ids);
		if (engine_tokenize(tok, text, len, false, false, &ids, &n)) {
			fprintf(stderr, "%s\n", ag_error_last());
			return;
		}
	}
	int64_t t1 = ag_monotonic_ns();
	char *back = NULL;
	for (int r = 0; r < reps; r++) {
		ag_free(back);
		engine_detokenize(tok, ids, n, false, &back, NULL);
	}
	int64_t t2 = ag_monotonic_ns();
	double mb = (double)len * reps / 1e6;
	printf("%-5s tokenize %.1f MB/s (%zu tokens, %.2f bytes/token), detokenize %.1f MB/s, exact %s\n",
	       name, mb / ((double)(t1 - t0) / 1e9), n, (double)len / (double)n,
	       mb / ((double)(t2 - t1) / 1e9), back && strcmp(back, text) == 0 ? "yes" : "NO");
	ag_free(back);
	ag_free(ids);
}

int main(void)
{
	ag_alloc_init();
	size_t size = 1 << 20;
	char *text = make_text(size);
	/* SPM: specials, 256 byte tokens, letters, and every word with and without ▁, scored by length. */
	static const char *tokens[1024];
	static float scores[1024];
	static int32_t types[1024];
	static char store[1024][40];
	size_t n = 0;
	tokens[n] = "<unk>", types[n++] = ENGINE_TOKEN_UNKNOWN;
	tokens[n] = "<s>", types[n++] = ENGINE_TOKEN_CONTROL;
	tokens[n] = "</s>", types[n++] = ENGINE_TOKEN_CONTROL;
	for (int b = 0; b < 256; b++) {
		snprintf(store[n], sizeof store[n], "<0x%02X>", b);
		tokens[n] = store[n], types[n++] = ENGINE_TOKEN_BYTE;
	}
	for (int c = 'a'; c <= 'z'; c++) {
		snprintf(store[n], sizeof store[n], "%c", c);
		tokens[n] = store[n], scores[n] = -100, types[n++] = ENGINE_TOKEN_NORMAL;
	}
	for (size_t w = 0; w < N_WORDS; w++) {
		size_t l = strlen(words[w]);
		for (size_t pre = 1; pre <= l; pre++) { /* every prefix, so merges can grow left to right */
			snprintf(store[n], sizeof store[n], "%.*s", (int)pre, words[w]);
			if (pre > 1) {
				tokens[n] = store[n], scores[n] = -(float)(50 - pre),
				types[n++] = ENGINE_TOKEN_NORMAL;
			}
			snprintf(store[n], sizeof store[n], "\xe2\x96\x81%.*s", (int)pre, words[w]);
			tokens[n] = store[n], scores[n] = -(float)(50 - pre),
			types[n++] = ENGINE_TOKEN_NORMAL;
		}
	}
	engine_vocab_desc d;
	engine_vocab_desc_init(&d);
	d.tokens = tokens;
	d.scores = scores;
	d.types = types;
	d.n_tokens = n;
	d.add_space_prefix = false;
	engine_tokenizer *spm;
	if (engine_tokenizer_create(&spm, &d)) {
		fprintf(stderr, "%s\n", ag_error_last());
		return 1;
	}
	run("spm", spm, text, size);
	engine_tokenizer_free(spm);

	/* Byte-level BPE: the 256 stand-ins and a merge for each adjacent letter pair of the words. */
	static const char *btok[2048];
	static const char *merges[2048];
	static char bstore[2048][16], mstore[2048][24];
	int extra = 0;
	for (int b = 0; b < 256; b++) {
		bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
		int cp = printable ? b : 256 + extra++;
		if (cp < 0x80) {
			bstore[b][0] = (char)cp;
		} else {
			bstore[b][0] = (char)(0xC0 | (cp >> 6));
			bstore[b][1] = (char)(0x80 | (cp & 0x3F));
		}
		btok[b] = bstore[b];
	}
	size_t nb = 256, nm = 0;
	for (size_t w = 0; w < N_WORDS; w++) {
		const char *word = words[w];
		for (size_t pre = 2; pre <= strlen(word) && nb < 2000; pre++) {
			snprintf(bstore[nb], sizeof bstore[nb], "%.*s", (int)pre, word);
			if ((uint8_t)word[pre - 1] >= 0x80 || (uint8_t)word[0] >= 0x80)
				break; /* keep to ASCII letters: stand-ins differ from the raw bytes */
			snprintf(mstore[nm], sizeof mstore[nm], "%.*s %c", (int)pre - 1, word, word[pre - 1]);
			btok[nb] = bstore[nb];
			nb++;
			merges[nm] = mstore[nm];
			nm++;
		}
	}
	engine_vocab_desc_init(&d);
	d.model = "gpt2";
	d.tokens = btok;
	d.n_tokens = nb;
	d.merges = merges;
	d.n_merges = nm;
	d.add_bos = false;
	engine_tokenizer *bpe;
	if (engine_tokenizer_create(&bpe, &d)) {
		fprintf(stderr, "%s\n", ag_error_last());
		return 1;
	}
	run("gpt2", bpe, text, size);
	engine_tokenizer_free(bpe);
	ag_free(text);

	/* Sampling over a Jamba-sized vocabulary. */
	enum { V = 65536, DRAWS = 500 };
	static float logits[V];
	for (int i = 0; i < V; i++)
		logits[i] = (float)(next_rand() % 20000) / 1000.0f - 10.0f;
	const char *labels[] = {"greedy", "temperature only (top_k 0, top_p 1, min_p 0)",
				"default chain (top_k 40, top_p 0.95, min_p 0.05, penalty 1.1)",
				"top_p 0.9 alone"};
	for (int k = 0; k < 4; k++) {
		engine_sampler_params p;
		engine_sampler_params_init(&p);
		if (k == 0)
			p.temperature = 0;
		if (k == 1 || k == 3)
			p.top_k = 0, p.top_p = 1, p.min_p = 0;
		if (k == 2)
			p.repeat_penalty = 1.1f;
		if (k == 3)
			p.top_p = 0.9f;
		engine_sampler *s;
		engine_sampler_new(&s, &p);
		int64_t t0 = ag_monotonic_ns();
		for (int i = 0; i < DRAWS; i++) {
			int32_t tok;
			engine_sample(s, logits, V, &tok);
			engine_sampler_accept(s, tok);
		}
		printf("sample %-62s %7.1f us per token (vocab %d)\n", labels[k],
		       (double)(ag_monotonic_ns() - t0) / 1e3 / DRAWS, V);
		engine_sampler_free(s);
	}
	return 0;
}
