/* provider.h - the one interface every cloud implements. A provider knows
 * its metadata service's dialect: which requests make one round (and which
 * of them decides whether it succeeded), how the answers become the
 * normalised event list, what one round costs in requests, and how an
 * event is acknowledged (Azure StartRequests; AWS CompleteLifecycleAction
 * and its heartbeat). It decides nothing: what to do with the events, and
 * when to acknowledge, is the engine's (engine.h), when to poll is poll.c's.
 * azure.c, aws.c and gcp.c are peers behind this header; provider.c holds
 * the provider-neutral half (the config, one round in flight, the round's
 * outcome handed over exactly once), probe.c the 'auto' probe, text.c the
 * plain-text helpers. */
#ifndef SPOT_PROVIDER_H
#define SPOT_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/event.h"
#include "clouds/imds.h"

#define PROVIDER_NAME_MAX     256  /* bytes incl. NUL of this machine's name/id */
#define PROVIDER_DROPS_MAX    4    /* dropped events described per round */
#define PROVIDER_TOKEN_MAX    64   /* longest plain-text state or flag value */
#define PROVIDER_URL_MAX      2048 /* a request URL: imds-url (at most 1023 bytes) and a path */
#define PROVIDER_OPTIONAL_ERROR_MAX 512  /* bytes of a round's optional_error */
/* Longest key (id_from_first_seen) incl. NUL: the engine appends
 * "-<Unix seconds>" and the whole must stay a valid EVENT_ID_MAX id. */
#define PROVIDER_KEY_MAX      (EVENT_ID_MAX - 12)

/* An event a round could not use, with the real defect ("EventId missing",
 * "EventId longer than 127 bytes", "Resources not an array", "unknown
 * EventType 'Hibernate'", ...). */
struct provider_drop {
	char id[EVENT_ID_MAX];       /* "" when the event had no usable id */
	char reason[96];
};

/* The outcome of one round. Everything is borrowed for the callback only. */
struct provider_round {
	enum imds_result result;        /* IMDS_RESULT_OK or the failure kind */
	const char *error;              /* one line when failed, "" when OK */
	uint64_t latency_usec;          /* of the whole round */
	uint64_t done_mono_usec;        /* when the last answer was complete */
	/* On success: the events that name this machine (Azure: those whose
	 * Resources hold vm_name; every event when vm_name is still unknown),
	 * at most EVENTS_MAX of them, counted after the filter, each with its
	 * feed set. Only feeds in feeds_answered have events here. NULL on
	 * failure. */
	const struct event_list *events;
	const char *vm_name;            /* this machine's name/id, NULL until known */
	int64_t incarnation;            /* Azure DocumentIncarnation, -1 otherwise */
	size_t n_other;                 /* well-formed events for other machines */
	const struct provider_drop *drops;  /* the first PROVIDER_DROPS_MAX drops */
	size_t n_drops;                 /* events dropped in all (may exceed the above) */
	/* AWS rebalance recommendation present; when its request failed in
	 * this round, the last answer's value. */
	bool rebalance;
	/* A part of the round that failed without failing it (Azure: the
	 * compute document while Scheduled Events answered): "" when none. */
	const char *identity_error;
	/* The feeds (1u << enum event_feed) whose requests answered in this
	 * round: events of the others are unknown this round, neither seen
	 * nor gone. Only the provider's own feeds; all of them on a round
	 * that succeeded whole. 0 on failure. */
	uint32_t feeds_answered;
	/* Optional requests that failed without failing the round, each as
	 * "<item>: <error>", joined by "; " ("events/recommendations/
	 * rebalance: HTTP 500; instance/..."), "" when none (always "" on
	 * failure). */
	const char *optional_error;
	/* AWS: the metadata service is read without a session token (IMDSv1),
	 * since the token request was refused or not answered (aws-imds-
	 * fallback). Set on failed rounds too. */
	bool imds_v1;
	/* AWS: set on the one round that switched between IMDSv2 and IMDSv1
	 * (either way, success or failure), saying why ("api/token: HTTP 403:
	 * reading without a session token (IMDSv1), asking for one again every
	 * 300 s"; "api/token answered: back to IMDSv2 session tokens"), for the
	 * caller to log once; "" on every other round. */
	const char *imds_v1_change;
};

typedef void (*provider_round_cb)(const struct provider_round *r, void *userdata);

/* What an acknowledgement says: the event (by the id the provider gave it,
 * or the record's for a made-up id), the feed it came from, and for an
 * Auto Scaling termination whether a hook asked to abandon the instance
 * (LifecycleActionResult ABANDON instead of CONTINUE). */
struct provider_ack {
	const char *event_id;
	enum event_feed feed;
	bool abandon;
};

/* The answer to an approval: IMDS_RESULT_OK or the failure, with a line. */
typedef void (*provider_approve_cb)(const char *event_id, enum imds_result result,
				    const char *error, void *userdata);
/* The answer to a heartbeat: IMDS_RESULT_OK or the failure, with a line. */
typedef void (*provider_heartbeat_cb)(enum imds_result result, const char *error, void *userdata);

/* One metadata service being watched. (Not "struct provider": C has one
 * tag namespace, and enum provider in event.h holds the name.) */
struct provider_handle;

/* What a provider is told. Strings are borrowed for the call: the
 * provider keeps copies. provider_config_init sets the defaults. */
struct provider_config {
	/* e.g. "http://169.254.169.254" (a trailing '/' is dropped). Only
	 * read by provider_new. */
	const char *base_url;
	/* An override of the machine's name (--vm-name), NULL to ask the
	 * metadata service. Only read by provider_new. */
	const char *vm_name;
	/* GCP: the notice of a preemption, from instance/preempted turning
	 * TRUE to the hard power-off; 0 = GCP_PREEMPT_NOTICE_SEC. */
	uint64_t gcp_preempt_notice_sec;
	/* AWS: read the items without a session token when the token request
	 * is refused (403, 404, 405) or not answered within its timeout (at
	 * most AWS_TOKEN_FALLBACK_TIMEOUT_SEC). Default true. */
	bool aws_imds_fallback;
	/* AWS: while reading without a token, how often the token is asked
	 * again; 0 = AWS_V1_RETRY_SEC (300). */
	uint64_t aws_token_retry_sec;
	/* AWS: the Auto Scaling termination lifecycle hook this instance
	 * completes, NULL or "" for none (then no acknowledgement, no
	 * heartbeat, and a Terminated target state gets AWS_ASG_NOTICE_SEC). */
	const char *aws_lifecycle_hook;
	/* AWS: the Auto Scaling endpoint, NULL or "" for
	 * https://autoscaling.REGION.amazonaws.com (.com.cn in China). The
	 * Query API is posted to its "/" (added when missing). */
	const char *aws_autoscaling_url;
	/* AWS: the heartbeat period; 0 = derived (provider_heartbeat_period_usec). */
	uint64_t aws_heartbeat_interval_sec;
	/* AWS: the hook's HeartbeatTimeout (IMDS does not show it): the notice
	 * of a hooked termination. 0 = AWS_HEARTBEAT_TIMEOUT_DEFAULT_SEC. */
	uint64_t aws_heartbeat_timeout_sec;
};

#define AWS_HEARTBEAT_TIMEOUT_DEFAULT_SEC 3600

void provider_config_init(struct provider_config *c);

/* Returns 0, -EINVAL (no base URL, a bad name, a lifecycle hook name of
 * more than 255 bytes or with bytes other than printable ASCII) or
 * -EOPNOTSUPP (PROVIDER_AUTO). m is borrowed for the provider's lifetime. */
int provider_new(enum provider p, struct imds *m, const struct provider_config *cfg,
		 struct provider_handle **ret);
/* Applies a new config to the rounds and calls started after it; base_url
 * and vm_name keep the values provider_new got. 0 or -EINVAL (nothing
 * changed then). */
int provider_set_config(struct provider_handle *p, const struct provider_config *cfg);
void provider_free(struct provider_handle *p);
enum provider provider_kind(const struct provider_handle *p);

/* Starts one round, which ends in exactly one call of cb from the loop.
 * -EBUSY while a round is in flight; -errno when nothing could be sent (cb
 * is then not called). timeout_usec bounds each request of the round
 * (poll_request_timeout(s, false)); a provider whose round waits on
 * purpose (GCP's hanging GET) adds its wait. first_call_timeout_usec
 * (POLL_FIRST_TIMEOUT_USEC) bounds instead the one request that may take
 * that long: Azure's Scheduled Events call, until one has been answered
 * with 2xx (the first call switches the service on and can take two
 * minutes). Every other request, token and identity items included, takes
 * timeout_usec from the first round on. */
int provider_poll(struct provider_handle *p, uint64_t timeout_usec, uint64_t first_call_timeout_usec,
		  provider_round_cb cb, void *userdata);
bool provider_busy(const struct provider_handle *p);
/* Cancels the round in flight; its callback is not called. */
void provider_cancel(struct provider_handle *p);

/* Requests the next round will send to the metadata service (token and
 * identity included when they are due), so the caller can keep within its
 * rate limit before it starts the round. Exactly what the round sends when
 * it succeeds; less when it fails early; more only when AWS redoes a round
 * after a 401 (what was refused, a token, and the round again).
 *
 * A round has one essential request, whose answer decides whether the round
 * succeeded, and optional ones, which never discard that answer: one that
 * fails (an error status, a timeout, an unreadable answer) is named in
 * optional_error, its feed is left out of feeds_answered, and the events of
 * the feeds that answered are handed on. A 404 that means "nothing listed"
 * is an answer (counted IMDS_RESULT_OK by the transport). Optional requests
 * go in parallel to the essential one (IMDS_SLOT_SIDE), one after another;
 * the round ends when every request has answered.
 *
 * What a round is, per cloud:
 * - Azure (cost 1, or 2 while the name is unknown): GET scheduledevents
 *   (essential), and in parallel the compute document while the VM's name
 *   is unknown and not overridden. A failing compute document does not fail
 *   the round: vm_name stays NULL, identity_error says why ("instance
 *   metadata: HTTP 500"), every well-formed event is handed on. Reports
 *   incarnation, n_other and the drops. Feed: FEED_AZURE_SCHEDULED.
 * - AWS (cost 4 or 5, at most POLL_RATE_MAX): the IMDSv2 token when due
 *   (PUT, timeout at most 1 s; when refused or unanswered and
 *   aws-imds-fallback is on, the round goes on without a token and asks
 *   for one again every AWS_V1_RETRY_SEC, or at once when an item answers
 *   401), then in parallel: instance-id while unknown, then
 *   spot/instance-action (essential, feed FEED_AWS_SPOT); one after another
 *   the optional autoscaling/target-lifecycle-state (FEED_AWS_LIFECYCLE),
 *   events/recommendations/rebalance (rebalance) and
 *   events/maintenance/scheduled (FEED_AWS_MAINTENANCE); and, when a
 *   lifecycle hook is set and one is due, one Auto Scaling identity item
 *   (placement/region or the identity document,
 *   tags/instance/aws:autoscaling:groupName, iam/security-credentials/ and
 *   .../ROLE; optional; after a failure not again for
 *   AWS_IDENTITY_RETRY_SEC). The optional items, in that order, take what
 *   the token, the id and the notice leave of 5 requests; the rest wait for
 *   the next round (the first round leaves the maintenance list and the
 *   identity out, and FEED_AWS_MAINTENANCE out of feeds_answered). A 404 of
 *   the notice items is "nothing listed". A failing instance-id fails the
 *   round (the events name the instance). A 401 drops the token and redoes
 *   the round once, after every request in flight answered.
 * - GCP (cost 2, or 3 while the name is unknown): instance/name while
 *   unknown, then in parallel instance/preempted as a hanging GET of 1 s
 *   (essential, its timeout is the caller's + 1 s, FEED_GCP_PREEMPTED) and
 *   instance/maintenance-event (optional: it answers 503 around
 *   maintenance, FEED_GCP_MAINTENANCE). */
unsigned provider_round_cost(const struct provider_handle *p);

/* Requests to the metadata service the next acknowledgement or heartbeat
 * sends (Azure's approval is one; an Auto Scaling call sends none once
 * the region, group, role and fresh credentials are known, else one for
 * each that is missing), so the caller waits for that much room in the
 * service's rate budget. */
unsigned provider_call_cost(const struct provider_handle *p);
/* Whether events of this provider can be acknowledged: Azure (StartRequests)
 * always, AWS when a lifecycle hook is configured (CompleteLifecycleAction);
 * otherwise false. */
bool provider_can_approve(const struct provider_handle *p);
/* Sends one acknowledgement; cb is called once from the loop with
 * ack->event_id. Azure: StartRequests of the event (one request of at most
 * timeout_usec; feed FEED_AZURE_SCHEDULED). AWS: for a FEED_AWS_LIFECYCLE
 * event, CompleteLifecycleAction (LifecycleActionResult CONTINUE, or
 * ABANDON when ack->abandon) of this instance for the configured hook;
 * what it still needs is fetched first (the metadata items, each within
 * timeout_usec, on IMDS_SLOT_APPROVE; DescribeAutoScalingInstances when
 * instance tags are off), and the Auto Scaling calls take at most
 * AUTOSCALING_TIMEOUT_USEC each; an answer ExpiredToken fetches the
 * credentials again and calls once more. A failure names the call and
 * AWS's code and message ("CompleteLifecycleAction: ValidationError: No
 * active Lifecycle Action found with instance ID i-..."). -EOPNOTSUPP
 * for a provider or a feed without an acknowledgement, -EBUSY while one
 * (or, AWS, a heartbeat) is in flight, -EINVAL for an id that cannot name
 * an event, -ENXIO (AWS) while the instance id is unknown. Independent of
 * rounds: provider_cancel leaves it alone, provider_free cancels it. */
int provider_approve(struct provider_handle *p, const struct provider_ack *ack, uint64_t timeout_usec,
		     provider_approve_cb cb, void *userdata);
/* AWS with a lifecycle hook: RecordLifecycleActionHeartbeat of this
 * instance for the hook, which restarts the hook's heartbeat timeout; the
 * same preparation and limits as an acknowledgement (metadata items within
 * the last round's request timeout). cb is called once from the loop.
 * -EOPNOTSUPP otherwise, -EBUSY while a heartbeat or an acknowledgement is
 * in flight, -ENXIO while the instance id is unknown. */
int provider_heartbeat(struct provider_handle *p, provider_heartbeat_cb cb, void *userdata);
/* How often provider_heartbeat should be called while a hooked
 * termination's chain runs: aws-heartbeat-interval when set, else a third
 * of the heartbeat timeout, at least 10 s and at most 10 min (3600 s:
 * 10 min; 30 s: 10 s). 0 when the provider has no heartbeat. */
uint64_t provider_heartbeat_period_usec(const struct provider_handle *p);

/* 'auto': asks Azure's, AWS's and GCP's identity items in turn; the first
 * that answers in its own dialect decides. cb gets the provider found, or
 * PROVIDER_AUTO with the failure when none answered (or the service
 * failed/throttled: the caller probes again later). One request per call.
 * Exactly, cb gets one of:
 * - found != PROVIDER_AUTO, IMDS_RESULT_OK, "": that dialect answered (for
 *   GCP also with the response header Metadata-Flavor: Google);
 * - PROVIDER_AUTO, IMDS_RESULT_OK, a line naming the refusal: this dialect
 *   refused (404, 403, 401, a connection refused, a foreign answer, ...),
 *   call provider_probe_step again for the next one now;
 * - PROVIDER_AUTO and a failure: 429 or a 5xx (the same dialect is asked
 *   again at the next call), or all three refused (the next call starts
 *   over with Azure). Probe again later, with backoff.
 * The probe uses the IMDS_SLOT_IDENTITY slot; -EBUSY while a step is in
 * flight; -errno when nothing could be sent (cb is then not called). */
struct provider_probe;
typedef void (*provider_probe_cb)(enum provider found, enum imds_result result, const char *error,
				  void *userdata);
int provider_probe_new(struct imds *m, const char *base_url, struct provider_probe **ret);
void provider_probe_free(struct provider_probe *pr);
int provider_probe_step(struct provider_probe *pr, uint64_t timeout_usec, provider_probe_cb cb,
			void *userdata);

/* ---- pure parsers of the providers' items: no I/O, no logging ----
 * (AWS's are in aws.h, Azure's in azure.h.)
 * body need not be NUL-terminated; a NUL inside len makes it invalid.
 * Output parameters are written only on success. */

#define GCP_PREEMPT_NOTICE_SEC 30     /* soft off to hard off of a Spot VM */
#define GCP_MAINTENANCE_NOTICE_SEC 60 /* maintenance-event changes this early */
#define GCP_BOOT_TAG_MAX    16        /* bytes of the boot tag in a preemption key */

/* instance/preempted and other GCP flags: "TRUE" or "FALSE". 0 or -EBADMSG. */
int gcp_parse_flag(const char *body, size_t len, bool *ret);

/* instance/maintenance-event: "NONE" gives *ret_pending false;
 * "MIGRATE_ON_HOST_MAINTENANCE" gives Freeze; any other [A-Z][A-Z0-9_]*
 * token gives Terminate; both with *ret_pending true. 0 or -EBADMSG. */
int gcp_parse_maintenance(const char *body, size_t len, enum event_type *ret_type, bool *ret_pending);

/* The Preempt event of instance/preempted = TRUE: Scheduled, source
 * "Platform", key "gcp-preempted-<name>-<boot tag>" (id_from_first_seen;
 * boot_tag may be "", then no "-<tag>"), not_before 0 with notice_usec
 * notice_sec, resources [name], provider GCP, feed FEED_GCP_PREEMPTED.
 * 0 or -EINVAL.
 * Keys (here and in aws_lifecycle_event) stay below PROVIDER_KEY_MAX bytes:
 * a longer name is cut in the key, never the boot tag, and the resource
 * keeps the whole name. boot_tag: up to 16 bytes of [0-9a-f]. */
int gcp_preempt_event(const char *name, const char *boot_tag, uint64_t notice_sec,
		      struct spot_event *ret);

/* The event of a pending maintenance-event value: Scheduled, source
 * "Platform", key "gcp-maintenance-<value in lower case>"
 * (id_from_first_seen), not_before 0 with notice_usec
 * GCP_MAINTENANCE_NOTICE_SEC, description "host maintenance: <value>",
 * resources [name], provider GCP, feed FEED_GCP_MAINTENANCE. 0 or -EINVAL. */
int gcp_maintenance_event(const char *value, enum event_type type, const char *name,
			  struct spot_event *ret);

/* An instance id (AWS) or name (GCP): printable ASCII without spaces,
 * trailing whitespace ignored, 1..PROVIDER_NAME_MAX-1 bytes. 0 or -EBADMSG. */
int provider_parse_name(const char *body, size_t len, char *ret, size_t n);

/* The plain-text value of body: trailing whitespace dropped, the rest
 * 1..max bytes of printable ASCII other than space. Its length or -EBADMSG. */
int provider_parse_text(const char *body, size_t len, size_t max);

#endif
