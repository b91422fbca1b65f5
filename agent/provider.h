/* provider.h - watchers for the metadata services that have no Azure-style
 * event document (AWS, GCP): each turns its provider's items into the
 * normalised event list the pipeline consumes. */
#ifndef SPOT_PROVIDER_H
#define SPOT_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "imds.h"

/* The outcome of one watch round: the events now listed for this machine
 * (an empty list when nothing is pending), or a failure. */
struct watch_result {
	enum imds_result result;        /* IMDS_RESULT_OK or the failure kind */
	const char *error;              /* one line when failed, "" when OK */
	uint64_t latency_usec;          /* of the whole round */
	uint64_t done_mono_usec;        /* when the last answer was complete */
	const struct event_list *events;/* borrowed for the callback; NULL on failure */
	const char *vm_name;            /* this machine's name/id, NULL until known */
};

typedef void (*watch_callback)(const struct watch_result *r, void *userdata);

struct watcher;

/* base_url: e.g. "http://169.254.169.254" (no trailing slash). The watcher
 * uses the IMDS_SLOT_POLL and IMDS_SLOT_IDENTITY slots of m, borrowed for
 * its lifetime. */
int watcher_new(enum provider p, struct imds *m, const char *base_url, struct watcher **ret);
void watcher_free(struct watcher *w);

/* Starts one round: the requests the provider needs (a token when due,
 * the identity once, then the notice items), then calls cb once from the
 * loop. -EBUSY while a round is in flight. timeout_usec bounds each request. */
int watcher_poll(struct watcher *w, uint64_t timeout_usec, watch_callback cb, void *userdata);

/* What a round yields (every event names this machine in resources):
 * - AWS: the IMDSv2 token is fetched when none is held or it is within
 *   AWS_TOKEN_MARGIN_SEC of expiry; a 401 drops it and redoes the round once.
 *   spot/instance-action -> Preempt (aws_parse_instance_action); a 404 means
 *   none. target-lifecycle-state "Terminated" -> aws_lifecycle_event; a 404
 *   means not in an Auto Scaling group.
 * - GCP: instance/preempted TRUE -> gcp_preempt_event; a pending
 *   instance/maintenance-event -> gcp_maintenance_event.
 * First sightings are kept by the watcher (whole seconds, rounded down) so
 * that ids and deadlines stay the same from round to round; they restart
 * when the condition goes away, and with the process. */

/* Whether the last rebalance item read (AWS events/recommendations/
 * rebalance) was present. It is reported, never an event; always false for
 * GCP. */
bool watcher_rebalance_recommended(const struct watcher *w);

/* Pure parsers of the providers' items: no I/O, no logging. body need not be
 * NUL-terminated; a NUL inside len makes it invalid. Output parameters are
 * written only on success. */

#define WATCHER_NAME_MAX    100  /* bytes incl. NUL of an instance id/name */
#define WATCHER_TOKEN_MAX   64   /* longest plain-text state or flag value */
#define AWS_TOKEN_MAX       512  /* bytes of an IMDSv2 session token */
#define AWS_TOKEN_TTL_SEC   21600
#define AWS_TOKEN_MARGIN_SEC 60  /* a token this close to expiry is renewed */
#define AWS_ASG_NOTICE_SEC  120  /* assumed notice of an Auto Scaling termination */
#define GCP_PREEMPT_NOTICE_SEC 30     /* soft off to hard off of a Spot VM */
#define GCP_MAINTENANCE_NOTICE_SEC 60 /* maintenance-event changes this early */

/* spot/instance-action: {"action":"terminate|stop|hibernate","time":"<RFC 3339>"}
 * (other keys ignored, only whitespace after the object). Gives a Preempt
 * event from source "Platform", provider AWS, NotBefore = time, description
 * "spot interruption: <action>", no resources, duration -1, and the id
 * "aws-spot-<action>-<time as Unix seconds>", stable for one notice. Status
 * is Scheduled, or Started once now_wall_usec has reached the time (the item
 * stays listed while EC2 acts). *ret must be initialised or done; it is
 * overwritten. Returns 0 or -EBADMSG. */
int aws_parse_instance_action(const char *body, size_t len, uint64_t now_wall_usec,
			      struct spot_event *ret);

/* autoscaling/target-lifecycle-state: a token of 1-64 bytes of printable
 * ASCII other than space, trailing whitespace ignored.
 * *ret_terminating is true for exactly "Terminated" (not
 * "Warmed:Terminated": a warm-pool instance is not in service). Returns 0
 * or -EBADMSG (empty, too long, control or non-ASCII bytes). */
int aws_parse_lifecycle(const char *body, size_t len, bool *ret_terminating);

/* The answer to PUT /latest/api/token: printable ASCII without spaces (it
 * goes into a header line), trailing whitespace ignored, 1..AWS_TOKEN_MAX
 * bytes. Copies it into ret (size n > its length). 0 or -EBADMSG. */
int aws_parse_token(const char *body, size_t len, char *ret, size_t n);

/* True when a token expiring at expiry_mono_usec (0 = none held) must be
 * fetched before the next request: none held, or within
 * AWS_TOKEN_MARGIN_SEC of expiry. */
bool aws_token_due(uint64_t expiry_mono_usec, uint64_t now_mono_usec);

/* The event of an Auto Scaling termination (target-lifecycle-state
 * "Terminated"): Terminate, Scheduled, source "User" (the group acts for the
 * account), id "aws-asg-terminate-<instance_id>", NotBefore = first seen +
 * AWS_ASG_NOTICE_SEC, resources [instance_id], provider AWS. *ret must be
 * initialised or done; it is overwritten. 0 or -EINVAL (bad instance id). */
int aws_lifecycle_event(const char *instance_id, uint64_t first_seen_wall_usec,
			struct spot_event *ret);

/* instance/preempted and other GCP flags: "TRUE" or "FALSE" (case-sensitive),
 * trailing whitespace ignored. 0 or -EBADMSG. */
int gcp_parse_flag(const char *body, size_t len, bool *ret);

/* instance/maintenance-event: "NONE" gives *ret_pending false and *ret_type
 * EVENT_TYPE_INVALID; "MIGRATE_ON_HOST_MAINTENANCE" gives Freeze; any other
 * token of 1-64 bytes of [A-Z0-9_] starting with a letter
 * (TERMINATE_ON_HOST_MAINTENANCE, SHUTDOWN_ON_HOST_MAINTENANCE, ...) gives
 * Terminate; both with *ret_pending true. Trailing whitespace is ignored.
 * 0 or -EBADMSG. */
int gcp_parse_maintenance(const char *body, size_t len, enum event_type *ret_type, bool *ret_pending);

/* The Preempt event of instance/preempted = TRUE: Scheduled, source
 * "Platform", id "gcp-preempted-<name>" (the watcher appends the first 8
 * hex digits of the boot id), NotBefore = first seen +
 * GCP_PREEMPT_NOTICE_SEC, resources [name], provider GCP. *ret must be
 * initialised or done; it is overwritten. 0 or -EINVAL (bad name). */
int gcp_preempt_event(const char *name, uint64_t first_seen_wall_usec, struct spot_event *ret);

/* The event of a pending maintenance-event value (as gcp_parse_maintenance
 * accepts, type Freeze or Terminate): Scheduled, source "Platform", id
 * "gcp-maintenance-<value in lower case>-<first seen, Unix seconds>",
 * NotBefore = first seen + GCP_MAINTENANCE_NOTICE_SEC, description
 * "host maintenance: <value>", resources [name], provider GCP. *ret must be
 * initialised or done; it is overwritten. 0 or -EINVAL. */
int gcp_maintenance_event(const char *value, enum event_type type, const char *name,
			  uint64_t first_seen_wall_usec, struct spot_event *ret);

/* An instance id (AWS instance-id) or name (GCP instance/name): printable
 * ASCII without spaces, trailing whitespace ignored, 1..WATCHER_NAME_MAX-1
 * bytes. Copies it into ret (size n > its length). 0 or -EBADMSG. */
int watcher_parse_name(const char *body, size_t len, char *ret, size_t n);

/* When a condition was first seen, kept across rounds so that ids and
 * deadlines derived from it stay stable. key names what is seen ("" when
 * nothing); a different key starts a new sighting. */
struct watcher_sighting {
	char key[WATCHER_TOKEN_MAX + 1];
	uint64_t first_wall_usec;         /* wall clock; meaningful while key[0] */
};

/* Records that key (NULL or "" for nothing) is seen at now_wall_usec.
 * Returns the wall time key was first seen in the current unbroken run of
 * sightings, or 0 when nothing is seen. A key longer than
 * WATCHER_TOKEN_MAX is compared by its first WATCHER_TOKEN_MAX bytes. */
uint64_t watcher_sighting_update(struct watcher_sighting *s, const char *key,
				 uint64_t now_wall_usec);

/* Internal to watcher.c, aws.c and gcp.c: a provider's round. A round is a
 * chain of requests, each started from the previous one's callback, ending
 * in exactly one watcher_fail() or watcher_finish(); nothing may touch the
 * watcher after either (the callback may free it). */
struct watcher_ops {
	size_t state_size;                      /* private state, zeroed by watcher_new */
	/* Starts the first request of a round: 0, or -errno and no request
	 * in flight (watcher_poll returns it, the callback is not called). */
	int (*start_round)(struct watcher *w, void *state);
	void (*done_state)(void *state);        /* NULL when nothing to release */
};

extern const struct watcher_ops aws_watcher_ops;
extern const struct watcher_ops gcp_watcher_ops;

/* The plain-text value of body: trailing whitespace (space, tab, CR, LF)
 * dropped, the rest 1..max bytes of printable ASCII other than space.
 * Returns its length, or -EBADMSG. */
int watcher_parse_text(const char *body, size_t len, size_t max);

void *watcher_state(struct watcher *w);
/* The name set by watcher_set_vm_name, NULL until then; borrowed. */
const char *watcher_vm_name(const struct watcher *w);
void watcher_set_vm_name(struct watcher *w, const char *name);
void watcher_set_rebalance(struct watcher *w, bool recommended);
/* Starts method on base URL + path in slot with the round's timeout; cb gets
 * the watcher as userdata. 0 or -errno. */
int watcher_request(struct watcher *w, enum imds_slot slot, const char *method, const char *path,
		    const char *const *headers, imds_callback cb);
/* Ends the round with a failure (the error line is formatted from fmt) or
 * with events (ownership moves to the watcher, which frees them after the
 * callback returns). done_mono_usec 0 means now. */
void watcher_fail(struct watcher *w, enum imds_result result, uint64_t done_mono_usec,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void watcher_finish(struct watcher *w, struct event_list *events, uint64_t done_mono_usec);

#endif
