/*
 * Checking a draft answer before it is returned: every quoted span with a
 * citation marker ("..." [n]) must name a document of this run whose text
 * contains the quote (white space compared loosely, case exactly), and the
 * run's requirements (citations, length, words that must or must not appear)
 * must hold. Requirements may be given as objects or as plain sentences.
 */
#include "agentd/planner.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char not_found_answer[] = "Not found in the documents.";

/* ---------------------------------------------------------- requirements */

static long number_word(const char *s, const char **end)
{
	static const char *const words[] = {"zero", "one",   "two",   "three", "four", "five",
					    "six",  "seven", "eight", "nine",  "ten"};
	while (*s == ' ')
		s++;
	if (isdigit((unsigned char)*s)) {
		char *e;
		long v = strtol(s, &e, 10);
		*end = e;
		return v;
	}
	for (long i = 0; i <= 10; i++) {
		size_t n = strlen(words[i]);
		if (strncasecmp(s, words[i], n) == 0 && !isalpha((unsigned char)s[n])) {
			*end = s + n;
			return i;
		}
	}
	*end = s;
	return -1;
}

static json_t *parse_sentence(const char *s)
{
	const char *p, *end;
	static const char *const mention_nots[] = {"must not mention ", "do not mention ", "never mention ",
						   NULL};
	for (int i = 0; mention_nots[i]; i++)
		if ((p = strcasestr(s, mention_nots[i])) != NULL)
			return json_pack("{s:s, s:s}", "type", "must_not_mention", "value",
					 p + strlen(mention_nots[i]));
	if ((p = strcasestr(s, "mention ")) != NULL && p[8])
		return json_pack("{s:s, s:s}", "type", "must_mention", "value", p + 8);
	if ((p = strcasestr(s, "at least ")) != NULL &&
	    (strcasestr(s, "cite") || strcasestr(s, "citation") || strcasestr(s, "source") ||
	     strcasestr(s, "document"))) {
		long n = number_word(p + 9, &end);
		if (n >= 0)
			return json_pack("{s:s, s:I}", "type", "min_citations", "value", (json_int_t)n);
	}
	if (strcasestr(s, "word")) {
		static const struct {
			const char *phrase;
			long adjust;
		} limits[] = {{"under ", -1},       {"fewer than ", -1}, {"less than ", -1}, {"at most ", 0},
			      {"no more than ", 0}, {"maximum of ", 0},  {"up to ", 0}};
		for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
			if ((p = strcasestr(s, limits[i].phrase)) != NULL) {
				long n = number_word(p + strlen(limits[i].phrase), &end);
				if (n > 0)
					return json_pack("{s:s, s:I}", "type", "max_words", "value",
							 (json_int_t)(n + limits[i].adjust));
			}
		}
	}
	return NULL;
}

int agentd_requirements_parse(const json_t *in, json_t **out)
{
	*out = NULL;
	if (in && !json_is_array(in))
		return ag_error_set(AG_EINVAL, "requirements must be an array");
	json_t *arr = json_array();
	if (!arr)
		return ag_error_set(AG_ENOMEM, "out of memory reading requirements");
	size_t i;
	json_t *r;
	json_array_foreach(in, i, r)
	{
		json_t *norm = NULL;
		if (json_is_string(r)) {
			norm = parse_sentence(json_string_value(r));
			if (!norm) {
				json_decref(arr);
				return ag_error_set(AG_EINVAL,
						    "requirements[%zu]: cannot read '%s' (try \"cite at "
						    "least 2 documents\", "
						    "\"answer in under 100 words\", \"must mention X\")",
						    i, json_string_value(r));
			}
			/* Strip a trailing full stop from mention values: "must mention POL-7." */
			const char *v = json_string_value(json_object_get(norm, "value"));
			if (v && strlen(v) > 1 && v[strlen(v) - 1] == '.') {
				char *t = ag_strndup(v, strlen(v) - 1);
				if (t) {
					json_object_set_new(norm, "value", json_string(t));
					ag_free(t);
				}
			}
		} else if (json_is_object(r)) {
			const char *type = json_string_value(json_object_get(r, "type"));
			const json_t *value = json_object_get(r, "value");
			bool numeric = type &&
				       (strcmp(type, "min_citations") == 0 || strcmp(type, "max_words") == 0);
			bool text = type && (strcmp(type, "must_mention") == 0 ||
					     strcmp(type, "must_not_mention") == 0);
			if ((!numeric && !text) ||
			    (numeric && (!json_is_integer(value) || json_integer_value(value) < 0)) ||
			    (text && (!json_is_string(value) || json_string_length(value) == 0))) {
				json_decref(arr);
				return ag_error_set(AG_EINVAL,
						    "requirements[%zu]: needs {\"type\": "
						    "min_citations|max_words|must_mention|"
						    "must_not_mention, \"value\": ...}",
						    i);
			}
			norm = json_deep_copy(r);
		} else {
			json_decref(arr);
			return ag_error_set(AG_EINVAL, "requirements[%zu]: must be a sentence or an object",
					    i);
		}
		if (!norm || json_array_append_new(arr, norm)) {
			json_decref(arr);
			return ag_error_set(AG_ENOMEM, "out of memory reading requirements");
		}
	}
	*out = arr;
	return 0;
}

/* ------------------------------------------------------------- quotes */

/* Finds quote in text comparing runs of white space as one space; on success
 * sets [*start, *end) to the matching bytes of text. */
static bool find_loose(const char *text, const char *quote, size_t qlen, size_t *start, size_t *end)
{
	while (qlen && isspace((unsigned char)quote[0])) {
		quote++;
		qlen--;
	}
	while (qlen && isspace((unsigned char)quote[qlen - 1]))
		qlen--;
	if (qlen == 0)
		return false;
	for (size_t s = 0; text[s]; s++) {
		if (text[s] != quote[0])
			continue;
		size_t t = s, q = 0;
		while (q < qlen && text[t]) {
			bool qs = isspace((unsigned char)quote[q]), ts = isspace((unsigned char)text[t]);
			if (qs && ts) {
				while (q < qlen && isspace((unsigned char)quote[q]))
					q++;
				while (text[t] && isspace((unsigned char)text[t]))
					t++;
			} else if (quote[q] == text[t]) {
				q++;
				t++;
			} else {
				break;
			}
		}
		if (q == qlen) {
			*start = s;
			*end = t;
			return true;
		}
	}
	return false;
}

/* Opening quote at p: returns its length in bytes (1 for ", 3 for a curly one), else 0. */
static size_t open_quote(const char *p)
{
	if (*p == '"')
		return 1;
	if (strncmp(p, "\xe2\x80\x9c", 3) == 0) /* “ */
		return 3;
	return 0;
}

static const char *close_quote(const char *p, size_t *len)
{
	for (; *p; p++) {
		if (*p == '"') {
			*len = 1;
			return p;
		}
		if (strncmp(p, "\xe2\x80\x9d", 3) == 0) { /* ” */
			*len = 3;
			return p;
		}
	}
	return NULL;
}

/* Reads "[n]" (after optional spaces) at p; returns n or -1, and the end. */
static long citation_at(const char *p, const char **end)
{
	while (*p == ' ')
		p++;
	if (*p != '[' || !isdigit((unsigned char)p[1]))
		return -1;
	char *e;
	long n = strtol(p + 1, &e, 10);
	if (*e != ']')
		return -1;
	*end = e + 1;
	return n;
}

static int add_problem(json_t *problems, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add_problem(json_t *problems, const char *fmt, ...)
{
	ag_buf b = AG_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	int rc = ag_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (!rc && json_array_append_new(problems, json_string(b.data)))
		rc = ag_error_set(AG_ENOMEM, "out of memory checking an answer");
	ag_buf_free(&b);
	return rc;
}

/* A quote of this many words or more must be cited. */
#define QUOTE_WORDS_TO_CITE 3

static long words_in(const char *s, size_t n)
{
	long words = 0;
	bool in = false;
	for (size_t i = 0; i < n; i++) {
		bool sp = isspace((unsigned char)s[i]);
		if (!sp && !in)
			words++;
		in = !sp;
	}
	return words;
}

static long count_words(const char *s) { return words_in(s, strlen(s)); }

int agentd_answer_check(const char *answer, const json_t *documents, const json_t *requirements,
			json_t **citations_out, json_t **problems_out)
{
	json_t *citations = json_array(), *problems = json_array();
	int rc = 0;
	if (!citations || !problems) {
		rc = ag_error_set(AG_ENOMEM, "out of memory checking an answer");
		goto out;
	}
	size_t ndocs = json_array_size(documents);
	bool cited[64] = {false};
	long distinct = 0;
	for (const char *p = answer; *p && !rc;) {
		size_t ol = open_quote(p), cl = 0;
		const char *close = ol ? close_quote(p + ol, &cl) : NULL;
		const char *after;
		long n;
		if (close && (n = citation_at(close + cl, &after)) >= 0) {
			const char *quote = p + ol;
			size_t qlen = (size_t)(close - quote);
			const json_t *doc = n >= 1 && (size_t)n <= ndocs
						    ? json_array_get(documents, (size_t)n - 1)
						    : NULL;
			size_t s = 0, e = 0;
			const char *text = doc ? json_string_value(json_object_get(doc, "text")) : NULL;
			if (!doc) {
				rc = add_problem(problems, "citation [%ld] names no document of this run", n);
			} else if (!text || !find_loose(text, quote, qlen, &s, &e)) {
				rc = add_problem(problems,
						 "document [%ld] does not contain the quoted text \"%.*s\"",
						 n, (int)(qlen > 120 ? 120 : qlen), quote);
			} else {
				json_int_t base = json_integer_value(json_object_get(doc, "start_byte"));
				json_t *c = json_pack("{s:I, s:s%, s:O?, s:O?, s:O?, s:I, s:I}", "n",
						      (json_int_t)n, "quote", quote, qlen, "chunk_id",
						      json_object_get(doc, "chunk_id"), "document_id",
						      json_object_get(doc, "document_id"), "title",
						      json_object_get(doc, "title"), "start_byte",
						      base + (json_int_t)s, "end_byte", base + (json_int_t)e);
				if (!c || json_array_append_new(citations, c))
					rc = ag_error_set(AG_ENOMEM, "out of memory checking an answer");
				if (n < 64 && !cited[n]) {
					cited[n] = true;
					distinct++;
				}
			}
			p = after;
			continue;
		}
		if (ol) {
			/* A quote without its marker, or never closed, passes for the documents' words
			 * without naming one; a short one ("the "Express" option") is only emphasis. */
			const char *quote = p + ol;
			size_t qlen = close ? (size_t)(close - quote) : strlen(quote);
			if (words_in(quote, qlen) >= QUOTE_WORDS_TO_CITE)
				rc = add_problem(
					problems,
					close ? "the quote \"%.*s\" has no citation marker [n] after it"
					      : "the quote \"%.*s\" is never closed",
					(int)(qlen > 120 ? 120 : qlen), quote);
			p = close ? close + cl : quote + qlen;
			continue;
		}
		if (*p == '[' && (n = citation_at(p, &after)) >= 0) {
			/* A bare marker: it must at least name a document of the run. */
			if (n < 1 || (size_t)n > ndocs)
				rc = add_problem(problems, "citation [%ld] names no document of this run", n);
			else if (n < 64 && !cited[n]) {
				cited[n] = true;
				distinct++;
			}
			p = after;
			continue;
		}
		p++;
	}
	const char *t = answer;
	while (isspace((unsigned char)*t))
		t++;
	if (!rc && !*t)
		rc = add_problem(problems, "the answer is empty");
	bool not_found = strncmp(answer, not_found_answer, strlen(not_found_answer)) == 0;
	size_t i;
	json_t *r;
	json_array_foreach(requirements, i, r)
	{
		if (rc)
			break;
		const char *type = json_string_value(json_object_get(r, "type"));
		const json_t *value = json_object_get(r, "value");
		if (strcmp(type, "min_citations") == 0) {
			if (!not_found && distinct < json_integer_value(value))
				rc = add_problem(problems,
						 "the answer cites %ld documents; at least %lld are required",
						 distinct, (long long)json_integer_value(value));
		} else if (strcmp(type, "max_words") == 0) {
			long words = count_words(answer);
			if (words > json_integer_value(value))
				rc = add_problem(problems,
						 "the answer has %ld words; at most %lld are allowed", words,
						 (long long)json_integer_value(value));
		} else if (strcmp(type, "must_mention") == 0) {
			if (!not_found && !strcasestr(answer, json_string_value(value)))
				rc = add_problem(problems, "the answer must mention \"%s\"",
						 json_string_value(value));
		} else if (strcmp(type, "must_not_mention") == 0) {
			if (strcasestr(answer, json_string_value(value)))
				rc = add_problem(problems, "the answer must not mention \"%s\"",
						 json_string_value(value));
		}
	}
out:
	if (rc) {
		json_decref(citations);
		json_decref(problems);
		return rc;
	}
	*citations_out = citations;
	*problems_out = problems;
	return 0;
}
