/* SPDX-License-Identifier: ISC */
/*
 * iobuf: the I/O buffer a socket borrows only while bytes are in flight.
 *
 *   0 ........ done_pos ........ parse_pos ........ recv_pos ........ cap
 *   | sent or   | parsed, waiting   | received, not    | free space   |
 *   | skipped   | to be forwarded   | parsed yet       |              |
 *
 * Buffers come from a free list and go back to it when empty, so an idle
 * socket holds none and the data path never calls malloc once warm.
 */
#ifndef PGMUX_IOBUF_H
#define PGMUX_IOBUF_H

#include <stdbool.h>
#include <stdint.h>

struct iobuf {
    struct iobuf *next_free;
    uint32_t done_pos;
    uint32_t parse_pos;
    uint32_t recv_pos;
    uint32_t cap;
    uint8_t data[];
};

/* Size every buffer gets; set once at startup from pkt_buf. */
void iobuf_set_size(uint32_t size);
uint32_t iobuf_size(void);

/* NULL only when out of memory. */
struct iobuf *iobuf_get(void);
void iobuf_put(struct iobuf *io);

/* Move unparsed bytes to the front when nothing is waiting to be sent. */
void iobuf_compact(struct iobuf *io);

/* Counters for SHOW MEM / metrics. */
void iobuf_stats(int *total, int *free_count);

#endif
