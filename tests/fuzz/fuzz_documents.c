/*
 * Fuzz harness: document ingestion end to end on an in-memory database. The
 * first byte picks the format (auto, text, Markdown, HTML, PDF, source); the
 * rest is the document, run through detection, UTF-8 normalisation, HTML or
 * PDF extraction, the chunker and the index. A stored document is then
 * searched with words taken from the input, read back and deleted.
 */
#include <stdint.h>
#include <string.h>

#include "common/common.h"
#include "retrieval/retrieval.h"

static const retrieval_principal fuzzer = {"fuzz", "fuzz", "admin"};

static sqlite3 *open_store(void)
{
	static sqlite3 *db;
	if (!db && (ag_db_open(&db, ":memory:") || retrieval_migrate(db) ||
		    retrieval_collection_create(NULL, db, &fuzzer, "f", NULL, NULL, 0, NULL, 0)))
		db = NULL;
	return db;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sqlite3 *db = open_store();
	if (!db || size < 1)
		return 0;
	retrieval_ingest_opts o = {
		.collection = "f", .format = (retrieval_format)(data[0] % 6), .max_bytes = 1 << 20};
	retrieval_ingest_result r;
	if (retrieval_ingest_buffer(&r, db, &fuzzer, &o, data + 1, size - 1) != 0)
		return 0;
	char q[48];
	size_t n = size - 1 < sizeof q - 1 ? size - 1 : sizeof q - 1;
	memcpy(q, data + 1, n);
	q[n] = '\0';
	retrieval_query query = {.text = q, .k = 5};
	retrieval_hits *h = NULL;
	if (retrieval_search(&h, db, &fuzzer, &query) == 0) {
		for (size_t i = 0; i < h->count; i++) {
			char *text;
			size_t len;
			if (retrieval_document_read(&text, &len, db, &fuzzer, h->items[i].document_id,
						    h->items[i].start_byte, h->items[i].end_byte) == 0) {
				/* A citation's range is exactly the chunk's text. */
				if (len != strlen(h->items[i].text) ||
				    memcmp(text, h->items[i].text, len) != 0)
					__builtin_trap();
				ag_free(text);
			}
		}
	}
	retrieval_hits_free(h);
	retrieval_document *d;
	if (retrieval_document_get(&d, db, &fuzzer, r.document_id, true) == 0)
		retrieval_document_free(d);
	retrieval_document_delete(db, &fuzzer, r.document_id);
	return 0;
}
