/*
 * policies: who may do what, what must never reach the model, the logs or the
 * caller, and how untrusted text is kept from steering the agent.
 *
 * A policy is parsed from a line-oriented, INI-like file (policies/README.md)
 * into an immutable object shared by threads through reference counting. The
 * store holds the policy in force; reloading builds a new object and swaps it
 * in only when it is valid, so a broken file never replaces a good one.
 * Callers (the planner, the tools, the REST handlers) ask policies_check_* at
 * each step and get a decision (allow / deny / redact / needs approval) that
 * always names the rule that made it. Regular expressions are PCRE2, compiled
 * once with JIT and bounded by match limits: a pattern that runs away is
 * stopped and turned into a safe decision (deny or flag), never a hang.
 */
#ifndef POLICIES_H
#define POLICIES_H

#include "common/common.h"

/* ------------------------------------------------------------- decisions */

typedef enum {
	POLICIES_ALLOW = 0,
	POLICIES_DENY,
	POLICIES_REDACT,
	POLICIES_NEEDS_APPROVAL,
} policies_action;

/* What a check decided and why. rule is never empty after a check: a rule of the
 * file ("role.analyst.tools", "redact.email", "inject.ignore_previous", ...) or a
 * built-in one ("default.unknown_role", "limit.match", "budget.steps", ...). */
typedef struct policies_decision {
	policies_action action;
	char rule[96];
	char reason[256];
} policies_decision;

const char *policies_action_name(policies_action a); /* "allow", "deny", "redact", "needs_approval" */

/* Who is asking. The caller maps its own principal to this; role is a role name of the policy. */
typedef struct policies_principal {
	const char *tenant; /* may be NULL */
	const char *user;   /* may be NULL */
	const char *role;
} policies_principal;

/* ----------------------------------------------------------- the policy */

typedef struct policies_policy policies_policy;

/* Errors found while validating a policy file, each with its line (0: the file as a whole). */
typedef struct policies_diag_item {
	int line;
	char *message;
} policies_diag_item;

typedef struct policies_diag {
	int count;
	policies_diag_item *items;
} policies_diag;

void policies_diag_free(policies_diag *d);
/* All items as "NAME:LINE: message" lines; the caller frees. */
char *policies_diag_format(const policies_diag *d, const char *name);

/* Parses and validates a policy (text need not be NUL-terminated; name labels
 * messages). On success *out holds a policy with one reference. On failure it
 * returns AG_EINVAL with the first error in ag_error_last() as "name:LINE: ...",
 * and, when diag_out is not NULL, every error found in *diag_out (caller frees). */
int policies_parse(policies_policy **out, policies_diag **diag_out, const char *text, size_t len,
		   const char *name);
/* The same from a file (at most 1 MiB). */
int policies_load_file(policies_policy **out, policies_diag **diag_out, const char *path);
/* The built-in default policy (the text of policies/default.policy). */
int policies_load_default(policies_policy **out);
const char *policies_default_text(void);

/* Reference counting: a policy is freed when its last reference goes. Both accept NULL. */
policies_policy *policies_ref(policies_policy *p);
void policies_release(policies_policy *p);

/* Borrowed views of a loaded policy. */
const char *policies_text(const policies_policy *p, size_t *len); /* the source text */
const char *policies_name(const policies_policy *p);              /* file name or "default" */
const char *policies_sha256(const policies_policy *p);            /* hex of the source text */
int64_t policies_loaded_ms(const policies_policy *p);
/* A JSON summary: roles with tools, collections and budgets; rules with kind and sinks. */
int policies_describe(json_t **out, const policies_policy *p);
bool policies_has_role(const policies_policy *p, const char *role);

/* ---------------------------------------------------------------- store */

/* The policy in force for a daemon: a pointer swapped under a mutex. Readers take a
 * reference (policies_acquire) and keep a consistent policy for as long as they need
 * it, even across a reload; they give it back with policies_release. */
typedef struct policies_store policies_store;

/* Takes over the reference to initial (which must not be NULL). */
int policies_store_new(policies_store **out, policies_policy *initial);
void policies_store_free(policies_store *s);
/* A new reference to the policy in force; never NULL. */
policies_policy *policies_acquire(policies_store *s);
/* Puts p in force (taking over its reference); the old one lives on while referenced. */
void policies_store_swap(policies_store *s, policies_policy *p);
/* Re-reads path (NULL or "" means the built-in default) and swaps it in. On any
 * error the policy in force stays, the error is returned and diag_out (if given)
 * lists every problem with its line. */
int policies_reload(policies_store *s, const char *path, policies_diag **diag_out);

/* Persistence of installed policies (PUT /v1/policies, reloads), one row each. */
int policies_migrate(sqlite3 *db);
/* Records p as installed now, with where it came from ("api", "file", "default"). */
int policies_save(sqlite3 *db, const policies_policy *p, const char *origin);
/* The most recently installed policy; AG_ENOTFOUND when none was recorded. */
int policies_load_latest(sqlite3 *db, policies_policy **out, int64_t *installed_ms);
/* The start-up choice: the newer of the last recorded policy and path (by its
 * modification time); with neither, the built-in default. An invalid file is an error. */
int policies_open(policies_policy **out, sqlite3 *db, const char *path);

/* --------------------------------------------------- checks at each step */

/* Where text goes; redaction rules name the sinks they apply to. */
typedef enum {
	POLICIES_SINK_CONTEXT = 1u << 0, /* model context (prompt, retrieved chunks, tool results) */
	POLICIES_SINK_AUDIT = 1u << 1,   /* the audit log */
	POLICIES_SINK_OUTPUT = 1u << 2,  /* what is returned to the caller */
} policies_sink;

/* The request text before anything else: size limit and the input deny rules. */
int policies_check_input(const policies_policy *p, const policies_principal *who, const char *text,
			 size_t len, policies_decision *out);
/* A draft answer before it is returned: the output deny rules. */
int policies_check_output(const policies_policy *p, const policies_principal *who, const char *text,
			  size_t len, policies_decision *out);
/* May this role read this collection? */
int policies_check_collection(const policies_policy *p, const policies_principal *who, const char *collection,
			      policies_decision *out);

/* What a tool does, as its registry declares it. */
typedef struct policies_tool_props {
	bool writes;  /* changes state outside the run (files, databases, messages) */
	bool network; /* reaches beyond the machine */
} policies_tool_props;

/* What the run has seen so far. */
typedef struct policies_run_context {
	bool untrusted_flagged; /* an untrusted source in the context was flagged by an inject rule */
	const char *flag_rule;  /* that rule's id, named in the decision (may be NULL) */
} policies_run_context;

/* May this role call this tool now? deny when the role lacks the tool; needs_approval
 * when the role's approve list names it, or when the context holds flagged untrusted
 * text and the tool writes or reaches the network (settings untrusted_tool_action may
 * make that a deny); allow otherwise. ctx may be NULL (nothing flagged); props NULL
 * means unknown and counts as writing and reaching the network. */
int policies_check_tool(const policies_policy *p, const policies_principal *who, const char *tool,
			const policies_tool_props *props, const policies_run_context *ctx,
			policies_decision *out);

/* The result of redacting text for one sink. */
typedef struct policies_redaction {
	char *text; /* the redacted text (NUL-terminated); NULL when the decision is deny */
	size_t len;
	int count;  /* how many spans were replaced */
	int nrules; /* distinct rules that fired, ids in rules[] (at most 16 listed) */
	char rules[16][64];
	policies_decision decision; /* allow (nothing found), redact, or deny (a pattern hit its limit) */
} policies_redaction;

void policies_redaction_free(policies_redaction *r); /* frees text; accepts NULL */

/* Replaces every match of the redaction rules that apply to the role and the sink by
 * "[REDACTED:label]"; who NULL: every rule for the sink, whatever its roles (for a record
 * that no one requester reads, such as the audit log). Card numbers must pass the Luhn
 * check, IBANs mod 97, SSNs the issued ranges; other matches are replaced as found. If a
 * pattern exceeds its match limit the text is withheld: decision deny, rule "limit.match",
 * text NULL. */
int policies_redact(const policies_policy *p, const policies_principal *who, policies_sink sink,
		    const char *text, size_t len, policies_redaction *out);

/* --------------------------------------------------- untrusted text */

/* Scans untrusted text (a retrieved chunk, a tool result) with the inject rules.
 * out->action is allow when clean, needs_approval when flagged (out->rule names the
 * rule; a pattern that hits its match limit flags as rule "limit.match"). */
int policies_scan_injection(const policies_policy *p, const char *text, size_t len, policies_decision *out);

/* Escapes, as &lt;, every '<' that would open or close a data block or a special
 * token: <data, </data, <document(s), </document(s), <tool_, </tool_, <think>,
 * </think>, <|...|>. The result cannot end its own block (models/FORMAT.md). */
int policies_neutralise(char **out, size_t *out_len, const char *text, size_t len);
/* Wraps untrusted text as data for the prompt:
 * <data source="SOURCE" trust="untrusted">\n{neutralised text}\n</data>
 * with the source attribute escaped. */
int policies_mark_untrusted(char **out, size_t *out_len, const char *source, const char *text, size_t len);

/* ---------------------------------------------------------------- budgets */

/* A role's limits for one run and its run rate. */
typedef struct policies_budget {
	long long steps;
	long long tokens;
	long long seconds;
	long long tool_calls;
	long long runs_per_minute; /* per user */
} policies_budget;

int policies_role_budget(const policies_policy *p, const char *role, policies_budget *out);
/* The run's limits: the role's, lowered by what the request asked for (values <= 0 in
 * requested mean "no request"). A request never raises a role's limit. */
void policies_budget_clamp(policies_budget *limits, const policies_budget *requested);

/* Tracks one run's use. Exact at the limit: with steps = N the N-th step is allowed and
 * the (N+1)-th denied; tokens may reach the limit exactly, one more is denied. A denied
 * charge is not recorded. Not thread-safe: one run, one tracker. */
typedef struct policies_run_budget {
	policies_budget limits;
	long long steps, tokens, tool_calls;
	int64_t started_ns;
} policies_run_budget;

void policies_run_budget_init(policies_run_budget *b, const policies_budget *limits);
int policies_run_budget_step(policies_run_budget *b, policies_decision *out);
int policies_run_budget_tokens(policies_run_budget *b, long long n, policies_decision *out);
int policies_run_budget_tool_call(policies_run_budget *b, policies_decision *out);
/* Denies once the run has used more than its seconds (now_ns from ag_monotonic_ns). */
int policies_run_budget_time(policies_run_budget *b, int64_t now_ns, policies_decision *out);

/* Runs per minute per user: a sliding window of the last 60 seconds, thread-safe. */
typedef struct policies_ratelimit policies_ratelimit;

int policies_ratelimit_new(policies_ratelimit **out);
void policies_ratelimit_free(policies_ratelimit *rl);
/* Counts a run for (tenant, user) at now_ms if fewer than limit runs started in the
 * 60 s before; otherwise deny with rule "budget.runs_per_minute" and count nothing. */
int policies_ratelimit_check(policies_ratelimit *rl, const policies_principal *who, long long limit,
			     int64_t now_ms, policies_decision *out);

#endif
