/* SPDX-License-Identifier: ISC */
/*
 * fuzz_varcache: src/varcache.c, the tracked-parameter cache and the
 * "SET name='value';" text sent to a server before a client's queries.
 *
 * The input is "track_extra_parameters FUZZ_SEP op FUZZ_SEP op ...", each op
 * being a byte (slot number and which side, client or server) followed by a
 * value. After the ops the SET text is built into buffers from too small to
 * large (each exactly its size, so ASan sees an overflow): a build that
 * does not fit must leave the server side unchanged. The text is then read
 * back: every statement must be "SET <tracked name>=" followed by a quoted
 * literal (E'' with doubled backslashes when the value has one) that decodes
 * to the client's value; a search_path that is a list of identifiers is sent
 * as the client gave it.
 */
#include "fuzz.h"

#include "varcache.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPS 32

/* Decode the literal at *pp ('...' or E'...') and compare it with want; aborts on a mismatch. */
static void check_literal(const char **pp, const char *want)
{
    const char *p = *pp;
    bool e = *p == 'E';
    if (e)
        p++;
    if (*p++ != '\'')
        abort();
    size_t k = 0;
    for (;;) {
        if (*p == 0)
            abort();
        if (*p == '\'') {
            if (p[1] != '\'')
                break;
            p++;
        } else if (e && *p == '\\') {
            if (p[1] != '\\')
                abort();
            p++;
        }
        if (want[k++] != *p++)
            abort();
    }
    if (want[k] != 0)
        abort();
    *pp = p + 1;
}

/* Outside double quotes only identifier characters, commas and blanks (no ';' or quote). */
static bool identifier_list(const char *s)
{
    bool quoted = false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"')
            quoted = !quoted; /* a doubled "" inside quotes toggles twice */
        else if (!quoted && !isalnum(ch) && ch != '_' && ch != '$' && ch != ',' && ch != ' ' &&
                 ch < 0x80)
            return false;
    }
    return !quoted;
}

/* Read one "SET name=value;" at *pp; checks it against the client's value. */
static void check_statement(const char **pp, const struct varcache *client)
{
    const char *p = *pp;
    if (strncmp(p, "SET ", 4) != 0)
        abort();
    p += 4;
    /* Names come from the config and may hold '=': take the longest tracked "name=". */
    int idx = -1;
    size_t nlen = 0;
    for (int i = 0; i < varcache_count(); i++) {
        const char *nm = varcache_name(i);
        size_t l = strlen(nm);
        if (l > nlen && strncmp(p, nm, l) == 0 && p[l] == '=') {
            idx = i;
            nlen = l;
        }
    }
    if (idx < 0)
        abort();
    const char *want = varcache_get(client, idx);
    if (!want)
        abort();
    p += nlen + 1;
    size_t wlen = strlen(want);
    if (strcmp(varcache_name(idx), "search_path") == 0 && wlen > 0 &&
        strncmp(p, want, wlen) == 0 && p[wlen] == ';') {
        /* Sent as it is: only an identifier list may be. */
        if (!identifier_list(want))
            abort();
        p += wlen;
    } else {
        check_literal(&p, want);
    }
    if (*p != ';')
        abort();
    *pp = p + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_part part[MAX_OPS + 1];
    size_t n = fuzz_split(data, size, part, MAX_OPS + 1);
    struct varcache client, server, server2;
    char *extra = fuzz_strdup(part[0]);

    varcache_init_names(extra);
    free(extra);
    int count = varcache_count();
    if (count < 1 || count > VAR_MAX)
        abort();
    for (int i = 0; i < count; i++)
        if (varcache_lookup(varcache_name(i)) != i)
            abort();

    memset(&client, 0, sizeof(client));
    memset(&server, 0, sizeof(server));
    memset(&server2, 0, sizeof(server2));
    for (size_t i = 1; i < n; i++) {
        if (part[i].len == 0)
            continue;
        uint8_t op = part[i].p[0];
        struct fuzz_part v = {part[i].p + 1, part[i].len - 1};
        char *val = fuzz_strdup(v);
        int idx = (op & 0x7f) % count;
        if (!varcache_set((op & 0x80) ? &server : &client, idx, val))
            abort();
        free(val);
    }
    varcache_copy(&server2, &server);

    /* Too small buffers: -1 (and nothing changed) or a complete result, never an overflow. */
    static const size_t small[] = {1, 2, 9, 16, 64};
    for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++) {
        struct varcache s;
        memset(&s, 0, sizeof(s));
        varcache_copy(&s, &server);
        char *buf = malloc(small[i]);
        if (!buf)
            abort();
        int len = varcache_build_set(&client, &s, buf, small[i]);
        if (len >= 0 && (size_t)len != strlen(buf))
            abort();
        if (len < 0)
            for (int k = 0; k < count; k++)
                if (!varcache_same(&s, &server, k))
                    abort();
        free(buf);
        varcache_clear(&s);
    }

    size_t cap = 2 * size + VAR_MAX * 80;
    char *buf = malloc(cap);
    if (!buf)
        abort();
    int len = varcache_build_set(&client, &server2, buf, cap);
    if (len < 0 || (size_t)len != strlen(buf))
        abort();
    const char *p = buf;
    while (*p)
        check_statement(&p, &client);
    /* After the build the server side matches the client wherever the client has a value. */
    for (int i = 0; i < count; i++)
        if (varcache_get(&client, i) && !varcache_same(&client, &server2, i))
            abort();
    if (varcache_build_set(&client, &server2, buf, cap) != 0)
        abort();
    free(buf);
    varcache_clear(&client);
    varcache_clear(&server);
    varcache_clear(&server2);
    return 0;
}
