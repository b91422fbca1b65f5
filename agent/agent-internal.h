/* agent-internal.h - the daemon's one struct, shared by the files of the
 * wiring: agent.c (life cycle, carrying out the engine's actions, the
 * state file), agent-poll.c (rounds and their pacing), agent-ack.c
 * (acknowledgements and heartbeats through the provider) and
 * agent-report.c (what the engine reports, as log lines, metrics, journal
 * records; health, readiness and sd_notify STATUS). Not for other
 * modules. */
#ifndef SPOT_AGENT_INTERNAL_H
#define SPOT_AGENT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "agent.h"
#include "agent-record.h"
#include "clouds/imds.h"
#include "clouds/provider.h"
#include "engine/engine.h"
#include "engine/poll.h"
#include "hooks/chain.h"
#include "http/http.h"
#include "http/metrics.h"
#include "http/status.h"
#include "logind/logind.h"
#include "store/state-file.h"

#define IGNORED_IDS_MAX 32

struct agent {
	sd_event *event;
	struct config cfg;
	struct records records;          /* the evictions, the engine's to change */
	struct agent_state state;        /* what the endpoint shows */
	struct engine engine;
	struct chain chain;
	struct metrics *metrics;
	struct imds *imds;
	struct http_server *http;
	struct logind *logind;           /* the delay inhibitor lock for shutdown */
	struct record *record;           /* the eviction's record: journal, remote-write, push */
	char *base_url;                  /* the metadata service, no trailing slash */

	struct provider_handle *provider;  /* NULL while 'auto' probes */
	struct provider_probe *probe;
	struct poll_sched sched;
	sd_event_source *poll_timer;
	uint64_t round_read_mono_usec;   /* when the round being handled was read */
	bool first_round_done;
	uint64_t last_failure_log_mono_usec;
	int64_t incarnation;             /* last logged, -1 none */
	char identity_error[IMDS_ERROR_MAX];  /* last logged */
	char optional_error[IMDS_ERROR_MAX];  /* last logged */
	size_t n_other_logged;

	sd_event_source *engine_timer;   /* engine_next_wake */
	/* An acknowledgement (or heartbeat) waiting for a free request of the
	 * metadata service's rate budget, and the one in flight. */
	sd_event_source *ack_timer;
	struct agent_call {
		bool waiting;
		bool in_flight;
		char id[EVENT_ID_MAX];
		size_t notice;
		bool abandon;
		char error[IMDS_ERROR_MAX];  /* of the last answer, "" when OK */
	} ack, heartbeat;

	/* Events seen and deliberately not handled, so each is logged once. */
	char ignored_ids[IGNORED_IDS_MAX][EVENT_ID_MAX];
	size_t ignored_next;

	enum agent_phase last_notified_phase;
	/* What /healthz and /readyz last answered, as logged: each change is
	 * logged once, not per request or per poll. */
	sd_event_source *health_timer;   /* the failing streak outgrows the window */
	bool unhealthy;
	uint64_t unhealthy_since_mono_usec;
	uint64_t unhealthy_since_wall_usec;
	bool unready;
	char unready_id[EVENT_ID_MAX];   /* the eviction that took readiness down */
	/* The eviction detected by this process most recently and when it was
	 * read (for the detection-to-first-hook figure). */
	char detected_id[EVENT_ID_MAX];
	uint64_t detected_mono_usec;
	bool first_hook_noted;

	bool draining;
	struct state_sync sync;          /* fsyncs of the last save, owed until the drain ends */
	bool stopping;
};

/* agent.c */
void agent_drain(struct agent *a);
void agent_save(struct agent *a);
uint64_t agent_now_wall(void);

/* agent-poll.c */
int agent_poll_setup(struct agent *a);
void agent_schedule_poll(struct agent *a, uint64_t at_mono);
int agent_use_provider(struct agent *a, enum provider p);
struct engine_config agent_engine_config(const struct agent *a);
struct provider_config agent_provider_config(const struct agent *a);
void agent_poll_done(struct agent *a);

/* agent-ack.c */
int agent_ack_setup(struct agent *a);
void agent_send_ack(struct agent *a, const struct engine_action *act);
void agent_send_heartbeat(struct agent *a, const struct engine_action *act);
void agent_ack_done(struct agent *a);

/* agent-report.c */
int agent_report_setup(struct agent *a);
/* An engine report (DETECTED, TRANSITION, ...): logs, metrics. */
void agent_report(struct agent *a, const struct engine_action *act);
void agent_note_health(struct agent *a);
void agent_note_readiness(struct agent *a);
void agent_notify_phase(struct agent *a);
void agent_hook_started(void *userdata, const struct eviction *r, enum chain_kind c, size_t hook);
void agent_hook_ended(void *userdata, const struct eviction *r, enum chain_kind c, const struct hook_result *res);
void agent_report_done(struct agent *a);

#endif
