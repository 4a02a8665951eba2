/* SPDX-License-Identifier: ISC */
/*
 * textbuf: a text buffer for the observability output (Prometheus text,
 * JSON for /health and the JSON log lines). It grows on the heap, or writes
 * into caller memory and truncates there (log lines built on the stack).
 * Errors are sticky, like pktbuf: out of memory or truncation sets `failed`,
 * later appends do nothing, and the caller checks once at the end. The text
 * is always NUL-terminated.
 */
#ifndef PGMUX_TEXTBUF_H
#define PGMUX_TEXTBUF_H

#include <stdbool.h>
#include <stddef.h>

struct textbuf {
    char *data;  /* owned unless fixed */
    size_t len;  /* bytes of text, without the NUL */
    size_t cap;  /* bytes at data */
    bool fixed;  /* data is caller memory: never grows, truncates */
    bool failed; /* sticky: out of memory or truncated */
};

/* An empty heap buffer; nothing is allocated until the first append. */
void textbuf_init(struct textbuf *tb);
/* A buffer over caller memory (cap >= 1). */
void textbuf_init_fixed(struct textbuf *tb, char *mem, size_t cap);
/* Empty it and clear `failed`; heap memory is kept for reuse. */
void textbuf_reset(struct textbuf *tb);
void textbuf_free(struct textbuf *tb);

void textbuf_put(struct textbuf *tb, const char *s, size_t n);
void textbuf_puts(struct textbuf *tb, const char *s);
void textbuf_printf(struct textbuf *tb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void textbuf_put_u64(struct textbuf *tb, unsigned long long v);

/*
 * A JSON string with its quotes. Control characters, '"' and '\' are
 * escaped; bytes that are not valid UTF-8 become U+FFFD, so the output is
 * valid JSON whatever names clients sent.
 */
void textbuf_json_string(struct textbuf *tb, const char *s);

/*
 * A Prometheus label value without quotes: '\', '"' and newline escaped as
 * the text format 0.0.4 asks, invalid UTF-8 replaced by U+FFFD.
 */
void textbuf_prom_label(struct textbuf *tb, const char *s);

#endif
