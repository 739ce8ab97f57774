/*
 * Chat templates: OpenAI-shaped messages rendered into the prompt text a
 * Jamba model was trained on, and the model's output split back into
 * reasoning, answer and tool calls.
 *
 * Two formats are known (../shared/jamba-reference.md §3): the ChatML format
 * of Jamba Reasoning 3B, which is also agentd's own (models/FORMAT.md), with
 * <think>, <tool_call> and <tool_response>; and the <|bom|><|role|> format of
 * Jamba 1.5-1.7. Rather than run the GGUF's Jinja template, we recognise which
 * of them it is and render the skeleton here, byte for byte.
 *
 * JSON inside prompts must equal what the Python side (the HF template's
 * tojson, models/train/fmt.py) writes with json.dumps defaults: ", " and ": "
 * separators, non-ASCII as \uXXXX, floats in repr's shortest form. jansson's
 * dumper differs on floats and U+007F, so py_dump below writes that form from
 * jansson values. Two deliberate differences from the 3B's Jinja template:
 * tool-call arguments given as JSON text are rewritten in that form (the
 * template pastes them verbatim), and non-ASCII is escaped as json.dumps does
 * by default and models/train wrote (HF's tojson leaves it as it is).
 */
#include "engine/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char think_prefix[] = "Begin by thinking about the reasoning process in the mind within <think> "
				   "</think> tags and then proceed to give your response.\n";
static const char tools_head[] =
	"# Tools\n\nYou may call one or more functions to assist with the user "
	"query.\n\nYou are provided with function signatures within <tools></tools> XML "
	"tags:\n<tools>";
static const char tools_tail[] =
	"\n</tools>\n\nFor each function call, return a json object with function name "
	"and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
	"<function-name>, \"arguments\": <args-json-object>}\n</tool_call>";

/* ------------------------------------------------ JSON as Python writes it */

static int py_string(ag_buf *b, const char *s, size_t len)
{
	int rc = ag_buf_putc(b, '"');
	for (size_t i = 0; i < len && !rc;) {
		uint8_t c = (uint8_t)s[i];
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			rc = ag_buf_append(b, e, 2);
			i++;
			continue;
		}
		if (c >= 0x20 && c < 0x7F) {
			rc = ag_buf_putc(b, (char)c);
			i++;
			continue;
		}
		const char *named = c == '\n'   ? "\\n"
				    : c == '\r' ? "\\r"
				    : c == '\t' ? "\\t"
				    : c == '\b' ? "\\b"
				    : c == '\f' ? "\\f"
						: NULL;
		if (named) {
			rc = ag_buf_puts(b, named);
			i++;
			continue;
		}
		/* jansson strings are valid UTF-8: decode one code point. */
		uint32_t cp = c;
		size_t n = 1;
		if (c >= 0xF0 && i + 3 < len) {
			cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[i + 1] & 0x3F) << 12) |
			     ((uint32_t)(s[i + 2] & 0x3F) << 6) | (uint32_t)(s[i + 3] & 0x3F);
			n = 4;
		} else if (c >= 0xE0 && i + 2 < len) {
			cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[i + 1] & 0x3F) << 6) |
			     (uint32_t)(s[i + 2] & 0x3F);
			n = 3;
		} else if (c >= 0xC0 && i + 1 < len) {
			cp = ((uint32_t)(c & 0x1F) << 6) | (uint32_t)(s[i + 1] & 0x3F);
			n = 2;
		}
		if (cp >= 0x10000) {
			cp -= 0x10000;
			rc = ag_buf_printf(b, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
		} else {
			rc = ag_buf_printf(b, "\\u%04x", cp);
		}
		i += n;
	}
	return rc ? rc : ag_buf_putc(b, '"');
}

/* repr(float): the shortest digits that read back exactly, fixed notation for
 * decimal exponents -4..15, otherwise d.ddde+XX. */
static int py_float(ag_buf *b, double v)
{
	if (isnan(v) || isinf(v))
		return ag_buf_puts(b, isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
	char e[40];
	for (int p = 0; p < 17; p++) {
		snprintf(e, sizeof e, "%.*e", p, v);
		if (strtod(e, NULL) == v)
			break;
	}
	/* e is "-d.ddddde±XX": collect the digits and the exponent. */
	char digits[24] = {0};
	size_t nd = 0;
	const char *q = e;
	bool neg = *q == '-';
	if (neg)
		q++;
	for (; *q && *q != 'e'; q++)
		if (*q >= '0' && *q <= '9' && nd < sizeof digits - 1)
			digits[nd++] = *q;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = 0;
	long long ex = 0;
	if (*q == 'e' && ag_parse_long(q + 1 + (q[1] == '+'), -400, 400, &ex))
		ex = 0;
	int rc = neg ? ag_buf_putc(b, '-') : 0;
	if (rc)
		return rc;
	if (ex >= -4 && ex < 16) {
		if (ex < 0) {
			rc = ag_buf_puts(b, "0.");
			for (long long i = -1; i > ex && !rc; i--)
				rc = ag_buf_putc(b, '0');
			return rc ? rc : ag_buf_puts(b, digits);
		}
		for (long long i = 0; i <= ex && !rc; i++)
			rc = ag_buf_putc(b, (size_t)i < nd ? digits[i] : '0');
		if (!rc)
			rc = ag_buf_putc(b, '.');
		if (!rc)
			rc = (size_t)ex + 1 < nd ? ag_buf_puts(b, digits + ex + 1) : ag_buf_putc(b, '0');
		return rc;
	}
	rc = ag_buf_putc(b, digits[0]);
	if (!rc && nd > 1)
		rc = ag_buf_printf(b, ".%s", digits + 1);
	return rc ? rc : ag_buf_printf(b, "e%c%02lld", ex < 0 ? '-' : '+', ex < 0 ? -ex : ex);
}

static int py_dump(ag_buf *b, const json_t *v, int depth)
{
	if (depth > 64)
		return ag_error_set(AG_ELIMIT, "chat: JSON nested too deeply");
	int rc = 0;
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		rc = ag_buf_putc(b, '{');
		const char *key;
		json_t *val;
		bool first = true;
		json_object_foreach((json_t *)v, key, val)
		{
			if (!rc && !first)
				rc = ag_buf_puts(b, ", ");
			first = false;
			if (!rc)
				rc = py_string(b, key, strlen(key));
			if (!rc)
				rc = ag_buf_puts(b, ": ");
			if (!rc)
				rc = py_dump(b, val, depth + 1);
		}
		return rc ? rc : ag_buf_putc(b, '}');
	}
	case JSON_ARRAY: {
		rc = ag_buf_putc(b, '[');
		for (size_t i = 0; i < json_array_size(v) && !rc; i++) {
			if (i)
				rc = ag_buf_puts(b, ", ");
			if (!rc)
				rc = py_dump(b, json_array_get(v, i), depth + 1);
		}
		return rc ? rc : ag_buf_putc(b, ']');
	}
	case JSON_STRING: return py_string(b, json_string_value(v), json_string_length(v));
	case JSON_INTEGER: return ag_buf_printf(b, "%lld", (long long)json_integer_value(v));
	case JSON_REAL: return py_float(b, json_real_value(v));
	case JSON_TRUE: return ag_buf_puts(b, "true");
	case JSON_FALSE: return ag_buf_puts(b, "false");
	default: return ag_buf_puts(b, "null");
	}
}

/* ------------------------------------------------------------- detection */

engine_chat_format engine_chat_detect(const char *tpl)
{
	if (!tpl)
		return ENGINE_CHAT_CHATML;
	if (strstr(tpl, "<|im_start|>"))
		return ENGINE_CHAT_CHATML;
	if (strstr(tpl, "<|bom|>") || strstr(tpl, "<|eom|>"))
		return ENGINE_CHAT_JAMBA15;
	return ENGINE_CHAT_CHATML;
}

const char *engine_chat_format_name(engine_chat_format f)
{
	return f == ENGINE_CHAT_JAMBA15 ? "jamba15" : "chatml";
}

void engine_chat_options_init(engine_chat_options *o)
{
	o->format = ENGINE_CHAT_CHATML;
	o->add_bos = true;
	o->add_generation_prompt = true;
	o->think = true;
}

/* -------------------------------------------------------------- messages */

typedef struct msg {
	const char *role;
	char *content;       /* owned, never NULL */
	char *reasoning;     /* owned, NULL when none */
	const json_t *calls; /* borrowed array or NULL */
	bool content_thinks; /* content began with <think> */
} msg;

static void msgs_free(msg *m, size_t n)
{
	for (size_t i = 0; m && i < n; i++) {
		ag_free(m[i].content);
		ag_free(m[i].reasoning);
	}
	ag_free(m);
}

/* Content as text: a string, null, an array of {"type": "text", "text"} parts, or other JSON dumped. */
static int content_text(const json_t *c, char **out)
{
	ag_buf b = AG_BUF_INIT;
	int rc = ag_buf_puts(&b, "");
	if (json_is_string(c)) {
		rc = ag_buf_append(&b, json_string_value(c), json_string_length(c));
	} else if (json_is_array(c)) {
		for (size_t i = 0; i < json_array_size(c) && !rc; i++) {
			const json_t *part = json_array_get(c, i);
			const json_t *text = json_is_string(part) ? part : json_object_get(part, "text");
			if (json_is_string(text))
				rc = ag_buf_append(&b, json_string_value(text), json_string_length(text));
		}
	} else if (c && !json_is_null(c)) {
		rc = py_dump(&b, c, 0);
	}
	if (rc) {
		ag_buf_free(&b);
		return rc;
	}
	*out = ag_buf_detach(&b, NULL);
	return *out ? 0 : ag_error_set(AG_ENOMEM, "chat: out of memory");
}

static bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

/* Splits "<think>R</think>\n\nC" content as the 3B template does: reasoning R without its
 * surrounding newlines, content C without leading newlines. */
static int split_think(msg *m)
{
	char *close = strstr(m->content, "</think>");
	if (!close)
		return 0;
	char *open = m->content;
	for (char *p; (p = strstr(open, "<think>")) && p < close;)
		open = p + 7;
	const char *r = open, *re = close;
	while (r < re && *r == '\n')
		r++;
	while (re > r && re[-1] == '\n')
		re--;
	const char *c = close + 8;
	while (*c == '\n')
		c++;
	char *reasoning = ag_strndup(r, (size_t)(re - r));
	char *content = ag_strdup(c);
	if (!reasoning || !content) {
		ag_free(reasoning);
		ag_free(content);
		return ag_error_set(AG_ENOMEM, "chat: out of memory");
	}
	if (!m->reasoning)
		m->reasoning = reasoning;
	else
		ag_free(reasoning);
	ag_free(m->content);
	m->content = content;
	return 0;
}

static int read_messages(const json_t *messages, msg **out, size_t *n_out)
{
	if (!json_is_array(messages) || json_array_size(messages) == 0)
		return ag_error_set(AG_EINVAL, "chat: messages must be a non-empty array");
	size_t n = json_array_size(messages);
	msg *m = ag_calloc(n, sizeof *m);
	if (!m)
		return ag_error_set(AG_ENOMEM, "chat: out of memory");
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		const json_t *j = json_array_get(messages, i);
		const char *role = json_string_value(json_object_get(j, "role"));
		if (!json_is_object(j) || !role) {
			rc = ag_error_set(AG_EINVAL, "chat: messages[%zu] needs a \"role\" string", i);
			break;
		}
		if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant") &&
		    strcmp(role, "tool")) {
			rc = ag_error_set(
				AG_EINVAL,
				"chat: messages[%zu].role \"%s\" is not system, user, assistant or tool", i,
				role);
			break;
		}
		m[i].role = role;
		if ((rc = content_text(json_object_get(j, "content"), &m[i].content)))
			break;
		const json_t *rcnt = json_object_get(j, "reasoning_content");
		if (json_is_string(rcnt) && !(m[i].reasoning = ag_strdup(json_string_value(rcnt)))) {
			rc = ag_error_set(AG_ENOMEM, "chat: out of memory");
			break;
		}
		m[i].calls = json_object_get(j, "tool_calls");
		if (m[i].calls && !json_is_array(m[i].calls) && !json_is_null(m[i].calls)) {
			rc = ag_error_set(AG_EINVAL, "chat: messages[%zu].tool_calls must be an array", i);
			break;
		}
		if (strcmp(role, "assistant") == 0) {
			m[i].content_thinks = strncmp(m[i].content, "<think>", 7) == 0;
			rc = split_think(&m[i]);
		}
	}
	if (rc) {
		msgs_free(m, n);
		return rc;
	}
	*out = m;
	*n_out = n;
	return 0;
}

/* One tool call as {"name": N, "arguments": A}, from either the flat or the OpenAI shape. */
static int render_call(ag_buf *b, const json_t *call, size_t idx)
{
	const json_t *fn = json_object_get(call, "function");
	const json_t *src = json_is_object(fn) ? fn : call;
	const json_t *name = json_object_get(src, "name");
	if (!json_is_string(name))
		return ag_error_set(AG_EINVAL, "chat: tool_calls[%zu] has no name", idx);
	json_t *args = json_object_get(src, "arguments");
	json_t *parsed = NULL;
	if (json_is_string(args)) {
		/* OpenAI passes arguments as JSON text: written as the object it holds. */
		if (ag_json_parse(&parsed, json_string_value(args), json_string_length(args)) == 0)
			args = parsed;
	}
	int rc = ag_buf_puts(b, "{\"name\": ");
	if (!rc)
		rc = py_dump(b, name, 0);
	if (!rc)
		rc = ag_buf_puts(b, ", \"arguments\": ");
	if (!rc)
		rc = args ? py_dump(b, args, 0) : ag_buf_puts(b, "{}");
	if (!rc)
		rc = ag_buf_putc(b, '}');
	json_decref(parsed);
	return rc;
}

/* A tool definition: as given when it has "type", else wrapped as {"type": "function", "function": T}. */
static int render_tool(ag_buf *b, const json_t *tool)
{
	if (json_object_get(tool, "type"))
		return py_dump(b, tool, 0);
	int rc = ag_buf_puts(b, "{\"type\": \"function\", \"function\": ");
	if (!rc)
		rc = py_dump(b, tool, 0);
	return rc ? rc : ag_buf_putc(b, '}');
}

static int put3(ag_buf *b, const char *a, const char *c, const char *d)
{
	int rc = ag_buf_puts(b, a);
	if (!rc)
		rc = ag_buf_puts(b, c);
	return rc ? rc : ag_buf_puts(b, d);
}

static int render_chatml(ag_buf *b, const engine_chat_options *o, const msg *m, size_t n, const json_t *tools)
{
	int rc = 0;
	size_t first = 0;
	bool has_tools = json_array_size(tools) > 0;
	if (has_tools) {
		rc = ag_buf_puts(b, "<|im_start|>system\n");
		if (!rc && strcmp(m[0].role, "system") == 0) {
			rc = put3(b, m[0].content, "\n\n", "");
			first = 1;
		}
		if (!rc)
			rc = ag_buf_puts(b, tools_head);
		for (size_t i = 0; i < json_array_size(tools) && !rc; i++) {
			rc = ag_buf_putc(b, '\n');
			if (!rc)
				rc = render_tool(b, json_array_get(tools, i));
		}
		if (!rc)
			rc = put3(b, tools_tail, "<|im_end|>\n", "");
	} else if (strcmp(m[0].role, "system") == 0) {
		rc = put3(b, "<|im_start|>system\n", m[0].content, "<|im_end|>\n");
		first = 1;
	}
	/* Assistant turns after the last user query keep their reasoning; earlier ones lose it.
	 * The thinking instruction goes on the last user turn (models/FORMAT.md; the 3B template
	 * says "the last message", the same thing except after tool calls whose reasoning the
	 * caller dropped) and on any user turn whose reply kept its reasoning. */
	size_t last_query = 0;
	bool any_query = false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(m[i].role, "user") == 0) {
			last_query = i;
			any_query = true;
		}
	for (size_t i = first; i < n && !rc; i++) {
		const msg *x = &m[i];
		if (strcmp(x->role, "user") == 0) {
			const msg *next = i + 1 < n ? &m[i + 1] : NULL;
			bool reply_thinks = next && strcmp(next->role, "assistant") == 0 &&
					    (next->reasoning || next->content_thinks);
			bool prefix = o->think && !strstr(x->content, "<think>") &&
				      (i == last_query || reply_thinks);
			rc = put3(b, "<|im_start|>user\n", prefix ? think_prefix : "", x->content);
			if (!rc)
				rc = ag_buf_puts(b, "<|im_end|>\n");
		} else if (strcmp(x->role, "system") == 0) {
			rc = put3(b, "<|im_start|>system\n", x->content, "<|im_end|>\n");
		} else if (strcmp(x->role, "assistant") == 0) {
			rc = ag_buf_puts(b, "<|im_start|>assistant\n");
			const char *content = x->content;
			if (!rc && x->reasoning && x->reasoning[0] && any_query && i > last_query) {
				/* As the template: reasoning without its outer newlines, content without
				 * leading ones. */
				const char *r = x->reasoning, *re = r + strlen(r);
				while (*r == '\n')
					r++;
				while (re > r && re[-1] == '\n')
					re--;
				while (*content == '\n')
					content++;
				rc = ag_buf_puts(b, "<think>\n");
				if (!rc)
					rc = ag_buf_append(b, r, (size_t)(re - r));
				if (!rc)
					rc = ag_buf_puts(b, "\n</think>\n\n");
			}
			if (!rc)
				rc = ag_buf_puts(b, content);
			for (size_t k = 0; x->calls && k < json_array_size(x->calls) && !rc; k++) {
				if (k > 0 || content[0])
					rc = ag_buf_putc(b, '\n');
				if (!rc)
					rc = ag_buf_puts(b, "<tool_call>\n");
				if (!rc)
					rc = render_call(b, json_array_get(x->calls, k), k);
				if (!rc)
					rc = ag_buf_puts(b, "\n</tool_call>");
			}
			if (!rc)
				rc = ag_buf_puts(b, "<|im_end|>\n");
		} else { /* tool: consecutive results share one user turn */
			if (i == first || strcmp(m[i - 1].role, "tool") != 0)
				rc = ag_buf_puts(b, "<|im_start|>user");
			if (!rc)
				rc = put3(b, "\n<tool_response>\n", x->content, "\n</tool_response>");
			if (!rc && (i + 1 == n || strcmp(m[i + 1].role, "tool") != 0))
				rc = ag_buf_puts(b, "<|im_end|>\n");
		}
	}
	if (!rc && o->add_generation_prompt)
		rc = put3(b, "<|im_start|>assistant\n", o->think ? "<think>\n" : "", "");
	return rc;
}

static int render_jamba15(ag_buf *b, const engine_chat_options *o, const msg *m, size_t n,
			  const json_t *tools)
{
	size_t first = strcmp(m[0].role, "system") == 0 ? 1 : 0;
	/* The 1.7 template always opens with a system turn, empty if none was given. */
	int rc = put3(b, "<|bom|><|system|> ", first ? m[0].content : "", "");
	if (!rc && json_array_size(tools) > 0) {
		rc = ag_buf_puts(b, first && m[0].content[0] ? "\n\n" : "");
		if (!rc)
			rc = ag_buf_puts(b, "# Tools\n\n## Functions\n\n<tool_definitions>");
		for (size_t i = 0; i < json_array_size(tools) && !rc; i++) {
			rc = ag_buf_putc(b, '\n');
			if (!rc)
				rc = render_tool(b, json_array_get(tools, i));
		}
		if (!rc)
			rc = ag_buf_puts(b, "\n</tool_definitions>");
	}
	if (!rc)
		rc = ag_buf_puts(b, "<|eom|>");
	for (size_t i = first; i < n && !rc; i++) {
		const msg *x = &m[i];
		rc = put3(b, "<|bom|><|", x->role, "|> ");
		if (!rc)
			rc = ag_buf_puts(b, x->content);
		if (!rc && x->calls && json_array_size(x->calls) > 0) {
			rc = put3(b, x->content[0] ? "\n" : "", "<tool_calls>[", "");
			for (size_t k = 0; k < json_array_size(x->calls) && !rc; k++) {
				if (k)
					rc = ag_buf_puts(b, ", ");
				if (!rc)
					rc = render_call(b, json_array_get(x->calls, k), k);
			}
			if (!rc)
				rc = ag_buf_puts(b, "]</tool_calls>");
		}
		if (!rc)
			rc = ag_buf_puts(b, "<|eom|>");
	}
	if (!rc && o->add_generation_prompt)
		rc = ag_buf_puts(b, "<|bom|><|assistant|>");
	return rc;
}

int engine_chat_render(char **out, size_t *len_out, const engine_chat_options *opt, const json_t *messages,
		       const json_t *tools)
{
	*out = NULL;
	if (len_out)
		*len_out = 0;
	engine_chat_options def;
	if (!opt) {
		engine_chat_options_init(&def);
		opt = &def;
	}
	if (tools && !json_is_array(tools) && !json_is_null(tools))
		return ag_error_set(AG_EINVAL, "chat: tools must be an array");
	for (size_t i = 0; i < json_array_size(tools); i++)
		if (!json_is_object(json_array_get(tools, i)))
			return ag_error_set(AG_EINVAL, "chat: tools[%zu] must be an object", i);
	msg *m = NULL;
	size_t n = 0;
	int rc = read_messages(messages, &m, &n);
	if (rc)
		return rc;
	ag_buf b = AG_BUF_INIT;
	rc = ag_buf_puts(&b, opt->add_bos ? "<|startoftext|>" : "");
	if (!rc)
		rc = opt->format == ENGINE_CHAT_JAMBA15 ? render_jamba15(&b, opt, m, n, tools)
							: render_chatml(&b, opt, m, n, tools);
	msgs_free(m, n);
	if (rc) {
		ag_buf_free(&b);
		return rc;
	}
	size_t len = b.len;
	*out = ag_buf_detach(&b, NULL);
	if (!*out)
		return ag_error_set(AG_ENOMEM, "chat: out of memory");
	if (len_out)
		*len_out = len;
	return 0;
}

/* ---------------------------------------------------------------- parsing */

static int add_call(engine_chat_parsed *p, const json_t *obj)
{
	const json_t *fn = json_object_get(obj, "function");
	const json_t *src = json_is_object(fn) ? fn : obj;
	const json_t *name = json_object_get(src, "name");
	if (!json_is_string(name) || json_string_length(name) == 0) {
		p->n_bad_calls++;
		return 0;
	}
	json_t *args = json_object_get(src, "arguments");
	json_t *parsed = NULL;
	if (json_is_string(args) &&
	    ag_json_parse(&parsed, json_string_value(args), json_string_length(args)) == 0)
		args = parsed;
	json_t *a = args ? json_incref(args) : json_object();
	json_t *call = a ? json_pack("{s:O, s:o}", "name", name, "arguments", a) : NULL;
	json_decref(parsed);
	if (!call || json_array_append_new(p->tool_calls, call))
		return ag_error_set(AG_ENOMEM, "chat: out of memory");
	return 0;
}

/* The JSON between open and close tags: one call object ({"name", "arguments"}) or an array of them. */
static int parse_calls(engine_chat_parsed *p, const char *s, size_t len)
{
	json_t *v = NULL;
	if (ag_json_parse(&v, s, len)) {
		if (ag_alloc_thread_failures())
			ag_error_clear();
		p->n_bad_calls++;
		return 0;
	}
	int rc = 0;
	if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v) && !rc; i++)
			rc = add_call(p, json_array_get(v, i));
	} else {
		rc = add_call(p, v);
	}
	json_decref(v);
	return rc;
}

static const char *find(const char *s, const char *end, const char *needle)
{
	size_t n = strlen(needle);
	for (const char *p = s; p && (size_t)(end - p) >= n; p++) {
		p = memchr(p, needle[0], (size_t)(end - p));
		if (!p || (size_t)(end - p) < n)
			return NULL;
		if (memcmp(p, needle, n) == 0)
			return p;
	}
	return NULL;
}

static char *trimmed(const char *s, const char *e)
{
	while (s < e && is_space(*s))
		s++;
	while (e > s && is_space(e[-1]))
		e--;
	return ag_strndup(s, (size_t)(e - s));
}

void engine_chat_parsed_free(engine_chat_parsed *p)
{
	if (!p)
		return;
	ag_free(p->reasoning);
	ag_free(p->content);
	json_decref(p->tool_calls);
	ag_free(p);
}

int engine_chat_parse(engine_chat_parsed **out, const char *text, size_t len)
{
	*out = NULL;
	if (!text && len)
		return ag_error_set(AG_EINVAL, "chat: no text");
	engine_chat_parsed *p = ag_calloc(1, sizeof *p);
	ag_buf rest = AG_BUF_INIT, content = AG_BUF_INIT;
	int rc = 0;
	if (!p || !(p->tool_calls = json_array())) {
		rc = ag_error_set(AG_ENOMEM, "chat: out of memory");
		goto done;
	}
	const char *s = text ? text : "", *end = s + len;
	/* Reasoning: <think>...</think>, or text up to a lone </think> (the prompt opened the block),
	 * or an unclosed <think> running to the end (generation stopped while thinking). */
	const char *open = find(s, end, "<think>");
	const char *close = find(open ? open : s, end, "</think>");
	if (open || close) {
		const char *r = open ? open + 7 : s;
		const char *re = close ? close : end;
		if (!(p->reasoning = trimmed(r, re))) {
			rc = ag_error_set(AG_ENOMEM, "chat: out of memory");
			goto done;
		}
		rc = ag_buf_append(&rest, s, open ? (size_t)(open - s) : 0);
		if (!rc && close)
			rc = ag_buf_append(&rest, close + 8, (size_t)(end - close - 8));
	} else {
		rc = ag_buf_append(&rest, s, len);
	}
	if (rc)
		goto done;
	/* Tool calls: ChatML <tool_call>{...}</tool_call> blocks and Jamba 1.5's
	 * <tool_calls>[...]</tool_calls>. */
	const char *c = rest.data, *ce = rest.data + rest.len;
	while (!rc && c < ce) {
		const char *a = find(c, ce, "<tool_call");
		if (!a) {
			rc = ag_buf_append(&content, c, (size_t)(ce - c));
			break;
		}
		bool plural = a + 11 <= ce && a[10] == 's' && a + 12 <= ce && a[11] == '>';
		bool single = a + 11 <= ce && a[10] == '>';
		if (!plural && !single) {
			rc = ag_buf_append(&content, c, (size_t)(a + 1 - c));
			c = a + 1;
			continue;
		}
		rc = ag_buf_append(&content, c, (size_t)(a - c));
		const char *body = a + (plural ? 12 : 11);
		const char *stop = find(body, ce, plural ? "</tool_calls>" : "</tool_call>");
		if (!rc)
			rc = parse_calls(p, body, (size_t)((stop ? stop : ce) - body));
		c = stop ? stop + (plural ? 13 : 12) : ce;
	}
	/* A stop token the generation loop let through is not part of the answer. */
	static const char *const stops[] = {"<|im_end|>", "<|eom|>", "<|endoftext|>", NULL};
	const char *cs = content.data ? content.data : "", *cend = cs + content.len;
	for (int i = 0; stops[i]; i++) {
		const char *at = find(cs, cend, stops[i]);
		if (at)
			cend = at;
	}
	if (!rc && !(p->content = trimmed(cs, cend)))
		rc = ag_error_set(AG_ENOMEM, "chat: out of memory");
done:
	ag_buf_free(&content);
	ag_buf_free(&rest);
	if (rc) {
		engine_chat_parsed_free(p);
		return rc;
	}
	*out = p;
	return 0;
}
