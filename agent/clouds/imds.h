/* imds.h - HTTP requests on the event loop: the instance metadata service,
 * and the few calls that leave the machine (Auto Scaling, the evidence
 * receivers), each in a slot of its own. */
#ifndef SPOT_IMDS_H
#define SPOT_IMDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>


#define IMDS_BODY_MAX            (64 * 1024)  /* larger answers fail as transport errors */
#define IMDS_CONNECT_TIMEOUT_MS  2000         /* link-local: a connect takes microseconds */
#define IMDS_ERROR_MAX           256

/* How a request ended. */
enum imds_result {
	IMDS_RESULT_OK,
	IMDS_RESULT_HTTP_ERROR,     /* a non-2xx status */
	IMDS_RESULT_THROTTLED,      /* 429 */
	IMDS_RESULT_TIMEOUT,
	IMDS_RESULT_TRANSPORT,      /* connect/reset/oversized body */
	IMDS_RESULT_BAD_DOCUMENT,   /* 200 with a body we could not parse */
	_IMDS_RESULT_MAX,
};
const char *imds_result_to_string(enum imds_result r);

/* Independent request slots: each keeps one easy handle alive for its
 * whole life, and the multi handle shares one connection cache, so polls
 * reuse a single keep-alive connection. The metadata slots come first;
 * they never use a proxy. The others reach services off the machine and
 * take the proxy the environment names (https_proxy, no_proxy), as an
 * AWS SDK would. */
enum imds_slot {
	IMDS_SLOT_POLL,
	IMDS_SLOT_IDENTITY,
	IMDS_SLOT_APPROVE,
	IMDS_SLOT_SIDE,             /* a round's optional request, beside the poll */
	_IMDS_SLOT_METADATA_END,
	IMDS_SLOT_AUTOSCALING = _IMDS_SLOT_METADATA_END,  /* the Auto Scaling API */
	IMDS_SLOT_EVIDENCE,         /* remote-write */
	IMDS_SLOT_PUSH,             /* the Pushgateway */
	_IMDS_SLOT_MAX,
};
/* A slot whose requests go to the metadata service (and count against its
 * rate limit). */
static inline bool imds_slot_is_metadata(enum imds_slot s)
{
	return s < _IMDS_SLOT_METADATA_END;
}

struct imds_reply {
	enum imds_result result;
	long status;                 /* HTTP status, 0 when none arrived */
	const char *body;            /* borrowed for the callback only; NUL-terminated */
	size_t len;
	uint64_t latency_usec;
	uint64_t done_mono_usec;     /* when the answer was complete */
	const char *error;           /* one line, "" when result is OK */
	/* The Metadata-Flavor response header (GCP answers "Google"), "" when
	 * absent; at most IMDS_FLAVOR_MAX - 1 bytes, borrowed for the callback. */
	const char *metadata_flavor;
};

#define IMDS_FLAVOR_MAX 64

/* Sees every request the transport sends and every answer it hands over,
 * so a caller can count requests against the metadata service's rate limit
 * and observe latencies. sent is called when a request is handed to curl
 * (it leaves in the same loop iteration); done once per answered request,
 * just before its callback. A cancelled request gets no done. Either
 * function may be NULL; neither may start or cancel requests. */
struct imds_observer {
	void (*sent)(void *userdata, enum imds_slot slot, uint64_t mono_usec);
	void (*done)(void *userdata, enum imds_slot slot, enum imds_result result,
		     uint64_t latency_usec);
	void *userdata;
};

typedef void (*imds_callback)(const struct imds_reply *r, void *userdata);

struct imds;

int imds_new(sd_event *e, struct imds **ret);
/* Copies *o; NULL removes the observer. */
void imds_set_observer(struct imds *m, const struct imds_observer *o);
/* Cancels requests in flight (their callbacks are not called). NULL ok. */
void imds_free(struct imds *m);

/* Starts a request in slot. method is "GET", "POST", "PUT" or "DELETE"; headers is a
 * NULL-terminated list of "Name: value" lines; body only for POST and PUT. Proxies
 * are never used. Returns 0, -EBUSY when the slot is in use, or -errno. The
 * request is on the wire before this returns when a connection is at hand.
 * The callback runs from the loop once, with the outcome, never from within
 * imds_request itself. */
int imds_request(struct imds *m, enum imds_slot slot, const char *method, const char *url,
		 const char *const *headers, const char *body, uint64_t timeout_usec,
		 imds_callback cb, void *userdata);
/* The same with every setting: a body of any bytes (body_len of them;
 * NULL with 0 is an empty body), and AWS Signature Version 4 computed by
 * libcurl (aws_sigv4 "aws:amz:REGION:SERVICE" and userpwd "KEY:SECRET";
 * both NULL: unsigned). The settings are the request's only: a later
 * request in the slot carries none of them unless it names them again. */
struct imds_call {
	const char *method;
	const char *url;
	const char *const *headers;
	const void *body;
	size_t body_len;
	uint64_t timeout_usec;
	const char *aws_sigv4;
	const char *userpwd;
	/* A 404 is an answer ("nothing to report": no notice listed, no
	 * state yet), not a failure: the observer's done and the callback
	 * both get IMDS_RESULT_OK, with status 404 and the body as sent. */
	bool answer_404;
};
int imds_call(struct imds *m, enum imds_slot slot, const struct imds_call *call, imds_callback cb,
	      void *userdata);
bool imds_busy(const struct imds *m, enum imds_slot slot);
void imds_cancel(struct imds *m, enum imds_slot slot);

#endif
