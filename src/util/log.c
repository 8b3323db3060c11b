/*
 * log.c: JSON-lines logger; see log.h. Each line is built in memory and written with one
 * write(2), so lines from several processes sharing the file never interleave.
 */
#include "util/log.h"

#include "util/buf.h"
#include "util/jsonw.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int log_fd = 2;
static char log_path[4096];
static log_level log_min = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_level_parse(const char *s, log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

int log_open(const char *path, log_level min)
{
    log_min = min;
    if (!path || !*path) {
        log_path[0] = '\0';
        log_fd = 2;
        return 0;
    }
    snprintf(log_path, sizeof(log_path), "%s", path);
    return log_reopen();
}

int log_reopen(void)
{
    if (!log_path[0])
        return 0;
    int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    int old = log_fd;
    log_fd = fd;
    if (old > 2)
        close(old);
    return 0;
}

void log_write(log_level level, const char *fields, const char *fmt, ...)
{
    if (level < log_min)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(tv.tv_usec / 1000));

    buf_t b;
    buf_init(&b, 16384);
    buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"pid\":%d,\"msg\":", ts, level_names[level],
               (int)getpid());
    jsonw_string(&b, msg, strlen(msg));
    if (fields && *fields) {
        buf_putc(&b, ',');
        buf_puts(&b, fields);
    }
    buf_puts(&b, "}\n");
    if (b.data) {
        ssize_t w = write(log_fd, b.data, b.len);
        (void)w;
    }
    buf_free(&b);
}
