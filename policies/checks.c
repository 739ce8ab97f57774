/*
 * The checks the planner, the tools and the handlers call at each step:
 * input and output deny rules, collection and tool permissions, and
 * redaction of text bound for the model, the audit log or the caller. Each
 * returns a decision naming its rule and logs it. A pattern that hits its
 * match limit is never silently skipped: the text it was checking is denied
 * (rule "limit.match"), because letting it through unchecked could leak what
 * the rule exists to stop.
 */
#include "policies/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unknown_role(const policies_principal *who, policies_decision *out, const char *what)
{
	pol_decide(out, POLICIES_DENY, "default.unknown_role", "role '%s' is not defined by the policy",
		   who && who->role ? who->role : "(none)");
	return pol_log_decision(what, who, out);
}

/* Runs the deny rules that apply at `where` (POL_APPLY_*) to text. */
static int run_deny_rules(const policies_policy *p, const policies_principal *who, unsigned where,
			  const char *text, size_t len, policies_decision *out, const char *what)
{
	const char *role = who ? who->role : NULL;
	if (!pol_find_role(p, role))
		return unknown_role(who, out, what);
	pcre2_match_data *md = pcre2_match_data_create(1, p->gctx);
	if (!md)
		return ag_error_set(AG_ENOMEM, "out of memory checking %s", what);
	pol_decide(out, POLICIES_ALLOW, "default.allow", "no deny rule matched");
	for (int i = 0; i < p->nrules; i++) {
		const pol_rule *r = &p->rules[i];
		if (r->kind != POL_DENY || !(r->applies & where) || !pol_rule_applies_to(r, role))
			continue;
		size_t s, e;
		int m = pol_match(p, r, md, text, len, 0, &s, &e);
		if (m == AG_ELIMIT) {
			pol_decide(out, POLICIES_DENY, "limit.match", "rule %s stopped at its match limit",
				   r->id);
			break;
		}
		if (m < 0) {
			pcre2_match_data_free(md);
			return m;
		}
		if (m == 1) {
			pol_decide(out, POLICIES_DENY, r->id, "%s",
				   r->message ? r->message : "refused by policy");
			break;
		}
	}
	pcre2_match_data_free(md);
	return pol_log_decision(what, who, out);
}

int policies_check_input(const policies_policy *p, const policies_principal *who, const char *text,
			 size_t len, policies_decision *out)
{
	if ((long long)len > p->max_input_bytes) {
		pol_decide(out, POLICIES_DENY, "settings.max_input_bytes", "input of %zu bytes exceeds %lld",
			   len, p->max_input_bytes);
		return pol_log_decision("input", who, out);
	}
	return run_deny_rules(p, who, POL_APPLY_INPUT, text, len, out, "input");
}

int policies_check_output(const policies_policy *p, const policies_principal *who, const char *text,
			  size_t len, policies_decision *out)
{
	return run_deny_rules(p, who, POL_APPLY_OUTPUT, text, len, out, "output");
}

int policies_check_collection(const policies_policy *p, const policies_principal *who, const char *collection,
			      policies_decision *out)
{
	const pol_role *r = pol_find_role(p, who ? who->role : NULL);
	if (!r)
		return unknown_role(who, out, "collection");
	char rule[96];
	snprintf(rule, sizeof rule, "role.%s.collections", r->name);
	if (collection && pol_list_has(&r->collections, collection))
		pol_decide(out, POLICIES_ALLOW, rule, "role %s may read collection '%s'", r->name,
			   collection);
	else
		pol_decide(out, POLICIES_DENY, rule, "role %s may not read collection '%s'", r->name,
			   collection ? collection : "");
	return pol_log_decision("collection", who, out);
}

int policies_check_tool(const policies_policy *p, const policies_principal *who, const char *tool,
			const policies_tool_props *props, const policies_run_context *ctx,
			policies_decision *out)
{
	const pol_role *r = pol_find_role(p, who ? who->role : NULL);
	if (!r)
		return unknown_role(who, out, "tool");
	if (!tool)
		tool = "";
	char rule[96];
	snprintf(rule, sizeof rule, "role.%s.tools", r->name);
	if (!pol_list_has(&r->tools, tool)) {
		pol_decide(out, POLICIES_DENY, rule, "role %s may not use tool '%s'", r->name, tool);
		return pol_log_decision("tool", who, out);
	}
	/* A tool that does not say what it does is assumed to do everything. */
	bool risky = !props || props->writes || props->network;
	if (ctx && ctx->untrusted_flagged && risky) {
		/* Flagged untrusted text is in the context: it must not be able to drive a tool with effects.
		 */
		const char *why =
			ctx->flag_rule && *ctx->flag_rule ? ctx->flag_rule : "settings.untrusted_tool_action";
		pol_decide(out, p->untrusted_deny ? POLICIES_DENY : POLICIES_NEEDS_APPROVAL, why,
			   "tool '%s' %s and the context holds untrusted text flagged by %s", tool,
			   !props || props->network ? "may reach the network" : "writes", why);
		return pol_log_decision("tool", who, out);
	}
	if (r->approve.all || pol_list_has(&r->approve, tool)) {
		snprintf(rule, sizeof rule, "role.%s.approve", r->name);
		pol_decide(out, POLICIES_NEEDS_APPROVAL, rule, "role %s needs approval for tool '%s'",
			   r->name, tool);
		return pol_log_decision("tool", who, out);
	}
	pol_decide(out, POLICIES_ALLOW, rule, "role %s may use tool '%s'", r->name, tool);
	return pol_log_decision("tool", who, out);
}

/* ------------------------------------------------------------- redaction */

typedef struct span {
	size_t start, end;
	int rule;
} span;

static int span_cmp(const void *a, const void *b)
{
	const span *x = a, *y = b;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	if (x->end != y->end)
		return x->end > y->end ? -1 : 1; /* the longer match first */
	return x->rule - y->rule;
}

static bool validate(const pol_rule *r, const char *s, size_t n)
{
	switch (r->check) {
	case POL_CHECK_LUHN: return pol_luhn_ok(s, n);
	case POL_CHECK_IBAN: return pol_iban_ok(s, n);
	case POL_CHECK_SSN: return pol_ssn_ok(s, n);
	case POL_CHECK_NONE: break;
	}
	return true;
}

/* Steps past one UTF-8 character (or one stray byte). */
static size_t next_char(const char *t, size_t len, size_t i)
{
	i++;
	while (i < len && ((unsigned char)t[i] & 0xC0) == 0x80)
		i++;
	return i;
}

static int collect_spans(const policies_policy *p, const policies_principal *who, policies_sink sink,
			 const char *text, size_t len, span **out, size_t *nout, int *limit_rule)
{
	span *spans = NULL;
	size_t n = 0, cap = 0;
	pcre2_match_data *md = pcre2_match_data_create(1, p->gctx);
	if (!md)
		return ag_error_set(AG_ENOMEM, "out of memory redacting");
	int rc = 0;
	for (int i = 0; i < p->nrules && !rc; i++) {
		const pol_rule *r = &p->rules[i];
		if (r->kind != POL_REDACT || !(r->applies & (unsigned)sink) ||
		    (who && !pol_rule_applies_to(r, who->role)))
			continue;
		size_t pos = 0;
		while (pos <= len) {
			size_t s, e;
			int m = pol_match(p, r, md, text, len, pos, &s, &e);
			if (m == AG_ELIMIT) {
				*limit_rule = i;
				goto done;
			}
			if (m < 0)
				rc = m;
			if (m <= 0)
				break;
			bool ok = e > s && validate(r, text + s, e - s);
			if (ok) {
				if (n == cap) {
					size_t nc = cap ? cap * 2 : 16;
					span *ns = ag_realloc(spans, nc * sizeof *ns);
					if (!ns) {
						rc = ag_error_set(AG_ENOMEM, "out of memory redacting");
						break;
					}
					spans = ns;
					cap = nc;
				}
				spans[n++] = (span){s, e, i};
			}
			/* A failed check may hide a valid match starting inside it; move one character on. */
			pos = ok ? e : next_char(text, len, s);
		}
	}
done:
	pcre2_match_data_free(md);
	if (rc) {
		ag_free(spans);
		return rc;
	}
	*out = spans;
	*nout = n;
	return 0;
}

void policies_redaction_free(policies_redaction *r)
{
	if (!r)
		return;
	ag_free(r->text);
	r->text = NULL;
}

int policies_redact(const policies_policy *p, const policies_principal *who, policies_sink sink,
		    const char *text, size_t len, policies_redaction *out)
{
	memset(out, 0, sizeof *out);
	if (!text)
		text = "", len = 0;
	span *spans = NULL;
	size_t n = 0;
	int limit_rule = -1;
	int rc = collect_spans(p, who, sink, text, len, &spans, &n, &limit_rule);
	if (rc)
		return rc;
	if (limit_rule >= 0) {
		ag_free(spans);
		pol_decide(&out->decision, POLICIES_DENY, "limit.match",
			   "rule %s stopped at its match limit; the text is withheld",
			   p->rules[limit_rule].id);
		return pol_log_decision("redact", who, &out->decision);
	}
	if (n > 1)
		qsort(spans, n, sizeof *spans, span_cmp);
	ag_buf b = AG_BUF_INIT;
	size_t at = 0;
	rc = ag_buf_reserve(&b, len + 1);
	for (size_t i = 0; i < n && !rc; i++) {
		if (spans[i].start < at)
			continue; /* overlaps a span already replaced */
		const pol_rule *r = &p->rules[spans[i].rule];
		rc = ag_buf_append(&b, text + at, spans[i].start - at);
		if (!rc)
			rc = ag_buf_printf(&b, "[REDACTED:%s]", r->label);
		at = spans[i].end;
		out->count++;
		bool listed = false;
		for (int k = 0; k < out->nrules; k++)
			listed = listed || strcmp(out->rules[k], r->id) == 0;
		if (!listed && out->nrules < 16)
			snprintf(out->rules[out->nrules++], sizeof out->rules[0], "%s", r->id);
	}
	if (!rc)
		rc = ag_buf_append(&b, text + at, len - at);
	ag_free(spans);
	if (rc) {
		ag_buf_free(&b);
		memset(out, 0, sizeof *out);
		return ag_error_set(AG_ENOMEM, "out of memory redacting");
	}
	out->text = ag_buf_detach(&b, &out->len);
	if (out->count)
		pol_decide(&out->decision, POLICIES_REDACT, out->rules[0],
			   "%d span(s) redacted by %d rule(s)", out->count, out->nrules);
	else
		pol_decide(&out->decision, POLICIES_ALLOW, "default.allow", "nothing to redact");
	return pol_log_decision(sink == POLICIES_SINK_CONTEXT ? "redact context"
				: sink == POLICIES_SINK_AUDIT ? "redact audit"
							      : "redact output",
				who, &out->decision);
}
