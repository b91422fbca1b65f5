/* log.h - leveled logging to the journal, or text/JSON lines on stderr. */
#ifndef SPOT_LOG_H
#define SPOT_LOG_H

#include <syslog.h>

#include "util.h"

enum log_format {
	LOG_FORMAT_AUTO,    /* journal under systemd, else text */
	LOG_FORMAT_TEXT,
	LOG_FORMAT_JSON,
	LOG_FORMAT_JOURNAL,
};

/* Chooses the back end and the most verbose syslog priority still shown. */
void log_setup(enum log_format format, int max_priority);
int log_get_max_priority(void);

int log_parse_format(const char *s, enum log_format *ret);
const char *log_format_to_string(enum log_format format);
int log_parse_level(const char *s, int *ret);
const char *log_level_to_string(int priority);

/* Emits one record. event_id and hook may be NULL; they become the journal
 * fields SPOT_EVENT_ID and SPOT_HOOK (and keys of a JSON line). When error is
 * nonzero (a negative errno), its description is appended. Returns error, so
 * callers can write `return log_errno(r, ...)`. */
int log_emit(int priority, int error, const char *event_id, const char *hook,
	     const char *fmt, ...) _printf_(5, 6);

#define log_debug(...)   log_emit(LOG_DEBUG, 0, NULL, NULL, __VA_ARGS__)
#define log_info(...)    log_emit(LOG_INFO, 0, NULL, NULL, __VA_ARGS__)
#define log_notice(...)  log_emit(LOG_NOTICE, 0, NULL, NULL, __VA_ARGS__)
#define log_warning(...) log_emit(LOG_WARNING, 0, NULL, NULL, __VA_ARGS__)
#define log_error(...)   log_emit(LOG_ERR, 0, NULL, NULL, __VA_ARGS__)
#define log_errno(r, ...)         log_emit(LOG_ERR, (r), NULL, NULL, __VA_ARGS__)
#define log_warning_errno(r, ...) log_emit(LOG_WARNING, (r), NULL, NULL, __VA_ARGS__)
#define log_event(prio, id, ...)  log_emit((prio), 0, (id), NULL, __VA_ARGS__)
#define log_hook(prio, id, hook, ...) log_emit((prio), 0, (id), (hook), __VA_ARGS__)

#endif
