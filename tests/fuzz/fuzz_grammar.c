/* Fuzz harness: the JSON Schema to grammar compiler and the matcher. The input is a
 * schema and a text separated by the first newline. The schema goes through jansson and
 * engine_grammar_compile (engine_grammar_compile_tools when it is an array of tools) (with prefix, suffix and
 * newlines on half the time); the text is fed byte by byte, asking complete/finished along the way, then
 * masked against a small vocabulary cut from the text itself. Whatever the matcher accepts and calls complete
 * must parse with jansson (less the optional newlines), which the harness checks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	if (!init) {
		ag_alloc_init();
		init = 1;
	}
	const char *text = (const char *)data;
	const char *nl = memchr(text, '\n', size);
	size_t slen = nl ? (size_t)(nl - text) : size;
	json_t *schema = NULL;
	if (ag_json_parse(&schema, text, slen) != 0)
		return 0;
	engine_grammar_options o;
	engine_grammar_options_init(&o);
	bool wrapped = slen % 2 == 1;
	if (wrapped) {
		o.prefix = "<x>";
		o.suffix = "</x>";
		o.newlines = true;
	}
	o.max_string = 16;
	o.max_items = 8;
	o.max_depth = 6;
	engine_grammar *g = NULL;
	/* An array is a tools list (the tool-call grammar), anything else a schema. */
	int rc = json_is_array(schema) ? engine_grammar_compile_tools(&g, schema, NULL, &o)
				       : engine_grammar_compile(&g, schema, &o);
	if (rc != 0) {
		json_decref(schema);
		return 0;
	}
	engine_grammar_matcher *m = NULL;
	if (engine_grammar_matcher_new(&m, g) == 0 && nl) {
		const char *body = nl + 1;
		size_t blen = size - slen - 1, taken = 0;
		for (; taken < blen; taken++) {
			if (engine_grammar_matcher_feed(m, body + taken, 1) != 0)
				break;
			(void)engine_grammar_matcher_complete(m);
		}
		if (taken == blen && engine_grammar_matcher_complete(m)) {
			/* Accepted and complete: it is JSON (inside the wrapper, if any). */
			const char *j = body;
			size_t jl = blen;
			if (wrapped) {
				j += 3;
				jl -= 7;
				if (jl && j[0] == '\n')
					j++, jl--;
			}
			json_error_t err;
			json_t *v = json_loadb(j, jl, JSON_DECODE_ANY, &err);
			if (!v)
				abort(); /* the grammar accepted something that is not JSON */
			json_decref(v);
		}
		/* Masks over a vocabulary of the text's pieces (1 to 4 bytes each). */
		engine_grammar_matcher_reset(m);
		size_t n_vocab = blen / 2 + 2;
		const char **pieces = ag_calloc(n_vocab, sizeof *pieces);
		size_t *lens = ag_calloc(n_vocab, sizeof *lens);
		engine_grammar_vocab *v = NULL;
		if (pieces && lens) {
			size_t at = 0;
			for (size_t i = 0; i + 1 < n_vocab && at < blen; i++) {
				size_t len = 1 + (size_t)(unsigned char)body[at] % 4;
				if (len > blen - at)
					len = blen - at;
				pieces[i] = body + at;
				lens[i] = len;
				at += len;
			}
			if (engine_grammar_vocab_new_pieces(&v, pieces, lens, n_vocab) == 0) {
				uint32_t *mask = ag_malloc(((n_vocab + 31) / 32) * sizeof *mask);
				int32_t end = (int32_t)n_vocab - 1;
				for (int step = 0; mask && step < 8; step++) {
					if (engine_grammar_mask(m, v, &end, 1, mask) != 0)
						break;
					size_t pick = SIZE_MAX;
					for (size_t i = 0; i + 1 < n_vocab && pick == SIZE_MAX; i++)
						if ((mask[i >> 5] >> (i & 31)) & 1)
							pick = i;
					if (pick == SIZE_MAX)
						break;
					/* A token the mask allows is accepted by the matcher. */
					if (engine_grammar_matcher_feed(m, pieces[pick], lens[pick]) != 0)
						abort();
				}
				ag_free(mask);
			}
		}
		engine_grammar_vocab_free(v);
		ag_free(pieces);
		ag_free(lens);
	}
	engine_grammar_matcher_free(m);
	engine_grammar_free(g);
	json_decref(schema);
	return 0;
}
