/*
 * common: the small shared layer every agentd module stands on.
 *
 * Errors: functions return 0 or a negative AG_E* code and leave a message in a
 * thread-local slot (ag_error_last()). Memory: every allocation goes through
 * ag_malloc and friends, so tests can make the Nth allocation fail. Also here:
 * a growable string buffer, an arena for per-request memory, one-line logging
 * with a request id, JSON helpers over jansson, SQLite helpers (WAL,
 * synchronous=FULL, migrations) and a few crypto/time utilities over libsodium.
 */
#ifndef AG_COMMON_H
#define AG_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include <jansson.h>
#include <sqlite3.h>

/* ---------------------------------------------------------------- errors */

enum {
	AG_OK = 0,
	AG_ERR = -1,          /* internal error, no better code */
	AG_ENOMEM = -2,       /* allocation failed */
	AG_EINVAL = -3,       /* bad input from the caller */
	AG_ENOTFOUND = -4,    /* no such object */
	AG_EUNAUTH = -5,      /* no or wrong credentials */
	AG_EDENIED = -6,      /* credentials fine, permission missing */
	AG_ELIMIT = -7,       /* a size or count limit was exceeded */
	AG_ETIMEOUT = -8,     /* a time limit was exceeded */
	AG_ECORRUPT = -9,     /* stored or supplied data is inconsistent */
	AG_EBUSY = -10,       /* try again later (locked, overloaded) */
	AG_EIO = -11,         /* operating system or file error */
	AG_ECONFLICT = -12,   /* state conflict (exists already, wrong state) */
	AG_EUNSUPPORTED = -13 /* valid but not supported here */
};

/* Sets the thread's error message and returns code, so `return ag_error_set(...)` reads well. */
int ag_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Like ag_error_set but prefixes the current message: "context: previous message". */
int ag_error_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *ag_error_last(void); /* never NULL; "" when no error */
int ag_error_code(void);
void ag_error_clear(void);
const char *ag_error_name(int code); /* "bad_request", "not_found", ... */
int ag_error_http_status(int code);  /* 400, 404, ... */

/* ------------------------------------------------------- allocation gate */

void *ag_malloc(size_t n);
void *ag_calloc(size_t count, size_t size);
void *ag_realloc(void *p, size_t n);
void ag_free(void *p);
char *ag_strdup(const char *s);
char *ag_strndup(const char *s, size_t n);

/* Fault injection for tests. Process-wide: fail the allocation that comes
 * `n` allocations from now (1 = the next one); 0 disarms. */
void ag_alloc_fail_after(long n);
/* Per-thread: the same, counting only this thread's allocations. Used by the
 * daemon's fault-injection hook so one request is hit and not its neighbours. */
void ag_alloc_thread_fail_after(long n);
/* Allocations made by this thread since it started (for fault-injection loops). */
long ag_alloc_thread_count(void);
/* Allocations that failed on this thread (injected or real): lets a caller tell a
 * library's "parse error" apart from an allocation failure inside it. */
long ag_alloc_thread_failures(void);
/* Routes jansson's allocations through the gate. Call once at start-up. */
void ag_alloc_init(void);

/* --------------------------------------------------------- string buffer */

typedef struct ag_buf {
	char *data; /* NUL-terminated when len > 0 or after any append */
	size_t len;
	size_t cap;
} ag_buf;

#define AG_BUF_INIT                                                                                          \
	{                                                                                                    \
		NULL, 0, 0                                                                                   \
	}

int ag_buf_reserve(ag_buf *b, size_t extra);
int ag_buf_append(ag_buf *b, const void *data, size_t n);
int ag_buf_puts(ag_buf *b, const char *s);
int ag_buf_putc(ag_buf *b, char c);
int ag_buf_printf(ag_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ag_buf_vprintf(ag_buf *b, const char *fmt, va_list ap);
void ag_buf_clear(ag_buf *b);
/* Hands the data to the caller (free with ag_free) and resets the buffer. */
char *ag_buf_detach(ag_buf *b, size_t *len_out);
void ag_buf_free(ag_buf *b);

/* ----------------------------------------------------------------- arena */

typedef struct ag_arena ag_arena;

ag_arena *ag_arena_new(size_t block_size);
void *ag_arena_alloc(ag_arena *a, size_t n); /* 16-byte aligned; NULL on failure */
char *ag_arena_strdup(ag_arena *a, const char *s);
char *ag_arena_strndup(ag_arena *a, const char *s, size_t n);
size_t ag_arena_used(const ag_arena *a);
void ag_arena_free(ag_arena *a);

/* --------------------------------------------------------------- logging */

typedef enum { AG_LOG_DEBUG, AG_LOG_INFO, AG_LOG_WARN, AG_LOG_ERROR, AG_LOG_OFF } ag_log_level;

void ag_log_set_level(ag_log_level level);
int ag_log_parse_level(const char *name, ag_log_level *out);
/* The request id shown on this thread's log lines; NULL clears it. */
void ag_log_set_request_id(const char *id);
const char *ag_log_request_id(void);
/* One line per event on stderr: time, level, request id, message. */
void ag_log(ag_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ag_debug(...) ag_log(AG_LOG_DEBUG, __VA_ARGS__)
#define ag_info(...)  ag_log(AG_LOG_INFO, __VA_ARGS__)
#define ag_warn(...)  ag_log(AG_LOG_WARN, __VA_ARGS__)
#define ag_error(...) ag_log(AG_LOG_ERROR, __VA_ARGS__)

/* ------------------------------------------------------------------ JSON */

/* Parses text into a JSON value; on failure AG_EINVAL with line and column. */
int ag_json_parse(json_t **out, const char *text, size_t len);
/* Serialises compactly; the result is the caller's (ag_free). */
int ag_json_dump(char **out, size_t *len_out, const json_t *v);
/* Field getters: `required` false leaves *out untouched when the key is absent.
 * A present field of the wrong type is AG_EINVAL naming the field. */
int ag_json_get_string(const json_t *obj, const char *key, bool required, const char **out);
int ag_json_get_int(const json_t *obj, const char *key, bool required, long long *out);
int ag_json_get_number(const json_t *obj, const char *key, bool required, double *out);
int ag_json_get_bool(const json_t *obj, const char *key, bool required, bool *out);
int ag_json_get_array(const json_t *obj, const char *key, bool required, json_t **out);
int ag_json_get_object(const json_t *obj, const char *key, bool required, json_t **out);
/* AG_EINVAL naming the first key of obj not in the NULL-terminated list. */
int ag_json_check_keys(const json_t *obj, const char *const *allowed);

/* ---------------------------------------------------------------- SQLite */

/* Opens (creating) a database in WAL mode with synchronous=FULL, foreign keys
 * on and a busy timeout. */
int ag_db_open(sqlite3 **out, const char *path);
int ag_db_open_readonly(sqlite3 **out, const char *path);
void ag_db_close(sqlite3 *db);
int ag_db_exec(sqlite3 *db, const char *sql);
int ag_db_prepare(sqlite3 *db, sqlite3_stmt **out, const char *sql);
/* Maps an SQLite result code to an AG_E* code with the database's message. */
int ag_db_error(sqlite3 *db, int rc, const char *what);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. ag_db_rollback ignores errors. */
int ag_db_begin(sqlite3 *db);
int ag_db_commit(sqlite3 *db);
void ag_db_rollback(sqlite3 *db);
/* Bind helpers that treat NULL as SQL NULL and take the length of s. */
int ag_db_bind_text(sqlite3_stmt *st, int idx, const char *s);
/* Column text copied with ag_strdup ("" for NULL); NULL on allocation failure. */
char *ag_db_column_strdup(sqlite3_stmt *st, int col);

/* A module's schema: migration i (from 1) is sql[i-1]. Each runs once, in its
 * own transaction, recorded in schema_migrations(module, version). */
typedef struct ag_migration_set {
	const char *module;
	const char *const *sql;
	int count;
} ag_migration_set;

int ag_db_migrate(sqlite3 *db, const ag_migration_set *set);
int ag_db_schema_version(sqlite3 *db, const char *module, int *out);

/* ------------------------------------------------------------- utilities */

int ag_random_bytes(void *buf, size_t n);
/* URL-safe base64 without padding; out needs ag_b64url_len(n) + 1 bytes. */
size_t ag_b64url_len(size_t n);
void ag_b64url_encode(char *out, const uint8_t *in, size_t n);
/* Lower-case hex; out needs 2n + 1 bytes. */
void ag_hex_encode(char *out, const uint8_t *in, size_t n);
int ag_hex_decode(uint8_t *out, size_t out_len, const char *hex);
/* The value of one hex digit (either case), or -1. */
int ag_hex_digit(int c);
void ag_sha256(uint8_t out[32], const void *data, size_t n);
/* A random id like "run_3f9a..." (prefix + '_' + 24 hex chars); caller frees. */
char *ag_new_id(const char *prefix);

int64_t ag_now_ms(void);       /* wall clock, milliseconds since the epoch */
int64_t ag_monotonic_ns(void); /* for durations */
/* ISO 8601 UTC with milliseconds; out needs 25 bytes. */
void ag_format_time(char *out, size_t out_len, int64_t ms);

/* Parses a whole decimal integer within [min, max]; AG_EINVAL otherwise. */
int ag_parse_long(const char *s, long long min, long long max, long long *out);

/* Reads a whole file (at most max_bytes) into a NUL-terminated buffer. */
int ag_read_file(const char *path, size_t max_bytes, char **out, size_t *len_out);
/* Writes a file atomically (temp file, fsync, rename) with the given mode. */
int ag_write_file(const char *path, const void *data, size_t len, unsigned mode);
/* mkdir -p with the given mode. */
int ag_mkdirs(const char *path, unsigned mode);

#endif
