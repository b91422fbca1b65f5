/* agent.h - the daemon: the engine wired to the loop, the metadata service,
 * the hook runner, the state file and the HTTP endpoint. */
#ifndef SPOT_AGENT_H
#define SPOT_AGENT_H

#include <systemd/sd-event.h>

#include "config/config.h"

/* A failure streak of polls is logged when it starts, then once per this period. */
#define AGENT_FAILURE_LOG_USEC        (60 * USEC_PER_SEC)
#define AGENT_APPROVE_TIMEOUT_USEC    (3 * USEC_PER_SEC)

struct agent;

/* Takes ownership of *cfg (zeroed on success). Loads the state, kills what
 * a previous run's hooks left behind, starts the HTTP endpoint and the
 * IMDS client; does not poll yet. Logs its errors; returns 0 or -errno,
 * -EADDRINUSE, -EADDRNOTAVAIL or -EACCES when the listen address cannot be
 * bound (a configuration error). */
int agent_new(sd_event *e, struct config *cfg, struct agent **ret);
/* Resumes unfinished chains at once and starts polling. */
int agent_start(struct agent *a);
/* Applies a reloaded configuration (SIGHUP), expose-metrics and
 * expose-status included. Settings that need a restart (provider, imds-url,
 * state-dir, listen) keep their old values with a warning. Takes ownership
 * of *cfg. */
void agent_reload(struct agent *a, struct config *cfg);
/* A reload (SIGHUP) was refused, the running configuration kept: why, the
 * first error line, is shown by /v1/status (config.reload_error),
 * /metrics (spot_agent_config_reload_failed) and /healthz until a reload
 * succeeds. */
void agent_reload_refused(struct agent *a, const char *why);
/* SIGTERM: stop polling, let a running hook end within its budget, send a
 * due approval, then leave the loop with exit code 0. */
void agent_stop(struct agent *a);
void agent_free(struct agent *a);

#endif
