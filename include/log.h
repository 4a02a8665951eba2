/* SPDX-License-Identifier: ISC */
/*
 * log: levels, destinations (stderr, logfile, syslog) and the per-connection
 * prefix "C-<id>: db/user@addr:port" that lets one connection be followed
 * through the log. Debug levels are checked before any formatting.
 */
#ifndef PGMUX_LOG_H
#define PGMUX_LOG_H

#include <stdbool.h>

struct pgsock;
struct config;

enum log_level {
    LOG_LVL_FATAL = 0,
    LOG_LVL_ERROR,
    LOG_LVL_WARNING,
    LOG_LVL_INFO,
    LOG_LVL_DEBUG,
    LOG_LVL_NOISE,
};

extern int log_level;

void log_setup(bool quiet, int verbose);
/* Apply logfile/syslog/verbose from a config; reopens the logfile. */
void log_configure(const struct config *cfg);
void log_close(void);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void slog_msg(int level, const struct pgsock *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * A line that is also a named event: in text format just the message; with
 * log_format = json, "event" is set and fields (pre-rendered JSON members,
 * '"k":v,...', or NULL) are added to the object.
 */
void log_event(int level, const char *event, const char *fields, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_fatal(...) log_msg(LOG_LVL_FATAL, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_level >= LOG_LVL_DEBUG)                                                            \
            log_msg(LOG_LVL_DEBUG, __VA_ARGS__);                                                   \
    } while (0)
#define slog_error(s, ...) slog_msg(LOG_LVL_ERROR, s, __VA_ARGS__)
#define slog_warning(s, ...) slog_msg(LOG_LVL_WARNING, s, __VA_ARGS__)
#define slog_info(s, ...) slog_msg(LOG_LVL_INFO, s, __VA_ARGS__)
#define slog_debug(s, ...)                                                                         \
    do {                                                                                           \
        if (log_level >= LOG_LVL_DEBUG)                                                            \
            slog_msg(LOG_LVL_DEBUG, s, __VA_ARGS__);                                               \
    } while (0)

/* "addr:port" or "unix(pid)" of a socket, into buf. */
const char *log_addr(const struct pgsock *s, char *buf, int len);

#endif
