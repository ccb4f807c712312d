// SPDX-License-Identifier: Apache-2.0
/*
 * The `firecracker` driver of the microvm backend (struct vm_driver, microvm.h): Firecracker's
 * REST API over its unix socket (../shared/reference/firecracker-api.md; docs/backends.md) and
 * its hybrid vsock, where the host connects to a unix socket and asks for the guest's port with
 * `CONNECT <port>\n`. Unverified against a real Firecracker (none is installable on the machines
 * this was written on): it is tested against a conformance double, tests/firecracker_double.py,
 * that checks every request against the API's published schema and the order of the calls.
 *
 * As root the hypervisor runs as the sandbox's hypervisor id, as QEMU does with -runas, without
 * Firecracker's jailer: its working directory is the driver's own directory (`fc/` in the run
 * directory, owned by that id), entered as root before the ids are dropped, so its sockets are
 * named relative to it; the initramfs and the root image are handed over as descriptors
 * (/proc/self/fd/N), which need no path through the root-only run directory and cache. The
 * initramfs (this sandbox's own) is made readable by that id only; root images are 0644 in the
 * 0700 cache (the sandbox's own root filesystem: nothing secret from it, and no other id has a
 * path to it).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grp.h>
#include <jansson.h>

#include "backend/microvm.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/time-util.h"

#define FC_BIN "firecracker"
#define FC_DIR "fc"              /* the driver's directory in the run directory */
#define FC_API "api.sock"        /* in FC_DIR: the REST API */
#define FC_VSOCK "vsock.sock"    /* in FC_DIR: the hybrid vsock */
#define FC_SOCKET_WAIT_MS 5000   /* for the API socket to appear */
#define FC_REQUEST_MS 5000       /* for one API answer */
#define FC_CONNECT_WAIT_MS 60000 /* for the guest's agent to listen (a TCG boot is seconds) */
#define FC_REPLY_MAX (64u << 10)
#define FC_STOP_GRACE_MS 1000 /* SIGTERM, then SIGKILL: the API has no clean stop */
#define CONSOLE_MAX (1u << 20)

static bool find_firecracker(char *out, size_t len)
{
        /* upstream's name for it second */
        static const char *const envs[] = {"AGENTKERNEL_FIRECRACKER", "FIRECRACKER_BIN", NULL};
        return proc_find_program(envs, FC_BIN, out, len);
}

bool vm_firecracker_present(void)
{
        char path[PATH_MAX];
        return find_firecracker(path, sizeof(path));
}

static int fc_probe(enum vm_accel *ret_accel, char *why, size_t why_len)
{
        char fc[PATH_MAX], kernel[PATH_MAX], kver[256];
        struct ak_err e = {0};

        if (!find_firecracker(fc, sizeof(fc))) {
                (void)snprintf(why, why_len,
                               "no firecracker binary (PATH, $AGENTKERNEL_FIRECRACKER)");
                return 0;
        }
        if (vm_guest_kernel(kernel, sizeof(kernel), kver, sizeof(kver), &e) < 0) {
                (void)snprintf(why, why_len, "%s", ak_err_msg(&e));
                return 0;
        }
        /* Firecracker has no emulator: KVM or nothing. Whether a guest actually runs under this
         * host's KVM shows at the first boot (docs/backends.md). */
        *ret_accel = VM_ACCEL_KVM;
        (void)snprintf(why, why_len,
                       "firecracker '%s' (KVM), kernel %s; unverified against a "
                       "real Firecracker",
                       fc, kernel);
        return 1;
}

/* ---- the REST API: HTTP/1.1 over the unix socket, one request at a time ---- */

/* Reads one answer: its status, and the fault_message of an error. */
static int read_answer(int fd, int *ret_status, char *fault, size_t fault_len, struct ak_err *err)
{
        cleanup_buf struct buf b = BUF_INIT;
        int64_t until = now_monotonic_ns() + (int64_t)FC_REQUEST_MS * NSEC_PER_MSEC;
        size_t head = 0, body_len = 0;

        for (;;) {
                char chunk[4096];
                struct pollfd p = {fd, POLLIN, 0};
                int64_t left = (until - now_monotonic_ns()) / NSEC_PER_MSEC;
                ssize_t n;
                char *end;

                if (head && b.len >= head + body_len)
                        break;
                if (left <= 0 || poll(&p, 1, (int)left) <= 0)
                        return ak_err_set(err, ETIMEDOUT, "firecracker's API did not answer");
                n = read(fd, chunk, sizeof(chunk));
                if (n <= 0)
                        return ak_err_set(err, EPIPE, "firecracker's API closed the connection");
                if (b.len + (size_t)n > FC_REPLY_MAX || buf_append(&b, chunk, (size_t)n) < 0)
                        return ak_err_set(err, EMSGSIZE, "firecracker's answer is too long");
                if (!head && (end = strstr(b.data, "\r\n\r\n"))) {
                        const char *cl = strcasestr(b.data, "\r\ncontent-length:");
                        head = (size_t)(end - b.data) + 4;
                        if (cl && cl < end)
                                body_len = strtoul(cl + 17, NULL, 10);
                        if (body_len > FC_REPLY_MAX)
                                return ak_err_set(err, EMSGSIZE,
                                                  "firecracker's answer is too long");
                }
        }
        if (sscanf(b.data, "HTTP/1.1 %d", ret_status) != 1)
                return ak_err_set(err, EPROTO, "firecracker's API answered something else");
        fault[0] = '\0';
        if (body_len) {
                cleanup_json json_t *o = json_loadb(b.data + head, body_len, 0, NULL);
                const char *m = json_string_value(json_object_get(o, "fault_message"));
                if (m)
                        (void)snprintf(fault, fault_len, "%s", m);
        }
        return 0;
}

/* method path body: 0 on a 2xx answer (Firecracker's 204), else an error with its message. */
static int api(int fd, const char *method, const char *path, json_t *body, struct ak_err *err)
{
        cleanup_json json_t *owned = body;
        cleanup_free char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        cleanup_buf struct buf req = BUF_INIT;
        char fault[512];
        int status, r;

        if (body && !text)
                return ak_err_oom(err);
        if (buf_printf(&req,
                       "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
                       "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                       method, path, text ? strlen(text) : 0, text ? text : "") < 0)
                return ak_err_oom(err);
        r = write_all(fd, req.data, req.len);
        if (r < 0)
                return ak_err_errno(err, r, "send to firecracker's API");
        r = read_answer(fd, &status, fault, sizeof(fault), err);
        if (r < 0)
                return r;
        if (status < 200 || status > 299)
                return ak_err_set(err, EIO, "firecracker refused %s %s (%d): %s", method, path,
                                  status, fault[0] ? fault : "no message");
        return 0;
}

/* ---- the process ---- */

struct fc_launch {
        const struct vm_spec *spec;
        const char *bin;
        int dir_fd, initrd_fd, root_fd, console_fd;
        gid_t kvm_gid;
        int pid_pipe;
};

/* In the grandchild: the ids dropped, the descriptors kept, Firecracker executed. */
_noreturn_ static void exec_firecracker(const struct fc_launch *l)
{
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        umask(0077);
        (void)signal(SIGXFSZ, SIG_IGN);
        (void)setrlimit(RLIMIT_FSIZE,
                        &(struct rlimit){.rlim_cur = CONSOLE_MAX, .rlim_max = CONSOLE_MAX});
        if (fchdir(l->dir_fd) < 0)
                _exit(126);
        (void)dup2(null, STDIN_FILENO);
        (void)dup2(l->console_fd, STDOUT_FILENO);
        (void)dup2(l->console_fd, STDERR_FILENO);
        /* kept across exec: what the API names as /proc/self/fd/N */
        if (fcntl(l->initrd_fd, F_SETFD, 0) < 0 || fcntl(l->root_fd, F_SETFD, 0) < 0)
                _exit(126);
        if (l->spec->run_as) {
                gid_t groups[1] = {l->kvm_gid};
                if (setgroups(l->kvm_gid != (gid_t)-1 ? 1 : 0, groups) < 0 ||
                    setresgid(l->spec->run_as, l->spec->run_as, l->spec->run_as) < 0 ||
                    setresuid(l->spec->run_as, l->spec->run_as, l->spec->run_as) < 0)
                        _exit(126);
        }
        (void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        /* --id ties the process to this sandbox (proc_verify with uuid_opt "--id") */
        execl(l->bin, l->bin, "--api-sock", FC_API, "--id", l->spec->uuid, (char *)NULL);
        _exit(127);
}

static void exec_firecracker_cb(void *arg)
{
        exec_firecracker(arg);
}

/* Starts Firecracker detached (a grandchild in a session of its own); *ret_pid is it. */
static int spawn(struct fc_launch *l, pid_t *ret_pid, struct ak_err *err)
{
        int r = proc_spawn_detached(exec_firecracker_cb, l, ret_pid);
        return r < 0 ? ak_err_errno(err, r, "start firecracker") : 0;
}

static int wait_socket(const char *path, pid_t pid, struct ak_err *err)
{
        int64_t until = now_monotonic_ns() + (int64_t)FC_SOCKET_WAIT_MS * NSEC_PER_MSEC;

        for (;;) {
                struct ak_err e = {0};
                int fd = unix_connect(path, &e);
                if (fd >= 0)
                        return fd;
                if (kill(pid, 0) < 0)
                        return ak_err_set(err, ESRCH, "firecracker exited at once");
                if (now_monotonic_ns() > until)
                        return ak_err_set(err, ETIMEDOUT,
                                          "firecracker's API socket did not appear within %d ms",
                                          FC_SOCKET_WAIT_MS);
                usleep(2000);
        }
}

/* The sandbox's id must be able to read what Firecracker opens: the initramfs, made for this
 * start, becomes its group's; a root image is 0644 (see the file's comment). */
static int share_files(const struct vm_spec *s, int initrd_fd, int root_fd, struct ak_err *err)
{
        struct stat st;

        if (!s->run_as)
                return 0;
        if (fchown(initrd_fd, 0, s->run_as) < 0 || fchmod(initrd_fd, 0640) < 0)
                return ak_err_errno(err, errno, "share the initramfs with the hypervisor's id");
        if (fstat(root_fd, &st) < 0)
                return ak_err_errno(err, errno, "stat the root image");
        if ((st.st_mode & 0444) != 0444 && fchmod(root_fd, 0644) < 0)
                return ak_err_errno(err, errno, "make the root image readable");
        return 0;
}

static gid_t kvm_group(void)
{
        struct stat st;
        return stat("/dev/kvm", &st) == 0 && (st.st_mode & 0060) == 0060 ? st.st_gid : (gid_t)-1;
}

/* The machine, configured call by call (any order before InstanceStart) and started. */
static int configure(int api_fd, const struct vm_spec *s, int initrd_fd, int root_fd,
                     struct ak_err *err)
{
        char initrd[32], root[32];
        int r;

        (void)snprintf(initrd, sizeof(initrd), "/proc/self/fd/%d", initrd_fd);
        (void)snprintf(root, sizeof(root), "/proc/self/fd/%d", root_fd);
        r = api(api_fd, "PUT", "/machine-config",
                json_pack("{s:i,s:I,s:b}", "vcpu_count", (int)s->vcpus, "mem_size_mib",
                          (json_int_t)s->memory_mb, "smt", 0),
                err);
        if (r >= 0)
                r = api(api_fd, "PUT", "/boot-source",
                        json_pack("{s:s,s:s,s:s}", "kernel_image_path", s->kernel, "initrd_path",
                                  initrd, "boot_args", s->cmdline),
                        err);
        if (r >= 0)
                r = api(api_fd, "PUT", "/drives/root",
                        json_pack("{s:s,s:s,s:b,s:b}", "drive_id", "root", "path_on_host", root,
                                  "is_root_device", 0, "is_read_only", 1),
                        err);
        if (r >= 0)
                r = api(api_fd, "PUT", "/vsock",
                        json_pack("{s:i,s:s}", "guest_cid", 3, "uds_path", FC_VSOCK), err);
        if (r >= 0)
                r = api(api_fd, "PUT", "/actions",
                        json_pack("{s:s}", "action_type", "InstanceStart"), err);
        return r;
}

static int fc_start(const struct vm_spec *s, pid_t *ret_pid, struct ak_err *err)
{
        char bin[PATH_MAX], dir[PATH_MAX], path[PATH_MAX];
        cleanup_close int dir_fd = -1, initrd_fd = -1, root_fd = -1, console_fd = -1, api_fd = -1;
        struct fc_launch l = {.spec = s, .bin = bin, .kvm_gid = kvm_group()};
        pid_t pid = 0;
        int r;

        if (!find_firecracker(bin, sizeof(bin)))
                return ak_err_set(err, ENOENT, "no firecracker binary");
        (void)snprintf(dir, sizeof(dir), "%s/%s", s->run_dir, FC_DIR);
        if (mkdirat(AT_FDCWD, dir, 0700) < 0 && errno != EEXIST)
                return ak_err_errno(err, errno, "mkdir '%s'", dir);
        dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dir_fd < 0)
                return ak_err_errno(err, errno, "open '%s'", dir);
        if (s->run_as && fchown(dir_fd, s->run_as, s->run_as) < 0)
                return ak_err_errno(err, errno, "chown '%s'", dir);
        /* stale sockets: Firecracker binds its own and fails on an existing one */
        (void)unlinkat(dir_fd, FC_API, 0);
        (void)unlinkat(dir_fd, FC_VSOCK, 0);
        initrd_fd = open(s->initrd, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        root_fd = open(s->root_image, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        (void)snprintf(path, sizeof(path), "%s/%s", s->run_dir, VM_FILE_CONSOLE);
        console_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (initrd_fd < 0 || root_fd < 0 || console_fd < 0)
                return ak_err_errno(err, errno, "open the guest's files");
        r = share_files(s, initrd_fd, root_fd, err);
        if (r < 0)
                return r;
        l.dir_fd = dir_fd;
        l.initrd_fd = initrd_fd;
        l.root_fd = root_fd;
        l.console_fd = console_fd;
        r = spawn(&l, &pid, err);
        if (r < 0)
                return r;
        (void)snprintf(path, sizeof(path), "%s/%s", dir, FC_API);
        api_fd = wait_socket(path, pid, err);
        r = api_fd < 0 ? api_fd : configure(api_fd, s, initrd_fd, root_fd, err);
        if (r < 0) {
                (void)kill(pid, SIGKILL); /* ours, just forked: nothing can have replaced it */
                return r;
        }
        *ret_pid = pid;
        return 0;
}

static void fc_stop(const struct proc_ident *vmm)
{
        proc_terminate(vmm, FC_STOP_GRACE_MS);
}

static bool fc_status(const struct proc_ident *vmm)
{
        return proc_verify(vmm);
}

/* PATCH /vm {"state": "Paused"|"Resumed"}: the API's pause and resume of every vCPU. */
static int fc_pause(const char *run_dir, bool pause, struct ak_err *err)
{
        char path[PATH_MAX];
        cleanup_close int fd = -1;

        (void)snprintf(path, sizeof(path), "%s/%s/%s", run_dir, FC_DIR, FC_API);
        fd = unix_connect(path, err);
        if (fd < 0)
                return fd;
        return api(fd, "PATCH", "/vm", json_pack("{s:s}", "state", pause ? "Paused" : "Resumed"),
                   err);
}

/* A stream to the guest's agent: the hybrid vsock's CONNECT, retried until the guest listens
 * (Firecracker closes the connection while nothing does). */
static int fc_connect(const char *run_dir, struct ak_err *err)
{
        char path[PATH_MAX];
        int64_t until = now_monotonic_ns() + (int64_t)FC_CONNECT_WAIT_MS * NSEC_PER_MSEC;

        (void)snprintf(path, sizeof(path), "%s/%s/%s", run_dir, FC_DIR, FC_VSOCK);
        for (;;) {
                struct ak_err e = {0};
                cleanup_close int fd = unix_connect(path, &e);
                char line[64];
                size_t got = 0;

                if (fd >= 0) {
                        char req[32];
                        int n = snprintf(req, sizeof(req), "CONNECT %u\n", VM_VSOCK_PORT);
                        if (write_all(fd, req, (size_t)n) < 0)
                                goto retry;
                        while (got < sizeof(line) - 1) {
                                struct pollfd p = {fd, POLLIN, 0};
                                ssize_t k;
                                if (poll(&p, 1, 5000) <= 0)
                                        break;
                                k = read(fd, line + got, 1); /* byte by byte: the stream follows */
                                if (k <= 0)
                                        break;
                                if (line[got++] == '\n')
                                        break;
                        }
                        line[got] = '\0';
                        if (strncmp(line, "OK ", 3) == 0 && line[got - 1] == '\n') {
                                int ret = fd;
                                fd = -1;
                                return ret;
                        }
                }
        retry:
                if (now_monotonic_ns() > until)
                        return ak_err_set(err, ETIMEDOUT,
                                          "the guest's agent did not answer on vsock port %u "
                                          "within %d ms",
                                          VM_VSOCK_PORT, FC_CONNECT_WAIT_MS);
                usleep(20000);
        }
}

/* Ours when its working directory is run_dir's FC_DIR (the caller checks the owner). */
static bool fc_is_stray(pid_t pid, const char *run_dir)
{
        char link[64], cwd[PATH_MAX], want[PATH_MAX];
        ssize_t n;

        (void)snprintf(link, sizeof(link), "/proc/%d/cwd", (int)pid);
        n = readlink(link, cwd, sizeof(cwd) - 1);
        if (n <= 0)
                return false;
        cwd[n] = '\0';
        (void)snprintf(want, sizeof(want), "%s/%s", run_dir, FC_DIR);
        return streq(cwd, want);
}

const struct vm_driver vm_driver_firecracker = {
    .name = "firecracker",
    .uuid_opt = "--id",
    .vsock = true,
    .probe = fc_probe,
    .start = fc_start,
    .stop = fc_stop,
    .status = fc_status,
    .pause = fc_pause,
    .connect = fc_connect,
    .is_stray = fc_is_stray,
};
