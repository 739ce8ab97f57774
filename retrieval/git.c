/*
 * Git repositories as a source, through libgit2. A local path is opened in
 * place; a URL is cloned (bare) into a temporary directory that is removed
 * afterwards. Every blob of the commit's tree becomes a document with
 * source "git:REPO:PATH", the commit id for provenance and the blob id, so a
 * later ingestion skips files whose blob is unchanged, replaces changed ones
 * and deletes documents of files that are gone. Binary, empty and oversized
 * files are skipped and counted.
 */
#define _XOPEN_SOURCE 700
#include "retrieval/internal.h"

#include <ftw.h>
#include <git2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_once_t git_once = PTHREAD_ONCE_INIT;

static void git_init(void) { git_libgit2_init(); }

static int git_fail(int code, const char *what)
{
	const git_error *e = git_error_last();
	return ag_error_set(code, "%s: %s", what, e && e->message ? e->message : "libgit2 error");
}

typedef struct file_entry {
	char *path;
	git_oid oid;
	bool skipped; /* not indexed (binary, empty, too large, unreadable) */
} file_entry;

typedef struct file_list {
	file_entry *items;
	size_t count, cap;
	int err;
} file_list;

static int collect(const char *root, const git_tree_entry *entry, void *payload)
{
	file_list *l = payload;
	if (git_tree_entry_type(entry) != GIT_OBJECT_BLOB)
		return 0;
	git_filemode_t mode = git_tree_entry_filemode(entry);
	if (mode != GIT_FILEMODE_BLOB && mode != GIT_FILEMODE_BLOB_EXECUTABLE)
		return 0; /* symbolic links and the like */
	if (l->count == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 64;
		file_entry *n = ag_realloc(l->items, nc * sizeof *n);
		if (!n) {
			l->err = ag_error_set(AG_ENOMEM, "out of memory");
			return -1;
		}
		l->items = n;
		l->cap = nc;
	}
	const char *name = git_tree_entry_name(entry);
	size_t n = strlen(root) + strlen(name) + 1;
	char *path = ag_malloc(n);
	if (!path) {
		l->err = ag_error_set(AG_ENOMEM, "out of memory");
		return -1;
	}
	snprintf(path, n, "%s%s", root, name);
	l->items[l->count].path = path;
	l->items[l->count].skipped = false;
	git_oid_cpy(&l->items[l->count].oid, git_tree_entry_id(entry));
	l->count++;
	return 0;
}

static int by_path(const void *a, const void *b)
{
	return strcmp(((const file_entry *)a)->path, ((const file_entry *)b)->path);
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *f)
{
	(void)sb;
	(void)type;
	(void)f;
	return remove(path);
}

static bool is_url(const char *s) { return strstr(s, "://") != NULL || strncmp(s, "git@", 4) == 0; }

/* Documents of this repository in the collection whose file is no longer in the tree. */
static int remove_gone(sqlite3 *db, const char *coll_id, const char *prefix, const file_list *files,
		       long long *removed)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st,
			       "SELECT id, source FROM documents WHERE collection_id = ?1 AND"
			       " substr(source, 1, length(?2)) = ?2");
	if (rc)
		return rc;
	ag_db_bind_text(st, 1, coll_id);
	ag_db_bind_text(st, 2, prefix);
	size_t pl = strlen(prefix), n = 0, cap = 0;
	char **gone = NULL;
	int s;
	while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW) {
		const char *source = (const char *)sqlite3_column_text(st, 1);
		file_entry key = {.path = (char *)source + pl};
		const file_entry *hit = bsearch(&key, files->items, files->count, sizeof key, by_path);
		if (hit && !hit->skipped)
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			char **g = ag_realloc(gone, nc * sizeof *g);
			if (!g) {
				rc = ag_error_set(AG_ENOMEM, "out of memory");
				break;
			}
			gone = g;
			cap = nc;
		}
		if (!(gone[n] = ag_db_column_strdup(st, 0)))
			rc = ag_error_set(AG_ENOMEM, "out of memory");
		else
			n++;
	}
	sqlite3_finalize(st);
	bool own;
	if (!rc && (rc = retrieval_tx_begin(db, &own)) == 0) {
		for (size_t i = 0; i < n && !rc; i++)
			rc = retrieval_document_delete_rows(db, gone[i]);
		if (!rc)
			rc = retrieval_tx_commit(db, own);
		if (rc)
			retrieval_tx_rollback(db, own);
		else
			*removed = (long long)n;
	}
	for (size_t i = 0; i < n; i++)
		ag_free(gone[i]);
	ag_free(gone);
	return rc;
}

/* The blob id stored for a source, or "" when there is none. */
static int stored_blob(sqlite3 *db, const char *coll_id, const char *source, char out[GIT_OID_HEXSZ + 1])
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st,
			       "SELECT blob_id FROM documents WHERE collection_id = ?1 AND source = ?2");
	if (rc)
		return rc;
	ag_db_bind_text(st, 1, coll_id);
	ag_db_bind_text(st, 2, source);
	out[0] = '\0';
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW)
		snprintf(out, GIT_OID_HEXSZ + 1, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return s == SQLITE_ROW || s == SQLITE_DONE ? 0 : ag_db_error(db, s, "looking up a file");
}

static int ingest_tree(retrieval_git_result *out, sqlite3 *db, const retrieval_principal *p,
		       const coll_ref *coll, git_repository *repo, git_commit *commit, const char *repo_name,
		       size_t max_bytes)
{
	git_tree *tree;
	if (git_commit_tree(&tree, commit))
		return git_fail(AG_ECORRUPT, "reading the commit's tree");
	file_list files = {0};
	int rc = 0;
	if (git_tree_walk(tree, GIT_TREEWALK_PRE, collect, &files) < 0)
		rc = files.err ? files.err : git_fail(AG_ECORRUPT, "walking the tree");
	git_tree_free(tree);
	if (!rc)
		qsort(files.items, files.count, sizeof *files.items, by_path);
	ag_buf prefix = AG_BUF_INIT, source = AG_BUF_INIT;
	if (!rc && ag_buf_printf(&prefix, "git:%s:", repo_name))
		rc = ag_error_set(AG_ENOMEM, "out of memory");
	/* Changed files are written in batches of 64 per commit: one fsync per batch, not per file,
	 * while other writers still get the database between batches. */
	bool batch_open = false;
	int in_batch = 0;
	for (size_t i = 0; i < files.count && !rc; i++) {
		file_entry *f = &files.items[i];
		if (batch_open && in_batch >= 64) {
			if ((rc = ag_db_commit(db)))
				break;
			batch_open = false;
		}
		char oid[GIT_OID_HEXSZ + 1], stored[GIT_OID_HEXSZ + 1];
		git_oid_tostr(oid, sizeof oid, &f->oid);
		source.len = 0;
		if (ag_buf_printf(&source, "%s%s", prefix.data, f->path)) {
			rc = ag_error_set(AG_ENOMEM, "out of memory");
			break;
		}
		if ((rc = stored_blob(db, coll->id, source.data, stored)))
			break;
		out->files++;
		if (strcmp(stored, oid) == 0) {
			out->unchanged++;
			continue;
		}
		git_blob *blob;
		if (git_blob_lookup(&blob, repo, &f->oid)) {
			rc = git_fail(AG_ECORRUPT, "reading a file");
			break;
		}
		size_t size = (size_t)git_blob_rawsize(blob);
		if (git_blob_is_binary(blob) || size == 0 || size > max_bytes) {
			git_blob_free(blob);
			f->skipped = true;
			out->skipped++;
			out->files--;
			continue;
		}
		retrieval_ingest_opts o = {.collection = coll->id,
					   .source = source.data,
					   .filename = f->path,
					   .commit = out->commit,
					   .max_bytes = max_bytes};
		ingest_extra extra = {.blob_id = oid};
		retrieval_ingest_result r;
		int irc = retrieval_ingest_internal(&r, db, p, &o, &extra, git_blob_rawcontent(blob), size);
		git_blob_free(blob);
		if (irc == AG_EINVAL || irc == AG_EUNSUPPORTED || irc == AG_ECORRUPT || irc == AG_ELIMIT) {
			ag_info("git: skipped %s: %s", f->path, ag_error_last());
			f->skipped = true;
			out->skipped++;
			out->files--;
			continue;
		}
		if (irc) {
			rc = ag_error_wrap(irc, "%s", f->path);
			break;
		}
		if (r.replaced)
			out->updated++;
		else if (r.unchanged)
			out->unchanged++;
		else
			out->added++;
	}
	if (batch_open) {
		if (rc)
			ag_db_rollback(db);
		else
			rc = ag_db_commit(db);
	}
	/* Files that were skipped (say, became binary) also leave the index. */
	if (!rc)
		rc = remove_gone(db, coll->id, prefix.data, &files, &out->removed);
	for (size_t i = 0; i < files.count; i++)
		ag_free(files.items[i].path);
	ag_free(files.items);
	ag_buf_free(&prefix);
	ag_buf_free(&source);
	return rc;
}

int retrieval_ingest_git(retrieval_git_result *out, sqlite3 *db, const retrieval_principal *p,
			 const char *collection, const char *repo_loc, const char *ref, size_t max_bytes)
{
	memset(out, 0, sizeof *out);
	if (!repo_loc || !*repo_loc)
		return ag_error_set(AG_EINVAL, "a repository path or URL is required");
	if (!max_bytes)
		max_bytes = RETRIEVAL_DEFAULT_MAX_BYTES;
	coll_ref coll;
	int rc = retrieval_coll_resolve(&coll, db, p, collection, true);
	if (rc)
		return rc;
	pthread_once(&git_once, git_init);
	git_repository *repo = NULL;
	char tmpdir[] = "/tmp/agentd-git-XXXXXX";
	bool cloned = false;
	if (is_url(repo_loc)) {
		if (!mkdtemp(tmpdir))
			return ag_error_set(AG_EIO, "cannot make a temporary directory for the clone");
		cloned = true;
		git_clone_options co;
		git_clone_options_init(&co, GIT_CLONE_OPTIONS_VERSION);
		co.bare = 1;
		if (git_clone(&repo, repo_loc, tmpdir, &co))
			rc = git_fail(AG_EIO, "cloning the repository");
	} else if (git_repository_open_ext(&repo, repo_loc, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL)) {
		rc = git_fail(AG_ENOTFOUND, "opening the repository");
	}
	git_object *obj = NULL;
	git_commit *commit = NULL;
	if (!rc && git_revparse_single(&obj, repo, ref && *ref ? ref : "HEAD"))
		rc = git_fail(AG_ENOTFOUND, "resolving the ref");
	if (!rc && git_object_peel((git_object **)&commit, obj, GIT_OBJECT_COMMIT))
		rc = git_fail(AG_EINVAL, "the ref does not name a commit");
	if (!rc) {
		git_oid_tostr(out->commit, sizeof out->commit, git_commit_id(commit));
		rc = ingest_tree(out, db, p, &coll, repo, commit, repo_loc, max_bytes);
	}
	git_commit_free(commit);
	git_object_free(obj);
	git_repository_free(repo);
	if (cloned)
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}
