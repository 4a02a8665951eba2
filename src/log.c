/* SPDX-License-Identifier: ISC */
/*
 * log: PgBouncer-like log lines ("2026-11-23 12:00:00.123 UTC [pid] LOG
 * C-12: db/user@127.0.0.1:5432 message") to stderr, a logfile and/or syslog.
 * The logfile is reopened on every configure (SIGHUP), for logrotate.
 *
 * With log_format = json, stderr and the logfile get one JSON object per
 * line instead: {"ts","level","pid","event","client_id" or "server_id",
 * "db","user","addr","msg", plus the event's own fields}. ts is UTC with
 * milliseconds; strings are escaped (invalid UTF-8 becomes U+FFFD) so every
 * line parses. syslog keeps the text form: it adds its own envelope.
 */
#include "log.h"

#include "config.h"
#include "pgmux.h"
#include "textbuf.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

int log_level = LOG_LVL_INFO;

static bool log_quiet;
static int verbose_cmdline;
static FILE *logfile;
static bool use_syslog;
static bool log_json; /* log_format = json */

static const char *const level_names[] = {"FATAL", "ERROR", "WARNING", "LOG", "DEBUG", "NOISE"};
static const int syslog_levels[] = {LOG_CRIT, LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG, LOG_DEBUG};

void log_setup(bool quiet, int verbose)
{
    log_quiet = quiet;
    verbose_cmdline = verbose;
    log_level = LOG_LVL_INFO + verbose;
    if (log_level > LOG_LVL_NOISE)
        log_level = LOG_LVL_NOISE;
}

static int facility_code(const char *name)
{
    static const struct {
        const char *name;
        int code;
    } map[] = {
        {"auth", LOG_AUTH},     {"authpriv", LOG_AUTHPRIV}, {"daemon", LOG_DAEMON},
        {"user", LOG_USER},     {"local0", LOG_LOCAL0},     {"local1", LOG_LOCAL1},
        {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3},     {"local4", LOG_LOCAL4},
        {"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6},     {"local7", LOG_LOCAL7},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(map[i].name, name) == 0)
            return map[i].code;
    return LOG_DAEMON;
}

void log_configure(const struct config *cfg)
{
    int v = cfg->verbose > verbose_cmdline ? cfg->verbose : verbose_cmdline;
    log_level = LOG_LVL_INFO + v;
    if (log_level > LOG_LVL_NOISE)
        log_level = LOG_LVL_NOISE;
    if (logfile) {
        fclose(logfile);
        logfile = NULL;
    }
    if (cfg->logfile && cfg->logfile[0]) {
        logfile = fopen(cfg->logfile, "a");
        if (logfile)
            setvbuf(logfile, NULL, _IOLBF, 0);
        else
            fprintf(stderr, "cannot open logfile %s\n", cfg->logfile);
    }
    log_json = cfg->log_format && strcmp(cfg->log_format, "json") == 0;
    if (use_syslog)
        closelog();
    use_syslog = cfg->syslog != 0;
    if (use_syslog)
        openlog(cfg->syslog_ident, LOG_PID, facility_code(cfg->syslog_facility));
}

void log_close(void)
{
    if (logfile)
        fclose(logfile);
    logfile = NULL;
}

/* One JSON object for the line (see the file comment), into out. */
static void log_format_json(struct textbuf *out, int level, const struct pgsock *s,
                            const char *event, const char *fields, const char *msg)
{
    char ts[64], addr[80];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(tv.tv_usec / 1000));

    textbuf_printf(out, "{\"ts\":\"%s\",\"level\":\"%s\",\"pid\":%d,\"event\":", ts,
                   level_names[level], (int)getpid());
    textbuf_json_string(out, event ? event : "log");
    if (s) {
        textbuf_printf(out, ",\"%s_id\":%llu,\"db\":", s->is_server ? "server" : "client",
                       (unsigned long long)s->id);
        textbuf_json_string(out, s->pool ? s->pool->db->name : NULL);
        textbuf_puts(out, ",\"user\":");
        textbuf_json_string(out, pgsock_user_name(s));
        textbuf_puts(out, ",\"addr\":");
        textbuf_json_string(out, log_addr(s, addr, sizeof(addr)));
    }
    if (fields && fields[0]) {
        textbuf_puts(out, ",");
        textbuf_puts(out, fields);
    }
    textbuf_puts(out, ",\"msg\":");
    textbuf_json_string(out, msg);
    textbuf_puts(out, "}");
}

static void log_write_json(int level, const struct pgsock *s, const char *event,
                           const char *fields, const char *msg)
{
    char mem[4096];
    struct textbuf out;
    textbuf_init_fixed(&out, mem, sizeof(mem) - 2);
    log_format_json(&out, level, s, event, fields, msg);
    if (out.failed) {
        /* Too long for one line: keep it valid JSON with the message cut. */
        char cut[1024];
        snprintf(cut, sizeof(cut), "%.900s [truncated]", msg);
        textbuf_init_fixed(&out, mem, sizeof(mem) - 2);
        log_format_json(&out, level, s, event, NULL, cut);
    }
    if (!log_quiet || level <= LOG_LVL_ERROR)
        fprintf(stderr, "%s\n", out.data);
    if (logfile)
        fprintf(logfile, "%s\n", out.data);
}

static void log_write(int level, const struct pgsock *s, const char *event, const char *fields,
                      const char *prefix, const char *msg)
{
    if (log_json) {
        log_write_json(level, s, event, fields, msg);
        if (use_syslog)
            syslog(syslog_levels[level], "%s %s%s", level_names[level], prefix, msg);
        return;
    }

    char ts[64];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03d", (int)(tv.tv_usec / 1000));
    char tz[16];
    strftime(tz, sizeof(tz), "%Z", &tm);

    if (!log_quiet || level <= LOG_LVL_ERROR)
        fprintf(stderr, "%s %s [%d] %s %s%s\n", ts, tz, (int)getpid(), level_names[level],
                prefix, msg);
    if (logfile)
        fprintf(logfile, "%s %s [%d] %s %s%s\n", ts, tz, (int)getpid(), level_names[level],
                prefix, msg);
    if (use_syslog)
        syslog(syslog_levels[level], "%s %s%s", level_names[level], prefix, msg);
}

/* A line about no connection in particular; callers have checked log_level. */
static void log_vplain(int level, const char *event, const char *fields, const char *fmt,
                       va_list ap) __attribute__((format(printf, 4, 0)));

static void log_vplain(int level, const char *event, const char *fields, const char *fmt,
                       va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    log_write(level, NULL, event, fields, "", msg);
}

void log_msg(int level, const char *fmt, ...)
{
    va_list ap;
    if (level > log_level)
        return;
    va_start(ap, fmt);
    log_vplain(level, NULL, NULL, fmt, ap);
    va_end(ap);
}

void log_event(int level, const char *event, const char *fields, const char *fmt, ...)
{
    va_list ap;
    if (level > log_level)
        return;
    va_start(ap, fmt);
    log_vplain(level, event, fields, fmt, ap);
    va_end(ap);
}

const char *log_addr(const struct pgsock *s, char *buf, int len)
{
    char a[INET6_ADDRSTRLEN];
    if (s->remote.family == AF_INET) {
        inet_ntop(AF_INET, s->remote.addr, a, sizeof(a));
        snprintf(buf, (size_t)len, "%s:%u", a, s->remote.port);
    } else if (s->remote.family == AF_INET6) {
        inet_ntop(AF_INET6, s->remote.addr, a, sizeof(a));
        snprintf(buf, (size_t)len, "[%s]:%u", a, s->remote.port);
    } else {
        snprintf(buf, (size_t)len, "unix:%u", s->remote.port);
    }
    return buf;
}

void slog_msg(int level, const struct pgsock *s, const char *fmt, ...)
{
    char msg[1024], prefix[300], addr[80];
    va_list ap;
    if (level > log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const char *db = s->pool ? s->pool->db->name : "(nodb)";
    const char *user = s->pool ? pgsock_user_name(s) : "(nouser)";
    snprintf(prefix, sizeof(prefix), "%c-%llu: %s/%s@%s ", s->is_server ? 'S' : 'C',
             (unsigned long long)s->id, db, user, log_addr(s, addr, sizeof(addr)));
    log_write(level, s, NULL, NULL, prefix, msg);
}
