/* SPDX-License-Identifier: ISC */
/*
 * iobuf: a free list of equally sized I/O buffers. A buffer is borrowed by a
 * socket when bytes arrive and returned as soon as they have all been passed
 * on, so the number of buffers in use follows the number of sockets with
 * bytes in flight, not the number of connections. Freed buffers stay on the
 * list for reuse; the data path never calls malloc once the list is warm.
 */
#include "iobuf.h"

#include <stdlib.h>
#include <string.h>

static uint32_t buf_size = 4096;
static struct iobuf *free_list;
static int total_count, free_count;

void iobuf_set_size(uint32_t size)
{
    /* Only before the first buffer exists: they all share one size. */
    if (total_count == 0)
        buf_size = size;
}

uint32_t iobuf_size(void)
{
    return buf_size;
}

struct iobuf *iobuf_get(void)
{
    struct iobuf *io = free_list;
    if (io) {
        free_list = io->next_free;
        free_count--;
    } else {
        io = malloc(sizeof(*io) + buf_size);
        if (!io)
            return NULL;
        total_count++;
    }
    io->next_free = NULL;
    io->done_pos = io->parse_pos = io->recv_pos = 0;
    io->cap = buf_size;
    return io;
}

void iobuf_put(struct iobuf *io)
{
    io->next_free = free_list;
    free_list = io;
    free_count++;
}

void iobuf_compact(struct iobuf *io)
{
    if (io->done_pos != io->parse_pos || io->done_pos == 0)
        return;
    uint32_t n = io->recv_pos - io->parse_pos;
    if (n)
        memmove(io->data, io->data + io->parse_pos, n);
    io->done_pos = io->parse_pos = 0;
    io->recv_pos = n;
}

void iobuf_stats(int *total, int *nfree)
{
    *total = total_count;
    *nfree = free_count;
}
