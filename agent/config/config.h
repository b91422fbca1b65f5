/* config.h - the option table, the config file and the command line. */
#ifndef SPOT_CONFIG_H
#define SPOT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/event.h"
#include "engine/record.h"
#include "log.h"

#define CONFIG_DEFAULT_PATH     "/etc/spot-agent/spot-agent.conf"
#define CONFIG_DEFAULT_HOOKS    "/etc/spot-agent.d"
#define CONFIG_DEFAULT_LIB      "/usr/lib/spot-agent.d"
#define CONFIG_DEFAULT_STATE    "/var/lib/spot-agent"
#define CONFIG_DEFAULT_PORT     9470
#define CONFIG_DEFAULT_LISTEN   "127.0.0.1:9470"
#define CONFIG_POLL_MIN_MS      200
#define CONFIG_POLL_MAX_MS      60000
#define CONFIG_LINE_MAX         4096   /* longer config lines are an error */
#define CONFIG_FILE_MAX         (64 * 1024)
#define CONFIG_URL_MAX          1024   /* bytes of imds-url */
#define CONFIG_VM_NAME_MAX      255    /* bytes of vm-name */
#define CONFIG_HOOK_NAME_MAX    255    /* bytes of aws-lifecycle-hook */
#define CONFIG_LISTEN_MAX       64     /* bytes of listen */
#define CONFIG_LABEL_MAX        320    /* bytes of one remote-write-label NAME=VALUE */
#define CONFIG_IMDS_URL_DEFAULT "http://169.254.169.254"
/* The address, not metadata.google.internal: name resolution may already be
 * gone when a preemption shuts the VM down. */
#define CONFIG_IMDS_URL_GCP     "http://169.254.169.254"

enum command {
	COMMAND_RUN,
	COMMAND_CHECK,
	COMMAND_DRILL,
	COMMAND_VERSION,
	COMMAND_HELP,
};

/* The effective configuration. Strings are owned (freed by config_done). */
struct config {
	char *config_path;          /* file that was read, NULL if none */
	enum provider provider;
	char *imds_url;             /* NULL means the provider's default */
	char *hooks_dir;
	char *hooks_lib_dir;        /* "" disables the merge with /usr/lib */
	char *state_dir;
	char *listen;               /* "none" disables the endpoint */
	bool expose_metrics;        /* /metrics on a listen address that is not loopback */
	bool expose_status;         /* /v1/status there */
	uint64_t poll_interval_ms;
	char *vm_name;              /* NULL means: ask IMDS */
	unsigned events_mask;       /* bit (1u << enum event_type) per handled type */
	uint64_t margin_sec;
	uint64_t hook_timeout_sec;  /* 0 means: only the deadline */
	uint64_t drain_sec;         /* no acknowledgement sooner after readiness dropped */
	enum ack_policy ack_policy[_EVENT_TYPE_MAX]; /* per event type */
	uint64_t gcp_preempt_notice_sec; /* GCP soft off to hard off */
	bool aws_imds_fallback;     /* IMDSv1 when the token is refused or not answered */
	char *aws_lifecycle_hook;   /* NULL: no lifecycle hook is completed */
	char *aws_autoscaling_url;  /* NULL: https://autoscaling.REGION.amazonaws.com */
	uint64_t aws_heartbeat_interval_sec; /* 0: derived from the heartbeat timeout */
	uint64_t aws_heartbeat_timeout_sec;  /* the hook's HeartbeatTimeout */
	bool approve;
	enum log_format log_format;
	int log_level;              /* syslog priority */
	char *remote_write_url;     /* NULL: the record is not sent */
	char *remote_write_bearer_token_file;  /* NULL: none */
	char *remote_write_basic_auth_file;    /* NULL: none */
	/* The operator's labels of the record: NULL-terminated "NAME=VALUE"
	 * strings, checked, one per name (a later one replaces); NULL none. */
	char **remote_write_labels;
	char *push_url;             /* NULL: no Pushgateway */
};

/* What the command line asked for, before any file is read. */
struct cmdline {
	enum command command;
	char *config_path;          /* owned; the default path when not given */
	bool config_path_given;     /* a named file must exist, the default may not */
	/* drill only */
	enum event_type drill_type;
	uint64_t drill_notice_sec;
	bool drill_sandbox;         /* --sandbox: inside spot-agent.service's sandbox */
	/* check only */
	bool check_warn_only;       /* --warn-only: hooks that would not run only warn */
	/* Option overrides as "key=value" strings, applied after the file. */
	char **overrides;
	size_t n_overrides;
};

/* Parses argv. On a usage error logs one error line and returns -EINVAL
 * (the caller exits 2). */
int config_parse_args(int argc, char **argv, struct cmdline *ret);
void cmdline_done(struct cmdline *cl);

/* Builds the effective config: defaults, then the file, then the overrides.
 * Every error is printed as one line ("FILE:LINE: message" or
 * "option --x: message"); parsing goes on to report them all, and on any
 * error -EINVAL is returned and *ret is left untouched. */
/* Each of those lines is an error record of the logger. On success *ret is
 * overwritten without being freed, so a reload loads into a fresh struct and
 * swaps it in. cl->config_path NULL means no file (the defaults). */
int config_load(const struct cmdline *cl, struct config *ret);
/* The same, with the first error line (and how many followed it, as
 * " (and 2 more errors)") in first_error (n bytes, cut to fit; "" on
 * success) for the caller to show: a refused reload in /v1/status. */
int config_load_report(const struct cmdline *cl, struct config *ret, char *first_error, size_t n);
void config_done(struct config *c);

/* Prints the effective configuration as "key = value" lines and '#'
 * comments: a valid config file that loads back to the same config. */
void config_print(const struct config *c, FILE *f);

/* Prints --help, generated from the option table. */
void config_usage(FILE *f);

/* The IMDS base URL: the configured one or the provider's default. */
const char *config_imds_url(const struct config *c);

#endif
