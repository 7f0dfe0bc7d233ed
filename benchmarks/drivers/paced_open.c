/*
 * paced_open: open(PATH) + close at RATE per second for SECONDS, in batches of
 * 100 per slot, sleeping until each slot's time: a sustained load, not a burst.
 *
 * The workload of benchmarks/sustained.py. Falls behind (and says so in its
 * count) only when the machine cannot keep the rate.
 *
 * Usage: paced_open RATE SECONDS PATH
 * Prints "<elapsed_ns> <count>" on stdout; exits non-zero if an open failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH 100

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long rate, seconds, done = 0, i;
	long long start, slot_ns, end, next;

	if (argc != 4 || (rate = atol(argv[1])) < BATCH || (seconds = atol(argv[2])) <= 0) {
		fprintf(stderr, "usage: paced_open RATE(>=%d) SECONDS PATH\n", BATCH);
		return 2;
	}
	slot_ns = 1000000000LL * BATCH / rate;
	start = now_ns();
	end = start + seconds * 1000000000LL;
	for (next = start; next < end; next += slot_ns) {
		long long wait = next - now_ns();

		if (wait > 0) {
			struct timespec ts = { wait / 1000000000LL, wait % 1000000000LL };

			nanosleep(&ts, NULL);
		}
		for (i = 0; i < BATCH; i++) {
			int fd = open(argv[3], O_RDONLY);

			if (fd < 0) {
				fprintf(stderr, "paced_open: open %s: %s\n", argv[3], strerror(errno));
				return 1;
			}
			close(fd);
		}
		done += BATCH;
	}
	printf("%lld %ld\n", now_ns() - start, done);
	return 0;
}
