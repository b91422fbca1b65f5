/* sandbox.c - `spot-agent drill --sandbox`: a drill that proves what an
 * eviction will do, run where an eviction runs the hooks. The sandbox is
 * read from the installed unit (systemctl show, drop-ins included), never
 * copied here: only the names of the properties that make it are. The
 * drill runs as a transient service of systemd-run --wait --pipe (a
 * --scope unit cannot take a service's sandbox), its output piped to ours
 * and its exit status passed on. It never runs in the daemon: it blocks. */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "hooks/hooks.h"
#include "log.h"
#include "util.h"

#define EXIT_CANNOT 2
/* systemctl show's answer: a line per property, SystemCallFilter= the
 * longest (a few KiB of system call names). */
#define SHOW_MAX (256 * 1024)

extern char **environ;

/* What makes the unit's sandbox: the file system, devices, kernel and
 * process protections, system calls, address families, capabilities and
 * the user. Names only; the values are the installed unit's. */
static const char *const sandbox_properties[] = {
	"User", "Group", "DynamicUser", "SupplementaryGroups", "UMask",
	"ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateMounts", "PrivateDevices",
	"PrivateNetwork", "PrivateUsers", "PrivateIPC", "ProtectProc", "ProcSubset",
	"ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths", "ExecPaths", "NoExecPaths",
	"TemporaryFileSystem", "BindPaths", "BindReadOnlyPaths",
	"ProtectClock", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
	"ProtectControlGroups", "ProtectHostname", "RestrictNamespaces", "RestrictSUIDSGID",
	"NoNewPrivileges", "MemoryDenyWriteExecute", "RestrictRealtime", "LockPersonality",
	"SystemCallArchitectures", "SystemCallFilter", "SystemCallErrorNumber",
	"RestrictAddressFamilies", "CapabilityBoundingSet", "AmbientCapabilities",
	"DevicePolicy", "DeviceAllow", "IPAddressAllow", "IPAddressDeny",
};

/* Runs argv (a program on PATH), its stdout into buf (at most n - 1
 * bytes, NUL-terminated) when buf is given, else to ours. Returns its exit
 * status, or -errno when it could not be started. */
static int run_program(char *const *argv, char *buf, size_t n)
{
	posix_spawn_file_actions_t fa;
	int pipefd[2] = { -1, -1 }, status, r;
	size_t len = 0;
	pid_t pid;

	r = posix_spawn_file_actions_init(&fa);
	if (r != 0)
		return -r;
	if (buf) {
		if (pipe2(pipefd, O_CLOEXEC) < 0) {
			r = errno;
			goto out;
		}
		r = posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
		if (r != 0)
			goto out;
	}
	r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	if (r != 0)
		goto out;
	if (buf) {
		(void)close(pipefd[1]);
		pipefd[1] = -1;
		for (;;) {
			char sink[4096];
			ssize_t k = len + 1 < n ? read(pipefd[0], buf + len, n - 1 - len) :
						  read(pipefd[0], sink, sizeof(sink));

			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				break;
			if (len + 1 < n)
				len += (size_t)k;
		}
		buf[len] = '\0';
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			r = errno;
			goto out;
		}
	}
	r = 0;
out:
	posix_spawn_file_actions_destroy(&fa);
	if (pipefd[0] >= 0)
		(void)close(pipefd[0]);
	if (pipefd[1] >= 0)
		(void)close(pipefd[1]);
	if (r != 0)
		return -r;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static bool is_sandbox_property(const char *key, size_t len)
{
	for (size_t i = 0; i < ELEMENTSOF(sandbox_properties); i++)
		if (strlen(sandbox_properties[i]) == len && strncmp(sandbox_properties[i], key, len) == 0)
			return true;
	return false;
}

int sandbox_drill(int argc, char **argv, FILE *out)
{
	const size_t n_props = ELEMENTSOF(sandbox_properties);
	char **show = NULL, **run = NULL, *text = NULL, *exe = NULL, *unit = NULL;
	char **props = xcalloc(n_props + 1, sizeof(char *));
	size_t k = 0, n_set = 0;
	const char *load = NULL;
	int r = EXIT_CANNOT;

	if (sd_booted() <= 0) {
		log_error("drill --sandbox: systemd is not running here, so there is no %s sandbox to run "
			  "the hooks in; run 'spot-agent drill' without --sandbox", SANDBOX_UNIT);
		goto out;
	}
	exe = realpath("/proc/self/exe", NULL);
	if (!exe) {
		log_errno(-errno, "drill --sandbox: cannot tell where this program is");
		goto out;
	}

	/* systemctl show --property=A --property=B ... UNIT */
	show = xcalloc(2 * (n_props + 1) + 4, sizeof(char *));
	show[k++] = xstrdup("systemctl");
	show[k++] = xstrdup("show");
	show[k++] = xstrdup("--property=LoadState");
	for (size_t i = 0; i < n_props; i++)
		show[k++] = xasprintf("--property=%s", sandbox_properties[i]);
	show[k++] = xstrdup(SANDBOX_UNIT);
	text = xmalloc(SHOW_MAX);
	r = run_program(show, text, SHOW_MAX);
	if (r != 0) {
		if (r < 0)
			log_errno(r, "drill --sandbox: cannot run systemctl");
		else
			log_error("drill --sandbox: 'systemctl show %s' failed (exit %d)", SANDBOX_UNIT, r);
		r = EXIT_CANNOT;
		goto out;
	}
	/* "Key=value" lines; an unset property is "Key=" and is left out. */
	for (char *line = text, *nl; *line; line = nl ? nl + 1 : line + strlen(line)) {
		char *eq;

		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		eq = strchr(line, '=');
		if (!eq)
			continue;
		if (strncmp(line, "LoadState=", 10) == 0)
			load = eq + 1;
		else if (eq[1] && n_set < n_props && is_sandbox_property(line, (size_t)(eq - line)))
			props[n_set++] = xstrdup(line);
	}
	if (!load || strcmp(load, "loaded") != 0) {
		log_error("drill --sandbox: %s is not installed (LoadState=%s), so there is no sandbox to run "
			  "the hooks in", SANDBOX_UNIT, load ? load : "unknown");
		r = EXIT_CANNOT;
		goto out;
	}

	/* systemd-run ... -- EXE drill [the options but --sandbox] */
	unit = xasprintf("spot-agent-drill-%d", (int)getpid());
	run = xcalloc(2 * n_set + (size_t)argc + 16, sizeof(char *));
	k = 0;
	run[k++] = xstrdup("systemd-run");
	run[k++] = xstrdup("--quiet");
	run[k++] = xstrdup("--wait");
	run[k++] = xstrdup("--pipe");
	run[k++] = xstrdup("--collect");
	run[k++] = xstrdup("--service-type=exec");
	run[k++] = xasprintf("--unit=%s", unit);
	run[k++] = xstrdup("--description=spot-agent drill in the sandbox of " SANDBOX_UNIT);
	run[k++] = xstrdup("--setenv=SPOT_DRILL_SANDBOX=" SANDBOX_UNIT);
	for (size_t i = 0; i < n_set; i++) {
		run[k++] = xstrdup("--property");
		run[k++] = xstrdup(props[i]);
	}
	run[k++] = xstrdup("--");
	run[k++] = xstrdup(exe);
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--sandbox") != 0)
			run[k++] = xstrdup(argv[i]);
	fprintf(out, "drill: in the sandbox of %s (%zu properties, as 'systemctl show' reports them), through "
		"systemd-run --wait --pipe as unit %s.service\n", SANDBOX_UNIT, n_set, unit);
	fflush(out);
	r = run_program(run, NULL, 0);
	if (r < 0) {
		log_errno(r, "drill --sandbox: cannot run systemd-run");
		r = EXIT_CANNOT;
	} else if (r > EXIT_CANNOT) {
		/* The drill killed, or systemd-run's own failure. */
		log_error("drill --sandbox: systemd-run ended with status %d", r);
		r = 1;
	}
out:
	strv_free(show);
	strv_free(run);
	for (size_t i = 0; i < n_set; i++)
		free(props[i]);
	free(props);
	free(text);
	free(exe);
	free(unit);
	return r;
}
