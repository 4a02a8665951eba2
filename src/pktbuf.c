/* SPDX-License-Identifier: ISC */
/*
 * pktbuf: message building with a sticky failure flag (see pktbuf.h).
 */
#include "pktbuf.h"

#include "proto.h"

#include <string.h>

void pktbuf_init(struct pktbuf *pb, void *mem, size_t cap)
{
    pb->buf = mem;
    pb->cap = cap;
    pb->len = 0;
    pb->msg_start = 0;
    pb->failed = false;
}

static bool pktbuf_room(struct pktbuf *pb, size_t n)
{
    if (pb->failed || pb->cap - pb->len < n) {
        pb->failed = true;
        return false;
    }
    return true;
}

void pktbuf_put_u8(struct pktbuf *pb, uint8_t v)
{
    if (pktbuf_room(pb, 1))
        pb->buf[pb->len++] = v;
}

void pktbuf_put_u16(struct pktbuf *pb, uint16_t v)
{
    if (pktbuf_room(pb, 2)) {
        pb->buf[pb->len++] = (uint8_t)(v >> 8);
        pb->buf[pb->len++] = (uint8_t)v;
    }
}

void pktbuf_put_u32(struct pktbuf *pb, uint32_t v)
{
    if (pktbuf_room(pb, 4)) {
        proto_put_u32(pb->buf + pb->len, v);
        pb->len += 4;
    }
}

void pktbuf_put_bytes(struct pktbuf *pb, const void *p, size_t n)
{
    if (n && pktbuf_room(pb, n)) {
        memcpy(pb->buf + pb->len, p, n);
        pb->len += n;
    }
}

void pktbuf_put_string(struct pktbuf *pb, const char *s)
{
    pktbuf_put_bytes(pb, s, strlen(s) + 1);
}

void pktbuf_start(struct pktbuf *pb, uint8_t type)
{
    if (type)
        pktbuf_put_u8(pb, type);
    pb->msg_start = pb->len;
    pktbuf_put_u32(pb, 0);
}

void pktbuf_finish(struct pktbuf *pb)
{
    if (pb->failed)
        return;
    proto_put_u32(pb->buf + pb->msg_start, (uint32_t)(pb->len - pb->msg_start));
}

void pktbuf_error(struct pktbuf *pb, const char *severity, const char *sqlstate, const char *msg)
{
    pktbuf_start(pb, PqMsg_ErrorResponse);
    pktbuf_put_u8(pb, 'S');
    pktbuf_put_string(pb, severity);
    pktbuf_put_u8(pb, 'V');
    pktbuf_put_string(pb, severity);
    pktbuf_put_u8(pb, 'C');
    pktbuf_put_string(pb, sqlstate);
    pktbuf_put_u8(pb, 'M');
    pktbuf_put_string(pb, msg);
    pktbuf_put_u8(pb, 0);
    pktbuf_finish(pb);
}

void pktbuf_notice(struct pktbuf *pb, const char *msg)
{
    pktbuf_start(pb, PqMsg_NoticeResponse);
    pktbuf_put_u8(pb, 'S');
    pktbuf_put_string(pb, "NOTICE");
    pktbuf_put_u8(pb, 'V');
    pktbuf_put_string(pb, "NOTICE");
    pktbuf_put_u8(pb, 'C');
    pktbuf_put_string(pb, "00000");
    pktbuf_put_u8(pb, 'M');
    pktbuf_put_string(pb, msg);
    pktbuf_put_u8(pb, 0);
    pktbuf_finish(pb);
}

void pktbuf_param_status(struct pktbuf *pb, const char *key, const char *val)
{
    pktbuf_start(pb, PqMsg_ParameterStatus);
    pktbuf_put_string(pb, key);
    pktbuf_put_string(pb, val);
    pktbuf_finish(pb);
}

void pktbuf_ready(struct pktbuf *pb, char status)
{
    pktbuf_start(pb, PqMsg_ReadyForQuery);
    pktbuf_put_u8(pb, (uint8_t)status);
    pktbuf_finish(pb);
}

void pktbuf_auth(struct pktbuf *pb, uint32_t code, const void *data, size_t len)
{
    pktbuf_start(pb, PqMsg_AuthenticationRequest);
    pktbuf_put_u32(pb, code);
    pktbuf_put_bytes(pb, data, len);
    pktbuf_finish(pb);
}

void pktbuf_query(struct pktbuf *pb, const char *sql)
{
    pktbuf_start(pb, PqMsg_Query);
    pktbuf_put_string(pb, sql);
    pktbuf_finish(pb);
}
