/*
 * Untrusted text: retrieved chunks and tool results may carry instructions
 * written by whoever controls a document or a web page. Such text is put in
 * the prompt as data (wrapped, with anything that could close the wrapper or
 * open a special token neutralised), and scanned with the policy's inject
 * rules; a flagged source then cannot drive a tool that writes or reaches the
 * network without approval (policies_check_tool).
 */
#include "policies/internal.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Length of an invisible format character at t (soft hyphen, zero-width space/joiners,
 * bidi controls, word joiner, BOM), or 0. Attackers put them inside words ("ig<ZWSP>nore")
 * so patterns do not see the word; the model reads straight through them. */
static size_t invisible_at(const unsigned char *t, size_t n)
{
	if (n >= 2 && t[0] == 0xC2 && t[1] == 0xAD)
		return 2;
	if (n >= 3 && t[0] == 0xE2 && t[1] == 0x80 &&
	    ((t[2] >= 0x8B && t[2] <= 0x8F) || (t[2] >= 0xAA && t[2] <= 0xAE)))
		return 3;
	if (n >= 3 && t[0] == 0xE2 && t[1] == 0x81 && t[2] >= 0xA0 && t[2] <= 0xA4)
		return 3;
	if (n >= 3 && t[0] == 0xEF && t[1] == 0xBB && t[2] == 0xBF)
		return 3;
	return 0;
}

/* A copy of text without invisible characters, or NULL in *out when it has none. */
static int strip_invisible(char **out, size_t *out_len, const char *text, size_t len)
{
	*out = NULL;
	const unsigned char *t = (const unsigned char *)text;
	size_t i = 0;
	while (i < len && !invisible_at(t + i, len - i))
		i++;
	if (i == len)
		return 0;
	char *c = ag_malloc(len + 1);
	if (!c)
		return ag_error_set(AG_ENOMEM, "out of memory scanning untrusted text");
	size_t k = 0;
	for (i = 0; i < len;) {
		size_t n = invisible_at(t + i, len - i);
		if (n) {
			i += n;
			continue;
		}
		c[k++] = text[i++];
	}
	c[k] = '\0';
	*out = c;
	*out_len = k;
	return 0;
}

int policies_scan_injection(const policies_policy *p, const char *text, size_t len, policies_decision *out)
{
	if (!text)
		text = "", len = 0;
	char *clean;
	size_t clean_len;
	int rc = strip_invisible(&clean, &clean_len, text, len);
	if (rc)
		return rc;
	if (clean) {
		rc = policies_scan_injection(p, clean, clean_len, out);
		ag_free(clean);
		if (!rc && out->action != POLICIES_ALLOW) {
			size_t n = strlen(out->reason);
			snprintf(out->reason + n, sizeof out->reason - n,
				 " (offset after removing invisible characters)");
		}
		return rc;
	}
	pcre2_match_data *md = pcre2_match_data_create(1, p->gctx);
	if (!md)
		return ag_error_set(AG_ENOMEM, "out of memory scanning untrusted text");
	pol_decide(out, POLICIES_ALLOW, "default.allow", "no inject rule matched");
	for (int i = 0; i < p->nrules; i++) {
		const pol_rule *r = &p->rules[i];
		if (r->kind != POL_INJECT)
			continue;
		size_t s, e;
		int m = pol_match(p, r, md, text, len, 0, &s, &e);
		if (m == AG_ELIMIT) {
			/* A scan that could not finish cannot vouch for the text: flag it. */
			pol_decide(out, POLICIES_NEEDS_APPROVAL, "limit.match",
				   "rule %s stopped at its match limit; the text is treated as flagged",
				   r->id);
			break;
		}
		if (m < 0) {
			pcre2_match_data_free(md);
			return m;
		}
		if (m == 1) {
			size_t n = e - s > 80 ? 80 : e - s;
			char ex[81];
			memcpy(ex, text + s, n);
			ex[n] = '\0';
			for (size_t k = 0; k < n; k++)
				if ((unsigned char)ex[k] < ' ')
					ex[k] = ' ';
			pol_decide(out, POLICIES_NEEDS_APPROVAL, r->id,
				   "instruction-like text at byte %zu: \"%s\"", s, ex);
			break;
		}
	}
	pcre2_match_data_free(md);
	return pol_log_decision("scan untrusted", NULL, out);
}

/* Does the text at t (n bytes left) start with word, ignoring case? */
static bool starts_ci(const char *t, size_t n, const char *word)
{
	size_t w = strlen(word);
	return n >= w && strncasecmp(t, word, w) == 0;
}

/* Would the '<' at text[i] open or close a block or a special token? */
static bool dangerous_lt(const char *t, size_t len, size_t i)
{
	size_t j = i + 1;
	/* "< /data", "</ data": models and people read these as tags too. */
	while (j < len && (t[j] == ' ' || t[j] == '\t' || t[j] == '\n' || t[j] == '\r'))
		j++;
	if (j < len && t[j] == '/')
		j++;
	while (j < len && (t[j] == ' ' || t[j] == '\t' || t[j] == '\n' || t[j] == '\r'))
		j++;
	const char *rest = t + j;
	size_t n = len - j;
	/* "|" covers the special tokens <|im_start|>, <|im_end|>, <|endoftext|>. */
	static const char *const words[] = {"data", "document", "tool_", "think", "|", NULL};
	for (int k = 0; words[k]; k++)
		if (starts_ci(rest, n, words[k]))
			return true;
	return false;
}

int policies_neutralise(char **out, size_t *out_len, const char *text, size_t len)
{
	if (!text)
		text = "", len = 0;
	ag_buf b = AG_BUF_INIT;
	int rc = ag_buf_reserve(&b, len + 16);
	size_t from = 0;
	for (size_t i = 0; i < len && !rc; i++) {
		if (text[i] != '<' || !dangerous_lt(text, len, i))
			continue;
		rc = ag_buf_append(&b, text + from, i - from);
		if (!rc)
			rc = ag_buf_puts(&b, "&lt;");
		from = i + 1;
	}
	if (!rc)
		rc = ag_buf_append(&b, text + from, len - from);
	if (rc) {
		ag_buf_free(&b);
		return ag_error_set(AG_ENOMEM, "out of memory neutralising text");
	}
	*out = ag_buf_detach(&b, out_len);
	return 0;
}

int policies_mark_untrusted(char **out, size_t *out_len, const char *source, const char *text, size_t len)
{
	char *body;
	size_t blen;
	int rc = policies_neutralise(&body, &blen, text, len);
	if (rc)
		return rc;
	ag_buf b = AG_BUF_INIT;
	rc = ag_buf_puts(&b, "<data source=\"");
	/* The source is an attribute: keep it on one line and unable to end the tag. */
	for (const char *s = source ? source : "unknown"; *s && !rc; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"')
			rc = ag_buf_puts(&b, "&quot;");
		else if (c == '<')
			rc = ag_buf_puts(&b, "&lt;");
		else if (c == '>')
			rc = ag_buf_puts(&b, "&gt;");
		else if (c == '&')
			rc = ag_buf_puts(&b, "&amp;");
		else if (c < ' ' || c == 0x7f)
			rc = ag_buf_putc(&b, ' ');
		else
			rc = ag_buf_putc(&b, (char)c);
	}
	if (!rc)
		rc = ag_buf_puts(&b, "\" trust=\"untrusted\">\n");
	if (!rc)
		rc = ag_buf_append(&b, body, blen);
	if (!rc)
		rc = ag_buf_puts(&b, "\n</data>");
	ag_free(body);
	if (rc) {
		ag_buf_free(&b);
		return ag_error_set(AG_ENOMEM, "out of memory marking untrusted text");
	}
	*out = ag_buf_detach(&b, out_len);
	return 0;
}
