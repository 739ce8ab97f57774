/*
 * Logging: one line per event on stderr, "time level req=ID message", so
 * lines of concurrent requests can be told apart and grepped.
 */
#include "common.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static atomic_int log_level = AG_LOG_INFO;
static _Thread_local char request_id[64];

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void ag_log_set_level(ag_log_level level) { atomic_store(&log_level, (int)level); }

int ag_log_parse_level(const char *name, ag_log_level *out)
{
	for (int i = 0; i <= AG_LOG_OFF; i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			*out = (ag_log_level)i;
			return 0;
		}
	}
	return ag_error_set(AG_EINVAL, "unknown log level '%s' (debug, info, warn, error, off)", name);
}

void ag_log_set_request_id(const char *id)
{
	if (!id) {
		request_id[0] = '\0';
		return;
	}
	snprintf(request_id, sizeof request_id, "%s", id);
}

const char *ag_log_request_id(void) { return request_id; }

void ag_log(ag_log_level level, const char *fmt, ...)
{
	if ((int)level < atomic_load(&log_level) || level >= AG_LOG_OFF)
		return;
	char msg[2048], ts[32];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	/* Keep one event on one line whatever the message holds. */
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	ag_format_time(ts, sizeof ts, ag_now_ms());
	if (request_id[0])
		fprintf(stderr, "%s %-5s req=%s %s\n", ts, level_names[level], request_id, msg);
	else
		fprintf(stderr, "%s %-5s %s\n", ts, level_names[level], msg);
}
