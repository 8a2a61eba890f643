/*
 * bench/tools/copyproxy.c: the least a proxy can do, as a reference for `upstream:` routes.
 *
 *   copyproxy LISTEN_PORT UPSTREAM_PORT copy|splice
 *
 * Accepts on 127.0.0.1:LISTEN_PORT and serves one connection at a time in this process (so that /proc/PID/stat
 * holds all the CPU it spends); passes the client's first read (a bodiless GET) to 127.0.0.1:UPSTREAM_PORT,
 * then moves the answer to the client until either side closes:
 *   copy    read(2) into a 1 MiB buffer, write(2) it out (what any user-space proxy does, with no HTTP work);
 *   splice  splice(2) socket -> pipe -> socket, no copy through user space.
 * No HTTP parsing, no keep-alive across requests, no error handling beyond stopping: a measuring stick for
 * bench/frontdoor.sh, not a proxy.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { STEP = 1 << 20 };

static int loopback_socket(int port, int listening) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0) return -1;
    if (listening) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 64) < 0) return -1;
    } else if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        return -1;
    }
    return fd;
}

/* Waits until `from` has data (or the client hangs up: then returns 0). */
static int wait_readable(int from, int client) {
    struct pollfd fds[2] = {{from, POLLIN, 0}, {client, POLLRDHUP, 0}};
    if (poll(fds, 2, 300000) <= 0) return 0;
    if (fds[1].revents & (POLLRDHUP | POLLHUP | POLLERR)) return 0;
    return 1;
}

static void copy_loop(int up, int client) {
    static char buffer[STEP];
    for (;;) {
        if (!wait_readable(up, client)) return;
        ssize_t n = read(up, buffer, STEP);
        if (n <= 0) return;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(client, buffer + off, (size_t)(n - off));
            if (w <= 0) return;
            off += w;
        }
    }
}

static void splice_pipe(int up, int client, int pipefd[2]) {
    fcntl(pipefd[0], F_SETPIPE_SZ, STEP);
    for (;;) {
        if (!wait_readable(up, client)) return;
        ssize_t n = splice(up, NULL, pipefd[1], NULL, STEP, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n == 0) return;
        if (n < 0) {
            if (errno == EAGAIN) continue;
            return;
        }
        while (n > 0) {
            ssize_t w = splice(pipefd[0], NULL, client, NULL, (size_t)n, SPLICE_F_MOVE);
            if (w <= 0) return;
            n -= w;
        }
    }
}

static void splice_loop(int up, int client) {
    int pipefd[2];
    if (pipe(pipefd) < 0) return;
    splice_pipe(up, client, pipefd);
    close(pipefd[0]);
    close(pipefd[1]);
}

int main(int argc, char **argv) {
    if (argc != 4 || (strcmp(argv[3], "copy") && strcmp(argv[3], "splice"))) {
        fprintf(stderr, "usage: %s LISTEN_PORT UPSTREAM_PORT copy|splice\n", argv[0]);
        return 2;
    }
    int use_splice = strcmp(argv[3], "splice") == 0;
    int listener = loopback_socket(atoi(argv[1]), 1);
    if (listener < 0) { perror("listen"); return 1; }
    for (;;) {
        int client = accept(listener, NULL, NULL);
        if (client < 0) continue;
        int up = loopback_socket(atoi(argv[2]), 0);
        char request[65536];
        ssize_t n = up < 0 ? -1 : read(client, request, sizeof request);
        if (n > 0 && write(up, request, (size_t)n) == n) {
            if (use_splice) splice_loop(up, client); else copy_loop(up, client);
        }
        if (up >= 0) close(up);
        close(client);
    }
}
