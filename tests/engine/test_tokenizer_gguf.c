/* The tokenizer built from a GGUF file's own metadata: a random Jamba model written by
 * engine_jamba_random_write, loaded by engine_model_load, its vocabulary handed to
 * engine_tokenizer_create. Checks what the loader and the tokenizer must agree on:
 * ids, types, byte fallback, special tokens, the chat template and exact round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

static void test_vocab_from_gguf(void **state)
{
	(void)state;
	const char *tmp = getenv("TEST_TMPDIR");
	char path[4096];
	snprintf(path, sizeof path, "%s/tok.gguf", tmp ? tmp : "/tmp");
	engine_jamba_random p;
	engine_jamba_random_init(&p);
	p.n_vocab = 700;
	assert_int_equal(engine_jamba_random_write(&p, path), 0);
	engine_model *m;
	assert_int_equal(engine_model_load(&m, path), 0);
	const engine_vocab_desc *d = engine_model_vocab(m);
	assert_non_null(d);
	assert_int_equal(d->n_tokens, 700);
	engine_tokenizer *t;
	assert_int_equal(engine_tokenizer_create(&t, d), 0);
	assert_int_equal(engine_tokenizer_n_vocab(t), engine_model_config(m)->n_vocab);

	/* Special tokens as the file names them. */
	int32_t im_start = engine_token_lookup(t, "<|im_start|>"),
		im_end = engine_token_lookup(t, "<|im_end|>");
	assert_true(im_start >= 0 && im_end >= 0);
	assert_int_equal(engine_token_type(t, im_end), ENGINE_TOKEN_CONTROL);
	assert_true(engine_token_is_eog(t, im_end));
	assert_true(engine_token_is_eog(t, engine_token_eos(t)));
	assert_string_equal(engine_token_text(t, engine_token_bos(t)), "<s>");
	assert_int_equal(engine_chat_detect(engine_tokenizer_chat_template(t)), ENGINE_CHAT_CHATML);

	/* A rendered prompt: the ChatML markers become single tokens, BOS leads. */
	json_t *msgs = json_pack("[{s:s, s:s}]", "role", "user", "content", "hello there");
	engine_chat_options o;
	engine_chat_options_init(&o);
	o.add_bos = false;
	char *prompt;
	size_t plen;
	assert_int_equal(engine_chat_render(&prompt, &plen, &o, msgs, NULL), 0);
	int32_t *ids;
	size_t n;
	assert_int_equal(engine_tokenize(t, prompt, plen, true, true, &ids, &n), 0);
	assert_true(n > 4);
	assert_int_equal(ids[0], engine_token_bos(t));
	assert_int_equal(ids[1], im_start);
	size_t n_start = 0;
	for (size_t i = 0; i < n; i++)
		n_start += ids[i] == im_start;
	assert_int_equal(n_start, 2); /* the user turn and the generation prompt */
	char *back;
	assert_int_equal(engine_detokenize(t, ids, n, true, &back, NULL), 0);
	assert_non_null(strstr(back, "hello there<|im_end|>"));
	ag_free(back);
	ag_free(ids);
	ag_free(prompt);
	json_decref(msgs);

	/* Exact round trips of arbitrary bytes through the file's vocabulary, and every id in range. */
	uint64_t x = 77;
	char text[256];
	for (int round = 0; round < 200; round++) {
		size_t len = 0;
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t want = (size_t)(x % sizeof text);
		while (len < want) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			text[len++] = (x & 3) ? "hello world the a "[x % 18] : (char)(x >> 8);
		}
		assert_int_equal(engine_tokenize(t, text, len, false, false, &ids, &n), 0);
		for (size_t i = 0; i < n; i++)
			assert_true(ids[i] >= 0 && (size_t)ids[i] < 700);
		size_t bl;
		assert_int_equal(engine_detokenize(t, ids, n, false, &back, &bl), 0);
		assert_int_equal(bl, len);
		assert_memory_equal(back, text, len);
		ag_free(back);
		ag_free(ids);
	}
	engine_tokenizer_free(t);
	engine_model_free(m);
}

int main(void)
{
	ag_alloc_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vocab_from_gguf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
