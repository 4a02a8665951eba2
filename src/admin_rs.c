/* SPDX-License-Identifier: ISC */
/*
 * admin_rs: the console's output: a growable message buffer and the
 * result-set writers (RowDescription with PgBouncer's column types,
 * DataRow, CommandComplete) that every SHOW uses, for the simple protocol
 * (RowDescription + rows), an extended-protocol Execute (rows only) and a
 * Describe (RowDescription only). Allocation is fine here: the console is
 * not the data path.
 */
#include "admin_internal.h"

#include "log.h"
#include "proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* PostgreSQL type OIDs (pg_type.dat). */
#define OID_BYTEA   17
#define OID_INT8    20
#define OID_INT4    23
#define OID_TEXT    25
#define OID_NUMERIC 1700

/*==== Growable message buffer ====*/

void abuf_free(struct admin_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static bool abuf_room(struct admin_buf *b, size_t n)
{
    if (b->failed)
        return false;
    if (b->cap - b->len >= n)
        return true;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap - b->len < n) {
        if (cap > SIZE_MAX / 2) {
            b->failed = true;
            return false;
        }
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void abuf_put_bytes(struct admin_buf *b, const void *p, size_t n)
{
    if (n && abuf_room(b, n)) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
    }
}

void abuf_put_u8(struct admin_buf *b, uint8_t v)
{
    abuf_put_bytes(b, &v, 1);
}

void abuf_put_u16(struct admin_buf *b, uint16_t v)
{
    uint8_t p[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    abuf_put_bytes(b, p, 2);
}

void abuf_put_u32(struct admin_buf *b, uint32_t v)
{
    uint8_t p[4];
    proto_put_u32(p, v);
    abuf_put_bytes(b, p, 4);
}

void abuf_put_str(struct admin_buf *b, const char *s)
{
    abuf_put_bytes(b, s, strlen(s) + 1);
}

void abuf_start(struct admin_buf *b, uint8_t type)
{
    abuf_put_u8(b, type);
    b->msg_start = b->len;
    abuf_put_u32(b, 0);
}

void abuf_finish(struct admin_buf *b)
{
    if (b->failed)
        return;
    proto_put_u32(b->data + b->msg_start, (uint32_t)(b->len - b->msg_start));
}

void abuf_error(struct admin_buf *b, const char *sqlstate, const char *msg)
{
    abuf_start(b, PqMsg_ErrorResponse);
    abuf_put_u8(b, 'S');
    abuf_put_str(b, "ERROR");
    abuf_put_u8(b, 'V');
    abuf_put_str(b, "ERROR");
    abuf_put_u8(b, 'C');
    abuf_put_str(b, sqlstate);
    abuf_put_u8(b, 'M');
    abuf_put_str(b, msg);
    abuf_put_u8(b, 0);
    abuf_finish(b);
}

void abuf_notice(struct admin_buf *b, const char *msg, const char *detail)
{
    abuf_start(b, PqMsg_NoticeResponse);
    abuf_put_u8(b, 'S');
    abuf_put_str(b, "NOTICE");
    abuf_put_u8(b, 'V');
    abuf_put_str(b, "NOTICE");
    abuf_put_u8(b, 'C');
    abuf_put_str(b, "00000");
    abuf_put_u8(b, 'M');
    abuf_put_str(b, msg);
    if (detail) {
        abuf_put_u8(b, 'D');
        abuf_put_str(b, detail);
    }
    abuf_put_u8(b, 0);
    abuf_finish(b);
}

void abuf_param(struct admin_buf *b, const char *key, const char *val)
{
    abuf_start(b, PqMsg_ParameterStatus);
    abuf_put_str(b, key);
    abuf_put_str(b, val);
    abuf_finish(b);
}

void abuf_complete(struct admin_buf *b, const char *tag)
{
    abuf_start(b, PqMsg_CommandComplete);
    abuf_put_str(b, tag);
    abuf_finish(b);
}

void abuf_ready(struct admin_buf *b)
{
    /* The console has no transactions: always idle. */
    abuf_start(b, PqMsg_ReadyForQuery);
    abuf_put_u8(b, 'I');
    abuf_finish(b);
}

void abuf_simple(struct admin_buf *b, uint8_t type)
{
    abuf_start(b, type);
    abuf_finish(b);
}

/*==== Result sets ====*/

bool rs_begin(struct admin_ctx *x, const char *types, ...)
{
    va_list ap;
    size_t n = strlen(types);

    x->has_rows = true;
    if (x->want_rowdesc) {
        struct admin_buf *b = x->out;
        abuf_start(b, PqMsg_RowDescription);
        abuf_put_u16(b, (uint16_t)n);
        va_start(ap, types);
        for (size_t i = 0; i < n; i++) {
            uint32_t oid = OID_TEXT;
            int16_t len = -1;
            switch (types[i]) {
            case 'i':
                oid = OID_INT4;
                len = 4;
                break;
            case 'q':
                oid = OID_INT8;
                len = 8;
                break;
            case 'N':
                oid = OID_NUMERIC;
                break;
            case 'b':
                oid = OID_BYTEA;
                break;
            default: /* 's', 'T' */
                break;
            }
            abuf_put_str(b, va_arg(ap, const char *));
            abuf_put_u32(b, 0); /* table oid */
            abuf_put_u16(b, 0); /* column number */
            abuf_put_u32(b, oid);
            abuf_put_u16(b, (uint16_t)len);
            abuf_put_u32(b, 0xffffffffu); /* typmod -1 */
            abuf_put_u16(b, 0);           /* text format */
        }
        va_end(ap);
        abuf_finish(b);
    }
    return !x->describe;
}

/* Length of the valid UTF-8 sequence at p (1 to 4), or 0 when it is not valid. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) {
        n = 2;
        cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3;
        cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    /* A NUL fails the continuation test, so this never reads past the string. */
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = utf8_len(p);
        if (!n)
            return false;
        p += n;
    }
    return true;
}

void admin_clean_text(char *s, bool controls)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n = utf8_len(p);
        if (!n) {
            *p++ = '?';
            continue;
        }
        if (controls && n == 1 && (*p < 0x20 || *p == 0x7f))
            *p = ' ';
        p += n;
    }
}

/*
 * A text value. The console promises client_encoding UTF8, so bytes that are
 * not (an application_name from a startup packet can be anything) become '?'
 * rather than break the driver reading SHOW CLIENTS.
 */
static void rs_put_text(struct admin_buf *b, const char *s)
{
    if (!s) {
        abuf_put_u32(b, 0xffffffffu);
        return;
    }
    char *copy = NULL;
    if (!utf8_valid(s)) {
        copy = strdup(s);
        if (!copy) {
            b->failed = true;
            return;
        }
        admin_clean_text(copy, false);
        s = copy;
    }
    size_t n = strlen(s);
    abuf_put_u32(b, (uint32_t)n);
    abuf_put_bytes(b, s, n);
    free(copy);
}

/* Local time as PgBouncer prints it: "2026-11-23 12:46:01 UTC". */
static void format_time(double t, char *buf, size_t len)
{
    time_t s = (time_t)t;
    struct tm tm;
    if (!localtime_r(&s, &tm) || strftime(buf, len, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
        snprintf(buf, len, "%lld", (long long)s);
}

void rs_row(struct admin_ctx *x, const char *types, ...)
{
    struct admin_buf *b = x->out;
    va_list ap;
    size_t n = strlen(types);
    char tmp[64];

    abuf_start(b, PqMsg_DataRow);
    abuf_put_u16(b, (uint16_t)n);
    va_start(ap, types);
    for (size_t i = 0; i < n; i++) {
        switch (types[i]) {
        case 'i':
            snprintf(tmp, sizeof(tmp), "%d", va_arg(ap, int));
            rs_put_text(b, tmp);
            break;
        case 'q':
        case 'N':
            snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)va_arg(ap, uint64_t));
            rs_put_text(b, tmp);
            break;
        case 'T': {
            double t = va_arg(ap, double);
            if (t > 0) {
                format_time(t, tmp, sizeof(tmp));
                rs_put_text(b, tmp);
            } else {
                rs_put_text(b, NULL);
            }
            break;
        }
        default: /* 's', 'b' */
            rs_put_text(b, va_arg(ap, const char *));
            break;
        }
    }
    va_end(ap);
    abuf_finish(b);
}

void rs_done(struct admin_ctx *x, const char *tag)
{
    if (!x->describe)
        abuf_complete(x->out, tag);
}

void admin_ctx_error(struct admin_ctx *x, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Arguments come from the client: no line breaks in the log, valid UTF-8 on the wire. */
    admin_clean_text(msg, true);
    slog_info(x->c, "admin console: %s", msg);
    abuf_error(x->out, "08P01", msg);
    x->error = true;
}
