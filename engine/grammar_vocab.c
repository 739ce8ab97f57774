/*
 * Token masking: which tokens of a vocabulary may come next in a grammar.
 * A token may come next iff the matcher accepts all of its bytes in turn.
 *
 * The vocabulary's byte strings go into a trie laid out in depth-first order
 * (each node knows where its subtree ends), so the mask is one forward scan
 * over the nodes: a node's state is its parent's advanced by one byte, kept
 * in a small array indexed by depth; a node whose byte is rejected skips its
 * whole subtree. Tokens sharing a prefix share the work, and inside a
 * structure only the few branches that fit are visited. Inside a string,
 * where most of the vocabulary fits, a subtree of plain printable ASCII that
 * the string's remaining length can hold is allowed whole without visiting
 * it (its tokens are contiguous in depth-first order).
 *
 * Pieces come from the tokenizer's own piece-to-bytes mapping
 * (engine_token_piece): SentencePiece's U+2581 is a space, <0xNN> tokens are
 * their byte, byte-level BPE characters map back to bytes. Control,
 * user-defined, unknown and unused tokens are special, never JSON: the
 * grammar never allows them, and the end tokens the caller names (EOS, end of
 * turn, </tool_call>) are allowed exactly when the value is complete.
 */
#include "engine/grammar_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
	const uint8_t *s;
	uint32_t len;
	int32_t id;
} entry;

static int entry_cmp(const void *a, const void *b)
{
	const entry *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->s, y->s, n);
	if (c)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

void engine_grammar_vocab_free(engine_grammar_vocab *v)
{
	if (!v)
		return;
	ag_free(v->byte);
	ag_free(v->depth);
	ag_free(v->end);
	ag_free(v->tok_at);
	ag_free(v->tok_n);
	ag_free(v->toks);
	ag_free(v->tok_pre);
	ag_free(v->plain);
	ag_free(v->sub_depth);
	ag_free(v);
}

size_t engine_grammar_vocab_size(const engine_grammar_vocab *v) { return v->n_vocab; }

/* Builds the trie from entries (sorted here). */
static int build(engine_grammar_vocab **out, entry *e, size_t n, size_t n_vocab)
{
	*out = NULL;
	qsort(e, n, sizeof *e, entry_cmp);
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += e[i].len;
	engine_grammar_vocab *v = ag_calloc(1, sizeof *v);
	if (!v)
		return ag_error_set(AG_ENOMEM, "grammar vocabulary: out of memory");
	v->n_vocab = n_vocab;
	size_t cap = total ? total : 1;
	v->byte = ag_malloc(cap);
	v->depth = ag_malloc(cap);
	v->end = ag_malloc(cap * sizeof *v->end);
	v->tok_at = ag_calloc(cap, sizeof *v->tok_at);
	v->tok_n = ag_calloc(cap, sizeof *v->tok_n);
	v->toks = ag_malloc((n ? n : 1) * sizeof *v->toks);
	if (!v->byte || !v->depth || !v->end || !v->tok_at || !v->tok_n || !v->toks) {
		engine_grammar_vocab_free(v);
		return ag_error_set(AG_ENOMEM, "grammar vocabulary: out of memory");
	}
	uint32_t path[MAX_PIECE + 1];
	size_t plen = 0, n_toks = 0;
	const entry *prev = NULL;
	for (size_t i = 0; i < n; i++) {
		size_t common = 0;
		while (prev && common < plen && common < e[i].len && prev->s[common] == e[i].s[common])
			common++;
		while (plen > common)
			v->end[path[--plen]] = (uint32_t)v->n_nodes;
		for (size_t k = plen; k < e[i].len; k++) {
			size_t id = v->n_nodes++;
			v->byte[id] = e[i].s[k];
			v->depth[id] = (uint8_t)(k + 1);
			path[plen++] = (uint32_t)id;
		}
		uint32_t node = path[e[i].len - 1];
		if (v->tok_n[node] == 0)
			v->tok_at[node] = (uint32_t)n_toks;
		v->tok_n[node]++;
		v->toks[n_toks++] = e[i].id;
		if (e[i].len > v->max_depth)
			v->max_depth = e[i].len;
		prev = &e[i];
	}
	while (plen > 0)
		v->end[path[--plen]] = (uint32_t)v->n_nodes;
	/* Subtree summaries for the string fast path. */
	v->tok_pre = ag_malloc((v->n_nodes + 1) * sizeof *v->tok_pre);
	v->plain = ag_malloc(cap);
	v->sub_depth = ag_malloc(cap);
	uint32_t *odd = ag_malloc((v->n_nodes + 1) * sizeof *odd); /* non-plain nodes before i */
	if (!v->tok_pre || !v->plain || !v->sub_depth || !odd) {
		ag_free(odd);
		engine_grammar_vocab_free(v);
		return ag_error_set(AG_ENOMEM, "grammar vocabulary: out of memory");
	}
	v->tok_pre[0] = odd[0] = 0;
	for (size_t i = 0; i < v->n_nodes; i++) {
		v->tok_pre[i + 1] = v->tok_pre[i] + v->tok_n[i];
		odd[i + 1] = odd[i] + !g_plain_byte(v->byte[i]);
	}
	for (size_t i = v->n_nodes; i-- > 0;) {
		v->plain[i] = odd[v->end[i]] == odd[i];
		uint8_t deepest = v->depth[i];
		for (size_t j = i + 1; j < v->end[i]; j = v->end[j]) /* the children */
			if (v->sub_depth[j] > deepest)
				deepest = v->sub_depth[j];
		v->sub_depth[i] = deepest;
	}
	ag_free(odd);
	*out = v;
	return 0;
}

int engine_grammar_vocab_new_pieces(engine_grammar_vocab **out, const char *const *pieces, const size_t *lens,
				    size_t n_vocab)
{
	*out = NULL;
	if (n_vocab == 0 || n_vocab > INT32_MAX)
		return ag_error_set(AG_EINVAL, "grammar vocabulary: empty");
	entry *e = ag_malloc(n_vocab * sizeof *e);
	if (!e)
		return ag_error_set(AG_ENOMEM, "grammar vocabulary: out of memory");
	size_t n = 0;
	for (size_t i = 0; i < n_vocab; i++)
		if (pieces[i] && lens[i] > 0 && lens[i] <= MAX_PIECE)
			e[n++] = (entry){
				.s = (const uint8_t *)pieces[i], .len = (uint32_t)lens[i], .id = (int32_t)i};
	int rc = build(out, e, n, n_vocab);
	ag_free(e);
	return rc;
}

int engine_grammar_vocab_new(engine_grammar_vocab **out, const engine_tokenizer *t)
{
	*out = NULL;
	size_t n_vocab = engine_tokenizer_n_vocab(t);
	char **pieces = ag_calloc(n_vocab ? n_vocab : 1, sizeof *pieces);
	size_t *lens = ag_calloc(n_vocab ? n_vocab : 1, sizeof *lens);
	ag_buf b = AG_BUF_INIT;
	int rc = pieces && lens ? 0 : ag_error_set(AG_ENOMEM, "grammar vocabulary: out of memory");
	for (size_t i = 0; i < n_vocab && !rc; i++) {
		int32_t type = engine_token_type(t, (int32_t)i);
		if (type != ENGINE_TOKEN_NORMAL && type != ENGINE_TOKEN_BYTE)
			continue;
		ag_buf_clear(&b);
		if ((rc = engine_token_piece(t, (int32_t)i, false, &b)))
			break;
		if (b.len == 0)
			continue;
		if (!(pieces[i] = ag_malloc(b.len))) {
			rc = ag_error_set(AG_ENOMEM, "grammar vocabulary: out of memory");
			break;
		}
		memcpy(pieces[i], b.data, b.len);
		lens[i] = b.len;
	}
	if (!rc)
		rc = engine_grammar_vocab_new_pieces(out, (const char *const *)pieces, lens, n_vocab);
	for (size_t i = 0; pieces && i < n_vocab; i++)
		ag_free(pieces[i]);
	ag_free(pieces);
	ag_free(lens);
	ag_buf_free(&b);
	return rc;
}

int engine_grammar_mask(engine_grammar_matcher *m, const engine_grammar_vocab *v, const int32_t *end_ids,
			size_t n_end, uint32_t *mask)
{
	size_t words = (v->n_vocab + 31) / 32;
	memset(mask, 0, words * sizeof *mask);
	const engine_grammar *g = g_matcher_grammar(m);
	const g_state *cur = g_matcher_state(m);
	g_state *w = g_matcher_walk(m, v->max_depth + 1);
	if (!w)
		return ag_error_set(AG_ENOMEM, "grammar mask: out of memory");
	memcpy(&w[0], cur, g_state_size(cur));
	const uint8_t *byte = v->byte, *depth = v->depth;
	for (size_t i = 0; i < v->n_nodes;) {
		uint32_t d = depth[i], room;
		if (v->plain[i] && g_string_room(g, &w[d - 1], &room) && v->sub_depth[i] - (d - 1) <= room) {
			for (uint32_t k = v->tok_pre[i]; k < v->tok_pre[v->end[i]]; k++) {
				uint32_t id = (uint32_t)v->toks[k];
				mask[id >> 5] |= 1u << (id & 31);
			}
			i = v->end[i];
			continue;
		}
		g_step(g, &w[d], &w[d - 1], byte[i]);
		if (!w[d].n_stacks) {
			i = v->end[i]; /* nothing below can be accepted either */
			continue;
		}
		for (uint32_t k = 0; k < v->tok_n[i]; k++) {
			uint32_t id = (uint32_t)v->toks[v->tok_at[i] + k];
			mask[id >> 5] |= 1u << (id & 31);
		}
		i++;
	}
	if (g_complete(g, cur))
		for (size_t k = 0; k < n_end; k++)
			if (end_ids[k] >= 0 && (size_t)end_ids[k] < v->n_vocab)
				mask[end_ids[k] >> 5] |= 1u << (end_ids[k] & 31);
	return 0;
}

size_t engine_grammar_mask_apply(float *logits, const uint32_t *mask, size_t n_vocab)
{
	size_t allowed = 0;
	for (size_t i = 0; i < n_vocab; i++) {
		if ((mask[i >> 5] >> (i & 31)) & 1)
			allowed++;
		else
			logits[i] = -INFINITY;
	}
	return allowed;
}
