/* Verbatim quotes (engine/grammar_quote.c): which tokens may come next while an answer
 * quotes its sources and cites them, on a small vocabulary of explicit pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h"

/* Token ids are letters: piece 0 is 'a'. NULL: a special token (an end of turn). */
static const char *const pieces[] = {
	"\"",      /* a */
	" \"",     /* b */
	"The",     /* c */
	" fee",    /* d */
	" is",     /* e */
	" $40",    /* f */
	".",       /* g */
	"\" [",    /* h */
	"1",       /* i */
	"2",       /* j */
	"]",       /* k */
	NULL,      /* l */
	"\"The",   /* m */
	"\"Cats",  /* n */
	" [",      /* o */
	" cost",   /* p */
	".\"",     /* q */
	" waived", /* r */
};
#define N_PIECES (sizeof pieces / sizeof pieces[0])

static const char *const sources[] = {"The fee is $40.", "The fee is waived."};

static engine_grammar_vocab *vocab(void)
{
	size_t lens[N_PIECES];
	for (size_t i = 0; i < N_PIECES; i++)
		lens[i] = pieces[i] ? strlen(pieces[i]) : 0;
	engine_grammar_vocab *v;
	assert_int_equal(engine_grammar_vocab_new_pieces(&v, pieces, lens, N_PIECES), 0);
	return v;
}

static engine_quote_matcher *matcher(bool cite_required)
{
	size_t lens[2] = {strlen(sources[0]), strlen(sources[1])};
	engine_quote_matcher *q;
	assert_int_equal(engine_quote_matcher_new(&q, sources, lens, 2, cite_required), 0);
	return q;
}

typedef struct step {
	const char *feed;    /* text generated before the mask */
	const char *allowed; /* token ids allowed next, as letters */
} step;

static void run_steps(engine_quote_matcher *q, engine_grammar_vocab *v, const step *steps, size_t n)
{
	uint32_t mask[(N_PIECES + 31) / 32];
	for (size_t s = 0; s < n; s++) {
		engine_quote_matcher_feed(q, steps[s].feed, strlen(steps[s].feed));
		assert_int_equal(engine_quote_mask(q, v, mask), 0);
		char got[N_PIECES + 1] = "";
		size_t k = 0;
		for (size_t i = 0; i < N_PIECES; i++)
			if ((mask[i >> 5] >> (i & 31)) & 1)
				got[k++] = (char)('a' + i);
		got[k] = '\0';
		if (strcmp(got, steps[s].allowed) != 0)
			fail_msg("after \"%s\" (step %zu): allowed %s, expected %s", steps[s].feed, s, got,
				 steps[s].allowed);
	}
}

static void test_quote_then_required_marker(void **state)
{
	(void)state;
	engine_grammar_vocab *v = vocab();
	engine_quote_matcher *q = matcher(true);
	const step steps[] = {
		/* Outside: all but the tokens that open a quote with text no source holds
		 * (h: " [, n: "Cats). */
		{"", "abcdefgijklmopqr"},
		/* Just opened: text some source holds from anywhere; no closing yet, no specials. */
		{"Answer: \"", "cdefgqr"},
		{"The", "abdh"},           /* " fee" or close: both sources hold "The" */
		{" fee is", "abfhr"},      /* " $40" (first), " waived" (second), ' ' then close */
		{" $40", "aghq"},          /* only the first source now */
		{".", "ah"},               /* its end: only closing */
		{"\"", "o"},               /* the marker is required: " [ */
		{" [", "i"},               /* only [1] holds the quote */
		{"1", "k"},                /* ] (11 is no source) */
		{"]", "abcdefgijklmopqr"}, /* outside again */
	};
	run_steps(q, v, steps, sizeof steps / sizeof steps[0]);
	assert_false(engine_quote_matcher_inside(q));
	engine_quote_matcher_free(q);
	engine_grammar_vocab_free(v);
}

static void test_marker_may_name_any_source_holding_the_quote(void **state)
{
	(void)state;
	engine_grammar_vocab *v = vocab();
	engine_quote_matcher *q = matcher(true);
	const step steps[] = {
		{"\"The fee is\"", "o"},
		{" [", "ij"}, /* both sources hold it */
		{"2", "k"},
	};
	run_steps(q, v, steps, sizeof steps / sizeof steps[0]);
	engine_quote_matcher_free(q);
	engine_grammar_vocab_free(v);
}

static void test_optional_marker_and_broken_quote(void **state)
{
	(void)state;
	engine_grammar_vocab *v = vocab();
	engine_quote_matcher *q = matcher(false);
	const step steps[] = {
		/* Marker optional: after the closing quote, anything a text outside quotes may
		 * hold, and a marker only if it names a source holding the quote ([2]: j). */
		{"\"The fee is $40.\"", "abcdefgijklmopqr"},
		{" [", "abcdefgiklmopqr"},
		{"1]", "abcdefgijklmopqr"},
		/* Text the caller did not mask leaves the quote unconstrained until it closes. */
		{" \"Cats", "abcdefghijklmnopqr"},
		{" purr\"", "abcdefgijklmopqr"},
		/* Blanks are not a quote: closing at once is not offered, and "" is nothing. */
		{"\"", "cdefgqr"},
	};
	run_steps(q, v, steps, sizeof steps / sizeof steps[0]);
	engine_quote_matcher_reset(q);
	assert_false(engine_quote_matcher_inside(q));
	engine_quote_matcher_free(q);
	engine_grammar_vocab_free(v);
}

/* Quotes start and end between words: not "rice" of "price", not "$931." of "$931.75". */
static void test_word_boundaries(void **state)
{
	(void)state;
	static const char *const p[] = {"\"", "rice", " price", " is", " $931", ".", "75", "\"rice"};
	size_t lens[8];
	for (size_t i = 0; i < 8; i++)
		lens[i] = strlen(p[i]);
	engine_grammar_vocab *v;
	assert_int_equal(engine_grammar_vocab_new_pieces(&v, p, lens, 8), 0);
	const char *src = "The price is $931.75.";
	size_t len = strlen(src);
	engine_quote_matcher *q;
	assert_int_equal(engine_quote_matcher_new(&q, &src, &len, 1, false), 0);
	uint32_t mask[1];
	assert_int_equal(engine_quote_mask(q, v, mask), 0);
	assert_int_equal(mask[0] & 0xff, 0x7f); /* all but "rice opening a quote mid-word */
	engine_quote_matcher_feed(q, "\"", 1);
	assert_int_equal(engine_quote_mask(q, v, mask), 0);
	assert_int_equal(mask[0] & 0xff, 0x3c); /* " price", " is", " $931", "." */
	engine_quote_matcher_feed(q, " is $931", 8);
	assert_int_equal(engine_quote_mask(q, v, mask), 0);
	assert_int_equal(mask[0] & 0xff, 0x20); /* ".", not the close: 75 follows */
	engine_quote_matcher_feed(q, ".", 1);
	assert_int_equal(engine_quote_mask(q, v, mask), 0);
	assert_int_equal(mask[0] & 0xff, 0x40); /* "75" */
	engine_quote_matcher_feed(q, "75", 2);
	assert_int_equal(engine_quote_mask(q, v, mask), 0);
	assert_int_equal(mask[0] & 0xff, 0xa1); /* ".", or the close (alone, or then text) */
	engine_quote_matcher_free(q);
	engine_grammar_vocab_free(v);
}

/* No sources (a run whose search found nothing): no token that opens a quote, not even a lone
 * '"' (a, b, q) that the same vocabulary allows when there is something to quote. */
static void test_no_sources(void **state)
{
	(void)state;
	engine_grammar_vocab *v = vocab();
	engine_quote_matcher *q;
	assert_int_equal(engine_quote_matcher_new(&q, NULL, NULL, 0, true), 0);
	const step steps[] = {
		{"", "cdefgijklopr"},
		{"The fee is $40.", "cdefgijklopr"},
	};
	run_steps(q, v, steps, sizeof steps / sizeof steps[0]);
	assert_false(engine_quote_matcher_inside(q));
	engine_quote_matcher_free(q);
	engine_grammar_vocab_free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quote_then_required_marker),
		cmocka_unit_test(test_marker_may_name_any_source_holding_the_quote),
		cmocka_unit_test(test_optional_marker_and_broken_quote),
		cmocka_unit_test(test_word_boundaries),
		cmocka_unit_test(test_no_sources),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
