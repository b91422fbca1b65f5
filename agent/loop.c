/* loop.c - the agent's single wait point. Everything that waits - IMDS
 * sockets and timers, the HTTP endpoint, hook processes and their pipes,
 * deadlines, signals and the watchdog - is a source on this sd-event loop;
 * nothing else in the program may sleep or block. */
#include "loop.h"

#include <errno.h>
#include <signal.h>

int loop_new(sd_event **ret)
{
	sd_event *e = NULL;
	sigset_t mask;
	int r;

	/* Signals become events; children get an empty mask back in the hook
	 * runner before exec. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -errno;
	/* A hook that closes its stdin early must not kill the agent. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		return -errno;

	r = sd_event_default(&e);
	if (r < 0)
		return r;
	/* WATCHDOG=1 at half of WATCHDOG_USEC, only when systemd set it. */
	r = sd_event_set_watchdog(e, 1);
	if (r < 0) {
		sd_event_unref(e);
		return r;
	}
	*ret = e;
	return 0;
}

int loop_add_signal(sd_event *e, int sig, sd_event_signal_handler_t handler, void *userdata)
{
	return sd_event_add_signal(e, NULL, sig, handler, userdata);
}

int loop_run(sd_event *e)
{
	return sd_event_loop(e);
}
