/*
 * The calculator tool: exact decimal arithmetic through our own parser
 * (tools/calc.c). It touches nothing outside its own memory, so it gets the
 * tightest sandbox: no files, no network, no threads.
 */
#include "tools/tools_int.h"

#include <string.h>

static int calculator_run(json_t **out, const json_t *args, const json_t *input)
{
	(void)input;
	const char *expression = tools_arg_str(args, "expression", "");
	int precision = (int)tools_arg_int(args, "precision", 50);
	char *value;
	bool exact;
	int rc = tools_calc_eval(&value, &exact, expression, strlen(expression), precision);
	if (rc)
		return rc;
	*out = json_pack("{s:s, s:b}", "value", value, "exact", exact);
	ag_free(value);
	if (!*out)
		return ag_error_set(AG_ENOMEM, "out of memory");
	return 0;
}

const tools_tool tools_builtin_calculator = {
	.name = "calculator",
	.description =
		"Exact arithmetic on integers and decimals: + - * / % ^, parentheses and the functions "
		"abs, min, max, round(x, places), floor, ceil, trunc, sqrt. Division and sqrt that do "
		"not terminate are rounded to `precision` significant digits (default 50).",
	.schema = "{\"type\": \"object\", \"properties\": {"
		  "\"expression\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 4096, "
		  "\"description\": \"for example (1.5 + 2) * 3 ^ 2 / 7\"}, "
		  "\"precision\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 200, "
		  "\"description\": \"significant digits of inexact results\"}}, "
		  "\"required\": [\"expression\"], \"additionalProperties\": false}",
	.limits = {.cpu_seconds = 2,
		   .wall_seconds = 5,
		   .memory_bytes = 256u << 20,
		   .output_bytes = 64u << 10},
	.needs = 0,
	.run = calculator_run,
};
