/*
 * The tool registry and the call path: look the tool up, validate the
 * arguments against its schema, let its prepare hook grant what the call may
 * touch (in the trusted parent), then run it in the sandbox. Built-in tools
 * come from a static table; tools_register adds more (tests add hostile
 * ones). Registration is rare and guarded by a mutex; lookups copy nothing.
 */
#include "tools/tools_int.h"

#include <ctype.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

#define MAX_EXTRA 64

static const tools_tool *const builtin[] = {
	&tools_builtin_calculator, &tools_builtin_sql,  &tools_builtin_http_get,
	&tools_builtin_git,        &tools_builtin_grep, &tools_builtin_search_docs,
};
#define NBUILTIN (sizeof builtin / sizeof builtin[0])

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static const tools_tool *extra[MAX_EXTRA];
static size_t nextra;

static bool valid_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > 48)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)name[i]) || isdigit((unsigned char)name[i]) || name[i] == '_'))
			return false;
	return true;
}

size_t tools_count(void)
{
	pthread_mutex_lock(&reg_lock);
	size_t n = NBUILTIN + nextra;
	pthread_mutex_unlock(&reg_lock);
	return n;
}

const tools_tool *tools_at(size_t i)
{
	if (i < NBUILTIN)
		return builtin[i];
	pthread_mutex_lock(&reg_lock);
	const tools_tool *t = i - NBUILTIN < nextra ? extra[i - NBUILTIN] : NULL;
	pthread_mutex_unlock(&reg_lock);
	return t;
}

const tools_tool *tools_find(const char *name)
{
	if (!name)
		return NULL;
	size_t n = tools_count();
	for (size_t i = 0; i < n; i++) {
		const tools_tool *t = tools_at(i);
		if (t && strcmp(t->name, name) == 0)
			return t;
	}
	return NULL;
}

int tools_register(const tools_tool *tool)
{
	if (!tool || !valid_name(tool->name) || !tool->run || !tool->description || !tool->schema)
		return ag_error_set(AG_EINVAL,
				    "a tool needs a name ([a-z0-9_]{1,48}), description, schema and run");
	if (!(tool->limits.wall_seconds > 0) || !(tool->limits.cpu_seconds > 0) ||
	    tool->limits.memory_bytes == 0 || tool->limits.output_bytes == 0)
		return ag_error_set(AG_EINVAL, "tool '%s': every limit must be positive", tool->name);
	json_t *schema;
	int rc = ag_json_parse(&schema, tool->schema, strlen(tool->schema));
	if (rc)
		return ag_error_wrap(rc, "tool '%s' schema", tool->name);
	rc = tools_schema_check(schema);
	json_decref(schema);
	if (rc)
		return ag_error_wrap(rc, "tool '%s'", tool->name);
	if (tools_find(tool->name))
		return ag_error_set(AG_ECONFLICT, "a tool named '%s' is already registered", tool->name);
	pthread_mutex_lock(&reg_lock);
	if (nextra == MAX_EXTRA) {
		pthread_mutex_unlock(&reg_lock);
		return ag_error_set(AG_ELIMIT, "at most %d extra tools", MAX_EXTRA);
	}
	extra[nextra++] = tool;
	pthread_mutex_unlock(&reg_lock);
	return 0;
}

int tools_describe(json_t **out, const tools_tool *t)
{
	json_t *schema;
	int rc = ag_json_parse(&schema, t->schema, strlen(t->schema));
	if (rc)
		return ag_error_wrap(rc, "tool '%s' schema", t->name);
	json_t *v = json_pack(
		"{s:s, s:s, s:o, s:{s:f, s:f, s:I, s:I}, s:{s:b, s:b}}", "name", t->name, "description",
		t->description, "parameters", schema, "limits", "cpu_seconds", t->limits.cpu_seconds,
		"wall_seconds", t->limits.wall_seconds, "memory_bytes", (json_int_t)t->limits.memory_bytes,
		"output_bytes", (json_int_t)t->limits.output_bytes, "needs", "network",
		(t->needs & TOOLS_NEED_NETWORK) != 0, "files", (t->needs & TOOLS_NEED_FILES) != 0);
	if (!v)
		return ag_error_set(AG_ENOMEM, "out of memory describing tool '%s'", t->name);
	*out = v;
	return 0;
}

/* ----------------------------------------------------------------- jobs */

int tools_job_grant_read(tools_job *job, const char *path)
{
	if (job->nread == TOOLS_MAX_GRANTS)
		return ag_error_set(AG_ELIMIT, "at most %d granted paths", TOOLS_MAX_GRANTS);
	if (!(job->read_paths[job->nread] = ag_strdup(path)))
		return ag_error_set(AG_ENOMEM, "out of memory granting a path");
	job->nread++;
	return 0;
}

int tools_job_grant_write_file(tools_job *job, const char *path)
{
	int rc = tools_job_grant_read(job, path);
	if (!rc)
		job->writable[job->nread - 1] = true;
	return rc;
}

int tools_job_allow_port(tools_job *job, unsigned port)
{
	if (port == 0 || port > 65535)
		return ag_error_set(AG_EINVAL, "bad port %u", port);
	for (int i = 0; i < job->nports; i++)
		if (job->ports[i] == port)
			return 0;
	if (job->nports == TOOLS_MAX_PORTS)
		return ag_error_set(AG_ELIMIT, "at most %d allowed ports", TOOLS_MAX_PORTS);
	job->ports[job->nports++] = port;
	return 0;
}

void tools_job_set_input(tools_job *job, json_t *input)
{
	json_decref(job->input);
	job->input = input;
}

void tools_job_release(tools_job *job)
{
	for (int i = 0; i < job->nread; i++)
		ag_free(job->read_paths[i]);
	json_decref(job->input);
	memset(job, 0, sizeof *job);
}

/* ----------------------------------------------------------------- calls */

int tools_call(json_t **out, tools_call_info *info, const tools_env *env, const char *name,
	       const json_t *args)
{
	tools_call_info scratch;
	if (!info)
		info = &scratch;
	memset(info, 0, sizeof *info);
	info->exit_status = -1;
	const tools_tool *t = tools_find(name);
	if (!t)
		return ag_error_set(AG_ENOTFOUND, "no tool named '%s'", name ? name : "");
	if (!json_is_object(args))
		return ag_error_set(AG_EINVAL, "tool '%s': arguments must be a JSON object", t->name);
	json_t *schema;
	int rc = ag_json_parse(&schema, t->schema, strlen(t->schema));
	if (rc)
		return ag_error_wrap(rc, "tool '%s' schema", t->name);
	rc = tools_schema_validate(schema, args);
	json_decref(schema);
	if (rc)
		return ag_error_wrap(rc, "tool '%s'", t->name);

	tools_job job;
	memset(&job, 0, sizeof job);
	if (t->prepare && (rc = t->prepare(&job, args, env))) {
		tools_job_release(&job);
		return ag_error_wrap(rc, "tool '%s'", t->name);
	}
	rc = tools_sandbox_run(out, info, t, args, &job);
	tools_job_release(&job);
	if (rc)
		return ag_error_wrap(rc, "tool '%s'", t->name);
	return 0;
}

/* -------------------------------------------------------------- helpers */

const char *tools_arg_str(const json_t *args, const char *key, const char *def)
{
	const json_t *v = json_object_get(args, key);
	return json_is_string(v) ? json_string_value(v) : def;
}

long long tools_arg_int(const json_t *args, const char *key, long long def)
{
	const json_t *v = json_object_get(args, key);
	if (json_is_integer(v))
		return (long long)json_integer_value(v);
	if (json_is_real(v))
		return (long long)json_real_value(v);
	return def;
}

bool tools_arg_bool(const json_t *args, const char *key, bool def)
{
	const json_t *v = json_object_get(args, key);
	return json_is_boolean(v) ? json_is_true(v) : def;
}

bool tools_host_listed(const json_t *list, const char *host, unsigned port, unsigned default_port)
{
	size_t i;
	const json_t *e;
	size_t hlen = strlen(host);
	json_array_foreach(list, i, e)
	{
		const char *s = json_string_value(e);
		if (!s)
			continue;
		/* "[::1]:8080" and "host:8080" carry a port after the last ':' outside brackets. */
		const char *colon = strrchr(s, ':');
		const char *bracket = strrchr(s, ']');
		size_t name_len = strlen(s);
		unsigned want = default_port;
		if (colon && (!bracket || colon > bracket) && (s[0] == '[' || strchr(s, ':') == colon)) {
			long long p;
			if (ag_parse_long(colon + 1, 1, 65535, &p))
				continue;
			want = (unsigned)p;
			name_len = (size_t)(colon - s);
		}
		const char *name = s;
		if (name_len >= 2 && name[0] == '[' && name[name_len - 1] == ']') {
			name++;
			name_len -= 2;
		}
		if (name_len == hlen && strncasecmp(name, host, hlen) == 0 && want == port)
			return true;
	}
	return false;
}
