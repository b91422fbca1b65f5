/* main.c - command line, wiring of the modules and exit status; the only
 * place that exits. 0 clean stop, 1 runtime failure, 2 usage or config error.
 * Before READY=1 a fatal error ends the program with one clear line; after
 * it, the agent itself never exits on a runtime error. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "agent.h"
#include "config/config.h"
#include "drill.h"
#include "hooks/hooks.h"
#include "http/http.h"
#include "log.h"
#include "logind/logind.h"
#include "loop.h"
#include "preflight.h"
#include "sandbox.h"
#include "statedir.h"
#include "store/state-file.h"

#define EXIT_USAGE 2

struct main_ctx {
	const struct cmdline *cmdline;
	struct agent *agent;
};

/* Prints one line of check's report as a config file comment: "# " and
 * the text, control characters (a newline in a file name) as '?', so the
 * whole output stays a config file that reads back the same. */
static void comment(const char *fmt, ...) _printf_(1, 2);
static void comment(const char *fmt, ...)
{
	char line[PREFLIGHT_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	for (char *p = line; *p; p++)
		if (iscntrl((unsigned char)*p))
			*p = '?';
	printf("# %s\n", line);
}

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
	printf("\n");
	if (r < 0) {
		comment("logind InhibitDelayMaxSec: cannot read '%s': %s", source, strerror(-r));
		return;
	}
	if (usec == USEC_INFINITY)
		comment("logind InhibitDelayMaxSec = infinity (%s)", source[0] ? source : "default");
	else
		comment("logind InhibitDelayMaxSec = %.1f s (%s)", (double)usec / USEC_PER_SEC,
			source[0] ? source : "logind's default");
	if (usec != USEC_INFINITY && usec < want * USEC_PER_SEC)
		log_warning("logind: InhibitDelayMaxSec (%.1f s) is shorter than the %" PRIu64 " s the hooks may "
			    "need at a shutdown; the package's logind.conf.d/zz-spot-agent.conf raises it unless a "
			    "later drop-in lowers it", (double)usec / USEC_PER_SEC, want);
}

/* One preflight result: a comment on stdout when fine, one line on stderr
 * when not. Returns 0 or EXIT_USAGE. */
static int report(int r, const char *msg)
{
	if (r >= 0) {
		comment("%s", msg);
		return 0;
	}
	log_error("%s", msg);
	return EXIT_USAGE;
}

/* Hook files meant to run that would not, and a plan with no hook at all:
 * one line each on stderr, errors (warnings with --warn-only, for the rare
 * image that wants it). Returns 0 or EXIT_USAGE. */
static int judge_plan(const struct config *c, const struct hook_plan *plan, bool warn_only)
{
	int prio = warn_only ? LOG_WARNING : LOG_ERR;
	size_t listed = 0;
	bool bad = false;

	for (size_t i = 0; i < plan->n_skips; i++) {
		if (!plan->skips[i].refused)
			continue;
		log_emit(prio, 0, NULL, NULL, "hooks: '%s' would not run: %s", plan->skips[i].path,
			 plan->skips[i].reason);
		listed++;
		bad = true;
	}
	if (plan->n_refused > listed) {
		log_emit(prio, 0, NULL, NULL, "hooks: %zu more hook files would not run", plan->n_refused - listed);
		bad = true;
	}
	if (plan->n_hooks == 0) {
		log_emit(prio, 0, NULL, NULL, "hooks: no hook would run from '%s'%s%s%s: an eviction would run "
			 "nothing", c->hooks_dir, c->hooks_lib_dir && c->hooks_lib_dir[0] ? " or '" : "",
			 c->hooks_lib_dir && c->hooks_lib_dir[0] ? c->hooks_lib_dir : "",
			 c->hooks_lib_dir && c->hooks_lib_dir[0] ? "'" : "");
		bad = true;
	}
	return bad && !warn_only ? EXIT_USAGE : 0;
}

/* The state directory: its trust, and who holds its lock (looked at, never
 * taken: check may run beside the agent). Returns 0 or EXIT_USAGE. */
static int check_state_dir(const struct config *c)
{
	char msg[PREFLIGHT_MSG_MAX];
	pid_t holder = 0;
	int r, rc;

	r = preflight_state_dir(c->state_dir, false, msg, sizeof(msg));
	rc = report(r, msg);
	if (r < 0)
		return rc;
	r = statedir_check(c->state_dir, msg, sizeof(msg));
	if (r < 0)
		return report(r, msg);
	r = statedir_lock_holder(c->state_dir, &holder);
	if (r > 0 && holder > 0)
		comment("%s, and a spot-agent runs on it (pid %d)", msg, (int)holder);
	else if (r > 0)
		comment("%s, and a spot-agent runs on it", msg);
	else if (r < 0)
		comment("%s; whether an agent runs on it cannot be told: %s", msg, strerror(-r));
	else
		comment("%s, and no agent runs on it", msg);
	return rc;
}

/* Everything goes to stdout as a config file: the effective configuration,
 * then comments. Problems go to stderr, one line each, all of them. */
static int cmd_check(const struct config *c, bool warn_only)
{
	struct hook_plan plan = { 0 };
	char msg[PREFLIGHT_MSG_MAX];
	int r, rc;

	config_print(c, stdout);
	printf("\n");
	r = preflight_hooks_dirs(c->hooks_dir, c->hooks_lib_dir, msg, sizeof(msg));
	rc = report(r, msg);
	rc = check_state_dir(c) ? EXIT_USAGE : rc;
	r = preflight_listen(c->listen, msg, sizeof(msg));
	rc = report(r, msg) ? EXIT_USAGE : rc;
	if (r >= 0 && strcmp(c->listen, "none") != 0 && !http_listen_is_loopback(c->listen))
		log_warning("listen '%s' is not a loopback address: a connection that arrives on a loopback "
			    "address gets every path, any other only /healthz, /readyz%s%s; other paths answer 404",
			    c->listen, c->expose_metrics ? ", /metrics" : "", c->expose_status ? ", /v1/status" : "");
	r = hooks_scan(c->hooks_dir, c->hooks_lib_dir, &plan);
	if (r < 0) {
		if (rc == 0)
			log_errno(r, "cannot read hooks directory '%s'", c->hooks_dir);
		rc = EXIT_USAGE;
	} else {
		printf("\n");
		comment("hooks in run order (%zu)", plan.n_hooks);
		for (size_t i = 0; i < plan.n_hooks; i++)
			comment("run   %s", plan.hooks[i].path);
		printf("\n");
		comment("skipped files (%zu)", plan.n_skips + plan.n_skips_dropped);
		for (size_t i = 0; i < plan.n_skips; i++)
			comment("skip  %s: %s", plan.skips[i].path, plan.skips[i].reason);
		if (plan.n_skips_dropped > 0)
			comment("skip  ... and %zu more", plan.n_skips_dropped);
		/* A hooks-dir that is not there is said already. */
		if (rc == 0 || preflight_hooks_dirs(c->hooks_dir, c->hooks_lib_dir, msg, sizeof(msg)) >= 0)
			rc = judge_plan(c, &plan, warn_only) ? EXIT_USAGE : rc;
	}
	hook_plan_done(&plan);
	check_shutdown_delay(c);
	return rc;
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
	char why[STATUS_RELOAD_ERROR_MAX];
	struct config c;

	log_info("received SIGHUP, reloading the configuration");
	(void)sd_notify(false, "RELOADING=1");
	if (config_load_report(m->cmdline, &c, why, sizeof(why)) < 0) {
		log_error("config: reload refused, keeping the running configuration");
		agent_reload_refused(m->agent, why);
	} else {
		agent_reload(m->agent, &c);
	}
	(void)sd_notify(false, "READY=1");
	return 0;
}

/* The daemon, once the state directory is its own. */
static int run_locked(const struct cmdline *cl, struct config *c)
{
	struct main_ctx m = { .cmdline = cl };
	struct hook_plan plan = { 0 };
	sd_event *e = NULL;
	int r;

	r = hooks_scan(c->hooks_dir, c->hooks_lib_dir, &plan);
	hook_plan_done(&plan);
	if (r < 0) {
		log_errno(r, "cannot read hooks directory '%s' or '%s'", c->hooks_dir, c->hooks_lib_dir);
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
		/* A listen address that cannot be bound is the config's fault. */
		return r == -EADDRINUSE || r == -EADDRNOTAVAIL || r == -EACCES ? EXIT_USAGE : EXIT_FAILURE;
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

	r = loop_run(e);
	agent_free(m.agent);
	sd_event_unref(e);
	if (r < 0) {
		log_errno(r, "loop: failed");
		return EXIT_FAILURE;
	}
	return r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

static int cmd_run(const struct cmdline *cl, struct config *c)
{
	char msg[PREFLIGHT_MSG_MAX];
	int lock_fd = -1, r;

	/* A missing or unreadable hook directory, a state directory where
	 * state.json cannot be saved or that others can change, is a
	 * configuration error, as in 'check': exit 2, so systemd does not
	 * restart us in a loop. */
	if (preflight_hooks_dirs(c->hooks_dir, c->hooks_lib_dir, msg, sizeof(msg)) < 0 ||
	    preflight_state_dir(c->state_dir, true, msg, sizeof(msg)) < 0 ||
	    statedir_check(c->state_dir, msg, sizeof(msg)) < 0) {
		log_error("%s", msg);
		return EXIT_USAGE;
	}
	/* One agent per state directory, and the lock comes before anything
	 * that reads the state or kills a previous run's leftovers: a second
	 * agent leaves here having touched nothing. Held until exit;
	 * O_CLOEXEC, so no hook inherits it. */
	r = statedir_lock(c->state_dir, &lock_fd, msg, sizeof(msg));
	if (r < 0) {
		log_error("%s", msg);
		return EXIT_USAGE;
	}
	log_debug("%s", msg);
	r = run_locked(cl, c);
	(void)close(lock_fd);
	return r;
}

/* The config file's errors come before its log-format is known: they are
 * logged in the one the command line names, if it does (the last wins). */
static void log_setup_cmdline(const struct cmdline *cl)
{
	static const char key[] = "log-format=";
	enum log_format f;

	for (size_t i = cl->n_overrides; i-- > 0;)
		if (strncmp(cl->overrides[i], key, sizeof(key) - 1) == 0) {
			if (log_parse_format(cl->overrides[i] + sizeof(key) - 1, &f) == 0)
				log_setup(f, LOG_INFO);
			return;
		}
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
	log_setup_cmdline(&cl);
	if (config_load(&cl, &c) < 0) {
		cmdline_done(&cl);
		return EXIT_USAGE;
	}
	/* check and drill log like the daemon; their reports go to stdout. */
	log_setup(c.log_format, c.log_level);

	switch (cl.command) {
	case COMMAND_CHECK:
		r = cmd_check(&c, cl.check_warn_only);
		break;
	case COMMAND_DRILL: {
		char msg[PREFLIGHT_MSG_MAX];

		if (preflight_hooks_dirs(c.hooks_dir, c.hooks_lib_dir, msg, sizeof(msg)) < 0) {
			log_error("%s", msg);
			r = EXIT_USAGE;
			break;
		}
		if (cl.drill_sandbox) {
			r = sandbox_drill(argc, argv, stdout);
			break;
		}
		r = drill_run(&c, cl.drill_type, cl.drill_notice_sec, stdout);
		r = r < 0 ? EXIT_FAILURE : r;
		break;
	}
	default:
		r = cmd_run(&cl, &c);
		break;
	}
	config_done(&c);
	cmdline_done(&cl);
	return r;
}
