// SPDX-License-Identifier: Apache-2.0
/*
 * The `qemu` driver of the microvm backend (struct vm_driver, microvm.h): QEMU's `microvm`
 * machine — virtio-mmio devices, qboot (QEMU's default firmware for it), no PCI; ACPI stays on
 * because it is how Debian's kernel finds virtio-mmio devices (its VIRTIO_MMIO_CMDLINE_DEVICES
 * is off). The guest's channel is a virtio-serial port named "ak.0" whose other end is a unix
 * socket QEMU listens on in the sandbox's private run directory. QEMU daemonizes itself once its
 * devices (that socket included) exist, so the machine outlives the caller.
 *
 * KVM is used only when it can actually run a guest: on a paravirtual nested KVM (kvm-pvm) the
 * device opens and VMs are created, yet a Linux guest never gets past entering long mode. So the
 * probe boots the guest kernel once under KVM (no initramfs: it must print its banner and
 * panic) and caches what it saw per host boot; otherwise TCG, said by `doctor`.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "backend/microvm.h"
#include "core/private-dir.h"
#include "core/runtime-dir.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/parse-util.h"
#include "shared/random-util.h"
#include "shared/time-util.h"

#define QEMU_BIN "qemu-system-x86_64"
#define KVM_PROBE_TIMEOUT_MS 5000
#define QEMU_STOP_GRACE_MS 3000
#define CONSOLE_MAX (1u << 20)   /* bytes of the guest's console kept on the host */
#define QMP_TIMEOUT_MS 5000      /* one QMP exchange, greeting to answer */
#define QMP_READ_MAX (64u << 10) /* bytes read from QMP in one exchange, events included */

static bool find_qemu(char *out, size_t len)
{
        static const char *const envs[] = {"AGENTKERNEL_QEMU", NULL};
        return proc_find_program(envs, QEMU_BIN, out, len);
}

/* Boots kernel under KVM with its console in a pipe: true when its banner shows in time. */
static bool kvm_boots(const char *qemu, const char *kernel, char *why, size_t why_len)
{
        int p[2], status;
        pid_t pid;
        cleanup_buf struct buf out = BUF_INIT;
        int64_t until = now_monotonic_ns() + (int64_t)KVM_PROBE_TIMEOUT_MS * NSEC_PER_MSEC;
        bool ok = false;

        if (pipe2(p, O_CLOEXEC) < 0)
                return false;
        pid = fork();
        if (pid < 0) {
                close(p[0]);
                close(p[1]);
                return false;
        }
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                (void)dup2(null, STDIN_FILENO);
                (void)dup2(p[1], STDOUT_FILENO);
                (void)dup2(null, STDERR_FILENO);
                execl(qemu, qemu, "-M", "microvm", "-accel", "kvm", "-cpu", "host", "-m", "128",
                      "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none",
                      "-no-reboot", "-serial", "stdio", "-kernel", kernel, "-append",
                      "console=ttyS0 panic=-1 tsc_early_khz=2000000", (char *)NULL);
                _exit(127);
        }
        close(p[1]);
        (void)fd_set_nonblock(p[0], true);
        while (!ok) {
                int64_t left = (until - now_monotonic_ns()) / NSEC_PER_MSEC;
                struct pollfd pf = {p[0], POLLIN, 0};
                char chunk[4096];
                ssize_t n;
                if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
                        break;
                n = read(p[0], chunk, sizeof(chunk));
                if (n <= 0)
                        break;
                if (out.len < (1u << 20))
                        (void)buf_append(&out, chunk, (size_t)n);
                ok = out.data && strstr(out.data, "Linux version");
        }
        close(p[0]);
        (void)kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (!ok)
                (void)snprintf(why, why_len,
                               "/dev/kvm opens but a probe guest did not boot under it within "
                               "%d ms (a paravirtual nested KVM?)",
                               KVM_PROBE_TIMEOUT_MS);
        return ok;
}

/* Where the probe's result is kept: the host's, not a data directory's (it says what this host
 * can do, and every data directory would pay the probe's seconds again): the runtime directory
 * (/run/agentkernel as root, $XDG_RUNTIME_DIR/agentkernel rootless), else the data cache. */
static int probe_cache_dir(char *out, size_t len)
{
        cleanup_free char *top = runtime_dir_top();

        if (top && (size_t)snprintf(out, len, "%s", top) < len) {
                cleanup_close int fd =
                    private_dir_open(out, "runtime directory", PRIVATE_CREATE, NULL, NULL);
                if (fd >= 0)
                        return 0;
        }
        return vm_cache_dir(out, len, NULL);
}

/* The KVM probe's result for this host boot, cached: "kvm", or "tcg <why>". */
static enum vm_accel kvm_probe(const char *qemu, char *why, size_t why_len)
{
        char cache[PATH_MAX], kernel[PATH_MAX], kver[256], boot[64] = "", path[PATH_MAX * 2];
        cleanup_buf struct buf b = BUF_INIT;
        const char *force = secure_getenv("AGENTKERNEL_VM_ACCEL");
        enum vm_accel a;

        if (force && streq(force, "tcg")) {
                (void)snprintf(why, why_len, "AGENTKERNEL_VM_ACCEL=tcg");
                return VM_ACCEL_TCG;
        }
        if (access("/dev/kvm", R_OK | W_OK) < 0) {
                (void)snprintf(why, why_len, "no usable /dev/kvm");
                return VM_ACCEL_TCG;
        }
        if (force && streq(force, "kvm")) {
                (void)snprintf(why, why_len, "AGENTKERNEL_VM_ACCEL=kvm");
                return VM_ACCEL_KVM;
        }
        if (probe_cache_dir(cache, sizeof(cache)) < 0 ||
            vm_guest_kernel(kernel, sizeof(kernel), kver, sizeof(kver), NULL) < 0) {
                (void)snprintf(why, why_len, "the KVM probe needs a guest kernel");
                return VM_ACCEL_TCG;
        }
        {
                cleanup_buf struct buf id = BUF_INIT;
                if (read_file_at(AT_FDCWD, "/proc/sys/kernel/random/boot_id", &id, 64) >= 0 &&
                    id.data)
                        (void)snprintf(boot, sizeof(boot), "%.36s", id.data);
        }
        (void)snprintf(path, sizeof(path), "%s/kvm-probe-%s", cache, boot);
        if (read_file_at(AT_FDCWD, path, &b, 4096) >= 0 && b.data && b.len) {
                if (strncmp(b.data, "kvm", 3) == 0) {
                        (void)snprintf(why, why_len, "a probe guest booted under KVM");
                        return VM_ACCEL_KVM;
                }
                (void)snprintf(why, why_len, "%s", b.len > 4 ? b.data + 4 : "");
                return VM_ACCEL_TCG;
        }
        a = kvm_boots(qemu, kernel, why, why_len) ? VM_ACCEL_KVM : VM_ACCEL_TCG;
        if (a == VM_ACCEL_KVM)
                (void)snprintf(why, why_len, "a probe guest booted under KVM");
        buf_reset(&b);
        (void)buf_printf(&b, "%s %s", a == VM_ACCEL_KVM ? "kvm" : "tcg", why);
        (void)write_file_atomic_at(AT_FDCWD, path, b.data, b.len, 0600, false);
        return a;
}

static int qemu_probe(enum vm_accel *ret_accel, char *why, size_t why_len)
{
        char qemu[PATH_MAX], kernel[PATH_MAX], kver[256], acc_why[256], what[PATH_MAX + 128];
        struct ak_err e = {0};

        if (!find_qemu(qemu, sizeof(qemu))) {
                (void)snprintf(why, why_len,
                               "%s is not installed (apt-get install qemu-system-x86)", QEMU_BIN);
                return 0;
        }
        if (vm_guest_kernel(kernel, sizeof(kernel), kver, sizeof(kver), &e) < 0) {
                (void)snprintf(why, why_len, "%s", ak_err_msg(&e));
                return 0;
        }
        vm_guest_kernel_describe(kernel, kver, what, sizeof(what));
        *ret_accel = kvm_probe(qemu, acc_why, sizeof(acc_why));
        if (*ret_accel == VM_ACCEL_KVM)
                (void)snprintf(why, why_len, "qemu -M microvm with KVM (%s), %s", acc_why, what);
        else
                (void)snprintf(why, why_len,
                               "qemu -M microvm with TCG, software emulation (KVM: %s), %s",
                               acc_why, what);
        return 1;
}

static int qemu_start(const struct vm_spec *s, pid_t *ret_pid, struct ak_err *err)
{
        char qemu[PATH_MAX], mem[32], smp[32], pidfile[PATH_MAX], serial[PATH_MAX + 8],
            drive[PATH_MAX + 64], chardev[PATH_MAX + 64], errlog[PATH_MAX], runas[32], memobj[96],
            machine[64], qmp[96];
        char fs_chardev[VM_FS_MAX][96], fs_device[VM_FS_MAX][96];
        cleanup_buf struct buf pidtxt = BUF_INIT, errs = BUF_INIT;
        int status;
        pid_t pid;
        uint32_t v;

        if (!find_qemu(qemu, sizeof(qemu)))
                return ak_err_set(
                    err, ENOENT, "%s is not installed (apt-get install qemu-system-x86)", QEMU_BIN);
        (void)snprintf(mem, sizeof(mem), "%llu", (unsigned long long)s->memory_mb);
        (void)snprintf(smp, sizeof(smp), "%u", s->vcpus ? s->vcpus : 1);
        (void)snprintf(runas, sizeof(runas), "%u:%u", s->run_as, s->run_as);
        (void)snprintf(pidfile, sizeof(pidfile), "%s/%s", s->run_dir, VM_FILE_PID);
        (void)snprintf(serial, sizeof(serial), "file:%s/%s", s->run_dir, VM_FILE_CONSOLE);
        (void)snprintf(errlog, sizeof(errlog), "%s/qemu.err", s->run_dir);
        if ((s->root_image && strchr(s->root_image, ',')) || strchr(s->run_dir, ','))
                return ak_err_set(err, EINVAL, "paths with ',' cannot be given to qemu: '%s'",
                                  strchr(s->run_dir, ',') ? s->run_dir : s->root_image);
        if (s->n_fs > VM_FS_MAX)
                return ak_err_set(err, E2BIG, "at most %d host directories in a microvm",
                                  VM_FS_MAX);
        if (s->root_image)
                (void)snprintf(drive, sizeof(drive),
                               "id=root,file=%s,format=raw,if=none,readonly=on", s->root_image);
        /* virtiofsd reads and writes guest memory: a memfd QEMU shares with it, made and sized
         * below before RLIMIT_FSIZE (which would refuse QEMU's own ftruncate of one) and
         * inherited: it ends with QEMU, nothing of it is in a filesystem */
        memobj[0] = '\0';
        for (unsigned i = 0; i < s->n_fs; i++) {
                char sock[32];
                vm_fs_socket_name(i, sock, sizeof(sock));
                (void)snprintf(fs_chardev[i], sizeof(fs_chardev[i]), "socket,id=fs%u,path=%s", i,
                               sock);
                (void)snprintf(fs_device[i], sizeof(fs_device[i]),
                               "vhost-user-fs-device,chardev=fs%u,tag=fs%u", i, i);
        }
        /* relative to QEMU's working directory, the run directory (QEMU binds it before it
         * leaves for /): a unix socket's path is at most 107 bytes, a run directory's is not */
        (void)snprintf(chardev, sizeof(chardev), "socket,id=ak,path=%s,server=on,wait=off",
                       VM_FILE_CHANNEL);
        /* the host's control of the machine (pause): a monitor on a socket of the run
         * directory, like the channel; no device of the guest's is connected to it */
        (void)snprintf(qmp, sizeof(qmp), "socket,id=qmp,path=%s,server=on,wait=off", VM_FILE_QMP);
        pid = fork();
        if (pid < 0)
                return ak_err_errno(err, errno, "fork");
        if (pid == 0) {
                const char *argv[64 + 4 * VM_FS_MAX];
                size_t n = 0;
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                int log = open(errlog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
                sigset_t none;

                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                (void)setsid();
                umask(0077);
                /* The guest writes the console log: whatever a guest prints, the host keeps at
                 * most CONSOLE_MAX of it (QEMU drops what a write beyond it refuses; SIGXFSZ is
                 * ignored so that such a write fails instead of ending the VM). QEMU writes no
                 * other file but its pid file. */
                if (s->n_fs) {
                        int mfd = memfd_create("ak-guest-ram", 0);
                        if (mfd < 0 || ftruncate(mfd, (off_t)s->memory_mb * 1024 * 1024) < 0)
                                _exit(125);
                        (void)snprintf(memobj, sizeof(memobj),
                                       "memory-backend-file,id=mem,size=%lluM,share=on,"
                                       "mem-path=/proc/self/fd/%d",
                                       (unsigned long long)s->memory_mb, mfd);
                }
                (void)signal(SIGXFSZ, SIG_IGN);
                (void)setrlimit(RLIMIT_FSIZE,
                                &(struct rlimit){.rlim_cur = CONSOLE_MAX, .rlim_max = CONSOLE_MAX});
                (void)dup2(null, STDIN_FILENO);
                (void)dup2(null, STDOUT_FILENO);
                (void)dup2(log >= 0 ? log : null, STDERR_FILENO);
                if (chdir(s->run_dir) < 0)
                        _exit(126);
                argv[n++] = qemu;
                argv[n++] = "-M";
                /* memory-backend: the shared memfd virtiofsd maps; without ACPI QEMU puts
                 * virtio_mmio.device=... on the command line itself */
                (void)snprintf(machine, sizeof(machine), "microvm%s%s",
                               s->n_fs ? ",memory-backend=mem" : "",
                               s->cmdline_devices ? ",acpi=off" : "");
                argv[n++] = machine;
                if (s->n_fs) {
                        argv[n++] = "-object";
                        argv[n++] = memobj;
                        /* virtio 1.0 over mmio: virtiofsd's libvhost-user has no legacy */
                        argv[n++] = "-global";
                        argv[n++] = "virtio-mmio.force-legacy=false";
                }
                argv[n++] = "-accel";
                argv[n++] = s->accel == VM_ACCEL_KVM ? "kvm" : "tcg";
                argv[n++] = "-cpu";
                argv[n++] = s->accel == VM_ACCEL_KVM ? "host" : "max";
                argv[n++] = "-m";
                argv[n++] = mem;
                argv[n++] = "-smp";
                argv[n++] = smp;
                argv[n++] = "-nodefaults";
                argv[n++] = "-no-user-config";
                argv[n++] = "-display";
                argv[n++] = "none";
                argv[n++] = "-no-reboot";
                argv[n++] = "-kernel";
                argv[n++] = s->kernel;
                argv[n++] = "-initrd";
                argv[n++] = s->initrd;
                argv[n++] = "-append";
                argv[n++] = s->cmdline;
                argv[n++] = "-serial";
                argv[n++] = serial;
                if (s->root_image) {
                        argv[n++] = "-drive";
                        argv[n++] = drive;
                        argv[n++] = "-device";
                        argv[n++] = "virtio-blk-device,drive=root";
                }
                for (unsigned i = 0; i < s->n_fs; i++) {
                        argv[n++] = "-chardev";
                        argv[n++] = fs_chardev[i];
                        argv[n++] = "-device";
                        argv[n++] = fs_device[i];
                }
                argv[n++] = "-device";
                argv[n++] = "virtio-serial-device,max_ports=2";
                argv[n++] = "-chardev";
                argv[n++] = chardev;
                argv[n++] = "-device";
                argv[n++] = "virtserialport,chardev=ak,name=ak.0";
                argv[n++] = "-chardev";
                argv[n++] = qmp;
                argv[n++] = "-mon";
                argv[n++] = "chardev=qmp,mode=control";
                /* What a guest that breaks out of its device models gets: no root (an id of
                 * the sandbox's own range, after QEMU opened its files and sockets) and
                 * QEMU's seccomp filter (no obsolete calls, no scheduling or resource
                 * changes). Its spawn=deny cannot be had: it forbids the fork of -daemonize. */
                if (s->run_as) {
                        argv[n++] = "-runas";
                        argv[n++] = runas;
                }
                argv[n++] = "-sandbox";
                argv[n++] = "on,obsolete=deny,resourcecontrol=deny";
                argv[n++] = "-daemonize";
                argv[n++] = "-pidfile";
                argv[n++] = pidfile;
                /* what ties the process to this sandbox (proc_verify; QEMU takes --opt too) */
                argv[n++] = "--uuid";
                argv[n++] = s->uuid;
                argv[n] = NULL;
                execv(qemu, (char *const *)argv);
                _exit(127);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return ak_err_errno(err, errno, "wait for qemu");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                (void)read_file_at(AT_FDCWD, errlog, &errs, 4096);
                if (errs.len && errs.data[errs.len - 1] == '\n')
                        errs.data[--errs.len] = '\0';
                return ak_err_set(err, EIO, "qemu did not start: %s",
                                  errs.len ? errs.data : "no message");
        }
        if (read_file_at(AT_FDCWD, pidfile, &pidtxt, 64) < 0 || !pidtxt.data)
                return ak_err_set(err, EIO, "qemu wrote no pid file");
        pidtxt.data[strcspn(pidtxt.data, "\n")] = '\0';
        if (safe_atou32(pidtxt.data, &v) < 0 || v <= 1 || v > INT32_MAX)
                return ak_err_set(err, EIO, "qemu's pid file says '%s'", pidtxt.data);
        *ret_pid = (pid_t)v;
        /* QEMU's daemonizing sets umask 027: the channel's socket is the owner's only, like
         * everything else in the (already private) run directory */
        for (int i = 0; i < 2; i++) {
                (void)snprintf(pidfile, sizeof(pidfile), "%s/%s", s->run_dir,
                               i ? VM_FILE_QMP : VM_FILE_CHANNEL);
                if (fchmodat(AT_FDCWD, pidfile, 0600, 0) < 0)
                        return ak_err_errno(err, errno, "chmod '%s'", pidfile);
        }
        return 0;
}

static void qemu_stop(const struct proc_ident *vmm)
{
        proc_terminate(vmm, QEMU_STOP_GRACE_MS);
}

static bool qemu_status(const struct proc_ident *vmm)
{
        return proc_verify(vmm);
}

/* ---- QMP: the greeting, qmp_capabilities, one command; every read bounded in time and size ----
 */

struct qmp {
        int fd;
        int64_t until;
        size_t read; /* bytes read so far */
        struct buf in;
};

/* The next message (QMP ends each with a newline), an object. */
static int qmp_next(struct qmp *q, json_t **ret, struct ak_err *err)
{
        for (;;) {
                char *nl = q->in.data ? memchr(q->in.data, '\n', q->in.len) : NULL;
                char chunk[4096];
                struct pollfd p = {q->fd, POLLIN, 0};
                int64_t left;
                ssize_t n;

                if (nl) {
                        size_t len = (size_t)(nl - q->in.data) + 1;
                        json_t *o = json_loadb(q->in.data, len, 0, NULL);
                        buf_consume(&q->in, len);
                        if (!json_is_object(o)) {
                                json_decref(o);
                                return ak_err_set(err, EPROTO, "qemu's QMP sent no JSON object");
                        }
                        *ret = o;
                        return 0;
                }
                left = (q->until - now_monotonic_ns()) / NSEC_PER_MSEC;
                if (left <= 0 || poll(&p, 1, (int)left) <= 0)
                        return ak_err_set(err, ETIMEDOUT, "qemu's QMP did not answer within %d ms",
                                          QMP_TIMEOUT_MS);
                n = read(q->fd, chunk, sizeof(chunk));
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n <= 0)
                        return ak_err_set(err, EPIPE, "qemu's QMP closed the connection");
                q->read += (size_t)n;
                if (q->read > QMP_READ_MAX || buf_append(&q->in, chunk, (size_t)n) < 0)
                        return ak_err_set(err, EMSGSIZE, "qemu's QMP sent too much");
        }
}

/* Runs cmd: 0 on its "return", else its error's description. Events before it are skipped. */
static int qmp_execute(struct qmp *q, const char *cmd, struct ak_err *err)
{
        char req[96];
        int n = snprintf(req, sizeof(req), "{\"execute\":\"%s\"}\n", cmd);
        int r = write_all(q->fd, req, (size_t)n);

        if (r < 0)
                return ak_err_errno(err, r, "send to qemu's QMP");
        for (;;) {
                cleanup_json json_t *o = NULL;
                json_t *e;
                r = qmp_next(q, &o, err);
                if (r < 0)
                        return r;
                if (json_object_get(o, "return"))
                        return 0;
                if ((e = json_object_get(o, "error"))) {
                        const char *desc = json_string_value(json_object_get(e, "desc"));
                        return ak_err_set(err, EIO, "qemu refused '%s': %s", cmd,
                                          desc ? desc : "no message");
                }
                /* an event ({"event": ...}): not the answer */
        }
}

static int qemu_pause(const char *run_dir, bool pause, struct ak_err *err)
{
        char path[PATH_MAX];
        cleanup_close int fd = -1;
        cleanup_json json_t *greeting = NULL;
        struct qmp q = {.in = BUF_INIT};
        int r;

        (void)snprintf(path, sizeof(path), "%s/%s", run_dir, VM_FILE_QMP);
        fd = unix_connect(path, err);
        if (fd < 0)
                return fd;
        q.fd = fd;
        q.until = now_monotonic_ns() + (int64_t)QMP_TIMEOUT_MS * NSEC_PER_MSEC;
        r = qmp_next(&q, &greeting, err);
        if (r >= 0 && !json_object_get(greeting, "QMP"))
                r = ak_err_set(err, EPROTO, "qemu's QMP greeting is something else");
        if (r >= 0)
                r = qmp_execute(&q, "qmp_capabilities", err);
        if (r >= 0)
                r = qmp_execute(&q, pause ? "stop" : "cont", err);
        buf_done(&q.in);
        return r;
}

static int qemu_connect(const char *run_dir, struct ak_err *err)
{
        char path[PATH_MAX];

        (void)snprintf(path, sizeof(path), "%s/%s", run_dir, VM_FILE_CHANNEL);
        return unix_connect(path, err);
}

/* Ours when it is QEMU and its serial console argument names run_dir's console log, so no other
 * process is ever taken for one (the caller checks the owner). */
static bool qemu_is_stray(pid_t pid, const char *run_dir)
{
        char path[64], console_arg[PATH_MAX + 16];
        cleanup_buf struct buf b = BUF_INIT;
        const char *base;

        (void)snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
        if (read_file_at(AT_FDCWD, path, &b, 1u << 16) < 0 || !b.data)
                return false;
        base = strrchr(b.data, '/');
        base = base ? base + 1 : b.data;
        if (strncmp(base, "qemu-system-", 12) != 0)
                return false;
        (void)snprintf(console_arg, sizeof(console_arg), "file:%s/%s", run_dir, VM_FILE_CONSOLE);
        for (size_t i = 0; i < b.len;) {
                const char *arg = b.data + i;
                i += strnlen(arg, b.len - i) + 1;
                if (streq(arg, console_arg))
                        return true;
        }
        return false;
}

const struct vm_driver vm_driver_qemu = {
    .name = "qemu",
    .uuid_opt = "--uuid",
    .virtiofs = true,
    .probe = qemu_probe,
    .start = qemu_start,
    .stop = qemu_stop,
    .status = qemu_status,
    .pause = qemu_pause,
    .connect = qemu_connect,
    .is_stray = qemu_is_stray,
};
