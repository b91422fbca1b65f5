/* interp.h - whether the program that runs a hook may be trusted
 * (interp.c): a script's "#!" interpreter, an ELF hook's loader, and the
 * program "#!/usr/bin/env NAME" finds on the hooks' PATH. */
#ifndef SPOT_HOOKS_INTERP_H
#define SPOT_HOOKS_INTERP_H

#include "hooks/trust.h"

/* Bytes of a file the kernel looks at to tell its format (BINPRM_BUF_SIZE):
 * a "#!" line must fit, interpreter name and argument. */
#define INTERP_LINE_MAX 256

/* The interpreter looked at last and what was found: most hooks share one.
 * Zero-initialised is empty. */
struct format_interp_cache {
	char key[2 * INTERP_LINE_MAX];                    /* interpreter, '\t', argument */
	char fault[2 * INTERP_LINE_MAX + TRUST_FAULT_MAX]; /* "" when it may run */
};

/* Why interp, run with the "#!" line's argument arg ("" for none, NULL
 * for an ELF loader), may not run a hook, or "" when it may. It must
 * exist, be executable and pass the hooks' own rules (trust.c): owned by
 * root or the agent's user, writable by nobody else, the whole way to it.
 * When interp is env, so must the program it runs: a path as given, or a
 * name as env finds it on search_path (the hooks' PATH, HOOK_PATH_ENV),
 * every directory of it up to the one it is found in included (a program
 * put in an earlier one would run instead). The result lives in cache
 * (one per search_path) until the next call. */
const char *interp_fault(const char *interp, const char *arg, const char *search_path,
			 struct format_interp_cache *cache);

#endif
