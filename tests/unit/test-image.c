// SPDX-License-Identifier: Apache-2.0
/* Image references (Docker's normalisation), manifests and configs, detection, and the store's
 * name table: resolve, untag, prune. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "image/detect.h"
#include "image/image-store.h"
#include "image/manifest.h"
#include "image/ref.h"
#include "shared/fd-util.h"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HEX_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

static void check_ref(const char *in, const char *registry, const char *repo, const char *tag,
                      const char *digest)
{
        struct image_ref r;
        struct ak_err err = {0};

        assert_int_equal(image_ref_parse(in, &r, &err), 0);
        assert_string_equal(r.registry, registry);
        assert_string_equal(r.repository, repo);
        if (tag)
                assert_string_equal(r.tag, tag);
        else
                assert_null(r.tag);
        if (digest)
                assert_string_equal(r.digest, digest);
        else
                assert_null(r.digest);
        image_ref_done(&r);
}

static void test_refs(void **unused)
{
        static const char *const bad[] = {
            "",
            "Alpine",
            "alpine:",
            "alpine@sha256:12",
            ":tag",
            "a//b",
            "-a",
            "a-",
            "a..b",
            "a___b",
            "host:99999/x",
            "host:/x",
            "x/y:t@sha256:" HEX_A "0",
            "alpine:-x",
            "a b",
        };
        struct image_ref r;

        (void)unused;
        check_ref("alpine", "docker.io", "library/alpine", "latest", NULL);
        check_ref("alpine:3.20", "docker.io", "library/alpine", "3.20", NULL);
        check_ref("library/alpine", "docker.io", "library/alpine", "latest", NULL);
        check_ref("index.docker.io/library/alpine:1", "docker.io", "library/alpine", "1", NULL);
        check_ref("user/repo", "docker.io", "user/repo", "latest", NULL);
        check_ref("ghcr.io/o/r/s:v1.2_x-y", "ghcr.io", "o/r/s", "v1.2_x-y", NULL);
        check_ref("localhost/x", "localhost", "x", "latest", NULL);
        check_ref("localhost:5000/x:y", "localhost:5000", "x", "y", NULL);
        check_ref("127.0.0.1:5000/a/b@sha256:" HEX_A, "127.0.0.1:5000", "a/b", NULL,
                  "sha256:" HEX_A);
        check_ref("a/b:t@sha256:" HEX_A, "docker.io", "a/b", "t", "sha256:" HEX_A);
        check_ref("[::1]:5000/x", "[::1]:5000", "x", "latest", NULL);
        check_ref("my_repo/a__b--c.d", "docker.io", "my_repo/a__b--c.d", "latest", NULL);
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                struct ak_err err = {0};
                assert_int_equal(image_ref_parse(bad[i], &r, &err), -EINVAL);
                assert_non_null(strstr(err.msg, "image"));
        }
        /* a loopback name is not special: a request naming one gets nothing more than another
         * (finding 14 of issue 12: it used to get plain HTTP and a connection) */
        unsetenv("AGENTKERNEL_INSECURE_REGISTRIES");
        unsetenv("AGENTKERNEL_REGISTRY_MIRROR");
        assert_false(image_registry_insecure("127.0.0.1:5000"));
        assert_false(image_registry_insecure("localhost"));
        assert_false(image_registry_insecure("[::1]:80"));
        assert_false(image_registry_insecure("docker.io"));
        assert_false(image_registry_may_be_private("127.0.0.1", 5000));
        assert_false(image_registry_may_be_private("localhost", 443));
        assert_false(image_registry_may_be_private("[::1]", 80));
        setenv("AGENTKERNEL_INSECURE_REGISTRIES",
               "reg.lan:5000,other, [::1]:5001,https://secure.lan,http://127.0.0.1:6000/", 1);
        assert_true(image_registry_insecure("reg.lan:5000"));
        assert_false(image_registry_insecure("reg.lan"));
        assert_true(image_registry_insecure("other"));
        assert_true(image_registry_insecure("[::1]:5001"));
        assert_true(image_registry_insecure("127.0.0.1:6000"));
        assert_false(image_registry_insecure("secure.lan")); /* https:// keeps TLS */
        assert_true(image_registry_may_be_private("reg.lan", 5000));
        assert_true(image_registry_may_be_private("REG.lan", 5000));
        assert_false(image_registry_may_be_private("reg.lan", 5001));
        assert_true(image_registry_may_be_private("other", 80));
        assert_true(image_registry_may_be_private("other", 443));
        assert_false(image_registry_may_be_private("other", 8080));
        assert_true(image_registry_may_be_private("[::1]", 5001));
        assert_true(image_registry_may_be_private("::1", 5001));
        assert_true(image_registry_may_be_private("secure.lan", 443));
        assert_true(image_registry_may_be_private("127.0.0.1", 6000));
        assert_false(image_registry_may_be_private("127.0.0.1", 5000));
        assert_false(image_registry_may_be_private("reg.lan.evil.com", 5000));
        unsetenv("AGENTKERNEL_INSECURE_REGISTRIES");
        setenv("AGENTKERNEL_REGISTRY_MIRROR", "http://mirror.lan:5000", 1);
        assert_true(image_registry_may_be_private("mirror.lan", 5000));
        assert_false(image_registry_may_be_private("mirror.lan", 5001));
        assert_false(image_registry_insecure("mirror.lan:5000"));
        unsetenv("AGENTKERNEL_REGISTRY_MIRROR");
}

static bool pub(const char *addr)
{
        struct sockaddr_in in = {.sin_family = AF_INET};
        struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};

        if (inet_pton(AF_INET, addr, &in.sin_addr) == 1)
                return image_addr_public((struct sockaddr *)&in);
        assert_int_equal(inet_pton(AF_INET6, addr, &in6.sin6_addr), 1);
        return image_addr_public((struct sockaddr *)&in6);
}

static void test_private_addresses(void **unused)
{
        static const char *const private[] = {
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::ffff:0:10.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "100::1",
        };
        static const char *const public[] = {
            "1.1.1.1",        "8.8.8.8",         "100.63.255.255", "100.128.0.0",
            "172.15.255.255", "172.32.0.0",      "192.167.1.1",    "169.253.0.1",
            "11.0.0.1",       "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808",
            "2002:808:808::", "2a00:1450::1",
        };
        (void)unused;
        for (size_t i = 0; i < ARRAY_SIZE(private); i++) {
                if (pub(private[i]))
                        fail_msg("%s counted as public", private[i]);
        }
        for (size_t i = 0; i < ARRAY_SIZE(public); i++) {
                if (!pub(public[i]))
                        fail_msg("%s counted as private", public[i]);
        }
        {
                struct sockaddr sa = {.sa_family = AF_UNIX};
                assert_false(image_addr_public(&sa));
        }
}

static const char manifest_oci[] =
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
    "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"size\":10,"
    "\"digest\":\"sha256:" HEX_A "\"},\"layers\":["
    "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"size\":5,"
    "\"digest\":\"sha256:" HEX_B "\"},"
    "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\",\"size\":6,"
    "\"digest\":\"sha256:" HEX_C "\"}]}";

static void test_manifests(void **unused)
{
        struct manifest m;
        const struct descriptor *d;
        struct ak_err err = {0};
        char buf[2048];

        (void)unused;
        assert_int_equal(manifest_parse(manifest_oci, strlen(manifest_oci), NULL, &m, &err), 0);
        assert_int_equal(m.kind, MANIFEST_IMAGE);
        assert_int_equal(m.n_layers, 2);
        assert_int_equal(m.layers[0].compression, LAYER_GZIP);
        assert_int_equal(m.layers[1].compression, LAYER_ZSTD);
        assert_string_equal(m.config.digest, "sha256:" HEX_A);
        manifest_done(&m);

        /* an index: the host's platform is picked, attestation entries are skipped */
        (void)snprintf(buf, sizeof(buf),
                       "{\"schemaVersion\":2,\"manifests\":["
                       "{\"mediaType\":\"%s\",\"size\":1,\"digest\":\"sha256:%s\","
                       "\"platform\":{\"os\":\"unknown\",\"architecture\":\"unknown\"}},"
                       "{\"mediaType\":\"%s\",\"size\":1,\"digest\":\"sha256:%s\","
                       "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\","
                       "\"variant\":\"v8\"}},"
                       "{\"mediaType\":\"%s\",\"size\":1,\"digest\":\"sha256:%s\","
                       "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}",
                       MT_OCI_MANIFEST, HEX_A, MT_OCI_MANIFEST, HEX_B, MT_DOCKER_MANIFEST, HEX_C);
        assert_int_equal(manifest_parse(buf, strlen(buf), MT_OCI_INDEX, &m, &err), 0);
        assert_int_equal(m.kind, MANIFEST_INDEX);
        assert_int_equal(manifest_pick(&m, "linux", "amd64", NULL, &d, &err), 0);
        assert_string_equal(d->digest, "sha256:" HEX_C);
        assert_int_equal(manifest_pick(&m, "linux", "arm64", "v8", &d, &err), 0);
        assert_string_equal(d->digest, "sha256:" HEX_B);
        assert_int_equal(manifest_pick(&m, "linux", "s390x", NULL, &d, &err), -ENOENT);
        assert_non_null(strstr(err.msg, "linux/arm64/v8"));
        manifest_done(&m);

        /* refused: schema 1, foreign layers, bad digests, too many layers, not JSON */
        (void)snprintf(buf, sizeof(buf), "{\"schemaVersion\":1,\"fsLayers\":[]}");
        assert_int_equal(manifest_parse(buf, strlen(buf), NULL, &m, &err), -EMEDIUMTYPE);
        assert_non_null(strstr(err.msg, "schema 1"));
        (void)snprintf(buf, sizeof(buf),
                       "{\"schemaVersion\":2,\"config\":{\"size\":1,\"digest\":\"sha256:%s\"},"
                       "\"layers\":[{\"mediaType\":\"application/vnd.docker.image.rootfs."
                       "foreign.diff.tar.gzip\",\"size\":1,\"digest\":\"sha256:%s\"}]}",
                       HEX_A, HEX_B);
        assert_int_equal(manifest_parse(buf, strlen(buf), NULL, &m, &err), -EMEDIUMTYPE);
        (void)snprintf(buf, sizeof(buf),
                       "{\"schemaVersion\":2,\"config\":{\"size\":1,\"digest\":\"sha256:xyz\"},"
                       "\"layers\":[]}");
        assert_int_equal(manifest_parse(buf, strlen(buf), NULL, &m, &err), -EBADMSG);
        assert_int_equal(manifest_parse("[1,2]", 5, NULL, &m, &err), -EBADMSG);
        assert_int_equal(manifest_parse("{", 1, NULL, &m, &err), -EBADMSG);
        {
                size_t cap = 256 + (MANIFEST_MAX_LAYERS + 1) * 200, n = 0;
                char *big = malloc(cap);
                assert_non_null(big);
                n += (size_t)snprintf(big + n, cap - n,
                                      "{\"config\":{\"size\":1,\"digest\":\"sha256:%s\"},"
                                      "\"layers\":[",
                                      HEX_A);
                for (unsigned i = 0; i <= MANIFEST_MAX_LAYERS; i++)
                        n += (size_t)snprintf(big + n, cap - n,
                                              "%s{\"mediaType\":\"application/vnd.oci.image."
                                              "layer.v1.tar\",\"size\":1,\"digest\":\"sha256:%s\"}",
                                              i ? "," : "", HEX_B);
                n += (size_t)snprintf(big + n, cap - n, "]}");
                assert_int_equal(manifest_parse(big, n, NULL, &m, &err), -E2BIG);
                free(big);
        }
}

static void test_config(void **unused)
{
        static const char cfg[] =
            "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/bin\","
            "\"A=1\"],\"WorkingDir\":\"/srv\",\"User\":\"1000:1000\",\"Cmd\":[\"sh\"]},"
            "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:" HEX_A "\"]}}";
        struct image_config c;
        struct ak_err err = {0};

        (void)unused;
        assert_int_equal(image_config_parse(cfg, strlen(cfg), &c, &err), 0);
        assert_string_equal(c.env[0], "PATH=/bin");
        assert_string_equal(c.env[1], "A=1");
        assert_null(c.env[2]);
        assert_string_equal(c.workdir, "/srv");
        assert_string_equal(c.user, "1000:1000");
        assert_string_equal(c.cmd[0], "sh");
        assert_int_equal(c.n_diff_ids, 1);
        image_config_done(&c);
        assert_int_equal(image_config_parse("{\"config\":{\"Env\":[1]}}", 22, &c, &err), -EBADMSG);
        assert_int_equal(image_config_parse("{}", 2, &c, &err), 0); /* all optional */
        assert_null(c.env);
        image_config_done(&c);
}

/* WorkingDir, User and Env of an untrusted config: normalised or refused, never passed on. */
static void test_config_checks(void **unused)
{
        static const struct {
                const char *in, *out; /* out NULL: refused */
        } dirs[] = {
            {"/srv", "/srv"},
            {"/app/", "/app"},
            {"//usr//src/./app/.", "/usr/src/app"},
            {"/", "/"},
            {"/.", "/"},
            {"../../x", NULL},
            {"/../../oldroot/tmp", NULL},
            {"/a/../b", NULL},
            {"/a/..", NULL},
            {"relative", NULL},
            {"", NULL},
            {"/a\nb", NULL},
        };
        static const char *const good_users[] = {"root", "1000", "1000:1000", "node:node",
                                                 "a.b-c_d"};
        static const char *const bad_users[] = {
            "",     ":",   "a:",    ":a",  "a:b:c", "a b",
            "../x", "-rf", "$(id)", "a/b", "x\n",   "123456789012345678901234567890123"};
        struct ak_err err = {0};
        char buf[2048];

        (void)unused;
        for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
                (void)snprintf(buf, sizeof(buf), "%s", dirs[i].in);
                if (dirs[i].out) {
                        assert_int_equal(image_workdir_normalize(buf, &err), 0);
                        assert_string_equal(buf, dirs[i].out);
                } else {
                        assert_int_equal(image_workdir_normalize(buf, &err), -EINVAL);
                }
        }
        memset(buf, 'a', sizeof(buf) - 1);
        buf[0] = '/';
        buf[sizeof(buf) - 1] = '\0';
        assert_int_equal(image_workdir_normalize(buf, &err), -EINVAL);
        for (size_t i = 0; i < ARRAY_SIZE(good_users); i++)
                assert_int_equal(image_user_check(good_users[i], &err), 0);
        for (size_t i = 0; i < ARRAY_SIZE(bad_users); i++)
                assert_int_equal(image_user_check(bad_users[i], &err), -EINVAL);
        assert_int_equal(image_env_check((char *[]){"A=1", "B_2=", "x.y=z", NULL}, &err), 0);
        assert_int_equal(image_env_check((char *[]){"NOEQUALS", NULL}, &err), -EINVAL);
        assert_int_equal(image_env_check((char *[]){"=v", NULL}, &err), -EINVAL);
        assert_int_equal(image_env_check((char *[]){"A B=1", NULL}, &err), -EINVAL);
        assert_int_equal(image_env_check((char *[]){"1A=1", NULL}, &err), -EINVAL);
        /* a config carrying them is refused at parse time, with the field named */
        {
                static const char bad[] = "{\"config\":{\"WorkingDir\":\"../../x\"}}";
                struct image_config c = {0};
                assert_int_equal(image_config_parse(bad, strlen(bad), &c, &err), -EINVAL);
        }
        assert_non_null(strstr(err.msg, "WorkingDir"));
}

static void test_detect(void **unused)
{
        char dir[] = "/tmp/ak-detect-XXXXXX";
        int fd;

        (void)unused;
        assert_string_equal(image_detect_command("python3"), "python:3.12-alpine");
        assert_string_equal(image_detect_command("/usr/bin/node"), "node:22-alpine");
        assert_string_equal(image_detect_command("cargo"), "rust:1.85-alpine");
        assert_null(image_detect_command("sh")); /* upstream's default row: ours is host */
        assert_null(image_detect_command("true"));
        assert_non_null(mkdtemp(dir));
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_null(image_detect_project(fd));
        assert_int_equal(mkdirat(fd, "x.c", 0755), 0); /* gcc, a late row */
        assert_string_equal(image_detect_project(fd), "gcc:14-bookworm");
        assert_int_equal(mkdirat(fd, "go.mod", 0755), 0); /* golang, an earlier row */
        assert_string_equal(image_detect_project(fd), "golang:1.23-alpine");
        assert_int_equal(mkdirat(fd, "package.json", 0755), 0); /* node: the first row */
        assert_string_equal(image_detect_project(fd), "node:22-alpine");
        close(fd);
        assert_int_equal(rm_rf_at(AT_FDCWD, dir), 0);
}

static void test_store_names(void **unused)
{
        char dir[] = "/tmp/ak-store-XXXXXX";
        struct image_store s;
        struct image_layer layer = {.digest = (char *)"sha256:" HEX_B, .size = 5};
        struct image_record rec = {.id = (char *)"sha256:" HEX_A,
                                   .config = (char *)"sha256:" HEX_C,
                                   .layers = &layer,
                                   .n_layers = 1},
                            got;
        char *names[] = {(char *)"docker.io/library/alpine:3.20",
                         (char *)"docker.io/library/alpine@sha256:" HEX_C, NULL};
        struct image_ref ref;
        struct ak_err err = {0};
        char path[256];
        uint64_t freed = 0;
        struct stat st;

        (void)unused;
        assert_non_null(mkdtemp(dir));
        assert_int_equal(image_store_open(dir, IMAGE_STORE_EXCLUSIVE, &s, &err), 0);
        assert_int_equal(stat(s.root, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);
        assert_int_equal(image_store_commit(&s, &rec, names, &err), 0);
        assert_int_equal(image_ref_parse("alpine:3.20", &ref, &err), 0);
        /* the record exists but its layer does not: incomplete, never used */
        assert_int_equal(image_store_resolve(&s, &ref, &got, &err), -ENOENT);
        assert_non_null(strstr(err.msg, "incomplete"));
        assert_int_equal(image_store_layer_path(&s, layer.digest, path, sizeof(path)), 0);
        assert_int_equal(mkdir(path, 0755), 0);
        assert_int_equal(image_store_resolve(&s, &ref, &got, &err), 0);
        assert_string_equal(got.id, rec.id);
        assert_string_equal(got.names[0], names[0]);
        image_record_done(&got);
        image_ref_done(&ref);
        /* by digest of the index it came from */
        assert_int_equal(image_ref_parse("alpine@sha256:" HEX_C, &ref, &err), 0);
        assert_int_equal(image_store_resolve(&s, &ref, &got, &err), 0);
        image_record_done(&got);
        image_ref_done(&ref);
        /* untagging the last tag takes the digest name; prune then frees the layer */
        assert_int_equal(image_store_prune(&s, NULL, &freed, &err), 0);
        assert_int_equal(access(path, F_OK), 0);
        assert_int_equal(image_store_remove(&s, "alpine:3.20", &err), 0);
        assert_int_equal(image_store_remove(&s, "alpine:3.20", &err), -ENOENT);
        assert_int_equal(image_store_prune(&s, NULL, &freed, &err), 0);
        assert_int_equal(access(path, F_OK), -1);
        image_store_done(&s);
        assert_int_equal(rm_rf_at(AT_FDCWD, dir), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_refs),
            cmocka_unit_test(test_manifests),
            cmocka_unit_test(test_config),
            cmocka_unit_test(test_config_checks),
            cmocka_unit_test(test_detect),
            cmocka_unit_test(test_store_names),
            cmocka_unit_test(test_private_addresses),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
