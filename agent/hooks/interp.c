/* interp.c - whether the program that runs a hook may be trusted: a
 * script's "#!" interpreter or an ELF hook's loader, and for
 * "#!/usr/bin/env NAME" the program env will run, found as env finds it.
 * Root runs that program with the hook's rights, so it is held to the
 * hook's own rules (trust.c). It stats and walks paths; it never reads a
 * file, runs or logs anything. */
#include "hooks/interp.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* Why the program at path (named label in the reason) may not run a hook,
 * into fault; "" when it may. The hook's working directory is /, so a
 * relative path is taken from there. */
static void program_fault(const char *label, const char *path, char *fault, size_t n)
{
	char full[PATH_MAX + INTERP_LINE_MAX + 2];
	struct trust_walk w;
	struct stat st;
	int r;

	(void)snprintf(full, sizeof(full), "%s%s", path[0] == '/' ? "" : "/", path);
	fault[0] = '\0';
	if (stat(full, &st) < 0) {
		(void)snprintf(fault, n, "%s %s", label,
			       errno == ENOENT || errno == ENOTDIR ? "does not exist" : "cannot be examined");
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		(void)snprintf(fault, n, "%s is not a regular file", label);
		return;
	}
	if (faccessat(AT_FDCWD, full, X_OK, AT_EACCESS) < 0) {
		(void)snprintf(fault, n, "%s is not executable", label);
		return;
	}
	r = trust_walk(full, &w);
	if (r < 0) {
		(void)snprintf(fault, n, "%s cannot be examined", label);
		return;
	}
	(void)close(w.fd);
	if (w.fault[0])
		(void)snprintf(fault, n, "%s: %s", label, w.fault);
	else if (!trust_owner_ok(w.st.st_uid))
		(void)snprintf(fault, n, "%s is not owned by root", label);
	else if (w.st.st_mode & S_IWGRP)
		(void)snprintf(fault, n, "%s is group-writable", label);
	else if (w.st.st_mode & S_IWOTH)
		(void)snprintf(fault, n, "%s is world-writable", label);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* The program "env ARG" runs, as env reads ARG. A "#!" line hands env its
 * argument as one word: with "-S" (--split-string) env splits the words
 * after it, else the whole argument is one word. Words of the form
 * NAME=VALUE before the program are assignments. False, with the reason in
 * why, when env would run nothing or it cannot be told for sure (another
 * option, an escape, a quote or a variable in the words). */
static bool env_program(const char *arg, char *prog, size_t n, char *why, size_t wn)
{
	const char *p = arg;
	bool split = false;

	if (strncmp(p, "-S", 2) == 0) {
		split = true;
		p += 2;
	} else if (strncmp(p, "--split-string", 14) == 0 && (p[14] == '=' || is_blank(p[14]))) {
		split = true;
		p += 15;
	}
	for (;;) {
		size_t len;

		while (split && is_blank(*p))
			p++;
		len = split ? strcspn(p, " \t") : strlen(p);
		if (len == 0) {
			(void)snprintf(why, wn, "names no program for env to run");
			return false;
		}
		if (p[0] == '-' || memchr(p, '\\', len) || memchr(p, '$', len) || memchr(p, '\'', len) ||
		    memchr(p, '"', len)) {
			(void)snprintf(why, wn, "leaves it unclear which program env runs: "
				       "name the interpreter by its full path");
			return false;
		}
		if (!split && strpbrk(p, " \t")) {
			(void)snprintf(why, wn, "hands env '%s' as one program name: split it with 'env -S'", p);
			return false;
		}
		if (!memchr(p, '=', len)) {
			if (len >= n) {
				(void)snprintf(why, wn, "names a program too long for env");
				return false;
			}
			memcpy(prog, p, len);
			prog[len] = '\0';
			return true;
		}
		if (!split) {
			(void)snprintf(why, wn, "names no program for env to run");
			return false;
		}
		p += len;   /* an assignment */
	}
}

/* Why the program env runs for arg, searched for on search_path, may not
 * run a hook, into fault. */
static void env_target_fault(const char *env, const char *arg, const char *search_path, char *fault, size_t n)
{
	char prog[INTERP_LINE_MAX], label[PATH_MAX + 2 * INTERP_LINE_MAX], why[INTERP_LINE_MAX];
	const char *dir = search_path;

	if (!env_program(arg, prog, sizeof(prog), why, sizeof(why))) {
		(void)snprintf(fault, n, "'#!%s%s%s' %s", env, arg[0] ? " " : "", arg, why);
		return;
	}
	if (strchr(prog, '/')) {
		(void)snprintf(label, sizeof(label), "env's interpreter '%s'", prog);
		program_fault(label, prog, fault, n);
		return;
	}
	/* As env's execvp: the first executable file of that name on PATH.
	 * Every directory searched before it could take its place. */
	while (*dir) {
		size_t len = strcspn(dir, ":");
		char path[PATH_MAX], full[PATH_MAX + INTERP_LINE_MAX];
		struct trust_walk w;
		struct stat st;
		int r;

		(void)snprintf(path, sizeof(path), "%.*s", (int)len, dir);
		dir += len + (dir[len] == ':');
		r = trust_walk(path, &w);
		if (r == -ENOENT || r == -ENOTDIR)
			continue;
		if (r < 0) {
			(void)snprintf(fault, n, "env's interpreter '%s': PATH directory '%s' cannot be examined",
				       prog, path);
			return;
		}
		(void)close(w.fd);
		if (!S_ISDIR(w.st.st_mode))
			continue;
		if (w.fault[0] || trust_dir_fault(&w.st, path, w.fault, sizeof(w.fault))) {
			(void)snprintf(fault, n, "env's interpreter '%s': %s", prog, w.fault);
			return;
		}
		(void)snprintf(full, sizeof(full), "%s/%s", path, prog);
		if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && faccessat(AT_FDCWD, full, X_OK, AT_EACCESS) == 0) {
			(void)snprintf(label, sizeof(label), "env's interpreter '%s'", full);
			program_fault(label, full, fault, n);
			return;
		}
	}
	(void)snprintf(fault, n, "env's interpreter '%s' is not on the hooks' PATH (%s)", prog, search_path);
}

static bool is_env(const char *interp)
{
	const char *base = strrchr(interp, '/');

	return strcmp(base ? base + 1 : interp, "env") == 0;
}

const char *interp_fault(const char *interp, const char *arg, const char *search_path,
			 struct format_interp_cache *cache)
{
	char key[sizeof(cache->key)], label[INTERP_LINE_MAX + 16];
	bool env = arg && is_env(interp);

	(void)snprintf(key, sizeof(key), "%s\t%s", interp, env ? arg : "");
	if (cache->key[0] && strcmp(cache->key, key) == 0)
		return cache->fault;
	(void)strscpy(cache->key, sizeof(cache->key), key);
	(void)snprintf(label, sizeof(label), "interpreter '%s'", interp);
	program_fault(label, interp, cache->fault, sizeof(cache->fault));
	if (!cache->fault[0] && env)
		env_target_fault(interp, arg, search_path, cache->fault, sizeof(cache->fault));
	return cache->fault;
}
