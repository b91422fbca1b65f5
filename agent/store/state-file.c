/* state-file.c - the evictions on disk. A save renders the records
 * (state-text.c), writes them over the spare file
 * in place and exchanges it with state.json; the fsyncs follow in the same
 * loop turn. Every file carries a save counter and a checksum of its body,
 * so a load tells a torn state.json (the machine died before it reached
 * the disk) from a good one and falls back to the spare, which holds the
 * previous save: before a save overwrites the spare, whatever fsync the
 * previous save still owed is paid, so at every moment one of the two
 * files is whole on disk. It never logs (callers do) and never trusts the
 * file: what the writer would not write is refused.
 * The text, its frame and its checksum are state-text.c's. */
#include "store/state-file-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* ---- reading ---- */

/* Reads the file opened as fd into a NUL-terminated buffer (caller frees).
 * Returns the length, or -errno; -EFBIG beyond STATE_FILE_MAX. */
static ssize_t read_bounded(int fd, char **ret)
{
	size_t cap = STATE_FILE_MAX + 1, len = 0;
	char *buf;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADMSG;
	/* Another user's file could say which hooks never run again. */
	if (st.st_uid != geteuid())
		return -EPERM;
	if (st.st_size > STATE_FILE_MAX)
		return -EFBIG;
	buf = xmalloc(cap + 1);
	while (len < cap) {
		ssize_t k = read(fd, buf + len, cap - len);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			free(buf);
			return -errno;
		}
		if (k == 0)
			break;
		len += (size_t)k;
	}
	if (len > STATE_FILE_MAX) {
		free(buf);
		return -EFBIG;
	}
	buf[len] = '\0';
	*ret = buf;
	return (ssize_t)len;
}

/* Opens name in dfd for reading, never through a symbolic link and never
 * blocking on a FIFO in its place: what is not a regular file is refused. */
static int open_file(int dfd, const char *name, char *why, size_t n)
{
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);

	if (fd < 0 && errno == ELOOP) {
		(void)snprintf(why, n, "a symbolic link, which is never followed");
		return -ELOOP;
	}
	return fd < 0 ? -errno : fd;
}

/* Reads and parses one of the two files. */
static int load_file(int dfd, const char *name, struct eviction **ret_items, size_t *ret_n, uint64_t *ret_seq,
		     struct state_load_report *rep, char **ret_text, size_t *ret_len)
{
	char *text = NULL;
	ssize_t len;
	int fd, r;

	fd = open_file(dfd, name, rep->reason, sizeof(rep->reason));
	if (fd < 0)
		return fd;
	len = read_bounded(fd, &text);
	(void)close(fd);
	if (len < 0) {
		if (len == -EBADMSG)
			(void)snprintf(rep->reason, sizeof(rep->reason), "not a regular file");
		else if (len == -EPERM)
			(void)snprintf(rep->reason, sizeof(rep->reason), "owned by another user than the agent's");
		return (int)len;
	}
	r = parse_file(text, (size_t)len, ret_items, ret_n, ret_seq, rep);
	if (r < 0 || !ret_text) {
		free(text);
		return r;
	}
	*ret_text = text;
	*ret_len = (size_t)len;
	return 0;
}

/* Writes the text of a file whose records were partly left out next to it,
 * as it was, for a human to look at. Returns the path (caller frees). */
static char *keep_copy(int dfd, const char *dir, const char *text, size_t len)
{
	uint64_t secs = now_usec(CLOCK_REALTIME) / USEC_PER_SEC;
	char *name = xasprintf("%s.corrupt-%llu", STATE_FILE_NAME, (unsigned long long)secs);
	char *path = NULL;
	int fd;

	fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd >= 0) {
		if (write_all(fd, text, len) == 0 && close(fd) == 0)
			path = xasprintf("%s/%s", dir, name);
		else
			(void)unlinkat(dfd, name, 0);
	}
	free(name);
	return path;
}

/* Moves the bad file out of the way so a human can look at it. Returns the
 * new path (caller frees) or NULL when it could only be removed, or not
 * even that. */
static char *move_aside(int dfd, const char *dir)
{
	uint64_t secs = now_usec(CLOCK_REALTIME) / USEC_PER_SEC;
	char *name = xasprintf("%s.corrupt-%llu", STATE_FILE_NAME, (unsigned long long)secs);
	char *path = NULL;

	if (renameat(dfd, STATE_FILE_NAME, dfd, name) == 0)
		path = xasprintf("%s/%s", dir, name);
	else if (unlinkat(dfd, STATE_FILE_NAME, 0) < 0 && (errno == EISDIR || errno == EPERM))
		(void)unlinkat(dfd, STATE_FILE_NAME, AT_REMOVEDIR);
	free(name);
	return path;
}

/* Temp files of saves of older versions that never reached their rename:
 * nothing reads them, so they go. */
static unsigned remove_stale(int dfd)
{
	size_t prefix = strlen(STATE_FILE_NAME) + 2;   /* ".state.json." */
	unsigned n = 0;
	struct dirent *d;
	DIR *dir;
	int fd;

	fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return 0;
	dir = fdopendir(fd);
	if (!dir) {
		(void)close(fd);
		return 0;
	}
	while ((d = readdir(dir))) {
		if (d->d_name[0] != '.' || strncmp(d->d_name + 1, STATE_FILE_NAME, prefix - 2) != 0 ||
		    d->d_name[prefix - 1] != '.' || strlen(d->d_name) != prefix + 6)
			continue;
		if (unlinkat(dfd, d->d_name, 0) == 0)
			n++;
	}
	closedir(dir);
	return n;
}

void state_load_report_done(struct state_load_report *rep)
{
	free(rep->moved);
	free(rep->kept);
	cJSON_Delete(rep->extra);
	memset(rep, 0, sizeof(*rep));
}

int state_load(const char *dir, struct records *recs, struct state_load_report *rep)
{
	struct eviction *items = NULL;
	size_t n = 0, len = 0;
	uint64_t seq = 0;
	char *text = NULL;
	int dfd, r;

	memset(rep, 0, sizeof(*rep));
	records_replace(recs, NULL, 0);
	if (!dir)
		return 0;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT ? 0 : -errno;
	rep->stale_removed = remove_stale(dfd);

	r = load_file(dfd, STATE_FILE_NAME, &items, &n, &seq, rep, &text, &len);
	if (r == -ENOENT) {
		r = 0;
	} else if (r < 0) {
		struct state_load_report spare = { 0 };

		rep->error = r;
		/* The machine may have died before the new state.json reached
		 * the disk: the spare holds the save before it. */
		if (load_file(dfd, STATE_SPARE_NAME, &items, &n, &seq, &spare, NULL, NULL) == 0) {
			rep->from_spare = true;
			rep->dropped = spare.dropped;
			(void)strscpy(rep->dropped_reason, sizeof(rep->dropped_reason), spare.dropped_reason);
			cJSON_Delete(rep->extra);
			rep->extra = spare.extra;
			spare.extra = NULL;
			rep->moved = move_aside(dfd, dir);
			/* The good copy becomes state.json at once: the next save
			 * overwrites the spare. */
			if (renameat(dfd, STATE_SPARE_NAME, dfd, STATE_FILE_NAME) == 0)
				(void)fsync(dfd);
			r = 0;
		} else {
			rep->moved = move_aside(dfd, dir);
			items = NULL;
			n = 0;
			r = 0;
		}
		state_load_report_done(&spare);
	} else if (rep->dropped > 0) {
		rep->kept = keep_copy(dfd, dir, text, len);
	}
	records_replace(recs, items, n);
	(void)close(dfd);
	free(text);
	return r;
}

/* ---- writing ---- */

void state_sync_drop(struct state_sync *sync)
{
	if (sync->fd >= 0)
		(void)close(sync->fd);
	if (sync->dfd >= 0)
		(void)close(sync->dfd);
	sync->fd = sync->dfd = -1;   /* seq stays: it counts every save */
}

int state_sync_finish(struct state_sync *sync)
{
	int r = 0;

	if (sync->fd < 0)
		return 0;
	/* The data first, then the directory that names it. */
	if (fdatasync(sync->fd) < 0 || fsync(sync->dfd) < 0)
		r = -errno;
	state_sync_drop(sync);
	return r;
}

/* Puts the spare file in the place of state.json. An exchange rather than
 * a rename over the old file, and the old file kept as the next save's
 * spare rather than unlinked: ext4 writes a file out at once when it
 * replaces another by rename (auto_da_alloc), and frees an unlinked file's
 * blocks there and then; either cost half a millisecond before the next
 * hook could start. Overwriting the spare in place reuses its blocks. */
static int replace_file(int dfd)
{
	if (renameat2(dfd, STATE_SPARE_NAME, dfd, STATE_FILE_NAME, RENAME_EXCHANGE) == 0)
		return 0;
	/* No state.json yet (the next save makes a new spare), or a file
	 * system without exchange. */
	if ((errno == ENOENT || errno == EINVAL || errno == ENOSYS) &&
	    renameat(dfd, STATE_SPARE_NAME, dfd, STATE_FILE_NAME) == 0)
		return 0;
	return -errno;
}

static int open_state_dir(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0 && errno == ENOENT) {
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return -errno;
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	return dfd < 0 ? -errno : dfd;
}

/* The save counter of the file in dfd, for a writer that has not saved
 * yet: the next save continues from it. */
static uint64_t file_seq(int dfd)
{
	struct state_load_report rep = { 0 };
	struct eviction *items = NULL;
	size_t n = 0;
	uint64_t seq = 0;

	if (load_file(dfd, STATE_FILE_NAME, &items, &n, &seq, &rep, NULL, NULL) == 0)
		for (size_t i = 0; i < n; i++)
			eviction_done(&items[i]);
	free(items);
	state_load_report_done(&rep);
	return seq;
}

int state_save_begin(const struct state_doc *doc, struct state_sync *sync)
{
	char *text = NULL;
	int fd = -1, dfd = -1, r;
	struct stat st;
	size_t len;

	if (!doc->dir)
		return 0;
	r = dfd = open_state_dir(doc->dir);
	if (r < 0)
		goto out;
	/* The spare about to be overwritten is what the last save left as
	 * state.json's predecessor; the last save itself must be whole on
	 * disk before its predecessor goes. */
	r = state_sync_finish(sync);
	if (r < 0)
		goto out;
	/* Never write what a load would refuse: shed output lines first,
	 * and if even the bare records are too large, keep the old file. */
	if (sync->seq == 0)
		sync->seq = file_seq(dfd);
	text = render_seq(doc, ++sync->seq);
	if (!text) {
		r = -EFBIG;
		goto out;
	}
	len = strlen(text);
	fd = openat(dfd, STATE_SPARE_NAME, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		r = -EEXIST;
		goto out;
	}
	r = pwrite_all(fd, text, len, 0);
	if (r < 0)
		goto out;
	if (ftruncate(fd, (off_t)len) < 0) {
		r = -errno;
		goto out;
	}
	r = replace_file(dfd);
	if (r < 0)
		goto out;
	sync->fd = fd;
	sync->dfd = dfd;
	fd = dfd = -1;
	r = 0;
out:
	if (fd >= 0)
		(void)close(fd);
	if (dfd >= 0)
		(void)close(dfd);
	free(text);
	return r;
}

int state_save(const struct state_doc *doc, bool durable)
{
	struct state_sync sync = STATE_SYNC_INIT;
	int r = state_save_begin(doc, &sync);

	if (r < 0)
		return r;
	if (!durable) {
		state_sync_drop(&sync);
		return 0;
	}
	return state_sync_finish(&sync);
}
