/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the worker's files share (worker.c and the files beside it; docs/architecture.md lists
 * which behaviour lives where): the limits more than one of them uses, the connection, DNS
 * connection, lookup and sandbox structures, the worker's one state (W), the proxy's own
 * in-flight buffers, and the functions one file calls in another. Private to src/proxy/: no
 * other directory includes it, and nothing here is an interface of the proxy.
 *
 * Everything runs on the worker's one thread, inside its epoll loop: no function here blocks,
 * and none may be called from anywhere else.
 */
#pragma once

#include <ares.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "mitm.h"
#include "proxy.h"
#include "shared/macro.h"
#include "shared/net-policy.h"
#include "sniff.h"

#define BUF_SIZE (64 * 1024)  /* per direction and connection, while data is in flight */
#define HEAD_MAX (16 * 1024)  /* a request head */
#define SNIFF_MAX (16 * 1024) /* a transparent connection's first bytes */
#define MAX_HEADERS 100
#define TABLE_SIZE 1024 /* DNS answers remembered per sandbox (address -> name) */
#define TABLE_MIN_TTL_S 60
#define TABLE_MAX_TTL_S 3600
#define MAX_ARES_SOCKS 16

enum evk {
        EVK_CTL,
        EVK_LISTEN,
        EVK_DNS_UDP,
        EVK_DNS_LISTEN,
        EVK_DNS_TCP,
        EVK_CLIENT,
        EVK_UPSTREAM,
        EVK_ARES,
};

struct ev {
        enum evk kind;
};

struct buf {
        uint8_t *d;
        size_t start, end;
        bool wipe; /* it may hold a secret's value: wiped before its memory is freed */
};

struct table_entry {
        struct in_addr addr;
        int64_t expires_ms;
        char name[NET_POLICY_HOST_MAX + 1];
};

struct stats {
        uint64_t open, total, allowed, denied, bytes_out, bytes_in, dns_queries, dns_denied;
        uint64_t intercepted, substituted, misdirected;
};

#define LEAF_CACHE 32 /* leaf certificates kept per sandbox (the oldest used is replaced) */

struct leaf {
        char host[NET_POLICY_HOST_MAX + 1];
        X509 *cert;
        int64_t used;
};

struct sandbox;

struct ares_sock {
        struct ev ev;
        struct sandbox *sb;
        int fd;
        uint32_t events;
};

struct sandbox {
        struct ev lev, uev, tev;
        struct sandbox *next;
        char name[PROXY_NAME_MAX + 1];
        char uuid[64];
        struct net_policy *policy;
        int tcp_fd, udp_fd, dnstcp_fd, log_fd;
        ares_channel ares;
        bool ares_ok;
        struct ares_sock asocks[MAX_ARES_SOCKS];
        struct table_entry *table;
        size_t table_next;
        struct stats st;
        uint64_t log_bytes, log_drops, audit_drops;
        int64_t audit_second;
        unsigned audit_count;
        unsigned dns_tcp_open, lookups;
        uint32_t lmask;           /* the TCP listener's epoll interest */
        int64_t accept_paused_ms; /* out of fds: the listener rests until then */
        /* secret injection (tls.c, mitm.c): grants with their values, the sandbox's CA, one
         * key for its leaves, their cache, and its upstream trust when upstream_ca was given
         * (NULL: W.up_ctx, the system store) */
        struct grant *grants;
        size_t n_grants;
        X509 *ca;
        EVP_PKEY *ca_key, *leaf_key;
        SSL_CTX *up_ctx;
        struct leaf leaves[LEAF_CACHE];
};

struct head {
        char buf[HEAD_MAX];
        size_t len;
        size_t url_off, url_len;
        struct {
                size_t f_off, f_len, v_off, v_len;
        } h[MAX_HEADERS];
        size_t n;
        bool in_value, too_many;
};

enum cmode {
        CM_SNIFF,   /* transparent: waiting for the first bytes */
        CM_HTTP,    /* requests, one decision each */
        CM_TUNNEL,  /* bytes both ways */
        CM_CLOSING, /* a reply (403, 502) is being flushed, then close */
        CM_H2,      /* intercepted HTTP/2: frames through two sessions (h2.c) */
};

enum hstate {
        H_HEAD,    /* reading a request head */
        H_WAIT,    /* deciding, resolving or connecting for it */
        H_BODY,    /* forwarding its body */
        H_PENDING, /* request sent, response not complete */
};

struct lookup;

/* One TLS end of an intercepted connection: an SSL object between two memory BIOs (tls.c). */
struct tls_end {
        SSL *ssl;
        BIO *rb, *wb;   /* owned by ssl */
        struct buf out; /* ciphertext for the socket */
        bool hs_done, failed, sock_eof;
        int alert;     /* the error's reason when failed */
        char why[160]; /* when failed */
};

struct mresp; /* mitm.c: a response being scrubbed */
struct mbody; /* mitm.c: a request body being substituted */
struct h2;    /* h2.c: an intercepted HTTP/2 connection */

struct conn {
        struct ev cev, uev;
        struct conn *prev, *next;
        struct sandbox *sb;
        int cfd, ufd;
        uint32_t cmask, umask;
        enum cmode mode;
        enum hstate hs;
        bool explicit_proxy, connecting, upstream_ok, cin_eof, up_eof, c_shut, u_shut;
        bool sni_check, is_connect, upgrade, req_done, resp_done, resp_interim, req_is_head;
        bool keep_alive, log_pending, rst, sniffed, closed;
        /* a tunnel moves bytes through two pipes with splice(2), not through the buffers: no
         * copy to user space (pin: client -> upstream, pout: upstream -> client) */
        bool spliced;
        int pin[2], pout[2];
        size_t pin_len, pout_len;
        struct sockaddr_in orig;
        struct buf cin, up, down;
        struct buf hbuf; /* the next request head for upstream */
        http_parser req, resp;
        struct head *head;
        char host[NET_POLICY_HOST_MAX + 1]; /* the destination's name ("" when none) */
        uint16_t port;
        char method[NET_POLICY_METHOD_MAX + 1];
        struct in_addr dst;
        bool have_dst;
        char up_host[NET_POLICY_HOST_MAX + 1]; /* what ufd is connected to */
        uint16_t up_port;
        const char *kind; /* "http", "connect", "tls", "tcp" */
        struct net_decision dec;
        struct lookup *lookup;
        uint64_t bytes_out, bytes_in; /* since the last log line */
        int64_t deadline, sniff_until;
        /* interception (mitm.c, tls.c): TLS ends on both sides, requests substituted for
         * the grants bound to host (bound: bit i = grants[i]), responses scrubbed */
        bool mitm;
        struct tls_end *ct, *ut;
        struct buf rin; /* plaintext from upstream, before scrubbing */
        struct mresp *mr;
        struct mbody *mb;
        bool mitm_req_seen;   /* a request came on this intercepted connection */
        uint64_t bound, used; /* used: grants substituted in the current request */
        uint8_t scan_carry[MITM_PLACEHOLDER_LEN];
        size_t scan_carry_len;
        char mitm_host[NET_POLICY_HOST_MAX + 1]; /* the intercepted name (SNI, CONNECT) */
        uint16_t mitm_port;
        /* ALPN is mirrored (tls.c): the ClientHello waits for upstream's handshake when the
         * client offers h2 (hello_wait), upstream is offered h2 only then (offer_h2) */
        bool alpn_seen, offer_h2, hello_wait;
        struct h2 *h2; /* h2.c, in CM_H2 */
};

struct dns_conn {
        struct ev ev;
        struct dns_conn *prev, *next;
        struct sandbox *sb;
        int fd;
        uint8_t in[2 + DNS_MSG_MAX];
        size_t in_len;
        int64_t deadline;
};

/* A pending upstream resolution: for a connection, or for a DNS question of a sandbox (answered
 * over UDP to from, or over a TCP DNS connection). */
struct lookup {
        struct lookup *prev, *next;
        struct sandbox *sb;
        struct conn *c;
        struct dns_conn *dc;
        bool for_dns;
        int udp_fd;
        struct sockaddr_storage from;
        socklen_t from_len;
        struct dns_question q;
        uint8_t query[DNS_MSG_MAX];
        size_t query_len;
        char name[NET_POLICY_HOST_MAX + 1];
};

/* The worker's state: one per process (worker.c defines it). */
struct worker {
        const struct proxy_opts *o;
        int ep, ctl_fd;
        struct ev ctl_ev;
        struct sandbox *sandboxes;
        struct conn *conns;
        struct conn *dead; /* closed in this batch, freed after it */
        struct dns_conn *dns_conns;
        struct lookup *lookups;
        unsigned open, spliced;
        unsigned max_conns; /* the option, lowered to what RLIMIT_NOFILE allows */
        rlim_t nofile;
        struct in_addr host_addrs[NET_POLICY_MAX_HOST_ADDRS];
        size_t n_host_addrs;
        int64_t now;
        bool quit;
        SSL_CTX *srv_ctx; /* intercepted connections' sandbox side (a leaf is set per SSL) */
        SSL_CTX *up_ctx;  /* their upstream side: verified against the system store */
};

extern struct worker W;

/* The worker's lists (W.conns, W.dns_conns, W.lookups): doubly linked through prev and next,
 * newest first. */
#define LIST_PUSH(head, x)                                                                         \
        do {                                                                                       \
                (x)->next = (head);                                                                \
                if (head)                                                                          \
                        (head)->prev = (x);                                                        \
                (head) = (x);                                                                      \
        } while (0)
#define LIST_UNLINK(head, x)                                                                       \
        do {                                                                                       \
                if ((x)->prev)                                                                     \
                        (x)->prev->next = (x)->next;                                               \
                else                                                                               \
                        (head) = (x)->next;                                                        \
                if ((x)->next)                                                                     \
                        (x)->next->prev = (x)->prev;                                               \
        } while (0)

/* ---- buffers ----
 * A connection's in-flight bytes, one direction: at most BUF_SIZE, the memory allocated while
 * bytes are in it and freed when it drains (an idle connection holds none). Not shared/buf.h's
 * growing buffer, whose names these share (never include both): static inline, so that no
 * buf_consume of the proxy's is linked where shared/buf.c's is meant. */

static inline size_t buf_len(const struct buf *b)
{
        return b->end - b->start;
}

static inline size_t buf_room(const struct buf *b)
{
        return BUF_SIZE - buf_len(b);
}

/* Where up to *room bytes may be written (NULL on OOM). */
static inline uint8_t *buf_tail(struct buf *b, size_t *room)
{
        if (!b->d) {
                b->d = malloc(BUF_SIZE);
                if (!b->d)
                        return NULL;
                b->start = b->end = 0;
        }
        if (b->start > 0 && b->end == BUF_SIZE) {
                memmove(b->d, b->d + b->start, buf_len(b));
                b->end -= b->start;
                b->start = 0;
        }
        *room = BUF_SIZE - b->end;
        return b->d + b->end;
}

/* Frees b's memory (wiped first when b->wipe); b stays empty, its wipe flag kept. */
static inline void buf_release(struct buf *b)
{
        bool wipe = b->wipe;
        if (b->d && wipe)
                explicit_bzero(b->d, BUF_SIZE);
        free(b->d);
        *b = (struct buf){.wipe = wipe};
}

static inline void buf_consume(struct buf *b, size_t n)
{
        b->start += n;
        if (b->start >= b->end)
                buf_release(b);
}

static inline bool buf_put(struct buf *b, const void *data, size_t n)
{
        size_t room;
        uint8_t *t;
        if (buf_room(b) < n)
                return false;
        t = buf_tail(b, &room);
        if (!t)
                return false;
        if (room < n) {
                memmove(b->d, b->d + b->start, buf_len(b));
                b->end -= b->start;
                b->start = 0;
                t = b->d + b->end;
        }
        memcpy(t, data, n);
        b->end += n;
        return true;
}

static inline void buf_free(struct buf *b)
{
        buf_release(b);
}

/* ---- worker.c: the loop ---- */

/* Makes fd's epoll interest want (0: none) with ev as its data; *cur is the interest now, and
 * is updated. Nothing happens for fd < 0 or an unchanged interest. */
void ep_set(int fd, struct ev *ev, uint32_t *cur, uint32_t want);

/* ---- sandbox.c: the registered sandboxes and the supervisor's requests ---- */

/* Reads one request from the supervisor and answers it (register, set_policy, unregister,
 * stats); sets W.quit when the supervisor is gone. */
void ctl_readable(void);

/* Closes everything of sb (its connections, DNS connections, lookups, resolver, sockets and
 * log) and frees it. sb must already be out of W.sandboxes (or never in it). */
void sandbox_free(struct sandbox *sb);

/* ---- decision-log.c: the decision log and the audit ---- */

/* Writes one line to sb's decision log (within its cap, else counted as dropped) and audits a
 * denial (within AUDIT_PER_SEC, else counted). host, ip and method may be NULL. Never fails:
 * what cannot be written is counted. */
void log_decision(struct sandbox *sb, const char *kind, const char *host, const struct in_addr *ip,
                  uint16_t port, const char *method, const struct net_decision *d,
                  uint64_t bytes_out, uint64_t bytes_in);

/* log_decision() with extra members for the line (stolen; NULL: none), and the audit of a
 * denial only when audit. */
void log_decision_ex(struct sandbox *sb, const char *kind, const char *host,
                     const struct in_addr *ip, uint16_t port, const char *method,
                     const struct net_decision *d, uint64_t bytes_out, uint64_t bytes_in,
                     json_t *extra, bool audit);

/* Logs c's pending decision with the bytes moved since, once (nothing when none is pending). */
void conn_log(struct conn *c);

/* Records c->dec for the current destination: counted, and logged now for a denial or at the
 * connection's (or exchange's) end for an allowed one. */
void conn_decided(struct conn *c);

/* ---- dns.c: the DNS table and the responder ---- */

/* Remembers that sb was told a is name's address, for ttl seconds (clamped to TABLE_MIN_TTL_S ..
 * TABLE_MAX_TTL_S): the pair's entry is refreshed, or a new one replaces the oldest written. */
void table_add(struct sandbox *sb, const char *name, struct in_addr a, uint32_t ttl);

/* Is name one sb was told a is for? Returns the entry's name, or NULL. With name NULL, the
 * first name sb was told a is for. Expired entries count too. */
const char *table_name_for(struct sandbox *sb, struct in_addr a, const char *name);

/* Was sb told a as an address of any name? */
bool table_has_addr(struct sandbox *sb, struct in_addr a);

/* A fresh (unexpired) address sb was told for name, into *ret. */
bool table_lookup(struct sandbox *sb, const char *name, struct in_addr *ret);

/* Answers l's DNS question with rcode and addrs (to its UDP peer or DNS connection, when they
 * are still there) and logs the answer. Does not free l. */
void dns_reply(struct lookup *l, int rcode, const struct in_addr *addrs, size_t n);

/* Reads and answers the questions waiting on sb's DNS UDP socket (a bounded batch). */
void dns_udp_readable(struct sandbox *sb);

/* Accepts TCP DNS connections on sb's DNS listener, within DNS_TCP_MAX (the rest are closed). */
void dns_tcp_accept(struct sandbox *sb);

/* Reads from a TCP DNS connection and answers each complete question; closes it on EOF, an
 * error or a bad length. */
void dns_tcp_readable(struct dns_conn *dc);

/* Closes and frees dc; its lookups still in flight answer no one. */
void dns_conn_close(struct dns_conn *dc);

/* ---- resolve.c: resolution (c-ares) ---- */

/* A new lookup of name for sb, in W.lookups, or NULL when sb has LOOKUPS_MAX in flight or on
 * OOM. The caller says who waits for it (l->c, or l->for_dns and where to answer), then calls
 * ares_start(). */
struct lookup *lookup_new(struct sandbox *sb, const char *name);

/* Starts resolving l. When it ends, the question is answered (dns_reply) or the connection
 * still waiting goes on (conn_resolved), and l is freed: possibly before this returns (at once
 * when sb has no resolver). */
void ares_start(struct lookup *l);

/* Takes l out of W.lookups and frees it. */
void lookup_free(struct lookup *l);

/* Makes sb's resolver from its policy's dns_servers (the host's resolv.conf without them; never
 * the host's /etc/hosts), its sockets in the worker's epoll. -ENOMEM, or -EINVAL for servers
 * c-ares refuses (sb->ares_ok tells whether sandbox_ares_done has a resolver to end). */
int sandbox_ares_init(struct sandbox *sb);

/* Ends sb's resolver: its lookups end with ARES_EDESTRUCTION, its sockets leave the epoll. */
void sandbox_ares_done(struct sandbox *sb);

/* ---- tls.c: certificates and the TLS ends of intercepted connections ---- */

/* The worker's SSL contexts (the system store is read here, before the seccomp filter). */
int tls_worker_init(void);
void tls_worker_done(void);

/* Sets up sb's interception from its registration: the CA (PEM, and its key's DER), a key for
 * its leaves, and its upstream trust (the system store plus upstream_ca, NULL: none). Nothing
 * for a sandbox without grants. */
int sandbox_tls_init(struct sandbox *sb, const char *ca_pem, const uint8_t *key, size_t key_len,
                     const char *upstream_ca, struct ak_err *err);

/* Frees what sandbox_tls_init made (and the cached leaves). */
void sandbox_tls_done(struct sandbox *sb);

/* Did t's handshake choose h2 (NULL: no)? */
bool tls_is_h2(const struct tls_end *t);

/* c's ClientHello waits for upstream's handshake, which has ended: drive c's handshake again. */
bool tls_hello_ready(const struct conn *c);

/* Sets the server context's callbacks (ALPN mirrored: h2 when the client offers it and
 * upstream chose it, else http/1.1; the ClientHello callback that waits for upstream). */
void tls_server_setup(void);

/* Starts c's sandbox side: a TLS server with the leaf for c->host (made or cached), fed with what
 * c->cin holds (the ClientHello). -errno. */
int tls_client_start(struct conn *c);

/* Starts c's upstream side: a TLS client to c->host (SNI, verified name, ALPN http/1.1, and h2
 * first when c->offer_h2) over the connected ufd, its ClientHello made. -errno. */
int tls_up_start(struct conn *c);

/* Frees a TLS end (NULL is fine) and sets *t to NULL. */
void tls_end_free(struct tls_end **t);

/* Reads fd (when sock, and t's input is not backed up) into t, drives the handshake, and
 * decrypts into b within its room. Returns the bytes decrypted, 0 at the end of the peer's bytes
 * (*eof), -1 when nothing now, -2 when the handshake failed (t->why, t->alert). */
ssize_t tls_read(struct tls_end *t, int fd, struct buf *b, bool sock, bool *eof);

/* Encrypts what b holds (once the handshake is done) and sends what t has for fd. false with
 * *dead when fd is gone. */
bool tls_write(struct tls_end *t, int fd, struct buf *b, bool *dead);

/* Has t bytes it could decrypt without reading its socket? Ciphertext waiting to be sent? */
bool tls_has_input(const struct tls_end *t);
bool tls_out_pending(const struct tls_end *t);

/* ---- mitm.c: interception's HTTP side ---- */

/* Is c's destination name bound by a grant (c->bound set)? Interception needs it. */
bool mitm_wanted(struct conn *c);

/* Intercepts c (its upstream connected, the policy allowed it): a TLS server towards the client
 * (after "200 Connection established" when connect), requests parsed from then on. false when c
 * was refused. */
bool mitm_intercept(struct conn *c, bool connect);

/* A complete request head of an intercepted connection: Host checked, decided, substituted into
 * c->hbuf, connected (or refused). */
void mitm_request(struct conn *c, bool have_host, const char *hosthdr);

/* A plain (not intercepted) request head: refuses it (403, audited) when it holds a placeholder
 * of the sandbox's. -1 when refused. */
int mitm_check_plain(struct conn *c);

/* Request body bytes about to go upstream: refused (-1) when they complete a placeholder that
 * may not go there. */
int mitm_scan_body(struct conn *c, const uint8_t *d, size_t n);

/* Upstream plaintext was added to c->rin (or upstream ended): scrubbed into c->down, then
 * http_process(). c may be closed when it returns. */
void mitm_response(struct conn *c);

/* Frees c's response scrubbing and request body state. */
void mitm_resp_free(struct conn *c);
void mitm_body_free(struct conn *c);

/* A request body to substitute (a bound grant says "body"): collects it (at most
 * MITM_BODY_MAX, else 413), then substitutes it and queues head and body for upstream; moves
 * queued bytes into c->up as room allows (hs becomes H_PENDING once all is queued). -1 when c was
 * refused or closed. */
int mitm_body_step(struct conn *c);

/* Moves what a substituted body has queued into c->up as room allows. */
void mitm_body_flush(struct conn *c);

/* c (intercepted) closes: a client that completed the handshake and closed without a request
 * (what a client pinning another key does) is logged as tls_client_rejected_ca. */
void mitm_conn_closing(struct conn *c);

/* The sandbox side's handshake failed: logged and audited (tls_client_rejected_ca). */
void mitm_client_tls_failed(struct conn *c);

/* The sandbox side's handshake is done: is its server name (when it sent one) the intercepted
 * host? Logged and audited as a denial when not. */
bool mitm_sni_ok(struct conn *c);

/* The upstream side's handshake failed: 502 with the reason for a request in flight. */
void mitm_upstream_tls_failed(struct conn *c);

/* A growing output buffer (bounded by its user; mitm.c, h2.c). */
struct outb {
        uint8_t *p;
        size_t len, cap;
        bool oom;
};

/* Appends n bytes of d to o (o->oom set, and nothing more appended, when memory runs out). */
void ob_put(struct outb *o, const void *d, size_t n);

/* Frees o, wiping it: it may hold a value. */
void ob_free(struct outb *o);

/* Why a stream's request was refused (mitm_subst_value and friends): its status (403:
 * secret_misdirected, counted and alerted already: alerted), the reason in words (a KEY's
 * name, never a value or a placeholder). */
struct mitm_refusal {
        int status;
        bool alerted;
        char why[256];
};

/* The host names' comparison of interception (case, a final dot). */
bool mitm_same_host(const char *a, const char *b);

/* Appends header value v (of header name, or the request target when url) to o with the
 * placeholders of c's bound grants substituted (Basic credentials decoded and encoded again).
 * -1 with *r set when refused. */
int mitm_subst_value(struct conn *c, const char *name, size_t nl, const char *v, size_t vl,
                     bool url, struct outb *o, struct mitm_refusal *r);

/* Appends a whole request body to o, substituted for the grants that opt in. -1 with *r set. */
int mitm_subst_body(struct conn *c, const uint8_t *d, size_t n, struct outb *o,
                    struct mitm_refusal *r);

/* Request body bytes of a stream (carry: its last bytes, MITM_PLACEHOLDER_LEN at most): -1 with
 * *r set when they complete a placeholder that may not go there. */
int mitm_scan_stream(struct conn *c, uint8_t *carry, size_t *carry_len, const uint8_t *d, size_t n,
                     struct mitm_refusal *r);

/* Does a grant bound to c's host opt into substituting request bodies? */
bool mitm_body_opt_in(const struct conn *c);

/* Are there values bound to c's host to scrub from responses (*ratio: how much a byte may grow)? */
bool mitm_scrubs(const struct conn *c, size_t *ratio);

/* Scrubs d (final: and the carry) into out: each value bound to c's host becomes its
 * placeholder; a tail that may begin a value waits in carry. */
void mitm_scrub_into(struct conn *c, struct outb *carry, struct outb *out, const uint8_t *d,
                     size_t n, bool final);

/* ---- h2.c: HTTP/2 through the interception ---- */

/* c's sandbox side negotiated h2 (and so did its upstream): both sessions made, c->mode
 * CM_H2. -1 when they could not be (c is closed). */
int h2_start(struct conn *c);

/* Moves bytes through c's two HTTP/2 sessions: the client's (c->cin) and upstream's (c->rin)
 * into them, their frames out into c->down and c->up. c may be closed when it returns. */
void h2_process(struct conn *c);

/* The epoll interests of an HTTP/2 connection (*cw, *uw); closes it when it is done (true). */
bool h2_update(struct conn *c, uint32_t *cw, uint32_t *uw);

/* Frees c's HTTP/2 state (NULL is fine). */
void h2_free(struct conn *c);

/* ---- conn.c: connections, their bytes and their tunnels ---- */

/* Accepts connections on sb's TCP listener (a bounded batch): explicit proxy clients (the
 * original destination is the listener) start reading a request, the others are sniffed. Beyond
 * the limits a connection is reset and logged; out of fds the listener rests for 200 ms. */
void listener_accept(struct sandbox *sb);

/* Handles epoll events ev on c's client side. c may be closed when it returns. */
void client_event(struct conn *c, uint32_t ev);

/* Handles epoll events ev on c's upstream side (the end of a connect, or bytes). c may be
 * closed when it returns. */
void upstream_event(struct conn *c, uint32_t ev);

/* Sets c's epoll interests from its state, writes what can be written now, propagates
 * half-closes and closes c when it is done. Nothing for a closed c. */
void conn_update(struct conn *c);

/* Closes c's upstream socket (if any) and drops what was buffered towards it. */
void upstream_close(struct conn *c);

/* Closes c (logging its pending decision) and moves it to W.dead, freed after this batch of
 * events: c's memory stays valid until then. Nothing for a closed c. */
void conn_close(struct conn *c);

/* Refuses the current destination: status with reason (in the body and X-Agentkernel-Rule) for
 * HTTP and CONNECT, then close; a reset for transparent connections and tunnels. */
void conn_refuse(struct conn *c, int status, const char *reason);

/* Records c->dec (a denial) and refuses with 403 and its reason. */
void conn_deny(struct conn *c);

/* Denies the current destination for a reason of the proxy's own, not a rule's (a bad request,
 * fronting, a failed resolution): c->dec says why (fmt), it is recorded as conn_decided() does,
 * and c is refused with status and that reason. */
void conn_deny_reason(struct conn *c, int status, const char *fmt, ...) _printf_(3, 4);

/* ---- destination.c: finding, deciding and reaching a connection's destination ---- */

/* Transparent: finds c's destination from its first bytes in c->cin (TLS SNI, an HTTP request,
 * the DNS table, else the address) and goes on to decide it; waits while more bytes are needed
 * and !timed_out. */
void sniff_decide(struct conn *c, bool timed_out);

/* The destination is named (c->host) or an address (c->dst): decides it before resolving, then
 * resolves by the proxy's own means (the policy's hosts, the DNS table, c-ares) and connects. */
void resolve_and_connect(struct conn *c);

/* Decides c's destination with its resolved address (c->dst) and connects, or refuses. */
void decide_and_connect(struct conn *c);

/* c's name resolved to addrs (n == 0: status says why not): connects to the first address the
 * policy allows, or refuses. */
void conn_resolved(struct conn *c, const struct in_addr *addrs, size_t n, int status);

/* The upstream for the current destination is connected (or reused): starts the tunnel, or
 * sends the request. c may be closed when it returns. */
void dest_decided(struct conn *c);

/* ---- http.c: HTTP requests, CONNECT and Upgrade ---- */

/* Moves client bytes through the request parser: the next request head (decided, see
 * http_request), a body towards upstream, the end of an exchange. c may be closed when it
 * returns. */
void http_process(struct conn *c);

/* Upstream bytes of a response were added to c->down after its first before bytes (or upstream
 * ended): parses them for the response's end, then goes on with http_process(). */
void http_response(struct conn *c, size_t before);

/* The response parser's shared steps (plain relay and interception): at the end of the head,
 * notes an interim (1xx) response and tells a HEAD's parser that no body follows; at a message's
 * end, an interim one is forgotten, a final one ends the exchange (and keep-alive if the upstream
 * said so). */
int http_resp_headers_complete(http_parser *p);
void http_resp_message_done(struct conn *c, http_parser *p);

/* CONNECT: checks the tunnel's first client bytes once they say enough (a TLS ClientHello must
 * name the CONNECT's host), then lets them (and the rest) through. false when the connection
 * was cut. */
bool connect_sni_step(struct conn *c);
