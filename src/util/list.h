/*
 * list: an intrusive, circular, doubly-linked list in the manner of libuv's queue.h. A
 * list is a head node; an element embeds a list_node and is found from it with
 * list_entry. Insertion and removal are O(1) and allocate nothing; a removed node points
 * at itself, so removing it again is harmless and list_linked tells whether it is in a
 * list. Not thread-safe: a list belongs to one thread (a loop) or to its owner's lock.
 */
#ifndef OGD_UTIL_LIST_H
#define OGD_UTIL_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct list_node {
    struct list_node *prev, *next;
} list_node;

/* The element of type `type` whose member `member` is the node at ptr. */
#define list_entry(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Iterates over the nodes of head; the current node may be removed inside the loop. */
#define list_foreach_safe(node, tmp, head)                                                         \
    for ((node) = (head)->next, (tmp) = (node)->next; (node) != (head);                            \
         (node) = (tmp), (tmp) = (node)->next)

/* An empty list, or an unlinked node. */
static inline void list_init(list_node *n)
{
    n->prev = n->next = n;
}

static inline bool list_empty(const list_node *head)
{
    return head->next == head;
}

/* Whether n is in some list (after list_init or list_remove: false). */
static inline bool list_linked(const list_node *n)
{
    return n->next != n;
}

static inline void list_insert_head(list_node *head, list_node *n)
{
    n->next = head->next;
    n->prev = head;
    head->next->prev = n;
    head->next = n;
}

static inline void list_insert_tail(list_node *head, list_node *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

/* Unlinks n (a no-op for an unlinked node) and leaves it unlinked. */
static inline void list_remove(list_node *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    list_init(n);
}

/* The first node, or NULL when the list is empty. */
static inline list_node *list_first(const list_node *head)
{
    return list_empty(head) ? NULL : head->next;
}

#endif
