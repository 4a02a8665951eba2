/* SPDX-License-Identifier: ISC */
/*
 * loop: the one libev loop. Its ev_prepare hook runs just before the loop
 * blocks, once per iteration: it resumes sockets that were unpaused during
 * the iteration, launches server connections that some pool asked for, and
 * recycles the sockets closed during the iteration, after every callback
 * that might still hold a pointer to them has returned.
 */
#include "loop.h"

#include "pgmux.h"
#include "pool.h"
#include "sbuf.h"

struct ev_loop *loop_main;
static ev_prepare prepare_watcher;

static void loop_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    sbuf_run_continues();
    if (G.launch_needed) {
        G.launch_needed = false;
        struct list *item;
        for (item = G.pools.next; item != &G.pools; item = item->next)
            pool_launch_if_needed(container_of(item, struct pool, head));
        sbuf_run_continues();
    }
    pool_free_justfree();
}

void loop_init(void)
{
    loop_main = ev_default_loop(EVFLAG_AUTO | EVFLAG_NOENV);
    ev_prepare_init(&prepare_watcher, loop_prepare_cb);
    ev_prepare_start(loop_main, &prepare_watcher);
}

void loop_run(void)
{
    ev_run(loop_main, 0);
}

void loop_stop(void)
{
    ev_break(loop_main, EVBREAK_ALL);
}
