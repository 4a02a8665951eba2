/* SPDX-License-Identifier: ISC */
/*
 * Unit tests of src/proto.c and src/pktbuf.c: the bounds-checked reader,
 * ErrorResponse parsing, StartupMessage walking, options splitting, and the
 * message builders (checked by parsing what they build).
 */
#include "tap.h"

#include "pktbuf.h"
#include "proto.h"

#include <string.h>

static void test_reader(void)
{
    static const uint8_t data[] = {0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 'h', 'i', 0, 'x'};
    struct pkt_reader r;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    const char *s;
    const uint8_t *b;

    reader_init(&r, data, sizeof(data));
    TAP_CHECK(reader_get_u8(&r, &u8) && u8 == 1, "u8");
    TAP_CHECK(reader_get_u16(&r, &u16) && u16 == 2, "u16 big-endian");
    TAP_CHECK(reader_get_u32(&r, &u32) && u32 == 3, "u32 big-endian");
    TAP_CHECK(reader_get_cstring(&r, &s) && strcmp(s, "hi") == 0, "cstring");
    TAP_CHECK(!reader_get_cstring(&r, &s), "cstring without NUL fails");
    TAP_CHECK(reader_left(&r) == 1, "failed read consumes nothing");
    TAP_CHECK(!reader_get_u16(&r, &u16), "u16 past the end fails");
    TAP_CHECK(!reader_get_bytes(&r, 2, &b), "bytes past the end fail");
    TAP_CHECK(reader_get_bytes(&r, 1, &b) && b[0] == 'x', "last byte");
    TAP_CHECK(!reader_get_u8(&r, &u8), "empty reader fails");

    int32_t i32;
    static const uint8_t neg[] = {0xff, 0xff, 0xff, 0xff};
    reader_init(&r, neg, 4);
    TAP_CHECK(reader_get_i32(&r, &i32) && i32 == -1, "i32 -1");
}

static void test_error_fields(void)
{
    static const uint8_t body[] = "SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed\0\0";
    struct pg_error_fields ef;
    TAP_CHECK(proto_parse_error(body, sizeof(body) - 1, &ef), "error parses");
    TAP_STR_EQ(ef.severity, "FATAL", "severity");
    TAP_STR_EQ(ef.sqlstate, "28P01", "sqlstate");
    TAP_STR_EQ(ef.message, "password authentication failed", "message");
    TAP_CHECK(!proto_parse_error(body, 10, &ef), "truncated error is refused");
    static const uint8_t loc[] = "SERREUR\0C42601\0Mx\0\0";
    TAP_CHECK(proto_parse_error(loc, sizeof(loc) - 1, &ef), "localized-only severity parses");
    TAP_STR_EQ(ef.severity, "ERREUR", "falls back to S when V is absent");
}

static void test_startup(void)
{
    static const uint8_t ok[] = "user\0bob\0database\0db\0\0";
    static const uint8_t trailing[] = "user\0bob\0\0junk";
    static const uint8_t novalue[] = "user\0";
    static const uint8_t nonul[] = {'u', 's', 'e', 'r'};
    struct pkt_reader r;
    const char *k, *v;

    reader_init(&r, ok, sizeof(ok) - 1);
    TAP_CHECK(proto_startup_next(&r, &k, &v) == 1 && strcmp(k, "user") == 0 &&
                  strcmp(v, "bob") == 0,
              "first pair");
    TAP_CHECK(proto_startup_next(&r, &k, &v) == 1 && strcmp(k, "database") == 0, "second pair");
    TAP_CHECK(proto_startup_next(&r, &k, &v) == 0, "terminator");

    reader_init(&r, trailing, sizeof(trailing) - 1);
    TAP_CHECK(proto_startup_next(&r, &k, &v) == 1, "pair before trailing bytes");
    TAP_CHECK(proto_startup_next(&r, &k, &v) == -1, "bytes after the terminator are refused");

    reader_init(&r, novalue, sizeof(novalue) - 1);
    TAP_CHECK(proto_startup_next(&r, &k, &v) == -1, "key without value is refused");

    reader_init(&r, nonul, sizeof(nonul));
    TAP_CHECK(proto_startup_next(&r, &k, &v) == -1, "key without NUL is refused");
}

static void test_options(void)
{
    char buf[64];
    int n = proto_split_options("  -c  a=b --x=y\\ z -cq=1 ", buf, sizeof(buf));
    TAP_CHECK(n == 4, "four words (got %d)", n);
    const char *w = buf;
    TAP_STR_EQ(w, "-c", "word 1");
    w += strlen(w) + 1;
    TAP_STR_EQ(w, "a=b", "word 2");
    w += strlen(w) + 1;
    TAP_STR_EQ(w, "--x=y z", "escaped space stays in the word");
    w += strlen(w) + 1;
    TAP_STR_EQ(w, "-cq=1", "word 4");
    TAP_CHECK(proto_split_options("", buf, sizeof(buf)) == 0, "empty options");
    TAP_CHECK(proto_split_options("-c aaaaaaaaaaaaaaaaaaaa", buf, 8) == -1, "too long is refused");
}

static void test_pktbuf(void)
{
    uint8_t mem[256];
    struct pktbuf pb;
    struct pkt_reader r;

    pktbuf_init(&pb, mem, sizeof(mem));
    pktbuf_error(&pb, "FATAL", "08P01", "boom");
    pktbuf_ready(&pb, 'I');
    TAP_CHECK(!pb.failed, "builds");
    TAP_CHECK(mem[0] == 'E' && proto_get_u32(mem + 1) + 1 + 6 == pb.len, "lengths add up");
    struct pg_error_fields ef;
    TAP_CHECK(proto_parse_error(mem + 5, proto_get_u32(mem + 1) - 4, &ef) &&
                  strcmp(ef.message, "boom") == 0 && strcmp(ef.sqlstate, "08P01") == 0,
              "built error parses back");
    size_t z = pb.len - 6;
    TAP_CHECK(mem[z] == 'Z' && proto_get_u32(mem + z + 1) == 5 && mem[z + 5] == 'I',
              "ReadyForQuery layout");

    pktbuf_init(&pb, mem, sizeof(mem));
    pktbuf_start(&pb, 0);
    pktbuf_put_u32(&pb, PKT_PROTO_V3);
    pktbuf_put_string(&pb, "user");
    pktbuf_put_string(&pb, "u");
    pktbuf_put_u8(&pb, 0);
    pktbuf_finish(&pb);
    TAP_CHECK(proto_get_u32(mem) == pb.len, "startup packet length includes itself");
    reader_init(&r, mem + 8, pb.len - 8);
    const char *k, *v;
    TAP_CHECK(proto_startup_next(&r, &k, &v) == 1 && strcmp(v, "u") == 0, "startup parses back");

    uint8_t small[8];
    pktbuf_init(&pb, small, sizeof(small));
    pktbuf_query(&pb, "SELECT 1");
    TAP_CHECK(pb.failed, "overflow sets the sticky failed flag");
    pktbuf_put_u8(&pb, 1);
    TAP_CHECK(pb.failed && pb.len <= sizeof(small), "nothing written past the end");
}

int main(void)
{
    test_reader();
    test_error_fields();
    test_startup();
    test_options();
    test_pktbuf();
    return tap_done();
}
