/*
 * The local backend: chat completions from a GGUF model on this machine.
 * Renders the messages with the model's chat template, tokenizes them,
 * prefills, then samples token by token until an end-of-generation token, a
 * stop string or the token limit, streaming the answer text as it comes and
 * holding back the reasoning block the generation prompt opens.
 *
 * Message contents are data: any special-token text inside them (say
 * "<|im_end|>") is broken with a zero-width space before tokenizing, so a
 * document or a user cannot forge a turn boundary. One sequence advances at
 * a time (the forward pass shares its scratch buffers); batching many
 * sequences through one pass is the engine's next step.
 *
 * Constrained decoding (engine/grammar*.c, wired in local_grammar.c): a
 * response_format json_schema constrains the whole answer to the schema; a
 * tool call the model opens with <tool_call> is constrained to {"name": one
 * of the tools, "arguments": its parameters}; tool_choice "required" or a
 * named function forces one such call. Constrained answers skip the opened
 * think block, so the first token is already JSON.
 */
#include "engine/engine.h"
#include "engine/local_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_TOKENS 512
#define LOCAL_MAX_BATCH    16 /* sequences decoded together at most */
#define ZWSP               "\xe2\x80\x8b"

static void free_specials(engine_local *l)
{
	for (size_t i = 0; i < l->nspecials; i++)
		ag_free(l->specials[i]);
	ag_free(l->specials);
	l->specials = NULL;
	l->nspecials = 0;
}

static int collect_specials(engine_local *l)
{
	size_t n = engine_tokenizer_n_vocab(l->tok), count = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			int32_t type = engine_token_type(l->tok, (int32_t)i);
			const char *text = engine_token_text(l->tok, (int32_t)i);
			if ((type != ENGINE_TOKEN_CONTROL && type != ENGINE_TOKEN_USER_DEFINED) || !text ||
			    strlen(text) < 2)
				continue;
			if (pass == 1) {
				l->specials[count] = ag_strdup(text);
				if (!l->specials[count])
					return ag_error_set(AG_ENOMEM,
							    "out of memory reading special tokens");
			}
			count++;
		}
		if (pass == 0) {
			l->specials = ag_calloc(count ? count : 1, sizeof *l->specials);
			if (!l->specials)
				return ag_error_set(AG_ENOMEM, "out of memory reading special tokens");
			l->nspecials = count;
			count = 0;
		}
	}
	return 0;
}

int engine_local_open(engine_local **out, const char *path, int threads)
{
	*out = NULL;
	engine_local *l = ag_calloc(1, sizeof *l);
	if (!l)
		return ag_error_set(AG_ENOMEM, "out of memory opening the model");
	int rc = engine_model_load(&l->model, path);
	if (!rc)
		rc = engine_tokenizer_create(&l->tok, engine_model_vocab(l->model));
	if (!rc)
		rc = engine_set_threads(l->model, threads > 0 ? threads : 1);
	if (!rc)
		rc = collect_specials(l);
	if (!rc)
		rc = engine_batcher_new(&l->batcher, l->model, LOCAL_MAX_BATCH);
	if (rc) {
		engine_local_free(l);
		return rc;
	}
	l->format = engine_chat_detect(engine_tokenizer_chat_template(l->tok));
	pthread_mutex_init(&l->lock, NULL);
	const char *base = strrchr(path, '/');
	snprintf(l->name, sizeof l->name, "%s", base ? base + 1 : path);
	char *dot = strstr(l->name, ".gguf");
	if (dot)
		*dot = '\0';
	*out = l;
	return 0;
}

void engine_local_free(engine_local *l)
{
	if (!l)
		return;
	if (l->specials)
		pthread_mutex_destroy(&l->lock);
	free_specials(l);
	engine_grammar_vocab_free(l->gvocab);
	engine_batcher_free(l->batcher);
	engine_tokenizer_free(l->tok);
	engine_model_free(l->model);
	ag_free(l);
}

engine_model *engine_local_model(engine_local *l) { return l->model; }

void engine_local_batch_stats(engine_local *l, uint64_t *passes, uint64_t *steps)
{
	engine_batcher_stats(l->batcher, passes, steps);
}
const engine_tokenizer *engine_local_tokenizer(const engine_local *l) { return l->tok; }
const char *engine_local_name(const engine_local *l) { return l->name; }

/* Text with every special-token spelling broken by a zero-width space after its first byte. */
static char *neutralise(const engine_local *l, const char *text)
{
	ag_buf b = AG_BUF_INIT;
	int rc = 0;
	const char *p = text;
	while (*p && !rc) {
		bool hit = false;
		if (*p == '<' || *p == '[') {
			for (size_t i = 0; i < l->nspecials; i++) {
				size_t n = strlen(l->specials[i]);
				if (strncmp(p, l->specials[i], n) == 0) {
					rc = ag_buf_putc(&b, *p);
					if (!rc)
						rc = ag_buf_puts(&b, ZWSP);
					p++;
					hit = true;
					break;
				}
			}
		}
		if (!hit && !rc)
			rc = ag_buf_putc(&b, *p++);
	}
	if (!rc && !b.data)
		rc = ag_buf_puts(&b, "");
	if (rc) {
		ag_buf_free(&b);
		return NULL;
	}
	return ag_buf_detach(&b, NULL);
}

static json_t *safe_messages(const engine_local *l, const json_t *messages)
{
	json_t *out = json_deep_copy(messages);
	size_t i;
	json_t *m;
	json_array_foreach(out, i, m)
	{
		const char *c = json_string_value(json_object_get(m, "content"));
		if (!c)
			continue;
		char *safe = neutralise(l, c);
		if (!safe) {
			json_decref(out);
			return NULL;
		}
		json_object_set_new(m, "content", json_string(safe));
		ag_free(safe);
	}
	return out;
}

/* Tokens of the rendered messages; *out is the caller's. */
static int prompt_tokens(engine_local *l, const json_t *messages, const json_t *tools, bool fresh,
			 bool generation_prompt, bool think, int32_t **out, size_t *n)
{
	json_t *safe = safe_messages(l, messages);
	if (!safe)
		return ag_error_set(AG_ENOMEM, "out of memory preparing the prompt");
	engine_chat_options opt;
	engine_chat_options_init(&opt);
	opt.format = l->format;
	opt.add_bos = false; /* the BOS id is added below, whatever the vocabulary spells it */
	opt.add_generation_prompt = generation_prompt;
	opt.think = think;
	char *text;
	size_t len;
	int rc = engine_chat_render(&text, &len, &opt, safe, tools);
	json_decref(safe);
	if (rc)
		return rc;
	int32_t *ids;
	size_t count;
	rc = engine_tokenize(l->tok, text, len, false, true, &ids, &count);
	ag_free(text);
	if (rc)
		return rc;
	int32_t bos = engine_token_bos(l->tok);
	if (fresh && bos >= 0) {
		int32_t *with = ag_malloc((count + 1) * sizeof *with);
		if (!with) {
			ag_free(ids);
			return ag_error_set(AG_ENOMEM, "out of memory preparing the prompt");
		}
		with[0] = bos;
		memcpy(with + 1, ids, count * sizeof *ids);
		ag_free(ids);
		ids = with;
		count++;
	}
	*out = ids;
	*n = count;
	return 0;
}

/* Streams answer text, holding back the reasoning block and cutting at stop strings. */
typedef struct answer_stream {
	const engine_chat_request *req;
	ag_buf all;      /* every generated byte */
	size_t visible;  /* where the answer starts in `all` (after </think>), or SIZE_MAX while thinking */
	size_t emitted;  /* bytes of `all` handed out */
	bool stopped;    /* the caller asked to stop */
	bool hit_stop;   /* a stop string ended the answer */
	size_t calls_at; /* where a tool-call block begins in `all` (never streamed as text), or SIZE_MAX */
} answer_stream;

#define CALL_TAG "<tool_call" /* also the start of Jamba 1.5's <tool_calls> */

/* With tools offered, answer text stops streaming where a tool call begins: the calls go
 * to the caller parsed, not as text. Returns how many bytes at the end to hold back
 * because they may be the start of the tag. */
static size_t find_calls(answer_stream *a)
{
	if (!json_array_size(a->req->tools) || a->calls_at != SIZE_MAX)
		return 0;
	const char *vis = a->all.data + a->visible, *hit = strstr(vis, CALL_TAG);
	if (hit) {
		a->calls_at = (size_t)(hit - a->all.data);
		return 0;
	}
	size_t tag = sizeof CALL_TAG - 1, len = a->all.len - a->visible;
	for (size_t k = tag - 1; k > 0; k--)
		if (k <= len && memcmp(a->all.data + a->all.len - k, CALL_TAG, k) == 0)
			return k;
	return 0;
}

static size_t longest_stop(const json_t *stop)
{
	size_t m = 0, i;
	json_t *s;
	if (json_is_string(stop))
		return json_string_length(stop);
	json_array_foreach(stop, i, s) if (json_string_length(s) > m) m = json_string_length(s);
	return m;
}

static const char *find_stop(const json_t *stop, const char *text)
{
	const char *best = NULL;
	if (json_is_string(stop))
		return strstr(text, json_string_value(stop));
	size_t i;
	json_t *s;
	json_array_foreach(stop, i, s)
	{
		const char *f = strstr(text, json_string_value(s));
		if (f && (!best || f < best))
			best = f;
	}
	return best;
}

static void stream_push(answer_stream *a, const char *piece, size_t n, bool thinking_start)
{
	ag_buf_append(&a->all, piece, n);
	if (a->visible == SIZE_MAX) {
		const char *end = thinking_start ? strstr(a->all.data, "</think>") : a->all.data;
		if (!end)
			return;
		size_t v = thinking_start ? (size_t)(end - a->all.data) + 8 : 0;
		while (v < a->all.len && (a->all.data[v] == '\n' || a->all.data[v] == ' '))
			v++;
		if (v == a->all.len && thinking_start)
			return; /* only white space after </think> so far */
		a->visible = v;
		a->emitted = v;
	}
	const char *vis = a->all.data + a->visible;
	size_t hold = 0;
	if (a->req->stop) {
		const char *s = find_stop(a->req->stop, vis);
		if (s) {
			a->all.len = (size_t)(s - a->all.data);
			a->all.data[a->all.len] = '\0';
			a->hit_stop = true;
		} else {
			hold = longest_stop(a->req->stop); /* a stop string may be forming at the end */
		}
	}
	size_t partial = find_calls(a);
	if (partial > hold)
		hold = partial;
	size_t limit = a->all.len > hold ? a->all.len - hold : 0;
	if (limit > a->calls_at)
		limit = a->calls_at;
	if (limit < a->visible)
		limit = a->visible;
	if (limit > a->emitted && a->req->on_text && !a->stopped) {
		if (a->req->on_text(a->req->on_text_cls, a->all.data + a->emitted, limit - a->emitted))
			a->stopped = true;
	}
	if (limit > a->emitted)
		a->emitted = limit;
}

static void stream_flush(answer_stream *a)
{
	if (a->visible == SIZE_MAX || a->stopped)
		return;
	size_t end = a->all.len < a->calls_at ? a->all.len : a->calls_at;
	if (end > a->emitted && a->req->on_text)
		a->req->on_text(a->req->on_text_cls, a->all.data + a->emitted, end - a->emitted);
	if (end > a->emitted)
		a->emitted = end;
}

static int generate(engine_local *l, engine_state *s, const engine_chat_request *req, const int32_t *prompt,
		    size_t nprompt, bool think, engine_chat_response *out)
{
	const engine_config *cfg = engine_model_config(l->model);
	float *logits = ag_malloc((size_t)cfg->n_vocab * sizeof *logits);
	engine_sampler *sampler = NULL;
	engine_sampler_params sp;
	engine_sampler_params_init(&sp);
	sp.temperature = req->temperature < 0 ? 0 : req->temperature;
	sp.top_p = req->top_p > 0 ? req->top_p : 1;
	sp.top_k = 0;
	sp.min_p = 0;
	sp.seed = req->has_seed ? req->seed : (uint64_t)ag_now_ms();
	answer_stream a = {.req = req, .visible = SIZE_MAX, .calls_at = SIZE_MAX};
	engine_detok dt;
	ag_buf piece = AG_BUF_INIT;
	local_constraint con;
	/* Feeding prompts goes one request at a time; decoding then joins the others. */
	pthread_mutex_lock(&l->lock);
	/* The ChatML generation prompt opens <think>: the answer starts after </think>. */
	bool thinking = l->format == ENGINE_CHAT_CHATML && think;
	int rc = logits ? local_constraint_init(&con, l, req, thinking)
			: ag_error_set(AG_ENOMEM, "out of memory generating");
	if (!rc)
		rc = engine_sampler_new(&sampler, &sp);
	else
		memset(&con, 0, sizeof con);
	if (!rc)
		rc = engine_prefill(l->model, s, prompt, nprompt, logits);
	pthread_mutex_unlock(&l->lock);
	engine_batcher_join(l->batcher);
	for (size_t i = 0; i < nprompt && !rc; i++)
		engine_sampler_accept(sampler, prompt[i]);
	/* Special tokens the model writes (</think>, <tool_call>) are part of the text to parse;
	 * one detokenizer for every token keeps characters split across tokens in order. */
	engine_detok_init(&dt, l->tok, true);
	int max = req->max_tokens > 0 ? req->max_tokens : DEFAULT_MAX_TOKENS;
	int n = 0;
	const char *reason = "length";
	while (!rc && n < max) {
		int32_t tok;
		bool none;
		if (req->should_stop && req->should_stop(req->on_text_cls)) {
			reason = "cancelled";
			break;
		}
		if ((rc = local_constraint_mask(&con, logits, cfg->n_vocab, &none)))
			break;
		if (none) { /* the grammar allows nothing more: the answer is whole */
			reason = "stop";
			break;
		}
		if ((rc = engine_sample(sampler, logits, cfg->n_vocab, &tok)))
			break;
		if (engine_token_is_eog(l->tok, tok)) {
			reason = "stop";
			break;
		}
		n++;
		engine_sampler_accept(sampler, tok);
		ag_buf_clear(&piece);
		rc = engine_detok_push(&dt, tok, &piece);
		if (rc)
			break;
		if (piece.len)
			stream_push(&a, piece.data, piece.len, thinking);
		if ((rc = local_constraint_accept(&con, tok, a.all.data, a.all.len)))
			break;
		if (a.stopped || a.hit_stop) {
			reason = a.stopped ? "cancelled" : "stop";
			break;
		}
		rc = engine_batcher_decode(l->batcher, s, tok, logits);
		if (!rc && con.select_pending) {
			con.select_pending = false;
			rc = local_quote_select(l, s, logits, &con);
		}
	}
	engine_batcher_leave(l->batcher);
	if (!rc) {
		ag_buf_clear(&piece);
		engine_detok_finish(&dt, &piece);
		if (piece.len && !a.hit_stop)
			stream_push(&a, piece.data, piece.len, thinking);
		if (a.visible == SIZE_MAX && !thinking)
			a.visible = 0;
		stream_flush(&a);
	}
	if (!rc) {
		engine_chat_parsed *parsed;
		/* The prompt opened the think block; give the parser the whole text it belongs to. */
		ag_buf text = AG_BUF_INIT;
		rc = ag_buf_puts(&text, thinking ? "<think>\n" : "");
		if (!rc)
			rc = ag_buf_append(&text, a.all.data ? a.all.data : "", a.all.len);
		if (!rc)
			rc = engine_chat_parse(&parsed, text.data, text.len);
		ag_buf_free(&text);
		if (!rc) {
			out->content = ag_strdup(parsed->content);
			out->reasoning = parsed->reasoning ? ag_strdup(parsed->reasoning) : NULL;
			out->tool_calls =
				json_array_size(parsed->tool_calls) ? json_incref(parsed->tool_calls) : NULL;
			engine_chat_parsed_free(parsed);
			if (!out->content)
				rc = ag_error_set(AG_ENOMEM, "out of memory generating");
		}
	}
	out->prompt_tokens = (long)nprompt;
	out->completion_tokens = n;
	snprintf(out->finish_reason, sizeof out->finish_reason, "%s",
		 out->tool_calls ? "tool_calls" : reason);
	local_constraint_free(&con);
	engine_sampler_free(sampler);
	ag_free(logits);
	ag_buf_free(&piece);
	ag_buf_free(&a.all);
	return rc;
}

int engine_local_complete(engine_local *l, const char *text, size_t len, const engine_chat_request *req,
			  engine_chat_response *out)
{
	memset(out, 0, sizeof *out);
	int32_t *ids;
	size_t n;
	int rc = engine_tokenize(l->tok, text, len, true, true, &ids, &n);
	if (rc)
		return rc;
	if (!n) {
		ag_free(ids);
		return ag_error_set(AG_EINVAL, "the prompt has no tokens");
	}
	/* Open think block: the last <think> with no </think> after it. */
	const char *open = NULL;
	for (const char *p = text; (p = memmem(p, len - (size_t)(p - text), "<think>", 7)); p += 7)
		open = p;
	bool think = open && !memmem(open, len - (size_t)(open - text), "</think>", 8);
	engine_state *s = NULL;
	rc = engine_state_new(&s, l->model);
	if (!rc)
		rc = generate(l, s, req, ids, n, think, out);
	engine_state_free(s);
	ag_free(ids);
	return rc;
}

int engine_local_chat_state(engine_local *l, engine_state *state, const engine_chat_request *req,
			    engine_chat_response *out)
{
	memset(out, 0, sizeof *out);
	int32_t *prompt;
	size_t n;
	bool fresh = !state || engine_state_n_tokens(state) == 0;
	bool think = !local_constraint_from_start(req);
	int rc = prompt_tokens(l, req->messages, req->tools, fresh, true, think, &prompt, &n);
	if (rc)
		return rc;
	engine_state *s = state;
	if (!s)
		rc = engine_state_new(&s, l->model);
	if (!rc)
		rc = generate(l, s, req, prompt, n, think, out);
	if (s != state)
		engine_state_free(s);
	ag_free(prompt);
	if (rc)
		engine_chat_response_clear(out);
	return rc;
}

int engine_local_chat(engine_local *l, const engine_chat_request *req, engine_chat_response *out)
{
	return engine_local_chat_state(l, NULL, req, out);
}

int engine_local_tokens(engine_local *l, const json_t *messages, const json_t *tools, bool fresh,
			bool generation_prompt, int32_t **out, size_t *n)
{
	return prompt_tokens(l, messages, tools, fresh, generation_prompt, true, out, n);
}

int engine_local_absorb(engine_local *l, engine_state *state, const json_t *messages, const json_t *tools)
{
	int32_t *tokens;
	size_t n;
	int rc = prompt_tokens(l, messages, tools, engine_state_n_tokens(state) == 0, false, true, &tokens,
			       &n);
	if (rc)
		return rc;
	pthread_mutex_lock(&l->lock);
	rc = n ? engine_prefill(l->model, state, tokens, n, NULL) : 0;
	pthread_mutex_unlock(&l->lock);
	ag_free(tokens);
	return rc;
}
