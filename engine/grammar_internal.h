/*
 * Internal to engine/: the compiled form of a JSON Schema and the state of
 * the byte-level matcher that walks it, shared by the schema compiler
 * (grammar_schema.c), the matcher (grammar.c) and the token masker
 * (grammar_vocab.c). No other module includes this.
 *
 * A compiled grammar is an array of nodes, one per (sub)schema; a node refers
 * to others by index, so the generic "any JSON value" node can refer to
 * itself. The matcher state is a small set of stacks of frames (a pushdown
 * automaton run nondeterministically): a union (anyOf, a list of types) forks
 * the stack once per alternative that can start with the next byte, and a
 * stack that cannot take a byte is dropped. All stacks of one state live in
 * one fixed array, so a state copies with one memcpy of its used part.
 */
#ifndef ENGINE_GRAMMAR_INTERNAL_H
#define ENGINE_GRAMMAR_INTERNAL_H

#include "engine/engine.h"

#define G_NONE        UINT32_MAX
#define G_MAX_STACKS  8  /* live alternatives at once; more are dropped (fewer texts, all valid) */
#define G_MAX_FRAMES  96 /* frames over all stacks of a state */
#define G_DEPTH_LIMIT 24 /* hard limit on max_depth */
#define G_MAX_PROPS   64 /* declared properties of one object (a bit each in the seen mask) */

enum g_kind {
	G_DOC = 0, /* the root: prefix, optional newline, the value, suffix */
	G_OBJECT,
	G_ARRAY,
	G_STRING,
	G_NUMBER,
	G_INTEGER,
	G_LITERAL, /* enum, const, true/false, null: one of a sorted list of exact texts */
	G_UNION    /* anyOf / oneOf / a list of types */
};

enum {
	G_CONTAINER = 1, /* a schemaless object/array: dropped from unions at the depth limit */
	G_TOOLS = 2      /* the tool-call object: "name" then "arguments", whose schema the name picks */
};

typedef struct g_node {
	uint8_t kind;
	uint8_t flags;
	uint32_t min, max;       /* string: characters; array: items */
	uint32_t child;          /* array: items; object: additional properties (G_NONE: closed) */
	uint32_t first, n;       /* object: props; literal: texts; union: alternatives */
	uint64_t required;       /* object: bit i = props[first + i] is required */
	uint32_t first_bytes[8]; /* bitset: bytes a value of this node can start with */
} g_node;

typedef struct g_text {
	char *s; /* object: property name as written inside the quotes; literal: the whole JSON text */
	uint32_t len;
	uint32_t node; /* object: the property's schema */
} g_text;

struct engine_grammar {
	g_node *nodes;
	size_t n_nodes, cap_nodes;
	g_text *texts; /* property names (sorted per object) and literals (sorted per node) */
	size_t n_texts, cap_texts;
	uint32_t *alts;
	size_t n_alts, cap_alts;
	uint32_t root;
	uint32_t any; /* the schemaless value node, G_NONE until needed */
	engine_grammar_options opt;
	char *prefix, *suffix;
	uint32_t prefix_len, suffix_len;
};

/* One frame: what one nested value has read so far. Fields by kind:
 *   object: phase, n = keys read, a = additional keys read, b = node of the pending value,
 *           seen = declared properties read, u = (G_TOOLS) the name's sorted place
 *   key (an object frame's child while reading a name): lo/hi = candidate names,
 *           pos = bytes matched, n = characters, x = flags (declared / additional alive)
 *   array: phase, n = items read
 *   string: phase, n = characters, need/lo/hi = UTF-8 continuation, x = \u value
 *   number: phase, n = digits in the current part
 *   literal: lo/hi = candidate texts, pos = bytes matched
 *   doc: phase, pos = bytes of prefix or suffix matched */
typedef struct g_frame {
	uint32_t node;
	uint8_t kind; /* node kind, or G_KEY for a key frame */
	uint8_t phase;
	uint8_t need;     /* UTF-8 continuation bytes or \u hex digits still due */
	uint8_t ulo, uhi; /* range of the next UTF-8 continuation byte */
	uint8_t x;
	uint16_t a;
	uint32_t n, b;
	uint32_t lo, hi, pos;
	uint32_t u;
	uint64_t seen;
} g_frame;

#define G_KEY 100

typedef struct g_state {
	uint32_t n_stacks;
	uint32_t n_frames;
	uint8_t depth[G_MAX_STACKS];
	g_frame f[G_MAX_FRAMES];
} g_state;

/* Bytes of st worth copying (the header and the used frames). */
static inline size_t g_state_size(const g_state *st)
{
	return offsetof(g_state, f) + st->n_frames * sizeof(g_frame);
}

static inline bool g_bit(const uint32_t *set, uint8_t c) { return (set[c >> 5] >> (c & 31)) & 1; }

/* dst = src advanced by byte c (dst->n_stacks == 0: rejected). */
void g_step(const engine_grammar *g, g_state *dst, const g_state *src, uint8_t c);
/* The state before any byte. */
void g_start(const engine_grammar *g, g_state *st);
bool g_complete(const engine_grammar *g, const g_state *st);

/* Whether st is one stack inside a string's body (no escape or character half read), where
 * each plain printable ASCII byte (not '"' or '\\') is one more character and nothing
 * else changes; *room: characters the string may still take. */
bool g_string_room(const engine_grammar *g, const g_state *st, uint32_t *room);
static inline bool g_plain_byte(uint8_t c) { return c >= 0x20 && c < 0x7F && c != '"' && c != '\\'; }

/* A vocabulary as a trie of its tokens' bytes in depth-first order (grammar_vocab.c); the
 * verbatim-quote masker (grammar_quote.c) walks it too. Pieces longer than this are left out. */
#define MAX_PIECE 255

struct engine_grammar_vocab {
	size_t n_vocab;
	size_t n_nodes;
	uint8_t *byte;      /* (n_nodes) the byte leading into the node */
	uint8_t *depth;     /* (n_nodes) 1 + depth of the parent */
	uint32_t *end;      /* (n_nodes) index just past the node's subtree */
	uint32_t *tok_at;   /* (n_nodes) first of its tokens in toks */
	uint32_t *tok_n;    /* (n_nodes) how many tokens end here */
	int32_t *toks;      /* token ids, grouped by node */
	uint32_t *tok_pre;  /* (n_nodes + 1) tokens held by nodes before this one */
	uint8_t *plain;     /* (n_nodes) every byte in the subtree is plain string text */
	uint8_t *sub_depth; /* (n_nodes) depth of the deepest node in the subtree */
	uint32_t max_depth; /* longest piece */
};

/* For grammar_vocab.c: a matcher's state, grammar, and room for n walk states. */
const g_state *g_matcher_state(const engine_grammar_matcher *m);
const engine_grammar *g_matcher_grammar(const engine_grammar_matcher *m);
g_state *g_matcher_walk(engine_grammar_matcher *m, size_t n);

#endif
