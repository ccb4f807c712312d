// SPDX-License-Identifier: Apache-2.0
/*
 * The musl-built CLI's cache of jansson's blocks (src/shared/json-cache.c), built as the CLI
 * links it (tests/meson.build). Values of every cached size and beyond, made and dropped in
 * turns so that blocks are reused; values made by one thread and dropped by another (a block
 * then changes lists); and each value's content checked after the others were made, which
 * fails if a block were handed out while still in use. TAP, no cmocka (not built for musl).
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "shared/json-cache.h"

#define VALUES 600
#define ROUNDS 40

/* a string of n bytes that names its index: a block given out twice shows as a wrong text */
static void fill(char *s, size_t n, unsigned tag)
{
        for (size_t i = 0; i < n; i++)
                s[i] = (char)('a' + (tag + i * 7) % 26);
        s[n] = '\0';
}

static int make_and_check(unsigned seed, json_t **keep, size_t nkeep)
{
        char text[1200];
        json_t *v[VALUES];

        for (unsigned r = 0; r < ROUNDS; r++) {
                for (unsigned i = 0; i < VALUES; i++) {
                        size_t n = (i * 37 + r * 11 + seed) % 1100; /* past the largest class */
                        fill(text, n, i + seed);
                        v[i] = json_pack("{s:s, s:i, s:[s]}", "t", text, "i", (int)i, "a", text);
                        if (!v[i])
                                return 1;
                }
                for (unsigned i = 0; i < VALUES; i++) {
                        size_t n = (i * 37 + r * 11 + seed) % 1100;
                        fill(text, n, i + seed);
                        const char *t = json_string_value(json_object_get(v[i], "t"));
                        json_t *a = json_object_get(v[i], "a");
                        if (!t || strcmp(t, text) != 0 ||
                            json_integer_value(json_object_get(v[i], "i")) != (json_int_t)i ||
                            strcmp(json_string_value(json_array_get(a, 0)), text) != 0)
                                return 1;
                }
                for (unsigned i = 0; i < VALUES; i++) {
                        if (keep && i < nkeep && r == ROUNDS - 1)
                                keep[i] = v[i]; /* left for another thread to drop */
                        else
                                json_decref(v[i]);
                }
        }
        return 0;
}

struct job {
        unsigned seed;
        json_t **keep;
        size_t nkeep;
        int failed;
};

static void *worker(void *arg)
{
        struct job *j = arg;
        j->failed = make_and_check(j->seed, j->keep, j->nkeep);
        return NULL;
}

int main(void)
{
        json_t *kept[2][VALUES] = {{0}};
        struct job jobs[2] = {{1, kept[0], VALUES, 0}, {2, kept[1], VALUES, 0}};
        pthread_t t[2];
        int bad = 0, r;

        json_cache_install();
        printf("1..3\n");
        r = make_and_check(0, NULL, 0);
        printf("%s 1 - one thread: values of every size, made, checked and dropped in turns\n",
               r ? "not ok" : "ok");
        bad |= r;
        r = 0;
        for (int k = 0; k < 2; k++)
                r |= pthread_create(&t[k], NULL, worker, &jobs[k]) != 0;
        for (int k = 0; k < 2 && !r; k++)
                r |= pthread_join(t[k], NULL) != 0;
        r |= jobs[0].failed | jobs[1].failed;
        printf("%s 2 - two threads at once\n", r ? "not ok" : "ok");
        bad |= r;
        /* the values the threads left are dropped here, in another thread than their maker,
         * while this thread makes new ones */
        r = 0;
        for (int k = 0; k < 2; k++)
                for (size_t i = 0; i < VALUES; i++)
                        json_decref(kept[k][i]);
        r |= make_and_check(3, NULL, 0);
        printf("%s 3 - blocks freed by another thread than their maker, then reused\n",
               r ? "not ok" : "ok");
        bad |= r;
        return bad;
}
