/* hooks.h - scanning the hook directories (scan.c, with trust.c and
 * format.c), a hook's environment (env.c) and running one hook (run.c,
 * run-pipes.c, run-end.c, with spawn.c, output.c and report.c); the hooks'
 * process trees are tree.h's, included here. A hook's result is the
 * engine's type (engine/record.h). */
#ifndef SPOT_HOOKS_H
#define SPOT_HOOKS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "engine/event.h"
#include "engine/record.h"
#include "hooks/report.h"
#include "hooks/tree.h"
#include "util.h"

#define HOOKS_SKIPS_MAX        256     /* skipped files listed; the rest are only counted */
#define HOOK_SKIP_REASON_MAX   (PATH_MAX + 256) /* why a file may not run; names a path */
#define HOOK_LOG_BYTES_MAX     (256 * 1024) /* output logged per hook; the rest is counted, not logged */
#define HOOK_KILL_GRACE_USEC   (2 * USEC_PER_SEC)  /* SIGTERM -> SIGKILL, out of the budget */
#define HOOK_PATH_ENV          "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* The directory of the recover hooks below a hook directory (chain.h): a
 * scan passes over it without listing it as a skipped file. */
#define HOOKS_RECOVER_DIR      "recover.d"

struct hook_file {
	char name[HOOK_NAME_MAX];
	char path[PATH_MAX];        /* the file that runs (/etc or /usr/lib) */
	/* The file that was checked, opened O_PATH (or read-only) and
	 * O_CLOEXEC; it is what runs, whatever the path names by then. -1
	 * none. Owned by the plan when the plan's owns_fds is set. */
	int fd;
	/* A "#!" script (or a file that could not be read): the interpreter
	 * reads it through /dev/fd/N, so the descriptor stays open across
	 * the exec. */
	bool script;
};

struct hook_skip {
	char name[HOOK_NAME_MAX];
	char path[PATH_MAX];
	/* e.g. "not executable", "group-writable",
	 * "directory '/etc/spot-agent.d' is world-writable" */
	char reason[HOOK_SKIP_REASON_MAX];
	/* The file was meant to run and is refused: (a link to) a regular
	 * file that is executable or starts with "#!", or a link that leads
	 * nowhere. False for the documented ignores (hidden, backup,
	 * package-manager and editor leftovers), a masked hook and files that
	 * are not hooks at all (a text file, a directory). check and drill
	 * fail on a refusal. */
	bool refused;
};

/* The hooks to run, in bytewise order, and every file that was skipped. */
struct hook_plan {
	struct hook_file *hooks;
	size_t n_hooks;
	struct hook_skip *skips;
	size_t n_skips;
	size_t n_skips_dropped;     /* skipped files beyond HOOKS_SKIPS_MAX, not listed */
	size_t n_refused;           /* skips that are refusals, listed or not */
	bool owns_fds;              /* hooks[].fd are the plan's (hooks_scan's plans) */
};

/* Reads etc_dir and lib_dir (lib_dir NULL or "" = none) and merges them by
 * file name, etc_dir winning; a link to /dev/null in etc_dir masks (and is
 * listed as skipped, reason "masked"). A file named README* is passed
 * over, not even listed, and so is a directory HOOKS_RECOVER_DIR in either.
 * A missing directory is empty, not an error. The files' checks follow SPEC §4; allowed owners are root and the
 * agent's effective uid. Every directory on the way from / to a hook (each
 * directory's parents, and for a symbolic link every directory its target
 * is reached through) must be owned by root or the agent's effective uid
 * and be neither group- nor world-writable, sticky or not: else the files
 * below it are skipped, the reason naming the directory. Returns 0 or
 * -errno when a directory exists but cannot be read. Does not log: the
 * caller logs the skips. Each hook of the plan holds a descriptor of the
 * file that was checked (at most HOOKS_MAX), closed by hook_plan_done. */
int hooks_scan(const char *etc_dir, const char *lib_dir, struct hook_plan *ret);
/* Closes the plan's descriptors (when it owns them) and frees it. NULL ok. */
void hook_plan_done(struct hook_plan *plan);

/* One hook file outside a plan, by its path: the same checks as
 * hooks_scan's on the file and the way to it (masking aside). On success
 * *ret holds name, path and a descriptor the caller closes. Returns 0,
 * -EPERM when a check fails (the reason in why), or -errno when the file
 * cannot be reached (-ENOENT, ...). */
int hooks_open(const char *path, const char *name, struct hook_file *ret, char *why, size_t why_size);
/* The file rules again, on f->fd as it is now (type, size, mode, owner):
 * 0, or -EPERM with the reason in why, or -errno. */
int hook_file_recheck(const struct hook_file *f, char *why, size_t why_size);
/* The interpreter the file needs, read from f->fd: a script's "#!" one, or
 * an ELF binary's program interpreter (its dynamic loader). 0 with buf
 * filled, -ENOENT when it needs none, or -errno. */
int hook_file_interpreter(const struct hook_file *f, char *buf, size_t n);

/* ---- running one hook ----
 * The runner starts one hook (a vfork-style clone, then execveat of the
 * checked file's descriptor) into a new session and process group
 * with a clean environment, feeds the event on stdin, collects its output,
 * enforces its budget (SIGTERM to the group a grace before the budget's
 * end, SIGKILL at its end; the grace is at most a quarter of the budget) and,
 * when the hook's main process ends, kills whatever the hook left behind:
 * its process group, and descendants that left it (setsid, double fork),
 * found as orphans adopted by the agent (PR_SET_CHILD_SUBREAPER). The
 * hooks' cgroup, when hooks_tree_setup gave one, holds the agent and so
 * every hook from its start on; it serves only the set-up of an agent
 * restarted after a crash, and is never killed while the agent runs. Which
 * hook runs when is the engine's; the runner never decides order, skips or
 * retries.
 *
 * One hook runs at a time, and the agent starts no other processes: every
 * child of the agent that is not a running hook's main process is taken for
 * a hook's leftover, killed and reaped. */

struct hook_run;

/* Called once, from the loop, when the hook and everything it left behind
 * are dead (a process still alive 5 s after its SIGKILL, stuck in the
 * kernel, is logged and given up on). res is the runner's: outcome
 * (HOOK_OK, HOOK_FAILED or HOOK_TIMEOUT), exit_status, term_signal,
 * timed_out, exec_errno, start_wall_usec, duration_usec (until the main
 * process ended), budget_usec and the output lines. Exit 0 and exit 77 are
 * HOOK_OK (what 77 means is the engine's); a timed-out hook is HOOK_TIMEOUT
 * whatever its status. The callee may move the output lines out of res (set
 * the ring's pointers to NULL) and may call hook_run_free(run). */
typedef void (*hook_run_ended)(struct hook_run *run, struct hook_result *res, void *userdata);

struct hook_run_params {
	sd_event *event;
	const char *name;              /* for log lines and the result */
	const char *path;              /* the hook's path, for the result, the log
					* and SPOT_HOOK_PATH */
	/* The checked file to run, from the plan (borrowed, only for the
	 * call): its descriptor is re-checked (hook_file_recheck) and
	 * executed. NULL: path is opened and checked now (hooks_open). */
	const struct hook_file *file;
	char *why;                     /* NULL, or gets why a start was refused */
	size_t why_size;
	const char *event_id;          /* tags log lines */
	const char *stdin_json;        /* written to the hook's stdin */
	char **env;                    /* NULL-terminated base environment; the
					* runner adds SPOT_HOOK_TIMEOUT (whole
					* seconds of budget_usec, at least 1;
					* 0 when it is USEC_INFINITY) and
					* SPOT_HOOK_PATH (path) */
	uint64_t budget_usec;          /* USEC_INFINITY = none; SIGKILL at its end */
	uint64_t kill_grace_usec;      /* 0 = HOOK_KILL_GRACE_USEC; SIGTERM comes this
					* long (at most budget_usec / 4) before */
	/* Where the hook's report file goes (<state_dir>/reports/, named in
	 * SPOT_REPORT, read into the result's report at the end); NULL: no
	 * report file and no SPOT_REPORT. */
	const char *state_dir;
	hook_run_ended ended;
	void *userdata;
};

/* Starts the hook: executes the checked file's descriptor (execveat with
 * AT_EMPTY_PATH), never the path, so a file put in the hook's place after
 * the check does not run. Returns 0, or -errno when it could not be started
 * (pipe2/clone failures: -EAGAIN, -ENOMEM, -EMFILE, -ENFILE, ...); then no
 * process is left and ended is not called, so the caller may retry.
 * -EPERM: the file fails its checks now (the reason in p->why); -ENOENT
 * and the like: without p->file, the path cannot be opened. -EBUSY:
 * another run has not ended yet (a caller bug). A file that cannot be
 * executed (ENOEXEC, EACCES, a missing interpreter) is started and ends as
 * HOOK_FAILED with exit_status 127 and exec_errno set. Nothing is called
 * back from within this function. Blocks SIGCHLD in the calling thread;
 * the caller ignores SIGPIPE. */
int hook_run_start(const struct hook_run_params *p, struct hook_run **ret);

/* Ends the hook early as on a timeout (SIGTERM, then SIGKILL after the
 * grace, or at the end of its budget if that comes first); ended follows
 * with timed_out set. No-op once the hook's main process has ended or a
 * timeout is under way. NULL ok. */
void hook_run_kill(struct hook_run *run);

/* The hook now ends at end_mono_usec at the latest (only ever earlier than
 * before): SIGTERM a grace before it (at most a quarter of what its budget
 * has become), SIGKILL at it; when that time has passed, at once. NULL
 * ok. */
void hook_run_set_end(struct hook_run *run, uint64_t end_mono_usec);

/* Kills the hook's whole tree at once (SIGKILL), reaps what it can without
 * blocking the loop for more than a few milliseconds, and frees the run
 * without calling ended. NULL ok. */
void hook_run_free(struct hook_run *run);

/* hooks_tree_setup, hooks_tree_cgroup and hooks_tree_done, which set up
 * and tear down where the hooks' process trees are kept, are declared in
 * hooktree.h. */

/* The base hook environment: PATH, LANG, TZ and the SPOT_* variables of
 * SPEC §4 except SPOT_HOOK_TIMEOUT. Caller frees with strv_free. */
struct hook_phase {
	bool recover;                 /* SPOT_PHASE=recover, else evict */
	const char *recover_reason;   /* SPOT_RECOVER_REASON */
	uint64_t downtime_sec;        /* SPOT_DOWNTIME */
};
char **hooks_env_new(const struct spot_event *ev, const char *vm_name,
		     uint64_t deadline_wall_usec, bool drill, const struct hook_phase *phase);
void strv_free(char **v);
/* A run's environment: base without any SPOT_HOOK_TIMEOUT or
 * SPOT_HOOK_PATH, then those two for this run (whole seconds of
 * budget_usec, at least 1, 0 for USEC_INFINITY; path). Caller frees with
 * strv_free. With report (not NULL or empty), SPOT_REPORT names it. */
char **hooks_env_for_run(char **base, uint64_t budget_usec, const char *path,
			 const char *report);

#endif
