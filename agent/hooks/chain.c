/* chain.c - the hands of the engine's hook chains: it reads the hook
 * directories when the engine asks (recover.d below them for the recover
 * chain), starts the one hook the engine names with the eviction's
 * environment and stdin, ends it early when the deadline moves, and gives
 * the hook's end (or its failure to start) back to the engine. It decides
 * nothing about order, skips, deadlines or retries: those are the
 * engine's. */
#include "hooks/chain.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "store/record-json.h"
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
	hook_plan_done(&c->recover_plan);
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

static void on_ended(struct hook_run *run, struct hook_result *res, void *userdata)
{
	struct chain *c = userdata;
	const struct eviction *r = records_find(c->records, c->run_id);

	if (c->hook_ended && r)
		c->hook_ended(c->userdata, r, c->run_chain, res);
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
static uint64_t dirs_sig(const struct chain *c)
{
	uint64_t now = now_usec(CLOCK_REALTIME), h = HASH_FNV_INIT;
	bool settled = true;

	h = dir_sig(h, c->hooks_dir, now, &settled);
	h = dir_sig(h, c->hooks_lib_dir, now, &settled);
	return settled && h ? h : 0;
}

/* Reads the directories into c->plan; the signature is taken first, so a
 * change during the scan makes the next chain scan again. */
static int scan_into_plan(struct chain *c)
{
	struct hook_plan plan = { 0 };
	uint64_t sig = dirs_sig(c);
	int r = hooks_scan(c->hooks_dir, c->hooks_lib_dir, &plan);

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

char *chain_recover_dir(const char *dir)
{
	if (!dir || !dir[0] || strcmp(dir, "none") == 0)
		return NULL;
	return xasprintf("%s/%s", dir, CHAIN_RECOVER_DIR);
}

/* The plan's hooks as the engine takes them (names and paths, borrowed
 * from the plan). */
static void hand_over(struct chain *c, const char *id, enum chain_kind chain, const struct hook_plan *plan)
{
	struct hook_ref refs[HOOKS_MAX];
	size_t n = plan && plan->n_hooks < HOOKS_MAX ? plan->n_hooks : plan ? HOOKS_MAX : 0;

	for (size_t i = 0; i < n; i++) {
		refs[i].name = plan->hooks[i].name;
		refs[i].path = plan->hooks[i].path;
	}
	engine_hooks_scanned(c->engine, id, chain, refs, n, plan != NULL, now_usec(CLOCK_REALTIME));
}

/* The recover chain: recover.d below the hook directories, read each time
 * (it runs rarely, and never on the eviction path). */
static void scan_recover(struct chain *c, const struct engine_action *a)
{
	char *etc = chain_recover_dir(c->hooks_dir), *lib = chain_recover_dir(c->hooks_lib_dir);
	struct hook_plan plan = { 0 };
	int r = hooks_scan(etc, lib, &plan);

	hook_plan_done(&c->recover_plan);
	if (r < 0) {
		log_event(LOG_ERR, a->id, "hooks: cannot read '%s' or '%s': %s, retrying", etc ? etc : "",
			  lib ? lib : "", strerror(-r));
		hand_over(c, a->id, CHAIN_RECOVER, NULL);
	} else {
		chain_log_skips(&plan, &c->skips_signature);
		c->recover_plan = plan;
		hand_over(c, a->id, CHAIN_RECOVER, &c->recover_plan);
	}
	free(etc);
	free(lib);
}

/* A chain begins. The plan of the last scan serves as it is while the
 * directories have not changed since: its descriptors are the files that
 * were checked then (a file renamed over a hook changes the directory),
 * and the runner checks each again, on its descriptor, right before the
 * start. So detection does not wait for a scan, only for two stats. */
static void scan(struct chain *c, const struct engine_action *a)
{
	uint64_t sig;
	int r;

	if (a->chain == CHAIN_RECOVER) {
		scan_recover(c, a);
		return;
	}
	sig = c->plan_sig ? dirs_sig(c) : 0;
	if (sig && sig == c->plan_sig) {
		log_event(LOG_DEBUG, a->id, "hooks: the directories are as last scanned, %zu %s to run",
			  c->plan.n_hooks, plural(c->plan.n_hooks, "hook", "hooks"));
		hand_over(c, a->id, CHAIN_EVICT, &c->plan);
		return;
	}
	r = scan_into_plan(c);
	if (r < 0) {
		log_event(LOG_ERR, a->id, "hooks: cannot read '%s' or '%s': %s, %s", c->hooks_dir,
			  c->hooks_lib_dir ? c->hooks_lib_dir : "", strerror(-r),
			  "running the hooks known before, or retrying");
		hand_over(c, a->id, CHAIN_EVICT, NULL);
	} else {
		hand_over(c, a->id, CHAIN_EVICT, &c->plan);
	}
}

/* The plan's checked file for the record's hook h, or NULL. */
static const struct hook_file *planned_file(const struct hook_plan *plan, const struct hook_result *h)
{
	for (size_t i = 0; i < plan->n_hooks; i++) {
		const struct hook_file *f = &plan->hooks[i];

		if (f->fd >= 0 && strcmp(f->name, h->name) == 0 && strcmp(f->path, h->path) == 0)
			return f;
	}
	return NULL;
}

/* The hook a is about to start is the one whose start failed last; if not,
 * it becomes that one, with no failure yet. */
static bool same_failing_start(struct chain *c, const struct eviction *r, const struct engine_action *a)
{
	if (c->start_failing.id[0] && strcmp(c->start_failing.id, r->id) == 0 &&
	    c->start_failing.chain == a->chain && c->start_failing.hook == a->hook)
		return true;
	(void)strscpy(c->start_failing.id, sizeof(c->start_failing.id), r->id);
	c->start_failing.chain = a->chain;
	c->start_failing.hook = a->hook;
	c->start_failing.failures = 0;
	return false;
}

static void start(struct chain *c, const struct engine_action *a)
{
	struct eviction *r = records_find(c->records, a->id);
	struct hook_run_params p = { 0 };
	struct hook_phase phase = { 0 };
	char why[HOOK_SKIP_REASON_MAX], words[HOOK_DETAIL_MAX];
	struct spot_event ev;
	struct hook_result *hooks, *h;
	uint64_t deadline;
	size_t n = 0;
	int k;

	hooks = r ? engine_chain(r, a->chain, &n) : NULL;
	if (!r || a->hook >= n) {
		engine_hook_start_failed(c->engine, -ENOENT, NULL, now_usec(CLOCK_REALTIME));
		return;
	}
	h = &hooks[a->hook];
	release_run(c);
	why[0] = '\0';
	/* The event as the hooks see it: the lead notice with the eviction's
	 * id and deadline, as the engine noted it for /v1/status. */
	c->run_stdin = record_stdin(r);
	eviction_seen_event(r, &ev, &deadline);
	if (a->chain == CHAIN_RECOVER) {
		phase.recover = true;
		phase.recover_reason = recover_reason_to_string(r->recover_reason);
		phase.downtime_sec = r->downtime_usec / USEC_PER_SEC;
		deadline = engine_chain_deadline(r, CHAIN_RECOVER);
	}
	c->run_env = hooks_env_new(&ev, c->vm_name && *c->vm_name ? *c->vm_name : "", deadline, c->drill, &phase);
	p.event = c->event;
	p.name = h->name;
	p.path = h->path;
	p.file = planned_file(a->chain == CHAIN_RECOVER ? &c->recover_plan : &c->plan, h);
	p.why = why;
	p.why_size = sizeof(why);
	p.event_id = r->id;
	p.stdin_json = c->run_stdin;
	p.env = c->run_env;
	p.budget_usec = a->budget_usec;
	p.state_dir = c->state_dir;
	p.ended = on_ended;
	p.userdata = c;
	k = hook_run_start(&p, &c->run);
	if (k < 0) {
		c->run = NULL;
		if (k == -EPERM && why[0]) {
			log_hook(LOG_WARNING, r->id, h->name, "hook '%s' refused at its start: %s, not run",
				 h->name, why);
			/* Cut to fit when it must. */
			if (snprintf(words, sizeof(words), "refused at its start: %s", why) < 0)
				words[0] = '\0';
		} else {
			if (!same_failing_start(c, r, a))
				log_hook(LOG_WARNING, r->id, h->name, "hook '%s' could not start: %s, %s", h->name,
					 strerror(-k), engine_start_error_retried(k) ? "retrying" : "not run");
			c->start_failing.failures++;
			(void)snprintf(words, sizeof(words), "cannot start: %s", strerror(-k));
		}
		release_run(c);
		engine_hook_start_failed(c->engine, k, words, now_usec(CLOCK_REALTIME));
		return;
	}
	if (same_failing_start(c, r, a) && c->start_failing.failures > 0)
		log_hook(LOG_INFO, r->id, h->name, "hook '%s' started after %u failed %s", h->name,
			 c->start_failing.failures, c->start_failing.failures == 1 ? "try" : "tries");
	c->start_failing.id[0] = '\0';
	(void)strscpy(c->run_id, sizeof(c->run_id), r->id);
	c->run_chain = a->chain;
	if (c->hook_started)
		c->hook_started(c->userdata, r, a->chain, a->hook);
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
	case ENGINE_SHORTEN_HOOK:
		if (c->run) {
			uint64_t now = now_usec(CLOCK_REALTIME), mono = now_usec(CLOCK_MONOTONIC);

			hook_run_set_end(c->run, a->end_wall_usec > now ? mono + (a->end_wall_usec - now) : mono);
		}
		return true;
	default:
		return false;
	}
}
