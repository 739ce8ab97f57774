/* Fuzz harness: tool-schema checking and argument validation. The input is a
 * schema and a value separated by the first newline; both go through jansson
 * first, as they do in the daemon. */
#include <stdint.h>
#include <string.h>

#include "tools/tools.h"

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
	json_t *schema = NULL, *value = NULL;
	if (ag_json_parse(&schema, text, slen) == 0) {
		tools_schema_check(schema);
		if (nl && ag_json_parse(&value, nl + 1, size - slen - 1) == 0) {
			tools_schema_validate(schema, value);
			json_decref(value);
		}
		/* The schema validated against itself exercises odd shapes too. */
		tools_schema_validate(schema, schema);
		json_decref(schema);
	}
	return 0;
}
