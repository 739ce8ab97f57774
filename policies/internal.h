/*
 * The insides of a loaded policy, shared by the files of policies/ and by no
 * other module: roles, rules with their compiled PCRE2 patterns, settings.
 * A policy is never changed after policies_parse returns it.
 */
#ifndef POLICIES_INTERNAL_H
#define POLICIES_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdatomic.h>

#include "policies/policies.h"

#define POL_MAX_TEXT   (1u << 20) /* largest policy file */
#define POL_MAX_LINE   4096
#define POL_MAX_ROLES  64
#define POL_MAX_RULES  512
#define POL_MAX_ITEMS  256 /* entries in one list value */
#define POL_MAX_ID     48
#define POL_MAX_ERRORS 50

/* A list value: names, or every name ("*"). */
typedef struct pol_list {
	bool all;
	int n;
	char **items;
} pol_list;

typedef struct pol_role {
	char name[POL_MAX_ID + 1];
	int line;
	pol_list tools, collections, approve;
	policies_budget budget;
} pol_role;

typedef enum { POL_REDACT, POL_DENY, POL_INJECT } pol_kind;
typedef enum { POL_CHECK_NONE, POL_CHECK_LUHN, POL_CHECK_IBAN, POL_CHECK_SSN } pol_check;

/* For deny rules the sinks are where they apply: input and/or output. */
#define POL_APPLY_INPUT  (1u << 8)
#define POL_APPLY_OUTPUT (1u << 9)

typedef struct pol_rule {
	char id[POL_MAX_ID + 16]; /* "redact.email" */
	pol_kind kind;
	int line;                   /* the section header */
	int pattern_line;           /* where pattern = was given */
	int roles_line;             /* where roles = / except_roles = was given (checked at the end) */
	char label[POL_MAX_ID + 1]; /* redaction placeholder type */
	pol_check check;
	unsigned applies; /* POLICIES_SINK_* for redact, POL_APPLY_* for deny */
	pol_list roles;   /* roles it applies to (default: all) */
	pol_list except;  /* roles exempt from it */
	char *message;    /* deny: what the caller is told */
	char *pattern;
	uint32_t flags; /* PCRE2 compile options from the rule */
	pcre2_code *code;
} pol_rule;

struct policies_policy {
	atomic_int refs;
	char *name;
	char *text;
	size_t text_len;
	char sha256[65];
	int64_t loaded_ms;

	/* [settings] */
	long long match_limit;
	long long depth_limit;
	long long heap_limit_kib;
	long long max_input_bytes;
	bool untrusted_deny; /* untrusted_tool_action = deny (else needs_approval) */

	int nroles;
	pol_role *roles;
	int nrules;
	pol_rule *rules;

	pcre2_general_context *gctx;
	pcre2_match_context *mctx; /* read-only once built, so threads share it */
};

void pol_policy_free(policies_policy *p);
void pol_list_free(pol_list *l);
const pol_role *pol_find_role(const policies_policy *p, const char *name);
bool pol_list_has(const pol_list *l, const char *name);
bool pol_rule_applies_to(const pol_rule *r, const char *role);
void pol_decide(policies_decision *out, policies_action action, const char *rule, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Logs a decision (one line, naming the rule) and returns 0. */
int pol_log_decision(const char *what, const policies_principal *who, const policies_decision *d);

/* Finds the next match of r in text from offset start. Returns 1 with the span,
 * 0 when there is none, AG_ELIMIT when the match limit (or a JIT stack, depth or heap
 * limit) stopped the search, another negative code on other errors. */
int pol_match(const policies_policy *p, const pol_rule *r, pcre2_match_data *md, const char *text, size_t len,
	      size_t start, size_t *mstart, size_t *mend);

/* Validators run on a redaction match (digits and letters as matched). */
bool pol_luhn_ok(const char *s, size_t n);
bool pol_iban_ok(const char *s, size_t n);
bool pol_ssn_ok(const char *s, size_t n);

/* PCRE2 allocation through the ag_malloc gate. */
pcre2_general_context *pol_general_context(void);

#endif
