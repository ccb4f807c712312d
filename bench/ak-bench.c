// SPDX-License-Identifier: Apache-2.0
/*
 * ak-bench: end-to-end latency of agentkernel beside its peers, measured in the same run.
 *
 * Every row spawns a command N times (posix_spawn + waitpid, stdout to /dev/null) and reports
 * p50/p90/p99/mean in milliseconds: a plain fork+exec of /bin/true (the floor), bubblewrap
 * (`bwrap --unshare-all --ro-bind / / /bin/true`, the peer), `agentkernel run` without network,
 * with full network (slirp4netns) and in proxy mode (the capture in the sandbox's own namespace and
 * one registration with the user's egress proxy, which the warm-up starts), `agentkernel exec`
 * into a running sandbox, and `agentkernel run --fast --no-network` (a sandbox taken from the
 * native warm pool, which the warm-up fills and each used sandbox's keeper refills). Ratios are
 * printed against bwrap and the floor. Numbers on a shared VM are noisy: compare rows of one run,
 * not runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct row {
        const char *name;
        char **argv;
        double *ms;
        int n;
        bool ok;
};

static double now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int run_once(char **argv, double *ret_ms)
{
        posix_spawn_file_actions_t fa;
        pid_t pid;
        int status, r;
        double t0;

        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        t0 = now_ms();
        r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (r != 0)
                return -r;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        *ret_ms = now_ms() - t0;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

static double pct(const double *sorted, int n, double p)
{
        int i = (int)(p / 100.0 * (n - 1) + 0.5);
        return sorted[i < n ? i : n - 1];
}

/* Rows are interleaved run by run (row 1, row 2, ..., row 1, ...) so that drift in the host's
 * load affects every row alike. */
static void measure_all(struct row *rows, size_t nrows, int n, int warmup)
{
        double ms;

        for (size_t k = 0; k < nrows; k++) {
                rows[k].ms = calloc((size_t)n, sizeof(double));
                rows[k].ok = true;
        }
        for (int i = 0; i < warmup + n; i++) {
                for (size_t k = 0; k < nrows; k++) {
                        struct row *r = &rows[k];
                        if (!r->ok)
                                continue;
                        if (run_once(r->argv, &ms) < 0) {
                                r->ok = false;
                                continue;
                        }
                        if (i >= warmup)
                                r->ms[r->n++] = ms;
                }
        }
        for (size_t k = 0; k < nrows; k++)
                qsort(rows[k].ms, (size_t)rows[k].n, sizeof(double), cmp_double);
}

static double p50(const struct row *r)
{
        return r->ok && r->n ? pct(r->ms, r->n, 50) : 0;
}

static void usage(void)
{
        fputs("usage: ak-bench [--n N] [--warmup W] [--agentkernel PATH] [--image NAME]\n"
              "                [--data-dir DIR] [--json]\n",
              stderr);
        exit(2);
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {{"n", required_argument, NULL, 'n'},
                                             {"warmup", required_argument, NULL, 'w'},
                                             {"agentkernel", required_argument, NULL, 'a'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"image", required_argument, NULL, 'i'},
                                             {"data-dir", required_argument, NULL, 'd'},
                                             {NULL, 0, NULL, 0}};
        int n = 200, warmup = 10, c;
        bool json = false;
        const char *ak = "agentkernel", *image = NULL, *data_dir = NULL;
        char datadir[] = "/tmp/ak-bench-XXXXXX";
        char *ak_mut;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 'n':
                        n = atoi(optarg);
                        break;
                case 'w':
                        warmup = atoi(optarg);
                        break;
                case 'a':
                        ak = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'i':
                        image = optarg;
                        break;
                case 'd':
                        data_dir = optarg;
                        break;
                default:
                        usage();
                }
        }
        if (n < 1 || warmup < 0)
                usage();
        if (!data_dir && !mkdtemp(datadir)) {
                perror("mkdtemp");
                return 1;
        }
        setenv("AGENTKERNEL_DATA_DIR", data_dir ? data_dir : datadir, 1);
        ak_mut = strdup(ak);

        {
                char *create[] = {ak_mut, "create", "bench", "--no-network", NULL};
                double ms;
                if (run_once(create, &ms) < 0) {
                        fprintf(stderr, "ak-bench: cannot create the bench sandbox with %s\n", ak);
                        return 1;
                }
        }

        char *a_true[] = {"/bin/true", NULL};
        char *a_bwrap[] = {"bwrap", "--unshare-all", "--ro-bind", "/", "/", "/bin/true", NULL};
        char *a_run_nonet[] = {ak_mut, "run", "--no-network", "--", "/bin/true", NULL};
        char *a_run[] = {ak_mut, "run", "--network", "full", "--", "/bin/true", NULL};
        char *a_run_proxy[] = {ak_mut, "run", "--network", "proxy", "--", "/bin/true", NULL};
        char *a_exec[] = {ak_mut, "exec", "bench", "--", "/bin/true", NULL};
        char *a_fast[] = {ak_mut, "run", "--fast", "--no-network", "--", "/bin/true", NULL};
        char *a_run_image[] = {ak_mut,        "run", "--no-network", "--image",
                               (char *)image, "--",  "/bin/true",    NULL};
        struct row rows[] = {
            {"fork+exec /bin/true", a_true, NULL, 0, false},
            {"bwrap --unshare-all", a_bwrap, NULL, 0, false},
            {"agentkernel run --no-network", a_run_nonet, NULL, 0, false},
            {"agentkernel run --network full", a_run, NULL, 0, false},
            {"agentkernel run --network proxy", a_run_proxy, NULL, 0, false},
            {"agentkernel exec (running)", a_exec, NULL, 0, false},
            /* a sandbox from the warm pool, refilled behind each run (the warm-up fills it) */
            {"agentkernel run --fast --no-net", a_fast, NULL, 0, false},
            /* an OCI image from the local store (pulled during the warm-up) */
            {"agentkernel run --image (OCI)", a_run_image, NULL, 0, false},
        };
        size_t nrows = sizeof(rows) / sizeof(rows[0]) - (image ? 0 : 1);

        measure_all(rows, nrows, n, warmup);

        {
                char *rm[] = {ak_mut, "remove", "bench", NULL};
                /* the run --fast row's warm pool: its idle sandboxes and their keepers */
                char *clear[] = {ak_mut, "pool", "clear", "-B", "native", NULL};
                double ms;
                (void)run_once(rm, &ms);
                (void)run_once(clear, &ms);
        }
        if (!data_dir)
                rmdir(datadir); /* best effort: the store leaves its empty directories */

        if (!json) {
                printf("ak-bench: %d runs per row, rows interleaved (after %d warm-up rounds); "
                       "milliseconds\n",
                       n, warmup);
                printf("%-32s %8s %8s %8s %8s %10s %10s\n", "", "p50", "p90", "p99", "mean",
                       "p50/bwrap", "p50/floor");
        }
        for (size_t i = 0; i < nrows; i++) {
                struct row *r = &rows[i];
                double mean = 0;
                if (!r->ok) {
                        if (json)
                                printf("{\"row\":\"%s\",\"ok\":false}\n", r->name);
                        else
                                printf("%-32s %8s\n", r->name, "failed");
                        continue;
                }
                for (int k = 0; k < r->n; k++)
                        mean += r->ms[k];
                mean /= r->n;
                if (json)
                        printf("{\"row\":\"%s\",\"ok\":true,\"n\":%d,\"p50\":%.3f,\"p90\":%.3f,"
                               "\"p99\":%.3f,\"mean\":%.3f}\n",
                               r->name, r->n, pct(r->ms, r->n, 50), pct(r->ms, r->n, 90),
                               pct(r->ms, r->n, 99), mean);
                else
                        printf("%-32s %8.2f %8.2f %8.2f %8.2f %10.2f %10.2f\n", r->name,
                               pct(r->ms, r->n, 50), pct(r->ms, r->n, 90), pct(r->ms, r->n, 99),
                               mean, p50(&rows[1]) > 0 ? pct(r->ms, r->n, 50) / p50(&rows[1]) : 0,
                               pct(r->ms, r->n, 50) / p50(&rows[0]));
        }
        return 0;
}
