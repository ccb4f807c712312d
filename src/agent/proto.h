/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent protocol: length-prefixed frames carrying either raw bytes (stdin/stdout/stderr/file
 * data) or a list of tag-length-value fields. The same bytes work over a unix socket, vsock or a
 * virtio-serial port; docs/protocol.md is the reference. The decoder treats every byte as
 * hostile: it never reads past a length it has checked and never trusts a count.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shared/buf.h"

#define AK_PROTO_VERSION 1
#define AK_FRAME_HDR 8          /* u32 len, u16 type, u16 chan: little-endian */
#define AK_FRAME_MAX (4u << 20) /* largest payload accepted from a peer */
#define AK_CHUNK (64u << 10)    /* data frames are at most this large */
#define AK_MAX_FIELDS 65536     /* fields per control message */
#define AK_MAX_ARGS 16384       /* argv or env entries per exec */

enum ak_type {
        AK_HELLO = 1, /* both ways: VERSION */
        AK_ERROR = 2, /* agent->host: ERRNO, MSG */
        AK_OK = 3,    /* agent->host: optional SIZE */
        AK_END = 4,   /* end of a DATA or entry stream */
        AK_DATA = 5,  /* raw bytes of a file */
        AK_PING = 6,
        AK_PONG = 7,
        AK_STATS = 8, /* -> OK {PIDS, MEM_USED, MEM_TOTAL}: a virtual machine's guest as its
                         agent sees it (docs/protocol.md); other agents answer ERROR */

        AK_EXEC = 16,    /* ARG+, ENV*, CWD, USER, FLAGS, ROWS, COLS, TIMEOUT_MS, ALLOW*, BLOCK* */
        AK_STARTED = 17, /* agent->host: PID */
        AK_STDIN = 18,   /* raw */
        AK_STDIN_EOF = 19,
        AK_STDOUT = 20, /* raw */
        AK_STDERR = 21, /* raw */
        AK_EXIT = 22,   /* CODE, SIGNAL, optional FLAGS (timed out) */
        AK_RESIZE = 23, /* ROWS, COLS */
        AK_SIGNAL = 24, /* SIGNAL: delivered to the command's process group */

        AK_FILE_READ = 32,   /* PATH, optional SIZE (byte limit) -> FILE_INFO, DATA*, END */
        AK_FILE_INFO = 33,   /* SIZE, MODE */
        AK_FILE_WRITE = 34,  /* PATH, MODE, FLAGS; then DATA*, END -> OK(SIZE) */
        AK_FILE_LIST = 35,   /* PATH -> FILE_ENTRY*, END */
        AK_FILE_ENTRY = 36,  /* NAME, TYPE, SIZE, MODE, MTIME */
        AK_FILE_REMOVE = 37, /* PATH, FLAGS(RECURSIVE) -> OK */
        AK_MKDIR = 38,       /* PATH, MODE, FLAGS(PARENTS) -> OK */
        AK_FILE_STAT = 39,   /* PATH -> FILE_ENTRY */

        AK_DETACH_LIST = 48, /* -> DETACH_INFO*, END */
        AK_DETACH_INFO = 49, /* ID, PID, STATUS, CODE?, STARTED, ARG+ */
        AK_DETACH_GET = 50,  /* ID -> DETACH_INFO */
        AK_DETACH_LOGS = 51, /* ID, STREAM -> DATA*, END */
        AK_DETACH_KILL = 52, /* ID, SIGNAL -> DETACH_INFO */

        AK_TCP_CONNECT = 64, /* PORT -> OK carrying (SCM_RIGHTS) a TCP socket connected to
                                127.0.0.1:PORT in the sandbox: published ports in proxy mode */
};

enum ak_tag {
        AK_T_ARG = 1,
        AK_T_ENV = 2,
        AK_T_CWD = 3,
        AK_T_USER = 4,
        AK_T_FLAGS = 5,
        AK_T_ROWS = 6,
        AK_T_COLS = 7,
        AK_T_TIMEOUT_MS = 8,
        AK_T_CODE = 9, /* i64 */
        AK_T_SIGNAL = 10,
        AK_T_ERRNO = 11,
        AK_T_MSG = 12,
        AK_T_PATH = 13,
        AK_T_MODE = 14,
        AK_T_SIZE = 15,
        AK_T_TYPE = 16,
        AK_T_MTIME = 17, /* i64 ns since the epoch */
        AK_T_NAME = 18,
        AK_T_ID = 19,
        AK_T_PID = 20,
        AK_T_STATUS = 21,
        AK_T_STARTED = 22, /* i64 ns since the epoch */
        AK_T_STREAM = 23,
        AK_T_VERSION = 24,
        AK_T_ALLOW = 25,     /* EXEC: command policy allow entry (repeatable) */
        AK_T_BLOCK = 26,     /* EXEC: command policy block entry (repeatable) */
        AK_T_UUID = 27,      /* HELLO reply: the sandbox the agent serves, when it was told */
        AK_T_PORT = 28,      /* TCP_CONNECT: 1..65535 */
        AK_T_PIDS = 29,      /* STATS: the guest's user-space processes, the agent included */
        AK_T_MEM_USED = 30,  /* STATS: bytes, MemTotal - MemAvailable of the guest */
        AK_T_MEM_TOTAL = 31, /* STATS: bytes, the guest's MemTotal */
};

/* EXEC flags */
#define AK_EXEC_TTY (1u << 0) /* run on a pseudo-terminal */
#define AK_EXEC_STDIN                                                                              \
        (1u << 1)                /* the host will send STDIN frames; otherwise stdin is /dev/null  \
                                  */
#define AK_EXEC_DETACH (1u << 2) /* detached: reply DETACH_INFO and keep logs */
#define AK_EXEC_ALLOWLIST_ONLY (1u << 3) /* command policy: only ALLOW entries may run */
/* EXIT flags */
#define AK_EXIT_TIMED_OUT (1u << 0)
/* FILE_WRITE / MKDIR / FILE_REMOVE flags */
#define AK_FILE_PARENTS (1u << 0)
#define AK_FILE_RECURSIVE (1u << 1)
#define AK_FILE_NOFOLLOW (1u << 2) /* FILE_WRITE: no symlink anywhere on the path */
/* FILE_ENTRY types */
enum ak_file_type { AK_FT_OTHER = 0, AK_FT_FILE = 1, AK_FT_DIR = 2, AK_FT_SYMLINK = 3 };
/* DETACH_INFO status */
enum ak_detach_status { AK_DETACH_RUNNING = 0, AK_DETACH_COMPLETED = 1, AK_DETACH_FAILED = 2 };
/* DETACH_LOGS stream */
enum ak_stream { AK_STREAM_STDOUT = 1, AK_STREAM_STDERR = 2 };

/* A received frame. payload points into the buffer it was parsed from. */
struct ak_msg {
        uint16_t type;
        uint16_t chan;
        uint32_t len;
        const uint8_t *payload;
};

/* --- encoding (appends to a buf) --- */

/* Starts a control message; returns the offset to pass to ak_msg_end(). */
size_t ak_msg_begin(struct buf *b, uint16_t type);
int ak_put_bytes(struct buf *b, uint16_t tag, const void *p, size_t n);
int ak_put_str(struct buf *b, uint16_t tag, const char *s);
int ak_put_u64(struct buf *b, uint16_t tag, uint64_t v);
/* Patches the frame length. Returns 0, or -EMSGSIZE if the payload exceeds AK_FRAME_MAX. */
int ak_msg_end(struct buf *b, size_t start);
/* Appends a complete raw frame (DATA/STDIN/STDOUT/...). */
int ak_put_frame(struct buf *b, uint16_t type, const void *p, size_t n);
/* Reads at most max bytes from fd straight into a new frame of the given type at the end of b
 * (no bounce buffer). Returns the payload size (the frame is added), 0 at end of file (nothing
 * added), or -errno (-EAGAIN included; nothing added). */
ssize_t ak_put_frame_from_fd(struct buf *b, uint16_t type, int fd, size_t max);

/* --- decoding --- */

/* Parses one frame from the front of p/len. Returns the total frame size (> 0) when complete,
 * 0 when more bytes are needed, -EBADMSG when the header announces more than AK_FRAME_MAX. */
ssize_t ak_frame_parse(const uint8_t *p, size_t len, struct ak_msg *ret);

/* Checks that a control message is a well-formed TLV list (every length inside the payload,
 * at most AK_MAX_FIELDS fields). Returns 0 or -EBADMSG. */
int ak_msg_validate(const struct ak_msg *m);

/* Field accessors for validated messages. -ENOENT when absent, -EBADMSG when malformed. */
int ak_get_u64(const struct ak_msg *m, uint16_t tag, uint64_t *ret);
/* Copies a string field; strings must not contain NUL. */
int ak_get_str(const struct ak_msg *m, uint16_t tag, char **ret);
/* Copies every occurrence of tag into a NULL-terminated array (at most max entries). */
int ak_get_strv(const struct ak_msg *m, uint16_t tag, size_t max, char ***ret, size_t *ret_n);
/* Points at the raw bytes of the first occurrence of tag. */
int ak_get_bytes(const struct ak_msg *m, uint16_t tag, const uint8_t **ret, size_t *ret_len);

/* --- blocking I/O on a stream fd --- */

/* Reads one frame into b (replacing its content) and parses it. -EPIPE on clean EOF before a
 * header, -EBADMSG on protocol errors. Control messages are validated. */
int ak_read_frame(int fd, struct buf *b, struct ak_msg *ret);
/* Writes all of b. */
int ak_write_buf(int fd, const struct buf *b);
/* Writes a raw frame. */
int ak_write_frame(int fd, uint16_t type, const void *p, size_t n);

/* True for frame types whose payload is raw bytes rather than fields. */
bool ak_type_is_raw(uint16_t type);

/* --- non-blocking connection with buffered output (used by event loops on both sides) --- */

struct ak_conn {
        int fd;
        struct buf in;   /* bytes received, not yet consumed */
        struct buf out;  /* bytes queued, not yet written */
        size_t consumed; /* bytes of `in` used by the last ak_conn_next() */
        bool eof;        /* peer closed its writing side */
};

void ak_conn_init(struct ak_conn *c, int fd);
void ak_conn_done(struct ak_conn *c); /* frees its buffers; does not close fd */
/* Reads what is available (non-blocking fd). Returns bytes read, 0 at EOF or nothing, -errno. */
ssize_t ak_conn_fill(struct ak_conn *c);
/* Extracts the next complete frame from `in`; 1 got one, 0 need more, -EBADMSG. The previous
 * message returned is invalidated. */
int ak_conn_next(struct ak_conn *c, struct ak_msg *ret);
/* Writes as much of `out` as the socket takes. Returns 0 or -errno (EAGAIN is not an error). */
int ak_conn_flush(struct ak_conn *c);
