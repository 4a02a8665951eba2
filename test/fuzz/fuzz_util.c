/* SPDX-License-Identifier: ISC */
/*
 * fuzz_util: input splitting and temporary files for the drivers (fuzz.h).
 * The temporary directory is removed with its files when the process exits.
 */
#include "fuzz.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[PATH_MAX];

size_t fuzz_split(const uint8_t *data, size_t size, struct fuzz_part *parts, size_t max)
{
    size_t n = 0;
    const uint8_t *p = data, *end = data + size;

    while (n + 1 < max) {
        const uint8_t *sep = memchr(p, FUZZ_SEP, (size_t)(end - p));
        if (!sep)
            break;
        parts[n].p = p;
        parts[n].len = (size_t)(sep - p);
        n++;
        p = sep + 1;
    }
    parts[n].p = p;
    parts[n].len = (size_t)(end - p);
    return n + 1;
}

char *fuzz_strdup(struct fuzz_part part)
{
    char *s = malloc(part.len + 1);
    if (!s)
        abort();
    if (part.len)
        memcpy(s, part.p, part.len);
    s[part.len] = 0;
    return s;
}

static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *de;
    char path[PATH_MAX + 256];

    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(tmpdir);
}

const char *fuzz_tmpdir(void)
{
    if (tmpdir[0])
        return tmpdir;
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/pgmux-fuzz-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        abort();
    }
    atexit(remove_tmpdir);
    return tmpdir;
}

const char *fuzz_write_file(const char *name, const void *data, size_t len)
{
    /* A few slots so a driver can hold several paths at once. */
    static char paths[4][PATH_MAX + 64];
    static unsigned slot;
    char *path = paths[slot++ % 4];
    int fd;

    snprintf(path, PATH_MAX + 64, "%s/%s", fuzz_tmpdir(), name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror(path);
        abort();
    }
    if (!fuzz_write_all(fd, data, len)) {
        perror(path);
        abort();
    }
    close(fd);
    return path;
}

bool fuzz_write_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}
