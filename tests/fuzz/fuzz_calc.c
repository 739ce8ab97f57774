/* Fuzz harness: the calculator's parser and decimal arithmetic on arbitrary text. */
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
	/* The first byte picks a precision so rounding paths get exercised too. */
	int precision = size ? 1 + data[0] % 60 : 50;
	const char *text = size ? (const char *)data + 1 : "";
	size_t len = size ? size - 1 : 0;
	char *out = NULL;
	bool exact;
	if (tools_calc_eval(&out, &exact, text, len, precision) == 0) {
		/* A result is a decimal number: digits, at most one point, an optional sign. */
		size_t n = strlen(out);
		if (n == 0)
			__builtin_trap();
		for (size_t i = 0; i < n; i++)
			if (!((out[i] >= '0' && out[i] <= '9') || out[i] == '.' || (i == 0 && out[i] == '-')))
				__builtin_trap();
		ag_free(out);
	}
	return 0;
}
