/* agent.c - the daemon's life cycle and the engine's hands: it builds the
 * parts (state file, engine, hook chain, metadata client, endpoint, logind
 * lock), carries out the engine's actions in order (persist, hooks through
 * chain.c, acknowledgements through agent-ack.c, reports through
 * agent-report.c) and arms the engine's timer. What to do is the engine's,
 * when to ask the metadata service is agent-poll.c's. It never blocks and
 * never exits on a runtime error: it logs once, records the error and
 * retries. */
#include "agent-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "log.h"
#include "util.h"

uint64_t agent_now_wall(void)
{
	return now_usec(CLOCK_REALTIME);
}

/* ---- the state file ---- */

/* Every save is in place before the engine's next action is carried out:
 * a restarted agent reads it, so a hook whose outcome was saved never runs
 * again and an id or deadline made up at first sight never changes. The
 * two fsyncs that carry it through a crash of the machine are paid once
 * the drain has carried out the actions that followed the save (the next
 * hook's start, the acknowledgement), before the loop handles anything
 * else; a save that comes before they are paid pays them first (see
 * state-file.c), so one of the two files is always whole on disk. */
static void save(struct agent *a)
{
	/* The remote-write batches not delivered yet travel with the records. */
	cJSON *queue = record_queue_json(a->record);
	struct state_doc doc = { .dir = a->cfg.state_dir, .records = &a->records, .extra = queue };
	uint64_t t0 = now_usec(CLOCK_MONOTONIC);
	int r = state_save_begin(&doc, &a->sync);

	cJSON_Delete(queue);
	if (r < 0)
		log_errno(r, "state: cannot write '%s/%s', continuing in memory", a->cfg.state_dir,
			  STATE_FILE_NAME);
	else
		log_debug("state: save %" PRIu64 " written in %.3f ms", a->sync.seq,
			  (double)(now_usec(CLOCK_MONOTONIC) - t0) / USEC_PER_MSEC);
}

void agent_save(struct agent *a)
{
	save(a);
}

static void pay_sync(struct agent *a)
{
	bool owed = a->sync.fd >= 0;
	uint64_t t0 = now_usec(CLOCK_MONOTONIC);
	int r = state_sync_finish(&a->sync);

	if (r < 0)
		log_errno(r, "state: cannot sync '%s/%s' to disk", a->cfg.state_dir, STATE_FILE_NAME);
	else if (owed)
		log_debug("state: save %" PRIu64 " on disk (fsync) in %.3f ms", a->sync.seq,
			  (double)(now_usec(CLOCK_MONOTONIC) - t0) / USEC_PER_MSEC);
}

/* The remote-write queue changed (from the loop, at idle priority). */
static void on_queue_changed(void *userdata)
{
	struct agent *a = userdata;

	save(a);
	pay_sync(a);
}

static void load_state(struct agent *a, cJSON **ret_extra)
{
	struct state_load_report rep;
	char path[PATH_MAX];
	int r;

	(void)snprintf(path, sizeof(path), "%s/%s", a->cfg.state_dir, STATE_FILE_NAME);
	r = state_load(a->cfg.state_dir, &a->records, &rep);
	if (r < 0)
		log_warning_errno(r, "state: cannot open '%s', continuing without the saved state",
				  a->cfg.state_dir);
	if (rep.stale_removed > 0)
		log_info("state: removed %u stale temp %s of interrupted saves in '%s'", rep.stale_removed,
			 plural(rep.stale_removed, "file", "files"), a->cfg.state_dir);
	if (rep.error < 0 && rep.from_spare)
		log_warning("state: '%s' was unreadable (%s), moved it to '%s'; loaded the previous save "
			    "from '%s/%s' instead", path, rep.reason[0] ? rep.reason : strerror(-rep.error),
			    rep.moved ? rep.moved : "(could not be moved)", a->cfg.state_dir, STATE_SPARE_NAME);
	else if (rep.error < 0 && rep.moved)
		log_warning("state: '%s' was unreadable (%s), moved it to '%s'; '%s/%s' held no good copy "
			    "either, started afresh", path, rep.reason[0] ? rep.reason : strerror(-rep.error),
			    rep.moved, a->cfg.state_dir, STATE_SPARE_NAME);
	else if (rep.error < 0)
		log_warning("state: '%s' was unreadable (%s) and could not be moved aside; starting afresh, "
			    "the next save replaces it", path, rep.reason[0] ? rep.reason : strerror(-rep.error));
	if (rep.dropped > 0)
		log_warning("state: %u %s of '%s' did not read back and %s left out, the others are "
			    "kept (%s); the file as it was is in '%s'", rep.dropped,
			    plural(rep.dropped, "record", "records"), path, rep.dropped == 1 ? "was" : "were",
			    rep.dropped_reason, rep.kept ? rep.kept : "(no copy could be written)");
	*ret_extra = rep.extra;
	rep.extra = NULL;
	state_load_report_done(&rep);
}

/* ---- carrying out the engine's actions ---- */

static void carry_out(struct agent *a, const struct engine_action *act)
{
	if (chain_carry_out(&a->chain, act))
		return;
	switch (act->kind) {
	case ENGINE_PERSIST:
		save(a);
		break;
	case ENGINE_SEND_ACK:
		agent_send_ack(a, act);
		break;
	case ENGINE_SEND_HEARTBEAT:
		agent_send_heartbeat(a, act);
		break;
	case ENGINE_EXIT:
		log_info("nothing left in hand, exiting");
		(void)sd_event_exit(a->event, 0);
		break;
	case ENGINE_RELEASE_SHUTDOWN:
		log_info("shutdown: nothing left in hand, letting it go on");
		logind_release(a->logind);
		break;
	default:
		agent_report(a, act);
		break;
	}
}

static void arm_engine_timer(struct agent *a)
{
	uint64_t wake = engine_next_wake(&a->engine), now = agent_now_wall(), mono = now_usec(CLOCK_MONOTONIC);
	int r;

	if (wake == USEC_INFINITY) {
		(void)sd_event_source_set_enabled(a->engine_timer, SD_EVENT_OFF);
		return;
	}
	r = sd_event_source_set_time(a->engine_timer, wake > now ? mono + (wake - now) : mono);
	if (r >= 0)
		r = sd_event_source_set_enabled(a->engine_timer, SD_EVENT_ONESHOT);
	if (r < 0)
		log_errno(r, "loop: cannot arm the engine timer");
}

/* Carries out what the engine asked, in order; an action may give the
 * engine a new input, whose actions queue behind. */
void agent_drain(struct agent *a)
{
	struct engine_action act;

	if (a->draining)
		return;
	a->draining = true;
	/* Readiness follows the input at once: a detection drops it before
	 * the first hook's spawn and save, where the drain is counted from. */
	agent_note_readiness(a);
	while (engine_next_action(&a->engine, &act))
		carry_out(a, &act);
	pay_sync(a);
	a->draining = false;
	arm_engine_timer(a);
	agent_notify_phase(a);
	agent_note_readiness(a);
}

static void after_hook(void *userdata)
{
	agent_drain(userdata);
}

static int on_engine_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct agent *a = userdata;

	engine_tick(&a->engine, agent_now_wall());
	agent_drain(a);
	return 0;
}

/* ---- the OS shutting down (logind) ---- */

static void on_shutdown_started(uint64_t budget_usec, void *userdata)
{
	struct agent *a = userdata;

	if (budget_usec == 0) {
		log_warning("shutdown: the OS is shutting down and no lock holds it up; "
			    "the hooks in hand get until SIGTERM's end");
		return;
	}
	if (budget_usec == USEC_INFINITY)
		log_notice("shutdown: the OS is shutting down, logind waits for the hooks");
	else
		log_notice("shutdown: the OS is shutting down, logind waits up to %.1f s for the hooks",
			   (double)budget_usec / USEC_PER_SEC);
	engine_shutdown(&a->engine, budget_usec, agent_now_wall());
	/* The notice may be there already (GCP preempts with the soft-off):
	 * ask now rather than at the next tick. */
	agent_schedule_poll(a, now_usec(CLOCK_MONOTONIC));
	agent_drain(a);
}

static void on_shutdown_cancelled(void *userdata)
{
	struct agent *a = userdata;

	log_notice("shutdown: cancelled; an eviction the shutdown alone brought is over");
	engine_shutdown_cancelled(&a->engine, agent_now_wall());
	agent_drain(a);
}

static void on_logind_unavailable(const char *why, void *userdata)
{
	log_info("logind: %s; a shutdown will not wait for the hooks", why);
}

static const struct logind_ops logind_ops = {
	.shutdown_started = on_shutdown_started,
	.shutdown_cancelled = on_shutdown_cancelled,
	.unavailable = on_logind_unavailable,
};

/* ---- life cycle ---- */

/* The hooks' cgroup is named after the state directory: the same agent
 * finds its own leftovers after a restart, and two agents on one machine
 * (tests) keep apart. */
static void setup_tree(struct agent *a)
{
	uint64_t h = hash_fnv(HASH_FNV_INIT, a->cfg.state_dir, a->cfg.state_dir ? strlen(a->cfg.state_dir) : 0);
	char tag[17];
	unsigned killed = 0;
	int r;

	(void)snprintf(tag, sizeof(tag), "%016" PRIx64, h);
	r = hooks_tree_setup(tag, &killed);
	if (r < 0)
		log_warning_errno(r, "hooks: cannot set up the hooks' process tree, children that leave "
				  "their session are still killed while the agent runs");
	if (killed > 0)
		log_warning("hooks: killed %u %s left over from a previous run's hooks", killed,
			    plural(killed, "process", "processes"));
	if (!hooks_tree_cgroup())
		log_info("hooks: no cgroup for the hooks, their leftovers are found as orphans");
}

static void point_chain_at_config(struct agent *a)
{
	a->chain.hooks_dir = a->cfg.hooks_dir;
	a->chain.hooks_lib_dir = a->cfg.hooks_lib_dir;
	a->chain.state_dir = a->cfg.state_dir;
}

int agent_new(sd_event *e, struct config *cfg, struct agent **ret)
{
	struct agent *a = xcalloc(1, sizeof(*a));
	struct engine_config ec;
	cJSON *extra = NULL;
	int r;

	a->sync = (struct state_sync)STATE_SYNC_INIT;
	a->event = sd_event_ref(e);
	a->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	a->last_notified_phase = _PHASE_MAX;
	a->incarnation = -1;

	records_init(&a->records);
	agent_state_init(&a->state);
	a->state.provider = xstrdup(provider_to_string(a->cfg.provider));  /* "auto" until probed */
	a->state.records = &a->records;
	a->state.engine = &a->engine;
	if (a->cfg.vm_name)
		a->state.vm_name = xstrdup(a->cfg.vm_name);
	load_state(a, &extra);
	setup_tree(a);

	ec = agent_engine_config(a);
	engine_init(&a->engine, &ec, &a->records);
	chain_init(&a->chain);
	a->chain.event = e;
	a->chain.engine = &a->engine;
	a->chain.records = &a->records;
	a->chain.vm_name = (const char *const *)&a->state.vm_name;
	point_chain_at_config(a);
	a->chain.hook_started = agent_hook_started;
	a->chain.hook_ended = agent_hook_ended;
	a->chain.after_input = after_hook;
	a->chain.userdata = a;

	a->metrics = metrics_new();
	r = agent_poll_setup(a);
	if (r < 0)
		goto fail;
	r = record_new(e, a->imds, &a->cfg, on_queue_changed, a, &a->record);
	if (r < 0)
		goto fail;
	record_load_queue(a->record, extra);
	cJSON_Delete(extra);
	extra = NULL;
	r = agent_ack_setup(a);
	if (r >= 0)
		r = agent_report_setup(a);
	if (r >= 0)
		r = sd_event_add_time(e, &a->engine_timer, CLOCK_MONOTONIC, USEC_INFINITY, 1, on_engine_timer, a);
	if (r < 0) {
		log_errno(r, "loop: cannot add timers");
		goto fail;
	}
	(void)sd_event_source_set_description(a->engine_timer, "engine");
	/* The engine outranks the HTTP endpoint (lower value = higher
	 * priority in sd-event). */
	(void)sd_event_source_set_priority(a->engine_timer, SD_EVENT_PRIORITY_IMPORTANT);

	/* Without logind (containers, minimal images) the agent runs on. */
	r = logind_new(e, &logind_ops, a, &a->logind);
	if (r < 0)
		log_warning_errno(r, "logind: cannot watch for shutdowns, going on without");

	if (strcmp(a->cfg.listen, "none") != 0) {
		r = http_server_new(e, a->cfg.listen, &a->state, a->metrics, SPOT_VERSION, &a->http);
		if (r < 0) {
			log_errno(r, "http: cannot listen on '%s' (%s)", a->cfg.listen,
				  strerrorname_np(-r) ? strerrorname_np(-r) : "?");
			goto fail;
		}
		http_server_expose(a->http, a->cfg.expose_metrics, a->cfg.expose_status);
	}
	*ret = a;
	return 0;
fail:
	cJSON_Delete(extra);
	agent_free(a);
	return r;
}

/* Where the endpoint listens: the configured address, or systemd's socket,
 * which replaces it. */
static void describe_listen(const struct agent *a, char *buf, size_t n)
{
	if (!a->http)
		(void)snprintf(buf, n, "none");
	else if (sd_listen_fds(0) > 0)
		(void)snprintf(buf, n, "the socket passed by systemd (port %d)", http_server_port(a->http));
	else
		(void)snprintf(buf, n, "%s", a->cfg.listen);
}

/* The one line that says what this run watches and where it answers. */
static void log_started(const struct agent *a, const struct hook_plan *plan, int scan_error)
{
	const char *lib = a->cfg.hooks_lib_dir && a->cfg.hooks_lib_dir[0] ? a->cfg.hooks_lib_dir : NULL;
	char listen[CONFIG_LISTEN_MAX + 64], hooks[64];

	describe_listen(a, listen, sizeof(listen));
	if (scan_error == -EBUSY)
		(void)snprintf(hooks, sizeof(hooks), "hooks read when the eviction in hand resumes");
	else if (scan_error < 0)
		(void)snprintf(hooks, sizeof(hooks), "unreadable hooks");
	else
		(void)snprintf(hooks, sizeof(hooks), "%zu %s", plan->n_hooks, plural(plan->n_hooks, "hook", "hooks"));
	log_info("spot-agent " SPOT_VERSION " started: provider %s, imds %s, listen %s, %s from '%s'%s%s%s, "
		 "state in '%s'", a->cfg.provider == PROVIDER_AUTO ? "auto (probing azure, aws, then gcp)" :
		 provider_to_string(a->cfg.provider), a->base_url, listen, hooks, a->cfg.hooks_dir,
		 lib ? " and '" : "", lib ? lib : "", lib ? "'" : "", a->cfg.state_dir);
}

int agent_start(struct agent *a)
{
	static const struct hook_plan none = { 0 };
	const struct hook_plan *plan = &none;
	int r;

	/* Scanned now, so that the first eviction need not wait for it; an
	 * eviction in hand scans when it resumes. */
	r = chain_prescan(&a->chain, &plan);
	if (r >= 0)
		log_info("hooks: %zu to run from '%s'", plan->n_hooks, a->cfg.hooks_dir);
	log_started(a, plan, r);
	/* An eviction in hand resumes now, without waiting for the service. */
	engine_start(&a->engine, agent_now_wall());
	agent_drain(a);
	agent_schedule_poll(a, now_usec(CLOCK_MONOTONIC));
	return 0;
}

static bool str_changed(const char *x, const char *y)
{
	if (!x || !y)
		return x != y;
	return strcmp(x, y) != 0;
}

void agent_reload(struct agent *a, struct config *cfg)
{
	struct config n = *cfg;
	struct hook_plan plan = { 0 };
	const struct hook_plan *view = &plan;
	struct engine_config ec;
	int r;

	memset(cfg, 0, sizeof(*cfg));
	/* This reload was fine: /v1/status and /metrics stop showing a refusal. */
	a->state.reload_error[0] = '\0';
#define KEEP(field, key)                                                                     \
	do {                                                                                 \
		if (str_changed(n.field, a->cfg.field))                                      \
			log_warning("config: changing '" key "' needs a restart, keeping '%s'", \
				    a->cfg.field ? a->cfg.field : "");                       \
		free(n.field);                                                               \
		n.field = a->cfg.field;                                                      \
		a->cfg.field = NULL;                                                         \
	} while (0)
	KEEP(imds_url, "imds-url");
	KEEP(state_dir, "state-dir");
	KEEP(listen, "listen");
	KEEP(vm_name, "vm-name");
#undef KEEP
	if (n.provider != a->cfg.provider && n.provider != PROVIDER_AUTO)
		log_warning("config: changing 'provider' needs a restart, keeping '%s'",
			    provider_to_string(a->cfg.provider));
	n.provider = a->cfg.provider;
	config_done(&a->cfg);
	a->cfg = n;
	point_chain_at_config(a);
	log_setup(a->cfg.log_format, a->cfg.log_level);
	record_reload(a->record, &a->cfg);
	http_server_expose(a->http, a->cfg.expose_metrics, a->cfg.expose_status);
	/* Before the engine's config: the heartbeat period comes from it. */
	if (a->provider) {
		struct provider_config pc = agent_provider_config(a);

		(void)provider_set_config(a->provider, &pc);
	}
	ec = agent_engine_config(a);
	engine_set_config(&a->engine, &ec);
	poll_sched_set_interval(&a->sched, a->cfg.poll_interval_ms * USEC_PER_MSEC);

	free(a->chain.skips_signature);
	a->chain.skips_signature = NULL;
	/* Scanned ahead for the next chain; while one is in hand, only for
	 * the log (the next chain scans then). */
	r = chain_prescan(&a->chain, &view);
	if (r == -EBUSY) {
		r = hooks_scan(a->cfg.hooks_dir, a->cfg.hooks_lib_dir, &plan);
		if (r >= 0)
			chain_log_skips(&plan, &a->chain.skips_signature);
		view = &plan;
	}
	if (r >= 0) {
		if (view->n_hooks == 0)
			log_warning("config reloaded, but no hook would run: hooks-dir '%s' is missing or "
				    "has no runnable file", a->cfg.hooks_dir);
		else
			log_info("config reloaded; %zu %s to run from '%s'", view->n_hooks,
				 plural(view->n_hooks, "hook", "hooks"), a->cfg.hooks_dir);
	} else {
		log_warning("config reloaded; hooks directory '%s' cannot be read", a->cfg.hooks_dir);
	}
	hook_plan_done(&plan);
	agent_drain(a);
}

void agent_reload_refused(struct agent *a, const char *why)
{
	(void)strscpy(a->state.reload_error, sizeof(a->state.reload_error),
		      why && why[0] ? why : "the configuration could not be loaded");
}

void agent_stop(struct agent *a)
{
	if (a->stopping)
		return;
	a->stopping = true;
	(void)sd_notify(false, "STOPPING=1\nSTATUS=Stopping");
	(void)sd_event_source_set_enabled(a->poll_timer, SD_EVENT_OFF);
	if (a->provider)
		provider_cancel(a->provider);
	if (engine_active(&a->engine))
		log_info("stopping: the eviction in hand runs to its end within its deadline first");
	engine_stop(&a->engine, agent_now_wall());
	agent_drain(a);
}

void agent_free(struct agent *a)
{
	if (!a)
		return;
	chain_done(&a->chain);
	hooks_tree_done();
	sd_event_source_disable_unref(a->engine_timer);
	agent_poll_done(a);
	agent_ack_done(a);
	agent_report_done(a);
	/* What the remote-write sender still holds waits in the state file. */
	if (a->record)
		save(a);
	record_free(a->record);
	http_server_free(a->http);
	logind_free(a->logind);
	provider_free(a->provider);
	provider_probe_free(a->probe);
	imds_free(a->imds);
	metrics_free(a->metrics);
	engine_done(&a->engine);
	pay_sync(a);
	agent_state_done(&a->state);
	records_done(&a->records);
	config_done(&a->cfg);
	free(a->base_url);
	sd_event_unref(a->event);
	free(a);
}
