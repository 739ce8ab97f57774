/*
 * A 100 MB text file, under the size limit, ingests in bounded memory: the
 * process's peak resident set (VmHWM) grows by far less than the file. The
 * file is written in small pieces so the test's own memory stays small too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/retrieval/helpers.h"

/* Under AddressSanitizer the allocator keeps freed memory in quarantine and RSS says
 * nothing about our bound, and 100 MB would take minutes: a smaller file checks the
 * streaming path for memory errors there, and the bound is asserted in normal builds. */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* Peak resident set size in KiB, from /proc/self/status. */
static long peak_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "VmHWM:", 6) == 0)
			kib = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kib;
}

static void test_100mb_bounded_memory(void **state)
{
	(void)state;
	sqlite3 *db = open_db("big");
	retrieval_collection *c;
	assert_int_equal(retrieval_collection_create(&c, db, &acme_admin, "big", NULL, NULL, 0, NULL, 0), 0);
	retrieval_collection_free(c);
	char path[4096];
	snprintf(path, sizeof path, "%s/big.txt", tmpdir());
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	static const char *const words[] = {"ledger",   "invoice", "audit",    "payment", "vendor",
					    "contract", "budget",  "forecast", "quarter", "revenue",
					    "expense",  "margin",  "asset",    "equity"};
	uint32_t x = 7;
	size_t total = 0, target = SANITIZED ? (size_t)8 << 20 : (size_t)100 << 20;
	long para = 0;
	while (total < target) {
		char line[512];
		size_t n = 0;
		for (int w = 0; w < 12; w++) {
			x = x * 1103515245u + 12345u;
			n += (size_t)snprintf(line + n, sizeof line - n, "%s%u ", words[(x >> 16) % 14],
					      (x >> 8) % 1000);
		}
		line[n - 1] = '\n';
		if (++para % 5 == 0)
			line[n++] = '\n';
		if (total + n > target)
			n = target - total;
		assert_int_equal(fwrite(line, 1, n, f), n);
		total += n;
	}
	/* A marker near the end, to find it after ingestion. */
	fputs("\nThe closing paragraph names the zanzibar reconciliation.\n", f);
	assert_int_equal(fclose(f), 0);
	long before = peak_rss_kib();
	retrieval_ingest_result r;
	retrieval_ingest_opts o = {.collection = "big"};
	int64_t t0 = ag_monotonic_ns();
	int rc = retrieval_ingest_file(&r, db, &acme_analyst, &o, path);
	if (rc)
		fprintf(stderr, "%s\n", ag_error_last());
	assert_int_equal(rc, 0);
	double secs = (double)(ag_monotonic_ns() - t0) / 1e9;
	long after = peak_rss_kib();
	printf("%zu MB: %lld chunks, %.1f s, peak RSS %ld -> %ld KiB (+%ld KiB)\n", target >> 20, r.chunks,
	       secs, before, after, after - before);
	assert_true(r.text_bytes > target);
	/* The file is 100 MiB; the ingestion may not hold more than a small fraction of it. */
	if (!SANITIZED)
		assert_true(after - before < 40 * 1024);
	retrieval_query q = {.text = "zanzibar reconciliation"};
	retrieval_hits *h;
	assert_int_equal(retrieval_search(&h, db, &acme_viewer, &q), 0);
	assert_int_equal(h->count, 1);
	assert_true(h->items[0].start_byte > target - 1000);
	char *text;
	size_t len;
	assert_int_equal(retrieval_document_read(&text, &len, db, &acme_viewer, h->items[0].document_id,
						 h->items[0].start_byte, h->items[0].end_byte),
			 0);
	assert_string_equal(text, h->items[0].text);
	ag_free(text);
	retrieval_hits_free(h);
	ag_db_close(db);
}

int main(void)
{
	ag_alloc_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_100mb_bounded_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
