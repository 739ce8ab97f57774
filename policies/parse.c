/*
 * The policy file parser: INI-like sections of key = value lines, read one
 * line at a time so every error names its line. It checks everything it can
 * (known sections and keys, duplicates, numbers in range, role names that
 * exist, patterns that compile) and collects up to POL_MAX_ERRORS problems, so
 * an operator fixes a file in one pass. Nothing of a file with any error is
 * ever used. The format is documented in policies/README.md.
 */
#include "policies/internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef enum { SEC_NONE, SEC_SETTINGS, SEC_ROLE, SEC_RULE } sec_type;

typedef struct parser {
	policies_policy *p;
	policies_diag *diag;
	bool oom;
	sec_type sec;
	int cur;       /* index of the current role or rule */
	unsigned seen; /* keys given in the current section (bit per key) */
	bool seen_settings;
	bool refused; /* the last section header was refused: skip its keys quietly */
} parser;

static void diag_add(parser *ps, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void diag_add(parser *ps, int line, const char *fmt, ...)
{
	policies_diag *d = ps->diag;
	if (d->count >= POL_MAX_ERRORS)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	policies_diag_item *items = ag_realloc(d->items, (size_t)(d->count + 1) * sizeof *items);
	char *m = ag_strdup(msg);
	if (!items || !m) {
		if (items)
			d->items = items;
		ag_free(m);
		ps->oom = true;
		return;
	}
	d->items = items;
	d->items[d->count].line = line;
	d->items[d->count].message = m;
	d->count++;
}

void policies_diag_free(policies_diag *d)
{
	if (!d)
		return;
	for (int i = 0; i < d->count; i++)
		ag_free(d->items[i].message);
	ag_free(d->items);
	ag_free(d);
}

char *policies_diag_format(const policies_diag *d, const char *name)
{
	ag_buf b = AG_BUF_INIT;
	int rc = ag_buf_puts(&b, "");
	for (int i = 0; d && i < d->count && !rc; i++)
		rc = ag_buf_printf(&b, "%s:%d: %s\n", name ? name : "policy", d->items[i].line,
				   d->items[i].message);
	if (rc) {
		ag_buf_free(&b);
		return NULL;
	}
	return ag_buf_detach(&b, NULL);
}

/* ------------------------------------------------------------ lexing */

static bool valid_id(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > POL_MAX_ID)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

/* A list item is a name: printable, no spaces, commas or quotes, at most 128 bytes. */
static bool valid_item(const char *s, size_t n)
{
	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c == ',' || c == '"' || c == '\'' || c == 0x7f)
			return false;
	}
	return true;
}

void pol_list_free(pol_list *l)
{
	for (int i = 0; i < l->n; i++)
		ag_free(l->items[i]);
	ag_free(l->items);
	memset(l, 0, sizeof *l);
}

/* Policies are UTF-8 text: patterns are compiled as UTF-8 and the text is shown back as JSON. */
static bool valid_utf8(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t k;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			k = 1, cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			k = 2, cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			k = 3, cp = c & 0x07;
		} else {
			return false;
		}
		for (size_t j = 1; j <= k; j++) {
			if (i + j >= n || (s[i + j] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3F);
		}
		if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) ||
		    (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += k + 1;
	}
	return true;
}

static void parse_list(parser *ps, int line, const char *key, const char *v, pol_list *out)
{
	pol_list_free(out);
	const char *s = v;
	for (;;) {
		const char *e = strchr(s, ',');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		const char *a = s;
		while (n && isspace((unsigned char)*a))
			a++, n--;
		while (n && isspace((unsigned char)a[n - 1]))
			n--;
		if (n == 1 && a[0] == '*') {
			out->all = true;
		} else if (!valid_item(a, n)) {
			diag_add(ps, line, "%s: '%.*s' is not a valid name (empty, too long or with spaces)",
				 key, (int)(n > 60 ? 60 : n), a);
			pol_list_free(out);
			return;
		} else if (out->n >= POL_MAX_ITEMS) {
			diag_add(ps, line, "%s: more than %d entries", key, POL_MAX_ITEMS);
			pol_list_free(out);
			return;
		} else {
			char **items = ag_realloc(out->items, (size_t)(out->n + 1) * sizeof *items);
			char *it = ag_strndup(a, n);
			if (!items || !it) {
				if (items)
					out->items = items;
				ag_free(it);
				ps->oom = true;
				return;
			}
			out->items = items;
			out->items[out->n++] = it;
		}
		if (!e)
			break;
		s = e + 1;
	}
	if (out->all && out->n) {
		diag_add(ps, line, "%s: '*' means every name and cannot be combined with names", key);
		pol_list_free(out);
	}
}

static bool parse_number(parser *ps, int line, const char *key, const char *v, long long min, long long max,
			 long long *out)
{
	if (ag_parse_long(v, min, max, out)) {
		diag_add(ps, line, "%s: '%.40s' is not a whole number from %lld to %lld", key, v, min, max);
		return false;
	}
	return true;
}

/* ----------------------------------------------------------- sections */

static const char *const settings_keys[] = {"match_limit",     "depth_limit",           "heap_limit_kib",
					    "max_input_bytes", "untrusted_tool_action", NULL};
static const char *const role_keys[] = {"tools",
					"collections",
					"approve",
					"budget.steps",
					"budget.tokens",
					"budget.seconds",
					"budget.tool_calls",
					"budget.runs_per_minute",
					"description",
					NULL};
static const char *const rule_keys[] = {"pattern", "flags",        "label",   "check",       "applies",
					"roles",   "except_roles", "message", "description", NULL};

static int key_index(const char *const *keys, const char *key)
{
	for (int i = 0; keys[i]; i++)
		if (strcmp(keys[i], key) == 0)
			return i;
	return -1;
}

static void settings_key(parser *ps, int line, int k, const char *key, const char *v)
{
	policies_policy *p = ps->p;
	switch (k) {
	case 0: parse_number(ps, line, key, v, 1000, 1000000000LL, &p->match_limit); break;
	case 1: parse_number(ps, line, key, v, 10, 10000000LL, &p->depth_limit); break;
	case 2: parse_number(ps, line, key, v, 64, 4194304LL, &p->heap_limit_kib); break;
	case 3: parse_number(ps, line, key, v, 1, 1LL << 30, &p->max_input_bytes); break;
	case 4:
		if (strcmp(v, "deny") == 0)
			p->untrusted_deny = true;
		else if (strcmp(v, "needs_approval") == 0)
			p->untrusted_deny = false;
		else
			diag_add(ps, line, "%s: expected 'needs_approval' or 'deny', not '%.40s'", key, v);
		break;
	}
}

static void role_key(parser *ps, int line, int k, const char *key, const char *v)
{
	pol_role *r = &ps->p->roles[ps->cur];
	const long long big = 1000000000LL;
	switch (k) {
	case 0: parse_list(ps, line, key, v, &r->tools); break;
	case 1: parse_list(ps, line, key, v, &r->collections); break;
	case 2: parse_list(ps, line, key, v, &r->approve); break;
	case 3: parse_number(ps, line, key, v, 0, big, &r->budget.steps); break;
	case 4: parse_number(ps, line, key, v, 0, big, &r->budget.tokens); break;
	case 5: parse_number(ps, line, key, v, 0, big, &r->budget.seconds); break;
	case 6: parse_number(ps, line, key, v, 0, big, &r->budget.tool_calls); break;
	case 7: parse_number(ps, line, key, v, 0, big, &r->budget.runs_per_minute); break;
	case 8: break; /* description: for people */
	}
}

static unsigned parse_applies(parser *ps, int line, pol_kind kind, const char *v)
{
	pol_list l = {0};
	parse_list(ps, line, "applies", v, &l);
	unsigned m = 0;
	if (l.all)
		m = kind == POL_REDACT ? (POLICIES_SINK_CONTEXT | POLICIES_SINK_AUDIT | POLICIES_SINK_OUTPUT)
				       : (POL_APPLY_INPUT | POL_APPLY_OUTPUT);
	for (int i = 0; i < l.n; i++) {
		const char *s = l.items[i];
		if (kind == POL_REDACT && strcmp(s, "context") == 0)
			m |= POLICIES_SINK_CONTEXT;
		else if (kind == POL_REDACT && strcmp(s, "audit") == 0)
			m |= POLICIES_SINK_AUDIT;
		else if (kind == POL_REDACT && strcmp(s, "output") == 0)
			m |= POLICIES_SINK_OUTPUT;
		else if (kind == POL_DENY && strcmp(s, "input") == 0)
			m |= POL_APPLY_INPUT;
		else if (kind == POL_DENY && strcmp(s, "output") == 0)
			m |= POL_APPLY_OUTPUT;
		else
			diag_add(ps, line, "applies: '%s' is not a place this rule can apply (%s)", s,
				 kind == POL_REDACT ? "context, audit, output" : "input, output");
	}
	pol_list_free(&l);
	return m;
}

static void rule_key(parser *ps, int line, int k, const char *key, const char *v)
{
	pol_rule *r = &ps->p->rules[ps->cur];
	switch (k) {
	case 0:
		ag_free(r->pattern);
		if (!(r->pattern = ag_strdup(v)))
			ps->oom = true;
		r->pattern_line = line;
		break;
	case 1:
		r->flags = 0;
		for (const char *f = v; *f; f++) {
			if (*f == 'i')
				r->flags |= PCRE2_CASELESS;
			else if (*f == 'm')
				r->flags |= PCRE2_MULTILINE;
			else if (*f == 's')
				r->flags |= PCRE2_DOTALL;
			else if (*f == 'x')
				r->flags |= PCRE2_EXTENDED;
			else {
				diag_add(ps, line, "flags: '%c' is not one of i, m, s, x", *f);
				break;
			}
		}
		break;
	case 2:
		if (r->kind != POL_REDACT)
			diag_add(ps, line, "label: only redact rules have a label");
		else if (!valid_id(v))
			diag_add(ps, line, "label: '%.40s' must be 1-%d letters, digits, '_' or '-'", v,
				 POL_MAX_ID);
		else
			snprintf(r->label, sizeof r->label, "%s", v);
		break;
	case 3:
		if (r->kind != POL_REDACT)
			diag_add(ps, line, "check: only redact rules have a check");
		else if (strcmp(v, "luhn") == 0)
			r->check = POL_CHECK_LUHN;
		else if (strcmp(v, "iban") == 0)
			r->check = POL_CHECK_IBAN;
		else if (strcmp(v, "ssn") == 0)
			r->check = POL_CHECK_SSN;
		else if (strcmp(v, "none") == 0)
			r->check = POL_CHECK_NONE;
		else
			diag_add(ps, line, "check: expected luhn, iban, ssn or none, not '%.40s'", v);
		break;
	case 4:
		if (r->kind == POL_INJECT)
			diag_add(ps, line, "applies: inject rules apply to untrusted text only");
		else
			r->applies = parse_applies(ps, line, r->kind, v);
		break;
	case 5:
		parse_list(ps, line, key, v, &r->roles);
		r->roles_line = line;
		break;
	case 6:
		parse_list(ps, line, key, v, &r->except);
		r->roles_line = line;
		break;
	case 7:
		if (r->kind != POL_DENY) {
			diag_add(ps, line, "message: only deny rules have a message");
			break;
		}
		ag_free(r->message);
		if (!(r->message = ag_strdup(v)))
			ps->oom = true;
		break;
	case 8: break;
	}
}

/* Compiles the pattern of a finished rule section. */
static void finish_rule(parser *ps)
{
	pol_rule *r = &ps->p->rules[ps->cur];
	if (!r->pattern) {
		diag_add(ps, r->line, "[%s] has no pattern", r->id);
		return;
	}
	if (r->kind == POL_REDACT && !r->label[0])
		snprintf(r->label, sizeof r->label, "%s", strchr(r->id, '.') + 1);
	if (r->kind == POL_DENY && r->applies == 0)
		r->applies = POL_APPLY_INPUT;
	if (r->kind == POL_REDACT && r->applies == 0)
		r->applies = POLICIES_SINK_CONTEXT | POLICIES_SINK_AUDIT | POLICIES_SINK_OUTPUT;
	if (r->roles.n == 0 && !r->roles.all)
		r->roles.all = true;
	int err;
	PCRE2_SIZE off;
	pcre2_compile_context *cc = pcre2_compile_context_create(ps->p->gctx);
	if (!cc) {
		ps->oom = true;
		return;
	}
	uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_NEVER_BACKSLASH_C | r->flags;
	r->code = pcre2_compile((PCRE2_SPTR)r->pattern, PCRE2_ZERO_TERMINATED, opts, &err, &off, cc);
	pcre2_compile_context_free(cc);
	if (!r->code) {
		/* An allocation that failed inside PCRE2 is not the pattern's fault. */
		if (err == PCRE2_ERROR_HEAP_FAILED) {
			ps->oom = true;
			return;
		}
		PCRE2_UCHAR msg[256];
		if (pcre2_get_error_message(err, msg, sizeof msg) < 0)
			snprintf((char *)msg, sizeof msg, "error %d", err);
		diag_add(ps, r->pattern_line, "pattern does not compile at offset %zu: %s", (size_t)off,
			 (const char *)msg);
		return;
	}
	/* JIT is faster and still honours the match limit; without it the interpreter is used. */
	(void)pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE);
}

static void finish_section(parser *ps)
{
	if (ps->sec == SEC_RULE)
		finish_rule(ps);
	ps->sec = SEC_NONE;
}

static bool id_taken(const policies_policy *p, const char *id)
{
	for (int i = 0; i < p->nrules; i++)
		if (strcmp(p->rules[i].id, id) == 0)
			return true;
	return false;
}

static void open_section(parser *ps, int line, char *hdr)
{
	finish_section(ps);
	ps->sec = SEC_NONE;
	ps->seen = 0;
	char *kind = hdr, *id = hdr;
	while (*id && !isspace((unsigned char)*id))
		id++;
	if (*id)
		*id++ = '\0';
	while (isspace((unsigned char)*id))
		id++;
	char *end = id + strlen(id);
	while (end > id && isspace((unsigned char)end[-1]))
		*--end = '\0';
	policies_policy *p = ps->p;
	if (strcmp(kind, "settings") == 0) {
		if (*id)
			diag_add(ps, line, "[settings] takes no name");
		else if (ps->seen_settings)
			diag_add(ps, line, "[settings] appears twice");
		ps->seen_settings = true;
		ps->sec = SEC_SETTINGS;
		return;
	}
	pol_kind rk;
	if (strcmp(kind, "role") == 0) {
		if (!valid_id(id)) {
			diag_add(ps, line,
				 "[role NAME]: name '%.60s' must be 1-%d letters, digits, '_' or '-'", id,
				 POL_MAX_ID);
			return;
		}
		if (pol_find_role(p, id)) {
			diag_add(ps, line, "role '%s' is defined twice", id);
			return;
		}
		if (p->nroles >= POL_MAX_ROLES) {
			diag_add(ps, line, "more than %d roles", POL_MAX_ROLES);
			return;
		}
		pol_role *roles = ag_realloc(p->roles, (size_t)(p->nroles + 1) * sizeof *roles);
		if (!roles) {
			ps->oom = true;
			return;
		}
		p->roles = roles;
		pol_role *r = &p->roles[p->nroles];
		memset(r, 0, sizeof *r);
		snprintf(r->name, sizeof r->name, "%s", id);
		r->line = line;
		/* Unset budgets are conservative rather than unlimited. */
		r->budget = (policies_budget){8, 4096, 60, 4, 10};
		ps->cur = p->nroles++;
		ps->sec = SEC_ROLE;
		return;
	} else if (strcmp(kind, "redact") == 0) {
		rk = POL_REDACT;
	} else if (strcmp(kind, "deny") == 0) {
		rk = POL_DENY;
	} else if (strcmp(kind, "inject") == 0) {
		rk = POL_INJECT;
	} else {
		diag_add(ps, line, "unknown section [%.40s]; expected settings, role, redact, deny or inject",
			 kind);
		return;
	}
	if (!valid_id(id)) {
		diag_add(ps, line, "[%s ID]: id '%.60s' must be 1-%d letters, digits, '_' or '-'", kind, id,
			 POL_MAX_ID);
		return;
	}
	char full[sizeof p->rules[0].id];
	snprintf(full, sizeof full, "%s.%s", kind, id);
	if (id_taken(p, full)) {
		diag_add(ps, line, "rule '%s' is defined twice", full);
		return;
	}
	if (p->nrules >= POL_MAX_RULES) {
		diag_add(ps, line, "more than %d rules", POL_MAX_RULES);
		return;
	}
	pol_rule *rules = ag_realloc(p->rules, (size_t)(p->nrules + 1) * sizeof *rules);
	if (!rules) {
		ps->oom = true;
		return;
	}
	p->rules = rules;
	pol_rule *r = &p->rules[p->nrules];
	memset(r, 0, sizeof *r);
	snprintf(r->id, sizeof r->id, "%s", full);
	r->kind = rk;
	r->line = line;
	ps->cur = p->nrules++;
	ps->sec = SEC_RULE;
}

static void key_line(parser *ps, int line, char *s)
{
	char *eq = strchr(s, '=');
	if (!eq) {
		diag_add(ps, line, "expected 'key = value' or '[section]'");
		return;
	}
	char *key = s, *v = eq + 1;
	char *ke = eq;
	while (ke > key && isspace((unsigned char)ke[-1]))
		ke--;
	*ke = '\0';
	while (isspace((unsigned char)*v))
		v++;
	char *ve = v + strlen(v);
	while (ve > v && isspace((unsigned char)ve[-1]))
		*--ve = '\0';
	if (!*key) {
		diag_add(ps, line, "missing key before '='");
		return;
	}
	const char *const *keys;
	switch (ps->sec) {
	case SEC_SETTINGS: keys = settings_keys; break;
	case SEC_ROLE: keys = role_keys; break;
	case SEC_RULE: keys = rule_keys; break;
	default: diag_add(ps, line, "'%.40s' is outside any section", key); return;
	}
	int k = key_index(keys, key);
	if (k < 0) {
		diag_add(ps, line, "unknown key '%.40s' in this section", key);
		return;
	}
	if (ps->seen & (1u << k)) {
		diag_add(ps, line, "'%s' is given twice in this section", key);
		return;
	}
	ps->seen |= 1u << k;
	if (!*v && k != key_index(keys, "description")) {
		diag_add(ps, line, "'%s' has no value", key);
		return;
	}
	if (ps->sec == SEC_SETTINGS)
		settings_key(ps, line, k, key, v);
	else if (ps->sec == SEC_ROLE)
		role_key(ps, line, k, key, v);
	else
		rule_key(ps, line, k, key, v);
}

/* Checks that need the whole file: role names used by rules exist, at least one role. */
static void check_whole(parser *ps)
{
	policies_policy *p = ps->p;
	if (p->nroles == 0)
		diag_add(ps, 0, "the policy defines no [role NAME] section");
	for (int i = 0; i < p->nrules; i++) {
		const pol_rule *r = &p->rules[i];
		const pol_list *ls[2] = {&r->roles, &r->except};
		for (int l = 0; l < 2; l++)
			for (int j = 0; j < ls[l]->n; j++)
				if (!pol_find_role(p, ls[l]->items[j]))
					diag_add(ps, r->roles_line, "%s: no role named '%s'", r->id,
						 ls[l]->items[j]);
	}
}

static int build_match_context(policies_policy *p)
{
	p->mctx = pcre2_match_context_create(p->gctx);
	if (!p->mctx)
		return ag_error_set(AG_ENOMEM, "out of memory building the policy");
	pcre2_set_match_limit(p->mctx, (uint32_t)p->match_limit);
	pcre2_set_depth_limit(p->mctx, (uint32_t)p->depth_limit);
	pcre2_set_heap_limit(p->mctx, (uint32_t)p->heap_limit_kib);
	return 0;
}

int policies_parse(policies_policy **out, policies_diag **diag_out, const char *text, size_t len,
		   const char *name)
{
	*out = NULL;
	if (diag_out)
		*diag_out = NULL;
	if (!name)
		name = "policy";
	parser ps = {0};
	ps.diag = ag_calloc(1, sizeof *ps.diag);
	policies_policy *p = ag_calloc(1, sizeof *p);
	if (!ps.diag || !p) {
		ag_free(ps.diag);
		ag_free(p);
		return ag_error_set(AG_ENOMEM, "out of memory parsing the policy");
	}
	atomic_init(&p->refs, 1);
	p->match_limit = 1000000;
	p->depth_limit = 10000;
	p->heap_limit_kib = 20480;
	p->max_input_bytes = 65536;
	p->loaded_ms = ag_now_ms();
	ps.p = p;
	p->gctx = pol_general_context();
	p->name = ag_strdup(name);
	if (!text)
		len = 0;
	/* Not strndup: the text may hold NUL bytes (refused below, but hashed and kept whole). */
	p->text = ag_malloc(len + 1);
	if (p->text) {
		memcpy(p->text, text ? text : "", len);
		p->text[len] = '\0';
	}
	if (!p->gctx || !p->name || !p->text) {
		ps.oom = true;
		goto done;
	}
	p->text_len = len;
	uint8_t h[32];
	ag_sha256(h, p->text, len);
	ag_hex_encode(p->sha256, h, 32);

	if (len > POL_MAX_TEXT) {
		diag_add(&ps, 0, "the policy is larger than %u bytes", POL_MAX_TEXT);
		goto done;
	}
	if (memchr(p->text, '\0', len)) {
		diag_add(&ps, 0, "the policy contains a NUL byte");
		goto done;
	}
	char line[POL_MAX_LINE + 1];
	int lineno = 0;
	for (size_t pos = 0; pos < len && !ps.oom;) {
		const char *s = p->text + pos;
		const char *nl = memchr(s, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - s) : len - pos;
		pos += n + (nl ? 1 : 0);
		lineno++;
		if (n && s[n - 1] == '\r')
			n--;
		if (n > POL_MAX_LINE) {
			diag_add(&ps, lineno, "line longer than %d bytes", POL_MAX_LINE);
			continue;
		}
		if (!valid_utf8((const unsigned char *)s, n)) {
			diag_add(&ps, lineno, "the line is not valid UTF-8");
			continue;
		}
		memcpy(line, s, n);
		line[n] = '\0';
		char *a = line;
		while (isspace((unsigned char)*a))
			a++;
		char *e = a + strlen(a);
		while (e > a && isspace((unsigned char)e[-1]))
			*--e = '\0';
		if (!*a || *a == '#' || *a == ';')
			continue;
		if (*a == '[') {
			if (e[-1] != ']') {
				diag_add(&ps, lineno, "section header without a closing ']'");
				finish_section(&ps);
				ps.refused = true;
				continue;
			}
			e[-1] = '\0';
			open_section(&ps, lineno, a + 1);
			ps.refused = ps.sec == SEC_NONE;
			continue;
		}
		if (ps.sec == SEC_NONE && ps.refused)
			continue; /* keys of a refused section: its header was reported */
		key_line(&ps, lineno, a);
	}
	if (!ps.oom)
		finish_section(&ps);
	if (!ps.oom)
		check_whole(&ps);
done:
	if (ps.oom) {
		policies_diag_free(ps.diag);
		pol_policy_free(p);
		return ag_error_set(AG_ENOMEM, "out of memory parsing the policy");
	}
	if (ps.diag->count) {
		int rc = ag_error_set(AG_EINVAL, "%s:%d: %s", name, ps.diag->items[0].line,
				      ps.diag->items[0].message);
		if (diag_out)
			*diag_out = ps.diag;
		else
			policies_diag_free(ps.diag);
		pol_policy_free(p);
		return rc;
	}
	policies_diag_free(ps.diag);
	if (build_match_context(p)) {
		pol_policy_free(p);
		return AG_ENOMEM;
	}
	*out = p;
	return 0;
}
