/* event.h - the normalised eviction event and its deadline arithmetic. */
#ifndef SPOT_EVENT_H
#define SPOT_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/base.h"

#define EVENT_ID_MAX          128   /* bytes incl. NUL; longer ids are rejected */
#define EVENT_SOURCE_MAX      32
#define EVENT_DESCRIPTION_MAX 512   /* longer descriptions are truncated */
#define EVENT_RESOURCES_MAX   64    /* further names are dropped */
#define EVENT_RESOURCE_MAX    256
#define EVENTS_MAX            32    /* events kept from one document */
#define EVENT_NOTE_MAX        160
/* A longer expected duration (Azure DurationInSeconds) is taken as unknown. */
#define EVENT_DURATION_MAX_SEC JSON_INT_MAX

/* A Started event, or one seen past its NotBefore, still gets this long for
 * its hooks: the platform may act any moment, but a short checkpoint or
 * deregistration is better than nothing. */
#define EVENT_EMERGENCY_BUDGET_SEC 10

enum provider {
	PROVIDER_AZURE,
	PROVIDER_AWS,
	PROVIDER_GCP,
	PROVIDER_AUTO,
	_PROVIDER_MAX,
};

enum event_type {
	EVENT_PREEMPT,
	EVENT_TERMINATE,
	EVENT_REBOOT,
	EVENT_REDEPLOY,
	EVENT_FREEZE,
	EVENT_SHUTDOWN,     /* the OS is shutting down (logind), no platform notice */
	_EVENT_TYPE_MAX,
	EVENT_TYPE_INVALID = -1,
};

enum event_status {
	EVENT_SCHEDULED,
	EVENT_STARTED,
	_EVENT_STATUS_MAX,
	EVENT_STATUS_INVALID = -1,
};

/* Which of a provider's requests a notice came from. A record of a feed
 * whose request did not answer in a round is left as it was (neither seen
 * nor gone); only an answer of its own feed can say it is gone. */
enum event_feed {
	FEED_AZURE_SCHEDULED,   /* Azure Scheduled Events */
	FEED_AWS_SPOT,          /* spot/instance-action */
	FEED_AWS_LIFECYCLE,     /* autoscaling/target-lifecycle-state */
	FEED_AWS_MAINTENANCE,   /* events/maintenance/scheduled */
	FEED_GCP_PREEMPTED,     /* instance/preempted */
	FEED_GCP_MAINTENANCE,   /* instance/maintenance-event */
	FEED_OS,                /* logind's PrepareForShutdown (no request) */
	_EVENT_FEED_MAX,
};
#define EVENT_FEEDS_ALL ((1u << _EVENT_FEED_MAX) - 1)

/* A notice the provider itself says is over, still listed as such (AWS
 * maintenance events in state completed or canceled): END_NONE for a live
 * one. A notice that simply leaves the listing is gone, which the engine
 * tells apart from these after its grace. */
enum event_end {
	END_NONE,
	END_COMPLETED,          /* it happened and is over (the VM lived) */
	END_CANCELED,           /* the platform called it off */
	_EVENT_END_MAX,
};

struct spot_event {
	char id[EVENT_ID_MAX];
	enum event_type type;
	enum event_status status;
	char source[EVENT_SOURCE_MAX];            /* "Platform", "User", "" */
	uint64_t not_before_usec;                 /* wall clock; 0 = unknown/empty */
	char description[EVENT_DESCRIPTION_MAX];
	int64_t duration_sec;                     /* -1 = unknown */
	enum provider provider;
	char (*resources)[EVENT_RESOURCE_MAX];    /* owned; event_done frees */
	size_t n_resources;
	/* Set by a provider whose notice carries no id or no time of its own
	 * (AWS spot and Auto Scaling, GCP). The engine fixes both at the first
	 * sighting and persists them in the record, so they are the same
	 * before and after a restart. Not part of the JSON form. */
	bool id_from_first_seen;    /* id is a stable key; the record's id is
				     * "<key>-<first sighting, Unix seconds>" */
	uint64_t notice_usec;       /* when not_before_usec is 0: NotBefore is
				     * the first sighting + this (0 = unknown) */
	enum event_feed feed;
	enum event_end end;
	/* The platform waits for this notice's acknowledgement (Azure
	 * StartRequests; an Auto Scaling termination with a lifecycle hook the
	 * agent completes): the engine sends it once the chain is done. Not
	 * part of the JSON form (the record keeps it). */
	bool needs_ack;
	/* What the provider could not use in this notice and how it coped
	 * ("NotBefore '...' is out of range, taken as unknown"), for the log;
	 * "" when nothing. Not part of the JSON form. */
	char note[EVENT_NOTE_MAX];
};

struct event_list {
	struct spot_event *events;  /* owned */
	size_t n_events;
};

void event_init(struct spot_event *ev);
void event_done(struct spot_event *ev);
/* Deep copy; dst must be initialised or done (any resources it still
 * holds are freed first). */
void event_copy(struct spot_event *dst, const struct spot_event *src);
void event_list_done(struct event_list *l);

const char *event_type_to_string(enum event_type t);
/* Case-sensitive as the wire format; EVENT_TYPE_INVALID when unknown. */
enum event_type event_type_from_string(const char *s);
const char *event_status_to_string(enum event_status s);
enum event_status event_status_from_string(const char *s);
const char *provider_to_string(enum provider p);
const char *event_feed_to_string(enum event_feed f);
int provider_from_string(const char *s, enum provider *ret);

/* Parses a NotBefore: RFC 1123 ("Mon, 19 Sep 2016 18:29:47 GMT"), the AWS
 * maintenance form ("21 Jan 2019 09:00:43 GMT") or ISO 8601/RFC 3339
 * ("2016-09-19T18:29:47Z", fraction and numeric offset accepted).
 * "" gives 0. Returns 0, -EINVAL when s is not such a time, or -ERANGE for
 * an instant before 1970 or from 2200-01-01T00:00:00Z on (UTC), which the
 * agent's JSON could not carry exactly (JSON_TIME_MAX_USEC).
 * RFC 1123: optional weekday ("Tue, ", not cross-checked against the date),
 * day of 1-2 digits, English month abbreviation, 4-digit year, HH:MM:SS,
 * zone GMT, UTC or +hhmm/-hhmm (names ASCII case-insensitive). ISO 8601:
 * YYYY-MM-DD, 'T' (or 't' or one space), HH:MM:SS, optional '.' and 1-9
 * fraction digits (kept to the microsecond), zone Z or +hh:mm/+hhmm. Fields
 * are range-checked (Feb 29 only in leap years, hour < 24, no leap second),
 * single spaces only, nothing may follow. Independent of locale and TZ. */
int event_parse_time(const char *s, uint64_t *ret_wall_usec);

/* True when ev names resource vm_name (ASCII case-insensitive). */
bool event_names_resource(const struct spot_event *ev, const char *vm_name);

/* The deadline for a NotBefore not yet reached (not_before > now):
 * NotBefore - margin, but never less time than the margin itself, nor
 * than all the notice when there is less: a little more notice never
 * means less time for the hooks. With L the notice left and M the margin:
 * L <= M: NotBefore; M < L < 2M: now + M; else NotBefore - M. */
uint64_t event_margin_deadline(uint64_t not_before_usec, uint64_t now_wall_usec, uint64_t margin_usec);

/* The wall-clock deadline of the hook chain, never later than NotBefore:
 * - Started, no NotBefore, or NotBefore already reached: now +
 *   EVENT_EMERGENCY_BUDGET_SEC (the emergency budget);
 * - otherwise event_margin_deadline.
 * *ret_emergency (may be NULL) is true in the first case and when less
 * notice is left than the margin. */
uint64_t event_deadline(const struct spot_event *ev, uint64_t now_wall_usec,
			uint64_t margin_usec, bool *ret_emergency);

/* Helpers shared by the provider parsers. */

/* True when id can name an event: non-empty, shorter than EVENT_ID_MAX,
 * UTF-8 and free of control characters (it ends up in environments, logs
 * and JSON, and must read back byte for byte to match the next answer). */
bool event_id_valid(const char *id);

/* Copies src into dst (size n >= 1) as UTF-8 text: bytes that are not UTF-8
 * become U+FFFD, and what does not fit is cut at a character boundary.
 * Never fails. */
void event_set_text(char *dst, size_t n, const char *src);

/* Appends a resource name (made UTF-8 text as event_set_text). -EINVAL for
 * an empty name or one of EVENT_RESOURCE_MAX bytes or more, -E2BIG once
 * EVENT_RESOURCES_MAX names are held; 0 otherwise. */
int event_add_resource(struct spot_event *ev, const char *name);

/* Sets ev->note (printf format), cut to fit, control characters and bytes
 * that are not UTF-8 replaced: it quotes what the metadata service sent. */
void event_set_note(struct spot_event *ev, const char *fmt, ...) _printf_(2, 3);

/* Formats a wall-clock time as RFC 3339 UTC ("2016-09-19T18:29:47Z", with a
 * ".ffffff" fraction only when it is not whole seconds) into buf; "" for 0.
 * event_parse_time reads it back exactly. Returns buf. */
#define EVENT_TIME_MAX 40
char *event_format_time(char *buf, size_t n, uint64_t wall_usec);

/* Field-by-field equality, resources included in order. */
bool event_equal(const struct spot_event *a, const struct spot_event *b);

#endif
