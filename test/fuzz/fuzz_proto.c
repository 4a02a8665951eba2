/* SPDX-License-Identifier: ISC */
/*
 * fuzz_proto: src/proto.c, the bounds-checked packet reader and the parsers
 * built on it. One input is used three ways:
 *  - as an ErrorResponse/NoticeResponse body (proto_parse_error);
 *  - as a StartupMessage body after the protocol code (proto_startup_next
 *    until the end or an error), where every "options" value is split by
 *    proto_split_options into buffers of its exact size and of small sizes;
 *  - as a little program for the reader: each byte picks the next get.
 * The input buffer is exactly size bytes (libFuzzer's copy), so ASan reports
 * any read past the end.
 */
#include "fuzz.h"

#include "proto.h"

#include <stdlib.h>
#include <string.h>

static void split_options(const char *opts)
{
    size_t full = strlen(opts) + 1;
    size_t caps[] = {0, 1, 2, 3, 8, full, full + 1};

    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        char *buf = malloc(caps[i] ? caps[i] : 1);
        if (!buf)
            abort();
        int words = proto_split_options(opts, buf, caps[i]);
        if (words > 0) {
            /* Every word is NUL-terminated inside the buffer. */
            size_t off = 0;
            for (int w = 0; w < words; w++) {
                const char *end = memchr(buf + off, 0, caps[i] - off);
                if (!end)
                    abort();
                off = (size_t)(end - buf) + 1;
            }
        }
        free(buf);
    }
}

static void walk_startup(const uint8_t *data, size_t size)
{
    struct pkt_reader r;
    const char *key, *val;
    int rc;

    reader_init(&r, data, size);
    while ((rc = proto_startup_next(&r, &key, &val)) == 1) {
        if (strcmp(key, "options") == 0)
            split_options(val);
    }
}

static void run_reader(const uint8_t *data, size_t size)
{
    struct pkt_reader r;
    uint8_t op, u8;
    uint16_t u16;
    uint32_t u32;
    int32_t i32;
    const char *s;
    const uint8_t *bytes;
    volatile uint8_t sink = 0;

    reader_init(&r, data, size);
    while (reader_get_u8(&r, &op)) {
        switch (op % 6) {
        case 0:
            if (reader_get_u8(&r, &u8))
                sink ^= u8;
            break;
        case 1:
            if (reader_get_u16(&r, &u16))
                sink ^= (uint8_t)u16;
            break;
        case 2:
            if (reader_get_u32(&r, &u32))
                sink ^= (uint8_t)u32;
            break;
        case 3:
            if (reader_get_i32(&r, &i32))
                sink ^= (uint8_t)i32;
            break;
        case 4:
            if (reader_get_cstring(&r, &s))
                sink ^= (uint8_t)strlen(s);
            break;
        case 5:
            /* Length from the op byte, as a length field from the wire would be. */
            if (reader_get_bytes(&r, op / 6, &bytes) && op / 6 > 0)
                sink ^= bytes[op / 6 - 1];
            break;
        }
    }
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pg_error_fields ef;

    if (proto_parse_error(data, size, &ef)) {
        /* Fields point at NUL-terminated strings inside the body. */
        if (ef.severity)
            (void)strlen(ef.severity);
        if (ef.sqlstate)
            (void)strlen(ef.sqlstate);
        if (ef.message)
            (void)strlen(ef.message);
    }
    walk_startup(data, size);
    run_reader(data, size);
    return 0;
}
