/*
 * `agentd ingest [--collection C] [--tenant T] PATH...`: files, folders (walked,
 * hidden entries skipped), git repositories (a folder with .git, or a bare
 * one: ingested at HEAD through retrieval's git source) and http(s) URLs, into
 * a collection of the tenant (default "default"), created when missing. The
 * CLI acts as that tenant's admin "cli". One line per item; exit status 1 if
 * any item failed, though the others are still ingested.
 */
#define _XOPEN_SOURCE 700
#include "agentd/cli.h"
#include "retrieval/retrieval.h"

#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define MAX_PATHS 256

typedef struct ingest_run {
	sqlite3 *db;
	retrieval_principal p;
	const char *collection;
	size_t max_bytes;
	long ok, unchanged, failed;
	bool batch_open; /* a transaction holding several files is open */
	int in_batch;
} ingest_run;

/* Files are committed 64 at a time: one fsync per batch rather than per file. Each
 * file is still all-or-nothing (retrieval writes it under a savepoint). */
static void batch_end(ingest_run *r)
{
	if (r->batch_open && ag_db_commit(r->db)) {
		fprintf(stderr, "agentd: commit: %s\n", ag_error_last());
		r->failed += r->in_batch;
	}
	r->batch_open = false;
	r->in_batch = 0;
}

static ingest_run *walk_run; /* nftw has no user pointer */

static void report(ingest_run *r, const char *what, int rc, const retrieval_ingest_result *res)
{
	if (rc) {
		r->failed++;
		fprintf(stderr, "agentd: %s: %s\n", what, ag_error_last());
	} else if (res->unchanged) {
		r->unchanged++;
		printf("unchanged %s (%s)\n", what, res->document_id);
	} else {
		r->ok++;
		printf("%s %s -> %s (%s, %lld chunks)\n", res->replaced ? "replaced" : "added", what,
		       res->document_id, res->format, res->chunks);
	}
}

static void ingest_one_file(ingest_run *r, const char *path)
{
	retrieval_ingest_opts o = {.collection = r->collection, .max_bytes = r->max_bytes};
	retrieval_ingest_result res;
	if (!r->batch_open && sqlite3_get_autocommit(r->db))
		r->batch_open = ag_db_begin(r->db) == 0;
	int rc = retrieval_ingest_file(&res, r->db, &r->p, &o, path);
	report(r, path, rc, &res);
	if (r->batch_open && ++r->in_batch >= 64)
		batch_end(r);
}

static int on_entry(const char *path, const struct stat *sb, int type, struct FTW *f)
{
	const char *base = path + f->base;
	if (f->level > 0 && base[0] == '.')
		return type == FTW_D ? FTW_SKIP_SUBTREE : FTW_CONTINUE;
	if (type == FTW_F && S_ISREG(sb->st_mode))
		ingest_one_file(walk_run, path);
	return FTW_CONTINUE;
}

static bool is_git_repo(const char *path)
{
	char p[4096];
	struct stat sb;
	if (snprintf(p, sizeof p, "%s/.git", path) < (int)sizeof p && stat(p, &sb) == 0)
		return true;
	/* A bare repository: HEAD, objects/ and refs/ at the top. */
	if (snprintf(p, sizeof p, "%s/HEAD", path) >= (int)sizeof p || stat(p, &sb) != 0)
		return false;
	return snprintf(p, sizeof p, "%s/objects", path) < (int)sizeof p && stat(p, &sb) == 0 &&
	       S_ISDIR(sb.st_mode);
}

static void ingest_path(ingest_run *r, const char *path)
{
	if (strncasecmp(path, "http://", 7) == 0 || strncasecmp(path, "https://", 8) == 0) {
		batch_end(r); /* URLs and repositories commit on their own */
		retrieval_ingest_opts o = {.collection = r->collection, .max_bytes = r->max_bytes};
		retrieval_ingest_result res;
		int rc = retrieval_ingest_url(&res, r->db, &r->p, &o, path, 60, 5);
		report(r, path, rc, &res);
		return;
	}
	struct stat sb;
	if (stat(path, &sb) != 0) {
		r->failed++;
		fprintf(stderr, "agentd: %s: no such file or folder\n", path);
		return;
	}
	if (!S_ISDIR(sb.st_mode)) {
		ingest_one_file(r, path);
		return;
	}
	if (is_git_repo(path)) {
		batch_end(r);
		retrieval_git_result g;
		int rc = retrieval_ingest_git(&g, r->db, &r->p, r->collection, path, NULL, r->max_bytes);
		if (rc) {
			r->failed++;
			fprintf(stderr, "agentd: %s: %s\n", path, ag_error_last());
			return;
		}
		r->ok += g.added + g.updated;
		r->unchanged += g.unchanged;
		printf("git %s at %s: %lld files, %lld added, %lld updated, %lld unchanged, %lld removed, "
		       "%lld "
		       "skipped\n",
		       path, g.commit, g.files, g.added, g.updated, g.unchanged, g.removed, g.skipped);
		return;
	}
	walk_run = r;
	if (nftw(path, on_entry, 32, FTW_PHYS | FTW_ACTIONRETVAL) != 0) {
		r->failed++;
		fprintf(stderr, "agentd: %s: cannot walk the folder\n", path);
	}
}

int agentd_cmd_ingest(int argc, char **argv)
{
	agentd_config *cfg;
	if (agentd_config_new(&cfg)) {
		fprintf(stderr, "agentd: %s\n", ag_error_last());
		return 1;
	}
	static const char *const extra[] = {"collection", "tenant", NULL};
	const char *vals[2], *pos[MAX_PATHS];
	int npos, status;
	if ((status = agentd_cli_parse(argc, argv, cfg, extra, vals, pos, MAX_PATHS, &npos)))
		goto out;
	if (npos == 0) {
		fprintf(stderr, "usage: agentd ingest [--collection C] [--tenant T] PATH... [--data DIR]\n");
		status = 2;
		goto out;
	}
	long long max = 0;
	if (agentd_config_get_long(cfg, "max_document_bytes", 1, (long long)1 << 40, &max)) {
		fprintf(stderr, "agentd: %s\n", ag_error_last());
		status = 2;
		goto out;
	}
	ingest_run r = {.collection = vals[0] ? vals[0] : "default", .max_bytes = (size_t)max};
	r.p = (retrieval_principal){vals[1] ? vals[1] : "default", "cli", "admin"};
	if (agentd_store_open(cfg, &r.db)) {
		fprintf(stderr, "agentd: %s\n", ag_error_last());
		status = 1;
		goto out;
	}
	retrieval_collection *c;
	int rc = retrieval_collection_get(&c, r.db, &r.p, r.collection);
	if (rc == AG_ENOTFOUND)
		rc = retrieval_collection_create(&c, r.db, &r.p, r.collection, "", NULL, 0, NULL, 0);
	if (rc) {
		fprintf(stderr, "agentd: collection %s: %s\n", r.collection, ag_error_last());
		ag_db_close(r.db);
		status = rc == AG_EINVAL ? 2 : 1;
		goto out;
	}
	retrieval_collection_free(c);
	for (int i = 0; i < npos; i++)
		ingest_path(&r, pos[i]);
	batch_end(&r);
	/* After a bulk load, one index segment per term keeps searches fast. */
	if (r.ok && retrieval_optimize(r.db))
		fprintf(stderr, "agentd: %s\n", ag_error_last());
	ag_db_close(r.db);
	printf("ingested into %s/%s: %ld added or replaced, %ld unchanged, %ld failed\n", r.p.tenant,
	       r.collection, r.ok, r.unchanged, r.failed);
	status = r.failed ? 1 : 0;
out:
	agentd_config_free(cfg);
	return status;
}
