/*
 * The git tool: libgit2 over a repository an admin attached (by name, in
 * PUT /v1/tools/settings). Actions: log (recent commits from a ref), show (a
 * file at a ref), diff (a patch between two refs) and search (commit
 * messages containing a phrase). The child may read only the repository's
 * directory; libgit2's system and global configuration lookups are pointed
 * nowhere so nothing else is opened.
 */
#include "tools/tools_int.h"

#include <git2.h>
#include <string.h>
#include <strings.h>

#define GIT_MAX_TEXT (1u << 20)
#define GIT_MAX_SCAN 20000

static int git_prepare(tools_job *job, const json_t *args, const tools_env *env)
{
	char *path;
	int rc = tools_settings_lookup(&path, env->db, env->tenant, "repository",
				       tools_arg_str(args, "repository", ""));
	if (rc)
		return rc;
	rc = tools_job_grant_read(job, path);
	json_t *input = json_pack("{s:s}", "path", path);
	ag_free(path);
	if (!input)
		return ag_error_set(AG_ENOMEM, "out of memory");
	tools_job_set_input(job, input);
	return rc;
}

static int git_fail(const char *what)
{
	const git_error *e = git_error_last();
	return ag_error_set(AG_EINVAL, "%s: %s", what, e && e->message ? e->message : "libgit2 error");
}

static int resolve_commit(git_commit **out, git_repository *repo, const char *ref)
{
	git_object *obj = NULL;
	if (git_revparse_single(&obj, repo, ref) != 0)
		return ag_error_set(AG_ENOTFOUND, "no revision '%.200s' in the repository", ref);
	git_object *peeled = NULL;
	int rc = git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT);
	git_object_free(obj);
	if (rc)
		return ag_error_set(AG_EINVAL, "'%.200s' does not name a commit", ref);
	*out = (git_commit *)peeled;
	return 0;
}

static json_t *commit_json(const git_commit *c, bool full_message)
{
	char id[GIT_OID_HEXSZ + 1];
	git_oid_tostr(id, sizeof id, git_commit_id(c));
	const git_signature *a = git_commit_author(c);
	char when[32];
	ag_format_time(when, sizeof when, (int64_t)git_commit_time(c) * 1000);
	const char *summary = git_commit_summary((git_commit *)c);
	json_t *v = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", id, "author", a && a->name ? a->name : "",
			      "email", a && a->email ? a->email : "", "time", when, "summary",
			      summary ? summary : "");
	if (v && full_message)
		json_object_set_new(v, "message",
				    json_string(git_commit_message(c) ? git_commit_message(c) : ""));
	return v;
}

static bool contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (; *hay; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return true;
	return false;
}

static int walk(json_t **out, git_repository *repo, const char *ref, long long max, const char *query)
{
	git_commit *start;
	int rc = resolve_commit(&start, repo, ref);
	if (rc)
		return rc;
	git_revwalk *w = NULL;
	if (git_revwalk_new(&w, repo) || git_revwalk_sorting(w, GIT_SORT_TIME) ||
	    git_revwalk_push(w, git_commit_id(start))) {
		git_commit_free(start);
		git_revwalk_free(w);
		return git_fail("walking the history");
	}
	git_commit_free(start);
	json_t *list = json_array();
	git_oid oid;
	long long scanned = 0;
	while ((long long)json_array_size(list) < max && scanned < GIT_MAX_SCAN &&
	       git_revwalk_next(&oid, w) == 0) {
		scanned++;
		git_commit *c;
		if (git_commit_lookup(&c, repo, &oid))
			continue;
		if (!query || contains_ci(git_commit_message(c) ? git_commit_message(c) : "", query))
			json_array_append_new(list, commit_json(c, query != NULL));
		git_commit_free(c);
	}
	git_revwalk_free(w);
	*out = json_pack("{s:s, s:o, s:I}", "ref", ref, "commits", list, "scanned", (json_int_t)scanned);
	return *out ? 0 : ag_error_set(AG_ENOMEM, "out of memory");
}

static int show(json_t **out, git_repository *repo, const char *ref, const char *path)
{
	if (!path || !*path)
		return ag_error_set(AG_EINVAL, "show needs a path");
	git_commit *c;
	int rc = resolve_commit(&c, repo, ref);
	if (rc)
		return rc;
	git_tree *tree = NULL;
	git_tree_entry *entry = NULL;
	git_blob *blob = NULL;
	if (git_commit_tree(&tree, c)) {
		rc = git_fail("reading the commit's tree");
	} else if (git_tree_entry_bypath(&entry, tree, path)) {
		rc = ag_error_set(AG_ENOTFOUND, "no file '%.200s' at %.100s", path, ref);
	} else if (git_tree_entry_type(entry) != GIT_OBJECT_BLOB) {
		rc = ag_error_set(AG_EINVAL, "'%.200s' is a directory, not a file", path);
	} else if (git_blob_lookup(&blob, repo, git_tree_entry_id(entry))) {
		rc = git_fail("reading the file");
	} else if (git_blob_is_binary(blob)) {
		rc = ag_error_set(AG_EUNSUPPORTED, "'%.200s' is a binary file", path);
	} else {
		size_t size = (size_t)git_blob_rawsize(blob);
		size_t n = size > GIT_MAX_TEXT ? GIT_MAX_TEXT : size;
		char id[GIT_OID_HEXSZ + 1];
		git_oid_tostr(id, sizeof id, git_commit_id(c));
		json_t *text = json_stringn(git_blob_rawcontent(blob), n);
		if (!text)
			rc = ag_error_set(AG_EUNSUPPORTED, "'%.200s' is not UTF-8 text", path);
		else if (!(*out = json_pack("{s:s, s:s, s:s, s:I, s:b, s:o}", "ref", ref, "commit", id,
					    "path", path, "size", (json_int_t)size, "truncated", n < size,
					    "content", text)))
			rc = ag_error_set(AG_ENOMEM, "out of memory");
	}
	git_blob_free(blob);
	git_tree_entry_free(entry);
	git_tree_free(tree);
	git_commit_free(c);
	return rc;
}

static int diff(json_t **out, git_repository *repo, const char *from, const char *to)
{
	if (!from || !to)
		return ag_error_set(AG_EINVAL, "diff needs both 'from' and 'to'");
	git_commit *a = NULL, *b = NULL;
	int rc = resolve_commit(&a, repo, from);
	if (!rc)
		rc = resolve_commit(&b, repo, to);
	git_tree *ta = NULL, *tb = NULL;
	git_diff *d = NULL;
	git_diff_stats *stats = NULL;
	git_buf buf = {0};
	if (!rc && (git_commit_tree(&ta, a) || git_commit_tree(&tb, b) ||
		    git_diff_tree_to_tree(&d, repo, ta, tb, NULL) || git_diff_get_stats(&stats, d) ||
		    git_diff_to_buf(&buf, d, GIT_DIFF_FORMAT_PATCH)))
		rc = git_fail("computing the diff");
	if (!rc) {
		size_t n = buf.size > GIT_MAX_TEXT ? GIT_MAX_TEXT : buf.size;
		json_t *patch = json_stringn(buf.ptr ? buf.ptr : "", n);
		if (!patch)
			patch = json_string("(the patch is not UTF-8 text)");
		*out = json_pack("{s:s, s:s, s:I, s:I, s:I, s:b, s:o}", "from", from, "to", to,
				 "files_changed", (json_int_t)git_diff_stats_files_changed(stats),
				 "insertions", (json_int_t)git_diff_stats_insertions(stats), "deletions",
				 (json_int_t)git_diff_stats_deletions(stats), "truncated", n < buf.size,
				 "patch", patch);
		if (!*out)
			rc = ag_error_set(AG_ENOMEM, "out of memory");
	}
	git_buf_dispose(&buf);
	git_diff_stats_free(stats);
	git_diff_free(d);
	git_tree_free(ta);
	git_tree_free(tb);
	git_commit_free(a);
	git_commit_free(b);
	return rc;
}

static int git_run(json_t **out, const json_t *args, const json_t *input)
{
	const char *path = json_string_value(json_object_get(input, "path"));
	const char *action = tools_arg_str(args, "action", "log");
	const char *ref = tools_arg_str(args, "ref", "HEAD");
	long long max = tools_arg_int(args, "max_count", 20);
	if (!path)
		return ag_error_set(AG_EINVAL, "no repository path");
	git_libgit2_init();
	/* Configuration outside the repository is not ours to read. */
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_SYSTEM, "");
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_GLOBAL, "");
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_XDG, "");
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_PROGRAMDATA, "");
	git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
	git_repository *repo = NULL;
	if (git_repository_open_ext(&repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL))
		return git_fail("opening the repository");
	int rc;
	if (strcmp(action, "log") == 0)
		rc = walk(out, repo, ref, max, NULL);
	else if (strcmp(action, "search") == 0) {
		const char *q = tools_arg_str(args, "query", NULL);
		rc = q && *q ? walk(out, repo, ref, max, q) : ag_error_set(AG_EINVAL, "search needs a query");
	} else if (strcmp(action, "show") == 0)
		rc = show(out, repo, ref, tools_arg_str(args, "path", NULL));
	else
		rc = diff(out, repo, tools_arg_str(args, "from", NULL), tools_arg_str(args, "to", NULL));
	git_repository_free(repo);
	return rc;
}

const tools_tool tools_builtin_git = {
	.name = "git",
	.description = "Reads an attached git repository: action log (recent commits from ref), show (the "
		       "file at path as of ref), diff (patch between refs from and to) or search (commits "
		       "whose message contains query).",
	.schema = "{\"type\": \"object\", \"properties\": {"
		  "\"repository\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 64}, "
		  "\"action\": {\"type\": \"string\", \"enum\": [\"log\", \"show\", \"diff\", \"search\"]}, "
		  "\"ref\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 256}, "
		  "\"path\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 1024}, "
		  "\"from\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 256}, "
		  "\"to\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 256}, "
		  "\"query\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 256}, "
		  "\"max_count\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 500}}, "
		  "\"required\": [\"repository\", \"action\"], \"additionalProperties\": false}",
	.limits = {.cpu_seconds = 10, .wall_seconds = 15, .memory_bytes = 1u << 30, .output_bytes = 8u << 20},
	.needs = TOOLS_NEED_FILES,
	.prepare = git_prepare,
	.run = git_run,
};
