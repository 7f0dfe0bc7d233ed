/*
 * exec_storm: fork + execve("/bin/true") + waitpid, N times, one child at a time.
 *
 * The workload of benchmarks/exec_storm.py. It is C, not Python, so that the
 * cost measured is the kernel's exec path (and whatever tracing adds to it),
 * not an interpreter's fork. Each child execs at once and the parent waits for
 * it before the next fork, so the storm never has more than one child alive.
 *
 * Usage: exec_storm N
 * Prints "<elapsed_ns> <count>" on stdout; exits non-zero if any child failed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Fork one child that execs /bin/true; returns 0 when it exited with status 0. */
static int spawn_true(void)
{
	char *const argv[] = { "/bin/true", NULL };
	int status;
	pid_t pid = fork();

	if (pid < 0) {
		fprintf(stderr, "exec_storm: fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		execve(argv[0], argv, environ);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0) {
		fprintf(stderr, "exec_storm: waitpid: %s\n", strerror(errno));
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "exec_storm: child %d ended with wait status %d\n", pid, status);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	char *end;
	long count, i;
	long long start;

	if (argc != 2) {
		fprintf(stderr, "usage: exec_storm N\n");
		return 2;
	}
	count = strtol(argv[1], &end, 10);
	if (*argv[1] == '\0' || *end != '\0' || count <= 0) {
		fprintf(stderr, "exec_storm: N must be a positive integer, not '%s'\n", argv[1]);
		return 2;
	}
	start = now_ns();
	for (i = 0; i < count; i++)
		if (spawn_true() != 0)
			return 1;
	printf("%lld %ld\n", now_ns() - start, count);
	return 0;
}
