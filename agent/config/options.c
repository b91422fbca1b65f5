/* options.c - the one table of options: every option, config key, default,
 * range and help line, and the names of the enums it takes. Adding an
 * option is adding a row here (and its field in struct config); the
 * parsers, the command line and the printers follow the table. */
#include "config/options.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Enum fields of struct config are stored through an int. */
_Static_assert(sizeof(enum provider) == sizeof(int), "enum provider is not int-sized");
_Static_assert(sizeof(enum log_format) == sizeof(int), "enum log_format is not int-sized");

static const char *provider_name(int v)
{
	return provider_to_string((enum provider)v);
}

static int provider_parse(const char *s, int *ret)
{
	enum provider p;
	int r = provider_from_string(s, &p);

	if (r < 0)
		return r;
	*ret = (int)p;
	return 0;
}

static const char *event_type_name(int v)
{
	return event_type_to_string((enum event_type)v);
}

static int event_type_parse(const char *s, int *ret)
{
	enum event_type t = event_type_from_string(s);

	if (t == EVENT_TYPE_INVALID)
		return -EINVAL;
	*ret = (int)t;
	return 0;
}

static const char *log_format_name(int v)
{
	return log_format_to_string((enum log_format)v);
}

static int log_format_parse(const char *s, int *ret)
{
	enum log_format f;
	int r = log_parse_format(s, &f);

	if (r < 0)
		return r;
	*ret = (int)f;
	return 0;
}

static const int provider_values[] = { PROVIDER_AZURE, PROVIDER_AWS, PROVIDER_GCP, PROVIDER_AUTO };
static const struct enum_desc provider_desc = {
	provider_values, ELEMENTSOF(provider_values), provider_name, provider_parse,
};

static const int event_type_values[] = {
	EVENT_PREEMPT, EVENT_TERMINATE, EVENT_REBOOT, EVENT_REDEPLOY, EVENT_FREEZE, EVENT_SHUTDOWN,
};
static const struct enum_desc event_type_desc = {
	event_type_values, ELEMENTSOF(event_type_values), event_type_name, event_type_parse,
};

static const int log_format_values[] = {
	LOG_FORMAT_AUTO, LOG_FORMAT_TEXT, LOG_FORMAT_JSON, LOG_FORMAT_JOURNAL,
};
static const struct enum_desc log_format_desc = {
	log_format_values, ELEMENTSOF(log_format_values), log_format_name, log_format_parse,
};

static const int log_level_values[] = { LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARNING, LOG_ERR };
static const struct enum_desc log_level_desc = {
	log_level_values, ELEMENTSOF(log_level_values), log_level_to_string, log_parse_level,
};

#define CFG(field) offsetof(struct config, field)

/* The one table: every option, config key, default and help line. */
const struct option_def option_table[] = {
	{ "config", 'c', OPT_PATH, OPT_CMDLINE, 0, 0, PATH_MAX - 1, CONFIG_DEFAULT_PATH, "FILE",
	  "config file, command line only; a missing default file means defaults, a "
	  "missing named file is an error", NULL, NULL, NULL },
	{ "provider", 0, OPT_ENUM, OPT_RESTART, CFG(provider), 0, 0, "azure", "NAME",
	  "cloud whose metadata service is watched; auto probes them", &provider_desc, NULL, NULL },
	{ "imds-url", 0, OPT_URL, OPT_UNSET | OPT_RESTART, CFG(imds_url), 0, CONFIG_URL_MAX, NULL, "URL",
	  "base URL of the metadata service, for tests and simulators; unset means "
	  CONFIG_IMDS_URL_DEFAULT ", the address every provider answers on (no DNS needed "
	  "during a shutdown)", NULL, NULL, NULL },
	{ "hooks-dir", 0, OPT_PATH, 0, CFG(hooks_dir), 0, PATH_MAX - 1, CONFIG_DEFAULT_HOOKS, "DIR",
	  "hook directory; its files run one after another in byte order of their names",
	  NULL, NULL, NULL },
	{ "hooks-lib-dir", 0, OPT_PATH, OPT_NONE, CFG(hooks_lib_dir), 0, PATH_MAX - 1,
	  CONFIG_DEFAULT_LIB, "DIR",
	  "packaged hooks, merged with the hook directory by file name: the hook "
	  "directory wins and a link to /dev/null there masks; 'none' disables the "
	  "merge (for tests and packaging)", NULL, NULL, NULL },
	{ "state-dir", 0, OPT_PATH, OPT_RESTART, CFG(state_dir), 0, PATH_MAX - 1, CONFIG_DEFAULT_STATE, "DIR",
	  "persistent state (state.json)", NULL, NULL, NULL },
	{ "listen", 0, OPT_LISTEN, OPT_RESTART, CFG(listen), 0, CONFIG_LISTEN_MAX, CONFIG_DEFAULT_LISTEN,
	  "ADDR:PORT",
	  "HTTP endpoint (/healthz, /readyz, /v1/status, /metrics), ADDR:PORT or "
	  "[IPV6]:PORT; 'none' disables it; on an address that is not loopback only "
	  "/healthz and /readyz unless exposed", NULL, NULL, NULL },
	{ "expose-metrics", 0, OPT_BOOL, 0, CFG(expose_metrics), 0, 0, "no", NULL,
	  "also serve /metrics when listen is not a loopback address", NULL, NULL, NULL },
	{ "expose-status", 0, OPT_BOOL, 0, CFG(expose_status), 0, 0, "no", NULL,
	  "also serve /v1/status (hook output, paths, event ids) when listen is not a "
	  "loopback address", NULL, NULL, NULL },
	{ "poll-interval", 0, OPT_UINT, 0, CFG(poll_interval_ms), CONFIG_POLL_MIN_MS,
	  CONFIG_POLL_MAX_MS, "1000", "MS", "metadata poll period in milliseconds", NULL,
	  "Azure IMDS allows about 5 requests per second", NULL },
	{ "vm-name", 0, OPT_STRING, OPT_UNSET | OPT_RESTART, CFG(vm_name), 0, CONFIG_VM_NAME_MAX, NULL, "NAME",
	  "this VM's name as events list it; set only to override, unset means it is "
	  "asked from the metadata service", NULL, NULL, "taken from the metadata service" },
	{ "events", 0, OPT_EVENTS, 0, CFG(events_mask), 0, 0, "Preempt,Terminate,Shutdown", "LIST",
	  "comma-separated event types that trigger the hooks: '+Type' adds to the default, "
	  "'!Type' takes one out of it; plain names replace it, and such a list names "
	  "Preempt or drops it with '!Preempt'", &event_type_desc, NULL, NULL },
	{ "margin", 0, OPT_UINT, 0, CFG(margin_sec), 0, 600, "2", "SECONDS",
	  "the hook chain must end this long before the event's NotBefore", NULL, NULL, NULL },
	{ "gcp-preempt-notice", 0, OPT_UINT, 0, CFG(gcp_preempt_notice_sec), 1, 600, "30", "SECONDS",
	  "GCP: time from a preemption notice to the hard power-off (150 with "
	  "preemptionNoticeDuration=120s)", NULL, NULL, NULL },
	{ "aws-imds-fallback", 0, OPT_BOOL, 0, CFG(aws_imds_fallback), 0, 0, "yes", NULL,
	  "AWS: read the metadata service without a session token (IMDSv1) when the "
	  "token request is refused or not answered within a second; the token is "
	  "asked again every 5 minutes", NULL, NULL, NULL },
	{ "aws-lifecycle-hook", 0, OPT_NAME, OPT_UNSET, CFG(aws_lifecycle_hook), 0, CONFIG_HOOK_NAME_MAX,
	  NULL, "NAME",
	  "AWS: the Auto Scaling termination lifecycle hook this instance completes: "
	  "heartbeats while the hooks run, CompleteLifecycleAction after them; unset "
	  "means none", NULL, NULL, "no lifecycle hook is completed" },
	{ "aws-autoscaling-url", 0, OPT_URL, OPT_UNSET, CFG(aws_autoscaling_url), 0, CONFIG_URL_MAX, NULL,
	  "URL",
	  "AWS: the Auto Scaling API endpoint (VPC endpoints, other partitions, tests); "
	  "unset means https://autoscaling.REGION.amazonaws.com", NULL, NULL,
	  "https://autoscaling.REGION.amazonaws.com" },
	{ "aws-heartbeat-interval", 0, OPT_UINT, 0, CFG(aws_heartbeat_interval_sec), 0, 7200, "0",
	  "SECONDS",
	  "AWS: period of RecordLifecycleActionHeartbeat while the hooks run; 0 means "
	  "a third of aws-heartbeat-timeout, at least 10 s and at most 10 minutes", NULL, NULL, NULL },
	{ "aws-heartbeat-timeout", 0, OPT_UINT, 0, CFG(aws_heartbeat_timeout_sec), 30, 7200, "3600",
	  "SECONDS",
	  "AWS: the lifecycle hook's heartbeat timeout, which the metadata service does "
	  "not show: the notice the hooks get for a hooked termination", NULL, NULL, NULL },
	{ "hook-timeout", 0, OPT_UINT, 0, CFG(hook_timeout_sec), 0, 3600, "0", "SECONDS",
	  "upper bound for any single hook; 0 means only the deadline", NULL, NULL, NULL },
	{ "drain", 0, OPT_UINT, 0, CFG(drain_sec), 0, 3600, "10", "SECONDS",
	  "readiness drain: an acknowledgement is not sent sooner than this after /readyz "
	  "turned 503 (never later than the deadline); 0 sends it as soon as the hooks are done",
	  NULL, NULL, NULL },
	{ "approve-policy", 0, OPT_POLICIES, 0, CFG(ack_policy), 0, 0, "after-hooks", "POLICY",
	  "when the acknowledgement goes out: after-hooks, at-once (on sight, while the hooks "
	  "run) or never, for every event type, then Type:policy items for one "
	  "(after-hooks,Reboot:at-once)", NULL, NULL, NULL },
	{ "approve", 0, OPT_BOOL, 0, CFG(approve), 0, 0, "yes", NULL,
	  "approve the event after the hooks (Azure StartRequests); --no-approve, or "
	  "'approve = no' in the file, does not", NULL, NULL, NULL },
	{ "log-format", 0, OPT_ENUM, 0, CFG(log_format), 0, 0, "auto", "FORMAT",
	  "log output; auto is journal under systemd, else text", &log_format_desc, NULL, NULL },
	{ "log-level", 0, OPT_ENUM, 0, CFG(log_level), 0, 0, "info", "LEVEL",
	  "most verbose level logged", &log_level_desc, NULL, NULL },
	{ "remote-write-url", 0, OPT_URL, OPT_UNSET, CFG(remote_write_url), 0, CONFIG_URL_MAX, NULL, "URL",
	  "Prometheus remote-write receiver the eviction's record is sent to (Prometheus "
	  "/api/v1/write, Mimir, Thanos, Cortex, VictoriaMetrics); unset sends nothing", NULL, NULL, NULL },
	{ "remote-write-bearer-token-file", 0, OPT_PATH, OPT_UNSET, CFG(remote_write_bearer_token_file), 0,
	  PATH_MAX - 1, NULL, "FILE",
	  "file holding the bearer token for remote-write-url, read at start and on SIGHUP", NULL, NULL, NULL },
	{ "remote-write-basic-auth-file", 0, OPT_PATH, OPT_UNSET, CFG(remote_write_basic_auth_file), 0,
	  PATH_MAX - 1, NULL, "FILE",
	  "file holding user:password for remote-write-url (basic auth), read at start and on SIGHUP; "
	  "not together with a bearer token file", NULL, NULL, NULL },
	{ "remote-write-label", 0, OPT_LIST, 0, CFG(remote_write_labels), 0, CONFIG_LABEL_MAX, NULL,
	  "NAME=VALUE",
	  "a label of every series of the record, beside the instance's own; may repeat, a later one "
	  "of the same name wins, an empty value drops those given before", NULL, NULL, NULL },
	{ "push-url", 0, OPT_URL, OPT_UNSET, CFG(push_url), 0, CONFIG_URL_MAX, NULL, "URL",
	  "Prometheus Pushgateway that also gets the latest eviction's values, one group per "
	  "instance, deleted when the VM recovers; unset pushes nothing", NULL, NULL, NULL },
	{ "warn-only", 0, OPT_BOOL, OPT_CMDLINE | OPT_CHECK, 0, 0, 0, NULL, NULL,
	  "check: a hook file that would not run, or no hook at all, is only warned about, "
	  "and check still exits 0", NULL, NULL, NULL },
	{ "type", 0, OPT_ENUM, OPT_CMDLINE | OPT_DRILL, 0, 0, 0, "Preempt", "TYPE",
	  "drill: type of the synthetic event", &event_type_desc, NULL, NULL },
	{ "notice", 0, OPT_UINT, OPT_CMDLINE | OPT_DRILL, 0, 1, 3600, "30", "SECONDS",
	  "drill: seconds from now to the synthetic event's NotBefore", NULL, NULL, NULL },
	{ "sandbox", 0, OPT_BOOL, OPT_CMDLINE | OPT_DRILL, 0, 0, 0, NULL, NULL,
	  "drill: run the hooks through systemd-run inside the sandbox of the installed "
	  "spot-agent.service, as an eviction runs them", NULL, NULL, NULL },
	{ "help", 'h', OPT_HELP, OPT_CMDLINE, 0, 0, 0, NULL, NULL, "show this help and exit",
	  NULL, NULL, NULL },
	{ "version", 0, OPT_VERSION, OPT_CMDLINE, 0, 0, 0, NULL, NULL,
	  "show the version and exit", NULL, NULL, NULL },
};

const size_t option_table_n = ELEMENTSOF(option_table);
_Static_assert(ELEMENTSOF(option_table) <= OPTIONS_MAX, "raise OPTIONS_MAX");

const struct option_def *option_find(const char *name)
{
	for (size_t i = 0; i < OPTIONS_N; i++)
		if (strcmp(option_table[i].name, name) == 0)
			return &option_table[i];
	return NULL;
}

bool option_takes_value(const struct option_def *o)
{
	return o->type != OPT_BOOL && o->type != OPT_HELP && o->type != OPT_VERSION;
}

bool option_is_string_type(enum opt_type t)
{
	return t == OPT_PATH || t == OPT_STRING || t == OPT_NAME || t == OPT_URL || t == OPT_LISTEN;
}
