// SPDX-License-Identifier: Apache-2.0
/* The control protocol's framing (proxy.h): one JSON object per SOCK_SEQPACKET message, fds by
 * SCM_RIGHTS. Shared by the supervisor (with its clients and its worker) and the worker. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/macro.h"

int proxy_send_raw(int fd, const json_t *j, const void *raw, size_t raw_len, const int *fds,
                   size_t n_fds)
{
        cleanup_free char *text = json_dumps(j, JSON_COMPACT);
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * PROXY_REG_FDS)];
        } u;
        struct iovec iov[3];
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = 1};
        size_t len;
        ssize_t n;

        if (!text)
                return -ENOMEM;
        len = strlen(text);
        if (len > PROXY_JSON_MAX || n_fds > PROXY_REG_FDS ||
            (raw && len + 1 + raw_len > PROXY_MSG_MAX))
                return -EMSGSIZE;
        iov[0] = (struct iovec){text, len};
        if (raw) {
                iov[1] = (struct iovec){"", 1};
                iov[2] = (struct iovec){(void *)raw, raw_len};
                m.msg_iovlen = 3;
        }
        if (n_fds) {
                memset(&u, 0, sizeof(u));
                m.msg_control = u.buf;
                m.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&m);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }
        do
                n = sendmsg(fd, &m, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : 0;
}

int proxy_send(int fd, const json_t *j, const int *fds, size_t n_fds)
{
        return proxy_send_raw(fd, j, NULL, 0, fds, n_fds);
}

uint8_t *secret_dup(const void *p, size_t n)
{
        uint8_t *d = malloc(n ? n : 1);
        if (!d)
                return NULL;
        if (n) {
                memcpy(d, p, n);
                (void)mlock(d, n); /* best effort: RLIMIT_MEMLOCK may say no */
        }
        return d;
}

void secret_free(void *p, size_t n)
{
        if (!p)
                return;
        explicit_bzero(p, n);
        if (n)
                (void)munlock(p, n);
        free(p);
}

static void wipe_free(char **p)
{
        if (*p) {
                explicit_bzero(*p, PROXY_MSG_MAX + 1);
                free(*p);
        }
}

int proxy_recv_raw(int fd, json_t **ret, uint8_t **raw, size_t *raw_len, int *fds, size_t max_fds,
                   size_t *n_fds)
{
        __attribute__((cleanup(wipe_free))) char *text = malloc(PROXY_MSG_MAX + 1);
        const char *nul;
        size_t jlen;
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * 16)];
        } u;
        struct iovec iov = {text, PROXY_MSG_MAX + 1};
        struct msghdr m = {.msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = u.buf,
                           .msg_controllen = sizeof(u.buf)};
        size_t got = 0;
        bool too_many = false;
        json_t *j;
        ssize_t n;

        *n_fds = 0;
        if (raw) {
                *raw = NULL;
                *raw_len = 0;
        }
        if (!text)
                return -ENOMEM;
        do
                n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                        int f;
                        memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                        if (got < max_fds)
                                fds[got++] = f;
                        else {
                                close(f);
                                too_many = true;
                        }
                }
        }
        if (n == 0 && got == 0)
                return -EPIPE;
        if ((m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || n > PROXY_MSG_MAX || too_many) {
                for (size_t i = 0; i < got; i++)
                        close(fds[i]);
                return (m.msg_flags & MSG_CTRUNC) || too_many ? -EBADMSG : -EMSGSIZE;
        }
        nul = memchr(text, '\0', (size_t)n);
        jlen = nul ? (size_t)(nul - text) : (size_t)n;
        if (jlen > PROXY_JSON_MAX) {
                for (size_t i = 0; i < got; i++)
                        close(fds[i]);
                return -EMSGSIZE;
        }
        j = !nul || raw ? json_loadb(text, jlen, JSON_REJECT_DUPLICATES, NULL) : NULL;
        if (j && nul) {
                *raw_len = (size_t)n - jlen - 1;
                *raw = secret_dup(nul + 1, *raw_len);
                if (!*raw) {
                        json_decref(j);
                        j = NULL;
                }
        }
        if (!json_is_object(j)) {
                json_decref(j);
                if (raw && *raw) {
                        secret_free(*raw, *raw_len);
                        *raw = NULL;
                        *raw_len = 0;
                }
                for (size_t i = 0; i < got; i++)
                        close(fds[i]);
                return -EBADMSG;
        }
        *n_fds = got;
        *ret = j;
        return 0;
}

int proxy_recv(int fd, json_t **ret, int *fds, size_t max_fds, size_t *n_fds)
{
        return proxy_recv_raw(fd, ret, NULL, NULL, fds, max_fds, n_fds);
}

json_t *proxy_error_reply(const char *msg)
{
        return json_pack("{s:b,s:s}", "ok", 0, "error", msg);
}
