/* SPDX-License-Identifier: ISC */
/*
 * proto: the bounds-checked packet reader and parsers of the few backend
 * messages pgmux looks inside. Nothing here allocates or does I/O; the
 * fuzzers and unit tests drive these functions directly.
 */
#include "proto.h"

#include <string.h>

bool reader_get_u8(struct pkt_reader *r, uint8_t *v)
{
    if (reader_left(r) < 1)
        return false;
    *v = *r->pos++;
    return true;
}

bool reader_get_u16(struct pkt_reader *r, uint16_t *v)
{
    if (reader_left(r) < 2)
        return false;
    *v = (uint16_t)((r->pos[0] << 8) | r->pos[1]);
    r->pos += 2;
    return true;
}

bool reader_get_u32(struct pkt_reader *r, uint32_t *v)
{
    if (reader_left(r) < 4)
        return false;
    *v = proto_get_u32(r->pos);
    r->pos += 4;
    return true;
}

bool reader_get_i32(struct pkt_reader *r, int32_t *v)
{
    uint32_t u;
    if (!reader_get_u32(r, &u))
        return false;
    *v = (int32_t)u;
    return true;
}

bool reader_get_cstring(struct pkt_reader *r, const char **s)
{
    const uint8_t *nul = memchr(r->pos, 0, reader_left(r));
    if (!nul)
        return false;
    *s = (const char *)r->pos;
    r->pos = nul + 1;
    return true;
}

bool reader_get_bytes(struct pkt_reader *r, size_t n, const uint8_t **p)
{
    if (reader_left(r) < n)
        return false;
    *p = r->pos;
    r->pos += n;
    return true;
}

bool proto_parse_error(const uint8_t *body, size_t len, struct pg_error_fields *out)
{
    struct pkt_reader r;
    const char *sev_localized = NULL;

    memset(out, 0, sizeof(*out));
    reader_init(&r, body, len);
    for (;;) {
        uint8_t code;
        const char *val;
        if (!reader_get_u8(&r, &code))
            return false;
        if (code == 0)
            break;
        if (!reader_get_cstring(&r, &val))
            return false;
        switch (code) {
        case 'S':
            sev_localized = val;
            break;
        case 'V':
            out->severity = val;
            break;
        case 'C':
            out->sqlstate = val;
            break;
        case 'M':
            out->message = val;
            break;
        default:
            break;
        }
    }
    if (!out->severity)
        out->severity = sev_localized;
    return true;
}

int proto_startup_next(struct pkt_reader *r, const char **key, const char **val)
{
    if (!reader_get_cstring(r, key))
        return -1;
    if ((*key)[0] == 0)
        return reader_left(r) == 0 ? 0 : -1;
    if (!reader_get_cstring(r, val))
        return -1;
    return 1;
}

int proto_split_options(const char *opts, char *buf, size_t cap)
{
    size_t n = 0;
    int words = 0;
    const char *p = opts;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        while (*p && *p != ' ' && *p != '\t') {
            if (*p == '\\' && p[1])
                p++;
            if (n + 1 >= cap)
                return -1;
            buf[n++] = *p++;
        }
        if (n + 1 > cap)
            return -1;
        buf[n++] = 0;
        words++;
    }
    return words;
}
