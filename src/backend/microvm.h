/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The `microvm` backend's parts: the hypervisor driver interface (struct vm_driver; the `qemu`
 * driver is microvm-qemu.c) and the guest's boot files (microvm-guest.c: the kernel, the
 * initramfs with our agent as /init, the image's erofs). microvm.c is the backend itself.
 *
 * A driver runs one virtual machine from a struct vm_spec and hands back what identifies its
 * process; it never interprets the guest's channel: connect() returns a stream that carries the
 * multiplexer's frames (src/agent/mux.h), which the relay process turns into connections.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend/proc-util.h"
#include "shared/err.h"

#define VM_FILE_CHANNEL "vm.sock"     /* the hypervisor's end of the guest's channel */
#define VM_FILE_QMP "qmp.sock"        /* qemu: its QMP monitor (the host's only) */
#define VM_FILE_PAUSED "paused"       /* the host's record of a paused machine (microvm.c) */
#define VM_FILE_AGENT "agent.sock"    /* the relay's: connections to the agent */
#define VM_FILE_CONSOLE "console.log" /* the guest's serial console */
#define VM_FILE_INITRD "initrd"       /* the cached initramfs and this start's config */
#define VM_FILE_PID "vmm.pid"
#define VM_FILE_RUNTIME "runtime.json"

enum vm_accel { VM_ACCEL_TCG, VM_ACCEL_KVM };

/* One virtual machine, as a driver starts it. Paths are absolute. */
struct vm_spec {
        const char *run_dir; /* private: the driver's sockets, pid file and console log */
        const char *uuid;    /* the sandbox's: on the hypervisor's command line (--uuid) */
        const char *kernel;
        const char *initrd;
        const char *cmdline;
        const char *root_image; /* read-only block device (the image's erofs), or NULL: the
                                   root is a share (the host image) */
        uint32_t vcpus;
        uint64_t memory_mb;
        enum vm_accel accel;
        /* the kernel finds its virtio-mmio devices on its command line, not in ACPI tables (the
         * minimal kernel has no ACPI): the hypervisor lists them there */
        bool cmdline_devices;
        /* once its files are open, the hypervisor runs as this uid and gid (0: as the caller;
         * rootless) */
        uint32_t run_as;
        /* host directories: virtiofsd's sockets, relative to run_dir (vm_fs_socket_name),
         * each a vhost-user-fs device whose tag is "fs<i>"; guest memory is then shared */
        unsigned n_fs;
};

struct vm_driver {
        const char *name;
        /* the option whose next argument is the sandbox's uuid on the hypervisor's command
         * line (proc_ident's uuid_opt) */
        const char *uuid_opt;
        /* the guest's channel is virtio-vsock (port VM_VSOCK_PORT), not a virtio-serial port:
         * its initramfs carries the vsock modules */
        bool vsock;
        /* it has a virtio-fs device (host directories; microvm-fs.c) */
        bool virtiofs;
        /* 1 when usable here: *ret_accel is the accelerator it would use and why says so (and
         * why not the other); 0 with why saying what is missing. May boot a probe guest once
         * (its result is cached). */
        int (*probe)(enum vm_accel *ret_accel, char *why, size_t why_len);
        /* Starts the machine detached from the caller (it outlives it). *ret_pid is its process
         * (started with --uuid spec->uuid); on failure nothing of it runs. */
        int (*start)(const struct vm_spec *spec, pid_t *ret_pid, struct ak_err *err);
        /* Ends the machine (only the process ret described, checked again). */
        void (*stop)(const struct proc_ident *vmm);
        /* Whether the machine's process is still the one recorded. */
        bool (*status)(const struct proc_ident *vmm);
        /* Stops (pause) or continues every vCPU of run_dir's running machine through the
         * hypervisor's control interface (qemu: QMP stop/cont; firecracker: PATCH /vm), bounded
         * in time. The guest cannot reach that interface. */
        int (*pause)(const char *run_dir, bool pause, struct ak_err *err);
        /* A new stream to the guest's channel, or -errno. */
        int (*connect)(const char *run_dir, struct ak_err *err);
        /* Whether pid (a process of the caller's, or of a sandbox id as root) is a hypervisor
         * of this driver for run_dir: what a starter killed before its record leaves. */
        bool (*is_stray)(pid_t pid, const char *run_dir);
};

#define VM_VSOCK_PORT 52000 /* the guest agent's vsock port (upstream's) */

extern const struct vm_driver vm_driver_qemu;
extern const struct vm_driver vm_driver_firecracker;

/* Whether a firecracker binary is there ($AGENTKERNEL_FIRECRACKER, $FIRECRACKER_BIN, PATH). */
bool vm_firecracker_present(void);

/* --- microvm-guest.c: the guest's boot files --- */

/* The kernel to boot, by $AGENTKERNEL_VM_KERNEL (docs/backends.md, "The guest kernel"):
 * "minimal": the minimal kernel (vm_minimal_kernel), an error when it is not built; "debian": the
 * newest /boot/vmlinuz-* whose modules are installed; unset, empty or "auto": the minimal kernel
 * when it is built, else Debian's; anything else: that file. *ret_version is its release (the
 * modules' directory name; VM_MINIMAL_KERNEL_PREFIX and the config's hash for the minimal one,
 * which has no modules). */
#define VM_MINIMAL_KERNEL_PREFIX "minimal-"
int vm_guest_kernel(char *ret_path, size_t path_len, char *ret_version, size_t version_len,
                    struct ak_err *err);

/* The minimal kernel in dir (scripts/build-microvm-kernel.sh): the newest vmlinuz-*-HASH, HASH
 * being this build's config fragment's (AK_VM_KERNEL_HASH). Refused (-EPERM) unless the file is
 * a regular file and it, dir and every directory above dir are root-owned and written by no group
 * or other (a sticky directory aside); -ENOENT when none is built. */
/* What doctor and `setup -B microvm` say of the kernel vm_guest_kernel picked. */
void vm_guest_kernel_describe(const char *path, const char *version, char *out, size_t len);

int vm_minimal_kernel(const char *dir, char *ret_path, size_t path_len, struct ak_err *err);

/* The initramfs of this kernel and agent (the agent as /init, the virtio and filesystem
 * modules), built once into cache_dir under a name made of the kernel's version and a hash of
 * what it holds; then run_dir/VM_FILE_INITRD: that archive and a second one with /ak/config
 * (the agent's arguments and environment, the disk's size, and what of prof the guest applies
 * to every command: its seccomp program, pids_max, read_only_root). vsock: the guest's channel
 * is virtio-vsock (the vsock modules are added). net_proxy: the guest sets up proxy mode's
 * capture ("net=proxy" in the config; the nf_tables modules are added). fs: NULL, or the
 * guest's host directories as config entries ("fs=TAG DEST ro|rw", "root_fs=TAG"; the
 * virtio-fs modules are added). */
struct profile;
int vm_guest_initrd(const char *cache_dir, const char *agent, const char *kver, const char *run_dir,
                    char *const *agent_args, char *const *env, uint64_t disk_mb,
                    const struct profile *prof, bool vsock, bool net_proxy, char *const *fs,
                    struct ak_err *err);

/* The image's root filesystem as an erofs image in cache_dir, built once per image (its layer
 * directories name it). ret_path gets its path. */
int vm_guest_rootfs(const char *cache_dir, const char *image, char *ret_path, size_t len,
                    char ***ret_env, char **ret_workdir, char **ret_user, struct ak_err *err);

/* data dir/cache/microvm, created private. */
int vm_cache_dir(char *out, size_t len, struct ak_err *err);

/* Tests of the host's side only (AGENTKERNEL_TEST_VM_GUEST_ROOT=1): the guest's commands keep
 * every capability and get no seccomp filter, what a command that broke the guest's own
 * confinement (a guest kernel exploit) has. The host's defences must hold against it. */
bool vm_test_guest_root(void);

/* --- microvm-fs.c: host directories through virtiofsd --- */

#define VM_FS_MAX 35 /* the host image, workspace, home and VOLUMES_PER_SANDBOX_MAX volumes */

enum vm_share_kind {
        VM_SHARE_DIR,       /* a directory as it is (workspace, volume) */
        VM_SHARE_HOME,      /* the home, its credentials masked */
        VM_SHARE_HOST_ROOT, /* the `host` image's root, as native's (source unused) */
};

struct vm_share {
        enum vm_share_kind kind;
        const char *source; /* absolute host path */
        const char *dest;   /* in the guest */
        bool ro;
        bool volume;             /* its ids: the volumes' range (VOLUME_ID_BASE + k), as native's */
        const char *const *hide; /* VM_SHARE_HOME: agentkernel's own directories to mask */
        size_t n_hide;
        const char *mkdirs[VM_FS_MAX]; /* VM_SHARE_HOST_ROOT: the other shares' mount points */
        size_t n_mkdirs;
};

/* 1 when virtiofsd is installed (why: its path), else 0 with why saying what is missing. */
int vm_fs_probe(char *why, size_t why_len);
/* "fs-<index>.sock": the socket of share index in a run directory. */
void vm_fs_socket_name(unsigned index, char *out, size_t len);
/* Starts share index's virtiofsd, detached, listening on run_dir's socket for it (QEMU connects
 * to it): its ids those of the share's owner (rootful: the sandbox's range id_base for the rest;
 * rootless: the caller), its tree the share alone, nosuid and nodev, read-only as sh says. */
int vm_fs_start(const char *run_dir, unsigned index, const struct vm_share *sh, uint32_t id_base,
                pid_t *ret_pid, struct ak_err *err);
/* The end of share index's virtiofsd log, one line (for a message). */
void vm_fs_log_tail(const char *run_dir, unsigned index, char *out, size_t len);
/* Whether pid is one of run_dir's virtiofsd processes (by its executable and its argv[0]). */
bool vm_fs_is_stray(pid_t pid, const char *run_dir);

/* --- microvm-stats.c --- */

/* Adds the PSS (memory_bytes) and CPU time (cpu_usec) of the n host processes pids (0 or less:
 * skipped) to *ret. The caller checks they are the machine's before and after. */
struct backend_stats;
void vm_host_stats(const pid_t *pids, size_t n, struct backend_stats *ret);
/* Asks the guest's agent, through the sandbox's agent socket, for STATS (docs/protocol.md):
 * sets ret->pids and the guest_* fields. -EPROTO when the agent does not answer it. */
int vm_guest_stats(const char *agent_sock, struct backend_stats *ret);
