/* provider-internal.h - between the provider-neutral half (provider.c,
 * provider-round.c) and the clouds (azure.c, aws.c, gcp.c). Not for other modules: the rest of
 * the agent sees provider.h only.
 *
 * A round is a set of requests, each started with provider_request from
 * start_round or from an earlier request's reply, ending in exactly one
 * provider_finish or provider_fail. Nothing may touch the provider after
 * either (the caller's callback may free it, or start the next round), so
 * they are the last thing a reply handler does. */
#ifndef SPOT_PROVIDER_INTERNAL_H
#define SPOT_PROVIDER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "clouds/provider.h"

/* An answer to a request of the provider; state is the cloud's own. */
typedef void (*provider_reply_cb)(struct provider_handle *p, void *state, const struct imds_reply *r);

struct provider_ops {
	enum provider kind;
	size_t state_size;                /* the cloud's state, zeroed by provider_new */
	uint32_t feeds;                   /* its feeds, 1u << enum event_feed each */
	/* Requests the next round will send, as provider_round_cost says. */
	unsigned (*round_cost)(const struct provider_handle *p, const void *state);
	/* Starts a round: 0, or -errno with no request left in flight (the
	 * caller's callback is then not called). Resets the round's partial
	 * results: a cancelled round leaves them behind. */
	int (*start_round)(struct provider_handle *p, void *state);
	/* Whether acknowledgements can be sent now (the config may say); NULL:
	 * whenever approve is set. */
	bool (*can_approve)(const struct provider_handle *p, const void *state);
	/* Sends the acknowledgement (IMDS_SLOT_APPROVE, IMDS_SLOT_AUTOSCALING);
	 * it ends in provider_approve_end. 0 or -errno with nothing in
	 * flight. NULL when the cloud has no acknowledgement. */
	int (*approve)(struct provider_handle *p, void *state, const struct provider_ack *ack,
		       uint64_t timeout_usec);
	/* Sends a heartbeat, which ends in provider_heartbeat_end; NULL when
	 * the cloud has none. -EOPNOTSUPP when not now (the config). */
	int (*heartbeat)(struct provider_handle *p, void *state);
	/* provider_call_cost; NULL: 1 (the acknowledgement is a metadata
	 * request itself). */
	unsigned (*call_cost)(const struct provider_handle *p, const void *state);
	/* provider_heartbeat_period_usec; NULL: 0. */
	uint64_t (*heartbeat_period)(const struct provider_handle *p, const void *state);
	void (*done_state)(void *state);  /* NULL when nothing to release */

	/* The 'auto' probe of this dialect: one request, and whether its
	 * successful (2xx) answer is in this dialect. */
	const char *probe_method;
	const char *probe_path;
	const char *const *probe_headers;
	bool (*probe_accept)(const struct imds_reply *r);
};

extern const struct provider_ops azure_provider_ops;
extern const struct provider_ops aws_provider_ops;
extern const struct provider_ops gcp_provider_ops;

/* What a successful round hands over; provider_finish moves events out. */
struct provider_outcome {
	struct event_list events;         /* owned until provider_finish */
	int64_t incarnation;              /* -1 when the cloud has none */
	size_t n_other;
	struct provider_drop drops[PROVIDER_DROPS_MAX];
	size_t n_drops;
	bool rebalance;
	uint64_t done_mono_usec;          /* 0 = now */
	uint32_t feeds_answered;          /* 0 = every feed of the cloud (ops->feeds) */
};

void provider_outcome_init(struct provider_outcome *o);
void provider_outcome_done(struct provider_outcome *o);

/* Records a dropped event: counted always, described while there is room.
 * id may be NULL or "" (no usable id). */
void provider_drop_add(struct provider_drop *drops, size_t *n_drops, const char *id,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The length of base_url without trailing '/'; 0 when nothing is left. */
size_t provider_base_len(const char *base_url);

void *provider_state(struct provider_handle *p);
/* This machine's name: the override, or what set_vm_name recorded; NULL
 * until known. Borrowed until the next set_vm_name. */
const char *provider_vm_name(const struct provider_handle *p);
bool provider_vm_name_overridden(const struct provider_handle *p);
/* Ignored when the name is overridden. */
void provider_set_vm_name(struct provider_handle *p, const char *name);
/* The per-request timeout of the round in flight (or of the last one; 0
 * before the first). */
uint64_t provider_timeout(const struct provider_handle *p);
/* The timeout of a call that may be the service's first (Azure's
 * Scheduled Events), as provider_poll got it: never below
 * provider_timeout. */
uint64_t provider_first_call_timeout(const struct provider_handle *p);
/* The config as provider_new or provider_set_config left it; strings are
 * the provider's own ("" when unset, never NULL; base_url and vm_name are
 * not kept here). Borrowed until the next provider_set_config. */
const struct provider_config *provider_cfg(const struct provider_handle *p);
/* Whether a lifecycle hook is configured (aws-lifecycle-hook). */
bool provider_has_lifecycle_hook(const struct provider_handle *p);

/* An optional request of the round failed: "<item>: <error>" joins the
 * round's optional_error. Cleared at each round's start. */
void provider_add_optional_error(struct provider_handle *p, const char *item, const char *error);
/* AWS: the mode the items are read in; change, when not NULL, is the
 * line reported once with the next round to end. */
void provider_set_imds_v1(struct provider_handle *p, bool v1, const char *change);

/* A part of the round failed without failing it: reported with the
 * round's outcome (either one) in identity_error. Cleared at each round's
 * start. */
void provider_set_identity_error(struct provider_handle *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Flags of provider_request. */
enum {
	PROVIDER_ANSWER_404 = 1u << 0,    /* a 404 is an answer (imds_call.answer_404) */
};

/* Starts method on base URL + path in slot; cb gets the answer from the
 * loop. A request of the round (slots other than IMDS_SLOT_APPROVE and
 * IMDS_SLOT_AUTOSCALING) is cancelled with the round. 0 or -errno. */
int provider_request(struct provider_handle *p, enum imds_slot slot, const char *method, const char *path,
		     const char *const *headers, const char *body, uint64_t timeout_usec,
		     unsigned flags, provider_reply_cb cb);
/* The same for a call with every setting and an absolute URL (the Auto
 * Scaling API). */
int provider_call(struct provider_handle *p, enum imds_slot slot, const struct imds_call *call,
		  provider_reply_cb cb);
bool provider_request_busy(const struct provider_handle *p, enum imds_slot slot);
/* Cancels the provider's request in slot, if any (its cb is not called). */
void provider_request_cancel(struct provider_handle *p, enum imds_slot slot);

/* Ends the round with o's results (its events move to the caller's
 * callback and are freed after it). */
void provider_finish(struct provider_handle *p, struct provider_outcome *o);
/* Ends the round with a failure; the line is formatted from fmt. A result
 * of IMDS_RESULT_OK is reported as IMDS_RESULT_TRANSPORT. */
void provider_fail(struct provider_handle *p, enum imds_result result, uint64_t done_mono_usec,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A reply that failed: "<item>: <its error line>". */
void provider_fail_reply(struct provider_handle *p, const char *item, const struct imds_reply *r);
/* A request that could not be started from a reply handler. */
void provider_fail_start(struct provider_handle *p, const char *item, int err);

/* Ends the acknowledgement in flight; error "" when OK. Nothing may
 * touch the provider after it (the caller's callback may free it). */
void provider_approve_end(struct provider_handle *p, enum imds_result result, const char *error);
bool provider_approving(const struct provider_handle *p);
/* Ends the heartbeat in flight; the same rules. */
void provider_heartbeat_end(struct provider_handle *p, enum imds_result result, const char *error);
bool provider_heartbeating(const struct provider_handle *p);

/* Plain-text parsing shared by AWS and GCP (text.c). */
bool provider_trailing_space(char c);
/* body[0..len) as one JSON value with nothing but whitespace after it;
 * NULL when it is not. The caller deletes the result. */
cJSON *provider_parse_json(const char *body, size_t len);

#endif
