/* agent-internal.h - what agent.c (records, hook chain, approval) and
 * poll.c (talking to the metadata service) share: the agent struct and the
 * calls between the two halves. Not for other modules. */
#ifndef SPOT_AGENT_INTERNAL_H
#define SPOT_AGENT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "agent.h"
#include "event.h"
#include "http.h"
#include "imds.h"
#include "metrics.h"
#include "provider.h"

#define IGNORED_IDS_MAX 32

struct agent {
	sd_event *event;
	struct config cfg;
	struct agent_state state;
	struct metrics *metrics;
	struct imds *imds;
	struct http_server *http;

	char *base_url;              /* the metadata service, no trailing slash */
	char *events_url;            /* Azure */
	char *compute_url;           /* Azure */
	struct watcher *watcher;     /* AWS and GCP */
	bool provider_known;         /* false while 'auto' is still probing */
	unsigned probe_step;         /* auto: which provider is tried next */
	sd_event_source *poll_timer;
	uint64_t poll_started_mono_usec;
	unsigned backoff_step;
	bool first_poll_done;
	uint64_t last_failure_log_mono_usec;

	/* The running chain, the record it belongs to (by id: records move
	 * when the array grows) and what it borrows. */
	struct hooks_chain *chain;
	char chain_id[EVENT_ID_MAX];
	bool chain_hook_started;
	uint64_t detected_mono_usec;  /* when detected_id was first read */
	char detected_id[EVENT_ID_MAX];  /* newest event detected by this process */
	char **chain_env;
	char *chain_stdin;
	sd_event_source *chain_reaper;

	sd_event_source *approve_timer;
	char approving_id[EVENT_ID_MAX];

	/* Start times of the last AGENT_RATE_MAX requests (ring), to stay under the
	 * metadata service's rate limit. */
	uint64_t sent_mono_usec[AGENT_RATE_MAX];
	size_t sent_next;

	/* Events seen and deliberately not handled, so each is logged once. */
	char ignored_ids[IGNORED_IDS_MAX][EVENT_ID_MAX];
	size_t ignored_next;

	char *skips_signature;
	enum agent_phase last_notified_phase;
	bool stopping;
};

/* agent.c */
void agent_save_state(struct agent *a);
void agent_update_phase(struct agent *a);
void agent_handle_document(struct agent *a, const struct event_list *list, uint64_t read_mono_usec);
bool agent_maybe_approve(struct agent *a, bool final);
bool agent_approval_waiting(const struct agent *a);
bool agent_eviction_active(const struct agent *a);

/* poll.c */
uint64_t poll_jitter(uint64_t usec);
uint64_t poll_rate_next_free(const struct agent *a, uint64_t now, unsigned n);
void poll_rate_note(struct agent *a, uint64_t now, unsigned n);
uint64_t poll_interval_usec(const struct agent *a);
void poll_schedule(struct agent *a, uint64_t delay_usec);
int poll_use_provider(struct agent *a, enum provider p);
void poll_set_urls(struct agent *a);
int poll_on_timer(sd_event_source *s, uint64_t usec, void *userdata);

#endif
