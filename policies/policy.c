/*
 * The loaded policy object: reference counting, lookups, the JSON summary,
 * decisions and their log line, and the one place PCRE2 matching happens
 * (with the policy's match limits), plus the validators that make a match
 * count as a card number, an IBAN or a social security number.
 */
#include "policies/internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void *gate_malloc(PCRE2_SIZE n, void *data)
{
	(void)data;
	return ag_malloc(n);
}

static void gate_free(void *ptr, void *data)
{
	(void)data;
	ag_free(ptr);
}

pcre2_general_context *pol_general_context(void)
{
	/* PCRE2 allocates through a context made with malloc, then everything through the gate. */
	return pcre2_general_context_create(gate_malloc, gate_free, NULL);
}

void pol_policy_free(policies_policy *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->nroles; i++) {
		pol_list_free(&p->roles[i].tools);
		pol_list_free(&p->roles[i].collections);
		pol_list_free(&p->roles[i].approve);
	}
	ag_free(p->roles);
	for (int i = 0; i < p->nrules; i++) {
		pol_rule *r = &p->rules[i];
		pol_list_free(&r->roles);
		pol_list_free(&r->except);
		ag_free(r->message);
		ag_free(r->pattern);
		pcre2_code_free(r->code);
	}
	ag_free(p->rules);
	pcre2_match_context_free(p->mctx);
	pcre2_general_context_free(p->gctx);
	ag_free(p->name);
	ag_free(p->text);
	ag_free(p);
}

policies_policy *policies_ref(policies_policy *p)
{
	if (p)
		atomic_fetch_add(&p->refs, 1);
	return p;
}

void policies_release(policies_policy *p)
{
	if (p && atomic_fetch_sub(&p->refs, 1) == 1)
		pol_policy_free(p);
}

const char *policies_text(const policies_policy *p, size_t *len)
{
	if (len)
		*len = p->text_len;
	return p->text;
}

const char *policies_name(const policies_policy *p) { return p->name; }
const char *policies_sha256(const policies_policy *p) { return p->sha256; }
int64_t policies_loaded_ms(const policies_policy *p) { return p->loaded_ms; }

const pol_role *pol_find_role(const policies_policy *p, const char *name)
{
	if (!name)
		return NULL;
	for (int i = 0; i < p->nroles; i++)
		if (strcmp(p->roles[i].name, name) == 0)
			return &p->roles[i];
	return NULL;
}

bool policies_has_role(const policies_policy *p, const char *role) { return pol_find_role(p, role) != NULL; }

bool pol_list_has(const pol_list *l, const char *name)
{
	if (l->all)
		return true;
	for (int i = 0; i < l->n; i++)
		if (strcmp(l->items[i], name) == 0)
			return true;
	return false;
}

bool pol_rule_applies_to(const pol_rule *r, const char *role)
{
	if (!role)
		return r->roles.all && r->except.n == 0;
	return pol_list_has(&r->roles, role) && !(r->except.n && pol_list_has(&r->except, role));
}

const char *policies_action_name(policies_action a)
{
	switch (a) {
	case POLICIES_ALLOW: return "allow";
	case POLICIES_DENY: return "deny";
	case POLICIES_REDACT: return "redact";
	case POLICIES_NEEDS_APPROVAL: return "needs_approval";
	}
	return "unknown";
}

void pol_decide(policies_decision *out, policies_action action, const char *rule, const char *fmt, ...)
{
	out->action = action;
	snprintf(out->rule, sizeof out->rule, "%s", rule);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof out->reason, fmt, ap);
	va_end(ap);
}

int pol_log_decision(const char *what, const policies_principal *who, const policies_decision *d)
{
	/* Allows are routine; anything else is worth an operator's eye. */
	ag_log(d->action == POLICIES_ALLOW ? AG_LOG_DEBUG : AG_LOG_INFO,
	       "policy: %s -> %s (rule %s) role=%s user=%s: %s", what, policies_action_name(d->action),
	       d->rule, who && who->role ? who->role : "-", who && who->user ? who->user : "-", d->reason);
	return 0;
}

static json_t *list_json(const pol_list *l)
{
	json_t *a = json_array();
	if (!a)
		return NULL;
	if (l->all)
		json_array_append_new(a, json_string("*"));
	for (int i = 0; i < l->n; i++)
		json_array_append_new(a, json_string(l->items[i]));
	return a;
}

int policies_describe(json_t **out, const policies_policy *p)
{
	json_t *roles = json_array(), *rules = json_array();
	json_t *o =
		json_pack("{s:s, s:s, s:I, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:s}}", "name", p->name, "sha256",
			  p->sha256, "rules_count", (json_int_t)p->nrules, "roles", roles, "rules", rules,
			  "settings", "match_limit", (json_int_t)p->match_limit, "depth_limit",
			  (json_int_t)p->depth_limit, "heap_limit_kib", (json_int_t)p->heap_limit_kib,
			  "max_input_bytes", (json_int_t)p->max_input_bytes, "untrusted_tool_action",
			  p->untrusted_deny ? "deny" : "needs_approval");
	if (!o)
		return ag_error_set(AG_ENOMEM, "out of memory describing the policy");
	for (int i = 0; i < p->nroles; i++) {
		const pol_role *r = &p->roles[i];
		json_t *j = json_pack("{s:s, s:o, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I}}", "name", r->name,
				      "tools", list_json(&r->tools), "collections",
				      list_json(&r->collections), "approve", list_json(&r->approve), "budget",
				      "steps", (json_int_t)r->budget.steps, "tokens",
				      (json_int_t)r->budget.tokens, "seconds", (json_int_t)r->budget.seconds,
				      "tool_calls", (json_int_t)r->budget.tool_calls, "runs_per_minute",
				      (json_int_t)r->budget.runs_per_minute);
		if (!j || json_array_append_new(roles, j)) {
			json_decref(o);
			return ag_error_set(AG_ENOMEM, "out of memory describing the policy");
		}
	}
	static const char *const kinds[] = {"redact", "deny", "inject"};
	for (int i = 0; i < p->nrules; i++) {
		const pol_rule *r = &p->rules[i];
		json_t *applies = json_array();
		if (r->applies & POLICIES_SINK_CONTEXT)
			json_array_append_new(applies, json_string("context"));
		if (r->applies & POLICIES_SINK_AUDIT)
			json_array_append_new(applies, json_string("audit"));
		if (r->applies & POLICIES_SINK_OUTPUT)
			json_array_append_new(applies, json_string("output"));
		if (r->applies & POL_APPLY_INPUT)
			json_array_append_new(applies, json_string("input"));
		if (r->applies & POL_APPLY_OUTPUT)
			json_array_append_new(applies, json_string("output"));
		json_t *j = json_pack("{s:s, s:s, s:I, s:o, s:o, s:o}", "id", r->id, "kind", kinds[r->kind],
				      "line", (json_int_t)r->line, "applies", applies, "roles",
				      list_json(&r->roles), "except_roles", list_json(&r->except));
		if (!j || json_array_append_new(rules, j)) {
			json_decref(o);
			return ag_error_set(AG_ENOMEM, "out of memory describing the policy");
		}
	}
	*out = o;
	return 0;
}

int pol_match(const policies_policy *p, const pol_rule *r, pcre2_match_data *md, const char *text, size_t len,
	      size_t start, size_t *mstart, size_t *mend)
{
	if (!text)
		text = "", len = 0;
	int rc = pcre2_match(r->code, (PCRE2_SPTR)text, len, start, 0, md, p->mctx);
	if (rc == PCRE2_ERROR_NOMATCH)
		return 0;
	if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT ||
	    rc == PCRE2_ERROR_JIT_STACKLIMIT)
		return ag_error_set(AG_ELIMIT, "rule %s stopped at its match limit (line %d)", r->id,
				    r->pattern_line);
	if (rc == PCRE2_ERROR_NOMEMORY)
		return ag_error_set(AG_ENOMEM, "out of memory matching rule %s", r->id);
	if (rc < 0) {
		PCRE2_UCHAR msg[160];
		if (pcre2_get_error_message(rc, msg, sizeof msg) < 0)
			snprintf((char *)msg, sizeof msg, "error %d", rc);
		return ag_error_set(AG_ERR, "rule %s: %s", r->id, (const char *)msg);
	}
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
	*mstart = ov[0];
	*mend = ov[1];
	return 1;
}

/* ------------------------------------------------------------ validators */

bool pol_luhn_ok(const char *s, size_t n)
{
	int digits = 0, sum = 0;
	for (size_t i = n; i-- > 0;) {
		char c = s[i];
		if (c == ' ' || c == '-')
			continue;
		if (c < '0' || c > '9')
			return false;
		int d = c - '0';
		if (digits % 2 == 1) {
			d *= 2;
			if (d > 9)
				d -= 9;
		}
		sum += d;
		digits++;
	}
	return digits >= 13 && digits <= 19 && sum % 10 == 0;
}

bool pol_iban_ok(const char *s, size_t n)
{
	char c[40];
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == ' ')
			continue;
		if (!isalnum((unsigned char)s[i]) || k >= sizeof c)
			return false;
		c[k++] = (char)toupper((unsigned char)s[i]);
	}
	if (k < 15 || k > 34 || !isalpha((unsigned char)c[0]) || !isalpha((unsigned char)c[1]) ||
	    !isdigit((unsigned char)c[2]) || !isdigit((unsigned char)c[3]))
		return false;
	/* ISO 13616: move the first four characters to the end, letters become 10..35, mod 97 == 1. */
	unsigned rem = 0;
	for (size_t i = 0; i < k; i++) {
		char ch = c[(i + 4) % k];
		if (isdigit((unsigned char)ch))
			rem = (rem * 10 + (unsigned)(ch - '0')) % 97;
		else
			rem = (rem * 100 + (unsigned)(ch - 'A' + 10)) % 97;
	}
	return rem == 1;
}

bool pol_ssn_ok(const char *s, size_t n)
{
	/* AAA-GG-SSSS; never issued: area 000, 666, 900-999; group 00; serial 0000. */
	int d[9], k = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '-' || s[i] == ' ')
			continue;
		if (s[i] < '0' || s[i] > '9' || k >= 9)
			return false;
		d[k++] = s[i] - '0';
	}
	if (k != 9)
		return false;
	int area = d[0] * 100 + d[1] * 10 + d[2], group = d[3] * 10 + d[4];
	int serial = d[5] * 1000 + d[6] * 100 + d[7] * 10 + d[8];
	return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
}
