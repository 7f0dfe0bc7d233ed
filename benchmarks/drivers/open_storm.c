/*
 * open_storm: open(PATH, O_RDONLY) + close, N times.
 *
 * The "open" workload of benchmarks/peers.py. glibc's open() is the openat
 * syscall, so each iteration passes through syscalls:sys_enter_openat (and
 * whatever a tracer attached there) once, plus close(2), which no
 * configuration hooks but which still takes the slower syscall-tracing path
 * as soon as any syscall tracepoint is enabled (shared/KERNEL.md).
 *
 * Usage: open_storm N PATH
 * Prints "<elapsed_ns> <count>" on stdout; exits non-zero if an open failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	char *end;
	long count, i;
	long long start;

	if (argc != 3) {
		fprintf(stderr, "usage: open_storm N PATH\n");
		return 2;
	}
	count = strtol(argv[1], &end, 10);
	if (*argv[1] == '\0' || *end != '\0' || count <= 0) {
		fprintf(stderr, "open_storm: N must be a positive integer, not '%s'\n", argv[1]);
		return 2;
	}
	start = now_ns();
	for (i = 0; i < count; i++) {
		int fd = open(argv[2], O_RDONLY);

		if (fd < 0) {
			fprintf(stderr, "open_storm: open %s: %s\n", argv[2], strerror(errno));
			return 1;
		}
		close(fd);
	}
	printf("%lld %ld\n", now_ns() - start, count);
	return 0;
}
