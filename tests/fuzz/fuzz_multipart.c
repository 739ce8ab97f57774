/*
 * Fuzz harness: the multipart/form-data parser of document uploads. The input's
 * first line is the Content-Type header, the rest the body; every part found
 * must lie inside the body.
 */
#include <stdint.h>
#include <string.h>

#include "common/common.h"
#include "retrieval/retrieval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *nl = memchr(data, '\n', size);
	if (!nl)
		return 0;
	size_t hl = (size_t)(nl - (const char *)data);
	char *ct = ag_strndup((const char *)data, hl);
	if (!ct)
		return 0;
	const char *body = nl + 1;
	size_t len = size - hl - 1;
	retrieval_parts *p;
	if (retrieval_multipart_parse(&p, ct, body, len) == 0) {
		for (size_t i = 0; i < p->count; i++) {
			const retrieval_part *x = &p->items[i];
			if (x->data < body || x->data + x->len > body + len)
				__builtin_trap();
			(void)strlen(x->name);
		}
		retrieval_parts_free(p);
	}
	ag_free(ct);
	return 0;
}
