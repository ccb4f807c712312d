// SPDX-License-Identifier: Apache-2.0
/*
 * The files a microvm guest boots from (microvm.h): Debian's kernel as installed, an initramfs
 * of our static agent (/init) and the few modules the guest needs, and the image's root
 * filesystem as an erofs image. What is built is cached in the data directory's
 * cache/microvm, under names made of what it was built from, and published by rename, so a
 * crashed build leaves at most a temporary file and two starts never see half of one.
 *
 * The initramfs is a plain newc cpio written here (uncompressed: under emulation gunzip costs
 * more than reading the bytes); a start appends a second, tiny archive with /ak/config (the
 * kernel unpacks both, in order). It must never put anything of the host into the guest but
 * the agent, the modules and what the sandbox's own config says.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/microvm.h"
#include "backend/native-image.h"
#include "build-config.h"
#include "core/paths.h"
#include "core/private-dir.h"
#include "core/profile.h"
#include "runtime/seccomp.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/macro.h"
#include "shared/random-util.h"
#include "shared/strv.h"

/* In load order (each after what it depends on); a module that is not there is taken to be
 * built into the kernel. */
static const char *const guest_modules[] = {
    "drivers/virtio/virtio_ring",
    "drivers/virtio/virtio",
    "drivers/virtio/virtio_mmio",
    "drivers/char/virtio_console",
    "drivers/block/virtio_blk",
    "lib/libcrc32c",
    "fs/erofs/erofs",
    "fs/overlayfs/overlay",
};

/* A guest whose channel is virtio-vsock (the firecracker driver's) also loads these. */
static const char *const vsock_modules[] = {
    "net/vmw_vsock/vsock",
    "net/vmw_vsock/vmw_vsock_virtio_transport_common",
    "net/vmw_vsock/vmw_vsock_virtio_transport",
};

/* A proxy-mode guest (docs/network.md, "The microvm backend") also loads what the capture's
 * nf_tables batch needs (runtime/net-capture.h): the nat chain, redirect, conntrack state and
 * reject, with what they depend on (modules.dep of Debian's cloud kernel), in load order. */
static const char *const net_modules[] = {
    "net/netfilter/nfnetlink",
    "net/netfilter/nf_tables",
    "net/ipv4/netfilter/nf_defrag_ipv4",
    "net/ipv6/netfilter/nf_defrag_ipv6",
    "net/netfilter/nf_conntrack",
    "net/netfilter/nf_nat",
    "net/netfilter/nft_chain_nat",
    "net/netfilter/nft_redir",
    "net/netfilter/nft_ct",
    "net/netfilter/nft_reject",
    "net/ipv4/netfilter/nf_reject_ipv4",
    "net/ipv4/netfilter/nft_reject_ipv4",
};

/* A guest with host directories (microvm-fs.c) also loads virtio-fs. */
static const char *const fs_modules[] = {
    "fs/fuse/fuse",
    "fs/fuse/virtiofs",
};

#define MODULES_MAX                                                                                \
        (ARRAY_SIZE(guest_modules) + ARRAY_SIZE(vsock_modules) + ARRAY_SIZE(net_modules) +         \
         ARRAY_SIZE(fs_modules))

/* The modules of a guest, in the order it loads them; returns how many. */
static size_t module_list(bool vsock, bool net, bool fs, const char *out[MODULES_MAX])
{
        size_t n = 0;

        for (size_t i = 0; i < ARRAY_SIZE(guest_modules); i++)
                out[n++] = guest_modules[i];
        for (size_t i = 0; vsock && i < ARRAY_SIZE(vsock_modules); i++)
                out[n++] = vsock_modules[i];
        for (size_t i = 0; net && i < ARRAY_SIZE(net_modules); i++)
                out[n++] = net_modules[i];
        for (size_t i = 0; fs && i < ARRAY_SIZE(fs_modules); i++)
                out[n++] = fs_modules[i];
        return n;
}

#define INITRD_FILE_MAX (64u << 20)

bool vm_test_guest_root(void)
{
        const char *v = secure_getenv("AGENTKERNEL_TEST_VM_GUEST_ROOT");
        return v && streq(v, "1");
}

int vm_cache_dir(char *out, size_t len, struct ak_err *err)
{
        cleanup_free char *data = NULL;
        cleanup_close int dfd = paths_data_dir_open(&data, err);
        int fd;

        if (dfd < 0)
                return dfd;
        fd = private_dir_open_at(dfd, data, "cache/microvm", PRIVATE_CREATE, err);
        if (fd < 0)
                return fd;
        close(fd);
        if ((size_t)snprintf(out, len, "%s/cache/microvm", data) >= len)
                return ak_err_set(err, ENAMETOOLONG, "data directory path too long");
        return 0;
}

static bool kernel_usable(const char *version)
{
        char p[PATH_MAX];
        (void)snprintf(p, sizeof(p), "/usr/lib/modules/%s/modules.dep", version);
        return access(p, R_OK) == 0;
}

/* Debian's kernel: the newest /boot/vmlinuz-* whose modules are installed. */
static int debian_kernel(char *ret_path, size_t path_len, char *ret_version, size_t version_len,
                         struct ak_err *err)
{
        char best[256] = "";
        DIR *d = opendir("/boot");
        struct dirent *de;

        if (!d)
                return ak_err_set(err, ENOENT,
                                  "no guest kernel: /boot is missing (apt-get install "
                                  "linux-image-cloud-amd64, or set AGENTKERNEL_VM_KERNEL)");
        while ((de = readdir(d))) {
                const char *v = de->d_name + 8;
                if (strncmp(de->d_name, "vmlinuz-", 8) != 0 || strlen(v) >= sizeof(best) ||
                    !kernel_usable(v))
                        continue;
                if (!best[0] || strverscmp(v, best) > 0)
                        (void)snprintf(best, sizeof(best), "%s", v);
        }
        closedir(d);
        if (!best[0])
                return ak_err_set(err, ENOENT,
                                  "no guest kernel: no /boot/vmlinuz-* with its modules "
                                  "installed (apt-get install linux-image-cloud-amd64, or set "
                                  "AGENTKERNEL_VM_KERNEL)");
        (void)snprintf(ret_path, path_len, "/boot/vmlinuz-%s", best);
        if (access(ret_path, R_OK) < 0)
                return ak_err_errno(err, errno, "guest kernel '%s'", ret_path);
        (void)snprintf(ret_version, version_len, "%s", best);
        return 0;
}

/* Where the minimal kernel is: AK_VM_KERNEL_DIR, or $AGENTKERNEL_VM_KERNEL_DIR (the tests'; the
 * same ownership rules hold for it). */
static const char *minimal_dir(void)
{
        const char *env = secure_getenv("AGENTKERNEL_VM_KERNEL_DIR");
        return env && *env ? env : AK_VM_KERNEL_DIR;
}

/* Root's and nobody else's: owned by uid 0, written by no group or other. */
static int root_only(const struct stat *st, const char *path, struct ak_err *err)
{
        if (st->st_uid != 0 || (st->st_mode & (S_IWGRP | S_IWOTH)))
                return ak_err_set(err, EPERM,
                                  "minimal guest kernel: '%s' is not root-owned or is writable "
                                  "by others (mode %04o, owner %u): refusing to boot it",
                                  path, (unsigned)(st->st_mode & 07777), (unsigned)st->st_uid);
        return 0;
}

int vm_minimal_kernel(const char *dir, char *ret_path, size_t path_len, struct ak_err *err)
{
        char suffix[64], best[256] = "", parent[PATH_MAX];
        cleanup_close int dfd = -1;
        struct stat st;
        DIR *d;
        struct dirent *de;

        (void)snprintf(suffix, sizeof(suffix), "-%s", AK_VM_KERNEL_HASH);
        /* the directory and every one above it: root's (a user who could rename one could put
         * a kernel of theirs under the path) */
        (void)snprintf(parent, sizeof(parent), "%s", dir);
        for (char *slash = parent + strlen(parent); slash > parent; slash = strrchr(parent, '/')) {
                *slash = '\0';
                if (!parent[0])
                        break;
                if (lstat(parent, &st) < 0) {
                        if (errno == ENOENT)
                                break; /* said below, for dir itself */
                        return ak_err_errno(err, errno, "minimal guest kernel: '%s'", parent);
                }
                if (!S_ISDIR(st.st_mode))
                        return ak_err_set(err, ENOTDIR,
                                          "minimal guest kernel: '%s' is not a directory", parent);
                if (st.st_uid != 0 ||
                    ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)))
                        return root_only(&st, parent, err);
        }
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return errno == ENOENT
                           ? ak_err_set(err, ENOENT,
                                        "minimal guest kernel not built: no '%s' (run "
                                        "scripts/build-microvm-kernel.sh as root)",
                                        dir)
                           : ak_err_errno(err, errno, "minimal guest kernel: '%s'", dir);
        if (fstat(dfd, &st) < 0)
                return ak_err_errno(err, errno, "minimal guest kernel: '%s'", dir);
        if (root_only(&st, dir, err) < 0)
                return -EPERM;
        d = fdopendir(dup(dfd));
        if (!d)
                return ak_err_errno(err, errno, "minimal guest kernel: '%s'", dir);
        while ((de = readdir(d))) {
                size_t n = strlen(de->d_name);
                if (strncmp(de->d_name, "vmlinuz-", 8) != 0 || n >= sizeof(best) ||
                    n <= 8 + strlen(suffix) || !streq(de->d_name + n - strlen(suffix), suffix))
                        continue;
                if (!best[0] || strverscmp(de->d_name, best) > 0)
                        (void)snprintf(best, sizeof(best), "%s", de->d_name);
        }
        closedir(d);
        if (!best[0])
                return ak_err_set(err, ENOENT,
                                  "minimal guest kernel not built for this config (no "
                                  "'%s/vmlinuz-*%s': run scripts/build-microvm-kernel.sh as "
                                  "root)",
                                  dir, suffix);
        if (fstatat(dfd, best, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return ak_err_errno(err, errno, "minimal guest kernel '%s/%s'", dir, best);
        (void)snprintf(ret_path, path_len, "%s/%s", dir, best);
        if (!S_ISREG(st.st_mode))
                return ak_err_set(err, EPERM, "minimal guest kernel: '%s' is not a regular file",
                                  ret_path);
        return root_only(&st, ret_path, err);
}

int vm_guest_kernel(char *ret_path, size_t path_len, char *ret_version, size_t version_len,
                    struct ak_err *err)
{
        const char *env = secure_getenv("AGENTKERNEL_VM_KERNEL");
        int r;

        if (env && streq(env, "debian"))
                return debian_kernel(ret_path, path_len, ret_version, version_len, err);
        if (!env || !*env || streq(env, "minimal") || streq(env, "auto")) {
                /* the minimal kernel: everything built in, so its "version" names no modules'
                 * directory and the initramfs carries none */
                bool want = env && streq(env, "minimal");
                struct ak_err e = {0};

                r = vm_minimal_kernel(minimal_dir(), ret_path, path_len, &e);
                if (r >= 0) {
                        (void)snprintf(ret_version, version_len, "%s%s", VM_MINIMAL_KERNEL_PREFIX,
                                       AK_VM_KERNEL_HASH);
                        return 0;
                }
                /* auto: Debian's when none is built; one that is there but unsafe is refused */
                if (want || r != -ENOENT)
                        return ak_err_set(err, -r, "%s", ak_err_msg(&e));
                return debian_kernel(ret_path, path_len, ret_version, version_len, err);
        }
        {
                /* a kernel of one's own: its modules, if any, as for its release name */
                const char *base = strrchr(env, '/');
                base = base ? base + 1 : env;
                if (access(env, R_OK) < 0)
                        return ak_err_errno(err, errno, "AGENTKERNEL_VM_KERNEL '%s'", env);
                (void)snprintf(ret_path, path_len, "%s", env);
                (void)snprintf(ret_version, version_len, "%s",
                               strncmp(base, "vmlinuz-", 8) == 0 ? base + 8 : "");
                return 0;
        }
}

void vm_guest_kernel_describe(const char *path, const char *version, char *out, size_t len)
{
        if (strncmp(version, VM_MINIMAL_KERNEL_PREFIX, strlen(VM_MINIMAL_KERNEL_PREFIX)) == 0) {
                (void)snprintf(out, len, "minimal kernel '%s'", path);
                return;
        }
        if (strncmp(path, "/boot/", 6) == 0) {
                struct ak_err e = {0};
                char p[PATH_MAX];
                const char *env = secure_getenv("AGENTKERNEL_VM_KERNEL");

                if (env && streq(env, "debian"))
                        (void)snprintf(out, len,
                                       "Debian kernel '%s' (AGENTKERNEL_VM_KERNEL=debian)", path);
                else if (vm_minimal_kernel(minimal_dir(), p, sizeof(p), &e) < 0)
                        (void)snprintf(out, len,
                                       "Debian kernel '%s' with its modules in the initramfs "
                                       "(the minimal kernel is not built: "
                                       "scripts/build-microvm-kernel.sh)",
                                       path);
                else
                        (void)snprintf(out, len, "Debian kernel '%s'", path);
                return;
        }
        (void)snprintf(out, len, "kernel '%s' (AGENTKERNEL_VM_KERNEL)", path);
}

/* --- newc cpio --- */

static int cpio_entry(struct buf *b, const char *name, unsigned mode, const void *data, size_t len)
{
        static unsigned ino = 1000;
        size_t namesize = strlen(name) + 1;
        int r = buf_printf(b, "070701%08X%08X%08X%08X%08X%08X%08zX%08X%08X%08X%08X%08zX%08X", ino++,
                           mode, 0u, 0u, 1u, 0u, len, 0u, 0u, 0u, 0u, namesize, 0u);

        if (r >= 0)
                r = buf_append(b, name, namesize);
        while (r >= 0 && b->len % 4)
                r = buf_append_byte(b, 0);
        if (r >= 0 && len)
                r = buf_append(b, data, len);
        while (r >= 0 && b->len % 4)
                r = buf_append_byte(b, 0);
        return r;
}

static int cpio_file(struct buf *b, const char *name, unsigned mode, const char *path,
                     struct ak_err *err)
{
        cleanup_buf struct buf data = BUF_INIT;
        int r = read_file_at(AT_FDCWD, path, &data, INITRD_FILE_MAX);

        if (r < 0)
                return ak_err_errno(err, r, "read '%s'", path);
        r = cpio_entry(b, name, 0100000 | mode, data.data, data.len);
        return r < 0 ? ak_err_oom(err) : 0;
}

static int cpio_end(struct buf *b)
{
        return cpio_entry(b, "TRAILER!!!", 0, NULL, 0);
}

/* Writes data to dir/name through a temporary file and a rename. */
static int publish(const char *dir, const char *name, const void *data, size_t len,
                   struct ak_err *err)
{
        char path[PATH_MAX];
        int r;

        (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
        r = write_file_atomic_at(AT_FDCWD, path, data, len, 0600, false);
        return r < 0 ? ak_err_errno(err, r, "write '%s'", path) : 0;
}

/* Removes the initramfs files of other agents and kernels (a start reads its whole file before
 * using it, so one removed under it is not missed). */
static void prune_initrds(const char *cache_dir, const char *keep)
{
        DIR *d = opendir(cache_dir);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d)))
                if (strncmp(de->d_name, "initrd-", 7) == 0 && !streq(de->d_name, keep))
                        (void)unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
}

static int base_initrd(const char *cache_dir, const char *agent, const char *kver, bool vsock,
                       bool net, bool fs, struct buf *ret, struct ak_err *err)
{
        const char *modules[MODULES_MAX];
        size_t n_modules = module_list(vsock, net, fs, modules);
        cleanup_buf struct buf agent_bin = BUF_INIT, arc = BUF_INIT, list = BUF_INIT;
        char digest[SHA256_DIGEST_STRING_LENGTH], name[PATH_MAX], path[PATH_MAX];
        SHA2_CTX ctx;
        int r;

        r = read_file_at(AT_FDCWD, agent, &agent_bin, INITRD_FILE_MAX);
        if (r < 0)
                return ak_err_errno(err, r, "read the agent '%s'", agent);
        SHA256Init(&ctx);
        SHA256Update(&ctx, (const uint8_t *)agent_bin.data, agent_bin.len);
        SHA256Update(&ctx, (const uint8_t *)kver, strlen(kver) + 1);
        for (size_t i = 0; i < n_modules; i++)
                SHA256Update(&ctx, (const uint8_t *)modules[i], strlen(modules[i]) + 1);
        (void)SHA256End(&ctx, digest);
        (void)snprintf(name, sizeof(name), "initrd-%s-%.16s.cpio", kver[0] ? kver : "custom",
                       digest);
        (void)snprintf(path, sizeof(path), "%s/%s", cache_dir, name);
        if (read_file_at(AT_FDCWD, path, ret, INITRD_FILE_MAX) >= 0 && ret->len)
                return 0; /* made before */
        buf_reset(ret);

        r = cpio_entry(&arc, "ak", 040755, NULL, 0);
        if (r >= 0)
                r = cpio_entry(&arc, "lib", 040755, NULL, 0);
        if (r >= 0)
                r = cpio_entry(&arc, "lib/modules", 040755, NULL, 0);
        if (r >= 0)
                r = cpio_entry(&arc, "init", 0100755, agent_bin.data, agent_bin.len);
        if (r < 0)
                return ak_err_oom(err);
        for (size_t i = 0; kver[0] && i < n_modules; i++) {
                const char *base = strrchr(modules[i], '/') + 1;
                char src[PATH_MAX], dst[256];
                (void)snprintf(src, sizeof(src), "/usr/lib/modules/%s/kernel/%s.ko", kver,
                               modules[i]);
                if (access(src, R_OK) < 0)
                        continue; /* built in (or not needed by this kernel) */
                (void)snprintf(dst, sizeof(dst), "lib/modules/%s.ko", base);
                r = cpio_file(&arc, dst, 0644, src, err);
                if (r < 0)
                        return r;
                if (buf_printf(&list, "/%s", dst) < 0 || buf_append_byte(&list, 0) < 0)
                        return ak_err_oom(err);
        }
        if (cpio_entry(&arc, "ak/modules", 0100644, list.data, list.len) < 0 || cpio_end(&arc) < 0)
                return ak_err_oom(err);
        r = publish(cache_dir, name, arc.data, arc.len, err);
        if (r < 0)
                return r;
        prune_initrds(cache_dir, name);
        *ret = arc;
        arc = (struct buf)BUF_INIT;
        return 0;
}

/* The profile as the guest applies it to every command (agent-guest.c): its seccomp program
 * (the variant without host directories: a VM has none) as "seccomp=" and the program's bytes in
 * hex (the config is NUL-separated), "pids_max=", and "read_only_root=1". */
static int profile_config(struct buf *config, const struct profile *prof, struct ak_err *err)
{
        struct sock_fprog prog;
        const unsigned char *b;

        if (vm_test_guest_root())
                goto no_filter;
        if (seccomp_program(prof->seccomp, false, &prog) < 0)
                return ak_err_set(err, EINVAL, "no seccomp program for profile '%s'", prof->name);
        b = (const unsigned char *)prog.filter;
        if (buf_printf(config, "seccomp=") < 0)
                return ak_err_oom(err);
        for (size_t i = 0; i < (size_t)prog.len * sizeof(prog.filter[0]); i++)
                if (buf_printf(config, "%02x", b[i]) < 0)
                        return ak_err_oom(err);
        if (buf_append_byte(config, 0) < 0)
                return ak_err_oom(err);
no_filter:
        if (prof->pids_max &&
            (buf_printf(config, "pids_max=%llu", (unsigned long long)prof->pids_max) < 0 ||
             buf_append_byte(config, 0) < 0))
                return ak_err_oom(err);
        if (prof->read_only_root &&
            (buf_printf(config, "read_only_root=1") < 0 || buf_append_byte(config, 0) < 0))
                return ak_err_oom(err);
        return 0;
}

int vm_guest_initrd(const char *cache_dir, const char *agent, const char *kver, const char *run_dir,
                    char *const *agent_args, char *const *env, uint64_t disk_mb,
                    const struct profile *prof, bool vsock, bool net_proxy, char *const *fs,
                    struct ak_err *err)
{
        cleanup_buf struct buf arc = BUF_INIT, config = BUF_INIT;
        int r = base_initrd(cache_dir, agent, kver, vsock, net_proxy, fs && fs[0], &arc, err);

        if (r < 0)
                return r;
        r = profile_config(&config, prof, err);
        if (r < 0)
                return r;
        for (size_t i = 0; agent_args && agent_args[i]; i++)
                if (buf_printf(&config, "arg=%s", agent_args[i]) < 0 ||
                    buf_append_byte(&config, 0) < 0)
                        return ak_err_oom(err);
        for (size_t i = 0; env && env[i]; i++)
                if (buf_printf(&config, "env=%s", env[i]) < 0 || buf_append_byte(&config, 0) < 0)
                        return ak_err_oom(err);
        if (net_proxy && buf_append(&config, "net=proxy", sizeof("net=proxy")) < 0)
                return ak_err_oom(err);
        for (size_t i = 0; fs && fs[i]; i++)
                if (buf_append(&config, fs[i], strlen(fs[i]) + 1) < 0)
                        return ak_err_oom(err);
        if (buf_printf(&config, "disk_mb=%llu", (unsigned long long)disk_mb) < 0 ||
            buf_append_byte(&config, 0) < 0)
                return ak_err_oom(err);
        if (cpio_entry(&arc, "ak/config", 0100600, config.data, config.len) < 0 ||
            cpio_end(&arc) < 0)
                return ak_err_oom(err);
        return publish(run_dir, VM_FILE_INITRD, arc.data, arc.len, err);
}

static int run_mkfs(const char *image, const char *dir, struct ak_err *err)
{
        int status;
        pid_t pid = fork();

        if (pid < 0)
                return ak_err_errno(err, errno, "fork");
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (null >= 0) {
                        (void)dup2(null, STDIN_FILENO);
                        (void)dup2(null, STDOUT_FILENO);
                }
                execlp("mkfs.erofs", "mkfs.erofs", "--quiet", "-x-1", image, dir, (char *)NULL);
                _exit(127);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return ak_err_errno(err, errno, "wait for mkfs.erofs");
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
                return ak_err_set(err, ENOENT,
                                  "mkfs.erofs is not installed (apt-get install erofs-utils)");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return ak_err_set(err, EIO, "mkfs.erofs failed making '%s'", image);
        return 0;
}

int vm_guest_rootfs(const char *cache_dir, const char *image, char *ret_path, size_t len,
                    char ***ret_env, char **ret_workdir, char **ret_user, struct ak_err *err)
{
        cleanup_native_image struct native_image img = NATIVE_IMAGE_INIT;
        char digest[SHA256_DIGEST_STRING_LENGTH], path[PATH_MAX], tmp[PATH_MAX], dir[PATH_MAX],
            lock[PATH_MAX], id[33];
        cleanup_close int lock_fd = -1;
        int r = native_image_open(image, &img, err);

        if (r < 0)
                return r;
        (void)SHA256Data((const uint8_t *)img.lowers, strlen(img.lowers), digest);
        (void)snprintf(path, sizeof(path), "%s/rootfs-%.32s.erofs", cache_dir, digest);
        (void)snprintf(lock, sizeof(lock), "%s/rootfs.lock", cache_dir);
        lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (lock_fd < 0 || flock(lock_fd, LOCK_EX) < 0)
                return ak_err_errno(err, errno, "lock '%s'", lock);
        if (access(path, R_OK) < 0) {
                random_hex(id, 16);
                (void)snprintf(dir, sizeof(dir), "%s/.build-%s", cache_dir, id);
                (void)snprintf(tmp, sizeof(tmp), "%s/.build-%s.erofs", cache_dir, id);
                r = native_image_copy(&img, dir, 0, err);
                if (r >= 0 && chmod(dir, 0755) < 0)
                        r = ak_err_errno(err, errno, "chmod '%s'", dir);
                if (r >= 0)
                        r = run_mkfs(tmp, dir, err);
                if (r >= 0 && rename(tmp, path) < 0)
                        r = ak_err_errno(err, errno, "rename '%s'", tmp);
                (void)rm_rf_at(AT_FDCWD, dir);
                (void)unlink(tmp);
                if (r < 0)
                        return ak_err_prefix(err, "building the root filesystem of '%s'", image);
        }
        if ((size_t)snprintf(ret_path, len, "%s", path) >= len)
                return ak_err_set(err, ENAMETOOLONG, "path too long");
        *ret_env = TAKE_PTR(img.env);
        *ret_workdir = TAKE_PTR(img.workdir);
        *ret_user = TAKE_PTR(img.user);
        return 0;
}
