/* status.h - what the agent shows of itself: the facts /v1/status,
 * /healthz, /readyz and /metrics read (provider, name, poll statistics,
 * the evictions through the engine), and the /v1/status document. The
 * wiring fills it; the endpoint only reads it. */
#ifndef SPOT_HTTP_STATUS_H
#define SPOT_HTTP_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "engine/engine.h"
#include "engine/record.h"
#include "store/ignored.h"

#define STATUS_REASON_MAX  256
#define STATUS_HISTORY_MAX 10
#define STATUS_RELOAD_ERROR_MAX 512        /* a refused reload's first error line */

/* Poll statistics; not persisted. */
struct poll_stats {
	uint64_t ok;
	uint64_t failed;
	uint64_t consecutive_failures;
	uint64_t last_ok_wall_usec;
	uint64_t last_ok_mono_usec;
	uint64_t first_failure_mono_usec;   /* start of the current failure streak, 0 if none */
	uint64_t last_latency_usec;
	int64_t incarnation;                /* -1 until known */
	char last_error[STATUS_REASON_MAX]; /* "" when the last poll succeeded */
	char optional_error[STATUS_REASON_MAX]; /* optional requests that failed
						 * in the last round, "" none */
	bool imds_v1;                       /* AWS: read without a session token */
};

struct agent_state {
	uint64_t started_mono_usec;
	char *provider;                    /* owned, "azure" */
	char *vm_name;                     /* owned, NULL until known */
	struct poll_stats poll;
	bool rebalance_recommended;        /* the provider recommends moving off (AWS) */
	/* The first error line of the last reload that was refused (with the
	 * count of the others), "" when the last reload, or the start, was
	 * fine. */
	char reload_error[STATUS_RELOAD_ERROR_MAX];
	/* The last few events for this VM not acted on: their type is not in
	 * 'events'. */
	struct ignored_events ignored;
	const struct records *records;     /* borrowed: the evictions */
	const struct engine *engine;       /* borrowed: readiness and phase; NULL
					    * when there is none (tests) */
};

void agent_state_init(struct agent_state *s);
void agent_state_done(struct agent_state *s);

/* /readyz: what engine_ready says (ready when there is no engine). */
bool status_ready(const struct agent_state *s, uint64_t now_wall_usec, const struct eviction **ret_cause);
/* The "state" summary. */
enum agent_phase status_phase(const struct agent_state *s, uint64_t now_wall_usec);
/* The eviction /v1/status shows at its top (records_current), or NULL. */
const struct eviction *status_current(const struct agent_state *s);

/* /v1/status (spot-agent(8) lists every field, doc/spot-agent.schema.json
 * is its schema): version, provider, vm_name, uptime_s, state, ready,
 * rebalance_recommended, poll{...}, the fields of the current or last
 * eviction (record-json.h; all null when there is none), history[].
 * Caller owns it. */
cJSON *status_to_json(const struct agent_state *s, const char *version);

#endif
