/* SPDX-License-Identifier: ISC */
/*
 * textbuf: growable or fixed text buffers with sticky failure (see
 * textbuf.h), and the two escapings the observability output needs. Both
 * escapers walk the input once and check UTF-8 as they go, because database
 * and user names can come from clients (auto-databases) and must not break
 * a JSON parser or a Prometheus scrape.
 */
#include "textbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void textbuf_init(struct textbuf *tb)
{
    memset(tb, 0, sizeof(*tb));
}

void textbuf_init_fixed(struct textbuf *tb, char *mem, size_t cap)
{
    tb->data = mem;
    tb->len = 0;
    tb->cap = cap;
    tb->fixed = true;
    tb->failed = cap == 0;
    if (cap > 0)
        mem[0] = 0;
}

void textbuf_reset(struct textbuf *tb)
{
    tb->len = 0;
    tb->failed = false;
    if (tb->data)
        tb->data[0] = 0;
}

void textbuf_free(struct textbuf *tb)
{
    if (!tb->fixed)
        free(tb->data);
    memset(tb, 0, sizeof(*tb));
}

/* Room for n more bytes plus the NUL. False (and failed set) if there is none. */
static bool reserve(struct textbuf *tb, size_t n)
{
    if (tb->failed)
        return false;
    if (tb->len + n + 1 <= tb->cap)
        return true;
    if (tb->fixed) {
        tb->failed = true;
        return false;
    }
    size_t ncap = tb->cap ? tb->cap : 256;
    while (ncap < tb->len + n + 1)
        ncap *= 2;
    char *d = realloc(tb->data, ncap);
    if (!d) {
        tb->failed = true;
        return false;
    }
    tb->data = d;
    tb->cap = ncap;
    return true;
}

void textbuf_put(struct textbuf *tb, const char *s, size_t n)
{
    if (!reserve(tb, n)) {
        /* A fixed buffer keeps what fits, so a long log line is cut, not lost. */
        if (tb->fixed && tb->cap > tb->len + 1) {
            size_t fit = tb->cap - tb->len - 1;
            memcpy(tb->data + tb->len, s, fit);
            tb->len += fit;
            tb->data[tb->len] = 0;
        }
        return;
    }
    memcpy(tb->data + tb->len, s, n);
    tb->len += n;
    tb->data[tb->len] = 0;
}

void textbuf_puts(struct textbuf *tb, const char *s)
{
    textbuf_put(tb, s, strlen(s));
}

void textbuf_printf(struct textbuf *tb, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        tb->failed = true;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        textbuf_put(tb, small, (size_t)n);
        return;
    }
    if (!reserve(tb, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(tb->data + tb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    tb->len += (size_t)n;
}

void textbuf_put_u64(struct textbuf *tb, unsigned long long v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    textbuf_put(tb, tmp + i, sizeof(tmp) - i);
}

/*
 * Length of the valid UTF-8 sequence at s (1..4), or 0 if the bytes there
 * are not one (overlong forms, surrogates and values past U+10FFFF included).
 */
static size_t utf8_seq_len(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        if (s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80)
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        if (s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        return 4;
    }
    return 0;
}

static const char replacement_char[] = "\xef\xbf\xbd"; /* U+FFFD */

void textbuf_json_string(struct textbuf *tb, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    textbuf_put(tb, "\"", 1);
    while (*p) {
        const unsigned char *run = p;
        /* Copy plain bytes in one go; stop at anything that needs care. */
        while (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        if (p > run)
            textbuf_put(tb, (const char *)run, (size_t)(p - run));
        if (!*p)
            break;
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            textbuf_put(tb, esc, 2);
            p++;
        } else if (*p < 0x20) {
            switch (*p) {
            case '\n':
                textbuf_put(tb, "\\n", 2);
                break;
            case '\r':
                textbuf_put(tb, "\\r", 2);
                break;
            case '\t':
                textbuf_put(tb, "\\t", 2);
                break;
            default:
                textbuf_printf(tb, "\\u%04x", *p);
                break;
            }
            p++;
        } else {
            size_t n = utf8_seq_len(p);
            if (n) {
                textbuf_put(tb, (const char *)p, n);
                p += n;
            } else {
                textbuf_put(tb, replacement_char, 3);
                p++;
            }
        }
    }
    textbuf_put(tb, "\"", 1);
}

void textbuf_prom_label(struct textbuf *tb, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        const unsigned char *run = p;
        while (*p && *p < 0x80 && *p != '"' && *p != '\\' && *p != '\n')
            p++;
        if (p > run)
            textbuf_put(tb, (const char *)run, (size_t)(p - run));
        if (!*p)
            break;
        if (*p == '"') {
            textbuf_put(tb, "\\\"", 2);
            p++;
        } else if (*p == '\\') {
            textbuf_put(tb, "\\\\", 2);
            p++;
        } else if (*p == '\n') {
            textbuf_put(tb, "\\n", 2);
            p++;
        } else {
            size_t n = utf8_seq_len(p);
            if (n) {
                textbuf_put(tb, (const char *)p, n);
                p += n;
            } else {
                textbuf_put(tb, replacement_char, 3);
                p++;
            }
        }
    }
}
