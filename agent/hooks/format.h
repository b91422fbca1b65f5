/* format.h - whether the kernel can execute a file, told from its first
 * bytes (format.c): a "#!" line and its interpreter, or an ELF executable
 * for this machine. */
#ifndef SPOT_HOOKS_FORMAT_H
#define SPOT_HOOKS_FORMAT_H

#include <stdbool.h>
#include <stddef.h>

#include "hooks/interp.h"

/* Bytes of a file the kernel looks at to tell its format (BINPRM_BUF_SIZE):
 * a "#!" line must fit, interpreter name and argument. */
#define FORMAT_HEAD_MAX INTERP_LINE_MAX

/* Whether the kernel can execute the file open as fd: on a file system not
 * mounted noexec, a "#!" line (with Unix line endings) naming an
 * interpreter that exists and is executable, or an ELF executable for
 * this host, its loader (if any) held to the same rules as an interpreter
 * (interp.h: for env, the program it runs too); anything else fails with
 * ENOEXEC, ENOENT or EACCES at the moment it matters. NULL when it can (or
 * the file cannot be read, which the kernel does not need for a binary),
 * else why not, in why or static. Sets *ret_script when the descriptor
 * must stay open across the exec (a script, or a file it cannot read). */
const char *format_exec_fault(int fd, struct format_interp_cache *cache, bool *ret_script,
			      char *why, size_t n);

/* The interpreter the file open as fd needs (an O_PATH descriptor is read
 * through /proc): a script's "#!" one, or an ELF binary's program
 * interpreter (its dynamic loader). 0 with buf filled, -ENOENT when it
 * needs none, or -errno. */
int format_interpreter(int fd, char *buf, size_t n);

#endif
