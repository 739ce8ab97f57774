/*
 * How much of a question a sentence answers to, for choosing what a quote says
 * (local_select.c). A small model copies any sentence of its sources fluently
 * once it has begun it, so the log-probability of whole sentences says little
 * about which one answers; the words the question and the answer share (the
 * subject's name above all) say a lot, and the rarer a word among the
 * candidates, the more. The same idea as the BM25 ranking that found the
 * passages, applied to their sentences.
 */
#include "engine/local_internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define WORD_MAX  32   /* longer words are compared by their first 32 bytes */
#define QWORDS    64   /* distinct question words weighed (one bit each); the rest are ignored */
#define MAX_GATED 1024 /* sources judged by the gate; any beyond stay quotable */

typedef struct word {
	char w[WORD_MAX];
	size_t len;
	size_t begin; /* where it starts in the text */
} word;

/* English function words and question words: they say what kind of question it is, never
 * what it is about. Compared before a plural 's' is dropped ("does", "was"). */
static const char *const COMMON[] = {
	"a",    "about", "all",   "an",   "and",  "any",  "are",   "as",     "at",   "be",    "been",
	"by",   "can",   "could", "did",  "do",   "does", "for",   "from",   "get",  "had",   "has",
	"have", "how",   "i",     "if",   "in",   "into", "is",    "it",     "its",  "me",    "much",
	"many", "my",    "of",    "on",   "or",   "our",  "per",   "should", "so",   "than",  "that",
	"the",  "their", "there", "this", "to",   "was",  "we",    "what",   "when", "where", "which",
	"who",  "whom",  "whose", "why",  "will", "with", "would", "you",    "your",
};

static bool common_word(const char *w, size_t len)
{
	for (size_t i = 0; i < sizeof COMMON / sizeof *COMMON; i++)
		if (strlen(COMMON[i]) == len && memcmp(COMMON[i], w, len) == 0)
			return true;
	return false;
}

static bool word_byte(unsigned char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch >= 0x80;
}

/* The next word of text[*at..len) into *out (ASCII folded to lower case, a plural 's' dropped
 * from words of four letters or more, so "costs" meets "cost"); false at the end. */
static bool next_word(const char *text, size_t len, size_t *at, word *out)
{
	size_t i = *at;
	while (i < len && !word_byte((unsigned char)text[i]))
		i++;
	if (i >= len) {
		*at = len;
		return false;
	}
	out->len = 0;
	out->begin = i;
	for (; i < len && word_byte((unsigned char)text[i]); i++)
		if (out->len < WORD_MAX) {
			char ch = text[i];
			out->w[out->len++] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
		}
	if (out->len >= 4 && out->w[out->len - 1] == 's' && out->w[out->len - 2] != 's')
		out->len--;
	*at = i;
	return true;
}

static bool same_word(const word *a, const word *b)
{
	return a->len == b->len && memcmp(a->w, b->w, a->len) == 0;
}

/* Where w is among the *nq distinct words of q, added at the end if new. */
static size_t word_slot(word *q, size_t *nq, const word *w)
{
	size_t k = 0;
	while (k < *nq && !same_word(&q[k], w))
		k++;
	if (k == *nq)
		q[(*nq)++] = *w;
	return k;
}

/* Which of the nq question words the text holds: bit k for q[k]. */
static uint64_t words_held(const char *text, size_t len, const word *q, size_t nq)
{
	uint64_t held = 0;
	word t;
	for (size_t at = 0; next_word(text, len, &at, &t);)
		for (size_t k = 0; k < nq; k++)
			if (same_word(&t, &q[k]))
				held |= (uint64_t)1 << k;
	return held;
}

void local_quote_relevance(const char *question, const char *const *texts, const size_t *lens, size_t n,
			   double *out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = 0;
	if (!question || n == 0)
		return;
	word q[QWORDS];
	size_t nq = 0, qlen = strlen(question);
	word w;
	for (size_t at = 0; nq < QWORDS && next_word(question, qlen, &at, &w);)
		word_slot(q, &nq, &w);
	size_t df[QWORDS] = {0};
	for (size_t i = 0; i < n; i++) {
		uint64_t held = words_held(texts[i], lens[i], q, nq);
		for (size_t k = 0; k < nq; k++)
			df[k] += (held >> k) & 1;
	}
	/* A word no candidate has cannot tell them apart; one every candidate has still weighs a
	 * little: (n + 1) / (n + 0.5) > 1. */
	double idf[QWORDS], total = 0;
	for (size_t k = 0; k < nq; k++) {
		idf[k] = df[k] ? log(((double)n + 1.0) / ((double)df[k] + 0.5)) : 0;
		total += idf[k];
	}
	if (total <= 0)
		return;
	for (size_t i = 0; i < n; i++) {
		uint64_t held = words_held(texts[i], lens[i], q, nq);
		for (size_t k = 0; k < nq; k++)
			if ((held >> k) & 1)
				out[i] += idf[k];
		out[i] /= total;
	}
}

void local_quote_gate(const char *question, const char *const *texts, const size_t *lens, size_t n,
		      bool *quotable)
{
	for (size_t i = 0; i < n; i++)
		quotable[i] = true;
	if (!question || n == 0)
		return;
	/* A name is a run of capitalised words that do not open a sentence ("Vilma Thorne", "Opal"):
	 * a source speaks of it only if it holds all of its words. */
	word q[QWORDS];
	uint64_t phrase[QWORDS], names = 0;
	size_t nq = 0, np = 0, qlen = strlen(question);
	word w;
	bool in_name = false;
	for (size_t at = 0; nq < QWORDS && next_word(question, qlen, &at, &w);) {
		/* whether it opens a sentence: nothing before it but spaces, or a '.', '!', '?' or ':' */
		size_t j = w.begin;
		while (j > 0 && !word_byte((unsigned char)question[j - 1]) &&
		       !strchr(".!?:", question[j - 1]))
			j--;
		bool opens = j == 0 || strchr(".!?:", question[j - 1]);
		/* a function word is judged as written, before a plural 's' is dropped ("does") */
		if (common_word(w.w, at - w.begin)) {
			in_name = false;
			continue;
		}
		size_t k = word_slot(q, &nq, &w);
		bool is_name = question[w.begin] >= 'A' && question[w.begin] <= 'Z' && !opens;
		if (is_name && !in_name)
			phrase[np++] = 0;
		if (is_name) {
			phrase[np - 1] |= (uint64_t)1 << k;
			names |= (uint64_t)1 << k;
		}
		in_name = is_name;
	}
	if (nq == 0)
		return; /* nothing to judge by */
	uint64_t held[MAX_GATED];
	size_t m = n < MAX_GATED ? n : MAX_GATED;
	size_t df[QWORDS] = {0};
	for (size_t i = 0; i < m; i++) {
		held[i] = words_held(texts[i], lens[i], q, nq);
		for (size_t k = 0; k < nq; k++)
			df[k] += (held[i] >> k) & 1;
	}
	/* Among three or more sources a word most of them hold (a boilerplate line, or the kind of
	 * fact every source states) does not say one is about the question; a name still does. */
	size_t common_at = m > 2 ? (m / 2 > 1 ? m / 2 : 1) : m;
	uint64_t telling = 0;
	for (size_t k = 0; k < nq; k++)
		if (df[k] && (df[k] <= common_at || ((names >> k) & 1)))
			telling |= (uint64_t)1 << k;
	size_t named[MAX_GATED], most_named = 0;
	for (size_t i = 0; i < m; i++) {
		named[i] = 0;
		for (size_t p = 0; p < np; p++)
			named[i] += (held[i] & phrase[p]) == phrase[p];
		most_named = named[i] > most_named ? named[i] : most_named;
	}
	for (size_t i = 0; i < m; i++)
		quotable[i] =
			(held[i] & telling) != 0 && (np == 0 || (most_named > 0 && named[i] == most_named));
}
