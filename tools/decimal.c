/*
 * Arbitrary-precision decimals for the calculator: a sign, a magnitude held
 * as decimal digits (least significant first) and a power-of-ten exponent,
 * value = (-1)^neg * digits * 10^exp. Addition, subtraction, multiplication
 * and remainder are exact; division and square roots are exact when the
 * result terminates within the working precision and are otherwise rounded
 * (half away from zero) to the requested number of significant digits, with
 * the `inexact` flag set. Base-10 digits keep the code short and obviously
 * right; the digit limits keep every operation small (long division of
 * 1,000-digit numbers takes milliseconds). All memory comes from the
 * evaluation's arena, freed in one go.
 */
#include "tools/decimal.h"

#include <string.h>

static int check_budget(dec_ctx *c, size_t n)
{
	if (n > DEC_MAX_WORK)
		return ag_error_set(AG_ELIMIT, "a number would need more than %d digits", DEC_MAX_WORK);
	if (ag_arena_used(c->arena) > DEC_MAX_MEMORY)
		return ag_error_set(AG_ELIMIT, "the calculation needs too much memory");
	return 0;
}

static uint8_t *digits_new(dec_ctx *c, size_t n)
{
	uint8_t *d = ag_arena_alloc(c->arena, n ? n : 1);
	if (d)
		memset(d, 0, n ? n : 1);
	return d;
}

static int oom(void) { return ag_error_set(AG_ENOMEM, "out of memory in the calculator"); }

/* Drops leading (high) zeros, then moves trailing (low) zeros into the exponent. */
static void normalize(dec *x)
{
	while (x->n && x->d[x->n - 1] == 0)
		x->n--;
	size_t z = 0;
	while (z < x->n && x->d[z] == 0)
		z++;
	if (z) {
		x->d += z;
		x->n -= z;
		x->exp += (int64_t)z;
	}
	if (x->n == 0) {
		x->neg = false;
		x->exp = 0;
	}
}

int dec_check(const dec *x)
{
	if (x->n > DEC_MAX_DIGITS)
		return ag_error_set(AG_ELIMIT, "a result has more than %d significant digits",
				    DEC_MAX_DIGITS);
	if (x->exp > DEC_MAX_EXP || x->exp < -DEC_MAX_EXP)
		return ag_error_set(AG_ELIMIT, "a result's magnitude is out of range (10^%d)", DEC_MAX_EXP);
	return 0;
}

int dec_from_text(dec_ctx *c, dec *out, const char *digits, size_t n, int64_t exp)
{
	if (n > DEC_MAX_DIGITS)
		return ag_error_set(AG_ELIMIT, "a number has more than %d digits", DEC_MAX_DIGITS);
	uint8_t *d = digits_new(c, n);
	if (!d)
		return oom();
	for (size_t i = 0; i < n; i++)
		d[i] = (uint8_t)(digits[n - 1 - i] - '0');
	*out = (dec){.neg = false, .exp = exp, .n = n, .d = d};
	normalize(out);
	return dec_check(out);
}

void dec_from_int(dec *out, uint8_t *storage, unsigned v)
{
	size_t n = 0;
	while (v) {
		storage[n++] = (uint8_t)(v % 10);
		v /= 10;
	}
	*out = (dec){.n = n, .d = storage};
}

/* ------------------------------------------------------------ magnitudes */

static int mag_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	while (an && a[an - 1] == 0)
		an--;
	while (bn && b[bn - 1] == 0)
		bn--;
	if (an != bn)
		return an < bn ? -1 : 1;
	for (size_t i = an; i-- > 0;)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return 0;
}

/* a * 10^k as a fresh digit array. */
static uint8_t *mag_shift(dec_ctx *c, const uint8_t *a, size_t an, size_t k, size_t *n_out)
{
	if (check_budget(c, an + k))
		return NULL;
	uint8_t *d = digits_new(c, an + k);
	if (!d) {
		oom();
		return NULL;
	}
	memcpy(d + k, a, an);
	*n_out = an + k;
	return d;
}

static uint8_t *mag_add(dec_ctx *c, const uint8_t *a, size_t an, const uint8_t *b, size_t bn, size_t *n_out)
{
	size_t n = (an > bn ? an : bn) + 1;
	uint8_t *d = digits_new(c, n);
	if (!d)
		return NULL;
	int carry = 0;
	for (size_t i = 0; i < n; i++) {
		int s = carry + (i < an ? a[i] : 0) + (i < bn ? b[i] : 0);
		d[i] = (uint8_t)(s % 10);
		carry = s / 10;
	}
	*n_out = n;
	return d;
}

/* a - b for a >= b. */
static uint8_t *mag_sub(dec_ctx *c, const uint8_t *a, size_t an, const uint8_t *b, size_t bn, size_t *n_out)
{
	uint8_t *d = digits_new(c, an);
	if (!d)
		return NULL;
	int borrow = 0;
	for (size_t i = 0; i < an; i++) {
		int s = a[i] - borrow - (i < bn ? b[i] : 0);
		borrow = s < 0;
		d[i] = (uint8_t)(s + (borrow ? 10 : 0));
	}
	*n_out = an;
	return d;
}

static uint8_t *mag_mul(dec_ctx *c, const uint8_t *a, size_t an, const uint8_t *b, size_t bn, size_t *n_out)
{
	if (check_budget(c, an + bn))
		return NULL;
	/* Column sums fit easily: at most 81 * 4000 per column before the carry pass. */
	uint32_t *acc = ag_arena_alloc(c->arena, (an + bn + 1) * sizeof *acc);
	uint8_t *d = digits_new(c, an + bn + 1);
	if (!acc || !d) {
		oom();
		return NULL;
	}
	memset(acc, 0, (an + bn + 1) * sizeof *acc);
	for (size_t i = 0; i < an; i++) {
		if (!a[i])
			continue;
		for (size_t j = 0; j < bn; j++)
			acc[i + j] += (uint32_t)a[i] * b[j];
	}
	uint32_t carry = 0;
	for (size_t i = 0; i < an + bn + 1; i++) {
		uint32_t s = acc[i] + carry;
		d[i] = (uint8_t)(s % 10);
		carry = s / 10;
	}
	*n_out = an + bn + 1;
	return d;
}

/* Long division, one decimal digit at a time: q = a / b, r = a % b (b != 0). */
static int mag_divmod(dec_ctx *c, const uint8_t *a, size_t an, const uint8_t *b, size_t bn, uint8_t **q,
		      size_t *qn, uint8_t **r, size_t *rn)
{
	while (bn && b[bn - 1] == 0)
		bn--;
	if (check_budget(c, an))
		return ag_error_code();
	uint8_t *qd = digits_new(c, an);
	uint8_t *rem = digits_new(c, bn + 1); /* rem < 10 * b always fits bn + 1 digits */
	if (!qd || !rem)
		return oom();
	size_t remn = 0;
	for (size_t i = an; i-- > 0;) {
		/* rem = rem * 10 + a[i] */
		if (remn)
			memmove(rem + 1, rem, remn);
		rem[0] = a[i];
		remn++;
		if (remn > bn + 1)
			remn = bn + 1;
		uint8_t digit = 0;
		while (mag_cmp(rem, remn, b, bn) >= 0) {
			int borrow = 0;
			for (size_t k = 0; k < remn; k++) {
				int s = rem[k] - borrow - (k < bn ? b[k] : 0);
				borrow = s < 0;
				rem[k] = (uint8_t)(s + (borrow ? 10 : 0));
			}
			digit++;
		}
		while (remn && rem[remn - 1] == 0)
			remn--;
		qd[i] = digit;
	}
	*q = qd;
	*qn = an;
	*r = rem;
	*rn = remn;
	return 0;
}

/* ----------------------------------------------------------- operations */

/* Both magnitudes at the smaller exponent. */
static int align(dec_ctx *c, const dec *a, const dec *b, uint8_t **ad, size_t *an, uint8_t **bd, size_t *bn,
		 int64_t *exp)
{
	int64_t e = a->exp < b->exp ? a->exp : b->exp;
	if ((uint64_t)(a->exp - e) > DEC_MAX_WORK || (uint64_t)(b->exp - e) > DEC_MAX_WORK)
		return ag_error_set(AG_ELIMIT, "the numbers' magnitudes are too far apart (over %d digits)",
				    DEC_MAX_WORK);
	*ad = mag_shift(c, a->d, a->n, (size_t)(a->exp - e), an);
	*bd = mag_shift(c, b->d, b->n, (size_t)(b->exp - e), bn);
	if (!*ad || !*bd)
		return ag_error_code() ? ag_error_code() : oom();
	*exp = e;
	return 0;
}

int dec_add(dec_ctx *c, dec *out, const dec *a, const dec *b, bool subtract)
{
	bool bneg = subtract ? !b->neg : b->neg;
	if (b->n == 0) {
		*out = *a;
		return 0;
	}
	if (a->n == 0) {
		*out = *b;
		out->neg = bneg;
		return 0;
	}
	uint8_t *ad, *bd;
	size_t an, bn;
	int64_t e;
	int rc = align(c, a, b, &ad, &an, &bd, &bn, &e);
	if (rc)
		return rc;
	dec r = {.exp = e, .inexact = a->inexact || b->inexact};
	if (a->neg == bneg) {
		r.d = mag_add(c, ad, an, bd, bn, &r.n);
		r.neg = a->neg;
	} else if (mag_cmp(ad, an, bd, bn) >= 0) {
		r.d = mag_sub(c, ad, an, bd, bn, &r.n);
		r.neg = a->neg;
	} else {
		r.d = mag_sub(c, bd, bn, ad, an, &r.n);
		r.neg = bneg;
	}
	if (!r.d)
		return oom();
	normalize(&r);
	*out = r;
	return dec_check(out);
}

int dec_mul(dec_ctx *c, dec *out, const dec *a, const dec *b)
{
	dec r = {.neg = a->neg != b->neg, .exp = a->exp + b->exp, .inexact = a->inexact || b->inexact};
	if (a->n == 0 || b->n == 0) {
		*out = (dec){.inexact = r.inexact};
		return 0;
	}
	if (!(r.d = mag_mul(c, a->d, a->n, b->d, b->n, &r.n)))
		return ag_error_code() ? ag_error_code() : oom();
	normalize(&r);
	*out = r;
	return dec_check(out);
}

/* Drops the lowest `drop` digits of x's magnitude, rounding by mode. */
static int drop_digits(dec_ctx *c, dec *x, size_t drop, dec_round mode)
{
	if (drop == 0 || x->n == 0)
		return 0;
	int first = drop <= x->n ? x->d[drop - 1] : 0;
	bool rest = false;
	for (size_t i = 0; i < drop && i < x->n; i++)
		if (x->d[i] && !(i == drop - 1))
			rest = true;
	bool any = first || rest;
	bool up = false;
	if (mode == DEC_HALF_UP)
		up = first >= 5;
	else if (mode == DEC_FLOOR)
		up = any && x->neg;
	else if (mode == DEC_CEIL)
		up = any && !x->neg;
	size_t keep = drop < x->n ? x->n - drop : 0;
	uint8_t *d = digits_new(c, keep + 1);
	if (!d)
		return oom();
	if (keep)
		memcpy(d, x->d + drop, keep);
	size_t n = keep;
	if (up) {
		size_t i = 0;
		while (i < n && d[i] == 9)
			d[i++] = 0;
		if (i == n)
			n++;
		d[i]++;
	}
	bool neg = x->neg;
	*x = (dec){.neg = neg, .exp = x->exp + (int64_t)drop, .n = n, .d = d, .inexact = x->inexact || any};
	normalize(x);
	return 0;
}

int dec_round_sig(dec_ctx *c, dec *x, int precision)
{
	if (x->n > (size_t)precision)
		return drop_digits(c, x, x->n - (size_t)precision, DEC_HALF_UP);
	return 0;
}

int dec_round_places(dec_ctx *c, dec *x, int64_t places, dec_round mode)
{
	int64_t drop = -x->exp - places;
	if (drop <= 0)
		return 0;
	if (drop > (int64_t)x->n + 1) {
		/* Far below the kept place: only the rounding direction matters. */
		bool neg = x->neg, inexact = x->inexact || x->n;
		bool up = x->n && ((mode == DEC_FLOOR && neg) || (mode == DEC_CEIL && !neg));
		uint8_t *one = digits_new(c, 1);
		if (!one)
			return oom();
		one[0] = 1;
		if (up)
			*x = (dec){.neg = neg, .exp = -places, .n = 1, .d = one, .inexact = inexact};
		else
			*x = (dec){.inexact = inexact};
		return 0;
	}
	return drop_digits(c, x, (size_t)drop, mode);
}

int dec_div(dec_ctx *c, dec *out, const dec *a, const dec *b, int precision)
{
	if (b->n == 0)
		return ag_error_set(AG_EINVAL, "division by zero");
	if (a->n == 0) {
		*out = (dec){.inexact = a->inexact || b->inexact};
		return 0;
	}
	/* Enough digits for precision + 1 significant digits of quotient. */
	size_t want = (size_t)precision + 1 + b->n;
	size_t k = want > a->n ? want - a->n : 0;
	uint8_t *num, *q, *r;
	size_t numn, qn, rn;
	if (!(num = mag_shift(c, a->d, a->n, k, &numn)))
		return ag_error_code() ? ag_error_code() : oom();
	int rc = mag_divmod(c, num, numn, b->d, b->n, &q, &qn, &r, &rn);
	if (rc)
		return rc;
	dec res = {.neg = a->neg != b->neg,
		   .exp = a->exp - b->exp - (int64_t)k,
		   .n = qn,
		   .d = q,
		   .inexact = a->inexact || b->inexact};
	normalize(&res);
	if (rn) {
		/* Not exact: the extra digit decides the rounding; mark it inexact. */
		res.inexact = true;
		if ((rc = dec_round_sig(c, &res, precision)))
			return rc;
	}
	*out = res;
	return dec_check(out);
}

int dec_mod(dec_ctx *c, dec *out, const dec *a, const dec *b)
{
	if (b->n == 0)
		return ag_error_set(AG_EINVAL, "remainder of division by zero");
	if (a->n == 0) {
		*out = *a;
		return 0;
	}
	uint8_t *ad, *bd, *q, *r;
	size_t an, bn, qn, rn;
	int64_t e;
	int rc = align(c, a, b, &ad, &an, &bd, &bn, &e);
	if (rc || (rc = mag_divmod(c, ad, an, bd, bn, &q, &qn, &r, &rn)))
		return rc;
	dec res = {.neg = a->neg, .exp = e, .n = rn, .d = r, .inexact = a->inexact || b->inexact};
	normalize(&res);
	*out = res;
	return dec_check(out);
}

int dec_cmp(dec_ctx *c, const dec *a, const dec *b, int *out)
{
	if (a->neg != b->neg && (a->n || b->n)) {
		*out = a->neg ? -1 : 1;
		return 0;
	}
	uint8_t *ad, *bd;
	size_t an, bn;
	int64_t e;
	int rc = align(c, a, b, &ad, &an, &bd, &bn, &e);
	if (rc)
		return rc;
	int m = mag_cmp(ad, an, bd, bn);
	*out = a->neg ? -m : m;
	return 0;
}

int dec_pow(dec_ctx *c, dec *out, const dec *x, const dec *y, int precision)
{
	if (y->n && y->exp < 0)
		return ag_error_set(AG_EINVAL, "powers must be whole numbers (got a fractional exponent)");
	if (y->n + (size_t)(y->n ? y->exp : 0) > 7)
		return ag_error_set(AG_ELIMIT, "the exponent is too large");
	int64_t n = 0;
	for (size_t i = y->n; i-- > 0;)
		n = n * 10 + y->d[i];
	for (int64_t i = 0; i < (y->n ? y->exp : 0); i++)
		n *= 10;
	bool negative = y->neg;
	static uint8_t one_digit[1] = {1};
	dec result = {.n = 1, .d = one_digit, .inexact = x->inexact || y->inexact};
	if (x->n == 0) {
		if (negative && n)
			return ag_error_set(AG_EINVAL, "division by zero (0 to a negative power)");
		if (n)
			*out = (dec){.inexact = result.inexact}; /* 0^n = 0 */
		else
			*out = result; /* 0^0 = 1 */
		return 0;
	}
	if ((x->n - 1) * (uint64_t)n > DEC_MAX_DIGITS)
		return ag_error_set(AG_ELIMIT, "the power would have more than %d digits", DEC_MAX_DIGITS);
	dec base = *x;
	int rc;
	while (n) {
		if (n & 1 && (rc = dec_mul(c, &result, &result, &base)))
			return rc;
		n >>= 1;
		if (n && (rc = dec_mul(c, &base, &base, &base)))
			return rc;
	}
	if (negative) {
		dec one = {.n = 1, .d = one_digit};
		return dec_div(c, out, &one, &result, precision);
	}
	*out = result;
	return 0;
}

int dec_sqrt(dec_ctx *c, dec *out, const dec *x, int precision)
{
	if (x->neg && x->n)
		return ag_error_set(AG_EINVAL, "square root of a negative number");
	if (x->n == 0) {
		*out = *x;
		return 0;
	}
	/* N = digits * 10^k with an even exponent and at least 2 (precision + 1) digits. */
	size_t want = 2 * ((size_t)precision + 1);
	size_t k = want > x->n ? want - x->n : 0;
	if (((x->exp - (int64_t)k) & 1) != 0)
		k++;
	uint8_t *nd;
	size_t nn;
	if (!(nd = mag_shift(c, x->d, x->n, k, &nn)))
		return ag_error_code() ? ag_error_code() : oom();
	/* Newton from above: s = 10^ceil(digits / 2) >= sqrt(N). */
	size_t sn = (nn + 1) / 2 + 1;
	uint8_t *s = digits_new(c, sn);
	if (!s)
		return oom();
	s[sn - 1] = 1;
	static uint8_t two[1] = {2};
	for (int iter = 0; iter < 4096; iter++) {
		uint8_t *q, *r, *sum, *t, *r2;
		size_t qn, rn, sumn, tn, r2n;
		int rc = mag_divmod(c, nd, nn, s, sn, &q, &qn, &r, &rn);
		if (rc)
			return rc;
		if (!(sum = mag_add(c, s, sn, q, qn, &sumn)))
			return oom();
		if ((rc = mag_divmod(c, sum, sumn, two, 1, &t, &tn, &r2, &r2n)))
			return rc;
		if (mag_cmp(t, tn, s, sn) >= 0)
			break;
		s = t;
		sn = tn;
	}
	uint8_t *sq;
	size_t sqn;
	if (!(sq = mag_mul(c, s, sn, s, sn, &sqn)))
		return ag_error_code() ? ag_error_code() : oom();
	dec res = {.exp = (x->exp - (int64_t)k) / 2, .n = sn, .d = s, .inexact = x->inexact};
	normalize(&res);
	if (mag_cmp(sq, sqn, nd, nn) != 0) {
		res.inexact = true;
		int rc = dec_round_sig(c, &res, precision);
		if (rc)
			return rc;
	}
	*out = res;
	return dec_check(out);
}

int dec_to_text(char **out, const dec *x)
{
	if (x->n + (size_t)(x->exp < 0 ? -x->exp : x->exp) > DEC_MAX_TEXT)
		return ag_error_set(AG_ELIMIT, "the result would print as more than %d characters",
				    DEC_MAX_TEXT);
	ag_buf b = AG_BUF_INIT;
	int rc = 0;
	if (x->n == 0) {
		rc = ag_buf_putc(&b, '0');
	} else {
		if (x->neg)
			rc |= ag_buf_putc(&b, '-');
		int64_t point = (int64_t)x->n + x->exp; /* digits before the decimal point */
		if (point <= 0) {
			rc |= ag_buf_puts(&b, "0.");
			for (int64_t i = 0; i < -point; i++)
				rc |= ag_buf_putc(&b, '0');
			for (size_t i = x->n; i-- > 0;)
				rc |= ag_buf_putc(&b, (char)('0' + x->d[i]));
		} else {
			for (size_t i = x->n; i-- > 0;) {
				rc |= ag_buf_putc(&b, (char)('0' + x->d[i]));
				if ((int64_t)(x->n - i) == point && i > 0)
					rc |= ag_buf_putc(&b, '.');
			}
			for (int64_t i = 0; i < x->exp; i++)
				rc |= ag_buf_putc(&b, '0');
		}
	}
	if (rc) {
		ag_buf_free(&b);
		return oom();
	}
	*out = ag_buf_detach(&b, NULL);
	return 0;
}
