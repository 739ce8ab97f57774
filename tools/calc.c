/*
 * The calculator's parser: a recursive-descent evaluator over exact decimals
 * (tools/decimal.c). Nothing is ever handed to a shell or an eval.
 *
 *   expr    := term (('+' | '-') term)*
 *   term    := unary (('*' | '/' | '%') unary)*
 *   unary   := ('-' | '+') unary | power
 *   power   := primary ('^' unary)?          right-associative; -2^2 = -4
 *   primary := number | '(' expr ')' | name '(' expr (',' expr)* ')'
 *   number  := digits ['.' digits] [('e' | 'E') ['+' | '-'] digits]
 *
 * Functions: abs(x), min(x, ...), max(x, ...), round(x [, places]) (half
 * away from zero), floor(x), ceil(x), trunc(x), sqrt(x). `%` is the
 * truncated remainder (sign of the dividend); `^` takes whole exponents.
 * Limits: 4,096 bytes of input, nesting depth 64, 1,000 significant digits
 * per value; errors name the column.
 */
#include "tools/decimal.h"
#include "tools/tools.h"

#include <ctype.h>
#include <string.h>

#define CALC_MAX_INPUT 4096
#define CALC_MAX_DEPTH 64
#define CALC_MAX_ARGS  64

typedef struct parser {
	const char *s;
	size_t len, pos;
	int depth;
	int precision;
	dec_ctx c;
} parser;

static int expr(parser *p, dec *out);

static void skip_space(parser *p)
{
	while (p->pos < p->len && isspace((unsigned char)p->s[p->pos]))
		p->pos++;
}

static int peek(parser *p)
{
	skip_space(p);
	return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static int syntax(parser *p, const char *what)
{
	if (p->pos >= p->len)
		return ag_error_set(AG_EINVAL, "syntax error at the end of the expression: %s", what);
	return ag_error_set(AG_EINVAL, "syntax error at column %zu ('%c'): %s", p->pos + 1,
			    isprint((unsigned char)p->s[p->pos]) ? p->s[p->pos] : '?', what);
}

static int number(parser *p, dec *out)
{
	char digits[DEC_MAX_DIGITS + 1];
	size_t n = 0;
	int64_t exp = 0;
	bool any = false, seen_nonzero = false;
	while (p->pos < p->len && isdigit((unsigned char)p->s[p->pos])) {
		char ch = p->s[p->pos++];
		any = true;
		if (ch == '0' && !seen_nonzero)
			continue; /* leading zeros carry nothing */
		seen_nonzero = true;
		if (n == DEC_MAX_DIGITS)
			return ag_error_set(AG_ELIMIT, "a number has more than %d digits", DEC_MAX_DIGITS);
		digits[n++] = ch;
	}
	if (p->pos < p->len && p->s[p->pos] == '.') {
		p->pos++;
		while (p->pos < p->len && isdigit((unsigned char)p->s[p->pos])) {
			char ch = p->s[p->pos++];
			any = true;
			exp--;
			if (ch == '0' && !seen_nonzero)
				continue;
			seen_nonzero = true;
			if (n == DEC_MAX_DIGITS)
				return ag_error_set(AG_ELIMIT, "a number has more than %d digits",
						    DEC_MAX_DIGITS);
			digits[n++] = ch;
		}
	}
	if (!any)
		return syntax(p, "expected a number");
	if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
		p->pos++;
		bool neg = false;
		if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
			neg = p->s[p->pos++] == '-';
		if (p->pos >= p->len || !isdigit((unsigned char)p->s[p->pos]))
			return syntax(p, "expected digits in the exponent");
		int64_t e = 0;
		while (p->pos < p->len && isdigit((unsigned char)p->s[p->pos])) {
			e = e * 10 + (p->s[p->pos++] - '0');
			if (e > DEC_MAX_EXP)
				return ag_error_set(AG_ELIMIT, "an exponent is larger than %d", DEC_MAX_EXP);
		}
		exp += neg ? -e : e;
	}
	return dec_from_text(&p->c, out, digits, n, exp);
}

/* The value of a whole-number argument (round's places), within +-limit. */
static int small_int(parser *p, const dec *x, int64_t limit, int64_t *out)
{
	(void)p;
	if (x->n && x->exp < 0)
		return ag_error_set(AG_EINVAL, "expected a whole number of places");
	if (x->n + (size_t)(x->n ? x->exp : 0) > 7)
		return ag_error_set(AG_ELIMIT, "a number of places beyond %lld", (long long)limit);
	int64_t v = 0;
	for (size_t i = x->n; i-- > 0;)
		v = v * 10 + x->d[i];
	for (int64_t i = 0; x->n && i < x->exp; i++)
		v *= 10;
	if (v > limit)
		return ag_error_set(AG_ELIMIT, "a number of places beyond %lld", (long long)limit);
	*out = x->neg ? -v : v;
	return 0;
}

static int call(parser *p, const char *name, size_t name_len, dec *args, int nargs, dec *out)
{
#define IS(s) (name_len == strlen(s) && memcmp(name, s, name_len) == 0)
	int rc;
	if (IS("abs") || IS("floor") || IS("ceil") || IS("trunc") || IS("sqrt")) {
		if (nargs != 1)
			return ag_error_set(AG_EINVAL, "%.*s takes one argument", (int)name_len, name);
		*out = args[0];
		if (IS("abs")) {
			out->neg = false;
			return 0;
		}
		if (IS("sqrt"))
			return dec_sqrt(&p->c, out, &args[0], p->precision);
		dec_round mode = IS("floor") ? DEC_FLOOR : IS("ceil") ? DEC_CEIL : DEC_HALF_UP;
		if (IS("trunc")) {
			/* Toward zero: floor for positives, ceil for negatives. */
			mode = out->neg ? DEC_CEIL : DEC_FLOOR;
		}
		bool was_inexact = out->inexact;
		rc = dec_round_places(&p->c, out, 0, mode);
		out->inexact = was_inexact; /* rounding on purpose is exact */
		return rc;
	}
	if (IS("round")) {
		if (nargs < 1 || nargs > 2)
			return ag_error_set(AG_EINVAL, "round takes one or two arguments: round(x, places)");
		int64_t places = 0;
		if (nargs == 2 && (rc = small_int(p, &args[1], 10000, &places)))
			return rc;
		*out = args[0];
		bool was_inexact = out->inexact;
		rc = dec_round_places(&p->c, out, places, DEC_HALF_UP);
		out->inexact = was_inexact;
		return rc;
	}
	if (IS("min") || IS("max")) {
		if (nargs < 1)
			return ag_error_set(AG_EINVAL, "%.*s needs at least one argument", (int)name_len,
					    name);
		int want = IS("min") ? -1 : 1;
		*out = args[0];
		for (int i = 1; i < nargs; i++) {
			int cmp;
			if ((rc = dec_cmp(&p->c, &args[i], out, &cmp)))
				return rc;
			if (cmp == want)
				*out = args[i];
		}
		return 0;
	}
#undef IS
	return ag_error_set(AG_EINVAL,
			    "unknown function '%.*s' (known: abs, min, max, round, floor, ceil, "
			    "trunc, sqrt)",
			    (int)(name_len > 32 ? 32 : name_len), name);
}

static int primary(parser *p, dec *out)
{
	int ch = peek(p);
	if (ch == '(') {
		p->pos++;
		int rc = expr(p, out);
		if (rc)
			return rc;
		if (peek(p) != ')')
			return syntax(p, "expected ')'");
		p->pos++;
		return 0;
	}
	if (ch >= 0 && (isdigit(ch) || ch == '.'))
		return number(p, out);
	if (ch >= 0 && isalpha(ch)) {
		size_t start = p->pos;
		while (p->pos < p->len && (isalnum((unsigned char)p->s[p->pos]) || p->s[p->pos] == '_'))
			p->pos++;
		const char *name = p->s + start;
		size_t name_len = p->pos - start;
		if (peek(p) != '(')
			return syntax(p, "expected '(' after a function name (there are no variables)");
		p->pos++;
		dec args[CALC_MAX_ARGS];
		int nargs = 0;
		if (peek(p) != ')') {
			for (;;) {
				if (nargs == CALC_MAX_ARGS)
					return ag_error_set(AG_ELIMIT, "more than %d arguments",
							    CALC_MAX_ARGS);
				int rc = expr(p, &args[nargs++]);
				if (rc)
					return rc;
				if (peek(p) == ',') {
					p->pos++;
					continue;
				}
				break;
			}
		}
		if (peek(p) != ')')
			return syntax(p, "expected ',' or ')' in a function call");
		p->pos++;
		return call(p, name, name_len, args, nargs, out);
	}
	return syntax(p, "expected a number, '(' or a function");
}

static int unary(parser *p, dec *out);

static int power(parser *p, dec *out)
{
	int rc = primary(p, out);
	if (rc)
		return rc;
	if (peek(p) == '^') {
		p->pos++;
		dec y;
		if ((rc = unary(p, &y)))
			return rc;
		return dec_pow(&p->c, out, out, &y, p->precision);
	}
	return 0;
}

static int unary(parser *p, dec *out)
{
	if (++p->depth > CALC_MAX_DEPTH)
		return ag_error_set(AG_ELIMIT, "the expression nests deeper than %d levels", CALC_MAX_DEPTH);
	int rc;
	int ch = peek(p);
	if (ch == '-' || ch == '+') {
		p->pos++;
		rc = unary(p, out);
		if (!rc && ch == '-' && out->n)
			out->neg = !out->neg;
	} else {
		rc = power(p, out);
	}
	p->depth--;
	return rc;
}

static int term(parser *p, dec *out)
{
	int rc = unary(p, out);
	while (!rc) {
		int op = peek(p);
		if (op != '*' && op != '/' && op != '%')
			break;
		p->pos++;
		dec b;
		if ((rc = unary(p, &b)))
			break;
		if (op == '*')
			rc = dec_mul(&p->c, out, out, &b);
		else if (op == '/')
			rc = dec_div(&p->c, out, out, &b, p->precision);
		else
			rc = dec_mod(&p->c, out, out, &b);
	}
	return rc;
}

static int expr(parser *p, dec *out)
{
	if (++p->depth > CALC_MAX_DEPTH)
		return ag_error_set(AG_ELIMIT, "the expression nests deeper than %d levels", CALC_MAX_DEPTH);
	int rc = term(p, out);
	while (!rc) {
		int op = peek(p);
		if (op != '+' && op != '-')
			break;
		p->pos++;
		dec b;
		if ((rc = term(p, &b)))
			break;
		rc = dec_add(&p->c, out, out, &b, op == '-');
	}
	p->depth--;
	return rc;
}

int tools_calc_eval(char **out, bool *exact, const char *text, size_t len, int precision)
{
	if (len > CALC_MAX_INPUT)
		return ag_error_set(AG_ELIMIT, "the expression is longer than %d bytes", CALC_MAX_INPUT);
	if (precision < 1 || precision > 200)
		return ag_error_set(AG_EINVAL, "precision must be between 1 and 200 digits");
	if (memchr(text, '\0', len))
		return ag_error_set(AG_EINVAL, "the expression holds a NUL byte");
	parser p = {.s = text, .len = len, .precision = precision};
	if (!(p.c.arena = ag_arena_new(64 * 1024)))
		return ag_error_set(AG_ENOMEM, "out of memory in the calculator");
	dec v;
	int rc = expr(&p, &v);
	if (!rc && peek(&p) != -1)
		rc = syntax(&p, "unexpected text after the expression");
	if (!rc && v.inexact)
		rc = dec_round_sig(&p.c, &v, precision);
	if (!rc && (rc = dec_to_text(out, &v)) == 0)
		*exact = !v.inexact;
	ag_arena_free(p.c.arena);
	return rc;
}
