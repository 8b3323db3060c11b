/*
 * parse_proc.c: the helper process that reads HDF5 (see parse_proc.h). One parse_proc_t
 * per upload: a uv_process_t with two pipes and a timer (plus, on the memfd path, two
 * files: the upload (the caller's file, or a memfd filled and mapped on the thread pool
 * before the spawn) and the output memfd); the callback runs after the helper exited,
 * its stdout hit EOF, every handle has closed and its description has been decoded on
 * the thread pool (decode_run: megabytes of JSON for a file of many channels).
 */
#include "ingest/parse_proc.h"

#include "ingest/hdf5_read.h"
#include "util/taskgroup.h"
#include "util/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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
    bool mapped; /* the memfd path */
    bool window; /* in_fd is the caller's file: the upload is [fd_offset, +len) of it */
    uint64_t fd_offset;
    bool spawned;      /* proc is a running (or exited) helper */
    int in_fd, out_fd; /* its memfds, or a dup of the caller's file (-1 when closed) */
    const void *bytes; /* the upload (memfd path: copied by fill_run unless window) */
    size_t len;
    size_t max_output;
    unsigned timeout_ms;
    hdf5_limits hdf5;
    bool fill_failed;
    void *in_map;     /* the filled input memfd, mapped (the references' base), or NULL */
    int early_status; /* set when the helper never ran (memfd path): the cb's status */
    int64_t exit_status;
    int term_signal;
    int status;       /* the result's status, once the helper's handles have closed */
    parse_result res; /* the decoded description (decode_run) */
    char chunk[65536];
};

static void close_fds(parse_proc_t *p)
{
    if (p->in_fd >= 0)
        close(p->in_fd);
    if (p->out_fd >= 0)
        close(p->out_fd);
    p->in_fd = p->out_fd = -1;
}

/* The memfd path's result: the output file, mapped. */
static int mapped_result(parse_proc_t *p, parse_result *res)
{
    struct stat st;
    if (fstat(p->out_fd, &st) != 0)
        return PARSE_CRASHED;
    if ((uint64_t)st.st_size > (uint64_t)p->max_output + HDF5_MAPPED_HEADER)
        return PARSE_TOO_LARGE;
    size_t len = (size_t)st.st_size;
    if (len < HDF5_MAPPED_HEADER)
        return PARSE_CRASHED;
    /* private and writable: readers may treat the data as their own */
    void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, p->out_fd, 0);
    if (map == MAP_FAILED)
        return PARSE_CRASHED;
    /* references point into our mapping of the input memfd when there is one: it is
     * page-aligned wherever the caller's bytes are, so no element is misaligned there */
    int rc = parse_result_decode_mapped(map, len, p->in_map ? p->in_map : p->bytes, p->len, res);
    if (rc == 0 && p->in_map) {
        res->image_map = p->in_map;
        res->image_map_len = p->len;
        p->in_map = NULL;
    }
    return rc;
}

/* On the thread pool: the helper's description decoded (JSON of up to megabytes for a
 * file of many channels), then the files closed and the upload's copy unmapped (tens of
 * milliseconds for a large one): none of it on the loop. */
static void decode_run(void *data)
{
    parse_proc_t *p = data;
    if (p->status == 0) {
        if (p->mapped) {
            p->status = mapped_result(p, &p->res);
        } else {
            size_t len = p->output.len;
            p->status = parse_result_decode(buf_take(&p->output), len, &p->res);
        }
    }
    close_fds(p);
    if (p->in_map)
        munmap(p->in_map, p->len);
    p->in_map = NULL;
    buf_free(&p->output);
}

static void decode_done(void *data, int status)
{
    (void)status; /* never cancelled: nothing holds its handle */
    parse_proc_t *p = data;
    parse_cb cb = p->cb;
    void *cbdata = p->data;
    int st = p->status;
    parse_result res = p->res;
    free(p);
    cb(st, st == 0 ? &res : NULL, cbdata);
}

static void on_closed(uv_handle_t *h)
{
    parse_proc_t *p = h->data;
    if (--p->handles > 0)
        return;
    if (p->spawn_failed) {
        close_fds(p);
        buf_free(&p->output);
        free(p);
        return;
    }
    memset(&p->res, 0, sizeof(p->res));
    if (p->canceled)
        p->status = -ECANCELED;
    else if (p->early_status)
        p->status = p->early_status;
    else if (p->killed_timeout)
        p->status = PARSE_TIMEOUT;
    else if (p->too_large || p->exit_status == 4)
        p->status = PARSE_TOO_LARGE;
    else if (p->exit_status == 3)
        p->status = PARSE_NOT_HDF5;
    else if (p->term_signal || p->exit_status != 0)
        p->status = PARSE_CRASHED;
    else
        p->status = 0; /* the description is decoded by decode_run */
    if (work_submit(p->loop, decode_run, decode_done, p, NULL) != 0) {
        decode_run(p);
        decode_done(p, 0);
    }
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
    /* never before the spawn: pid 0 would signal our own process group */
    if (p->spawned && !p->exited)
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

/* Spawns the helper (pipe path: and starts writing the upload to it). */
static int spawn(parse_proc_t *p)
{
    char max_in[32], max_out[32], max_ds[32], max_file[32], max_ch[32], skew[8], win_off[32];
    snprintf(max_in, sizeof(max_in), "%zu", p->len);
    snprintf(max_out, sizeof(max_out), "%zu", p->max_output);
    snprintf(max_ds, sizeof(max_ds), "%llu", (unsigned long long)p->hdf5.max_dataset_bytes);
    snprintf(max_file, sizeof(max_file), "%llu", (unsigned long long)p->hdf5.max_file_bytes);
    snprintf(max_ch, sizeof(max_ch), "%llu", (unsigned long long)p->hdf5.max_channels);
    /* references are checked against our bytes: the helper aligns them for where they are */
    snprintf(skew, sizeof(skew), "%u",
             (unsigned)((uintptr_t)(p->in_map ? p->in_map : p->bytes) % 8));
    snprintf(win_off, sizeof(win_off), "%llu", (unsigned long long)p->fd_offset);
    /* ogd _hdf5-parse MAX_IN MAX_OUT MAX_DATASET MAX_FILE MAX_CHANNELS
     *                  [mapped SKEW [OFFSET LEN]] (LEN: MAX_IN, the upload's) */
    char *args[] = {(char *)"ogd", (char *)"_hdf5-parse",
                    max_in,        max_out,
                    max_ds,        max_file,
                    max_ch,        p->mapped ? (char *)"mapped" : NULL,
                    skew,          p->window ? win_off : NULL,
                    max_in,        NULL};
    uv_stdio_container_t stdio[4];
    if (p->mapped) {
        stdio[0].flags = UV_INHERIT_FD;
        stdio[0].data.fd = p->in_fd;
    } else {
        stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
        stdio[0].data.stream = (uv_stream_t *)&p->in;
    }
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&p->out;
    stdio[2].flags = UV_IGNORE;
    stdio[3].flags = UV_INHERIT_FD;
    stdio[3].data.fd = p->out_fd;
    uv_process_options_t o;
    memset(&o, 0, sizeof(o));
    o.file = helper_binary;
    o.args = args;
    o.exit_cb = on_exit_cb;
    o.stdio_count = p->mapped ? 4 : 3;
    o.stdio = stdio;
    int rc = uv_spawn(p->loop, &p->proc, &o);
    if (rc != 0)
        return rc;
    p->spawned = true;
    p->handles = 4;
    uv_read_start((uv_stream_t *)&p->out, on_alloc, on_read);
    if (p->mapped) {
        close_one(p, (uv_handle_t *)&p->in); /* unused */
    } else {
        uv_buf_t wb = uv_buf_init((char *)p->bytes, (unsigned int)p->len);
        if (p->len > UINT32_MAX || uv_write(&p->wr, (uv_stream_t *)&p->in, &wb, 1, on_written) != 0)
            close_one(p, (uv_handle_t *)&p->in);
    }
    uv_timer_start(&p->timer, on_timeout, p->timeout_ms, 0);
    return 0;
}

/* Runs on the thread pool: the upload into the input memfd. */
static void fill_run(void *data)
{
    parse_proc_t *p = data;
    size_t done = 0;
    while (done < p->len) {
        ssize_t n = pwrite(p->in_fd, (const char *)p->bytes + done, p->len - done, (off_t)done);
        if (n <= 0) {
            p->fill_failed = true;
            return;
        }
        done += (size_t)n;
    }
    /* the worker's view of the copy (populated here, off the loop): the references'
     * base; without it they point into the caller's bytes */
    void *m = mmap(NULL, p->len, PROT_READ, MAP_SHARED | MAP_POPULATE, p->in_fd, 0);
    p->in_map = m == MAP_FAILED ? NULL : m;
}

static void fill_done(void *data, int status)
{
    parse_proc_t *p = data;
    if (!p->canceled && !status && !p->fill_failed && spawn(p) == 0)
        return;
    /* the helper never ran: close what exists (the process handle was initialised by
     * uv_spawn only if it was called) and report */
    if (!p->canceled)
        p->early_status = PARSE_CRASHED;
    p->exited = p->eof = true;
    bool proc_init = !p->canceled && !status && !p->fill_failed;
    p->handles = proc_init ? 4 : 3;
    if (proc_init)
        uv_close((uv_handle_t *)&p->proc, on_closed);
    uv_close((uv_handle_t *)&p->in, on_closed);
    uv_close((uv_handle_t *)&p->out, on_closed);
    uv_close((uv_handle_t *)&p->timer, on_closed);
}

/* The caller's file as the helper's stdin: a close-on-exec duplicate (uv_spawn makes it
 * the child's fd 0, where it stays open), or -1 when fd is no regular file holding the
 * window. */
static int window_fd(int fd, uint64_t offset, size_t len)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || offset > (uint64_t)st.st_size ||
        len > (uint64_t)st.st_size - offset)
        return -1;
    return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

int parse_proc_start(uv_loop_t *loop, const void *bytes, size_t len, int fd, uint64_t fd_offset,
                     const parse_limits *lim, parse_cb cb, void *data, parse_proc_t **out)
{
    parse_proc_t *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->loop = loop;
    p->cb = cb;
    p->data = data;
    p->bytes = bytes;
    p->len = len;
    p->max_output = lim->max_output;
    p->timeout_ms = lim->timeout_ms;
    p->hdf5 = lim->hdf5;
    p->in_fd = p->out_fd = -1;
    buf_init(&p->output, lim->max_output + 64);
    uv_pipe_init(loop, &p->in, 0);
    uv_pipe_init(loop, &p->out, 0);
    uv_timer_init(loop, &p->timer);
    p->in.data = p->out.data = p->timer.data = p->proc.data = p->wr.data = p;
    bool direct = false;
    if (!lim->pipe_only && fd >= 0 && len > 0) {
        /* the caller's file itself: nothing to copy, the helper spawned right away */
        p->in_fd = window_fd(fd, fd_offset, len);
        p->out_fd = memfd_create("ogd-hdf5-description", MFD_CLOEXEC);
        if (p->in_fd >= 0 && p->out_fd >= 0) {
            p->mapped = p->window = direct = true;
            p->fd_offset = fd_offset;
        } else {
            close_fds(p);
        }
    }
    if (!lim->pipe_only && !direct) {
        p->in_fd = memfd_create("ogd-upload", MFD_CLOEXEC);
        p->out_fd = memfd_create("ogd-hdf5-description", MFD_CLOEXEC);
        if (p->in_fd >= 0 && p->out_fd >= 0 &&
            work_submit(loop, fill_run, fill_done, p, NULL) == 0) {
            p->mapped = true;
            if (out)
                *out = p;
            return 0;
        }
        close_fds(p); /* no memfds here: the pipes */
    }
    int rc = spawn(p);
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
    if (out)
        *out = p;
    return 0;
}

void parse_proc_cancel(parse_proc_t *p)
{
    p->canceled = true;
    kill_helper(p);
}

/* Whether every dataset reference ("ref", hdf5_read.h) in the description's members (at
 * any depth) names whole, aligned elements inside image[0..image_len). The helper's
 * output is untrusted: a reference it made up must not lead a reader outside the upload. */
static bool refs_valid(const json_t *node, const unsigned char *image, size_t image_len)
{
    size_t i;
    const json_t *m;
    json_array_foreach(json_object_get(node, "members"), i, m)
    {
        if (!refs_valid(m, image, image_len))
            return false;
        const json_t *ds = json_object_get(m, "data");
        const json_t *ref = json_object_get(ds, "ref");
        if (!ref)
            continue;
        const json_t *len = json_object_get(ds, "len");
        const json_t *size = json_object_get(ds, "size");
        if (!image || !json_is_integer(ref) || !json_is_integer(len) || !json_is_integer(size) ||
            json_object_get(ds, "off"))
            return false;
        json_int_t r = json_integer_value(ref), l = json_integer_value(len);
        json_int_t sz = json_integer_value(size);
        if (r < 0 || l < 0 || (sz != 1 && sz != 2 && sz != 4 && sz != 8) ||
            (uint64_t)r > image_len || (uint64_t)l > image_len - (uint64_t)r || l % sz != 0 ||
            ((uintptr_t)image + (uint64_t)r) % (uint64_t)sz != 0)
            return false;
    }
    return true;
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
    /* no shared image on the pipe path: a reference is malformed there */
    if (!out->desc || !refs_valid(out->desc, NULL, 0)) {
        json_decref(out->desc);
        out->desc = NULL;
        free(raw);
        return PARSE_CRASHED;
    }
    out->raw = raw;
    out->data = (const unsigned char *)raw + 12 + jl;
    out->data_len = len - 12 - (size_t)jl;
    return 0;
}

static uint64_t get64le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

int parse_result_decode_mapped(void *map, size_t len, const void *image, size_t image_len,
                               parse_result *out)
{
    memset(out, 0, sizeof(*out));
    const unsigned char *m = map;
    uint64_t dlen = len >= HDF5_MAPPED_HEADER ? get64le(m + 8) : 0;
    uint64_t joff = len >= HDF5_MAPPED_HEADER ? get64le(m + 16) : 0;
    uint64_t jlen = len >= HDF5_MAPPED_HEADER ? get64le(m + 24) : 0;
    if (len < HDF5_MAPPED_HEADER || memcmp(m, "OGDM", 4) != 0 || dlen > len - HDF5_MAPPED_HEADER ||
        joff < HDF5_MAPPED_HEADER + dlen || joff > len || jlen > len - joff) {
        munmap(map, len);
        return PARSE_CRASHED;
    }
    json_error_t e;
    out->desc = json_loadb((const char *)m + joff, (size_t)jlen, 0, &e);
    if (!out->desc || !refs_valid(out->desc, image, image_len)) {
        json_decref(out->desc);
        out->desc = NULL;
        munmap(map, len);
        return PARSE_CRASHED;
    }
    out->image = image;
    out->image_len = image_len;
    out->map = map;
    out->map_len = len;
    out->data = m + HDF5_MAPPED_HEADER;
    out->data_len = (size_t)dlen;
    return 0;
}

void parse_result_free(parse_result *r)
{
    if (!r)
        return;
    json_decref(r->desc);
    free(r->raw);
    if (r->map)
        munmap(r->map, r->map_len);
    if (r->image_map)
        munmap(r->image_map, r->image_map_len);
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
