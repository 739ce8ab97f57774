/*
 * tools internals shared by the files of this module (no other module
 * includes this): the job a call is granted, the sandbox entry point, the
 * built-in tool table entries and small helpers the tools share.
 */
#ifndef TOOLS_INT_H
#define TOOLS_INT_H

#include "tools/tools.h"

#define TOOLS_MAX_GRANTS 16
#define TOOLS_MAX_PORTS  16

struct tools_job {
	char *read_paths[TOOLS_MAX_GRANTS];
	bool writable[TOOLS_MAX_GRANTS]; /* read_paths[i] may also be written (an existing file) */
	int nread;
	unsigned ports[TOOLS_MAX_PORTS];
	int nports;
	json_t *input;
};

void tools_job_release(tools_job *job);

/* Runs tool->run(args, job->input) in the sandbox; *out is the result. */
int tools_sandbox_run(json_t **out, tools_call_info *info, const tools_tool *tool, const json_t *args,
		      const tools_job *job);

/* Built-in tools, one per tool_*.c file. */
extern const tools_tool tools_builtin_calculator;
extern const tools_tool tools_builtin_sql;
extern const tools_tool tools_builtin_http_get;
extern const tools_tool tools_builtin_git;
extern const tools_tool tools_builtin_grep;
extern const tools_tool tools_builtin_search_docs;

/* Whether host:port matches an allow list ["host", "host:port", ...]: an
 * entry without a port allows the scheme's default port only (80, 443). */
bool tools_host_listed(const json_t *list, const char *host, unsigned port, unsigned default_port);

/* A string/integer/bool argument with a default (arguments were validated). */
const char *tools_arg_str(const json_t *args, const char *key, const char *def);
long long tools_arg_int(const json_t *args, const char *key, long long def);
bool tools_arg_bool(const json_t *args, const char *key, bool def);

#endif
