/*
 * log: one JSON object per line (ts, level, pid, msg, then caller fields) to stderr or the
 * configured log file. Never pass secrets (tokens, passwords, keys, cookies) to it.
 * log_reopen reopens the file (SIGUSR1, for log rotation).
 */
#ifndef OGD_UTIL_LOG_H
#define OGD_UTIL_LOG_H

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* path NULL = stderr. Returns 0 or -errno. */
int log_open(const char *path, log_level min);
int log_reopen(void);
int log_level_parse(const char *s, log_level *out);
/* fields: extra JSON members already encoded, e.g. "\"status\":200" (may be NULL). */
void log_write(log_level level, const char *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_info(...) log_write(LOG_INFO, NULL, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, NULL, __VA_ARGS__)
#define log_debug(...) log_write(LOG_DEBUG, NULL, __VA_ARGS__)

#endif
