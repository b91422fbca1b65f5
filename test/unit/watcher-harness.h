/* watcher-harness.h - shared by test-aws.c and test-gcp.c: the round
 * plumbing test (no server: a refused loopback port) and the data-file case
 * loader. The including file defines DATA_DIR, PLUMB_PROVIDER,
 * PLUMB_FIRST_ITEM, struct item and struct data_case first. */
#ifndef SPOT_TEST_WATCHER_HARNESS_H
#define SPOT_TEST_WATCHER_HARNESS_H

struct capture {
	int calls;
	enum imds_result result;
	char error[IMDS_ERROR_MAX];
	bool had_events, had_vm_name;
	struct watcher *free_me;   /* freed from inside the callback */
};

static void on_round(const struct watch_result *r, void *userdata)
{
	struct capture *c = userdata;

	c->calls++;
	c->result = r->result;
	(void)strscpy(c->error, sizeof(c->error), r->error);
	c->had_events = r->events != NULL;
	c->had_vm_name = r->vm_name != NULL;
	if (c->free_me) {
		watcher_free(c->free_me);
		c->free_me = NULL;
	}
}

/* A port on the loopback that nothing listens on: connections are refused
 * at once, so a round fails without any server or timing involved. */
static char *refused_url(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t n = sizeof(sa);
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &n), 0);
	close(fd);
	return xasprintf("http://127.0.0.1:%u//", (unsigned)ntohs(sa.sin_port));
}

static void run_until(sd_event *e, const struct capture *c, int calls)
{
	while (c->calls < calls)
		assert_true(sd_event_run(e, UINT64_MAX) >= 0);
}

/* The round plumbing without a metadata service: one callback per round,
 * failures named by their item, -EBUSY while in flight, and freeing the
 * watcher mid-round or from its callback is safe. */
static void test_round_plumbing(void **state)
{
	struct capture c = { 0 };
	struct watcher *w = NULL;
	struct imds *m;
	sd_event *e;
	char *url = refused_url();

	assert_true(sd_event_new(&e) >= 0);
	assert_int_equal(imds_new(e, &m), 0);

	assert_int_equal(watcher_new(PROVIDER_AZURE, m, url, &w), -EOPNOTSUPP);
	assert_int_equal(watcher_new(PROVIDER_AUTO, m, url, &w), -EOPNOTSUPP);
	assert_int_equal(watcher_new(PLUMB_PROVIDER, NULL, url, &w), -EINVAL);
	assert_int_equal(watcher_new(PLUMB_PROVIDER, m, "", &w), -EINVAL);
	assert_int_equal(watcher_new(PLUMB_PROVIDER, m, "//", &w), -EINVAL);
	assert_null(w);

	assert_int_equal(watcher_new(PLUMB_PROVIDER, m, url, &w), 0);
	assert_false(watcher_rebalance_recommended(w));
	for (int round = 1; round <= 2; round++) {
		assert_int_equal(watcher_poll(w, 5 * USEC_PER_SEC, on_round, &c), 0);
		assert_int_equal(watcher_poll(w, 5 * USEC_PER_SEC, on_round, &c), -EBUSY);
		run_until(e, &c, round);
		assert_int_equal(c.calls, round);
		assert_int_equal(c.result, IMDS_RESULT_TRANSPORT);
		if (strncmp(c.error, PLUMB_FIRST_ITEM ": ", strlen(PLUMB_FIRST_ITEM) + 2) != 0)
			fail_msg("error '%s' does not name '%s'", c.error, PLUMB_FIRST_ITEM);
		assert_false(c.had_events);
		assert_false(c.had_vm_name);
	}

	/* Freed with a round in flight: the callback never comes. */
	assert_int_equal(watcher_poll(w, 5 * USEC_PER_SEC, on_round, &c), 0);
	watcher_free(w);
	assert_false(imds_busy(m, IMDS_SLOT_POLL));
	assert_false(imds_busy(m, IMDS_SLOT_IDENTITY));
	assert_true(sd_event_run(e, 0) >= 0);
	assert_int_equal(c.calls, 2);

	/* Freed from its own callback. */
	assert_int_equal(watcher_new(PLUMB_PROVIDER, m, url, &w), 0);
	c.free_me = w;
	assert_int_equal(watcher_poll(w, 5 * USEC_PER_SEC, on_round, &c), 0);
	run_until(e, &c, 3);
	assert_null(c.free_me);
	watcher_free(NULL);

	imds_free(m);
	sd_event_unref(e);
	free(url);
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds a test per file of item's directory ending in ext; returns how many. */
static size_t add_cases(struct CMUnitTest **tests, size_t *n, const struct item *item,
			const char *ext, CMUnitTestFunction fn)
{
	char *dir = xasprintf("%s/%s", DATA_DIR, item->dir), **names = NULL;
	size_t n_names = 0;
	struct dirent *de;
	DIR *d;

	d = opendir(dir);
	if (!d) {
		fprintf(stderr, "cannot open '%s' (run from the top directory): %s\n", dir,
			strerror(errno));
		exit(EXIT_FAILURE);
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !str_endswith(de->d_name, ext))
			continue;
		names = xrealloc(names, (n_names + 1) * sizeof(*names));
		names[n_names++] = xasprintf("%s/%s", dir, de->d_name);
	}
	closedir(d);
	qsort(names, n_names, sizeof(*names), compare_names);

	*tests = xrealloc(*tests, (*n + n_names) * sizeof(**tests));
	for (size_t i = 0; i < n_names; i++) {
		struct data_case *c = xmalloc(sizeof(*c));

		c->path = names[i];
		c->item = item;
		(*tests)[(*n)++] = (struct CMUnitTest){
			.name = names[i],
			.test_func = fn,
			.initial_state = c,
		};
	}
	free(names);  /* the strings live on in the cases */
	free(dir);
	return n_names;
}

#endif
