/*
 * Arbitrary-precision decimal numbers for the calculator (tools/decimal.c),
 * internal to the tools module. value = (-1)^neg * digits * 10^exp, digits
 * least significant first, no leading or trailing zeros (zero has n == 0).
 */
#ifndef TOOLS_DECIMAL_H
#define TOOLS_DECIMAL_H

#include "common/common.h"

#define DEC_MAX_DIGITS 1000   /* significant digits of any value */
#define DEC_MAX_WORK   4000   /* digits of any intermediate magnitude */
#define DEC_MAX_EXP    100000 /* |exponent| of any value */
#define DEC_MAX_TEXT   20000  /* characters of a printed result */
#define DEC_MAX_MEMORY (64u << 20)

typedef struct dec {
	bool neg;
	bool inexact; /* rounding happened somewhere in this value's history */
	int64_t exp;
	size_t n;
	uint8_t *d; /* n digits, least significant first; borrowed from the arena */
} dec;

typedef struct dec_ctx {
	ag_arena *arena;
} dec_ctx;

typedef enum { DEC_HALF_UP, DEC_FLOOR, DEC_CEIL } dec_round;

int dec_check(const dec *x);
/* digits: n ASCII digits, most significant first; value = digits * 10^exp. */
int dec_from_text(dec_ctx *c, dec *out, const char *digits, size_t n, int64_t exp);
/* A small integer using storage (at least 10 bytes) for its digits. */
void dec_from_int(dec *out, uint8_t *storage, unsigned v);
int dec_add(dec_ctx *c, dec *out, const dec *a, const dec *b, bool subtract);
int dec_mul(dec_ctx *c, dec *out, const dec *a, const dec *b);
int dec_div(dec_ctx *c, dec *out, const dec *a, const dec *b, int precision);
/* Truncated remainder: the result has a's sign. */
int dec_mod(dec_ctx *c, dec *out, const dec *a, const dec *b);
int dec_pow(dec_ctx *c, dec *out, const dec *x, const dec *y, int precision);
int dec_sqrt(dec_ctx *c, dec *out, const dec *x, int precision);
int dec_cmp(dec_ctx *c, const dec *a, const dec *b, int *out);
int dec_round_sig(dec_ctx *c, dec *x, int precision);
/* Rounds to `places` digits after the point (negative: to tens, hundreds...). */
int dec_round_places(dec_ctx *c, dec *x, int64_t places, dec_round mode);
int dec_to_text(char **out, const dec *x);

#endif
