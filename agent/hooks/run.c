/* run.c - one hook's run on the caller's sd-event loop: its start
 * (spawn.c), its budget (SIGTERM a grace before the end, SIGKILL at it),
 * and its free. The event on its stdin and its output are run-pipes.c's;
 * its end, reported only once nothing it started is alive, is run-end.c's.
 * Which hook runs when is the engine's. It never blocks the loop, except
 * for a bounded wait for processes it has just SIGKILLed on the free
 * path. */
#include "hooks/run-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/poll.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hooks/spawn.h"
#include "log.h"

/* ---- running one hook ---- */

/* hook_run_free waits this long for a main process it SIGKILLed. */
#define FREE_WAIT_MSEC       5

/* Started, and not yet ended or freed: one hook runs at a time. */
static struct hook_run *active_run;
/* A run was freed before all it left was reaped, or given up on: the next
 * start sweeps first. Otherwise an ended run leaves no child behind, and a
 * start needs no sweep. */
bool sweep_pending;

double usec_to_sec(uint64_t usec)
{
	return (double)usec / (double)USEC_PER_SEC;
}

void close_source(sd_event_source **s, int *fd)
{
	*s = sd_event_source_disable_unref(*s);
	if (fd && *fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* The pids that child sources wait for, which nobody else may reap. */
void run_keep(const struct hook_run *run, pid_t keep[2])
{
	keep[0] = run->child_source ? run->pid : 0;
	keep[1] = run->orphan_source ? run->orphan_pid : 0;
}

/* sig to the hook's group and its whole tree. Never to the hooks' cgroup:
 * the agent lives there too. */
static void signal_run(struct hook_run *run, int sig)
{
	pid_t keep[2];

	if (run->child_source) {
		/* The main process is unreaped, so neither id can have been
		 * reused; the plain pid covers a child that has not reached
		 * setsid yet. */
		(void)kill(-run->pid, sig);
		(void)kill(run->pid, sig);
		if (sig == SIGTERM) {
			(void)kill(-run->pid, SIGCONT);
			(void)kill(run->pid, SIGCONT);
		}
	}
	if (sig == SIGTERM) {
		hooktree_terminate();
		return;
	}
	run_keep(run, keep);
	(void)hooktree_kill(keep, NULL, NULL);
}

int arm_timer(struct hook_run *run, sd_event_source **s, uint64_t usec,
	      sd_event_time_handler_t fn)
{
	int r;

	if (!*s)
		return sd_event_add_time(run->event, s, CLOCK_MONOTONIC, usec, USEC_PER_MSEC, fn, run);
	r = sd_event_source_set_time(*s, usec);
	if (r >= 0)
		r = sd_event_source_set_enabled(*s, SD_EVENT_ONESHOT);
	return r;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);

/* The first step of a timeout: SIGTERM now, SIGKILL after the grace. */
static void begin_kill(struct hook_run *run, bool timeout)
{
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	uint64_t kill_at = now + run->kill_grace_usec;

	/* SIGKILL by the end of the budget at the latest. */
	if (kill_at > run->kill_at_mono_usec)
		kill_at = run->kill_at_mono_usec > now ? run->kill_at_mono_usec : now;
	run->term_sent = true;
	run->term_mono_usec = now;
	run->term_grace_usec = kill_at - now;
	run->res.timed_out = true;
	/* The grace is inside the timeout: SIGTERM comes a grace before it,
	 * SIGKILL at it. Say so, rather than "timed out" early. */
	if (timeout)
		log_hook(LOG_WARNING, run->event_id, run->res.name,
			 "hook '%s' has run %.1f s of its %.1f s timeout: SIGTERM to its process group now, "
			 "SIGKILL at %.1f s if it is still running", run->res.name,
			 usec_to_sec(now - run->start_mono_usec),
			 /* Its end may have moved in since it started. */
			 usec_to_sec(run->kill_at_mono_usec - run->start_mono_usec),
			 usec_to_sec(kill_at - run->start_mono_usec));
	else
		log_hook(LOG_WARNING, run->event_id, run->res.name,
			 "hook '%s' is stopped after %.1f s: SIGTERM to its process group now, SIGKILL in "
			 "%.1f s if it is still running", run->res.name,
			 usec_to_sec(now - run->start_mono_usec), usec_to_sec(kill_at - now));
	signal_run(run, SIGTERM);
	if (arm_timer(run, &run->timer_source, kill_at, on_timer) < 0)
		signal_run(run, SIGKILL);  /* cannot wait for the grace */
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct hook_run *run = userdata;

	if (!run->term_sent) {
		begin_kill(run, true);
		return 0;
	}
	log_hook(LOG_WARNING, run->event_id, run->res.name,
		 "hook '%s' still running %.1f s after SIGTERM, sending SIGKILL",
		 run->res.name, usec_to_sec(run->term_grace_usec));
	signal_run(run, SIGKILL);
	return 0;
}

void hook_run_kill(struct hook_run *run)
{
	if (!run || run->main_ended || run->term_sent)
		return;
	begin_kill(run, false);
}

void hook_run_set_end(struct hook_run *run, uint64_t end_mono_usec)
{
	uint64_t now = now_usec(CLOCK_MONOTONIC), budget, grace, term_at;

	if (!run || run->main_ended || end_mono_usec >= run->kill_at_mono_usec)
		return;
	run->kill_at_mono_usec = end_mono_usec;
	if (run->term_sent) {
		/* SIGKILL by the new end at the latest; the grace, as the log
		 * tells it, is what is left of it. */
		run->term_grace_usec = end_mono_usec > run->term_mono_usec ? end_mono_usec - run->term_mono_usec : 0;
		if (end_mono_usec <= now || arm_timer(run, &run->timer_source, end_mono_usec, on_timer) < 0)
			signal_run(run, SIGKILL);
		return;
	}
	/* The grace comes out of the shortened budget, as out of the first. */
	budget = end_mono_usec > run->start_mono_usec ? end_mono_usec - run->start_mono_usec : 0;
	grace = run->kill_grace_usec < budget / 4 ? run->kill_grace_usec : budget / 4;
	term_at = end_mono_usec - grace;
	log_hook(LOG_WARNING, run->event_id, run->res.name,
		 "hook '%s': the deadline moved, it must end within %.1f s", run->res.name,
		 usec_to_sec(end_mono_usec > now ? end_mono_usec - now : 0));
	if (term_at <= now)
		begin_kill(run, false);
	else if (arm_timer(run, &run->timer_source, term_at, on_timer) < 0)
		begin_kill(run, false);
}

void report_end(struct hook_run *run)
{
	if (active_run == run)
		active_run = NULL;
	run->finished = true;
	hook_report_end(&run->report, run->event_id, run->res.name, &run->res.report);
	/* The last thing a run does: ended may free it. */
	run->ended(run, &run->res, run->userdata);
}

static int set_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static int ensure_sigchld_blocked(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	return -pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* SIGKILLs the run's tree, waits FREE_WAIT_MSEC at most for the main
 * process, and reaps what has died; the next start's sweep reaps the rest. */
static void kill_now(struct hook_run *run)
{
	sweep_pending = true;
	signal_run(run, SIGKILL);
	if (run->child_source) {
		struct pollfd p = { .fd = sd_event_source_get_child_pidfd(run->child_source), .events = POLLIN };

		if (p.fd >= 0)
			while (poll(&p, 1, FREE_WAIT_MSEC) < 0 && errno == EINTR)
				;
		/* Not the source's own kill-and-wait, which may block. */
		(void)sd_event_source_set_child_process_own(run->child_source, false);
		run->child_source = sd_event_source_disable_unref(run->child_source);
	}
	close_source(&run->orphan_source, NULL);
	(void)hooktree_kill(NULL, NULL, NULL);
}

static void run_release(struct hook_run *run)
{
	close_source(&run->timer_source, NULL);
	close_source(&run->tidy_source, NULL);
	close_source(&run->reap_timer, NULL);
	close_source(&run->orphan_source, NULL);
	close_source(&run->end_source, NULL);
	close_output(run);
	close_source(&run->stdin_source, &run->stdin_fd);
	hook_result_done(&run->res);
	hook_report_file_done(&run->report);
	hooktree_pidset_done(&run->left);
	sd_event_unref(run->event);
	free(run->stdin_json);
	free(run->event_id);
	free(run);
}

void hook_run_free(struct hook_run *run)
{
	if (!run)
		return;
	/* With end_source pending, everything is dead already. */
	if (!run->finished && !run->end_source) {
		if (!run->main_ended)
			log_hook(LOG_WARNING, run->event_id, run->res.name,
				 "hook '%s' killed: the run is going away", run->res.name);
		kill_now(run);
	}
	if (active_run == run)
		active_run = NULL;
	run_release(run);
}

int hook_run_start(const struct hook_run_params *p, struct hook_run **ret)
{
	int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 };
	struct hook_file own = { .fd = -1 };
	const struct hook_file *file = p ? p->file : NULL;
	const char *path = p ? p->path ? p->path : file ? file->path : NULL : NULL;
	struct hook_spawn a = { 0 };
	struct hook_run *run;
	char *argv[2] = { NULL, NULL };
	char **envp = NULL;
	uint64_t now;
	int k;

	if (!p || !p->event || !path || !p->ended || !ret)
		return -EINVAL;
	if (active_run)
		return -EBUSY;
	if (p->why && p->why_size)
		p->why[0] = '\0';
	/* What runs is the descriptor checked here: a file renamed over the
	 * path from now on changes nothing. */
	if (file) {
		k = hook_file_recheck(file, p->why, p->why_size);
	} else {
		k = hooks_open(path, p->name, &own, p->why, p->why_size);
		file = &own;
	}
	if (k < 0)
		return k;
	k = ensure_sigchld_blocked();
	if (k < 0)
		return k;
	hooktree_ensure_subreaper();
	/* An ended run left no child; only a freed one (or one given up on)
	 * may have: by now every child of the agent is such a leftover. */
	if (sweep_pending) {
		sweep_pending = false;
		hooktree_sweep();
	}

	run = xcalloc(1, sizeof(*run));
	run->event = sd_event_ref(p->event);
	hook_result_init(&run->res, p->name ? p->name : path, path);
	run->res.budget_usec = p->budget_usec;
	run->event_id = xstrdup(p->event_id ? p->event_id : "");
	hook_output_init(&run->out, &run->res, run->event_id, run->res.path, file->script);
	for (size_t i = 0; i < ELEMENTSOF(run->pipes); i++) {
		run->pipes[i].run = run;
		run->pipes[i].fd = -1;
		run->pipes[i].stream = i == 0 ? &run->out.out : &run->out.err;
	}
	run->stdin_json = xstrdup(p->stdin_json ? p->stdin_json : "");
	run->stdin_len = strlen(run->stdin_json);
	run->kill_grace_usec = p->kill_grace_usec ? p->kill_grace_usec : HOOK_KILL_GRACE_USEC;
	run->kill_at_mono_usec = USEC_INFINITY;
	run->ended = p->ended;
	run->userdata = p->userdata;
	run->stdin_fd = -1;

	hook_report_begin(&run->report, p->state_dir, run->event_id, run->res.name);
	envp = hooks_env_for_run(p->env, p->budget_usec, path, run->report.path);
	argv[0] = run->res.path;

	/* stdout and stderr apart: each line is logged at its stream's
	 * level (a line of each written at once may come out in either
	 * order). */
	if (pipe2(in_pipe, O_CLOEXEC) < 0 || pipe2(out_pipe, O_CLOEXEC) < 0 ||
	    pipe2(err_pipe, O_CLOEXEC) < 0) {
		k = -errno;
		goto fail;
	}
	k = set_nonblock(in_pipe[1]);
	if (k >= 0)
		k = set_nonblock(out_pipe[0]);
	if (k >= 0)
		k = set_nonblock(err_pipe[0]);
	if (k < 0)
		goto fail;

	a = (struct hook_spawn){
		.in_fd = in_pipe[0], .out_fd = out_pipe[1], .err_fd = err_pipe[1],
		.exec_fd = file->fd, .keep_exec_fd = file->script,
		.argv = argv, .envp = envp,
	};
	now = now_usec(CLOCK_MONOTONIC);
	run->start_mono_usec = now;
	run->res.start_wall_usec = now_usec(CLOCK_REALTIME);
	run->pid = hook_spawn(&a);
	if (run->pid < 0) {
		k = run->pid;
		goto fail;
	}
	/* The child has exec'd or exited by now. */
	run->spawn_errno = a.err;
	run->spawn_step = a.step;
	if (a.err)
		hook_spawn_describe(file, a.err, a.step, run->spawn_detail, sizeof(run->spawn_detail));
	/* The child's ends are the child's: kept here, they would leak, and
	 * the output pipe would never see its end. */
	close_fd(&in_pipe[0]);
	close_fd(&out_pipe[1]);
	close_fd(&err_pipe[1]);
	close_fd(&own.fd);

	run->stdin_fd = in_pipe[1];
	run->pipes[0].fd = out_pipe[0];
	run->pipes[1].fd = err_pipe[0];
	in_pipe[1] = out_pipe[0] = err_pipe[0] = -1;

	k = sd_event_add_child(run->event, &run->child_source, run->pid, WEXITED, on_child_exit, run);
	if (k >= 0) {
		(void)sd_event_source_set_child_process_own(run->child_source, true);
		for (size_t i = 0; k >= 0 && i < ELEMENTSOF(run->pipes); i++)
			k = sd_event_add_io(run->event, &run->pipes[i].source, run->pipes[i].fd, EPOLLIN,
					    on_output, &run->pipes[i]);
	}
	if (k >= 0 && run->stdin_len > 0)
		k = sd_event_add_io(run->event, &run->stdin_source, run->stdin_fd, EPOLLOUT, on_stdin, run);
	else if (k >= 0)
		close_fd(&run->stdin_fd);
	/* The grace comes out of the budget: SIGTERM a grace (at most a
	 * quarter of the budget) before its end, SIGKILL at its end, so that a
	 * hook that ignores SIGTERM still ends within its budget. */
	if (k >= 0 && p->budget_usec != USEC_INFINITY) {
		uint64_t grace = run->kill_grace_usec < p->budget_usec / 4 ? run->kill_grace_usec :
									     p->budget_usec / 4;

		run->kill_at_mono_usec = now + p->budget_usec;
		k = arm_timer(run, &run->timer_source, now + p->budget_usec - grace, on_timer);
	}
	if (k < 0) {
		signal_run(run, SIGKILL);
		if (run->child_source) {
			/* Owned by the source: killed and reaped on unref. */
			run->child_source = sd_event_source_disable_unref(run->child_source);
		} else {
			(void)kill(run->pid, SIGKILL);
			while (waitpid(run->pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
		goto fail;
	}

	if (p->budget_usec == USEC_INFINITY)
		log_hook(LOG_INFO, run->event_id, run->res.name, "hook '%s' started (pid %d, no timeout)",
			 run->res.name, (int)run->pid);
	else
		log_hook(LOG_INFO, run->event_id, run->res.name, "hook '%s' started (pid %d, timeout %.1f s)",
			 run->res.name, (int)run->pid, usec_to_sec(p->budget_usec));
	run->res.outcome = HOOK_RUNNING;
	active_run = run;
	strv_free(envp);
	*ret = run;
	return 0;

fail:
	close_fd(&own.fd);
	for (int i = 0; i < 2; i++) {
		close_fd(&in_pipe[i]);
		close_fd(&out_pipe[i]);
		close_fd(&err_pipe[i]);
	}
	strv_free(envp);
	run->finished = true;
	run_release(run);
	return k;
}
