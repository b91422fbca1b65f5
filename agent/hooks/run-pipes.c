/* run-pipes.c - a run's pipes: the event written to the hook's stdin as
 * fast as the pipe takes it, and its stdout and stderr read without
 * blocking into output.c, a bounded amount per wakeup. A pipe at its end
 * is closed, nothing more: it never signals, reaps or ends the run. */
#include "hooks/run-internal.h"

#include <errno.h>
#include <unistd.h>

/* Reads what is there in one pipe without blocking, at most max bytes;
 * at EOF (or an error) the pipe is closed. */
static void read_pipe(struct run_pipe *p, size_t max)
{
	char buf[16384];
	size_t total = 0;

	while (p->fd >= 0 && total < max) {
		ssize_t k = read(p->fd, buf, sizeof(buf));

		if (k > 0) {
			hook_output_feed(&p->run->out, p->stream, buf, (size_t)k);
			total += (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			return;
		hook_output_flush(&p->run->out, p->stream);
		close_source(&p->source, &p->fd);
	}
}

/* Both pipes: what the hook wrote last comes out before its end. */
void read_output(struct hook_run *run, size_t max)
{
	for (size_t i = 0; i < ELEMENTSOF(run->pipes); i++)
		read_pipe(&run->pipes[i], max);
}

void flush_output(struct hook_run *run)
{
	for (size_t i = 0; i < ELEMENTSOF(run->pipes); i++)
		hook_output_flush(&run->out, run->pipes[i].stream);
}

void close_output(struct hook_run *run)
{
	for (size_t i = 0; i < ELEMENTSOF(run->pipes); i++)
		close_source(&run->pipes[i].source, &run->pipes[i].fd);
}

int on_output(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	/* A bounded amount per wakeup keeps a chatty hook from starving the loop. */
	read_pipe(userdata, 4 * 16384);
	return 0;
}

int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct hook_run *run = userdata;

	while (run->stdin_off < run->stdin_len) {
		ssize_t k = write(run->stdin_fd, run->stdin_json + run->stdin_off,
				  run->stdin_len - run->stdin_off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			return 0;
		if (k <= 0)
			break;  /* EPIPE: the hook does not read its stdin, fine */
		run->stdin_off += (size_t)k;
	}
	close_source(&run->stdin_source, &run->stdin_fd);
	return 0;
}
