/* SPDX-License-Identifier: ISC */
/*
 * proto: pure PostgreSQL v3 wire parsing, no I/O. Every byte read from the
 * wire goes through the bounds-checked reader below: each get returns false
 * when the bytes run out (or, for strings, when the NUL is missing), so no
 * caller does pointer arithmetic on packet data.
 */
#ifndef PGMUX_PROTO_H
#define PGMUX_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Message types (PostgreSQL's names, "Frontend/Backend Protocol" §55.7). */
#define PqMsg_Bind 'B'
#define PqMsg_Close 'C'
#define PqMsg_Describe 'D'
#define PqMsg_Execute 'E'
#define PqMsg_FunctionCall 'F'
#define PqMsg_Flush 'H'
#define PqMsg_Parse 'P'
#define PqMsg_Query 'Q'
#define PqMsg_Sync 'S'
#define PqMsg_Terminate 'X'
#define PqMsg_CopyFail 'f'
#define PqMsg_PasswordMessage 'p'
#define PqMsg_CopyData 'd'
#define PqMsg_CopyDone 'c'

#define PqMsg_ParseComplete '1'
#define PqMsg_BindComplete '2'
#define PqMsg_CloseComplete '3'
#define PqMsg_NotificationResponse 'A'
#define PqMsg_CommandComplete 'C'
#define PqMsg_DataRow 'D'
#define PqMsg_ErrorResponse 'E'
#define PqMsg_CopyInResponse 'G'
#define PqMsg_CopyOutResponse 'H'
#define PqMsg_EmptyQueryResponse 'I'
#define PqMsg_BackendKeyData 'K'
#define PqMsg_NoticeResponse 'N'
#define PqMsg_AuthenticationRequest 'R'
#define PqMsg_ParameterStatus 'S'
#define PqMsg_RowDescription 'T'
#define PqMsg_FunctionCallResponse 'V'
#define PqMsg_CopyBothResponse 'W'
#define PqMsg_ReadyForQuery 'Z'
#define PqMsg_NoData 'n'
#define PqMsg_PortalSuspended 's'
#define PqMsg_ParameterDescription 't'
#define PqMsg_NegotiateProtocolVersion 'v'

#define PKT_PROTO_V3 196608u    /* 3.0 */
#define PKT_CANCEL 80877102u
#define PKT_SSLREQ 80877103u
#define PKT_GSSENCREQ 80877104u
#define PKT_STARTUP_MAX 10000   /* PostgreSQL's MAX_STARTUP_PACKET_LENGTH */

#define AUTH_REQ_OK 0
#define AUTH_REQ_PASSWORD 3
#define AUTH_REQ_MD5 5
#define AUTH_REQ_SASL 10
#define AUTH_REQ_SASL_CONT 11
#define AUTH_REQ_SASL_FIN 12

static inline uint32_t proto_get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void proto_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

struct pkt_reader {
    const uint8_t *pos;
    const uint8_t *end;
};

/* data may be NULL when len is 0 (an empty buffer never allocated). */
static inline void reader_init(struct pkt_reader *r, const uint8_t *data, size_t len)
{
    r->pos = data;
    r->end = len ? data + len : data;
}

static inline size_t reader_left(const struct pkt_reader *r)
{
    return (size_t)(r->end - r->pos);
}

bool reader_get_u8(struct pkt_reader *r, uint8_t *v);
bool reader_get_u16(struct pkt_reader *r, uint16_t *v);
bool reader_get_u32(struct pkt_reader *r, uint32_t *v);
bool reader_get_i32(struct pkt_reader *r, int32_t *v);
/* A NUL-terminated string; *s points into the packet. */
bool reader_get_cstring(struct pkt_reader *r, const char **s);
bool reader_get_bytes(struct pkt_reader *r, size_t n, const uint8_t **p);

/*
 * Fields of an ErrorResponse/NoticeResponse body. Pointers point into the
 * packet (NUL-terminated there) or are NULL when absent. False when malformed.
 */
struct pg_error_fields {
    const char *severity; /* 'V' (non-localized) preferred over 'S' */
    const char *sqlstate; /* 'C' */
    const char *message;  /* 'M' */
};
bool proto_parse_error(const uint8_t *body, size_t len, struct pg_error_fields *out);

/*
 * Walk the key/value pairs of a StartupMessage body (after the protocol
 * code). Returns 1 with key and val set, 0 at the terminating empty key when
 * nothing follows it, -1 when the layout is broken (missing NUL, missing
 * value, bytes after the terminator).
 */
int proto_startup_next(struct pkt_reader *r, const char **key, const char **val);

/*
 * Split the "options" startup parameter the way PostgreSQL does: words
 * separated by spaces, backslash escapes the next character. Each word is
 * written NUL-terminated into buf (cap bytes) one after another. Returns the
 * number of words, or -1 when buf is too small.
 */
int proto_split_options(const char *opts, char *buf, size_t cap);

#endif
