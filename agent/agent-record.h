/* agent-record.h - the eviction's record as it leaves the VM: the catalogued
 * journal records, the remote-write series and the Pushgateway group, fed
 * by the wiring from the engine's reports at the moments they describe. */
#ifndef SPOT_AGENT_RECORD_H
#define SPOT_AGENT_RECORD_H

#include <stdint.h>

#include <cjson/cJSON.h>
#include <systemd/sd-event.h>

#include "clouds/imds.h"
#include "config/config.h"
#include "evidence/samples.h"
#include "engine/record.h"
#include "hooks/hooks.h"

struct record;

/* Sets up the sender (remote-write-url) and the Pushgateway (push-url)
 * when configured, reading the credentials files. cfg is borrowed for the
 * call. queue_changed (with userdata) is called from the loop, at idle
 * priority, when the remote-write queue changed: the owner saves the
 * state file, which carries the queue (record_queue_json). Returns 0, or
 * -errno with one error line logged (credentials that cannot be read). */
int record_new(sd_event *e, struct imds *imds, const struct config *cfg, void (*queue_changed)(void *userdata),
	       void *userdata, struct record **ret);
/* The remote-write batches not delivered yet, for the state file (caller
 * owns it), NULL when there are none. */
cJSON *record_queue_json(const struct record *rec);
/* The batches a previous run left in the state file (its "extra"): queued
 * and sent. NULL is none. */
void record_load_queue(struct record *rec, const cJSON *queue);
void record_free(struct record *rec);
/* SIGHUP: new URLs, labels and credentials (credentials that cannot be
 * read keep the old ones, with a warning). */
void record_reload(struct record *rec, const struct config *cfg);
/* What the labels say of this instance; fields the caller does not know
 * stay "". Copied. */
void record_set_identity(struct record *rec, const struct evidence_identity *id);

/* The moments of an eviction, as the engine reports them; now is the
 * wall clock of the report. Each logs its catalogued journal record and
 * sends the series that moment completes, after whatever it accompanies
 * (the send starts from the loop). */
void record_detected(struct record *rec, const struct eviction *r, uint64_t now_wall_usec);
/* A hook of record id ended: res as the runner gave it (its report). */
void record_hook_ended(struct record *rec, const struct eviction *r, const struct hook_result *res);
void record_chain_done(struct record *rec, const struct eviction *r, uint64_t now_wall_usec);
/* The platform confirmed the acknowledgement of notice k. */
void record_approved(struct record *rec, const struct eviction *r, size_t k, uint64_t now_wall_usec);
/* The platform called the event off (no further hook runs). */
void record_cancelled(struct record *rec, const struct eviction *r, uint64_t now_wall_usec);
/* The recover step starts (reason cancelled, ended or boot); alive is the
 * acknowledgement or the last sign of life before it, 0 unknown. Deletes
 * the Pushgateway group. */
void record_recovered(struct record *rec, const struct eviction *r, enum evidence_recover_reason reason,
		      uint64_t recover_wall_usec, uint64_t alive_wall_usec);
/* The OS shuts down with no platform notice: the hooks run for r. */
void record_shutdown(struct record *rec, const struct eviction *r);

#endif
