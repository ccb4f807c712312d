// SPDX-License-Identifier: Apache-2.0
/*
 * A per-thread cache of jansson's small blocks (json-cache.h).
 *
 * jansson allocates every value, key and hash bucket on its own: a sandbox record of ~850 bytes
 * is about a hundred malloc calls to parse and as many frees. musl's malloc (the CLI is built
 * with musl, src/meson.build) serves them all under one lock, each slower than glibc's, and two
 * threads loading records contend for that lock: `list` of 2,000 took 1.6x glibc's time.
 *
 * Each thread keeps, per 16-byte size class up to 512 bytes, a list of blocks jansson freed, and
 * takes from it before calling malloc. Every block is a block malloc returned (its class is
 * read back with malloc_usable_size, so a block is only ever reused for a size it holds), so a
 * block freed by another thread than the one that took it is still a valid block for either's
 * list. Each list holds at most CACHE_DEPTH blocks (more go to free), and a thread's lists are
 * freed when the thread exits (a pthread key's destructor): the cache holds at most ~0.5 MiB per
 * thread and nothing outlives its thread. Larger blocks go to malloc and free directly.
 */
#include "json-cache.h"

#include <jansson.h>

#include "shared/sanitizer.h"

#if defined(__GLIBC__) || AK_ASAN || defined(__SANITIZE_ADDRESS__)

void json_cache_install(void)
{
        /* glibc: per-thread arenas already; sanitizers: a cached block would hide a use after
         * free from them */
}

#else

#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define CLASS_SIZE 16
#define CLASSES 32 /* up to 512 bytes */
#define CACHE_DEPTH 64

struct cached {
        struct cached *next;
};

struct thread_cache {
        struct cached *head[CLASSES];
        unsigned count[CLASSES];
};

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static bool key_made;
static __thread struct thread_cache *tc;
static __thread bool tc_failed; /* this thread has none and will not try again */

/* the key's destructor, run by the exiting thread itself: a JSON value freed after it (by a
 * later destructor) goes straight to free, not to the lists freed here */
static void cache_drop(void *p)
{
        struct thread_cache *c = p;

        tc = NULL;
        tc_failed = true;
        for (size_t k = 0; k < CLASSES; k++)
                for (struct cached *b = c->head[k], *next; b; b = next) {
                        next = b->next;
                        free(b);
                }
        free(c);
}

static void key_init(void)
{
        key_made = pthread_key_create(&cache_key, cache_drop) == 0;
}

/* this thread's cache, made on first use; NULL if it cannot be (then malloc and free directly) */
static struct thread_cache *cache(void)
{
        struct thread_cache *c;

        if (tc || tc_failed)
                return tc;
        tc_failed = true;
        if (pthread_once(&cache_once, key_init) != 0 || !key_made)
                return NULL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        if (pthread_setspecific(cache_key, c) != 0) { /* then nothing would free it */
                free(c);
                return NULL;
        }
        tc_failed = false;
        tc = c;
        return c;
}

static void *cache_malloc(size_t n)
{
        size_t k = (n + CLASS_SIZE - 1) / CLASS_SIZE; /* the class that holds n */
        struct thread_cache *c;

        if (k == 0)
                k = 1;
        if (k > CLASSES || !(c = cache()))
                return malloc(n);
        struct cached *b = c->head[k - 1];
        if (b) {
                c->head[k - 1] = b->next;
                c->count[k - 1]--;
                return b;
        }
        return malloc(k * CLASS_SIZE);
}

static void cache_free(void *p)
{
        struct thread_cache *c;
        size_t k;

        if (!p)
                return;
        k = malloc_usable_size(p) / CLASS_SIZE; /* the class it can serve: it holds k * 16 */
        if (k == 0 || k > CLASSES || !(c = cache()) || c->count[k - 1] >= CACHE_DEPTH) {
                free(p);
                return;
        }
        struct cached *b = p;
        b->next = c->head[k - 1];
        c->head[k - 1] = b;
        c->count[k - 1]++;
}

void json_cache_install(void)
{
        json_set_alloc_funcs(cache_malloc, cache_free);
}

#endif
