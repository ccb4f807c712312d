/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentkernel-image: the helper that pulls images into the local store. The CLI runs it for
 * `images pull` and when a sandbox needs an image the store lacks; it is separate so that the
 * static CLI, whose start-up time is part of every `run`, links neither libcurl nor libarchive.
 *   agentkernel-image pull [--quiet] [--json] [--porcelain] NAME
 * --porcelain (for the CLI): the result on stdout, one line, "sha256:..." or "error: ...".
 * Exit status: 0 pulled; 1 failed (message on stderr); 2 usage.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/paths.h"
#include "image/pull.h"
#include "shared/cleanup.h"
#include "shared/macro.h"

static int usage(FILE *f)
{
        fputs("usage: agentkernel-image pull [--quiet] [--json] [--porcelain] NAME\n", f);
        return f == stderr ? 2 : 0;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {{"quiet", no_argument, NULL, 'q'},
                                             {"porcelain", no_argument, NULL, 'p'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
        struct pull_opts o = {0};
        struct image_record rec = {0};
        struct ak_err err = {0};
        cleanup_free char *data = NULL;
        bool json = false, porcelain = false;
        int c, r;

        while ((c = getopt_long(argc, argv, "qjh", opts, NULL)) != -1)
                switch (c) {
                case 'q':
                        o.quiet = true;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'p':
                        porcelain = true;
                        break;
                case 'h':
                        return usage(stdout);
                default:
                        return usage(stderr);
                }
        if (argc - optind != 2 || !streq(argv[optind], "pull"))
                return usage(stderr);
        o.progress = !o.quiet && isatty(STDERR_FILENO);
        r = paths_data_dir_open(&data, &err);
        if (r < 0) {
                fprintf(porcelain ? stdout : stderr, "%s: %s\n",
                        porcelain ? "error" : "agentkernel", ak_err_msg(&err));
                return 1;
        }
        close(r);
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                fputs("agentkernel-image: cannot initialise libcurl\n", stderr);
                return 1;
        }
        r = image_pull(data, argv[optind + 1], &o, &rec, &err);
        curl_global_cleanup();
        if (r < 0) {
                fprintf(porcelain ? stdout : stderr, "%s: cannot pull '%s': %s\n",
                        porcelain ? "error" : "agentkernel", argv[optind + 1], ak_err_msg(&err));
                return 1;
        }
        if (json) {
                json_t *j = json_pack("{s:s, s:i}", "id", rec.id, "layers", (int)rec.n_layers);
                json_t *names = json_array();
                for (size_t i = 0; rec.names && rec.names[i]; i++)
                        json_array_append_new(names, json_string(rec.names[i]));
                json_object_set_new(j, "names", names);
                json_dumpf(j, stdout, JSON_COMPACT);
                putchar('\n');
                json_decref(j);
        } else if (!o.quiet || porcelain) {
                printf("%s\n", rec.id);
        }
        image_record_done(&rec);
        return 0;
}
