/*
 * tools: the tool registry, the sandbox every call runs in, and the built-in
 * tools (calculator, sql, http_get, git, grep, search_docs).
 *
 * A tool is a table entry: name, description, a JSON schema for its
 * arguments (a small subset of JSON Schema, see tools_schema_validate),
 * limits and what it needs (network, files). tools_call validates the
 * arguments, lets the tool's optional `prepare` hook resolve what the call
 * may touch in the trusted parent (an attached database's path, the caller's
 * readable documents), then runs the tool's `run` function in a forked child
 * locked down with namespaces, rlimits, no-new-privileges, Landlock and a
 * seccomp filter. The child answers with JSON over a pipe; the parent reads
 * it with a size cap and a wall-clock deadline and kills the child's process
 * group when either is exceeded.
 *
 * Settings an administrator manages (attached SQLite databases, git
 * repositories and the hosts http_get may reach) are stored per tenant in the
 * daemon's database (tools_migrate).
 */
#ifndef TOOLS_H
#define TOOLS_H

#include "common/common.h"

/* ----------------------------------------------------------------- tools */

enum {
	TOOLS_NEED_NETWORK = 1u << 0, /* keeps the network namespace; socket/connect allowed */
	TOOLS_NEED_FILES = 1u << 1,   /* reads files granted by prepare (Landlock rules) */
	TOOLS_NEED_THREADS = 1u << 2, /* may start threads (clone with CLONE_THREAD) */
};

typedef struct tools_limits {
	double cpu_seconds;  /* RLIMIT_CPU (rounded up to whole seconds) */
	double wall_seconds; /* the whole call, from fork to the last byte read */
	size_t memory_bytes; /* address space the tool may add to what the child starts with */
	size_t output_bytes; /* largest JSON answer read from the child */
} tools_limits;

/* Who calls, and the connection to read settings and documents with. */
typedef struct tools_env {
	sqlite3 *db; /* the caller's connection (schema from tools_migrate); may be NULL for tools
			that need no settings */
	const char *tenant;
	const char *user;
	const char *role; /* "admin", "analyst", "viewer", "auditor" */
} tools_env;

/* What one call is granted, filled by a tool's prepare hook in the parent. */
typedef struct tools_job tools_job;

/* Grants read access to path (a file or a directory tree) inside the sandbox. */
int tools_job_grant_read(tools_job *job, const char *path);
/* Grants reading and writing an existing file (never creating one); for
 * SQLite's -shm index, which readers of a WAL database write to. */
int tools_job_grant_write_file(tools_job *job, const char *path);
/* Allows TCP connections to port (Landlock ABI 4 and later; ignored before). */
int tools_job_allow_port(tools_job *job, unsigned port);
/* Hands the child a JSON value (the job steals the reference); run sees it as `input`. */
void tools_job_set_input(tools_job *job, json_t *input);

typedef struct tools_tool {
	const char *name;        /* [a-z0-9_]{1,48} */
	const char *description; /* one or two sentences the model reads */
	const char *schema;      /* JSON text of the argument schema (an object schema) */
	tools_limits limits;
	unsigned needs; /* TOOLS_NEED_* */
	/* Optional. Runs in the parent before the fork with validated args: looks up
	 * settings, checks the caller's rights, grants paths/ports and sets input.
	 * Return 0, or an AG_E* code with ag_error_set (the call fails with it). */
	int (*prepare)(tools_job *job, const json_t *args, const tools_env *env);
	/* Runs in the sandboxed child with validated args and prepare's input (or
	 * NULL). Return 0 with *out set to the result, or an AG_E* code with
	 * ag_error_set; the message reaches the caller. May allocate freely: the
	 * child exits right after. */
	int (*run)(json_t **out, const json_t *args, const json_t *input);
} tools_tool;

/* Adds a tool to the registry (the built-in ones are always there). The
 * pointer is borrowed for the life of the process. AG_ECONFLICT for a name in
 * use, AG_EINVAL for a bad name or schema, AG_ELIMIT past 64 extra tools. */
int tools_register(const tools_tool *tool);
/* A registered tool by name, or NULL. */
const tools_tool *tools_find(const char *name);
/* The registered tools in registration order: tools_count() of them. */
size_t tools_count(void);
const tools_tool *tools_at(size_t i);
/* {"name", "description", "parameters": schema, "limits": {...}, "needs": {...}} */
int tools_describe(json_t **out, const tools_tool *tool);

/* What a call measured and which sandbox layers were in force. */
typedef struct tools_call_info {
	double wall_ms;
	int exit_status;     /* the child's exit code, or -1 */
	int signal;          /* the signal that ended the child, or 0 */
	unsigned namespaces; /* CLONE_NEW* flags applied */
	int landlock_abi;    /* 0 when Landlock was not applied */
	bool seccomp;        /* the filter was loaded */
	size_t output_bytes; /* bytes the child wrote */
} tools_call_info;

/* Runs a tool: validates args (AG_EINVAL with a message naming the field),
 * prepares, runs sandboxed. On success *out is the tool's result (decref it).
 * Errors: AG_ENOTFOUND (no such tool), AG_EINVAL, AG_EDENIED (the sandbox
 * stopped a forbidden action, or prepare refused), AG_ETIMEOUT (wall or CPU
 * time), AG_ELIMIT (output or memory), or the tool's own error. info may be NULL. */
int tools_call(json_t **out, tools_call_info *info, const tools_env *env, const char *name,
	       const json_t *args);

/* --------------------------------------------------------------- sandbox */

typedef struct tools_sandbox_support {
	bool user_ns; /* unshare(CLONE_NEWUSER) works here */
	bool net_ns, mount_ns, pid_ns;
	int landlock_abi; /* 0: unsupported */
	bool seccomp;
} tools_sandbox_support;

/* What this kernel allows (probed once in a throwaway child, then cached). */
const tools_sandbox_support *tools_sandbox_probe(void);

/* ---------------------------------------------------------------- schema */

/* Validates value against schema (both JSON). Supported keywords: type
 * (object, string, integer, number, boolean, array), properties, required,
 * additionalProperties (false), enum, minimum, maximum, minLength,
 * maxLength, items, maxItems, description. AG_EINVAL naming the path of the
 * first problem ("arguments.query: expected a string"). */
int tools_schema_validate(const json_t *schema, const json_t *value);
/* Checks that schema itself uses only the supported subset correctly. */
int tools_schema_check(const json_t *schema);

/* ------------------------------------------------------------ calculator */

/* Evaluates an arithmetic expression exactly (see tools/calc.c for the
 * grammar). precision: significant digits for inexact division and sqrt
 * (1..200). *out is the decimal text (ag_free); *exact says whether the
 * result is exact. AG_EINVAL for a syntax error (with the column), AG_ELIMIT
 * past input, depth or digit limits, AG_EINVAL for division by zero. */
int tools_calc_eval(char **out, bool *exact, const char *expr, size_t len, int precision);

/* -------------------------------------------------------------- settings */

/* Creates or upgrades the module's tables (module "tools"). */
int tools_migrate(sqlite3 *db);

/* The tenant's settings as {"databases": [{"name", "path"}], "repositories":
 * [{"name", "path"}], "allowed_hosts": ["host" | "host:port"]}. */
int tools_settings_get(json_t **out, sqlite3 *db, const char *tenant);
/* Replaces the tenant's settings (the same shape; a missing key leaves that
 * list as it is) in one transaction. Paths must be absolute and exist
 * (databases: regular files; repositories: directories); AG_EINVAL otherwise. */
int tools_settings_put(sqlite3 *db, const char *tenant, const json_t *settings);
/* The path of an attached database or repository (kind "database" or
 * "repository"); AG_ENOTFOUND when not attached. */
int tools_settings_lookup(char **out, sqlite3 *db, const char *tenant, const char *kind, const char *name);
/* Whether host (and port) is on the tenant's allow list: 0 if allowed, AG_EDENIED otherwise. */
int tools_settings_host_allowed(sqlite3 *db, const char *tenant, const char *host, unsigned port);

#endif
