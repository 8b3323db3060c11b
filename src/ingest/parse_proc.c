/*
 * parse_proc.c: the helper process that reads HDF5 (see parse_proc.h). One parse_proc_t
 * per upload: a uv_process_t with three pipes and a timer; the callback runs after the
 * helper exited, its stdout hit EOF and every handle has closed.
 */
#include "ingest/parse_proc.h"

#include "util/buf.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *helper_binary = "/proc/self/exe";

void parse_proc_set_binary(const char *path)
{
    helper_binary = path ? path : "/proc/self/exe";
}

struct parse_proc {
    uv_loop_t *loop;
    uv_process_t proc;
    uv_pipe_t in, out;
    uv_timer_t timer;
    uv_write_t wr;
    buf_t output;
    parse_cb cb;
    void *data;
    int handles; /* open handles */
    bool exited, eof, killed_timeout, too_large, canceled, spawn_failed;
    int64_t exit_status;
    int term_signal;
    char chunk[65536];
};

static void on_closed(uv_handle_t *h)
{
    parse_proc_t *p = h->data;
    if (--p->handles > 0)
        return;
    if (p->spawn_failed) {
        buf_free(&p->output);
        free(p);
        return;
    }
    int status;
    parse_result res;
    memset(&res, 0, sizeof(res));
    if (p->canceled)
        status = -ECANCELED;
    else if (p->killed_timeout)
        status = PARSE_TIMEOUT;
    else if (p->too_large || p->exit_status == 4)
        status = PARSE_TOO_LARGE;
    else if (p->exit_status == 3)
        status = PARSE_NOT_HDF5;
    else if (p->term_signal || p->exit_status != 0)
        status = PARSE_CRASHED;
    else {
        size_t len = p->output.len;
        status = parse_result_decode(buf_take(&p->output), len, &res);
    }
    buf_free(&p->output);
    parse_cb cb = p->cb;
    void *data = p->data;
    free(p);
    cb(status, status == 0 ? &res : NULL, data);
}

static void close_one(parse_proc_t *p, uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, on_closed);
}

static void maybe_finish(parse_proc_t *p)
{
    if (!p->exited || !p->eof)
        return;
    close_one(p, (uv_handle_t *)&p->timer);
    close_one(p, (uv_handle_t *)&p->in);
    close_one(p, (uv_handle_t *)&p->out);
    close_one(p, (uv_handle_t *)&p->proc);
}

static void kill_helper(parse_proc_t *p)
{
    if (!p->exited)
        uv_process_kill(&p->proc, SIGKILL);
}

static void on_exit_cb(uv_process_t *h, int64_t exit_status, int term_signal)
{
    parse_proc_t *p = h->data;
    p->exited = true;
    p->exit_status = exit_status;
    p->term_signal = term_signal;
    maybe_finish(p);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    parse_proc_t *p = h->data;
    (void)suggested;
    *b = uv_buf_init(p->chunk, sizeof(p->chunk));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    parse_proc_t *p = s->data;
    if (n > 0) {
        if (!p->too_large && buf_append(&p->output, b->base, (size_t)n) != 0) {
            p->too_large = true;
            kill_helper(p);
        }
        return;
    }
    if (n < 0) {
        uv_read_stop(s);
        p->eof = true;
        maybe_finish(p);
    }
}

static void on_written(uv_write_t *w, int status)
{
    parse_proc_t *p = w->data;
    (void)status; /* EPIPE when the helper stopped reading: its exit says why */
    close_one(p, (uv_handle_t *)&p->in);
}

static void on_timeout(uv_timer_t *t)
{
    parse_proc_t *p = t->data;
    p->killed_timeout = true;
    kill_helper(p);
}

int parse_proc_start(uv_loop_t *loop, const void *bytes, size_t len, const parse_limits *lim,
                     parse_cb cb, void *data, parse_proc_t **out)
{
    parse_proc_t *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->loop = loop;
    p->cb = cb;
    p->data = data;
    buf_init(&p->output, lim->max_output + 64);
    uv_pipe_init(loop, &p->in, 0);
    uv_pipe_init(loop, &p->out, 0);
    uv_timer_init(loop, &p->timer);
    p->in.data = p->out.data = p->timer.data = p->proc.data = p->wr.data = p;
    char max_in[32], max_out[32];
    snprintf(max_in, sizeof(max_in), "%zu", len);
    snprintf(max_out, sizeof(max_out), "%zu", lim->max_output);
    char *args[] = {(char *)"ogd", (char *)"_hdf5-parse", max_in, max_out, NULL};
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    stdio[0].data.stream = (uv_stream_t *)&p->in;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&p->out;
    stdio[2].flags = UV_IGNORE;
    uv_process_options_t o;
    memset(&o, 0, sizeof(o));
    o.file = helper_binary;
    o.args = args;
    o.exit_cb = on_exit_cb;
    o.stdio_count = 3;
    o.stdio = stdio;
    int rc = uv_spawn(loop, &p->proc, &o);
    if (rc != 0) {
        /* Every handle must be closed even when the spawn failed; p is freed by the
         * last close, without a callback (the caller gets rc). */
        p->spawn_failed = true;
        p->handles = 4;
        uv_close((uv_handle_t *)&p->proc, on_closed);
        uv_close((uv_handle_t *)&p->in, on_closed);
        uv_close((uv_handle_t *)&p->out, on_closed);
        uv_close((uv_handle_t *)&p->timer, on_closed);
        return rc;
    }
    p->handles = 4;
    uv_read_start((uv_stream_t *)&p->out, on_alloc, on_read);
    uv_buf_t wb = uv_buf_init((char *)bytes, (unsigned int)len);
    if (len > UINT32_MAX || uv_write(&p->wr, (uv_stream_t *)&p->in, &wb, 1, on_written) != 0)
        close_one(p, (uv_handle_t *)&p->in);
    uv_timer_start(&p->timer, on_timeout, lim->timeout_ms, 0);
    if (out)
        *out = p;
    return 0;
}

void parse_proc_cancel(parse_proc_t *p)
{
    p->canceled = true;
    kill_helper(p);
}

int parse_result_decode(char *raw, size_t len, parse_result *out)
{
    memset(out, 0, sizeof(*out));
    if (len < 12 || memcmp(raw, "OGDH", 4) != 0) {
        free(raw);
        return PARSE_CRASHED;
    }
    uint64_t jl = 0;
    for (int i = 0; i < 8; i++)
        jl |= (uint64_t)(unsigned char)raw[4 + i] << (8 * i);
    if (jl > len - 12) {
        free(raw);
        return PARSE_CRASHED;
    }
    json_error_t e;
    out->desc = json_loadb(raw + 12, (size_t)jl, 0, &e);
    if (!out->desc) {
        free(raw);
        return PARSE_CRASHED;
    }
    out->raw = raw;
    out->data = (const unsigned char *)raw + 12 + jl;
    out->data_len = len - 12 - (size_t)jl;
    return 0;
}

void parse_result_free(parse_result *r)
{
    if (!r)
        return;
    json_decref(r->desc);
    free(r->raw);
    memset(r, 0, sizeof(*r));
}

const char *parse_strerror(int status)
{
    switch (status) {
    case PARSE_NOT_HDF5:
        return "Uploaded file is not a valid HDF5 file";
    case PARSE_TOO_LARGE:
        return "Uploaded HDF5 file holds more data than this server accepts";
    case PARSE_TIMEOUT:
        return "Uploaded HDF5 file could not be read in time";
    default:
        return "Uploaded HDF5 file could not be read (the HDF5 reader failed on it)";
    }
}
