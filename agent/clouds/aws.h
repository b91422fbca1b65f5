/* aws.h - AWS's metadata items and an instance's Auto Scaling context: the
 * pure parsers behind the AWS provider (aws.c runs its rounds, aws-parse.c
 * reads the notice items, aws-identity.c the region, group, role and
 * credentials, aws-lifecycle.c makes the Auto Scaling calls). Nothing else
 * needs to know AWS's dialect.
 *
 * Parsers take a body that need not be NUL-terminated (a NUL inside len
 * makes it invalid) and write their outputs only on success. */
#ifndef SPOT_AWS_H
#define SPOT_AWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/event.h"
#include "clouds/imds.h"
#include "clouds/provider.h"

#define AWS_TOKEN_MAX        512    /* bytes of an IMDSv2 session token */
#define AWS_TOKEN_TTL_SEC    21600
#define AWS_TOKEN_MARGIN_SEC 60     /* a token this close to expiry is renewed */
/* With aws-imds-fallback, the token request's timeout is at most this: an
 * IMDSv2 answer that does not come in a second does not come (a container
 * behind the hop limit), and IMDSv1 is used. */
#define AWS_TOKEN_FALLBACK_TIMEOUT_SEC 1
#define AWS_V1_RETRY_SEC     300    /* IMDSv1: the token is asked again this often */
#define AWS_ASG_NOTICE_SEC   120    /* assumed notice of a termination without a hook */
#define AWS_IDENTITY_RETRY_SEC 30   /* a round asks no identity item this soon after a failure */
#define AWS_CREDENTIALS_MARGIN_SEC 300  /* credentials this close to Expiration are fetched anew */
/* Maintenance events kept from one answer: room is left for the spot and
 * the lifecycle notice within EVENTS_MAX. */
#define AWS_MAINTENANCE_EVENTS_MAX (EVENTS_MAX - 2)
#define AWS_HEARTBEAT_MIN_SEC 10
#define AWS_HEARTBEAT_MAX_SEC 600

#define AWS_REGION_MAX       32     /* bytes incl. NUL */
#define AWS_ROLE_MAX         129
#define AWS_GROUP_MAX        256
#define AWS_KEY_ID_MAX       129
#define AWS_SECRET_MAX       129
#define AWS_SESSION_TOKEN_MAX 4097

/* ---- the notice items (aws-parse.c) ---- */

/* spot/instance-action: {"action":"terminate|stop|hibernate","time":"<RFC 3339>"}
 * (other keys ignored). Gives a Preempt event from source "Platform",
 * provider AWS, feed FEED_AWS_SPOT, NotBefore = time, description "spot
 * interruption: <action>", no resources, duration -1, id_from_first_seen
 * with the key "aws-spot-<action>": the notice is one event for as long as
 * the item is listed, however its time moves. Status is Scheduled, or
 * Started once now_wall_usec has reached the time. *ret must be
 * initialised or done; it is overwritten. Returns 0 or -EBADMSG. */
int aws_parse_instance_action(const char *body, size_t len, uint64_t now_wall_usec,
			      struct spot_event *ret);

/* The target lifecycle states that mean something to the agent. */
enum aws_target_state {
	AWS_TARGET_OTHER,               /* InService, Standby, Detached, Warmed:Running, ... */
	AWS_TARGET_TERMINATED,          /* the group terminates the instance */
	AWS_TARGET_WARMED_TERMINATED,   /* a warm pool instance is terminated */
	AWS_TARGET_WARMED_STOPPED,      /* stopped into the warm pool */
	AWS_TARGET_WARMED_HIBERNATED,   /* hibernated into the warm pool */
	_AWS_TARGET_MAX,
};
/* "Terminated", "Warmed:Terminated", ...; "other" for AWS_TARGET_OTHER. */
const char *aws_target_state_to_string(enum aws_target_state s);

/* autoscaling/target-lifecycle-state: a token of 1-64 bytes of printable
 * ASCII other than space, trailing whitespace ignored; the states above
 * case-sensitively, anything else AWS_TARGET_OTHER. 0 or -EBADMSG. */
int aws_parse_lifecycle(const char *body, size_t len, enum aws_target_state *ret);

/* The answer to PUT /latest/api/token: printable ASCII without spaces,
 * trailing whitespace ignored, 1..AWS_TOKEN_MAX bytes. 0 or -EBADMSG. */
int aws_parse_token(const char *body, size_t len, char *ret, size_t n);

/* True when a token expiring at expiry_mono_usec (0 = none held) must be
 * fetched before the next request. */
bool aws_token_due(uint64_t expiry_mono_usec, uint64_t now_mono_usec);

/* The event of a target lifecycle state other than AWS_TARGET_OTHER: type
 * Terminate, Scheduled, source "User", feed FEED_AWS_LIFECYCLE, resources
 * [instance_id], provider AWS, not_before 0 with notice_usec notice_sec
 * (the hook's heartbeat timeout when the agent completes a lifecycle hook,
 * then needs_ack; else AWS_ASG_NOTICE_SEC), id_from_first_seen with the
 * key "aws-asg-<what>-<instance_id>", <what> being terminate, warmed-
 * terminate, warmed-stop or warmed-hibernate; the description names the
 * state, and for Warmed:Stopped and Warmed:Hibernated says the instance is
 * being stopped (hibernated) into the warm pool. An id too long for the
 * key is cut there; the resource keeps it whole. 0 or -EINVAL (a bad
 * instance id or state). */
int aws_lifecycle_event(const char *instance_id, enum aws_target_state state, uint64_t notice_sec,
			bool needs_ack, struct spot_event *ret);

/* events/maintenance/scheduled as it concerns the agent. */
struct aws_maintenance {
	struct event_list events;     /* owned: aws_maintenance_done; NULL when none */
	struct provider_drop drops[PROVIDER_DROPS_MAX];
	size_t n_drops;               /* entries dropped in all */
};
void aws_maintenance_done(struct aws_maintenance *m);

/* events/maintenance/scheduled: a JSON array of {"NotBefore", "NotAfter",
 * "Code", "Description", "EventId", "State"} (other keys ignored, times
 * like "21 Jan 2019 09:00:43 GMT" or RFC 3339). Each entry is an event
 * with EventId as its id (the provider's own), provider AWS, feed
 * FEED_AWS_MAINTENANCE, source "Platform", no resources, type by Code:
 * instance-reboot and system-reboot Reboot, system-maintenance Freeze (the
 * instance may be briefly unavailable), instance-retirement and
 * instance-stop Terminate; State active is a live notice (END_NONE),
 * completed END_COMPLETED, canceled END_CANCELED; description
 * "<Code>: <Description>" (or the code alone); status Started once
 * now_wall_usec has reached NotBefore, else Scheduled. A missing or
 * unreadable NotBefore is 0 (unknown), with a note. An entry is dropped,
 * its defect named, when it is not an object, its EventId is missing, not a
 * string or unusable as an id, its Code or State is missing or unknown;
 * entries past AWS_MAINTENANCE_EVENTS_MAX are dropped too. Returns 0
 * (*ret overwritten, call aws_maintenance_done) or -EBADMSG when the body
 * is not a JSON array. */
int aws_parse_maintenance(const char *body, size_t len, uint64_t now_wall_usec,
			  struct aws_maintenance *ret);

/* events/maintenance/history: the same array, of the events EC2 completed
 * or canceled. Only the entries whose EventId is one of ids[0..n_ids)
 * (case-insensitive) and whose State is completed or canceled are kept,
 * each as aws_parse_maintenance makes it (END_COMPLETED, END_CANCELED), the
 * first one of an id only; the rest, usable or not, are passed over
 * without a word: they are not notices. Returns 0 (*ret, empty or a list
 * to free, replaced: at most n_ids events, call event_list_done) or
 * -EBADMSG when the body is not a JSON array (*ret untouched). */
int aws_parse_maintenance_history(const char *body, size_t len, uint64_t now_wall_usec,
				  const char (*ids)[EVENT_ID_MAX], size_t n_ids, struct event_list *ret);

/* ---- the Auto Scaling context (aws-identity.c) ---- */

/* The role's temporary credentials. */
struct aws_credentials {
	char key_id[AWS_KEY_ID_MAX];
	char secret[AWS_SECRET_MAX];
	char token[AWS_SESSION_TOKEN_MAX];
	uint64_t expiration_wall_usec;
};
/* Overwrites c with zeroes, so no secret outlives its use. */
void aws_credentials_wipe(struct aws_credentials *c);

/* iam/security-credentials/ROLE: a JSON object with the strings
 * AccessKeyId (16..128 bytes of [A-Z0-9]), SecretAccessKey and Token
 * (printable ASCII without spaces, at most 128 and 4096 bytes) and
 * Expiration (RFC 3339); "Code", when present, must be "Success". Other
 * keys ignored. 0 or -EBADMSG. */
int aws_parse_credentials(const char *body, size_t len, struct aws_credentials *ret);

/* iam/security-credentials/: the role names, one a line; the first, of
 * 1..128 bytes of [A-Za-z0-9+=,.@_-]. 0 or -EBADMSG. */
int aws_parse_role(const char *body, size_t len, char *ret, size_t n);

/* placement/region: 1..31 bytes of [a-z0-9-], trailing whitespace
 * ignored. 0 or -EBADMSG. */
int aws_parse_region(const char *body, size_t len, char *ret, size_t n);

/* dynamic/instance-identity/document: a JSON object whose "region" is a
 * region as above. 0 or -EBADMSG. */
int aws_parse_document_region(const char *body, size_t len, char *ret, size_t n);

/* tags/instance/aws:autoscaling:groupName: 1..255 bytes without control
 * characters, trailing whitespace ignored. 0 or -EBADMSG. */
int aws_parse_group_name(const char *body, size_t len, char *ret, size_t n);

/* The metadata items of the context, in the order they are asked. */
enum aws_item {
	AWS_ITEM_NONE,
	AWS_ITEM_REGION,        /* placement/region */
	AWS_ITEM_DOCUMENT,      /* dynamic/instance-identity/document, when the above is 404 */
	AWS_ITEM_GROUP,         /* tags/instance/aws:autoscaling:groupName */
	AWS_ITEM_ROLE,          /* iam/security-credentials/ */
	AWS_ITEM_CREDENTIALS,   /* iam/security-credentials/ROLE */
	_AWS_ITEM_MAX,
};

/* What the Auto Scaling calls need to know of the instance. */
struct aws_identity {
	char region[AWS_REGION_MAX];      /* "" until known */
	bool region_from_document;        /* placement/region answered 404 */
	char group[AWS_GROUP_MAX];        /* "" until known */
	bool tags_off;                    /* the group tag answered 404: DescribeAutoScalingInstances */
	char role[AWS_ROLE_MAX];          /* "" until known */
	struct aws_credentials creds;     /* key_id "" until known */
	bool creds_stale;                 /* a call answered ExpiredToken */
};

/* The next item to ask, AWS_ITEM_NONE when everything is at hand (the
 * group may still be missing with tags_off: DescribeAutoScalingInstances
 * tells it). Credentials are due when none are held, when stale, or from
 * AWS_CREDENTIALS_MARGIN_SEC before their Expiration. */
enum aws_item aws_identity_next(const struct aws_identity *id, uint64_t now_wall_usec);
/* How many items aws_identity_next would still ask for, one request each. */
unsigned aws_identity_missing(const struct aws_identity *id, uint64_t now_wall_usec);
/* Whether the credentials held can sign a call now: some are held, no call
 * said they expired, and their Expiration is ahead (within the margin or
 * not). */
bool aws_credentials_usable(const struct aws_identity *id, uint64_t now_wall_usec);
/* The item's name as errors name it ("placement/region",
 * "iam/security-credentials/"). */
const char *aws_item_name(enum aws_item item);
/* The item's path below the base URL ("/latest/meta-data/placement/region").
 * 0, or -EINVAL (credentials while the role is unknown, or no room). */
int aws_item_path(const struct aws_identity *id, enum aws_item item, char *buf, size_t n);
/* Whether a 404 of the item is an answer (region, group). */
bool aws_item_404_is_answer(enum aws_item item);
/* Takes an item's answer, r->result being IMDS_RESULT_OK (a 404 where it
 * is an answer): 0, or -EBADMSG for an unreadable answer (nothing changes
 * then). A 404 of placement/region moves on to the identity document; of
 * the group tag, to DescribeAutoScalingInstances. */
int aws_identity_take(struct aws_identity *id, enum aws_item item, const struct imds_reply *r);
/* Forgets the credentials (and the role, which may have changed): the
 * next aws_identity_next asks them again. */
void aws_identity_drop_credentials(struct aws_identity *id);
/* Wipes the credentials. */
void aws_identity_done(struct aws_identity *id);

/* The heartbeat period: interval_sec when not 0, else a third of the
 * heartbeat timeout (0: AWS_HEARTBEAT_TIMEOUT_DEFAULT_SEC), at least
 * AWS_HEARTBEAT_MIN_SEC and at most AWS_HEARTBEAT_MAX_SEC. */
uint64_t aws_heartbeat_period_usec(uint64_t interval_sec, uint64_t timeout_sec);

#endif
