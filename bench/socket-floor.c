/*
 * The floor under WebSocket fan-out on this machine: the CPU one process
 * spends writing a small message to a loopback TCP socket, with nothing
 * else to do (no framing, no queue, no runtime). The kernel's loopback
 * delivery — the receiver's TCP processing runs in the sender's softirq —
 * is included, as it is in the server's figure.
 *
 * The writer is pinned to core 0 and writes MSG bytes to each of N
 * connected sockets in turn, ROUNDS times, ROUNDS_PER_S rounds a second
 * (0: as fast as it can), BATCH messages per write; a forked reader pinned
 * to core 1 drains every socket with epoll. Reports CPU per message (user +
 * system, from getrusage) and how long one round — one event to every
 * socket — took.
 *
 * SUBMIT is `write` (one write(2) per socket, as a tokio server does) or
 * `uring`: one io_uring submission carries the round's sends to every
 * socket (up to 4096 per io_uring_enter), the syscall per message gone —
 * what a fan-out that handed its writes to io_uring could save.
 *
 * usage: socket-floor N ROUNDS ROUNDS_PER_S BATCH [write|uring]   (see socket-floor.sh)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <liburing.h>
#include <string.h>

#define MSG 300
#define RING 4096

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double cpu_seconds(const struct rusage *r) {
    return r->ru_utime.tv_sec + r->ru_utime.tv_usec * 1e-6 + r->ru_stime.tv_sec + r->ru_stime.tv_usec * 1e-6;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void drain(int *fds, int n, long want) {
    pin(1);
    int ep = epoll_create1(0);
    for (int i = 0; i < n; i++) {
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
        struct epoll_event e = {.events = EPOLLIN, .data.fd = fds[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e);
    }
    static char buf[1 << 16];
    struct epoll_event ev[256];
    long got = 0;
    while (got < want) {
        int k = epoll_wait(ep, ev, 256, 10000);
        if (k <= 0) break;
        for (int j = 0; j < k; j++) {
            ssize_t r;
            while ((r = read(ev[j].data.fd, buf, sizeof buf)) > 0) got += r;
        }
    }
    if (got != want) fprintf(stderr, "reader: %ld of %ld bytes\n", got, want);
    _exit(got == want ? 0 : 1);
}

/* Sends `len` bytes of `msg` to every writer through `ring`; 0 when all went. */
static int send_all(struct io_uring *ring, const int *writers, int n, const char *msg, size_t len) {
    for (int i = 0; i < n;) {
        int k = 0;
        for (; i < n && k < RING; i++, k++) io_uring_prep_send(io_uring_get_sqe(ring), writers[i], msg, len, 0);
        if (io_uring_submit_and_wait(ring, k) < 0) return -1;
        struct io_uring_cqe *c;
        unsigned head, seen = 0;
        int bad = 0;
        io_uring_for_each_cqe(ring, head, c) {
            bad |= c->res != (int)len;
            seen++;
        }
        io_uring_cq_advance(ring, seen);
        if (bad || (int)seen != k) return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: %s N ROUNDS ROUNDS_PER_S BATCH [write|uring]\n", argv[0]);
        return 2;
    }
    int uring = argc == 6 && strcmp(argv[5], "uring") == 0;
    int n = atoi(argv[1]), rounds = atoi(argv[2]), batch = atoi(argv[4]);
    double rate = atof(argv[3]);
    if (n <= 0 || rounds <= 0 || batch <= 0 || rounds % batch) {
        fprintf(stderr, "N, ROUNDS and BATCH must be positive, ROUNDS a multiple of BATCH\n");
        return 2;
    }
    int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (bind(l, (void *)&a, sizeof a) || listen(l, 4096) || getsockname(l, (void *)&a, &alen)) {
        perror("listen");
        return 1;
    }
    int *readers = malloc(n * sizeof(int)), *writers = malloc(n * sizeof(int));
    for (int i = 0; i < n; i++) {
        readers[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(readers[i], (void *)&a, sizeof a) || (writers[i] = accept(l, 0, 0)) < 0) {
            perror("connect");
            return 1;
        }
        setsockopt(writers[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    pid_t reader = fork();
    if (reader == 0) drain(readers, n, (long)n * rounds * MSG);

    pin(0);
    struct io_uring ring;
    /* Completions are reaped by this thread only, right after submitting. */
    struct io_uring_params params = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
    if (uring && io_uring_queue_init_params(RING, &ring, &params)) {
        perror("io_uring");
        return 1;
    }
    size_t len = (size_t)MSG * batch;
    char *msg = calloc(len, 1);
    double *round_s = calloc(rounds / batch, sizeof(double));
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = now();
    int done = 0;
    for (int r = 0; r < rounds; r += batch) {
        if (rate > 0) {
            double wait = t0 + r / rate - now();
            if (wait > 0) {
                struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
                nanosleep(&ts, 0);
            }
        }
        double start = now();
        if (uring && send_all(&ring, writers, n, msg, len)) {
            fprintf(stderr, "io_uring send failed\n");
            return 1;
        }
        for (int i = 0; !uring && i < n; i++)
            if (write(writers[i], msg, len) != (ssize_t)len) {
                perror("write");
                return 1;
            }
        round_s[done++] = now() - start;
    }
    getrusage(RUSAGE_SELF, &r1);
    double cpu = cpu_seconds(&r1) - cpu_seconds(&r0);
    qsort(round_s, done, sizeof(double), by_value);
    printf("%d sockets · %d messages of %d bytes each · %g rounds/s · %d per write · %s\n", n, rounds, MSG, rate, batch,
           uring ? "io_uring" : "write(2)");
    printf("cpu          %.2f us per message\n", cpu * 1e6 / ((double)n * rounds));
    printf("round ms     p50 %.2f · p95 %.2f · p99 %.2f · max %.2f\n", round_s[done / 2] * 1e3,
           round_s[done * 95 / 100] * 1e3, round_s[done * 99 / 100] * 1e3, round_s[done - 1] * 1e3);
    int status = 0;
    waitpid(reader, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
