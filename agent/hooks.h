/* hooks.h - scanning the hook directories and running a hook chain. */
#ifndef SPOT_HOOKS_H
#define SPOT_HOOKS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "event.h"
#include "util.h"

#define HOOKS_MAX              64      /* further runnable files are skipped ("too many hooks") */
#define HOOK_NAME_MAX          128     /* bytes incl. NUL; longer names are skipped */
#define HOOKS_SKIPS_MAX        256     /* skipped files listed; the rest are only counted */
#define HOOK_REASON_MAX        64
#define HOOK_OUTPUT_LINES      10      /* last lines kept per hook for /v1/status */
#define HOOK_LINE_MAX          1024    /* longer lines are cut into pieces */
#define HOOK_LOG_BYTES_MAX     (256 * 1024) /* output logged per hook; the rest is counted, not logged */
#define HOOK_KILL_GRACE_USEC   (2 * USEC_PER_SEC)  /* SIGTERM -> SIGKILL */
#define HOOK_EXIT_SKIP_REST    77
#define HOOK_PATH_ENV          "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct hook_file {
	char name[HOOK_NAME_MAX];
	char path[PATH_MAX];        /* the file that runs (/etc or /usr/lib) */
};

struct hook_skip {
	char name[HOOK_NAME_MAX];
	char path[PATH_MAX];
	char reason[HOOK_REASON_MAX]; /* e.g. "not executable", "group-writable" */
};

/* The hooks to run, in bytewise order, and every file that was skipped. */
struct hook_plan {
	struct hook_file *hooks;
	size_t n_hooks;
	struct hook_skip *skips;
	size_t n_skips;
	size_t n_skips_dropped;     /* skipped files beyond HOOKS_SKIPS_MAX, not listed */
};

/* Reads etc_dir and lib_dir (lib_dir NULL or "" = none) and merges them by
 * file name, etc_dir winning; a link to /dev/null in etc_dir masks (and is
 * listed as skipped, reason "masked"). A missing directory is empty, not an
 * error. The files' checks follow SPEC §4; allowed owners are root and the
 * agent's effective uid. Returns 0 or -errno when a directory exists but
 * cannot be read. Does not log: the caller logs the skips. */
int hooks_scan(const char *etc_dir, const char *lib_dir, struct hook_plan *ret);
void hook_plan_done(struct hook_plan *plan);

enum hook_outcome {
	HOOK_PENDING,    /* not yet run (or interrupted by a crash: runs again) */
	HOOK_RUNNING,
	HOOK_OK,
	HOOK_FAILED,     /* non-zero exit, killed by a signal, or could not start */
	HOOK_TIMEOUT,
	HOOK_SKIPPED,    /* see skip_reason */
	_HOOK_OUTCOME_MAX,
};

struct hook_result {
	char name[HOOK_NAME_MAX];
	char path[PATH_MAX];
	enum hook_outcome outcome;
	int exit_status;             /* exit code; -1 when killed by a signal or not started */
	int term_signal;             /* signal that ended it, else 0 */
	bool timed_out;
	uint64_t start_wall_usec;    /* 0 when never started */
	uint64_t duration_usec;
	uint64_t budget_usec;        /* the timeout it was given */
	char skip_reason[HOOK_REASON_MAX]; /* "deadline", "exit 77", "stopping" */
	/* Ring of the last output lines (owned strings). */
	char *output[HOOK_OUTPUT_LINES];
	size_t output_next;          /* slot the next line goes to */
	size_t n_output;             /* lines held, <= HOOK_OUTPUT_LINES */
	uint64_t output_bytes;       /* bytes read from the hook in total */
};

const char *hook_outcome_to_string(enum hook_outcome o);
int hook_outcome_from_string(const char *s, enum hook_outcome *ret);
/* A final outcome is never run again for the same event. */
bool hook_outcome_is_final(enum hook_outcome o);

void hook_result_init(struct hook_result *r, const char *name, const char *path);
void hook_result_done(struct hook_result *r);
/* Appends one line to the ring (copied, cut at HOOK_LINE_MAX). */
void hook_result_add_line(struct hook_result *r, const char *line);
/* Calls fn for the held lines, oldest first. */
void hook_result_foreach_line(const struct hook_result *r,
			      void (*fn)(const char *line, void *userdata), void *userdata);

struct hooks_chain;

struct hooks_chain_ops {
	/* The hook at index was forked and exec'd. Optional. */
	void (*hook_started)(struct hooks_chain *c, size_t index, void *userdata);
	/* results[index] holds its final outcome. Called before the next hook
	 * starts, so the caller can persist it. */
	void (*hook_finished)(struct hooks_chain *c, size_t index, void *userdata);
	/* No hook is left to run (or the chain was stopped and the running hook
	 * ended). Called from the event loop, never from hooks_chain_start. */
	void (*chain_finished)(struct hooks_chain *c, void *userdata);
};

struct hooks_chain_params {
	sd_event *event;
	/* Borrowed, one per hook in run order, owned by the caller and valid
	 * until chain_finished or hooks_chain_free. Entries with outcome
	 * HOOK_PENDING run; any other outcome is left alone (resume). */
	struct hook_result *results;
	size_t n_results;
	const char *event_id;          /* tags log lines */
	const char *stdin_json;        /* written to every hook's stdin */
	char **env;                    /* NULL-terminated base environment; the
					* chain adds SPOT_HOOK_TIMEOUT per hook
					* (whole seconds of its budget, at least 1;
					* 0 when it has no limit at all) */
	uint64_t deadline_mono_usec;   /* the whole chain must end by then;
					* USEC_INFINITY = none (0 has passed) */
	uint64_t hook_timeout_usec;    /* 0 = only the deadline */
	uint64_t kill_grace_usec;      /* 0 = HOOK_KILL_GRACE_USEC */
	const struct hooks_chain_ops *ops;
	void *userdata;
};

/* Starts running the pending hooks one after another on the event loop.
 * Hooks not started by the deadline are marked skipped ("deadline"); exit 77
 * marks the rest skipped ("exit 77"). Returns 0 or -errno.
 *
 * Each hook gets the smaller of hook_timeout_usec and the time left to the
 * deadline, then SIGTERM on its process group, then SIGKILL after the grace.
 * When the hook's main process ends, its process group is SIGKILLed: a hook
 * must not leave processes behind. Outcomes: exit 0 is HOOK_OK; exit 77 is
 * HOOK_OK with exit_status 77 (the hook did what it meant) and the pending
 * hooks after it become HOOK_SKIPPED "exit 77"; a timed-out hook is
 * HOOK_TIMEOUT whatever its status; any other status, a signal, or a hook
 * that could not be forked is HOOK_FAILED (exit 127: could not be executed).
 * stdout and stderr share one pipe, so lines keep the order they were
 * written in; control bytes in them become '?', empty lines are dropped.
 *
 * Blocks SIGCHLD in the calling thread (sd_event_add_child needs it); the
 * caller ignores SIGPIPE. All callbacks come from the event loop, never from
 * within hooks_chain_start or hooks_chain_stop. hooks_chain_stop may be
 * called from any callback; hooks_chain_free only from chain_finished (the
 * chain's last action) or outside the callbacks. */
int hooks_chain_start(const struct hooks_chain_params *p, struct hooks_chain **ret);

/* No further hook starts; a running one may finish within its timeout.
 * Hooks left are marked skipped with reason "stopping" only if mark_skipped,
 * else they stay pending (a restart resumes them). chain_finished follows. */
void hooks_chain_stop(struct hooks_chain *c, bool mark_skipped);

/* Index of the running hook, or -1. */
int hooks_chain_current(const struct hooks_chain *c);

/* Kills a running hook's process group (SIGKILL), reaps it, records it as
 * HOOK_FAILED (term_signal SIGKILL) without calling hook_finished, and frees
 * the chain. NULL ok. */
void hooks_chain_free(struct hooks_chain *c);

/* The base hook environment: PATH, LANG, TZ and the SPOT_* variables of
 * SPEC §4 except SPOT_HOOK_TIMEOUT. Caller frees with strv_free. */
char **hooks_env_new(const struct spot_event *ev, const char *vm_name,
		     uint64_t deadline_wall_usec, bool drill);
void strv_free(char **v);

#endif
