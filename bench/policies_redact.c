/* Benchmark: how fast the default policy loads (parse + PCRE2 JIT of every pattern) and how
 * fast it redacts and scans text (MB/s) on a document-like mix with secrets sprinkled in. */
#include <stdio.h>
#include <string.h>

#include "policies/policies.h"

static const char *const filler[] = {
	"Employees accrue 25 vacation days per year, prorated in the first year. ",
	"Travel must be booked through the portal; meals are capped at 40 EUR a day. ",
	"Order 4111111111111112 shipped on 2024-01-15 to warehouse 12. ",
	"Questions go to hr@acme.example or +1 415 555 0132. ",
	"Refunds go to DE89 3704 0044 0532 0130 00 within 30 days. ",
	"The build uses version 10.4.1234 on host 192.168.100.200. ",
};

int main(void)
{
	ag_alloc_init();
	ag_log_set_level(AG_LOG_OFF);
	int64_t t0 = ag_monotonic_ns();
	int loads = 20;
	for (int i = 0; i < loads; i++) {
		policies_policy *p;
		if (policies_load_default(&p)) {
			fprintf(stderr, "%s\n", ag_error_last());
			return 1;
		}
		policies_release(p);
	}
	double load_ms = (double)(ag_monotonic_ns() - t0) / 1e6 / loads;

	ag_buf text = AG_BUF_INIT;
	for (size_t i = 0; text.len < (1u << 20); i++)
		ag_buf_puts(&text, filler[i % (sizeof filler / sizeof filler[0])]);
	policies_policy *p;
	policies_load_default(&p);
	policies_principal who = {"acme", "bob", "analyst"};
	int rounds = 5, count = 0;
	t0 = ag_monotonic_ns();
	for (int i = 0; i < rounds; i++) {
		policies_redaction r;
		if (policies_redact(p, &who, POLICIES_SINK_CONTEXT, text.data, text.len, &r)) {
			fprintf(stderr, "%s\n", ag_error_last());
			return 1;
		}
		count = r.count;
		policies_redaction_free(&r);
	}
	double redact_s = (double)(ag_monotonic_ns() - t0) / 1e9 / rounds;
	t0 = ag_monotonic_ns();
	for (int i = 0; i < rounds; i++) {
		policies_decision d;
		policies_scan_injection(p, text.data, text.len, &d);
	}
	double scan_s = (double)(ag_monotonic_ns() - t0) / 1e9 / rounds;
	/* A short chunk, as the planner sees them: per-call overhead. */
	const char *chunk = filler[3];
	int calls = 20000;
	t0 = ag_monotonic_ns();
	for (int i = 0; i < calls; i++) {
		policies_redaction r;
		policies_redact(p, &who, POLICIES_SINK_CONTEXT, chunk, strlen(chunk), &r);
		policies_redaction_free(&r);
	}
	double chunk_us = (double)(ag_monotonic_ns() - t0) / 1e3 / calls;
	double mb = (double)text.len / 1e6;
	printf("default policy load (parse + JIT): %.2f ms\n", load_ms);
	printf("redact %.1f MB: %.1f MB/s (%d spans redacted)\n", mb, mb / redact_s, count);
	printf("injection scan %.1f MB: %.1f MB/s\n", mb, mb / scan_s);
	printf("redact one %zu-byte chunk: %.1f us\n", strlen(chunk), chunk_us);
	policies_release(p);
	ag_buf_free(&text);
	return 0;
}
