/* aws-internal.h - between aws.c (the rounds) and aws-lifecycle.c (the
 * Auto Scaling calls): the provider state they share. Not for other
 * modules. */
#ifndef SPOT_AWS_INTERNAL_H
#define SPOT_AWS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "clouds/aws.h"
#include "clouds/provider-internal.h"

#define AWS_TOKEN_HEADER "X-aws-ec2-metadata-token: "
#define AWS_TOKEN_HEADER_MAX (sizeof(AWS_TOKEN_HEADER) + AWS_TOKEN_MAX)

/* What one round has read so far; reset at its start and before a redo. */
struct aws_round {
	bool retried;                        /* already redone once after a 401 */
	bool redo;                           /* a 401: redo once nothing is in flight */
	bool failed;                         /* the essential chain failed */
	enum imds_result fail_result;
	char fail_error[IMDS_ERROR_MAX];
	uint64_t done_mono_usec;             /* when the last answer came */
	bool has_action;
	struct spot_event action;            /* valid when has_action */
	bool lifecycle_answered;
	enum aws_target_state target;
	bool maintenance_answered;
	struct aws_maintenance maintenance;
	unsigned optional_n;                 /* optional requests this round may send */
	unsigned side_n;                     /* items of the side chain this round (the history last) */
	unsigned side_next;                  /* the next optional item of the side chain */
	enum aws_item item;                  /* the identity item asked in this round */
};

/* What the maintenance list said before, kept across rounds: an event
 * that leaves it is looked up in events/maintenance/history, which tells
 * whether EC2 completed or canceled it. Bounded: at most
 * AWS_MAINTENANCE_EVENTS_MAX ids of each kind and events. */
struct aws_maintenance_memory {
	/* The live (State active) events of the last list that answered. */
	char listed[AWS_MAINTENANCE_EVENTS_MAX][EVENT_ID_MAX];
	size_t n_listed;
	/* Listed once, missing from a later list: the history is due. */
	char missing[AWS_MAINTENANCE_EVENTS_MAX][EVENT_ID_MAX];
	size_t n_missing;
	/* Found over in the history, each handed once, with the next round
	 * whose list answers. */
	struct event_list ended;
};

/* aws-maintenance.c. A scheduled list that answered, l its usable events
 * (none for a 404): an event the last one held live that this one misses
 * is to be looked up in the history; one listed again is not (and what
 * the history said of it gives way to the list). */
void aws_maintenance_listed(struct aws_maintenance_memory *m, const struct event_list *l);
/* The history answered (found: the missing events it says are over, moved
 * out; NULL when it failed): it was asked, the missing are forgotten. */
void aws_maintenance_history(struct aws_maintenance_memory *m, struct event_list *found);
/* Moves the oldest event the history said is over into *ret (taken over
 * by the caller); false when none waits. */
bool aws_maintenance_take_ended(struct aws_maintenance_memory *m, struct spot_event *ret);

enum aws_op_kind {
	AWS_OP_NONE,
	AWS_OP_COMPLETE,                     /* CompleteLifecycleAction */
	AWS_OP_HEARTBEAT,                    /* RecordLifecycleActionHeartbeat */
};

/* The Auto Scaling call in flight, with what it fetched first. */
struct aws_op {
	enum aws_op_kind kind;
	bool abandon;                        /* COMPLETE: LifecycleActionResult ABANDON */
	bool retried;                        /* credentials fetched again after ExpiredToken */
	bool creds_fetched;                  /* this call fetched the credentials */
	uint64_t timeout_usec;               /* of its metadata requests */
	enum aws_item item;                  /* the metadata item in flight */
};

struct aws_state {
	/* The session with the metadata service. */
	char token[AWS_TOKEN_MAX + 1];       /* "" when none */
	uint64_t token_expiry_mono_usec;     /* 0 = no token held */
	bool v1;                             /* reading without a token */
	uint64_t v2_retry_mono_usec;         /* v1: when the token is asked again */

	struct aws_identity id;              /* what the Auto Scaling calls need */
	uint64_t identity_retry_mono_usec;   /* rounds ask no identity item before */
	bool rebalance;                      /* the latest answer of the recommendation */
	struct aws_maintenance_memory maint;

	struct aws_round round;
	struct aws_op op;
};

/* The header that carries the session token into headers[0] ({ NULL } in
 * IMDSv1 or while no token is held); buf holds the line. */
void aws_token_headers(const struct aws_state *s, char *buf, size_t n, const char *headers[2]);
/* Drops the session token: the next round asks a new one. */
void aws_token_drop(struct aws_state *s);

/* provider_ops of aws-lifecycle.c. */
bool aws_can_approve(const struct provider_handle *p, const void *state);
int aws_approve(struct provider_handle *p, void *state, const struct provider_ack *ack, uint64_t timeout_usec);
int aws_heartbeat(struct provider_handle *p, void *state);
uint64_t aws_heartbeat_period(const struct provider_handle *p, const void *state);

#endif
