/* run-end.c - a run's end: the main process's exit and its result, then
 * what it left behind (its process group, and every process the agent
 * adopted, which tree.c finds and kills), and the end reported only once
 * nothing it started is alive, from a callback of its own. It never
 * blocks the loop: it waits on a child source and a timer, and walks /proc
 * only when a hook did leave something behind. */
#include "hooks/run-internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "log.h"

/* After a hook's main process ended: how long to wait for the processes it
 * left behind to die (they have been sent SIGKILL, so only a process stuck
 * in the kernel takes long), and how often to look again meanwhile. */
#define TREE_WAIT_USEC       (5 * USEC_PER_SEC)
#define TREE_RECHECK_USEC    (100 * USEC_PER_MSEC)

/* Output read in one go: what a finished hook left in the pipe, bounded in
 * case an escaped process keeps writing. */
#define DRAIN_MAX (4 * 1024 * 1024)

static const char *signal_name(int sig, char *buf, size_t n)
{
	const char *abbrev = sigabbrev_np(sig);

	if (abbrev)
		(void)snprintf(buf, n, "SIG%s", abbrev);
	else
		(void)snprintf(buf, n, "signal %d", sig);
	return buf;
}

static void log_end(struct hook_run *run)
{
	const struct hook_result *r = &run->res;
	const char *suffix = r->timed_out ? " (timed out)" :
			     r->exit_status == 127 ? " (a command was not found)" : "";
	char sig[32];

	if (r->error[0])
		log_hook(LOG_WARNING, run->event_id, r->name, "hook '%s' %s", r->name, r->error);
	else if (r->term_signal > 0)
		log_hook(LOG_WARNING, run->event_id, r->name, "hook '%s' killed by %s after %.2f s%s",
			 r->name, signal_name(r->term_signal, sig, sizeof(sig)),
			 usec_to_sec(r->duration_usec), suffix);
	else
		log_hook(r->outcome == HOOK_OK ? LOG_INFO : LOG_WARNING, run->event_id, r->name,
			 "hook '%s' exited %d after %.2f s%s",
			 r->name, r->exit_status, usec_to_sec(r->duration_usec), suffix);
}

static int on_end(sd_event_source *s, void *userdata)
{
	struct hook_run *run = userdata;

	run->end_source = sd_event_source_disable_unref(run->end_source);
	report_end(run);
	return 0;
}

/* Everything is dead: closes up and reports the end from a callback of its
 * own. Not from this one: the caller may start the next hook from ended,
 * and the pid whose child source is being dispatched is reaped by sd-event
 * only after the dispatch; a sweep must not take it first. */
static void finish(struct hook_run *run)
{
	close_source(&run->reap_timer, NULL);
	close_source(&run->orphan_source, NULL);
	read_output(run, DRAIN_MAX);
	flush_output(run);
	close_output(run);
	close_source(&run->stdin_source, &run->stdin_fd);
	/* A hook killed for its timeout took its children with it; one that
	 * ended by itself should not have left any. */
	if (run->left.n > 0 && !run->res.timed_out)
		log_hook(LOG_WARNING, run->event_id, run->res.name,
			 "hook '%s' left %zu process%s behind, killed", run->res.name,
			 run->left.n, run->left.n == 1 ? "" : "es");
	if (sd_event_add_defer(run->event, &run->end_source, on_end, run) < 0)
		report_end(run);  /* no memory for a source: at once, then */
}

static int on_orphan_exit(sd_event_source *s, const siginfo_t *si, void *userdata);
static int on_reap_timer(sd_event_source *s, uint64_t usec, void *userdata);

/* The slow path: kills what the ended hook left behind, found by walking
 * /proc, and reports the end once all of it is dead; until then it waits
 * for one adopted leftover at a time, and looks again every
 * TREE_RECHECK_USEC for what that pidfd does not report (a descendant
 * below another child). dying: a pid whose source is being dispatched,
 * which sd-event reaps after the callback. */
static void tidy_up(struct hook_run *run, pid_t dying)
{
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	pid_t keep[2], watch = 0;
	size_t alive;

	run_keep(run, keep);
	if (!keep[0])
		keep[0] = dying;
	else if (!keep[1])
		keep[1] = dying;
	alive = hooktree_kill(keep, &run->left, &watch);
	if (alive == 0) {
		finish(run);
		return;
	}
	if (now >= run->reap_until_mono_usec) {
		log_hook(LOG_WARNING, run->event_id, run->res.name,
			 "hook '%s': %zu process%s it left behind still alive %.0f s after SIGKILL, going on",
			 run->res.name, alive, alive == 1 ? "" : "es", usec_to_sec(TREE_WAIT_USEC));
		sweep_pending = true;
		finish(run);
		return;
	}
	if (!run->orphan_source && watch > 0 &&
	    sd_event_add_child(run->event, &run->orphan_source, watch, WEXITED, on_orphan_exit, run) >= 0)
		run->orphan_pid = watch;
	if (arm_timer(run, &run->reap_timer, now + TREE_RECHECK_USEC < run->reap_until_mono_usec ?
					     now + TREE_RECHECK_USEC : run->reap_until_mono_usec,
		      on_reap_timer) < 0 && !run->orphan_source) {
		log_hook(LOG_WARNING, run->event_id, run->res.name,
			 "hook '%s': cannot wait for the processes it left behind, going on",
			 run->res.name);
		finish(run);
	}
}

static int on_orphan_exit(sd_event_source *s, const siginfo_t *si, void *userdata)
{
	struct hook_run *run = userdata;
	pid_t pid = run->orphan_pid;

	run->orphan_source = sd_event_source_disable_unref(run->orphan_source);
	run->orphan_pid = 0;
	tidy_up(run, pid);
	return 0;
}

static int on_reap_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	tidy_up(userdata, 0);
	return 0;
}

/* The first look after the main process was reaped, its group SIGKILLed.
 * No child source waits now, so every dead child may be reaped: the
 * group's members, adopted by the subreaper, among them. When then the
 * agent has no child at all, nothing the hook started is alive (a living
 * descendant would be a child of the agent or below one), and the walk of
 * /proc is skipped: the common case of a hook that leaves nothing. */
static int on_tidy(sd_event_source *s, void *userdata)
{
	struct hook_run *run = userdata;

	run->tidy_source = sd_event_source_disable_unref(run->tidy_source);
	if (hooktree_reap_all(&run->left))
		finish(run);
	else
		tidy_up(run, 0);
	return 0;
}

int on_child_exit(sd_event_source *s, const siginfo_t *si, void *userdata)
{
	struct hook_run *run = userdata;
	struct hook_result *r = &run->res;

	if (si->si_code == CLD_EXITED) {
		r->exit_status = si->si_status;
		r->term_signal = 0;
	} else {
		r->exit_status = -1;
		r->term_signal = si->si_status;
	}
	r->duration_usec = now_usec(CLOCK_MONOTONIC) - run->start_mono_usec;
	run->main_ended = true;
	close_source(&run->timer_source, NULL);
	close_source(&run->stdin_source, &run->stdin_fd);

	if (run->spawn_errno && r->exit_status == 127)
		(void)strscpy(r->error, sizeof(r->error), run->spawn_detail);

	if (r->timed_out)
		r->outcome = HOOK_TIMEOUT;
	else if (r->exit_status == 0 || r->exit_status == HOOK_EXIT_SKIP_REST)
		r->outcome = HOOK_OK;
	else
		r->outcome = HOOK_FAILED;

	/* Take what is in the pipe now, so the output comes before the end in
	 * the log; what dying leftovers add is read until they are gone. */
	read_output(run, DRAIN_MAX);
	flush_output(run);
	log_end(run);

	/* Every member of the hook's group is below the agent, but a group
	 * kill is one system call and catches a fork in flight; the leader is
	 * an unreaped zombie while its callback runs, so the id is still its. */
	(void)kill(-run->pid, SIGKILL);
	/* sd-event reaps the zombie after this callback returns; the rest is
	 * looked at from a defer, once it has. */
	(void)sd_event_source_set_child_process_own(s, false);
	run->child_source = sd_event_source_disable_unref(run->child_source);
	run->reap_until_mono_usec = now_usec(CLOCK_MONOTONIC) + TREE_WAIT_USEC;
	if (sd_event_add_defer(run->event, &run->tidy_source, on_tidy, run) < 0)
		tidy_up(run, run->pid);
	return 0;
}
