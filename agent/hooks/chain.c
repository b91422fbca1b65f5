/* chain.c - the hands of the engine's hook chain: it reads the hook
 * directories when the engine asks, starts the one hook the engine names
 * with the record's environment and stdin, and gives the hook's end (or
 * its failure to start) back to the engine. It decides nothing about order,
 * skips, deadlines or retries: those are engine.c's. */
#include "hooks/chain.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "util.h"

void chain_init(struct chain *c)
{
	memset(c, 0, sizeof(*c));
}

static void release_run(struct chain *c)
{
	hook_run_free(c->run);
	c->run = NULL;
	c->run_id[0] = '\0';
	strv_free(c->run_env);
	c->run_env = NULL;
	free(c->run_stdin);
	c->run_stdin = NULL;
}

void chain_done(struct chain *c)
{
	if (!c)
		return;
	release_run(c);
	hook_plan_done(&c->plan);
	free(c->skips_signature);
	c->skips_signature = NULL;
}

void chain_log_skips(const struct hook_plan *plan, char **signature)
{
	size_t len = 1;
	char *sig, *p;

	for (size_t i = 0; i < plan->n_skips; i++)
		len += strlen(plan->skips[i].path) + strlen(plan->skips[i].reason) + 2;
	len += 24;
	sig = p = xmalloc(len);
	*p = '\0';
	for (size_t i = 0; i < plan->n_skips; i++)
		p += snprintf(p, len - (size_t)(p - sig), "%s\n%s\n", plan->skips[i].path, plan->skips[i].reason);
	(void)snprintf(p, len - (size_t)(p - sig), "%zu\n", plan->n_skips_dropped);
	if (*signature && strcmp(*signature, sig) == 0) {
		free(sig);
		return;
	}
	for (size_t i = 0; i < plan->n_skips; i++)
		log_warning("hooks: skipping '%s': %s", plan->skips[i].path, plan->skips[i].reason);
	if (plan->n_skips_dropped > 0)
		log_warning("hooks: skipping %zu more files, not listed", plan->n_skips_dropped);
	free(*signature);
	*signature = sig;
}

void chain_note_detected(struct chain *c, const char *id, uint64_t read_mono_usec)
{
	(void)strscpy(c->detected_id, sizeof(c->detected_id), id);
	c->detected_mono_usec = read_mono_usec;
	c->first_hook_noted = false;
}

static void on_ended(struct hook_run *run, struct hook_result *res, void *userdata)
{
	struct chain *c = userdata;

	if (c->metrics)
		metrics_hook_done(c->metrics, res->name, res->outcome, res->duration_usec);
	if (c->hook_ended)
		c->hook_ended(c->userdata, c->run_id, res);
	engine_hook_ended(c->engine, res, now_usec(CLOCK_REALTIME));
	release_run(c);
	if (c->after_input)
		c->after_input(c->userdata);
}

/* A change to a hook directory less than this long before a scan may share
 * its time stamp with a later one (the file system's clock is coarse), so
 * such a scan is not taken for the directories' state. */
#define CHAIN_DIRS_SETTLE_USEC (2 * USEC_PER_SEC)

static uint64_t dir_sig(uint64_t h, const char *path, uint64_t now, bool *settled)
{
	struct stat st;
	uint64_t changed;

	if (!path || !path[0] || strcmp(path, "none") == 0)
		return hash_fnv(h, "-", 1);
	if (stat(path, &st) < 0) {
		int e = errno;

		return hash_fnv(h, &e, sizeof(e));
	}
	/* The inode (a directory put in its place is another), its mode and
	 * owner (what the checks looked at), and its modification time, which
	 * every entry added, removed or renamed moves. */
	h = hash_fnv(h, &st.st_dev, sizeof(st.st_dev));
	h = hash_fnv(h, &st.st_ino, sizeof(st.st_ino));
	h = hash_fnv(h, &st.st_mode, sizeof(st.st_mode));
	h = hash_fnv(h, &st.st_uid, sizeof(st.st_uid));
	h = hash_fnv(h, &st.st_gid, sizeof(st.st_gid));
	h = hash_fnv(h, &st.st_mtim, sizeof(st.st_mtim));
	changed = (uint64_t)st.st_mtim.tv_sec * USEC_PER_SEC + (uint64_t)st.st_mtim.tv_nsec / 1000;
	if (changed + CHAIN_DIRS_SETTLE_USEC > now)
		*settled = false;
	return h;
}

/* A signature of the hook directories themselves (not of the files in
 * them): any file added, removed, renamed or linked in either changes it,
 * as does a change of a directory's mode or owner. 0 when it cannot be
 * trusted yet. */
static uint64_t dirs_sig(const struct config *cfg)
{
	uint64_t now = now_usec(CLOCK_REALTIME), h = HASH_FNV_INIT;
	bool settled = true;

	h = dir_sig(h, cfg->hooks_dir, now, &settled);
	h = dir_sig(h, cfg->hooks_lib_dir, now, &settled);
	return settled && h ? h : 0;
}

/* Reads the directories into c->plan; the signature is taken first, so a
 * change during the scan makes the next chain scan again. */
static int scan_into_plan(struct chain *c)
{
	struct hook_plan plan = { 0 };
	uint64_t sig = dirs_sig(c->cfg);
	int r = hooks_scan(c->cfg->hooks_dir, c->cfg->hooks_lib_dir, &plan);

	/* A hook not in the new plan (the directories could not be read) is
	 * opened and checked when it starts. */
	hook_plan_done(&c->plan);
	c->plan_sig = 0;
	if (r < 0)
		return r;
	chain_log_skips(&plan, &c->skips_signature);
	c->plan = plan;
	c->plan_sig = sig;
	return 0;
}

int chain_prescan(struct chain *c, const struct hook_plan **ret)
{
	int r;

	c->plan_sig = 0;
	if (c->engine && engine_active(c->engine))
		return -EBUSY;
	r = scan_into_plan(c);
	if (r >= 0)
		*ret = &c->plan;
	return r;
}

/* A chain begins. The plan of the last scan serves as it is while the
 * directories have not changed since: its descriptors are the files that
 * were checked then (a file renamed over a hook changes the directory),
 * and the runner checks each again, on its descriptor, right before the
 * start. So detection does not wait for a scan, only for two stats. */
static void scan(struct chain *c, const struct engine_action *a)
{
	uint64_t sig = c->plan_sig ? dirs_sig(c->cfg) : 0;
	int r;

	if (sig && sig == c->plan_sig) {
		log_event(LOG_DEBUG, a->id, "hooks: the directories are as last scanned, %zu %s to run",
			  c->plan.n_hooks, plural(c->plan.n_hooks, "hook", "hooks"));
		engine_hooks_scanned(c->engine, a->id, &c->plan, now_usec(CLOCK_REALTIME));
		return;
	}
	r = scan_into_plan(c);
	if (r < 0) {
		log_event(LOG_ERR, a->id, "hooks: cannot read '%s' or '%s': %s, %s", c->cfg->hooks_dir,
			  c->cfg->hooks_lib_dir ? c->cfg->hooks_lib_dir : "", strerror(-r),
			  "running the hooks known before, or retrying");
		engine_hooks_scanned(c->engine, a->id, NULL, now_usec(CLOCK_REALTIME));
	} else {
		engine_hooks_scanned(c->engine, a->id, &c->plan, now_usec(CLOCK_REALTIME));
	}
}

/* The plan's checked file for the record's hook h, or NULL. */
static const struct hook_file *planned_file(const struct chain *c, const struct hook_result *h)
{
	for (size_t i = 0; i < c->plan.n_hooks; i++) {
		const struct hook_file *f = &c->plan.hooks[i];

		if (f->fd >= 0 && strcmp(f->name, h->name) == 0 && strcmp(f->path, h->path) == 0)
			return f;
	}
	return NULL;
}

static void start(struct chain *c, const struct engine_action *a)
{
	struct event_record *r = state_find(c->state, a->id);
	struct hook_run_params p = { 0 };
	char why[HOOK_SKIP_REASON_MAX];
	struct hook_result *h;
	int k;

	if (!r || a->hook >= r->n_hooks) {
		engine_hook_start_failed(c->engine, ENOENT, now_usec(CLOCK_REALTIME));
		return;
	}
	h = &r->hooks[a->hook];
	release_run(c);
	/* The event as the hooks see it: the record's, with its deadline;
	 * the record remembers it for /v1/status. */
	c->run_stdin = event_record_stdin(r, c->drill);
	c->run_env = hooks_env_new(&r->ev, c->state->vm_name ? c->state->vm_name : "", r->deadline_wall_usec,
				   c->drill);
	p.event = c->event;
	p.name = h->name;
	p.path = h->path;
	p.file = planned_file(c, h);
	p.why = why;
	p.why_size = sizeof(why);
	p.event_id = r->ev.id;
	p.stdin_json = c->run_stdin;
	p.env = c->run_env;
	p.budget_usec = a->budget_usec;
	p.state_dir = c->cfg->state_dir;
	p.ended = on_ended;
	p.userdata = c;
	k = hook_run_start(&p, &c->run);
	if (k < 0) {
		c->run = NULL;
		if (k == -EPERM && why[0]) {
			log_hook(LOG_WARNING, r->ev.id, h->name, "hook '%s' refused at its start: %s, not run",
				 h->name, why);
			/* Cut to fit when it must. */
			if (snprintf(h->exec_detail, sizeof(h->exec_detail), "refused at its start: %s", why) < 0)
				h->exec_detail[0] = '\0';
		} else
			log_hook(LOG_WARNING, r->ev.id, h->name, "hook '%s' could not start: %s, %s", h->name,
				 strerror(-k), engine_start_error_retried(-k) ? "could not start, retrying" :
										 "not run");
		release_run(c);
		engine_hook_start_failed(c->engine, -k, now_usec(CLOCK_REALTIME));
		return;
	}
	(void)strscpy(c->run_id, sizeof(c->run_id), r->ev.id);
	if (!c->first_hook_noted && strcasecmp(c->detected_id, r->ev.id) == 0) {
		uint64_t usec = now_usec(CLOCK_MONOTONIC) - c->detected_mono_usec;

		c->first_hook_noted = true;
		if (c->metrics)
			metrics_first_hook(c->metrics, usec);
		log_event(LOG_INFO, r->ev.id, "first hook started %.3f ms after the notice was read",
			  (double)usec / USEC_PER_MSEC);
	}
}

bool chain_carry_out(struct chain *c, const struct engine_action *a)
{
	switch (a->kind) {
	case ENGINE_SCAN_HOOKS:
		scan(c, a);
		return true;
	case ENGINE_START_HOOK:
		start(c, a);
		return true;
	case ENGINE_KILL_HOOK:
		if (c->run)
			hook_run_kill(c->run);
		return true;
	default:
		return false;
	}
}
