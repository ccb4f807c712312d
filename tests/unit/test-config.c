// SPDX-License-Identifier: Apache-2.0
/* agentkernel.toml as text (sections, types, [[files]] rules, disk_mb, what decides the image
 * and the pullers' settings), and the trusted reader with its trust store and every refusal,
 * on files made here (a private AGENTKERNEL_DATA_DIR per run). */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/trust.h"
#include "shared/fd-util.h"
#include "shared/net-mode.h"

static char dir[64];

static int parse(const char *text, struct config **ret)
{
        struct ak_err err = {0};
        return config_parse(text, strlen(text), "/proj", ret, &err);
}

static void test_files_sources_as_text(void **unused)
{
        static const char *const bad[] = {"/etc/shadow", "..", "../x", "a/../../x", "a/..", ""};
        static const char *const good[] = {"x", "a/b", "a..b", "..a", "a/.../b", "./x"};
        struct config *c = NULL;
        char text[256];

        (void)unused;
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                (void)snprintf(text, sizeof(text),
                               "[[files]]\nsource = \"%s\"\ndest = \"/tmp/x\"\n", bad[i]);
                assert_int_equal(parse(text, &c), -EINVAL);
        }
        for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
                (void)snprintf(text, sizeof(text),
                               "[[files]]\nsource = \"%s\"\ndest = \"/tmp/x\"\n", good[i]);
                assert_int_equal(parse(text, &c), 0);
                assert_string_equal(c->files[0].source, good[i]);
                assert_string_equal(c->dir, "/proj");
                config_free(c);
        }
        /* a NUL inside the string cuts nothing short */
        assert_int_equal(
            parse("[[files]]\nsource = \"x\\u0000/../../etc\"\ndest = \"/tmp/x\"\n", &c), -EINVAL);
}

static void test_disk_mb(void **unused)
{
        struct config *c = NULL;

        (void)unused;
        assert_int_equal(parse("[resources]\ndisk_mb = 64\n", &c), 0);
        assert_int_equal(c->disk_mb, 64);
        config_free(c);
        assert_int_equal(parse("[resources]\ndisk_mb = 8\n", &c), -EINVAL);
        assert_int_equal(parse("[resources]\ndisk_mb = 2000000\n", &c), -EINVAL);
        assert_int_equal(parse("[resources]\ndisk_mb = \"1G\"\n", &c), -EINVAL);
}

static void put(const char *name, const char *text, mode_t mode);

static void test_sections_and_types(void **unused)
{
        struct config *c = NULL;

        (void)unused;
        assert_int_equal(parse("[sandbox]\nname = \"web\"\nruntime = \"python\"\n"
                               "[resources]\nvcpus = 2\nmemory_mb = 1024\n"
                               "[security]\nprofile = \"restrictive\"\nnetwork = false\n"
                               "[security.commands]\nblock = [\"curl\", \"wget\"]\n"
                               "allowlist_only = false\n"
                               "[network]\nports = [\"8080:80\", 3000]\n",
                               &c),
                         0);
        assert_string_equal(c->name, "web");
        assert_int_equal(c->vcpus, 2);
        assert_int_equal(c->memory_mb, 1024);
        assert_string_equal(c->profile, "restrictive");
        assert_int_equal(c->network, 0);
        assert_int_equal(c->mount_cwd, -1); /* not given: the flags, then the profile, decide */
        assert_string_equal(c->commands.block[1], "wget");
        assert_null(c->commands.allow[0]);
        assert_int_equal(c->n_ports, 2);
        assert_int_equal(c->ports[0].host_port, 8080);
        assert_int_equal(c->ports[0].container_port, 80);
        assert_int_equal(c->ports[1].host_port, -1);
        assert_int_equal(c->ports[1].container_port, 3000);
        assert_null(c->warnings[0]);
        config_free(c);
        c = NULL;
        /* nothing given: nothing decided */
        assert_int_equal(parse("", &c), 0);
        assert_int_equal(c->network, -1);
        assert_int_equal(c->mount_cwd, -1);
        assert_int_equal(c->vcpus, 0);
        assert_int_equal(c->n_files, 0);
        assert_null(config_image(c));
        config_free(c);
        c = NULL;
        /* wrong types and values are errors, never guessed at */
        assert_int_equal(parse("[resources]\nvcpus = \"2\"\n", &c), -EINVAL);
        assert_int_equal(parse("[resources]\nvcpus = -1\n", &c), -EINVAL);
        assert_int_equal(parse("[resources]\nvcpus = 65\n", &c), -EINVAL);
        assert_int_equal(parse("[resources]\nmemory_mb = 8\n", &c), -EINVAL);
        assert_int_equal(parse("[security]\nnetwork = \"yes\"\n", &c), -EINVAL);
        assert_int_equal(parse("[security]\nprofile = \"lax\"\n", &c), -EINVAL);
        assert_int_equal(parse("[security]\nseccomp = \"/tmp/custom.json\"\n", &c), -EINVAL);
        assert_int_equal(parse("[sandbox]\nname = \"a b\"\n", &c), -EINVAL);
        assert_int_equal(parse("[network]\nports = [\"99999\"]\n", &c), -EINVAL);
        assert_int_equal(parse("[security.commands]\nblock = [\"\"]\n", &c), -EINVAL);
        assert_int_equal(parse("[security.commands]\nblock = [\"a\\u0001\"]\n", &c), -EINVAL);
        assert_int_equal(parse("sandbox = 1\n", &c), -EINVAL); /* a section is a table */
        assert_int_equal(parse("[sandbox]\nname = \"a\"\nname = \"b\"\n", &c), -EINVAL);
        assert_null(c);
        /* what this version does not do is said, not silently dropped */
        assert_int_equal(parse("[sandbox]\nnmae = \"x\"\n[ssh]\nenabled = true\n[frobnicate]\n"
                               "x = 1\n[security.domains]\nallow = [\"example.com\"]\n"
                               "[agent]\ngit_name = \"me\"\n",
                               &c),
                         0);
        assert_null(c->name);
        assert_non_null(c->warnings[3]);
        assert_null(c->warnings[4]);
        assert_non_null(strstr(c->warnings[0], "'nmae'"));
        assert_non_null(strstr(c->warnings[1], "[ssh] is not supported"));
        assert_non_null(strstr(c->warnings[2], "'frobnicate'"));
        /* [security.domains] is enforced now (proxy mode): no warning, it builds the policy */
        assert_true(c->has_domains);
        assert_non_null(strstr(c->warnings[3], "git_name and git_email go together"));
        config_free(c);
}

/* [security] network: the modes by name and upstream's booleans (true is "on": NET_MODE_ON);
 * [network] hosts and ca_file; anything else is an error. */
static void test_network(void **unused)
{
        static const struct {
                const char *text;
                int mode;
        } modes[] = {
            {"network = \"none\"", NET_MODE_NONE}, {"network = \"proxy\"", NET_MODE_PROXY},
            {"network = \"full\"", NET_MODE_FULL}, {"network = true", NET_MODE_ON},
            {"network = false", NET_MODE_NONE},
        };
        static const char *const bad[] = {
            "[security]\nnetwork = \"yes\"\n",
            "[security]\nnetwork = 1\n",
            "[network]\nhosts = { \"api.internal\" = \"not-an-ip\" }\n",
            "[network]\nhosts = { \"bad name!\" = \"198.18.0.2\" }\n",
            "[network]\nhosts = { \"api.internal\" = 3 }\n",
            "[network]\nhosts = \"x\"\n",
            "[network]\nca_file = \"relative.pem\"\n",
            "[network]\nca_file = 1\n",
        };
        struct config *c = NULL;
        char text[128];

        (void)unused;
        for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
                (void)snprintf(text, sizeof(text), "[security]\n%s\n", modes[i].text);
                assert_int_equal(parse(text, &c), 0);
                assert_int_equal(c->network, modes[i].mode);
                config_free(c);
                c = NULL;
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(parse(bad[i], &c), -EINVAL);
                assert_null(c);
        }
        assert_int_equal(parse("[network]\nhosts = { \"api.internal\" = \"198.18.0.2\" }\n"
                               "ca_file = \"/etc/ssl/private-ca.pem\"\n"
                               "[security.domains]\nallow = [\"*.example.com\"]\n"
                               "allowlist_only = true\n",
                               &c),
                         0);
        assert_string_equal(json_string_value(json_object_get(c->hosts, "api.internal")),
                            "198.18.0.2");
        assert_string_equal(c->ca_file, "/etc/ssl/private-ca.pem");
        assert_true(c->has_domains);
        assert_true(c->domains.allowlist_only);
        assert_string_equal(c->domains.allow[0], "*.example.com");
        assert_null(c->warnings[0]);
        config_free(c);
}

/* What config.c decides itself; the command line's flags over the file are the CLI's
 * (cli/sandbox-flags.c), the profile's defaults under both the manager's. */
static void test_precedence(void **unused)
{
        struct config *c = NULL;

        (void)unused;
        /* the image: base_image, else the runtime's, else the backend's default */
        assert_int_equal(parse("[sandbox]\nruntime = \"node\"\nbase_image = \"alpine:3.20\"\n", &c),
                         0);
        assert_string_equal(config_image(c), "alpine:3.20");
        config_free(c);
        assert_int_equal(parse("[sandbox]\nruntime = \"node\"\n", &c), 0);
        assert_string_equal(config_image(c), "node:22-alpine");
        config_free(c);
        assert_int_equal(parse("[sandbox]\nruntime = \"base\"\n", &c), 0);
        assert_null(config_image(c));
        config_free(c);
        /* the pullers' settings: the environment over the file, the file where it says nothing */
        assert_int_equal(parse("[images]\nmirror = \"https://mirror.example\"\n"
                               "insecure_registries = [\"a:5000\", \"b:5000\"]\n",
                               &c),
                         0);
        (void)unsetenv("AGENTKERNEL_REGISTRY_MIRROR");
        (void)unsetenv("AGENTKERNEL_INSECURE_REGISTRIES");
        assert_int_equal(config_apply_registry_env(c), 0);
        assert_string_equal(getenv("AGENTKERNEL_REGISTRY_MIRROR"), "https://mirror.example");
        assert_string_equal(getenv("AGENTKERNEL_INSECURE_REGISTRIES"), "a:5000,b:5000");
        (void)setenv("AGENTKERNEL_REGISTRY_MIRROR", "https://mine.example", 1);
        (void)setenv("AGENTKERNEL_INSECURE_REGISTRIES", "", 1);
        assert_int_equal(config_apply_registry_env(c), 0);
        assert_string_equal(getenv("AGENTKERNEL_REGISTRY_MIRROR"), "https://mine.example");
        assert_string_equal(getenv("AGENTKERNEL_INSECURE_REGISTRIES"), "");
        (void)unsetenv("AGENTKERNEL_REGISTRY_MIRROR");
        (void)unsetenv("AGENTKERNEL_INSECURE_REGISTRIES");
        config_free(c);
        /* within the file, a later section adds, never replaces what an earlier one said */
        assert_int_equal(parse("[security]\nprofile = \"permissive\"\n[resources]\nvcpus = 1\n"
                               "[security.commands]\nallow = [\"ls\"]\n",
                               &c),
                         0);
        assert_string_equal(c->profile, "permissive");
        assert_string_equal(c->commands.allow[0], "ls");
        config_free(c);
}

static void test_files_rules(void **unused)
{
        /* not a path: -EINVAL; a path a sandbox's files may not go to: -EACCES */
        static const struct {
                const char *dest;
                int r;
        } bad_dest[] = {{"tmp/x", -EINVAL},       {"", -EINVAL},
                        {"/a/../etc/x", -EINVAL}, {"/proc/self/x", -EACCES},
                        {"/etc/shadow", -EACCES}, {"/root/.ssh/a", -EACCES},
                        {"/dev/sda", -EACCES},    {"/etc/sudoers", -EACCES}};
        static const char *const bad_mode[] = {"999", "0o644", "", "010000", "rw-r--r--", "-1"};
        struct config *c = NULL;
        struct buf text = BUF_INIT;
        char doc[256];

        (void)unused;
        for (size_t i = 0; i < sizeof(bad_dest) / sizeof(*bad_dest); i++) {
                (void)snprintf(doc, sizeof(doc), "[[files]]\nsource = \"x\"\ndest = \"%s\"\n",
                               bad_dest[i].dest);
                assert_int_equal(parse(doc, &c), bad_dest[i].r);
                assert_null(c);
        }
        for (size_t i = 0; i < sizeof(bad_mode) / sizeof(*bad_mode); i++) {
                (void)snprintf(doc, sizeof(doc),
                               "[[files]]\nsource = \"x\"\ndest = \"/tmp/x\"\nmode = \"%s\"\n",
                               bad_mode[i]);
                assert_int_equal(parse(doc, &c), -EINVAL);
        }
        assert_int_equal(parse("[[files]]\nsource = \"x\"\ndest = \"/tmp/x\"\nmode = 644\n", &c),
                         -EINVAL);
        assert_int_equal(parse("[[files]]\nsource = \"x\"\n", &c), -EINVAL);
        assert_int_equal(parse("[[files]]\ndest = \"/tmp/x\"\n", &c), -EINVAL);
        assert_int_equal(parse("files = [1]\n", &c), -EINVAL);
        /* entries in order, the mode an octal string (0644 unless given), unknown keys said */
        assert_int_equal(parse("[[files]]\nsource = \"a\"\ndest = \"/tmp/a\"\n"
                               "[[files]]\nsource = \"sub/b\"\ndest = \"/home/user/b\"\n"
                               "mode = \"0600\"\nowner = \"me\"\n",
                               &c),
                         0);
        assert_int_equal(c->n_files, 2);
        assert_string_equal(c->files[0].source, "a");
        assert_string_equal(c->files[0].dest, "/tmp/a");
        assert_int_equal(c->files[0].mode, 0644);
        assert_string_equal(c->files[1].source, "sub/b");
        assert_int_equal(c->files[1].mode, 0600);
        assert_non_null(strstr(c->warnings[0], "'owner' in [[files]]"));
        config_free(c);
        c = NULL;
        /* a bounded number of them */
        for (int i = 0; i <= CONFIG_MAX_FILES; i++)
                assert_int_equal(
                    buf_printf(&text, "[[files]]\nsource = \"f%d\"\ndest = \"/tmp/f%d\"\n", i, i),
                    0);
        assert_int_equal(parse(text.data, &c), -EINVAL);
        assert_null(c);
        buf_done(&text);
}

static bool have_openat2(void);

/* An approved config whose [[files]] sources are no longer what they were: each refused at
 * load, the file named. */
static void test_files_at_load(void **unused)
{
        struct ak_err err = {0};
        struct config *c = NULL;
        char p[128], src[128];
        int fd;

        (void)unused;
        if (!have_openat2())
                return;
        (void)snprintf(p, sizeof(p), "%s/files.toml", dir);
        (void)snprintf(src, sizeof(src), "%s/payload", dir);
        put("payload", "secret-free\n", 0644);
        put("files.toml", "[[files]]\nsource = \"payload\"\ndest = \"/tmp/p\"\n", 0644);
        assert_int_equal(config_inspect(p, &c, &err), 0);
        assert_int_equal(config_approve(c, &err), 0);
        config_free(c);
        c = NULL;
        assert_int_equal(config_load(p, &c, &err), 0);
        assert_string_equal(c->files[0].source, "payload");
        assert_non_null(c->dir);
        assert_int_equal(c->dir[0], '/');
        config_free(c);
        c = NULL;
        /* gone */
        assert_int_equal(unlink(src), 0);
        assert_true(config_load(p, &c, &err) < 0);
        assert_null(c);
        assert_non_null(strstr(err.msg, "files.toml"));
        /* a symlink out of the config's directory */
        assert_int_equal(symlink("/etc/hostname", src), 0);
        assert_int_equal(config_load(p, &c, &err), -EPERM);
        assert_non_null(strstr(err.msg, "leads outside"));
        assert_int_equal(unlink(src), 0);
        /* a directory */
        assert_int_equal(mkdir(src, 0755), 0);
        assert_int_equal(config_load(p, &c, &err), -EINVAL);
        assert_non_null(strstr(err.msg, "not a regular file"));
        assert_int_equal(rmdir(src), 0);
        /* too large (sparse: no disk used) */
        fd = open(src, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)CONFIG_SOURCE_MAX_BYTES + 1), 0);
        close(fd);
        assert_int_equal(config_load(p, &c, &err), -EFBIG);
        assert_null(c);
        assert_int_equal(unlink(src), 0);
}

/* Every way a file is refused, and that a refusal changes nothing. */
static void test_trust_refusals(void **unused)
{
        struct ak_err err = {0};
        struct config *c = NULL;
        char p[128];

        (void)unused;
        (void)snprintf(p, sizeof(p), "%s/r.toml", dir);
        /* writable by its group */
        put("r.toml", "[sandbox]\nname = \"r\"\n", 0664);
        assert_int_equal(config_inspect(p, &c, &err), -EPERM);
        assert_non_null(strstr(err.msg, "writable by its group"));
        /* someone else's, even if approved and private */
        put("r.toml", "[sandbox]\nname = \"r\"\n", 0644);
        assert_int_equal(config_inspect(p, &c, &err), 0);
        assert_int_equal(config_approve(c, &err), 0);
        config_free(c);
        c = NULL;
        if (geteuid() == 0) {
                assert_int_equal(chown(p, 4242, 4242), 0);
                assert_int_equal(config_load(p, &c, &err), -EPERM);
                assert_non_null(strstr(err.msg, "not owned by you"));
                assert_int_equal(chown(p, 0, 0), 0);
        }
        assert_int_equal(config_load(p, &c, &err), 0);
        config_free(c);
        c = NULL;
        /* the approval is of exactly the bytes: a trailing space is a change */
        put("r.toml", "[sandbox]\nname = \"r\" \n", 0644);
        assert_int_equal(config_load(p, &c, &err), -EPERM);
        assert_non_null(strstr(err.msg, "changed since"));
        /* a refused load approves nothing: still refused */
        assert_int_equal(config_load(p, &c, &err), -EPERM);
        assert_null(c);
        /* untrusted and invalid: both said, still a refusal */
        put("r.toml", "[sandbox]\nname = \n", 0644);
        assert_int_equal(config_load(p, &c, &err), -EINVAL);
        assert_non_null(strstr(err.msg, "not trusted"));
        assert_non_null(strstr(err.msg, "not valid"));
        /* not a regular file: a directory, a FIFO (never opened: no hang), nothing at all */
        (void)snprintf(p, sizeof(p), "%s/d.toml", dir);
        assert_int_equal(mkdir(p, 0700), 0);
        assert_int_equal(config_load(p, &c, &err), -EPERM);
        assert_non_null(strstr(err.msg, "not a regular file"));
        (void)snprintf(p, sizeof(p), "%s/f.toml", dir);
        assert_int_equal(mkfifo(p, 0600), 0);
        assert_int_equal(config_load(p, &c, &err), -EPERM);
        assert_non_null(strstr(err.msg, "not a regular file"));
        (void)snprintf(p, sizeof(p), "%s/none.toml", dir);
        assert_int_equal(config_load(p, &c, &err), -ENOENT);
        (void)snprintf(p, sizeof(p), "%s/.", dir);
        assert_int_equal(config_load(p, &c, &err), -EINVAL);
        assert_null(c);
        /* only a file's config can be approved */
        assert_int_equal(parse("[sandbox]\nname = \"t\"\n", &c), 0);
        assert_int_equal(config_approve(c, &err), -EINVAL);
        config_free(c);
}

static void put(const char *name, const char *text, mode_t mode)
{
        char p[128];
        int fd;

        (void)snprintf(p, sizeof(p), "%s/%s", dir, name);
        (void)unlink(p);
        fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write_all(fd, text, strlen(text)), 0);
        assert_int_equal(fchmod(fd, mode), 0);
        close(fd);
}

static void test_trusted_reader(void **unused)
{
        struct ak_err err = {0};
        struct config *c = NULL;
        char p[128];
        bool found;

        (void)unused;
        (void)snprintf(p, sizeof(p), "%s/agentkernel.toml", dir);
        put("agentkernel.toml", "[sandbox]\nname = \"t\"\n", 0644);
        /* new: refused, and nothing is returned */
        assert_int_equal(config_load(p, &c, &err), -EPERM);
        assert_null(c);
        assert_non_null(strstr(err.msg, "it is new"));
        /* approved: read */
        assert_int_equal(config_inspect(p, &c, &err), 0);
        assert_int_equal(config_approve(c, &err), 0);
        config_free(c);
        c = NULL;
        assert_int_equal(config_load(p, &c, &err), 0);
        assert_string_equal(c->name, "t");
        config_free(c);
        c = NULL;
        /* a byte changed: refused */
        put("agentkernel.toml", "[sandbox]\nname = \"u\"\n", 0644);
        assert_int_equal(config_load(p, &c, &err), -EPERM);
        assert_non_null(strstr(err.msg, "changed since"));
        /* writable by others: refused even before the approval is looked at */
        put("agentkernel.toml", "[sandbox]\nname = \"t\"\n", 0646);
        assert_int_equal(config_load(p, &c, &err), -EPERM);
        assert_non_null(strstr(err.msg, "writable by others"));
        put("agentkernel.toml", "[sandbox]\nname = \"t\"\n", 0644);
        assert_int_equal(config_load(p, &c, &err), 0);
        config_free(c);
        c = NULL;
        /* a symlink to the approved file is not it */
        (void)snprintf(p, sizeof(p), "%s/link.toml", dir);
        assert_int_equal(symlink("agentkernel.toml", p), 0);
        assert_int_equal(config_load(p, &c, &err), -EPERM);
        assert_non_null(strstr(err.msg, "symbolic link"));
        /* untrust */
        (void)snprintf(p, sizeof(p), "%s/agentkernel.toml", dir);
        {
                char *real = realpath(p, NULL);
                assert_non_null(real);
                assert_int_equal(trust_remove(real, &found, &err), 0);
                assert_true(found);
                free(real);
        }
        assert_int_equal(config_load(p, &c, &err), -EPERM);
}

static bool have_openat2(void)
{
        struct open_how how = {.flags = O_PATH | O_CLOEXEC};
        long fd = syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof(how));

        if (fd >= 0)
                close((int)fd);
        return fd >= 0 || errno != ENOSYS;
}

static void test_sources_at_start(void **unused)
{
        struct ak_err err = {0};
        struct buf b = BUF_INIT;
        char *real = NULL;
        char p[128];

        (void)unused;
        /* valgrind does not know openat2 (sources are refused there): nothing to check */
        if (!have_openat2())
                return;
        real = realpath(dir, NULL);
        assert_non_null(real);
        put("data.txt", "data\n", 0644);
        assert_int_equal(config_read_source(real, "data.txt", &b, &err), 0);
        assert_int_equal(b.len, 5);
        buf_done(&b);
        (void)snprintf(p, sizeof(p), "%s/out", dir);
        assert_int_equal(symlink("/etc/passwd", p), 0);
        assert_int_equal(config_read_source(real, "out", &b, &err), -EPERM);
        assert_int_equal(config_read_source(real, "/etc/passwd", &b, &err), -EPERM);
        assert_int_equal(config_read_source(real, "../x", &b, &err), -EPERM);
        assert_int_equal(config_read_source(NULL, "data.txt", &b, &err), -EPERM);
        (void)snprintf(p, sizeof(p), "%s/fifo", dir);
        assert_int_equal(mkfifo(p, 0600), 0);
        assert_int_equal(config_read_source(real, "fifo", &b, &err), -EINVAL);
        buf_done(&b);
        free(real);
}

static void test_store_not_believed(void **unused)
{
        struct ak_err err = {0};
        enum trust_verdict v;
        char p[128];

        (void)unused;
        assert_int_equal(trust_add("/x/agentkernel.toml",
                                   "00000000000000000000000000000000000000"
                                   "00000000000000000000000000",
                                   &err),
                         0);
        assert_int_equal(
            trust_check("/x/agentkernel.toml",
                        "0000000000000000000000000000000000000000000000000000000000000000", &v,
                        &err),
            0);
        assert_int_equal(v, TRUST_APPROVED);
        (void)snprintf(p, sizeof(p), "%s/data/" TRUST_FILE, dir);
        assert_int_equal(chmod(p, 0620), 0);
        assert_int_equal(trust_check("/x/agentkernel.toml", "00", &v, &err), -EPERM);
        assert_non_null(strstr(err.msg, "writable by group or others"));
        assert_int_equal(chmod(p, 0600), 0);
        put("data/" TRUST_FILE, "{\"configs\": []}", 0600);
        assert_int_equal(trust_check("/x/agentkernel.toml", "00", &v, &err), -EPERM);
        assert_non_null(strstr(err.msg, "not valid"));
        assert_int_equal(unlink(p), 0); /* the tests after this one start from no store */
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_files_sources_as_text),
            cmocka_unit_test(test_disk_mb),
            cmocka_unit_test(test_trusted_reader),
            cmocka_unit_test(test_sources_at_start),
            cmocka_unit_test(test_store_not_believed),
            cmocka_unit_test(test_sections_and_types),
            cmocka_unit_test(test_network),
            cmocka_unit_test(test_precedence),
            cmocka_unit_test(test_files_rules),
            cmocka_unit_test(test_files_at_load),
            cmocka_unit_test(test_trust_refusals),
        };
        char data[96];
        int r;

        (void)snprintf(dir, sizeof(dir), "/tmp/ak-test-config-XXXXXX");
        if (!mkdtemp(dir))
                return 1;
        (void)snprintf(data, sizeof(data), "%s/data", dir);
        (void)mkdir(data, 0700);
        (void)setenv("AGENTKERNEL_DATA_DIR", data, 1);
        r = cmocka_run_group_tests(tests, NULL, NULL);
        (void)rm_rf_at(AT_FDCWD, dir);
        return r;
}
