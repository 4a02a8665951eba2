/* SPDX-License-Identifier: ISC */
/*
 * pktbuf: builds outgoing protocol messages into caller-provided memory
 * (usually the stack). Writes past the end set a sticky `failed` flag that
 * the caller checks once before sending, so building code has no error paths.
 */
#ifndef PGMUX_PKTBUF_H
#define PGMUX_PKTBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pktbuf {
    uint8_t *buf;
    size_t cap;
    size_t len;
    size_t msg_start; /* where the current message's length word is */
    bool failed;
};

void pktbuf_init(struct pktbuf *pb, void *mem, size_t cap);
/* Start a message; type 0 writes no type byte (startup packets). */
void pktbuf_start(struct pktbuf *pb, uint8_t type);
void pktbuf_put_u8(struct pktbuf *pb, uint8_t v);
void pktbuf_put_u16(struct pktbuf *pb, uint16_t v);
void pktbuf_put_u32(struct pktbuf *pb, uint32_t v);
void pktbuf_put_bytes(struct pktbuf *pb, const void *p, size_t n);
void pktbuf_put_string(struct pktbuf *pb, const char *s); /* with its NUL */
/* Patch the current message's length word. */
void pktbuf_finish(struct pktbuf *pb);

/* Whole messages. */
void pktbuf_error(struct pktbuf *pb, const char *severity, const char *sqlstate, const char *msg);
void pktbuf_notice(struct pktbuf *pb, const char *msg);
void pktbuf_param_status(struct pktbuf *pb, const char *key, const char *val);
void pktbuf_ready(struct pktbuf *pb, char status);
void pktbuf_auth(struct pktbuf *pb, uint32_t code, const void *data, size_t len);
void pktbuf_query(struct pktbuf *pb, const char *sql);

#endif
