/* sender.h - sends the record's batches to a Prometheus remote-write
 * receiver, in order, on the agent's loop, without ever holding up a hook
 * or an approval. */
#ifndef SPOT_EVIDENCE_SENDER_H
#define SPOT_EVIDENCE_SENDER_H

#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "clouds/imds.h"
#include "evidence/queue.h"

/* One request may take this long: the record is worth a retry, never a
 * wait. */
#define EVIDENCE_SEND_TIMEOUT_USEC     (2 * USEC_PER_SEC)
/* Retries of a failed send: the first after 0.5 s, doubling up to 60 s,
 * each drawn from the upper half of its step (evidence_backoff_usec). */
#define EVIDENCE_RETRY_FIRST_USEC      (500 * USEC_PER_MSEC)
#define EVIDENCE_RETRY_MAX_USEC        (60 * USEC_PER_SEC)
/* A credentials file is read up to this many bytes. */
#define EVIDENCE_SECRET_MAX            4096

/* The wait before retry number `failures` (1 for the first retry): the
 * step EVIDENCE_RETRY_FIRST_USEC * 2^(failures - 1), at most
 * EVIDENCE_RETRY_MAX_USEC, and of that step a random part of the upper
 * half (random is any 64-bit number: step/2 + random % (step/2 + 1)). */
uint64_t evidence_backoff_usec(unsigned failures, uint64_t random);

/* Where batches go, and how the sender tells its owner. */
struct evidence_sender_params {
	sd_event *event;
	struct imds *imds;           /* borrowed; the sender uses IMDS_SLOT_EVIDENCE */
	const char *url;             /* the receiver's write URL (.../api/v1/write) */
	/* The "Authorization: ..." header line (evidence_authorization), NULL
	 * for none. Copied; never logged. */
	const char *authorization;
	/* The queue changed (a batch was added, accepted or dropped): the
	 * owner saves it (evidence_queue_to_json). May be NULL. */
	void (*queue_changed)(void *userdata);
	void *userdata;
};

struct evidence_sender;

int evidence_sender_new(const struct evidence_sender_params *p, struct evidence_sender **ret);
/* Cancels a send under way; the queue goes with the sender. NULL ok. */
void evidence_sender_free(struct evidence_sender *s);
/* A reload: a new URL or credentials, for the next request. */
void evidence_sender_set_target(struct evidence_sender *s, const char *url, const char *authorization);

/* Queues b (its contents are taken; b is left empty) behind the batches
 * waiting. The send starts from the loop at idle priority, never from
 * within this call: what the batch accompanies (a hook's start, an
 * approval) is carried out first. A full queue drops its oldest batches,
 * with one log line. */
void evidence_sender_add(struct evidence_sender *s, struct evidence_batch *b);
/* The queue, for the owner's state file: export it with
 * evidence_queue_to_json; after importing into it (evidence_queue_from_json
 * at start) call evidence_sender_kick. Borrowed for the sender's life. */
struct evidence_queue *evidence_sender_queue(struct evidence_sender *s);
/* Sends what is queued from the next loop iteration on, unless a send or a
 * retry wait is under way. */
void evidence_sender_kick(struct evidence_sender *s);
/* Whether a send is under way or waiting for its retry. */
bool evidence_sender_busy(const struct evidence_sender *s);

/* The Authorization header line from the credentials files (either may
 * be NULL or ""; both set is an error): "Authorization: Bearer <token>"
 * from bearer_file, "Authorization: Basic <base64 of user:password>" from
 * basic_file (one line "user:password"). The file's last line break is
 * not part of the secret. *ret is NULL when neither is set, else owned by
 * the caller. Returns 0, or -errno with the reason in why (which never
 * holds the secret). */
int evidence_authorization(const char *bearer_file, const char *basic_file, char **ret, char *why,
			   size_t why_size);

/* A URL as it may be logged: user:password@ taken out. Returns buf. */
const char *evidence_url_for_log(const char *url, char *buf, size_t n);

/* Base64 of n bytes of src, with the standard alphabet ('+', '/') or the
 * URL one ('-', '_'); padded with '='. Caller frees. */
char *evidence_base64(const void *src, size_t n, bool url_alphabet);

#endif
