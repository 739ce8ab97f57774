/*
 * A stand-alone driver for the libFuzzer-style harnesses in tests/fuzz/, so
 * they build and run without libFuzzer. With file arguments it replays each
 * file; without, it runs a short smoke fuzz: random inputs and byte-level
 * mutations of the seed files in tests/fuzz/corpus/<harness name>/.
 * FUZZ_ITERATIONS sets how many inputs (default 3000); FUZZ_SEED the PRNG seed.
 * main is weak so a harness may bring its own.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng_state;

static uint64_t next_random(void)
{
	/* splitmix64: small, good enough to drive mutations */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int run_file(const char *path)
{
	char *data;
	size_t len;
	if (ag_read_file(path, 64 << 20, &data, &len)) {
		fprintf(stderr, "%s\n", ag_error_last());
		return 1;
	}
	LLVMFuzzerTestOneInput((const uint8_t *)data, len);
	ag_free(data);
	return 0;
}

typedef struct seeds {
	char *data[256];
	size_t len[256];
	int n;
} seeds;

static void load_seeds(seeds *s, const char *name)
{
	const char *src = getenv("AGENTD_SRC");
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", src ? src : ".", name);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) && s->n < 256) {
		if (e->d_name[0] == '.')
			continue;
		char path[8192];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (ag_read_file(path, 1 << 20, &s->data[s->n], &s->len[s->n]) == 0)
			s->n++;
	}
	closedir(d);
}

static const char *const tokens[] = {"{",
				     "}",
				     "[",
				     "]",
				     "\"",
				     ":",
				     ",",
				     "=",
				     "\n",
				     "#",
				     "\\",
				     "%",
				     "/",
				     "\xff",
				     "\xc3\xa9",
				     "-1",
				     "99999999999999999999",
				     "\0",
				     " "};

static size_t mutate(uint8_t *buf, size_t len, size_t cap)
{
	int rounds = 1 + (int)(next_random() % 8);
	for (int r = 0; r < rounds; r++) {
		uint64_t k = next_random();
		size_t pos = len ? (size_t)(next_random() % len) : 0;
		switch (k % 5) {
		case 0: /* flip a byte */
			if (len)
				buf[pos] ^= (uint8_t)(1u << (next_random() % 8));
			break;
		case 1: /* random byte */
			if (len)
				buf[pos] = (uint8_t)next_random();
			break;
		case 2: /* delete a run */
			if (len) {
				size_t n = 1 + (size_t)(next_random() % 16);
				if (pos + n > len)
					n = len - pos;
				memmove(buf + pos, buf + pos + n, len - pos - n);
				len -= n;
			}
			break;
		case 3: { /* insert a token */
			const char *t = tokens[next_random() % (sizeof tokens / sizeof tokens[0])];
			size_t n = strlen(t) ? strlen(t) : 1;
			if (len + n <= cap) {
				memmove(buf + pos + n, buf + pos, len - pos);
				memcpy(buf + pos, t, n);
				len += n;
			}
			break;
		}
		default: /* truncate */ len = pos; break;
		}
	}
	return len;
}

__attribute__((weak)) int main(int argc, char **argv)
{
	ag_alloc_init();
	ag_log_set_level(AG_LOG_OFF);
	if (argc > 1) {
		int rc = 0;
		for (int i = 1; i < argc; i++)
			rc |= run_file(argv[i]);
		return rc;
	}
	const char *name = strrchr(argv[0], '/');
	name = name ? name + 1 : argv[0];
	seeds s = {0};
	load_seeds(&s, name);
	long iterations = 3000;
	const char *it = getenv("FUZZ_ITERATIONS");
	if (it)
		iterations = strtol(it, NULL, 10);
	const char *seed = getenv("FUZZ_SEED");
	rng_state = seed ? strtoull(seed, NULL, 10) : 0x5eedULL;
	size_t cap = 1 << 16;
	uint8_t *buf = malloc(cap);
	if (!buf)
		return 1;
	for (int i = 0; i < s.n; i++)
		LLVMFuzzerTestOneInput((const uint8_t *)s.data[i], s.len[i]);
	for (long i = 0; i < iterations; i++) {
		size_t len;
		if (s.n && next_random() % 8) {
			int k = (int)(next_random() % (uint64_t)s.n);
			len = s.len[k] < cap ? s.len[k] : cap;
			memcpy(buf, s.data[k], len);
			len = mutate(buf, len, cap);
		} else {
			len = (size_t)(next_random() % 512);
			for (size_t j = 0; j < len; j++)
				buf[j] = (uint8_t)next_random();
		}
		LLVMFuzzerTestOneInput(buf, len);
	}
	free(buf);
	for (int i = 0; i < s.n; i++)
		ag_free(s.data[i]);
	printf("%s: %ld inputs and %d seeds ran without a crash\n", name, iterations, s.n);
	printf("1 passed, 0 failed\n");
	return 0;
}
