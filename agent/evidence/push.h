/* push.h - the optional Pushgateway: the latest eviction's values in one
 * group per instance (PUT {push-url}/metrics/job/spot-agent/instance/<i>),
 * deleted again by the recover step. Remote-write is the record; this is
 * a convenience for a Prometheus that only scrapes. */
#ifndef SPOT_EVIDENCE_PUSH_H
#define SPOT_EVIDENCE_PUSH_H

#include <systemd/sd-event.h>

#include "clouds/imds.h"
#include "evidence/samples.h"

/* A failed push (5xx, 429, no answer) is tried this many times in all,
 * with evidence_backoff_usec between; a newer push replaces it. */
#define EVIDENCE_PUSH_TRIES 5

/* The group's URL: base (no trailing '/') + "/metrics/job/spot-agent/
 * instance/<instance>", the instance as "instance@base64/<URL-safe
 * base64>" when it holds anything but [A-Za-z0-9._~-] (a '/' above all),
 * or is empty. Caller frees. */
char *evidence_push_group_url(const char *base, const char *instance);
/* b in the Prometheus text format 0.0.4 as the Pushgateway takes it: a
 * "# TYPE <name> gauge" line per metric, no timestamps, no job or instance
 * label (the group's), label values escaped. Caller frees. */
char *evidence_push_text(const struct evidence_batch *b);

struct evidence_push;

/* url: the Pushgateway's base URL. Requests go in IMDS_SLOT_PUSH. */
int evidence_push_new(sd_event *e, struct imds *imds, const char *url, struct evidence_push **ret);
void evidence_push_free(struct evidence_push *p);
void evidence_push_set_url(struct evidence_push *p, const char *url);
/* Replaces instance's group with b's values (b is only read). */
void evidence_push_put(struct evidence_push *p, const char *instance, const struct evidence_batch *b);
/* Deletes instance's group. */
void evidence_push_delete(struct evidence_push *p, const char *instance);

#endif
