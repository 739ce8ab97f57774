/*
 * The grammar matcher: reads a JSON text byte by byte against a compiled
 * schema (grammar_schema.c) and knows at every byte whether the text so far
 * can still become valid, and whether it already is.
 *
 * The state is a set of stacks (grammar_internal.h). Each frame holds what
 * one nested value has read; a value that ends on a byte of its own (a
 * closing quote, brace or bracket) pops itself, and a number or a literal,
 * which cannot know it has ended, pops when a byte arrives that it cannot
 * take and hands that byte to its parent. Unions fork the stack, once per
 * alternative whose first bytes include the byte at hand.
 *
 * The accepted texts are compact: one optional space after ':' and ',', no
 * other white space, so a model cannot stall on spaces; strings are valid
 * UTF-8 without control characters; \u escapes must not be surrogates or
 * \u0000 (write the character itself), since jansson, which reads the
 * result, refuses lone surrogates and NUL. Every string, array, number and
 * object is capped (engine_grammar_options), so every path ends.
 */
#include "engine/grammar_internal.h"

#include <string.h>

enum { D_PREFIX, D_LEAD, D_VALUE, D_AFTER, D_SUFFIX, D_DONE };
enum { O_START, O_OPEN, O_KEY_DONE, O_COLON, O_VALUE, O_AFTER, O_COMMA, O_COMMA_SP };
enum { A_START, A_OPEN, A_AFTER, A_COMMA, A_COMMA_SP };
enum { S_START, S_BODY, S_ESC, S_HEX };
enum { N_START, N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };
enum { K_DECLARED = 1, K_ADDITIONAL = 2 };

/* What a frame did with a byte. */
enum { R_ACCEPT, R_REJECT, R_POP, R_DONE, R_PUSH };

static void frame_init(const engine_grammar *g, g_frame *f, uint32_t node)
{
	memset(f, 0, sizeof *f);
	const g_node *n = &g->nodes[node];
	f->node = node;
	f->kind = n->kind;
	f->ulo = 0x80;
	f->uhi = 0xBF;
	if (n->kind == G_LITERAL) {
		f->lo = n->first;
		f->hi = n->first + n->n;
	} else if (n->kind == G_DOC) {
		f->phase = g->prefix_len ? D_PREFIX : D_LEAD;
	}
}

void g_start(const engine_grammar *g, g_state *st)
{
	st->n_stacks = 1;
	st->n_frames = 1;
	st->depth[0] = 1;
	frame_init(g, &st->f[0], 0);
}

/* UTF-8 well-formedness, one byte at a time; *lead is set when c starts a character. */
static bool utf8_byte(g_frame *f, uint8_t c, bool *lead)
{
	*lead = f->need == 0;
	if (f->need) {
		if (c < f->ulo || c > f->uhi)
			return false;
		f->need--;
		f->ulo = 0x80;
		f->uhi = 0xBF;
		return true;
	}
	if (c < 0x80)
		return true;
	if (c < 0xC2)
		return false; /* continuation byte without a lead, or an overlong lead */
	if (c < 0xE0) {
		f->need = 1;
	} else if (c < 0xF0) {
		f->need = 2;
		f->ulo = c == 0xE0 ? 0xA0 : 0x80; /* no overlongs */
		f->uhi = c == 0xED ? 0x9F : 0xBF; /* no surrogates */
	} else if (c < 0xF5) {
		f->need = 3;
		f->ulo = c == 0xF0 ? 0x90 : 0x80;
		f->uhi = c == 0xF4 ? 0x8F : 0xBF; /* nothing past U+10FFFF */
	} else {
		return false;
	}
	return true;
}

static bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

/* Narrows the candidate texts [lo, hi) that matched pos bytes to those going on with c.
 * They sort by bytes, so the survivors are contiguous. False when none does. */
static bool narrow(const engine_grammar *g, g_frame *f, uint8_t c)
{
	uint32_t lo = f->lo, hi = f->hi;
	while (lo < hi && (g->texts[lo].len <= f->pos || (uint8_t)g->texts[lo].s[f->pos] < c))
		lo++;
	uint32_t e = lo;
	while (e < hi && (uint8_t)g->texts[e].s[f->pos] == c)
		e++;
	if (e == lo)
		return false;
	f->lo = lo;
	f->hi = e;
	f->pos++;
	return true;
}

static uint64_t all_props(const g_node *n) { return n->n >= 64 ? UINT64_MAX : (1ull << n->n) - 1; }

static bool key_possible(const engine_grammar *g, const g_frame *f, const g_node *n)
{
	return (f->seen & all_props(n)) != all_props(n) || (n->child != G_NONE && f->a < g->opt.max_props);
}

static void key_init(const engine_grammar *g, g_frame *k, const g_frame *obj)
{
	const g_node *n = &g->nodes[obj->node];
	memset(k, 0, sizeof *k);
	k->node = obj->node;
	k->kind = G_KEY;
	k->lo = n->first;
	k->hi = n->first + n->n;
	k->ulo = 0x80;
	k->uhi = 0xBF;
	k->x = (uint8_t)(((obj->seen & all_props(n)) != all_props(n) ? K_DECLARED : 0) |
			 (n->child != G_NONE && obj->a < g->opt.max_props ? K_ADDITIONAL : 0));
	if (n->flags & G_TOOLS) { /* "name" (sorted second) first, then "arguments" */
		k->lo = n->first + ((obj->seen & 2) ? 0 : 1);
		k->hi = k->lo + 1;
	}
}

/* Whether an unseen declared name lies in [lo, hi). */
static bool unseen_in(const engine_grammar *g, const g_frame *k, const g_frame *obj)
{
	uint32_t first = g->nodes[obj->node].first;
	for (uint32_t i = k->lo; i < k->hi; i++)
		if (!((obj->seen >> (i - first)) & 1))
			return true;
	return false;
}

static int step_key(const engine_grammar *g, g_frame *k, g_frame *obj, uint8_t c)
{
	const g_node *n = &g->nodes[obj->node];
	bool exact = k->lo < k->hi && g->texts[k->lo].len == k->pos;
	if (c == '"') {
		/* A quote inside a declared name comes after a backslash: it goes on, never closes. */
		g_frame probe = *k;
		if ((k->x & K_DECLARED) && narrow(g, &probe, c) && unseen_in(g, &probe, obj)) {
			*k = probe;
			return R_ACCEPT;
		}
		if (exact) {
			uint32_t i = k->lo - n->first;
			if ((obj->seen >> i) & 1)
				return R_REJECT; /* a name given twice */
			obj->seen |= 1ull << i;
			obj->b = (n->flags & G_TOOLS) && i == 0 ? g->alts[n->min + obj->u]
								: g->texts[k->lo].node;
		} else if ((k->x & K_ADDITIONAL) && k->need == 0 && k->n > 0) {
			obj->a++;
			obj->b = n->child;
		} else {
			return R_REJECT;
		}
		obj->n++;
		obj->phase = O_KEY_DONE;
		return R_DONE;
	}
	uint8_t x = 0;
	g_frame next = *k;
	if ((k->x & K_DECLARED) && narrow(g, &next, c) && unseen_in(g, &next, obj))
		x |= K_DECLARED;
	else
		next.lo = next.hi = k->lo; /* no declared name any more */
	if (k->x & K_ADDITIONAL) {
		/* An additional name: plain characters (no escapes), not longer than a string. */
		bool lead;
		if (c >= 0x20 && c != '\\' && utf8_byte(&next, c, &lead) &&
		    (!lead || next.n < g->opt.max_string)) {
			x |= K_ADDITIONAL;
			if (lead)
				next.n++;
		}
	}
	if (!x)
		return R_REJECT;
	if (!(x & K_DECLARED))
		next.pos = k->pos + 1;
	next.x = x;
	*k = next;
	return R_ACCEPT;
}

static int step_object(const engine_grammar *g, g_frame *f, uint8_t c, uint32_t *push)
{
	const g_node *n = &g->nodes[f->node];
	switch (f->phase) {
	case O_START:
		if (c != '{')
			return R_REJECT;
		f->phase = O_OPEN;
		return R_ACCEPT;
	case O_OPEN:
	case O_AFTER:
		if (c == '}')
			return (f->seen & n->required) == n->required ? R_DONE : R_REJECT;
		if (f->phase == O_OPEN) {
			if (c != '"' || !key_possible(g, f, n))
				return R_REJECT;
			*push = G_KEY;
			return R_PUSH;
		}
		if (c != ',' || !key_possible(g, f, n))
			return R_REJECT;
		f->phase = O_COMMA;
		return R_ACCEPT;
	case O_KEY_DONE:
		if (c != ':')
			return R_REJECT;
		f->phase = O_COLON;
		return R_ACCEPT;
	case O_COLON:
		if (c == ' ') {
			f->phase = O_VALUE;
			return R_ACCEPT;
		}
		/* fall through */
	case O_VALUE:
		f->phase = O_AFTER;
		*push = f->b;
		return R_PUSH;
	case O_COMMA:
		if (c == ' ') {
			f->phase = O_COMMA_SP;
			return R_ACCEPT;
		}
		/* fall through */
	default: /* O_COMMA_SP */
		if (c != '"')
			return R_REJECT;
		*push = G_KEY;
		return R_PUSH;
	}
}

static int step_array(const engine_grammar *g, g_frame *f, uint8_t c, uint32_t *push)
{
	const g_node *n = &g->nodes[f->node];
	switch (f->phase) {
	case A_START:
		if (c != '[')
			return R_REJECT;
		f->phase = A_OPEN;
		return R_ACCEPT;
	case A_OPEN:
		if (c == ']')
			return n->min == 0 ? R_DONE : R_REJECT;
		if (n->max == 0)
			return R_REJECT;
		break;
	case A_AFTER:
		if (c == ']')
			return f->n >= n->min ? R_DONE : R_REJECT;
		if (c != ',' || f->n >= n->max)
			return R_REJECT;
		f->phase = A_COMMA;
		return R_ACCEPT;
	case A_COMMA:
		if (c == ' ') {
			f->phase = A_COMMA_SP;
			return R_ACCEPT;
		}
		break;
	default: break;
	}
	f->n++;
	f->phase = A_AFTER;
	*push = n->child;
	return R_PUSH;
}

static int step_string(const engine_grammar *g, g_frame *f, uint8_t c)
{
	const g_node *n = &g->nodes[f->node];
	switch (f->phase) {
	case S_START:
		if (c != '"')
			return R_REJECT;
		f->phase = S_BODY;
		return R_ACCEPT;
	case S_BODY: {
		if (f->need) {
			bool lead;
			return utf8_byte(f, c, &lead) ? R_ACCEPT : R_REJECT;
		}
		if (c == '"')
			return f->n >= n->min ? R_DONE : R_REJECT;
		if (c < 0x20 || f->n >= n->max)
			return R_REJECT;
		if (c == '\\') {
			f->phase = S_ESC;
		} else {
			bool lead;
			if (!utf8_byte(f, c, &lead))
				return R_REJECT;
		}
		f->n++;
		return R_ACCEPT;
	}
	case S_ESC:
		if (c == 'u') {
			f->phase = S_HEX;
			f->need = 4;
			f->u = 0;
			return R_ACCEPT;
		}
		if (!strchr("\"\\/bfnrt", c) || c == 0)
			return R_REJECT;
		f->phase = S_BODY;
		return R_ACCEPT;
	default: { /* S_HEX */
		int v = ag_hex_digit(c);
		if (v < 0)
			return R_REJECT;
		f->u = f->u * 16 + (uint32_t)v;
		f->need--;
		if (f->need == 2 && f->u >= 0xD8 && f->u <= 0xDF)
			return R_REJECT; /* a surrogate: jansson wants pairs; write the character */
		if (f->need == 0) {
			if (f->u == 0)
				return R_REJECT; /* \u0000: jansson refuses NUL */
			f->phase = S_BODY;
		}
		return R_ACCEPT;
	}
	}
}

static int step_number(const engine_grammar *g, g_frame *f, uint8_t c)
{
	bool real = f->kind == G_NUMBER, digit = is_digit(c);
	uint32_t max = g->opt.max_digits;
	switch (f->phase) {
	case N_START:
		if (c == '-') {
			f->phase = N_MINUS;
			return R_ACCEPT;
		}
		/* fall through */
	case N_MINUS:
		if (!digit)
			return R_REJECT;
		f->phase = c == '0' ? N_ZERO : N_INT;
		f->n = 1;
		return R_ACCEPT;
	case N_ZERO:
	case N_INT:
		if (digit && f->phase == N_INT && f->n < max) {
			f->n++;
			return R_ACCEPT;
		}
		if (digit)
			return R_REJECT; /* a leading zero, or too many digits */
		if (real && c == '.') {
			f->phase = N_DOT;
			return R_ACCEPT;
		}
		if (real && (c == 'e' || c == 'E')) {
			f->phase = N_E;
			return R_ACCEPT;
		}
		return R_POP;
	case N_DOT:
		if (!digit)
			return R_REJECT;
		f->phase = N_FRAC;
		f->n = 1;
		return R_ACCEPT;
	case N_FRAC:
		if (digit)
			return f->n < max ? (f->n++, R_ACCEPT) : R_REJECT;
		if (c == 'e' || c == 'E') {
			f->phase = N_E;
			return R_ACCEPT;
		}
		return R_POP;
	case N_E:
		if (c == '+' || c == '-') {
			f->phase = N_ESIGN;
			return R_ACCEPT;
		}
		/* fall through */
	case N_ESIGN:
		if (!digit)
			return R_REJECT;
		f->phase = N_EXP;
		f->n = 1;
		return R_ACCEPT;
	default: /* N_EXP: two digits keep every value finite for jansson */
		if (digit)
			return f->n < 2 ? (f->n++, R_ACCEPT) : R_REJECT;
		return R_POP;
	}
}

static bool literal_done(const engine_grammar *g, const g_frame *f)
{
	return f->lo < f->hi && g->texts[f->lo].len == f->pos;
}

static int step_literal(const engine_grammar *g, g_frame *f, uint8_t c)
{
	if (narrow(g, f, c)) {
		const g_frame *up = f - 1; /* a literal always has a parent: the doc frame at least */
		if (up->kind == G_OBJECT && (g->nodes[up->node].flags & G_TOOLS))
			f[-1].u = f->lo - g->nodes[f->node].first; /* the tool name, as far as it is read */
		return R_ACCEPT;
	}
	return literal_done(g, f) ? R_POP : R_REJECT;
}

static int step_doc(const engine_grammar *g, g_frame *f, uint8_t c, uint32_t *push)
{
	switch (f->phase) {
	case D_PREFIX:
		if (c != (uint8_t)g->prefix[f->pos])
			return R_REJECT;
		if (++f->pos == g->prefix_len)
			f->phase = D_LEAD;
		return R_ACCEPT;
	case D_LEAD:
		if (g->opt.newlines && c == '\n') {
			f->phase = D_VALUE;
			return R_ACCEPT;
		}
		/* fall through */
	case D_VALUE:
		f->phase = D_AFTER;
		*push = g->root;
		return R_PUSH;
	case D_AFTER:
		if (g->suffix_len) {
			if (c != (uint8_t)g->suffix[0])
				return R_REJECT;
			f->pos = 1;
			f->phase = g->suffix_len == 1 ? D_DONE : D_SUFFIX;
			return R_ACCEPT;
		}
		if (g->opt.newlines && c == '\n') {
			f->phase = D_DONE;
			return R_ACCEPT;
		}
		return R_REJECT;
	case D_SUFFIX:
		if (c != (uint8_t)g->suffix[f->pos])
			return R_REJECT;
		if (++f->pos == g->suffix_len)
			f->phase = D_DONE;
		return R_ACCEPT;
	default: return R_REJECT;
	}
}

static void drop_last(g_state *st) { st->n_frames -= st->depth[--st->n_stacks]; }

static bool feed(const engine_grammar *g, g_state *st, uint8_t c);

/* Pushes a frame for node on the last stack and feeds it c; a union forks the stack. */
static bool push_value(const engine_grammar *g, g_state *st, uint32_t node, uint8_t c)
{
	const g_node *n = &g->nodes[node];
	uint32_t d = st->depth[st->n_stacks - 1];
	if (!g_bit(n->first_bytes, c) || d >= G_DEPTH_LIMIT + 4 || st->n_frames >= G_MAX_FRAMES) {
		drop_last(st);
		return false;
	}
	if (n->kind != G_UNION) {
		frame_init(g, &st->f[st->n_frames++], node);
		st->depth[st->n_stacks - 1]++;
		return feed(g, st, c);
	}
	g_frame tmpl[G_DEPTH_LIMIT + 4];
	memcpy(tmpl, st->f + st->n_frames - d, d * sizeof *tmpl);
	drop_last(st);
	bool alive = false;
	for (uint32_t i = 0; i < n->n; i++) {
		uint32_t alt = g->alts[n->first + i];
		const g_node *a = &g->nodes[alt];
		if (!g_bit(a->first_bytes, c) || ((a->flags & G_CONTAINER) && d > g->opt.max_depth))
			continue;
		if (st->n_stacks == G_MAX_STACKS || st->n_frames + d + 1 > G_MAX_FRAMES)
			break; /* too many alternatives alive: the rest are dropped */
		memcpy(st->f + st->n_frames, tmpl, d * sizeof *tmpl);
		st->n_frames += d;
		st->depth[st->n_stacks++] = (uint8_t)d;
		alive |= push_value(g, st, alt, c);
	}
	return alive;
}

/* Feeds c to the last stack of st; false (and the stack removed) when it cannot take it. */
static bool feed(const engine_grammar *g, g_state *st, uint8_t c)
{
	for (;;) {
		uint32_t d = st->depth[st->n_stacks - 1];
		g_frame *f = &st->f[st->n_frames - 1];
		uint32_t push = G_NONE;
		int r;
		switch (f->kind) {
		case G_DOC: r = step_doc(g, f, c, &push); break;
		case G_OBJECT: r = step_object(g, f, c, &push); break;
		case G_KEY: r = step_key(g, f, f - 1, c); break;
		case G_ARRAY: r = step_array(g, f, c, &push); break;
		case G_STRING: r = step_string(g, f, c); break;
		case G_NUMBER:
		case G_INTEGER: r = step_number(g, f, c); break;
		default: r = step_literal(g, f, c); break;
		}
		switch (r) {
		case R_ACCEPT: return true;
		case R_DONE:
		case R_POP:
			st->n_frames--;
			st->depth[st->n_stacks - 1]--;
			if (r == R_DONE)
				return true;
			if (d <= 1) {
				drop_last(st);
				return false;
			}
			continue; /* the parent takes c */
		case R_PUSH:
			if (push == G_KEY) {
				if (st->n_frames >= G_MAX_FRAMES) {
					drop_last(st);
					return false;
				}
				key_init(g, &st->f[st->n_frames], f);
				st->n_frames++;
				st->depth[st->n_stacks - 1]++;
				return true;
			}
			return push_value(g, st, push, c);
		default: drop_last(st); return false;
		}
	}
}

void g_step(const engine_grammar *g, g_state *dst, const g_state *src, uint8_t c)
{
	dst->n_stacks = 0;
	dst->n_frames = 0;
	uint32_t base = 0;
	for (uint32_t s = 0; s < src->n_stacks && dst->n_stacks < G_MAX_STACKS; s++) {
		uint32_t d = src->depth[s];
		if (dst->n_frames + d > G_MAX_FRAMES)
			break;
		memcpy(dst->f + dst->n_frames, src->f + base, d * sizeof *dst->f);
		dst->n_frames += d;
		dst->depth[dst->n_stacks++] = (uint8_t)d;
		feed(g, dst, c);
		base += d;
	}
}

static bool can_end(const engine_grammar *g, const g_frame *f)
{
	if (f->kind == G_NUMBER || f->kind == G_INTEGER)
		return f->phase == N_ZERO || f->phase == N_INT || f->phase == N_FRAC || f->phase == N_EXP;
	if (f->kind == G_LITERAL)
		return literal_done(g, f);
	return false;
}

bool g_complete(const engine_grammar *g, const g_state *st)
{
	uint32_t base = 0;
	for (uint32_t s = 0; s < st->n_stacks; s++) {
		uint32_t d = st->depth[s];
		const g_frame *doc = &st->f[base];
		if (d == 1 && (doc->phase == D_DONE || (doc->phase == D_AFTER && !g->suffix_len)))
			return true;
		if (d == 2 && !g->suffix_len && can_end(g, &st->f[base + 1]))
			return true;
		base += d;
	}
	return false;
}

bool g_string_room(const engine_grammar *g, const g_state *st, uint32_t *room)
{
	if (st->n_stacks != 1)
		return false;
	const g_frame *f = &st->f[st->n_frames - 1];
	if (f->kind != G_STRING || f->phase != S_BODY || f->need)
		return false;
	uint32_t max = g->nodes[f->node].max;
	*room = max > f->n ? max - f->n : 0;
	return true;
}

/* ------------------------------------------------------------ the public matcher */

struct engine_grammar_matcher {
	const engine_grammar *g;
	g_state cur, tmp;
	g_state *walk; /* one state per trie depth, for masking (grammar_vocab.c) */
	size_t walk_cap;
};

int engine_grammar_matcher_new(engine_grammar_matcher **out, const engine_grammar *g)
{
	*out = NULL;
	if (!g)
		return ag_error_set(AG_EINVAL, "grammar: no grammar");
	engine_grammar_matcher *m = ag_calloc(1, sizeof *m);
	if (!m)
		return ag_error_set(AG_ENOMEM, "grammar: out of memory");
	m->g = g;
	g_start(g, &m->cur);
	*out = m;
	return 0;
}

void engine_grammar_matcher_free(engine_grammar_matcher *m)
{
	if (!m)
		return;
	ag_free(m->walk);
	ag_free(m);
}

void engine_grammar_matcher_reset(engine_grammar_matcher *m) { g_start(m->g, &m->cur); }

int engine_grammar_matcher_feed(engine_grammar_matcher *m, const void *bytes, size_t n)
{
	const uint8_t *p = bytes;
	g_state next;
	memcpy(&m->tmp, &m->cur, g_state_size(&m->cur));
	for (size_t i = 0; i < n; i++) {
		g_step(m->g, &next, &m->tmp, p[i]);
		if (!next.n_stacks) /* cur is untouched */
			return ag_error_set(AG_EINVAL, "grammar: byte %zu (0x%02x) is not allowed here", i,
					    p[i]);
		memcpy(&m->tmp, &next, g_state_size(&next));
	}
	memcpy(&m->cur, &m->tmp, g_state_size(&m->tmp));
	return 0;
}

bool engine_grammar_matcher_accepts(const engine_grammar_matcher *m, const void *bytes, size_t n)
{
	const uint8_t *p = bytes;
	g_state a, b;
	memcpy(&a, &m->cur, g_state_size(&m->cur));
	for (size_t i = 0; i < n; i++) {
		g_step(m->g, &b, &a, p[i]);
		if (!b.n_stacks)
			return false;
		memcpy(&a, &b, g_state_size(&b));
	}
	return true;
}

bool engine_grammar_matcher_complete(const engine_grammar_matcher *m) { return g_complete(m->g, &m->cur); }

bool engine_grammar_matcher_finished(const engine_grammar_matcher *m)
{
	g_state next;
	for (int c = 0; c < 256; c++) {
		g_step(m->g, &next, &m->cur, (uint8_t)c);
		if (next.n_stacks)
			return false;
	}
	return true;
}

const g_state *g_matcher_state(const engine_grammar_matcher *m) { return &m->cur; }
const engine_grammar *g_matcher_grammar(const engine_grammar_matcher *m) { return m->g; }

g_state *g_matcher_walk(engine_grammar_matcher *m, size_t n)
{
	if (n > m->walk_cap) {
		g_state *w = ag_realloc(m->walk, n * sizeof *w);
		if (!w)
			return NULL;
		m->walk = w;
		m->walk_cap = n;
	}
	return m->walk;
}
