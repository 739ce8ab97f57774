/*
 * Internal to engine/: the local backend's handle, shared by the generation
 * loop (local.c) and the constrained-decoding glue (local_grammar.c). No
 * other module includes this.
 */
#ifndef ENGINE_LOCAL_INTERNAL_H
#define ENGINE_LOCAL_INTERNAL_H

#include <pthread.h>

#include "engine/engine.h"

struct engine_local {
	engine_model *model;
	engine_tokenizer *tok;
	engine_chat_format format;
	pthread_mutex_t lock;    /* prompt feeding and the lazy grammar vocabulary */
	engine_batcher *batcher; /* decode steps of concurrent requests share passes */
	char **specials;         /* texts of control and user-defined tokens */
	size_t nspecials;
	char name[128];
	/* Built on the first constrained request, under lock. */
	engine_grammar_vocab *gvocab;
	int32_t eog[8]; /* end-of-generation tokens */
	size_t n_eog;
};

/* What constrains one generation: nothing, the whole answer, or each tool call. */
typedef struct local_constraint {
	engine_local *l;
	engine_grammar *answer;    /* the answer from its first token: a response format or a forced call */
	engine_grammar *calls;     /* each tool call the model opens (tool_choice auto) */
	bool calls_text;           /* calls open with the text "<tool_call>" (no special token) */
	engine_grammar_matcher *m; /* the grammar in force, or NULL: free text */
	bool text_mode;            /* m ends with its suffix text, then the text is free again */
	bool only_eog;             /* a forced call is done: only an end of turn may follow */
	int32_t force;             /* the next token, forced (an opening <tool_call>), or -1 */
	int32_t tc_open, tc_close; /* <tool_call> and </tool_call> as special tokens, or -1 */
	const int32_t *ends;       /* tokens allowed once m is complete */
	size_t n_ends;
	size_t scan_from; /* free text before this offset was searched for "<tool_call>" */
	uint32_t *mask;
	ag_buf piece;
} local_constraint;

/* Whether the answer is constrained from its first token (a response format or a forced
 * call): its prompt then opens no think block. */
bool local_constraint_from_start(const engine_chat_request *req);
/* Sets c up from the request (compiling its grammars). AG_EINVAL / AG_EUNSUPPORTED for
 * a schema the grammar cannot take. Call under l->lock. */
int local_constraint_init(local_constraint *c, engine_local *l, const engine_chat_request *req);
void local_constraint_free(local_constraint *c);
/* Sets the logits of tokens that may not come next to -inf. *none: nothing may come
 * (the generation ends). */
int local_constraint_mask(local_constraint *c, float *logits, size_t n_vocab, bool *none);
/* Records a sampled token that is not an end of generation. text/len: everything
 * generated so far, including this token (for calls opened as text). */
int local_constraint_accept(local_constraint *c, int32_t tok, const char *text, size_t len);

#endif
