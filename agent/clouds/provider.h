/* provider.h - the one interface every cloud implements. A provider knows
 * its metadata service's dialect: which requests make one round, how the
 * answers become the normalised event list, what one round costs in
 * requests, and (Azure only) how an event is approved. It decides nothing:
 * what to do with the events is the engine's (engine.h), when to poll is
 * poll.c's. azure.c, aws.c and gcp.c are peers behind this header;
 * provider.c holds the provider-neutral half (one round in flight, the
 * round's outcome handed over exactly once, the 'auto' probe). */
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
	 * at most EVENTS_MAX of them, counted after the filter. NULL on failure. */
	const struct event_list *events;
	const char *vm_name;            /* this machine's name/id, NULL until known */
	int64_t incarnation;            /* Azure DocumentIncarnation, -1 otherwise */
	size_t n_other;                 /* well-formed events for other machines */
	const struct provider_drop *drops;  /* the first PROVIDER_DROPS_MAX drops */
	size_t n_drops;                 /* events dropped in all (may exceed the above) */
	bool rebalance;                 /* AWS rebalance recommendation present */
	/* A part of the round that failed without failing it (Azure: the
	 * compute document while Scheduled Events answered): "" when none. */
	const char *identity_error;
	/* The feeds (1u << enum event_feed) whose requests answered in this
	 * round: events of the others are unknown this round, neither seen
	 * nor gone. Every feed of the provider on a round that succeeded
	 * whole. */
	uint32_t feeds_answered;
	/* Optional requests that failed without failing the round, one line
	 * ("events/recommendations/rebalance: HTTP 500; ..."), "" when none. */
	const char *optional_error;
	/* AWS: the metadata service is read without a session token (IMDSv1),
	 * since the token request was refused or not answered. */
	bool imds_v1;
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

/* One metadata service being watched. (Not "struct provider": C has one
 * tag namespace, and enum provider in event.h holds the name.) */
struct provider_handle;

/* base_url: e.g. "http://169.254.169.254" (a trailing '/' is dropped).
 * vm_name: an override of the machine's name (--vm-name), NULL to ask the
 * metadata service. m is borrowed for the provider's lifetime. Returns 0,
 * -EINVAL or -EOPNOTSUPP (PROVIDER_AUTO). */
int provider_new(enum provider p, struct imds *m, const char *base_url, const char *vm_name,
		 struct provider_handle **ret);
void provider_free(struct provider_handle *p);
enum provider provider_kind(const struct provider_handle *p);

/* Starts one round, which ends in exactly one call of cb from the loop.
 * -EBUSY while a round is in flight; -errno when nothing could be sent (cb
 * is then not called). timeout_usec bounds each request of the round; a
 * provider whose round waits on purpose (GCP's hanging GET) adds its wait. */
int provider_poll(struct provider_handle *p, uint64_t timeout_usec, provider_round_cb cb,
		  void *userdata);
bool provider_busy(const struct provider_handle *p);
/* Cancels the round in flight; its callback is not called. */
void provider_cancel(struct provider_handle *p);

/* Requests the next round will send (token and identity included when
 * they are due), so the caller can keep within the metadata service's rate
 * limit before it starts the round. Exactly what the round sends when it
 * succeeds; less when it fails early; more only when AWS redoes a round
 * after a 401 (the refused item, a token, and the items asked again).
 *
 * What a round is, per cloud:
 * - Azure (cost 1, or 2 while the name is unknown): GET scheduledevents,
 *   and in parallel the compute document while the VM's name is unknown
 *   and not overridden. The round ends when both answered. A failing
 *   compute document does not fail it: vm_name stays NULL, identity_error
 *   says why ("instance metadata: HTTP 500"), every well-formed event is
 *   handed on. Reports incarnation, n_other and the drops.
 * - AWS (cost 3..5): the IMDSv2 token when due, instance-id while unknown,
 *   spot/instance-action, autoscaling/target-lifecycle-state,
 *   events/recommendations/rebalance (rebalance, every round). A 401 drops
 *   the token and redoes the round once.
 * - GCP (cost 2, or 3 while the name is unknown): instance/name,
 *   instance/preempted as a hanging GET of 1 s (its timeout is the
 *   caller's + 1 s), instance/maintenance-event (a 503 fails the round). */
unsigned provider_round_cost(const struct provider_handle *p);

/* Whether events of this provider can be approved (Azure StartRequests). */
bool provider_can_approve(const struct provider_handle *p);
/* Sends one acknowledgement (one request); cb is called once from the
 * loop with the notice's id. -EOPNOTSUPP without an acknowledgement call
 * for that feed, -EBUSY while one is in flight, -EINVAL for an id that
 * cannot name an event. Independent of rounds: provider_cancel leaves it
 * alone, provider_free cancels it. */
int provider_approve(struct provider_handle *p, const struct provider_ack *ack, uint64_t timeout_usec,
		     provider_approve_cb cb, void *userdata);
/* Keeps an Auto Scaling lifecycle action alive (RecordLifecycleActionHeartbeat);
 * -EOPNOTSUPP when the provider has none. cb as for an approval. */
int provider_heartbeat(struct provider_handle *p, uint64_t timeout_usec, provider_approve_cb cb,
		       void *userdata);
/* How often provider_heartbeat is due while a chain runs, 0 never. */
uint64_t provider_heartbeat_period_usec(const struct provider_handle *p);

/* GCP: the notice of a preemption, from instance/preempted turning TRUE
 * to the hard power-off (GCP_PREEMPT_NOTICE_SEC unless set; 0 restores
 * the default). Applies to rounds started after the call; ignored by the
 * other providers. */
void provider_set_gcp_notice(struct provider_handle *p, uint64_t sec);

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
 * body need not be NUL-terminated; a NUL inside len makes it invalid.
 * Output parameters are written only on success. */

#define AWS_TOKEN_MAX       512  /* bytes of an IMDSv2 session token */
#define AWS_TOKEN_TTL_SEC   21600
#define AWS_TOKEN_MARGIN_SEC 60  /* a token this close to expiry is renewed */
#define AWS_ASG_NOTICE_SEC  120  /* assumed notice of an Auto Scaling termination */
#define GCP_PREEMPT_NOTICE_SEC 30     /* soft off to hard off of a Spot VM */
#define GCP_MAINTENANCE_NOTICE_SEC 60 /* maintenance-event changes this early */
#define GCP_BOOT_TAG_MAX    16        /* bytes of the boot tag in a preemption key */

/* spot/instance-action: {"action":"terminate|stop|hibernate","time":"<RFC 3339>"}
 * (other keys ignored). Gives a Preempt event from source "Platform",
 * provider AWS, NotBefore = time, description "spot interruption:
 * <action>", no resources, duration -1, id_from_first_seen with the key
 * "aws-spot-<action>": the notice is one event for as long as the item is
 * listed, however its time moves. Status is Scheduled, or Started once
 * now_wall_usec has reached the time. *ret must be initialised or done; it
 * is overwritten. Returns 0 or -EBADMSG. */
int aws_parse_instance_action(const char *body, size_t len, uint64_t now_wall_usec,
			      struct spot_event *ret);

/* autoscaling/target-lifecycle-state: a token of 1-64 bytes of printable
 * ASCII other than space, trailing whitespace ignored. *ret_terminating is
 * true for exactly "Terminated". Returns 0 or -EBADMSG. */
int aws_parse_lifecycle(const char *body, size_t len, bool *ret_terminating);

/* The answer to PUT /latest/api/token: printable ASCII without spaces,
 * trailing whitespace ignored, 1..AWS_TOKEN_MAX bytes. 0 or -EBADMSG. */
int aws_parse_token(const char *body, size_t len, char *ret, size_t n);

/* True when a token expiring at expiry_mono_usec (0 = none held) must be
 * fetched before the next request. */
bool aws_token_due(uint64_t expiry_mono_usec, uint64_t now_mono_usec);

/* The event of an Auto Scaling termination: Terminate, Scheduled, source
 * "User", key "aws-asg-terminate-<instance_id>" (id_from_first_seen),
 * not_before 0 with notice_usec AWS_ASG_NOTICE_SEC, resources
 * [instance_id], provider AWS. 0 or -EINVAL (bad instance id). */
int aws_lifecycle_event(const char *instance_id, struct spot_event *ret);

/* instance/preempted and other GCP flags: "TRUE" or "FALSE". 0 or -EBADMSG. */
int gcp_parse_flag(const char *body, size_t len, bool *ret);

/* instance/maintenance-event: "NONE" gives *ret_pending false;
 * "MIGRATE_ON_HOST_MAINTENANCE" gives Freeze; any other [A-Z][A-Z0-9_]*
 * token gives Terminate; both with *ret_pending true. 0 or -EBADMSG. */
int gcp_parse_maintenance(const char *body, size_t len, enum event_type *ret_type, bool *ret_pending);

/* The Preempt event of instance/preempted = TRUE: Scheduled, source
 * "Platform", key "gcp-preempted-<name>-<boot tag>" (id_from_first_seen;
 * boot_tag may be "", then no "-<tag>"), not_before 0 with notice_usec
 * notice_sec, resources [name], provider GCP. 0 or -EINVAL.
 * Keys (here and in aws_lifecycle_event) stay below PROVIDER_KEY_MAX bytes:
 * a longer name is cut in the key, never the boot tag, and the resource
 * keeps the whole name. boot_tag: up to 16 bytes of [0-9a-f]. */
int gcp_preempt_event(const char *name, const char *boot_tag, uint64_t notice_sec,
		      struct spot_event *ret);

/* The event of a pending maintenance-event value: Scheduled, source
 * "Platform", key "gcp-maintenance-<value in lower case>"
 * (id_from_first_seen), not_before 0 with notice_usec
 * GCP_MAINTENANCE_NOTICE_SEC, description "host maintenance: <value>",
 * resources [name], provider GCP. 0 or -EINVAL. */
int gcp_maintenance_event(const char *value, enum event_type type, const char *name,
			  struct spot_event *ret);

/* An instance id (AWS) or name (GCP): printable ASCII without spaces,
 * trailing whitespace ignored, 1..PROVIDER_NAME_MAX-1 bytes. 0 or -EBADMSG. */
int provider_parse_name(const char *body, size_t len, char *ret, size_t n);

/* The plain-text value of body: trailing whitespace dropped, the rest
 * 1..max bytes of printable ASCII other than space. Its length or -EBADMSG. */
int provider_parse_text(const char *body, size_t len, size_t max);

#endif
