/* hooks.c - the hook runner: the chain that runs the planned hooks (see
 * hookdir.c) one after another on the caller's sd-event loop: fork/exec into
 * a clean process group, feed the event on stdin, collect output, enforce the
 * per-hook budget, record every outcome. It never blocks the loop and never waits for a child synchronously,
 * except to reap a child it has just SIGKILLed on an error or free path. */
#include "hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

/* ---- outcomes and results ---- */

static const char *const outcome_names[_HOOK_OUTCOME_MAX] = {
	[HOOK_PENDING] = "pending",
	[HOOK_RUNNING] = "running",
	[HOOK_OK] = "ok",
	[HOOK_FAILED] = "failed",
	[HOOK_TIMEOUT] = "timeout",
	[HOOK_SKIPPED] = "skipped",
};

const char *hook_outcome_to_string(enum hook_outcome o)
{
	if ((int)o < 0 || o >= _HOOK_OUTCOME_MAX)
		return NULL;
	return outcome_names[o];
}

int hook_outcome_from_string(const char *s, enum hook_outcome *ret)
{
	if (!s)
		return -EINVAL;
	for (int i = 0; i < _HOOK_OUTCOME_MAX; i++) {
		if (strcmp(s, outcome_names[i]) == 0) {
			*ret = (enum hook_outcome)i;
			return 0;
		}
	}
	return -EINVAL;
}

bool hook_outcome_is_final(enum hook_outcome o)
{
	return o == HOOK_OK || o == HOOK_FAILED || o == HOOK_TIMEOUT || o == HOOK_SKIPPED;
}

void hook_result_init(struct hook_result *r, const char *name, const char *path)
{
	memset(r, 0, sizeof(*r));
	(void)strscpy(r->name, sizeof(r->name), name ? name : "");
	(void)strscpy(r->path, sizeof(r->path), path ? path : "");
	r->outcome = HOOK_PENDING;
	r->exit_status = -1;
}

static void result_clear_output(struct hook_result *r)
{
	for (size_t i = 0; i < HOOK_OUTPUT_LINES; i++)
		freep_str(&r->output[i]);
	r->output_next = 0;
	r->n_output = 0;
}

void hook_result_done(struct hook_result *r)
{
	if (!r)
		return;
	result_clear_output(r);
}

void hook_result_add_line(struct hook_result *r, const char *line)
{
	size_t slot = r->output_next % HOOK_OUTPUT_LINES;

	free(r->output[slot]);
	r->output[slot] = xstrndup(line, HOOK_LINE_MAX);
	r->output_next = (slot + 1) % HOOK_OUTPUT_LINES;
	if (r->n_output < HOOK_OUTPUT_LINES)
		r->n_output++;
}

void hook_result_foreach_line(const struct hook_result *r,
			      void (*fn)(const char *line, void *userdata), void *userdata)
{
	size_t n = r->n_output > HOOK_OUTPUT_LINES ? HOOK_OUTPUT_LINES : r->n_output;
	size_t first = (r->output_next % HOOK_OUTPUT_LINES + HOOK_OUTPUT_LINES - n) % HOOK_OUTPUT_LINES;

	for (size_t i = 0; i < n; i++) {
		const char *line = r->output[(first + i) % HOOK_OUTPUT_LINES];

		if (line)
			fn(line, userdata);
	}
}

/* ---- environment ---- */

void strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

char **hooks_env_new(const struct spot_event *ev, const char *vm_name,
		     uint64_t deadline_wall_usec, bool drill)
{
	char not_before[RFC3339_MAX];
	char deadline[32] = "";
	char **v = xcalloc(16, sizeof(char *));
	size_t n = 0;

	(void)format_rfc3339(not_before, sizeof(not_before), ev->not_before_usec);
	if (deadline_wall_usec > 0)
		(void)snprintf(deadline, sizeof(deadline), "%llu",
			       (unsigned long long)(deadline_wall_usec / USEC_PER_SEC));

	v[n++] = xstrdup("PATH=" HOOK_PATH_ENV);
	v[n++] = xstrdup("LANG=C.UTF-8");
	v[n++] = xstrdup("TZ=UTC");
	v[n++] = xasprintf("SPOT_EVENT_ID=%s", ev->id);
	v[n++] = xasprintf("SPOT_EVENT_TYPE=%s", str_or_empty(event_type_to_string(ev->type)));
	v[n++] = xasprintf("SPOT_EVENT_STATUS=%s", str_or_empty(event_status_to_string(ev->status)));
	v[n++] = xasprintf("SPOT_EVENT_SOURCE=%s", ev->source);
	v[n++] = xasprintf("SPOT_NOT_BEFORE=%s", not_before);
	v[n++] = xasprintf("SPOT_DEADLINE=%s", deadline);
	v[n++] = xasprintf("SPOT_PROVIDER=%s", str_or_empty(provider_to_string(ev->provider)));
	v[n++] = xasprintf("SPOT_VM_NAME=%s", str_or_empty(vm_name));
	v[n++] = xstrdup(drill ? "SPOT_DRILL=1" : "SPOT_DRILL=0");
	v[n] = NULL;
	return v;
}

/* ---- the chain ---- */

/* Output read in one go from a finished hook's pipe: what the killed group
 * left in the pipe, bounded in case an escaped process keeps writing. */
#define DRAIN_MAX (4 * 1024 * 1024)

struct hooks_chain {
	sd_event *event;
	struct hook_result *results;     /* borrowed from the caller */
	size_t n_results;
	char *event_id;
	char *stdin_json;
	size_t stdin_len;
	char **env;                      /* owned copy of the base environment */
	size_t n_env;
	uint64_t deadline_mono_usec;
	uint64_t hook_timeout_usec;
	uint64_t kill_grace_usec;
	const struct hooks_chain_ops *ops;
	void *userdata;

	sd_event_source *kick;           /* defer: advances or finishes from the loop */
	size_t next;                     /* first index not looked at yet */
	bool stopping;
	bool mark_skipped;
	bool done;                       /* nothing left to start */
	bool finished;                   /* chain_finished was called */

	/* The running hook; current < 0 when none. */
	int current;
	pid_t pid;                       /* also its process group and session */
	uint64_t start_mono_usec;
	sd_event_source *child_source;
	sd_event_source *timer_source;
	bool term_sent;
	int stdin_fd;
	sd_event_source *stdin_source;
	size_t stdin_off;
	int out_fd;                      /* stdout and stderr share one pipe */
	sd_event_source *out_source;
	char line[HOOK_LINE_MAX + 1];
	size_t line_len;
	uint64_t logged_bytes;
	bool drop_noted;
};

static double usec_to_sec(uint64_t usec)
{
	return (double)usec / (double)USEC_PER_SEC;
}

static const char *signal_name(int sig, char *buf, size_t n)
{
	const char *abbrev = sigabbrev_np(sig);

	if (abbrev)
		(void)snprintf(buf, n, "SIG%s", abbrev);
	else
		(void)snprintf(buf, n, "signal %d", sig);
	return buf;
}

static void close_source(sd_event_source **s, int *fd)
{
	*s = sd_event_source_disable_unref(*s);
	if (fd && *fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static void finish_result(struct hooks_chain *c, size_t index)
{
	if (c->ops && c->ops->hook_finished)
		c->ops->hook_finished(c, index, c->userdata);
}

static void skip_rest(struct hooks_chain *c, const char *reason, int priority, const char *why)
{
	for (size_t i = c->next; i < c->n_results; i++) {
		struct hook_result *r = &c->results[i];

		if (r->outcome != HOOK_PENDING)
			continue;
		r->outcome = HOOK_SKIPPED;
		(void)strscpy(r->skip_reason, sizeof(r->skip_reason), reason);
		log_hook(priority, c->event_id, r->name, "hook '%s' not run: %s", r->name, why);
		c->next = i + 1;
		finish_result(c, i);
	}
	c->next = c->n_results;
}

static void kick(struct hooks_chain *c)
{
	(void)sd_event_source_set_enabled(c->kick, SD_EVENT_ONESHOT);
}

/* Bytes below 0x20 other than tab become '?', so a hook cannot forge log
 * records or terminal escapes. Empty lines are dropped. */
static void emit_line(struct hooks_chain *c, struct hook_result *r, char *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return;
	line[len] = '\0';
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
			line[i] = '?';
	if (c->logged_bytes < HOOK_LOG_BYTES_MAX) {
		log_hook(LOG_INFO, c->event_id, r->name, "%s", line);
		c->logged_bytes += len + 1;
	} else if (!c->drop_noted) {
		log_hook(LOG_WARNING, c->event_id, r->name,
			 "hook '%s' wrote more than %d KiB, further output is counted but not logged",
			 r->name, HOOK_LOG_BYTES_MAX / 1024);
		c->drop_noted = true;
	}
	hook_result_add_line(r, line);
}

static void feed_output(struct hooks_chain *c, const char *buf, size_t n)
{
	struct hook_result *r = &c->results[c->current];

	r->output_bytes += n;
	while (n > 0) {
		const char *nl = memchr(buf, '\n', n);
		size_t take = nl ? (size_t)(nl - buf) : n;
		size_t room = HOOK_LINE_MAX - c->line_len;

		if (take > room)
			take = room;
		memcpy(c->line + c->line_len, buf, take);
		c->line_len += take;
		buf += take;
		n -= take;
		if (n > 0 && *buf == '\n') {
			buf++;
			n--;
			emit_line(c, r, c->line, c->line_len);
			c->line_len = 0;
		} else if (c->line_len == HOOK_LINE_MAX) {
			emit_line(c, r, c->line, c->line_len);
			c->line_len = 0;
		}
	}
}

static void flush_output(struct hooks_chain *c)
{
	if (c->line_len > 0)
		emit_line(c, &c->results[c->current], c->line, c->line_len);
	c->line_len = 0;
}

/* Reads what is there without blocking, at most max bytes. Returns true when
 * the pipe is finished (EOF or error) and was closed. */
static bool read_output(struct hooks_chain *c, size_t max)
{
	char buf[16384];
	size_t total = 0;

	while (c->out_fd >= 0 && total < max) {
		ssize_t k = read(c->out_fd, buf, sizeof(buf));

		if (k > 0) {
			feed_output(c, buf, (size_t)k);
			total += (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			return false;
		flush_output(c);
		close_source(&c->out_source, &c->out_fd);
		return true;
	}
	return c->out_fd < 0;
}

static int on_output(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	/* A bounded amount per wakeup keeps a chatty hook from starving the loop. */
	(void)read_output(userdata, 4 * 16384);
	return 0;
}

static void close_stdin(struct hooks_chain *c)
{
	close_source(&c->stdin_source, &c->stdin_fd);
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct hooks_chain *c = userdata;

	while (c->stdin_off < c->stdin_len) {
		ssize_t k = write(c->stdin_fd, c->stdin_json + c->stdin_off,
				  c->stdin_len - c->stdin_off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			return 0;
		if (k <= 0)
			break;  /* EPIPE: the hook does not read its stdin, fine */
		c->stdin_off += (size_t)k;
	}
	close_stdin(c);
	return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct hooks_chain *c = userdata;
	struct hook_result *r = &c->results[c->current];

	if (!c->term_sent) {
		c->term_sent = true;
		r->timed_out = true;
		log_hook(LOG_WARNING, c->event_id, r->name, "hook '%s' timed out after %.1f s, killing",
			 r->name, usec_to_sec(r->budget_usec));
		(void)kill(-c->pid, SIGTERM);
		(void)kill(-c->pid, SIGCONT);
		if (sd_event_source_set_time(s, usec + c->kill_grace_usec) >= 0 &&
		    sd_event_source_set_enabled(s, SD_EVENT_ONESHOT) >= 0)
			return 0;
		/* Cannot wait for the grace period: kill right away. */
	}
	log_hook(LOG_WARNING, c->event_id, r->name,
		 "hook '%s' still running %.1f s after SIGTERM, sending SIGKILL",
		 r->name, usec_to_sec(c->kill_grace_usec));
	(void)kill(-c->pid, SIGKILL);
	return 0;
}

static void log_end(struct hooks_chain *c, const struct hook_result *r)
{
	const char *suffix = r->timed_out ? " (timed out)" :
			     r->exit_status == 127 ? " (could not be executed, or a command was not found)" : "";
	char sig[32];

	if (r->term_signal > 0)
		log_hook(LOG_WARNING, c->event_id, r->name, "hook '%s' killed by %s after %.2f s%s",
			 r->name, signal_name(r->term_signal, sig, sizeof(sig)),
			 usec_to_sec(r->duration_usec), suffix);
	else if (r->exit_status == HOOK_EXIT_SKIP_REST && !r->timed_out)
		log_hook(LOG_INFO, c->event_id, r->name,
			 "hook '%s' exited %d after %.2f s, skipping the remaining hooks",
			 r->name, r->exit_status, usec_to_sec(r->duration_usec));
	else
		log_hook(r->exit_status == 0 && !r->timed_out ? LOG_INFO : LOG_WARNING,
			 c->event_id, r->name, "hook '%s' exited %d after %.2f s%s",
			 r->name, r->exit_status, usec_to_sec(r->duration_usec), suffix);
}

static void chain_advance(struct hooks_chain *c);

static int on_child_exit(sd_event_source *s, const siginfo_t *si, void *userdata)
{
	struct hooks_chain *c = userdata;
	size_t index = (size_t)c->current;
	struct hook_result *r = &c->results[index];
	bool skip_rest_77;

	if (si->si_code == CLD_EXITED) {
		r->exit_status = si->si_status;
		r->term_signal = 0;
	} else {
		r->exit_status = -1;
		r->term_signal = si->si_status;
	}

	/* A hook must not leave processes behind (a daemon belongs in
	 * systemd-run): whatever is left of its process group dies with it.
	 * The leader is still an unreaped zombie, so the group id cannot have
	 * been reused. */
	(void)kill(-c->pid, SIGKILL);

	/* Take what is left in the pipe without waiting for a writer that
	 * escaped the group and may hold it open forever. */
	(void)read_output(c, DRAIN_MAX);
	flush_output(c);
	close_source(&c->out_source, &c->out_fd);
	close_stdin(c);
	close_source(&c->timer_source, NULL);

	r->duration_usec = now_usec(CLOCK_MONOTONIC) - c->start_mono_usec;
	if (r->timed_out)
		r->outcome = HOOK_TIMEOUT;
	else if (r->exit_status == 0 || r->exit_status == HOOK_EXIT_SKIP_REST)
		r->outcome = HOOK_OK;
	else
		r->outcome = HOOK_FAILED;
	skip_rest_77 = !r->timed_out && r->exit_status == HOOK_EXIT_SKIP_REST;
	log_end(c, r);

	/* sd-event reaps the zombie after this callback returns. */
	(void)sd_event_source_set_child_process_own(s, false);
	c->child_source = sd_event_source_disable_unref(c->child_source);
	c->current = -1;
	c->pid = 0;

	finish_result(c, index);
	if (skip_rest_77) {
		char why[HOOK_NAME_MAX + 32];

		(void)snprintf(why, sizeof(why), "'%s' exited %d", r->name, HOOK_EXIT_SKIP_REST);
		skip_rest(c, "exit 77", LOG_INFO, why);
	}
	chain_advance(c);
	if (c->done)
		kick(c);
	return 0;
}

/* Runs in the forked child: only async-signal-safe calls from here on. */
static _Noreturn void child_exec(int in_fd, int out_fd, char *const argv[], char *const envp[],
				 int max_fd, pid_t agent_pid)
{
	struct sigaction sa;
	sigset_t none;
	int in, out;

	if (setsid() < 0)
		_exit(127);
	/* A hook must not outlive a crashed agent: the restarted agent runs
	 * it again (it never completed), and two copies must never overlap.
	 * The check after prctl closes the race with an agent already gone. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != agent_pid)
		_exit(127);
	/* The raw system call, because glibc refuses to touch the two signals
	 * it reserves (32, 33) and an ignored disposition there would
	 * otherwise be inherited. All zeros is SIG_DFL in every layout of
	 * the kernel's struct sigaction. */
	memset(&sa, 0, sizeof(sa));
	for (int sig = 1; sig < _NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)syscall(SYS_rt_sigaction, sig, &sa, NULL, (size_t)(_NSIG - 1) / 8);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	if (chdir("/") < 0)
		_exit(127);

	/* Move the pipe ends above 2 first: one of them may be 0, 1 or 2
	 * when the agent runs without standard streams. */
	in = fcntl(in_fd, F_DUPFD_CLOEXEC, 3);
	out = fcntl(out_fd, F_DUPFD_CLOEXEC, 3);
	if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(127);
	if (close_range(3, ~0U, 0) < 0)
		for (int fd = 3; fd < max_fd; fd++)
			(void)close(fd);

	execve(argv[0], argv, envp);
	_exit(127);
}

static int set_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static void stop_child_now(struct hooks_chain *c)
{
	(void)kill(-c->pid, SIGKILL);
	if (c->child_source) {
		/* Owned by the source: killed and reaped on unref. */
		c->child_source = sd_event_source_disable_unref(c->child_source);
	} else {
		while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	c->pid = 0;
}

static void release_running(struct hooks_chain *c)
{
	if (c->pid > 0)
		stop_child_now(c);
	close_source(&c->out_source, &c->out_fd);
	close_stdin(c);
	close_source(&c->timer_source, NULL);
	c->line_len = 0;
	c->current = -1;
}

static int ensure_sigchld_blocked(void)
{
	sigset_t set;
	int r;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	r = pthread_sigmask(SIG_BLOCK, &set, NULL);
	return -r;
}

static int start_hook(struct hooks_chain *c, size_t index, uint64_t now)
{
	struct hook_result *r = &c->results[index];
	int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 };
	char *argv[2] = { r->path, NULL };
	char **envp = NULL;
	char *timeout_var = NULL;
	uint64_t budget, secs;
	long max_fd;
	pid_t agent_pid;
	size_t n = 0;
	int k;

	/* Reset what a previous, interrupted attempt may have left. */
	result_clear_output(r);
	r->exit_status = -1;
	r->term_signal = 0;
	r->timed_out = false;
	r->duration_usec = 0;
	r->output_bytes = 0;
	r->skip_reason[0] = '\0';

	budget = c->deadline_mono_usec == USEC_INFINITY ? USEC_INFINITY : c->deadline_mono_usec - now;
	if (c->hook_timeout_usec > 0 && c->hook_timeout_usec < budget)
		budget = c->hook_timeout_usec;
	r->budget_usec = budget;
	secs = budget == USEC_INFINITY ? 0 : budget / USEC_PER_SEC;
	if (secs == 0 && budget != USEC_INFINITY)
		secs = 1;
	timeout_var = xasprintf("SPOT_HOOK_TIMEOUT=%llu", (unsigned long long)secs);
	envp = xcalloc(c->n_env + 2, sizeof(char *));
	for (size_t i = 0; i < c->n_env; i++)
		envp[n++] = c->env[i];
	envp[n++] = timeout_var;
	envp[n] = NULL;

	max_fd = sysconf(_SC_OPEN_MAX);
	if (max_fd < 0 || max_fd > 65536)
		max_fd = 65536;

	if (pipe2(in_pipe, O_CLOEXEC) < 0 || pipe2(out_pipe, O_CLOEXEC) < 0) {
		k = -errno;
		goto out;
	}
	k = set_nonblock(in_pipe[1]);
	if (k >= 0)
		k = set_nonblock(out_pipe[0]);
	if (k < 0)
		goto out;

	c->start_mono_usec = now_usec(CLOCK_MONOTONIC);
	r->start_wall_usec = now_usec(CLOCK_REALTIME);
	agent_pid = getpid();
	c->pid = fork();
	if (c->pid < 0) {
		k = -errno;
		c->pid = 0;
		goto out;
	}
	if (c->pid == 0)
		child_exec(in_pipe[0], out_pipe[1], argv, envp, (int)max_fd, agent_pid);

	c->current = (int)index;
	c->term_sent = false;
	c->logged_bytes = 0;
	c->drop_noted = false;
	c->line_len = 0;
	c->stdin_off = 0;
	c->stdin_fd = in_pipe[1];
	c->out_fd = out_pipe[0];
	in_pipe[1] = out_pipe[0] = -1;

	k = sd_event_add_child(c->event, &c->child_source, c->pid, WEXITED, on_child_exit, c);
	if (k >= 0) {
		(void)sd_event_source_set_child_process_own(c->child_source, true);
		k = sd_event_add_io(c->event, &c->out_source, c->out_fd, EPOLLIN, on_output, c);
	}
	if (k >= 0 && c->stdin_len > 0)
		k = sd_event_add_io(c->event, &c->stdin_source, c->stdin_fd, EPOLLOUT, on_stdin, c);
	else if (k >= 0)
		close_stdin(c);
	if (k >= 0 && budget != USEC_INFINITY)
		k = sd_event_add_time(c->event, &c->timer_source, CLOCK_MONOTONIC,
				      now + budget, USEC_PER_MSEC, on_timer, c);
	if (k < 0) {
		release_running(c);
		goto out;
	}
	r->outcome = HOOK_RUNNING;
	k = 0;
out:
	for (int i = 0; i < 2; i++) {
		if (in_pipe[i] >= 0)
			close(in_pipe[i]);
		if (out_pipe[i] >= 0)
			close(out_pipe[i]);
	}
	free(envp);
	free(timeout_var);
	return k;
}

static void chain_advance(struct hooks_chain *c)
{
	while (c->current < 0 && !c->done) {
		struct hook_result *r;
		uint64_t now;
		size_t i = c->next;
		int k;

		while (i < c->n_results && c->results[i].outcome != HOOK_PENDING)
			i++;
		c->next = i;
		if (i == c->n_results) {
			c->done = true;
			break;
		}
		if (c->stopping) {
			if (c->mark_skipped)
				skip_rest(c, "stopping", LOG_INFO, "stopping");
			else
				log_event(LOG_INFO, c->event_id,
					  "hooks: stopping, the hooks not run yet stay pending");
			c->done = true;
			break;
		}
		now = now_usec(CLOCK_MONOTONIC);
		if (now >= c->deadline_mono_usec) {
			skip_rest(c, "deadline", LOG_WARNING, "deadline passed");
			c->done = true;
			break;
		}

		r = &c->results[i];
		c->next = i + 1;
		k = start_hook(c, i, now);
		if (k < 0) {
			r->outcome = HOOK_FAILED;
			r->exit_status = -1;
			log_emit(LOG_ERR, k, c->event_id, r->name, "hook '%s' could not be started", r->name);
			finish_result(c, i);
			continue;
		}
		if (r->budget_usec == USEC_INFINITY)
			log_hook(LOG_INFO, c->event_id, r->name, "hook '%s' started (pid %d, no timeout)",
				 r->name, (int)c->pid);
		else
			log_hook(LOG_INFO, c->event_id, r->name, "hook '%s' started (pid %d, timeout %.1f s)",
				 r->name, (int)c->pid, usec_to_sec(r->budget_usec));
		if (c->ops && c->ops->hook_started)
			c->ops->hook_started(c, i, c->userdata);
	}
}

static int on_kick(sd_event_source *s, void *userdata)
{
	struct hooks_chain *c = userdata;

	if (!c->done)
		chain_advance(c);
	if (!c->done || c->current >= 0 || c->finished)
		return 0;
	c->finished = true;
	/* The last thing the chain does: the callback may free it. */
	if (c->ops && c->ops->chain_finished)
		c->ops->chain_finished(c, c->userdata);
	return 0;
}

int hooks_chain_start(const struct hooks_chain_params *p, struct hooks_chain **ret)
{
	struct hooks_chain *c;
	size_t n_env = 0;
	int r;

	if (!p || !p->event || (!p->results && p->n_results > 0) || !ret)
		return -EINVAL;
	r = ensure_sigchld_blocked();
	if (r < 0)
		return r;

	c = xcalloc(1, sizeof(*c));
	c->event = sd_event_ref(p->event);
	c->results = p->results;
	c->n_results = p->n_results;
	c->event_id = xstrdup(p->event_id ? p->event_id : "");
	c->stdin_json = xstrdup(p->stdin_json ? p->stdin_json : "");
	c->stdin_len = strlen(c->stdin_json);
	while (p->env && p->env[n_env])
		n_env++;
	c->env = xcalloc(n_env + 1, sizeof(char *));
	for (size_t i = 0; i < n_env; i++)
		if (strncmp(p->env[i], "SPOT_HOOK_TIMEOUT=", 18) != 0)
			c->env[c->n_env++] = xstrdup(p->env[i]);
	c->deadline_mono_usec = p->deadline_mono_usec;
	c->hook_timeout_usec = p->hook_timeout_usec;
	c->kill_grace_usec = p->kill_grace_usec ? p->kill_grace_usec : HOOK_KILL_GRACE_USEC;
	c->ops = p->ops;
	c->userdata = p->userdata;
	c->current = -1;
	c->stdin_fd = -1;
	c->out_fd = -1;

	r = sd_event_add_defer(c->event, &c->kick, on_kick, c);
	if (r < 0) {
		hooks_chain_free(c);
		return r;
	}
	/* Everything, even the first fork, happens from the loop. */
	*ret = c;
	return 0;
}

void hooks_chain_stop(struct hooks_chain *c, bool mark_skipped)
{
	if (!c || c->finished)
		return;
	c->stopping = true;
	c->mark_skipped = mark_skipped;
	if (c->current < 0)
		kick(c);
}

int hooks_chain_current(const struct hooks_chain *c)
{
	return c ? c->current : -1;
}

void hooks_chain_free(struct hooks_chain *c)
{
	if (!c)
		return;
	if (c->current >= 0) {
		struct hook_result *r = &c->results[c->current];

		log_hook(LOG_WARNING, c->event_id, r->name, "hook '%s' killed: the chain is going away",
			 r->name);
		r->outcome = HOOK_FAILED;
		r->exit_status = -1;
		r->term_signal = SIGKILL;
		r->duration_usec = now_usec(CLOCK_MONOTONIC) - c->start_mono_usec;
		release_running(c);
	}
	sd_event_source_disable_unref(c->kick);
	sd_event_unref(c->event);
	strv_free(c->env);
	free(c->stdin_json);
	free(c->event_id);
	free(c);
}
