/*
 * bench/retrieval: the retrieval module on a real corpus found on any Debian
 * machine, the manual pages under /usr/share/man/man[1-8]. Each page is
 * decompressed with zlib and its roff rendered to Markdown-like text here
 * (.SH/.SS become headings, font escapes and requests are dropped, .B/.I
 * text kept); no `man` command is needed. Prints ingest MB/s, the chunk
 * count, the database and FTS index sizes, query latency p50/p99 and a
 * known-item evaluation: for each sampled page, the description from its
 * NAME line is the query and the page must be among the first 5 documents.
 *
 *   build/bench/retrieval [--limit PAGES] [--queries N] [--db PATH] [--man DIR]
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

#include "common/common.h"
#include "retrieval/retrieval.h"

typedef struct page {
	char *path;
	char *title; /* "ls(1)" */
	char *doc_id;
	char *name_line; /* rendered NAME section */
} page;

static const retrieval_principal admin = {"bench", "bench", "admin"};

static char *gunzip_file(const char *path, size_t *len)
{
	gzFile f = gzopen(path, "rb");
	if (!f)
		return NULL;
	ag_buf b = AG_BUF_INIT;
	char buf[65536];
	int n;
	while ((n = gzread(f, buf, sizeof buf)) > 0)
		ag_buf_append(&b, buf, (size_t)n);
	gzclose(f);
	if (n < 0) {
		ag_buf_free(&b);
		return NULL;
	}
	return ag_buf_detach(&b, len);
}

/* Text of a roff line with escapes resolved: fonts dropped, \- to '-', specials to a space. */
static void render_text(ag_buf *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c != '\\') {
			ag_buf_putc(out, c);
			continue;
		}
		if (++i >= n)
			break;
		c = s[i];
		switch (c) {
		case '"': return; /* comment to the end of the line */
		case '-': ag_buf_putc(out, '-'); break;
		case 'e':
		case '\\': ag_buf_putc(out, '\\'); break;
		case ' ':
		case '~': ag_buf_putc(out, ' '); break;
		case 'f': /* font: \fB, \f(XX, \f[...] */
		case 's': /* size: \s+2, \s0 */
		case '*': /* string: \*X, \*(XX, \*[...] */
		case 'n': /* register */
			if (i + 1 < n && s[i + 1] == '(')
				i += 3;
			else if (i + 1 < n && s[i + 1] == '[') {
				while (i < n && s[i] != ']')
					i++;
			} else if (c == 's') {
				i++;
				while (i + 1 < n && (s[i + 1] >= '0' && s[i + 1] <= '9'))
					i++;
				if (i < n && (s[i] == '+' || s[i] == '-'))
					i++;
			} else
				i++;
			break;
		case '(': /* special character \(xx */
			if (i + 2 < n && s[i + 1] == 'e' && s[i + 2] == 'm')
				ag_buf_puts(out, " - ");
			else if (i + 2 < n && ((s[i + 1] == 'a' && s[i + 2] == 'q') ||
					       (s[i + 1] == 'd' && s[i + 2] == 'q')))
				ag_buf_putc(out, '\'');
			else
				ag_buf_putc(out, ' ');
			i += 2;
			break;
		case '[':
			while (i < n && s[i] != ']')
				i++;
			ag_buf_putc(out, ' ');
			break;
		default: break; /* \& \| \^ \% \c and the rest: nothing */
		}
	}
}

/* A macro's arguments, quotes removed; alternate (.BR etc.) joins them without spaces. */
static void render_args(ag_buf *out, const char *s, size_t n, bool alternate, bool mdoc)
{
	size_t i = 0;
	bool first = true;
	while (i < n) {
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
		if (i >= n)
			break;
		size_t st, en;
		if (s[i] == '"') {
			st = ++i;
			while (i < n && s[i] != '"')
				i++;
			en = i++;
		} else {
			st = i;
			while (i < n && s[i] != ' ' && s[i] != '\t')
				i++;
			en = i;
		}
		/* mdoc's inline macros (Fl, Ar, Op, ...) are markup, not words. */
		if (mdoc && en - st == 2 && s[st] >= 'A' && s[st] <= 'Z' && s[st + 1] >= 'a' &&
		    s[st + 1] <= 'z')
			continue;
		if (!first && !alternate)
			ag_buf_putc(out, ' ');
		render_text(out, s + st, en - st);
		first = false;
	}
}

/* roff to text; the NAME section's text goes to name. */
static void render_page(ag_buf *out, ag_buf *name, const char *src, size_t len)
{
	bool in_name = false, in_def = false;
	for (size_t i = 0; i < len;) {
		const char *l = src + i;
		const char *nl = memchr(l, '\n', len - i);
		size_t n = nl ? (size_t)(nl - l) : len - i;
		i += n + 1;
		if (in_def) {
			if (n >= 2 && l[0] == '.' && l[1] == '.')
				in_def = false;
			continue;
		}
		size_t before = out->len;
		if (n && (l[0] == '.' || l[0] == '\'')) {
			size_t k = 1;
			while (k < n && (l[k] == ' ' || l[k] == '\t'))
				k++;
			size_t ms = k;
			while (k < n && l[k] != ' ' && l[k] != '\t')
				k++;
			const char *m = l + ms;
			size_t ml = k - ms;
			const char *args = l + k;
			size_t al = n - k;
#define IS(x) (ml == strlen(x) && strncmp(m, x, ml) == 0)
			if (IS("SH") || IS("Sh")) {
				ag_buf_puts(out, "\n\n# ");
				size_t hs = out->len;
				render_args(out, args, al, false, false);
				in_name = out->len - hs == 4 && strncasecmp(out->data + hs, "NAME", 4) == 0;
				ag_buf_puts(out, "\n\n");
				continue;
			}
			if (IS("SS") || IS("Ss")) {
				ag_buf_puts(out, "\n\n## ");
				render_args(out, args, al, false, false);
				ag_buf_puts(out, "\n\n");
				in_name = false;
				continue;
			}
			if (IS("de") || IS("de1") || IS("am")) {
				in_def = true;
				continue;
			}
			if (IS("PP") || IS("LP") || IS("P") || IS("TP") || IS("HP") || IS("sp") || IS("Pp") ||
			    IS("Bl") || IS("El")) {
				ag_buf_puts(out, "\n\n");
				continue;
			}
			if (IS("IP") || IS("It")) {
				ag_buf_puts(out, "\n\n");
				render_args(out, args, al, false, IS("It"));
				ag_buf_putc(out, ' ');
				continue;
			}
			if (IS("B") || IS("I") || IS("SM") || IS("SB") || IS("Nm") || IS("Nd") || IS("Fl") ||
			    IS("Ar") || IS("Op") || IS("Xr") || IS("Pa") || IS("Em") || IS("Dq") ||
			    IS("Ql") || IS("Cm") || IS("Ev") || IS("Va") || IS("Fn") || IS("Ft") ||
			    IS("Dv") || IS("Er") || IS("Sy") || IS("Li")) {
				if (IS("Nd"))
					ag_buf_puts(out, "- ");
				render_args(out, args, al, false, ml == 2 && m[1] >= 'a');
				ag_buf_putc(out, '\n');
			} else if (IS("BR") || IS("BI") || IS("IB") || IS("RB") || IS("RI") || IS("IR")) {
				render_args(out, args, al, true, false);
				ag_buf_putc(out, '\n');
			} else {
				continue; /* other requests: layout only */
			}
		} else {
			render_text(out, l, n);
			ag_buf_putc(out, '\n');
		}
		if (in_name) {
			ag_buf_putc(name, ' ');
			ag_buf_append(name, out->data + before, out->len - before);
		}
	}
}

/* This thread's CPU time in ms: the work a query did, whatever else shares the machine. */
static double cpu_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void collect(page **pages, size_t *n, size_t *cap, const char *root, long limit)
{
	for (int sec = 1; sec <= 8; sec++) {
		char dir[4096];
		snprintf(dir, sizeof dir, "%s/man%d", root, sec);
		struct dirent **list;
		int k = scandir(dir, &list, NULL, alphasort);
		for (int i = 0; i < k; i++) {
			const char *e = list[i]->d_name;
			size_t el = strlen(e);
			char path[8192];
			snprintf(path, sizeof path, "%s/%s", dir, e);
			struct stat sb;
			bool ok = el > 3 && strcmp(e + el - 3, ".gz") == 0 && lstat(path, &sb) == 0 &&
				  S_ISREG(sb.st_mode);
			if (ok && (limit <= 0 || (long)*n < limit)) {
				if (*n == *cap) {
					*cap = *cap ? *cap * 2 : 1024;
					*pages = realloc(*pages, *cap * sizeof **pages);
				}
				page *p = &(*pages)[(*n)++];
				memset(p, 0, sizeof *p);
				p->path = ag_strdup(path);
				/* "ls.1.gz" -> "ls(1)" */
				char base[512];
				snprintf(base, sizeof base, "%.*s", (int)(el - 3), e);
				char *dot = strrchr(base, '.');
				char title[600];
				if (dot) {
					*dot = '\0';
					snprintf(title, sizeof title, "%s(%s)", base, dot + 1);
				} else {
					snprintf(title, sizeof title, "%s", base);
				}
				p->title = ag_strdup(title);
			}
			free(list[i]);
		}
		free(list);
	}
}

int main(int argc, char **argv)
{
	ag_alloc_init();
	ag_log_set_level(AG_LOG_WARN);
	long limit = 0, nqueries = 3000;
	bool reuse = false; /* --reuse: query the database of an earlier run, skip ingestion */
	const char *db_path = "/tmp/agentd-bench-retrieval.db", *root = "/usr/share/man";
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--limit") == 0)
			limit = strtol(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--queries") == 0)
			nqueries = strtol(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--db") == 0)
			db_path = argv[i + 1];
		else if (strcmp(argv[i], "--man") == 0)
			root = argv[i + 1];
		else if (strcmp(argv[i], "--reuse") == 0)
			reuse = strcmp(argv[i + 1], "0") != 0;
	}
	char wal[4200];
	snprintf(wal, sizeof wal, "%s-wal", db_path);
	if (!reuse) {
		remove(db_path);
		remove(wal);
	}
	sqlite3 *db;
	if (ag_db_open(&db, db_path) || retrieval_migrate(db) ||
	    (!reuse &&
	     retrieval_collection_create(NULL, db, &admin, "man", "manual pages", NULL, 0, NULL, 0))) {
		fprintf(stderr, "bench: %s\n", ag_error_last());
		return 1;
	}
	const char *pragma = getenv("BENCH_PRAGMA"); /* e.g. "PRAGMA mmap_size=1073741824" to compare */
	if (pragma && ag_db_exec(db, pragma))
		fprintf(stderr, "bench: %s\n", ag_error_last());
	page *pages = NULL;
	size_t npages = 0, cap = 0;
	collect(&pages, &npages, &cap, root, limit);
	size_t roff_bytes = 0, text_bytes = 0, stored = 0, skipped = 0, failed = 0, refused = 0;
	/* Documents are committed in batches of 256, as bulk ingestion does (one fsync per batch). */
	int in_batch = 0;
	double ingest_s = 0;
	ag_buf text = AG_BUF_INIT, name = AG_BUF_INIT;
	for (size_t i = 0; i < npages; i++) {
		page *p = &pages[i];
		size_t len;
		char *src = gunzip_file(p->path, &len);
		if (!src) {
			failed++;
			continue;
		}
		if (len > 3 && strncmp(src, ".so", 3) == 0) { /* a redirect to another page */
			ag_free(src);
			skipped++;
			continue;
		}
		text.len = 0;
		name.len = 0;
		ag_buf_puts(&text, "");
		ag_buf_puts(&name, "");
		render_page(&text, &name, src, len);
		roff_bytes += len;
		ag_free(src);
		retrieval_ingest_opts o = {.collection = "man",
					   .title = p->title,
					   .source = p->path,
					   .format = RETRIEVAL_FORMAT_MARKDOWN};
		retrieval_ingest_result r;
		if (reuse) {
			sqlite3_stmt *st;
			if (ag_db_prepare(db, &st, "SELECT id FROM documents WHERE source = ?1") == 0) {
				ag_db_bind_text(st, 1, p->path);
				if (sqlite3_step(st) == SQLITE_ROW) {
					p->doc_id = ag_db_column_strdup(st, 0);
					p->name_line = ag_strdup(name.data);
					stored++;
					text_bytes += text.len;
				}
				sqlite3_finalize(st);
			}
			continue;
		}
		int64_t t0 = ag_monotonic_ns();
		if (in_batch == 0)
			ag_db_begin(db);
		int rc = retrieval_ingest_buffer(&r, db, &admin, &o, text.data, text.len);
		if (++in_batch == 256 || i + 1 == npages) {
			ag_db_commit(db);
			in_batch = 0;
		}
		ingest_s += (double)(ag_monotonic_ns() - t0) / 1e9;
		if (rc) {
			refused++;
			continue;
		}
		text_bytes += text.len;
		stored++;
		p->doc_id = ag_strdup(r.document_id);
		p->name_line = ag_strdup(name.data);
	}
	if (in_batch)
		ag_db_commit(db);
	if (reuse) {
		ingest_s = 1e-9; /* not measured */
	} else {
		/* As `agentd ingest` does after a bulk load: one FTS5 segment per term. */
		int64_t t0 = ag_monotonic_ns();
		if (retrieval_optimize(db))
			fprintf(stderr, "bench: %s\n", ag_error_last());
		printf("optimize: %.2f s\n", (double)(ag_monotonic_ns() - t0) / 1e9);
	}
	ag_buf_free(&text);
	sqlite3_stmt *st;
	long long chunks = 0, db_bytes = 0, fts_bytes = 0;
	if (ag_db_prepare(db, &st, "SELECT count(*) FROM chunks") == 0) {
		if (sqlite3_step(st) == SQLITE_ROW)
			chunks = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	ag_db_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
	if (ag_db_prepare(db, &st,
			  "SELECT page_count * page_size FROM pragma_page_count, pragma_page_size") == 0) {
		if (sqlite3_step(st) == SQLITE_ROW)
			db_bytes = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	if (ag_db_prepare(db, &st,
			  "SELECT sum(length(block)) + (SELECT sum(length(id)) FROM chunks_fts_idx) FROM "
			  "chunks_fts_data") == 0) {
		if (sqlite3_step(st) == SQLITE_ROW)
			fts_bytes = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	printf("corpus: %zu manual pages under %s (%zu .so redirects skipped, %zu unreadable, %zu refused: "
	       "%s)\n",
	       npages, root, skipped, failed, refused, refused ? "no text after rendering" : "none");
	printf("ingest: %zu documents, %.1f MB roff -> %.1f MB text in %.2f s: %.2f MB/s of text\n", stored,
	       roff_bytes / 1e6, text_bytes / 1e6, ingest_s, text_bytes / 1e6 / ingest_s);
	printf("index: %lld chunks, database %.1f MB, FTS5 index %.1f MB\n", chunks, db_bytes / 1e6,
	       fts_bytes / 1e6);

	/* Known-item queries: NAME line "ls - list directory contents" -> "list directory contents". */
	size_t stride = stored > (size_t)nqueries && nqueries > 0 ? stored / (size_t)nqueries : 1;
	double *lat = malloc(sizeof(double) * (stored + 1)), *cpu = malloc(sizeof(double) * (stored + 1));
	size_t nq = 0, found_desc = 0, found_full = 0, seen = 0;
	/* The Google Cloud SDK's pages (alpha, beta and GA variants of one command share a description)
	 * make a description-only query ambiguous, so they are also counted apart. */
	size_t nq_other = 0, found_other = 0;
	for (size_t i = 0; i < npages && nq < (size_t)nqueries; i++) {
		page *p = &pages[i];
		if (!p->doc_id || !p->name_line)
			continue;
		if (seen++ % stride)
			continue;
		const char *dash = strstr(p->name_line, " - ");
		if (!dash || !dash[3])
			continue;
		for (int full = 0; full < 2; full++) {
			retrieval_query q = {.text = full ? p->name_line : dash + 3, .k = 10};
			retrieval_hits *h = NULL;
			int64_t t0 = ag_monotonic_ns();
			double c0 = cpu_ms();
			int rc = retrieval_search(&h, db, &admin, &q);
			double ms = (double)(ag_monotonic_ns() - t0) / 1e6, cms = cpu_ms() - c0;
			if (rc) {
				retrieval_hits_free(h);
				continue;
			}
			if (!full) {
				lat[nq] = ms;
				cpu[nq] = cms;
			}
			/* The first five distinct documents. */
			const char *docs[5];
			int nd = 0;
			bool hit = false;
			for (size_t j = 0; j < h->count && nd < 5; j++) {
				bool dup = false;
				for (int k = 0; k < nd; k++)
					dup |= strcmp(docs[k], h->items[j].document_id) == 0;
				if (dup)
					continue;
				docs[nd++] = h->items[j].document_id;
				hit |= strcmp(h->items[j].document_id, p->doc_id) == 0;
			}
			if (hit)
				*(full ? &found_full : &found_desc) += 1;
			if (!full && strncmp(p->title, "gcloud", 6) != 0) {
				nq_other++;
				found_other += hit;
			}
			retrieval_hits_free(h);
		}
		nq++;
	}
	qsort(lat, nq, sizeof *lat, cmp_double);
	qsort(cpu, nq, sizeof *cpu, cmp_double);
	if (nq) {
		printf("queries: %zu known-item queries from NAME lines (description only), k=10 chunks\n",
		       nq);
		printf("latency (wall): p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", lat[nq / 2],
		       lat[(nq * 99) / 100], lat[nq - 1]);
		printf("latency (CPU of the searching thread): p50 %.2f ms, p99 %.2f ms\n", cpu[nq / 2],
		       cpu[(nq * 99) / 100]);
		double load[3];
		if (getloadavg(load, 3) == 3)
			printf("machine load average during the run: %.2f (2 cores)\n", load[0]);
		printf("recall@5 (documents): %.3f with the description only, %.3f with the whole NAME "
		       "line\n",
		       (double)found_desc / (double)nq, (double)found_full / (double)nq);
		if (nq_other)
			printf("recall@5 without the gcloud pages: %.3f with the description only (%zu "
			       "queries)\n",
			       (double)found_other / (double)nq_other, nq_other);
	}
	free(lat);
	free(cpu);
	for (size_t i = 0; i < npages; i++) {
		ag_free(pages[i].path);
		ag_free(pages[i].title);
		ag_free(pages[i].doc_id);
		ag_free(pages[i].name_line);
	}
	free(pages);
	ag_buf_free(&name);
	ag_db_close(db);
	return 0;
}
