/*
 * A bump allocator for memory that lives exactly as long as one request or
 * run: many small allocations, one free at the end.
 */
#include "common.h"

#include <string.h>

typedef struct arena_block {
	struct arena_block *next;
	size_t size;
	size_t used;
	_Alignas(16) unsigned char data[];
} arena_block;

struct ag_arena {
	arena_block *head;
	size_t block_size;
	size_t total;
};

ag_arena *ag_arena_new(size_t block_size)
{
	ag_arena *a = ag_calloc(1, sizeof *a);
	if (!a) {
		ag_error_set(AG_ENOMEM, "out of memory creating an arena");
		return NULL;
	}
	a->block_size = block_size ? block_size : 8192;
	return a;
}

void *ag_arena_alloc(ag_arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (n == 0)
		n = 16;
	arena_block *b = a->head;
	if (!b || b->size - b->used < n) {
		size_t size = n > a->block_size ? n : a->block_size;
		b = ag_malloc(sizeof *b + size);
		if (!b) {
			ag_error_set(AG_ENOMEM, "out of memory in an arena (%zu bytes)", n);
			return NULL;
		}
		b->size = size;
		b->used = 0;
		b->next = a->head;
		a->head = b;
	}
	void *p = b->data + b->used;
	b->used += n;
	a->total += n;
	return p;
}

char *ag_arena_strndup(ag_arena *a, const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *d = ag_arena_alloc(a, len + 1);
	if (!d)
		return NULL;
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

char *ag_arena_strdup(ag_arena *a, const char *s) { return ag_arena_strndup(a, s, strlen(s)); }
size_t ag_arena_used(const ag_arena *a) { return a->total; }

void ag_arena_free(ag_arena *a)
{
	if (!a)
		return;
	arena_block *b = a->head;
	while (b) {
		arena_block *next = b->next;
		ag_free(b);
		b = next;
	}
	ag_free(a);
}
