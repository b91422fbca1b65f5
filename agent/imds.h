/* imds.h - HTTP requests to the instance metadata service on the event loop. */
#ifndef SPOT_IMDS_H
#define SPOT_IMDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "metrics.h"

#define IMDS_BODY_MAX            (64 * 1024)  /* larger answers fail as transport errors */
#define IMDS_CONNECT_TIMEOUT_MS  2000         /* link-local: a connect takes microseconds */
#define IMDS_ERROR_MAX           256

/* Independent request slots: each keeps one easy handle alive for its
 * whole life, and the multi handle shares one connection cache, so polls
 * reuse a single keep-alive connection. */
enum imds_slot {
	IMDS_SLOT_POLL,
	IMDS_SLOT_IDENTITY,
	IMDS_SLOT_APPROVE,
	_IMDS_SLOT_MAX,
};

struct imds_reply {
	enum imds_result result;
	long status;                 /* HTTP status, 0 when none arrived */
	const char *body;            /* borrowed for the callback only; NUL-terminated */
	size_t len;
	uint64_t latency_usec;
	uint64_t done_mono_usec;     /* when the answer was complete */
	const char *error;           /* one line, "" when result is OK */
};

typedef void (*imds_callback)(const struct imds_reply *r, void *userdata);

struct imds;

int imds_new(sd_event *e, struct imds **ret);
/* Cancels requests in flight (their callbacks are not called). NULL ok. */
void imds_free(struct imds *m);

/* Starts a request in slot. method is "GET", "POST" or "PUT"; headers is a
 * NULL-terminated list of "Name: value" lines; body only for POST and PUT. Proxies
 * are never used. Returns 0, -EBUSY when the slot is in use, or -errno. The
 * callback runs from the loop once, with the outcome. */
int imds_request(struct imds *m, enum imds_slot slot, const char *method, const char *url,
		 const char *const *headers, const char *body, uint64_t timeout_usec,
		 imds_callback cb, void *userdata);
bool imds_busy(const struct imds *m, enum imds_slot slot);
void imds_cancel(struct imds *m, enum imds_slot slot);

#endif
