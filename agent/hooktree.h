/* hooktree.h - the hooks' process trees (hooktree.c): the child subreaper,
 * the hooks' cgroup, and killing what a hook leaves behind. hooks.h
 * includes it: hooks_tree_* are for the agent's set-up and exit, hooktree_*
 * for the runner (hooks.c). */
#ifndef SPOT_HOOKTREE_H
#define SPOT_HOOKTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Where hooks' process trees are kept so that they can be found even after
 * the agent itself was killed: a cgroup (v2) named after tag below the
 * agent's own, when the agent may create one (root, or systemd with
 * Delegate=yes); else none, and only the subreaper fallback applies. Any
 * process found in that cgroup at set-up is left over from a previous run
 * of the agent with the same tag and is killed before this returns (bounded
 * wait). tag: e.g. a hash of the state directory, so two agents on one
 * machine keep apart; NULL = no cgroup (drills). *ret_killed (may be NULL)
 * gets the number of leftovers killed. Makes the agent a child subreaper.
 * Returns 0 (also when no cgroup can be had), -EINVAL for a tag that is not
 * 1-64 of [A-Za-z0-9._-] (no leading '.'), -EBUSY when leftovers are still
 * alive after 2 s (the cgroup stays in use), or -errno from prctl. Sleeps
 * while it waits: call it before the loop runs. A later call replaces the
 * cgroup chosen before. */
int hooks_tree_setup(const char *tag, unsigned *ret_killed);
/* The cgroup directory in use, or NULL. Borrowed. */
const char *hooks_tree_cgroup(void);
/* At a clean exit, after the last run is freed: removes the cgroup (when it
 * is empty) and forgets it. Outside systemd nobody else would; under
 * systemd, stopping the unit removes it too. */
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
/* The cgroup.procs a new hook writes itself into, or NULL. Borrowed, valid
 * until the next hooks_tree_setup or hooks_tree_done. */
const char *hooktree_cgroup_procs(void);

/* SIGTERM (and SIGCONT, for a stopped one) to every living descendant. */
void hooktree_terminate(void);
/* SIGKILL to every living descendant, stopped first so that none forks in
 * between; reaps the agent's dead children on the way, except those in
 * keep. Adds the pids killed to *killed (may be NULL). Returns how many
 * were alive; *ret_watch (may be NULL) gets one living child of the agent
 * not in keep, or 0. */
size_t hooktree_kill(const pid_t keep[2], struct hooktree_pidset *killed, pid_t *ret_watch);
/* SIGKILL to everything in the hooks' cgroup, after adding what it lists to
 * *killed (may be NULL). No-op without a cgroup. */
void hooktree_cgroup_kill(struct hooktree_pidset *killed);
/* Whether a living process is in the hooks' cgroup; false without one. */
bool hooktree_cgroup_populated(void);
/* Kills and reaps what an earlier run may have left: the cgroup, then every
 * descendant. Only while no hook runs, when every child is such a leftover. */
void hooktree_sweep(void);

#endif
