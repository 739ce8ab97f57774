/*
 * Error codes and the thread-local message slot. One table maps codes to
 * the names used in JSON error bodies and to HTTP statuses.
 */
#include "common.h"

#include <stdio.h>
#include <string.h>

#define AG_ERROR_MAX 1024

static _Thread_local char error_msg[AG_ERROR_MAX];
static _Thread_local int error_code;

static const struct {
	int code;
	const char *name;
	int http;
} error_table[] = {
	{AG_OK, "ok", 200},
	{AG_ERR, "internal_error", 500},
	{AG_ENOMEM, "out_of_memory", 503},
	{AG_EINVAL, "bad_request", 400},
	{AG_ENOTFOUND, "not_found", 404},
	{AG_EUNAUTH, "unauthorized", 401},
	{AG_EDENIED, "forbidden", 403},
	{AG_ELIMIT, "too_large", 413},
	{AG_ETIMEOUT, "timeout", 504},
	{AG_ECORRUPT, "corrupt", 422},
	{AG_EBUSY, "busy", 503},
	{AG_EIO, "io_error", 500},
	{AG_ECONFLICT, "conflict", 409},
	{AG_EUNSUPPORTED, "unsupported", 415},
};

static void set_message(const char *fmt, va_list ap)
{
	/* The message may be built from the previous one (ag_error_wrap), so format aside first. */
	char tmp[AG_ERROR_MAX];
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	memcpy(error_msg, tmp, sizeof tmp);
}

int ag_error_set(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	set_message(fmt, ap);
	va_end(ap);
	error_code = code;
	return code;
}

int ag_error_wrap(int code, const char *fmt, ...)
{
	char prefix[AG_ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	if (error_msg[0]) {
		char tmp[AG_ERROR_MAX];
		/* Truncation is acceptable: the message stays readable. */
		if (snprintf(tmp, sizeof tmp, "%s: %s", prefix, error_msg) < 0)
			tmp[0] = '\0';
		memcpy(error_msg, tmp, sizeof tmp);
	} else {
		memcpy(error_msg, prefix, sizeof prefix);
	}
	error_code = code;
	return code;
}

const char *ag_error_last(void) { return error_msg; }
int ag_error_code(void) { return error_code; }

void ag_error_clear(void)
{
	error_msg[0] = '\0';
	error_code = 0;
}

const char *ag_error_name(int code)
{
	for (size_t i = 0; i < sizeof error_table / sizeof error_table[0]; i++)
		if (error_table[i].code == code)
			return error_table[i].name;
	return "internal_error";
}

int ag_error_http_status(int code)
{
	for (size_t i = 0; i < sizeof error_table / sizeof error_table[0]; i++)
		if (error_table[i].code == code)
			return error_table[i].http;
	return 500;
}
