/*
 * curl_uv.c: see curl_uv.h. Sockets are a list of uv_poll handles, each assigned to its
 * socket in curl (curl_multi_assign) so curl hands it back; `open` counts the timer and
 * the polls not yet closed. A handle found closing was closed by a uv_walk of the loop
 * (a worker's last turn), which runs no callback of ours: it is counted as closed then.
 */
#include "net/curl_uv.h"

#include <errno.h>
#include <stdlib.h>

typedef struct curl_uv_sock {
    uv_poll_t h;
    curl_uv *c;
    curl_socket_t fd;
    list_node node; /* curl_uv.socks */
} curl_uv_sock;

static void handle_gone(curl_uv *c)
{
    c->open--;
    if (c->closing && c->open == 0 && c->closed)
        c->closed(c);
}

static void sock_closed(uv_handle_t *h)
{
    curl_uv_sock *s = h->data;
    curl_uv *c = s->c;
    free(s);
    handle_gone(c);
}

static void sock_drop(curl_uv *c, curl_uv_sock *s)
{
    list_remove(&s->node);
    if (uv_is_closing((uv_handle_t *)&s->h)) {
        free(s);
        handle_gone(c);
        return;
    }
    uv_close((uv_handle_t *)&s->h, sock_closed);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    curl_uv_sock *s = h->data;
    curl_uv *c = s->c;
    int flags = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    int running;
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    c->progress(c);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    curl_uv *c = userp;
    curl_uv_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(c->multi, fd, NULL);
            sock_drop(c, s);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        if (uv_poll_init_socket(c->loop, &s->h, fd) != 0) {
            free(s);
            return -1;
        }
        s->c = c;
        s->fd = fd;
        s->h.data = s;
        list_insert_head(&c->socks, &s->node);
        c->open++;
        curl_multi_assign(c->multi, fd, s);
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    if (!uv_is_closing((uv_handle_t *)&s->h))
        uv_poll_start(&s->h, events, on_poll);
    return 0;
}

static void on_timeout(uv_timer_t *t)
{
    curl_uv *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    c->progress(c);
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    curl_uv *c = userp;
    if (uv_is_closing((uv_handle_t *)&c->timer))
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

int curl_uv_init(curl_uv *c, uv_loop_t *loop, curl_uv_cb progress, void *data)
{
    *c = (curl_uv){.loop = loop, .progress = progress, .data = data};
    list_init(&c->socks);
    c->multi = curl_multi_init();
    if (!c->multi)
        return -ENOMEM;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->open = 1;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    handle_gone(h->data);
}

void curl_uv_close(curl_uv *c, curl_uv_cb closed)
{
    c->closed = closed;
    curl_multi_cleanup(c->multi); /* closes the cached connections (REMOVE callbacks) */
    c->multi = NULL;
    c->closing = true;
    c->open++; /* held while the handles close, so closed runs once, at the end */
    list_node *n;
    while ((n = list_first(&c->socks)))
        sock_drop(c, list_entry(n, curl_uv_sock, node));
    if (uv_is_closing((uv_handle_t *)&c->timer))
        c->open--;
    else
        uv_close((uv_handle_t *)&c->timer, timer_closed);
    handle_gone(c);
}
