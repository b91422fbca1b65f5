/* tree.h - the hooks' process trees (tree.c, tree-cgroup.c): the child
 * subreaper, the hooks' cgroup, and killing what a hook leaves behind.
 * hooks.h includes it: hooks_tree_* are for the agent's set-up and exit,
 * hooktree_* for the runner (run.c, run-end.c). */
#ifndef SPOT_HOOKTREE_H
#define SPOT_HOOKTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Where hooks' process trees are kept so that they can be found even after
 * the agent itself was killed: a cgroup (v2) named after tag below the
 * agent's own, when the agent may create one and move into it (root, or
 * systemd with Delegate=yes); else none, and only the subreaper fallback
 * applies. Any process found in that cgroup at set-up is left over from a
 * previous run of the agent with the same tag and is killed before this
 * returns (bounded wait). Then the agent moves itself into the cgroup, so
 * that every hook starts there by inheritance: from here on the agent
 * shares it with its hooks, and it is never killed or frozen as a whole
 * until hooks_tree_done. tag: e.g. a hash of the state directory, so two
 * agents on one machine keep apart; NULL = no cgroup (drills).
 * *ret_killed (may be NULL) gets the number of leftovers killed. Makes the
 * agent a child subreaper. Returns 0 (also when no cgroup can be had),
 * -EINVAL for a tag that is not 1-64 of [A-Za-z0-9._-] (no leading '.'),
 * -EBUSY when leftovers are still alive after 2 s (the agent is in the
 * cgroup all the same), or -errno from prctl or from moving out of the
 * cgroup chosen before. Sleeps while it waits: call it before the loop
 * runs, and while no hook runs. A later call replaces the cgroup chosen
 * before (the agent moves out of it first). */
int hooks_tree_setup(const char *tag, unsigned *ret_killed);
/* The cgroup directory in use, or NULL. Borrowed. */
const char *hooks_tree_cgroup(void);
/* At a clean exit, after the last run is freed: moves the agent back to the
 * cgroup it came from, removes the hooks' cgroup (when it is empty) and
 * forgets it. When the agent cannot move back, all stays as it is. Outside
 * systemd nobody else would remove it; under systemd, stopping the unit
 * removes it too. */
void hooks_tree_done(void);

/* ---- for the runner ----
 * keep: NULL, or two pids (0 = none) that a child source waits for; they
 * are never reaped here, since sd-event fails when its pid is reaped behind
 * its back. */

/* A sorted set of pids; zero-initialised is empty. v is owned. */
struct hooktree_pidset {
	pid_t *v;
	size_t n, cap;
};
void hooktree_pidset_done(struct hooktree_pidset *s);

/* Makes the agent a child subreaper unless hooks_tree_setup already did. */
void hooktree_ensure_subreaper(void);

/* SIGTERM (and SIGCONT, for a stopped one) to every living descendant. */
void hooktree_terminate(void);
/* SIGKILL to every living descendant, stopped first so that none forks in
 * between; reaps the agent's dead children on the way, except those in
 * keep. Adds the pids killed, and the dead children a SIGKILL ended, to
 * *killed (may be NULL). Returns how many
 * were alive; *ret_watch (may be NULL) gets one living child of the agent
 * not in keep, or 0. */
size_t hooktree_kill(const pid_t keep[2], struct hooktree_pidset *killed, pid_t *ret_watch);
/* Reaps every dead child of the agent (waitid P_ALL), adding those a
 * SIGKILL ended to *killed (may be NULL). Only while no child source waits
 * for a pid. Returns true when the agent has no child left at all, living
 * or dead: then, the agent being a subreaper, no descendant either. */
bool hooktree_reap_all(struct hooktree_pidset *killed);
/* Kills and reaps what an earlier run may have left: every descendant.
 * Only while no hook runs, when every child is such a leftover. */
void hooktree_sweep(void);

#endif
