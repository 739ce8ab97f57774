/* Small utilities: randomness and hashing (libsodium), encodings, time, files, numbers. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int ag_random_bytes(void *buf, size_t n)
{
	if (sodium_init() < 0)
		return ag_error_set(AG_ERR, "libsodium failed to initialise");
	randombytes_buf(buf, n);
	return 0;
}

size_t ag_b64url_len(size_t n) { return (n * 4 + 2) / 3; }

void ag_b64url_encode(char *out, const uint8_t *in, size_t n)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0, i = 0;
	for (; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = alphabet[v >> 6 & 63];
		out[o++] = alphabet[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = alphabet[v >> 6 & 63];
	}
	out[o] = '\0';
}

void ag_hex_encode(char *out, const uint8_t *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int ag_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int ag_hex_decode(uint8_t *out, size_t out_len, const char *hex)
{
	if (strlen(hex) != out_len * 2)
		return ag_error_set(AG_EINVAL, "hex string must be %zu characters", out_len * 2);
	for (size_t i = 0; i < out_len; i++) {
		int hi = ag_hex_digit((unsigned char)hex[2 * i]),
		    lo = ag_hex_digit((unsigned char)hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return ag_error_set(AG_EINVAL, "invalid hex digit");
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

void ag_sha256(uint8_t out[32], const void *data, size_t n) { crypto_hash_sha256(out, data, n); }

char *ag_new_id(const char *prefix)
{
	uint8_t raw[12];
	char hex[25];
	if (ag_random_bytes(raw, sizeof raw))
		return NULL;
	ag_hex_encode(hex, raw, sizeof raw);
	size_t n = strlen(prefix) + 1 + 24 + 1;
	char *id = ag_malloc(n);
	if (!id) {
		ag_error_set(AG_ENOMEM, "out of memory making an id");
		return NULL;
	}
	snprintf(id, n, "%s_%s", prefix, hex);
	return id;
}

int64_t ag_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ag_monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void ag_format_time(char *out, size_t out_len, int64_t ms)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char base[24];
	strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, out_len, "%s.%03dZ", base, (int)(ms % 1000));
}

int ag_parse_long(const char *s, long long min, long long max, long long *out)
{
	if (!s || !*s)
		return ag_error_set(AG_EINVAL, "expected a number, got nothing");
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || end == s)
		return ag_error_set(AG_EINVAL, "'%s' is not a whole number", s);
	if (v < min || v > max)
		return ag_error_set(AG_EINVAL, "%lld is out of range [%lld, %lld]", v, min, max);
	*out = v;
	return 0;
}

int ag_read_file(const char *path, size_t max_bytes, char **out, size_t *len_out)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ag_error_set(errno == ENOENT ? AG_ENOTFOUND : AG_EIO, "%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return ag_error_set(AG_EIO, "%s: not a regular file", path);
	}
	if ((uint64_t)st.st_size > max_bytes) {
		close(fd);
		return ag_error_set(AG_ELIMIT, "%s: %lld bytes is over the limit of %zu", path,
				    (long long)st.st_size, max_bytes);
	}
	size_t n = (size_t)st.st_size;
	char *buf = ag_malloc(n + 1);
	if (!buf) {
		close(fd);
		return ag_error_set(AG_ENOMEM, "out of memory reading %s", path);
	}
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	*out = buf;
	if (len_out)
		*len_out = got;
	return 0;
}

int ag_write_file(const char *path, const void *data, size_t len, unsigned mode)
{
	char tmp[PATH_MAX];
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= sizeof tmp)
		return ag_error_set(AG_EINVAL, "path too long: %s", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
	if (fd < 0)
		return ag_error_set(AG_EIO, "%s: %s", tmp, strerror(errno));
	fchmod(fd, (mode_t)mode);
	const char *p = data;
	size_t left = len;
	while (left) {
		ssize_t w = write(fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = errno;
			close(fd);
			unlink(tmp);
			return ag_error_set(AG_EIO, "writing %s: %s", tmp, strerror(e));
		}
		p += w;
		left -= (size_t)w;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		unlink(tmp);
		return ag_error_set(AG_EIO, "syncing %s: %s", tmp, strerror(errno));
	}
	if (rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return ag_error_set(AG_EIO, "renaming to %s: %s", path, strerror(e));
	}
	return 0;
}

int ag_mkdirs(const char *path, unsigned mode)
{
	char buf[PATH_MAX];
	if ((size_t)snprintf(buf, sizeof buf, "%s", path) >= sizeof buf)
		return ag_error_set(AG_EINVAL, "path too long: %s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, (mode_t)mode) < 0 && errno != EEXIST)
			return ag_error_set(AG_EIO, "creating %s: %s", buf, strerror(errno));
		*p = '/';
	}
	if (mkdir(buf, (mode_t)mode) < 0 && errno != EEXIST)
		return ag_error_set(AG_EIO, "creating %s: %s", buf, strerror(errno));
	return 0;
}
