/* tree-internal.h - between tree.c (sets of pids, the agent's descendants
 * through /proc) and tree-cgroup.c (the subreaper, the hooks' cgroup). Not
 * for other modules: they see tree.h. */
#ifndef SPOT_HOOKS_TREE_INTERNAL_H
#define SPOT_HOOKS_TREE_INTERNAL_H

#include <stdbool.h>
#include <sys/types.h>

#include "hooks/tree.h"

/* Scan-and-stop rounds before everything found is killed. */
#define TREE_ROUNDS_MAX      8

/* Returns true when p was not in the set yet. */
bool pidset_add(struct hooktree_pidset *s, pid_t p);

#endif
