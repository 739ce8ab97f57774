/* Fuzz harness: the policy parser, then, when a fuzzed policy loads, its checks and
 * redaction run on the input itself (so fuzzed patterns meet fuzzed subjects under the
 * match limits). Any crash, hang or sanitizer report is a bug. */
#include <stdint.h>
#include <string.h>

#include "policies/policies.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Compiled once: JIT-compiling the default's patterns for every input would dominate. */
	static policies_policy *def;
	if (!def) {
		ag_log_set_level(AG_LOG_OFF);
		if (policies_load_default(&def))
			return 0;
	}
	const char *text = (const char *)data;
	policies_policy *p = NULL;
	policies_diag *d = NULL;
	if (policies_parse(&p, &d, text, size, "fuzz")) {
		char *msg = policies_diag_format(d, "fuzz");
		ag_free(msg);
		policies_diag_free(d);
		/* The default policy's patterns against the fuzz input as a subject. */
		p = policies_ref(def);
	}
	json_t *j;
	if (policies_describe(&j, p) == 0)
		json_decref(j);
	policies_principal who = {"t", "u", "analyst"};
	policies_decision dec;
	policies_check_input(p, &who, text, size, &dec);
	policies_check_output(p, &who, text, size, &dec);
	policies_check_collection(p, &who, "hr", &dec);
	policies_tool_props props = {true, true};
	policies_run_context ctx = {true, "inject.x"};
	policies_check_tool(p, &who, "http_get", &props, &ctx, &dec);
	policies_scan_injection(p, text, size, &dec);
	policies_redaction r;
	if (policies_redact(p, &who, POLICIES_SINK_CONTEXT, text, size, &r) == 0)
		policies_redaction_free(&r);
	char *out;
	size_t n;
	if (policies_mark_untrusted(&out, &n, "fuzz", text, size) == 0)
		ag_free(out);
	policies_release(p);
	return 0;
}
