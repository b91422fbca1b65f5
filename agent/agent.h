/* agent.h - the eviction pipeline: poll, detect, run hooks, approve. */
#ifndef SPOT_AGENT_H
#define SPOT_AGENT_H

#include <systemd/sd-event.h>

#include "config.h"
#include "hooks.h"
#include "state.h"

/* Polls are re-tried with a capped, jittered backoff after failures; the cap
 * stays small because every second of it can be a second of a 30 s notice
 * lost, and while an eviction is being handled there is no backoff at all. */
#define AGENT_BACKOFF_MAX_USEC        (5 * USEC_PER_SEC)
/* The first Scheduled Events call switches the service on and can take up to
 * two minutes; later polls of a link-local service answer in milliseconds. */
#define AGENT_FIRST_POLL_TIMEOUT_USEC (130 * USEC_PER_SEC)
#define AGENT_POLL_TIMEOUT_USEC       (3 * USEC_PER_SEC)
#define AGENT_APPROVE_TIMEOUT_USEC    (3 * USEC_PER_SEC)
#define AGENT_APPROVE_RETRY_USEC      (500 * USEC_PER_MSEC)
/* Azure IMDS answers about 5 requests per second per VM, then 429. The
 * agent keeps every request it sends (polls and approvals together) under
 * AGENT_RATE_MAX per AGENT_RATE_WINDOW_USEC, 10 % below that, and lets a
 * waiting approval go before a poll; polls leave one request of every
 * window free for an approval. AWS and GCP rounds count each item they ask. */
#define AGENT_RATE_MAX                5
#define AGENT_RATE_WINDOW_USEC        (1100 * USEC_PER_MSEC)
/* A failure streak is logged when it starts, then once per this period. */
#define AGENT_FAILURE_LOG_USEC        (60 * USEC_PER_SEC)

struct agent;

/* Takes ownership of *cfg (zeroed on success). Loads the state, starts the
 * HTTP endpoint and the IMDS client; does not poll yet. Logs its errors;
 * returns 0 or -errno. */
int agent_new(sd_event *e, struct config *cfg, struct agent **ret);
/* Starts polling. */
int agent_start(struct agent *a);
/* Applies a reloaded configuration (SIGHUP). Settings that need a restart
 * (provider, imds-url, state-dir, listen) keep their old values with a
 * warning. Takes ownership of *cfg. */
void agent_reload(struct agent *a, struct config *cfg);
/* SIGTERM: stop polling, let a running hook end within its timeout, then
 * leave the loop with exit code 0. */
void agent_stop(struct agent *a);
void agent_free(struct agent *a);

/* Logs each skipped hook file with its reason, but only when the set of
 * skips differs from the one last logged (*signature, owned). */
void agent_log_skips(const struct hook_plan *plan, char **signature);

/* Makes r->hooks follow plan: hooks already final are kept as they are,
 * anything else becomes pending, hooks new in the plan are added, and the
 * whole list is in bytewise name order. */
void agent_merge_plan(struct event_record *r, const struct hook_plan *plan);

#endif
