/* SPDX-License-Identifier: ISC */
/*
 * list: intrusive doubly linked lists with a node count (statlist). A node is
 * embedded in the object it links, so linking never allocates; the count makes
 * SHOW POOLS and the pool size checks O(1).
 */
#ifndef PGMUX_LIST_H
#define PGMUX_LIST_H

#include <stdbool.h>
#include <stddef.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct list {
    struct list *next, *prev;
};

struct statlist {
    struct list head;
    int count;
};

static inline void list_init(struct list *l)
{
    l->next = l->prev = l;
}

static inline bool list_empty(const struct list *l)
{
    return l->next == l;
}

static inline void list_insert_after(struct list *pos, struct list *node)
{
    node->next = pos->next;
    node->prev = pos;
    pos->next->prev = node;
    pos->next = node;
}

static inline void list_del(struct list *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    list_init(node);
}

static inline void statlist_init(struct statlist *s)
{
    list_init(&s->head);
    s->count = 0;
}

static inline void statlist_append(struct statlist *s, struct list *node)
{
    list_insert_after(s->head.prev, node);
    s->count++;
}

static inline void statlist_prepend(struct statlist *s, struct list *node)
{
    list_insert_after(&s->head, node);
    s->count++;
}

static inline void statlist_remove(struct statlist *s, struct list *node)
{
    list_del(node);
    s->count--;
}

static inline struct list *statlist_first(const struct statlist *s)
{
    return list_empty(&s->head) ? NULL : s->head.next;
}

static inline struct list *statlist_last(const struct statlist *s)
{
    return list_empty(&s->head) ? NULL : s->head.prev;
}

/* Safe against removal of the current node. */
#define statlist_foreach_safe(item, tmp, sl)                                                       \
    for ((item) = (sl)->head.next, (tmp) = (item)->next; (item) != &(sl)->head;                    \
         (item) = (tmp), (tmp) = (item)->next)

#endif
