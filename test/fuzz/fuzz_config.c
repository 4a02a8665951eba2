/* SPDX-License-Identifier: ISC */
/*
 * fuzz_config: src/config.c's config_load (the line reader in front of inih,
 * the key table, typed setters, [databases]/[users]/[peers] entries through
 * connstr) on a file written from the input.
 *
 * The input is "main file [FUZZ_SEP included file]". %include must never
 * reach outside the driver's temporary directory, and config_load opens
 * whatever path a %include line names, so every line that mentions
 * "%include" anywhere is replaced, before the file is written, by an include
 * of the second file in the temporary directory (which may include itself:
 * that exercises the nesting limit). No other path in the input is opened by
 * config_load.
 */
#include "fuzz.h"

#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INC_NAME "inc.ini"

/*
 * Copy src to a new buffer, replacing each line (split at '\n', as getline
 * does) that contains "%include" by "%include <tmpdir>/inc.ini".
 */
static char *rewrite_includes(struct fuzz_part src, size_t *outlen)
{
    char line[PATH_MAX + 32];
    int linelen = snprintf(line, sizeof(line), "%%include %s/%s", fuzz_tmpdir(), INC_NAME);
    /* Worst case: every byte is a one-byte line turned into an include line. */
    size_t cap = src.len * ((size_t)linelen + 1) + 1;
    char *out = malloc(cap);
    size_t n = 0;
    const uint8_t *p = src.p, *end = src.p + src.len;

    if (!out)
        abort();
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *eol = nl ? nl + 1 : end;
        if (memmem(p, (size_t)(eol - p), "%include", 8)) {
            memcpy(out + n, line, (size_t)linelen);
            n += (size_t)linelen;
            if (nl)
                out[n++] = '\n';
        } else {
            memcpy(out + n, p, (size_t)(eol - p));
            n += (size_t)(eol - p);
        }
        p = eol;
    }
    *outlen = n;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_part part[2];
    size_t n = fuzz_split(data, size, part, 2);
    struct config_error err;
    struct config *cfg;
    char *text, msg[1024];
    size_t len;
    const char *path;

    text = rewrite_includes(part[0], &len);
    path = fuzz_write_file("main.ini", text, len);
    free(text);
    if (n > 1) {
        text = rewrite_includes(part[1], &len);
        fuzz_write_file(INC_NAME, text, len);
        free(text);
    } else {
        fuzz_write_file(INC_NAME, "", 0);
    }

    cfg = config_load(path, &err);
    if (cfg) {
        /* Everything SHOW CONFIG would print must format. */
        size_t nkeys;
        const struct config_key *keys = config_keys(&nkeys);
        for (size_t i = 0; i < nkeys; i++)
            config_format(cfg, &keys[i], msg, sizeof(msg));
        config_free(cfg);
    } else {
        config_error_format(&err, msg, sizeof(msg));
    }
    return 0;
}
