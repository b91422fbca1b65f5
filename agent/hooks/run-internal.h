/* run-internal.h - between the files of one hook's run: run.c (its start,
 * its budget, its free), run-pipes.c (the event on its stdin, its output
 * pipes) and run-end.c (the main process's end, what it left behind, the
 * end reported). Not for other modules: they see hooks.h. */
#ifndef SPOT_HOOKS_RUN_INTERNAL_H
#define SPOT_HOOKS_RUN_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "hooks/hooks.h"
#include "hooks/output.h"

/* One of the hook's two output pipes: stdout, stderr. */
struct run_pipe {
	struct hook_run *run;
	int fd;                          /* our end, -1 once closed */
	sd_event_source *source;
	struct hook_output_stream *stream;
};

struct hook_run {
	sd_event *event;
	struct hook_result res;
	char *event_id;
	char *stdin_json;
	size_t stdin_len;
	size_t stdin_off;
	uint64_t kill_grace_usec;        /* SIGTERM -> SIGKILL */
	uint64_t kill_at_mono_usec;      /* the end of the budget, USEC_INFINITY none */
	uint64_t term_grace_usec;        /* SIGTERM -> SIGKILL, as it was set */
	uint64_t term_mono_usec;         /* when SIGTERM was sent */
	hook_run_ended ended;
	void *userdata;

	pid_t pid;                       /* the main process, its group and session */
	uint64_t start_mono_usec;
	sd_event_source *child_source;   /* the main process; NULL once it ended */
	sd_event_source *timer_source;   /* the budget, then the grace */
	bool term_sent;
	bool main_ended;                 /* waiting for what it left behind */
	bool finished;                   /* ended was called */
	struct hook_report_file report;  /* SPOT_REPORT, "" none */
	int stdin_fd;
	sd_event_source *stdin_source;
	struct run_pipe pipes[2];        /* stdout, stderr */
	int spawn_errno;                 /* why the child failed before its exec, or
					  * the exec itself, else 0 */
	const char *spawn_step;          /* where: "execveat", "setsid", ...; static */
	char spawn_detail[HOOK_DETAIL_MAX]; /* both in words */
	struct hook_output out;          /* both, into the log and res */

	/* After the main process ended. */
	struct hooktree_pidset left;     /* processes it left behind, killed */
	sd_event_source *orphan_source;  /* one adopted leftover we wait for */
	pid_t orphan_pid;
	sd_event_source *tidy_source;    /* defer: the first look, once the main process is reaped */
	sd_event_source *reap_timer;     /* looks again; bounds the wait */
	uint64_t reap_until_mono_usec;
	sd_event_source *end_source;     /* defer: reports the end */
};

/* A run was freed before all it left was reaped, or given up on: the next
 * start sweeps first (run.c). */
extern bool sweep_pending;

/* ---- run.c ---- */

double usec_to_sec(uint64_t usec);
/* Disables and unrefs *s; closes *fd (fd may be NULL). */
void close_source(sd_event_source **s, int *fd);
/* The pids that child sources wait for, which nobody else may reap. */
void run_keep(const struct hook_run *run, pid_t keep[2]);
int arm_timer(struct hook_run *run, sd_event_source **s, uint64_t usec,
	      sd_event_time_handler_t fn);
/* The last thing a run does: ended may free it. */
void report_end(struct hook_run *run);

/* ---- run-pipes.c ---- */

/* Both pipes: what the hook wrote last comes out before its end. */
void read_output(struct hook_run *run, size_t max);
void flush_output(struct hook_run *run);
void close_output(struct hook_run *run);
int on_output(sd_event_source *s, int fd, uint32_t revents, void *userdata);
int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata);

/* ---- run-end.c ---- */

/* The main process ended: its result, then what it left behind. */
int on_child_exit(sd_event_source *s, const siginfo_t *si, void *userdata);

#endif
