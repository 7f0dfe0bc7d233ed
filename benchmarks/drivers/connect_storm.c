/*
 * connect_storm: TCP connect + close to a loopback listener, N times.
 *
 * The "connect" workload of benchmarks/peers.py. Before the clock starts, the
 * driver listens on 127.0.0.1 (a port the kernel picks) and forks an acceptor
 * child that accepts and closes in a loop, so the accept queue never fills (a
 * full queue drops the SYN and costs a 1 s retransmission). Each timed
 * iteration is socket + setsockopt(SO_LINGER 0) + connect + close: the linger
 * of 0 makes close send a reset instead of leaving the port in TIME_WAIT, so
 * a storm of any length never runs out of ephemeral ports and needs no sysctl.
 * Only connect(2) is hooked by any configuration; the other three syscalls
 * still take the syscall-tracing path once any syscall tracepoint is enabled.
 *
 * Usage: connect_storm N
 * Prints "<elapsed_ns> <count>" on stdout; exits non-zero if a connect failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A listening socket on 127.0.0.1 with a kernel-chosen port, written to *addr. */
static int listen_loopback(struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)addr, sizeof(*addr)) < 0 || listen(fd, SOMAXCONN) < 0 ||
	    getsockname(fd, (struct sockaddr *)addr, &len) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The acceptor child: accept and close until killed (or orphaned). */
static void accept_forever(int listener)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (;;) {
		int fd = accept(listener, NULL, NULL);

		if (fd >= 0)
			close(fd);
		else if (errno != EINTR && errno != ECONNABORTED)
			_exit(1);
	}
}

static int connect_once(const struct sockaddr_in *addr)
{
	struct linger no_linger = { .l_onoff = 1, .l_linger = 0 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int ok;

	if (fd < 0)
		return -1;
	ok = setsockopt(fd, SOL_SOCKET, SO_LINGER, &no_linger, sizeof(no_linger)) == 0 &&
	     connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0;
	close(fd);
	return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr;
	char *end;
	long count, i;
	long long start, elapsed;
	int listener, status;
	pid_t acceptor;

	if (argc != 2) {
		fprintf(stderr, "usage: connect_storm N\n");
		return 2;
	}
	count = strtol(argv[1], &end, 10);
	if (*argv[1] == '\0' || *end != '\0' || count <= 0) {
		fprintf(stderr, "connect_storm: N must be a positive integer, not '%s'\n", argv[1]);
		return 2;
	}
	listener = listen_loopback(&addr);
	if (listener < 0) {
		fprintf(stderr, "connect_storm: listen on 127.0.0.1: %s\n", strerror(errno));
		return 1;
	}
	acceptor = fork();
	if (acceptor < 0) {
		fprintf(stderr, "connect_storm: fork: %s\n", strerror(errno));
		return 1;
	}
	if (acceptor == 0)
		accept_forever(listener);
	close(listener); /* the child holds it; connections reach it all the same */

	start = now_ns();
	for (i = 0; i < count; i++) {
		if (connect_once(&addr) != 0) {
			fprintf(stderr, "connect_storm: connect %ld: %s\n", i, strerror(errno));
			kill(acceptor, SIGKILL);
			return 1;
		}
	}
	elapsed = now_ns() - start;

	kill(acceptor, SIGKILL);
	waitpid(acceptor, &status, 0);
	printf("%lld %ld\n", elapsed, count);
	return 0;
}
