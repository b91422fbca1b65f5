/* output.c - a hook's output as log lines: bytes from its pipe cut into
 * lines (at HOOK_LINE_MAX at the latest), control characters made
 * harmless, each line logged tagged with the hook and the event and kept
 * in the result's ring, the log bounded per hook. It never reads a
 * descriptor itself: run.c feeds it what it read. */
#include "hooks/output.h"

#include <string.h>

#include "log.h"

/* Bytes below 0x20 other than tab become '?', so a hook cannot forge log
 * records or terminal escapes. Empty lines are dropped. */
static void emit_line(struct hook_output *o, char *line, size_t len)
{
	struct hook_result *r = o->res;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return;
	line[len] = '\0';
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
			line[i] = '?';
	if (o->logged_bytes < HOOK_LOG_BYTES_MAX) {
		log_hook(LOG_INFO, o->event_id, r->name, "%s", line);
		o->logged_bytes += len + 1;
	} else if (!o->drop_noted) {
		log_hook(LOG_WARNING, o->event_id, r->name,
			 "hook '%s' wrote more than %d KiB, further output is counted but not logged",
			 r->name, HOOK_LOG_BYTES_MAX / 1024);
		o->drop_noted = true;
	}
	hook_result_add_line(r, line);
}

void hook_output_feed(struct hook_output *o, const char *buf, size_t n)
{
	o->res->output_bytes += n;
	while (n > 0) {
		const char *nl = memchr(buf, '\n', n);
		size_t take = nl ? (size_t)(nl - buf) : n;
		size_t room = HOOK_LINE_MAX - o->line_len;

		if (take > room)
			take = room;
		memcpy(o->line + o->line_len, buf, take);
		o->line_len += take;
		buf += take;
		n -= take;
		if (n > 0 && *buf == '\n') {
			buf++;
			n--;
			emit_line(o, o->line, o->line_len);
			o->line_len = 0;
		} else if (o->line_len == HOOK_LINE_MAX) {
			emit_line(o, o->line, o->line_len);
			o->line_len = 0;
		}
	}
}

void hook_output_flush(struct hook_output *o)
{
	if (o->line_len > 0)
		emit_line(o, o->line, o->line_len);
	o->line_len = 0;
}
