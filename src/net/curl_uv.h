/*
 * curl_uv: one libcurl multi handle driven by a libuv loop, the glue the S3 back end
 * (objstore/s3.c) and the outbound HTTP client (auth/fetch.c) share.
 *
 * curl says which sockets to watch (its socket callback: one uv_poll per socket) and when
 * to wake it (its timer callback: one uv_timer); events go back through
 * curl_multi_socket_action, after which the owner's `progress` callback collects finished
 * transfers with curl_multi_info_read. Nothing blocks.
 *
 * Life cycle: curl_uv_init makes the multi handle (set further options on c->multi);
 * curl_uv_close cleans it up (curl closes its cached connections), closes every handle
 * and calls `closed` once the last close callback ran (at once when a uv_walk of the
 * loop had already closed them all). The owner keeps c's memory until `closed`.
 * Loop thread only.
 */
#ifndef OGD_NET_CURL_UV_H
#define OGD_NET_CURL_UV_H

#include <curl/curl.h>
#include <stdbool.h>
#include <uv.h>

#include "util/list.h"

typedef struct curl_uv curl_uv;
typedef void (*curl_uv_cb)(curl_uv *c);

struct curl_uv {
    CURLM *multi; /** the owner adds and removes easy handles, sets options */
    void *data;   /** the owner's */
    /* private */
    uv_loop_t *loop;
    uv_timer_t timer;
    list_node socks; /* curl_uv_sock.node */
    unsigned open;   /* handles not yet closed */
    bool closing;
    curl_uv_cb progress, closed;
};

/* 0, or -ENOMEM when curl cannot make a multi handle (nothing to close then).
 * progress(c) runs after each socket action and timeout. */
int curl_uv_init(curl_uv *c, uv_loop_t *loop, curl_uv_cb progress, void *data);
/* Cleans up the multi handle (remove the easy handles first: curl_multi_cleanup's rule),
 * closes every handle; closed(c) runs once they are closed, possibly before this returns. */
void curl_uv_close(curl_uv *c, curl_uv_cb closed);

#endif
