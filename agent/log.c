/* log.c - the agent's only output channel for diagnostics. Under systemd it
 * writes structured journal entries (SPOT_EVENT_ID, SPOT_HOOK, PRIORITY);
 * otherwise one text or JSON line per record on stderr. It never exits and
 * never allocates on a failure path it cannot recover from. */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <systemd/sd-journal.h>

#define LOG_MESSAGE_MAX 4096

static enum log_format log_format = LOG_FORMAT_TEXT;
static int log_max_priority = LOG_INFO;

static const char *const level_names[] = {
	[LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
	[LOG_ERR] = "error", [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
	[LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

static const char *const format_names[] = {
	[LOG_FORMAT_AUTO] = "auto", [LOG_FORMAT_TEXT] = "text",
	[LOG_FORMAT_JSON] = "json", [LOG_FORMAT_JOURNAL] = "journal",
};

void log_setup(enum log_format format, int max_priority)
{
	if (format == LOG_FORMAT_AUTO)
		/* systemd sets JOURNAL_STREAM when stderr is connected to the journal. */
		format = getenv("JOURNAL_STREAM") ? LOG_FORMAT_JOURNAL : LOG_FORMAT_TEXT;
	log_format = format;
	log_max_priority = max_priority;
}

int log_get_max_priority(void)
{
	return log_max_priority;
}

int log_parse_format(const char *s, enum log_format *ret)
{
	for (size_t i = 0; i < ELEMENTSOF(format_names); i++)
		if (strcmp(s, format_names[i]) == 0) {
			*ret = (enum log_format)i;
			return 0;
		}
	return -EINVAL;
}

const char *log_format_to_string(enum log_format format)
{
	return (size_t)format < ELEMENTSOF(format_names) ? format_names[format] : "?";
}

int log_parse_level(const char *s, int *ret)
{
	for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
		if (strcmp(s, level_names[i]) == 0) {
			*ret = (int)i;
			return 0;
		}
	if (strcmp(s, "err") == 0) {
		*ret = LOG_ERR;
		return 0;
	}
	return -EINVAL;
}

const char *log_level_to_string(int priority)
{
	return priority >= 0 && (size_t)priority < ELEMENTSOF(level_names) ? level_names[priority] : "?";
}

static void emit_text(int priority, const char *event_id, const char *hook, const char *msg)
{
	if (hook)
		fprintf(stderr, "spot-agent: %s: [%s %s] %s\n", level_names[priority],
			event_id ? event_id : "-", hook, msg);
	else if (event_id)
		fprintf(stderr, "spot-agent: %s: [%s] %s\n", level_names[priority], event_id, msg);
	else
		fprintf(stderr, "spot-agent: %s: %s\n", level_names[priority], msg);
}

static void emit_json(int priority, const char *event_id, const char *hook, const char *msg)
{
	char ts[RFC3339_MAX];
	cJSON *o = cJSON_CreateObject();
	char *line;

	cJSON_AddStringToObject(o, "time", format_rfc3339(ts, sizeof(ts), now_usec(CLOCK_REALTIME)));
	cJSON_AddStringToObject(o, "level", level_names[priority]);
	if (event_id)
		cJSON_AddStringToObject(o, "event_id", event_id);
	if (hook)
		cJSON_AddStringToObject(o, "hook", hook);
	cJSON_AddStringToObject(o, "message", msg);
	line = cJSON_PrintUnformatted(o);
	if (line)
		fprintf(stderr, "%s\n", line);
	else
		emit_text(priority, event_id, hook, msg);
	cJSON_free(line);
	cJSON_Delete(o);
}

static void emit_journal(int priority, const char *event_id, const char *hook, const char *msg)
{
	int r;

	if (event_id && hook)
		r = sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", priority,
				    "SYSLOG_IDENTIFIER=spot-agent", "SPOT_EVENT_ID=%s", event_id,
				    "SPOT_HOOK=%s", hook, NULL);
	else if (event_id)
		r = sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", priority,
				    "SYSLOG_IDENTIFIER=spot-agent", "SPOT_EVENT_ID=%s", event_id, NULL);
	else if (hook)
		r = sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", priority,
				    "SYSLOG_IDENTIFIER=spot-agent", "SPOT_HOOK=%s", hook, NULL);
	else
		r = sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", priority,
				    "SYSLOG_IDENTIFIER=spot-agent", NULL);
	if (r < 0)
		emit_text(priority, event_id, hook, msg);
}

int log_emit(int priority, int error, const char *event_id, const char *hook, const char *fmt, ...)
{
	char msg[LOG_MESSAGE_MAX];
	int saved_errno = errno;
	va_list ap;
	int n;

	if (priority > log_max_priority)
		return error;
	if (priority < 0 || priority > LOG_DEBUG)
		priority = LOG_ERR;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		msg[0] = '\0';
	if (error != 0 && n >= 0 && (size_t)n < sizeof(msg))
		(void)snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(error < 0 ? -error : error));

	switch (log_format) {
	case LOG_FORMAT_JSON:
		emit_json(priority, event_id, hook, msg);
		break;
	case LOG_FORMAT_JOURNAL:
		emit_journal(priority, event_id, hook, msg);
		break;
	default:
		emit_text(priority, event_id, hook, msg);
		break;
	}
	errno = saved_errno;
	return error;
}
