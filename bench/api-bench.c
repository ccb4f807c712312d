// SPDX-License-Identifier: Apache-2.0
/*
 * api-bench: latency of `POST /sandboxes/{name}/exec` of /bin/true through `agentkernel serve`,
 * with 1 and with 16 concurrent keep-alive clients, beside the CLI's own `agentkernel exec` into
 * the same sandbox in the same run, and the floor under all of them: spawning /bin/true on the
 * host with no sandbox. Prints p50/p90/p99 in milliseconds and each p50 over the CLI's.
 * --paused N adds N samples of the floor and of the API exec taken each after 1.5 s of quiet: an
 * agent's rhythm (think, then run a command), which on a virtual machine with idle vCPUs costs
 * more than back-to-back requests.
 * The sandbox gets 2 vCPUs (this machine's count): with the default 1, sixteen concurrent
 * commands are throttled by the sandbox's own CPU quota, which is the limit doing its job.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int port;
static char auth[160]; /* "Authorization: Bearer KEY\r\n": the key serve made in the data dir */

static double now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int connect_server(void)
{
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        return fd;
}

/* One request on a keep-alive connection; returns the HTTP status, or -1. */
static int request(int fd, const char *method, const char *path, const char *body)
{
        char req[1024], resp[65536];
        size_t got = 0, want = 0;
        int n = snprintf(req, sizeof(req),
                         "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s"
                         "Content-Length: %zu\r\n\r\n%s",
                         method, path, auth, body ? "Content-Type: application/json\r\n" : "",
                         body ? strlen(body) : 0, body ? body : "");

        if (write(fd, req, (size_t)n) != n)
                return -1;
        for (;;) {
                ssize_t r = read(fd, resp + got, sizeof(resp) - 1 - got);
                char *hdr_end, *cl;
                if (r <= 0)
                        return -1;
                got += (size_t)r;
                resp[got] = '\0';
                hdr_end = strstr(resp, "\r\n\r\n");
                if (!hdr_end)
                        continue;
                cl = strcasestr(resp, "Content-Length:");
                if (!cl)
                        return -1;
                want = (size_t)(hdr_end + 4 - resp) + strtoul(cl + 15, NULL, 10);
                if (got >= want)
                        return atoi(resp + 9);
        }
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

static double pct(double *v, int n, double p)
{
        int i = (int)((p / 100.0) * (n - 1) + 0.5);
        return v[i < n ? i : n - 1];
}

struct client {
        int n;
        double *ms;
        bool ok;
};

static void *client_main(void *arg)
{
        struct client *c = arg;
        int fd = connect_server();

        c->ok = fd >= 0;
        for (int i = 0; c->ok && i < c->n; i++) {
                double t0 = now_ms();
                c->ok = request(fd, "POST", "/sandboxes/bench/exec",
                                "{\"command\":[\"/bin/true\"]}") == 200;
                c->ms[i] = now_ms() - t0;
        }
        if (fd >= 0)
                close(fd);
        return NULL;
}

/* n requests over `clients` concurrent connections; fills all[] (n entries). */
static bool measure_api(int clients, int n, double *all)
{
        pthread_t t[64];
        struct client c[64];
        int per = n / clients, k = 0;
        bool ok = true;

        for (int i = 0; i < clients; i++) {
                c[i] = (struct client){per, all + i * per, false};
                pthread_create(&t[i], NULL, client_main, &c[i]);
        }
        for (int i = 0; i < clients; i++) {
                pthread_join(t[i], NULL);
                ok = ok && c[i].ok;
                k += per;
        }
        qsort(all, (size_t)k, sizeof(double), cmp_double);
        return ok;
}

/* The floor under any exec of /bin/true: spawning it and waiting, on the host, no sandbox. */
static bool spawn_true(double *ms)
{
        char *argv[] = {"/bin/true", NULL};
        double t0 = now_ms();
        pid_t pid;
        int st;

        if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0)
                return false;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        *ms = now_ms() - t0;
        return true;
}

static bool measure_floor(int n, double *ms)
{
        for (int i = 0; i < n; i++)
                if (!spawn_true(&ms[i]))
                        return false;
        qsort(ms, (size_t)n, sizeof(double), cmp_double);
        return true;
}

/* An agent's rhythm: a command, then seconds of thinking. Each sample follows PAUSE_US of
 * quiet, floor and API alternating, on one keep-alive connection. */
#define PAUSE_US 1500000
static bool measure_paused(int n, double *floor_ms, double *api_ms)
{
        int fd = connect_server();
        bool ok = fd >= 0;

        for (int i = 0; ok && i < n; i++) {
                usleep(PAUSE_US);
                ok = spawn_true(&floor_ms[i]);
                usleep(PAUSE_US);
                double t0 = now_ms();
                ok = ok && request(fd, "POST", "/sandboxes/bench/exec",
                                   "{\"command\":[\"/bin/true\"]}") == 200;
                api_ms[i] = now_ms() - t0;
        }
        if (fd >= 0)
                close(fd);
        qsort(floor_ms, (size_t)n, sizeof(double), cmp_double);
        qsort(api_ms, (size_t)n, sizeof(double), cmp_double);
        return ok;
}

static bool measure_cli(const char *ak, int n, double *ms)
{
        char *argv[] = {(char *)ak, "exec", "bench", "--", "/bin/true", NULL};
        posix_spawn_file_actions_t fa;

        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", 1, 0);
        for (int i = 0; i < n; i++) {
                double t0 = now_ms();
                pid_t pid;
                int st;
                if (posix_spawn(&pid, ak, &fa, NULL, argv, environ) != 0)
                        return false;
                while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                        ;
                ms[i] = now_ms() - t0;
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                        return false;
        }
        posix_spawn_file_actions_destroy(&fa);
        qsort(ms, (size_t)n, sizeof(double), cmp_double);
        return true;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {{"n", required_argument, NULL, 'n'},
                                             {"agentkernel", required_argument, NULL, 'a'},
                                             {"paused", required_argument, NULL, 'p'},
                                             {NULL, 0, NULL, 0}};
        const char *ak = "agentkernel";
        char datadir[] = "/tmp/ak-api-bench-XXXXXX", portarg[16];
        int n = 400, c, fd = -1, paused = 0;
        double *one, *many, *cli, *floor_ms, *pfloor = NULL, *papi = NULL;
        bool ok_paused = false;
        pid_t server;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                if (c == 'n')
                        n = atoi(optarg);
                else if (c == 'a')
                        ak = optarg;
                else if (c == 'p')
                        paused = atoi(optarg) < 0 ? 0 : atoi(optarg);
                else {
                        fputs("usage: api-bench [--n N] [--paused N] [--agentkernel PATH]\n"
                              "  --paused N  also N samples each after a 1.5 s pause (floor and "
                              "API)\n",
                              stderr);
                        return 2;
                }
        }
        n = n < 16 ? 16 : n / 16 * 16;
        if (!mkdtemp(datadir)) {
                perror("mkdtemp");
                return 1;
        }
        setenv("AGENTKERNEL_DATA_DIR", datadir, 1);
        srand((unsigned)getpid());
        port = 20000 + rand() % 20000;
        (void)snprintf(portarg, sizeof(portarg), "%d", port);
        {
                char *sv[] = {(char *)ak, "serve", "--port", portarg, "--reconcile-interval",
                              "0",        NULL};
                posix_spawn_file_actions_t fa;
                posix_spawn_file_actions_init(&fa);
                posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", 1, 0);
                if (posix_spawn(&server, ak, &fa, NULL, sv, environ) != 0) {
                        perror("spawn serve");
                        return 1;
                }
        }
        for (int i = 0; i < 100 && fd < 0; i++) {
                usleep(50000);
                fd = connect_server();
        }
        {
                /* the key serve made for its owner (this process), as a client reads it */
                char path[sizeof(datadir) + 16], key[129] = "";
                FILE *f;
                (void)snprintf(path, sizeof(path), "%s/api-key", datadir);
                f = fopen(path, "re");
                if (f) {
                        if (fscanf(f, "%128s", key) != 1)
                                key[0] = '\0';
                        fclose(f);
                }
                if (key[0])
                        (void)snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", key);
        }
        if (fd < 0 || request(fd, "POST", "/sandboxes",
                              "{\"name\":\"bench\",\"network\":false,\"vcpus\":2}") != 201) {
                fprintf(stderr, "api-bench: cannot create the bench sandbox through the API\n");
                kill(server, SIGTERM);
                return 1;
        }
        one = calloc((size_t)n, sizeof(double));
        many = calloc((size_t)n, sizeof(double));
        cli = calloc((size_t)n, sizeof(double));
        floor_ms = calloc((size_t)n, sizeof(double));
        /* warm up both paths, then measure: CLI, API x1, API x16 */
        (void)measure_cli(ak, 20, cli);
        (void)measure_api(1, 32, one);
        bool ok_floor = measure_floor(n, floor_ms);
        bool ok_cli = measure_cli(ak, n, cli);
        bool ok_one = measure_api(1, n, one);
        bool ok_many = measure_api(16, n, many);
        if (paused) {
                pfloor = calloc((size_t)paused, sizeof(double));
                papi = calloc((size_t)paused, sizeof(double));
                ok_paused = pfloor && papi && measure_paused(paused, pfloor, papi);
        }
        (void)request(fd, "DELETE", "/sandboxes/bench", NULL);
        close(fd);
        kill(server, SIGTERM);
        waitpid(server, NULL, 0);

        printf("api-bench: exec of /bin/true into a running native sandbox, %d requests per row; "
               "milliseconds\n",
               n);
        printf("%-34s %8s %8s %8s %10s\n", "", "p50", "p90", "p99", "p50/CLI");
        if (ok_floor && ok_cli)
                printf("%-34s %8.2f %8.2f %8.2f %10.2f\n", "spawn /bin/true on the host (floor)",
                       pct(floor_ms, n, 50), pct(floor_ms, n, 90), pct(floor_ms, n, 99),
                       pct(floor_ms, n, 50) / pct(cli, n, 50));
        if (ok_cli)
                printf("%-34s %8.2f %8.2f %8.2f %10.2f\n", "agentkernel exec (CLI)",
                       pct(cli, n, 50), pct(cli, n, 90), pct(cli, n, 99), 1.0);
        if (ok_one)
                printf("%-34s %8.2f %8.2f %8.2f %10.2f\n", "API exec, 1 client", pct(one, n, 50),
                       pct(one, n, 90), pct(one, n, 99),
                       ok_cli ? pct(one, n, 50) / pct(cli, n, 50) : 0);
        if (ok_many)
                printf("%-34s %8.2f %8.2f %8.2f %10.2f\n", "API exec, 16 clients", pct(many, n, 50),
                       pct(many, n, 90), pct(many, n, 99),
                       ok_cli ? pct(many, n, 50) / pct(cli, n, 50) : 0);
        if (ok_paused) {
                printf("after a %.1f s pause each (%d samples):\n", PAUSE_US / 1e6, paused);
                printf("%-34s %8.2f %8.2f %8.2f\n", "spawn /bin/true on the host (floor)",
                       pct(pfloor, paused, 50), pct(pfloor, paused, 90), pct(pfloor, paused, 99));
                printf("%-34s %8.2f %8.2f %8.2f\n", "API exec, 1 client", pct(papi, paused, 50),
                       pct(papi, paused, 90), pct(papi, paused, 99));
        } else if (paused) {
                fprintf(stderr, "api-bench: the paused rows failed\n");
        }
        if (!ok_cli || !ok_one || !ok_many)
                fprintf(stderr, "api-bench: some rows failed (%s%s%s)\n", ok_cli ? "" : "cli ",
                        ok_one ? "" : "api-1 ", ok_many ? "" : "api-16");
        return ok_cli && ok_one && ok_many ? 0 : 1;
}
