/* main.c - command line, wiring of the modules and exit status; the only
 * place that exits. 0 clean stop, 1 runtime failure, 2 usage or config error.
 * Before READY=1 a fatal error ends the program with one clear line; after
 * it, the agent itself never exits on a runtime error. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "agent.h"
#include "config.h"
#include "drill.h"
#include "hooks.h"
#include "log.h"
#include "logind.h"
#include "loop.h"

#define EXIT_USAGE 2

struct main_ctx {
	const struct cmdline *cmdline;
	struct agent *agent;
};

/* How long a shutdown waits for the hooks: logind's InhibitDelayMaxSec,
 * as its files set it. Shorter than an eviction window, it cuts the chain
 * short when the platform powers the VM off (GCP) or the OS stops. */
static void check_shutdown_delay(const struct config *c)
{
	uint64_t want = 30, usec;
	char source[PATH_MAX];
	int r;

	if ((c->provider == PROVIDER_GCP || c->provider == PROVIDER_AUTO) && c->gcp_preempt_notice_sec > want)
		want = c->gcp_preempt_notice_sec;
	r = logind_read_delay_max(&usec, source, sizeof(source));
	if (r < 0) {
		printf("\n# logind InhibitDelayMaxSec: cannot read '%s': %s\n", source, strerror(-r));
		return;
	}
	if (usec == USEC_INFINITY)
		printf("\n# logind InhibitDelayMaxSec = infinity (%s)\n", source[0] ? source : "default");
	else
		printf("\n# logind InhibitDelayMaxSec = %.1f s (%s)\n", (double)usec / USEC_PER_SEC,
		       source[0] ? source : "logind's default");
	if (usec != USEC_INFINITY && usec < want * USEC_PER_SEC)
		fprintf(stderr, "spot-agent: warning: logind's InhibitDelayMaxSec (%.1f s) is shorter than the "
			"%" PRIu64 " s the hooks may need at a shutdown; the package's "
			"logind.conf.d/zz-spot-agent.conf raises it unless a later drop-in lowers it\n",
			(double)usec / USEC_PER_SEC, want);
}

static int cmd_check(const struct config *c)
{
	struct hook_plan plan = { 0 };
	int r;

	config_print(c, stdout);
	r = hooks_scan(c->hooks_dir, c->hooks_lib_dir, &plan);
	if (r < 0) {
		fprintf(stderr, "spot-agent: cannot read hooks directory '%s': %s\n", c->hooks_dir, strerror(-r));
		return EXIT_USAGE;
	}
	printf("\n# hooks in run order (%zu)\n", plan.n_hooks);
	for (size_t i = 0; i < plan.n_hooks; i++)
		printf("run   %s\n", plan.hooks[i].path);
	printf("\n# skipped files (%zu)\n", plan.n_skips + plan.n_skips_dropped);
	for (size_t i = 0; i < plan.n_skips; i++)
		printf("skip  %s: %s\n", plan.skips[i].path, plan.skips[i].reason);
	if (plan.n_skips_dropped > 0)
		printf("skip  ... and %zu more\n", plan.n_skips_dropped);
	hook_plan_done(&plan);
	check_shutdown_delay(c);
	return 0;
}

static int on_term(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct main_ctx *m = userdata;

	log_info("received %s, stopping", si->ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
	agent_stop(m->agent);
	return 0;
}

static int on_hup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct main_ctx *m = userdata;
	struct config c;

	log_info("received SIGHUP, reloading the configuration");
	(void)sd_notify(false, "RELOADING=1");
	if (config_load(m->cmdline, &c) < 0)
		log_error("config: reload refused, keeping the running configuration");
	else
		agent_reload(m->agent, &c);
	(void)sd_notify(false, "READY=1");
	return 0;
}

static int cmd_run(const struct cmdline *cl, struct config *c)
{
	struct main_ctx m = { .cmdline = cl };
	struct hook_plan plan = { 0 };
	sd_event *e = NULL;
	int r;

	/* An unreadable hook directory is a configuration error, as in
	 * 'check': exit 2, so systemd does not restart us in a loop. */
	r = hooks_scan(c->hooks_dir, c->hooks_lib_dir, &plan);
	hook_plan_done(&plan);
	if (r < 0) {
		fprintf(stderr, "spot-agent: cannot read hooks directory '%s' or '%s': %s\n", c->hooks_dir,
			c->hooks_lib_dir, strerror(-r));
		return EXIT_USAGE;
	}
	r = loop_new(&e);
	if (r < 0) {
		log_errno(r, "loop: cannot create the event loop");
		return EXIT_FAILURE;
	}
	r = agent_new(e, c, &m.agent);
	if (r < 0) {
		sd_event_unref(e);
		return EXIT_FAILURE;
	}
	if ((r = loop_add_signal(e, SIGTERM, on_term, &m)) < 0 ||
	    (r = loop_add_signal(e, SIGINT, on_term, &m)) < 0 ||
	    (r = loop_add_signal(e, SIGHUP, on_hup, &m)) < 0) {
		log_errno(r, "loop: cannot watch signals");
		agent_free(m.agent);
		sd_event_unref(e);
		return EXIT_FAILURE;
	}
	(void)agent_start(m.agent);
	/* Ready once config, state, hooks and the listener are up; the first
	 * IMDS answer can take minutes and is not waited for. */
	(void)sd_notify(false, "READY=1");
	log_info("spot-agent " SPOT_VERSION " started");

	r = loop_run(e);
	agent_free(m.agent);
	sd_event_unref(e);
	if (r < 0) {
		log_errno(r, "loop: failed");
		return EXIT_FAILURE;
	}
	return r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

int main(int argc, char **argv)
{
	struct cmdline cl = { 0 };
	struct config c;
	int r;

	/* The time zone is read now, not at the first log line of an
	 * eviction (localtime would open /etc/localtime on the way to a hook). */
	tzset();
	log_setup(LOG_FORMAT_AUTO, LOG_INFO);
	if (config_parse_args(argc, argv, &cl) < 0)
		return EXIT_USAGE;
	switch (cl.command) {
	case COMMAND_HELP:
		config_usage(stdout);
		cmdline_done(&cl);
		return EXIT_SUCCESS;
	case COMMAND_VERSION:
		printf("spot-agent %s\n", SPOT_VERSION);
		cmdline_done(&cl);
		return EXIT_SUCCESS;
	default:
		break;
	}
	if (config_load(&cl, &c) < 0) {
		cmdline_done(&cl);
		return EXIT_USAGE;
	}
	log_setup(cl.command == COMMAND_RUN ? c.log_format : LOG_FORMAT_TEXT, c.log_level);

	switch (cl.command) {
	case COMMAND_CHECK:
		r = cmd_check(&c);
		break;
	case COMMAND_DRILL:
		r = drill_run(&c, cl.drill_type, cl.drill_notice_sec, stdout);
		r = r < 0 ? EXIT_FAILURE : r;
		break;
	default:
		r = cmd_run(&cl, &c);
		break;
	}
	config_done(&c);
	cmdline_done(&cl);
	return r;
}
