/* SPDX-License-Identifier: ISC */
/*
 * fuzz_admin: the console command parser, admin_prepare() in admin_cmd.c
 * (parse, then resolve: known command, allowed argument, rows or not), on
 * the input as one query string. On failure the ErrorResponse it writes is
 * built in a real admin_buf. A parsed SET then goes through config_set() on
 * a scratch config, as the console's SET would apply it, so the typed
 * setters see fuzzed values too. Nothing is run: running commands needs a
 * logged-in console, which fuzz_client covers.
 */
#include "fuzz.h"
#include "fuzz_core.h"

#include "admin_internal.h"
#include "config.h"

#include <stdlib.h>
#include <string.h>

static struct config *scratch;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_core_init();
    scratch = config_new_default();
    if (!scratch)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_part all = {data, size};
    char *q = fuzz_strdup(all);
    struct admin_buf out;
    struct admin_ctx x;
    struct admin_parsed pc;
    struct admin_plan plan;

    memset(&out, 0, sizeof(out));
    memset(&x, 0, sizeof(x));
    x.out = &out;
    bool ok = admin_prepare(&x, q, &pc, &plan);
    if (ok == x.error || (!ok && out.len == 0))
        abort();
    if (ok) {
        /* Parsed strings stay NUL-terminated inside their arrays. */
        if (!memchr(pc.cmd, 0, sizeof(pc.cmd)) || !memchr(pc.arg, 0, sizeof(pc.arg)) ||
            !memchr(pc.key, 0, sizeof(pc.key)) || !memchr(pc.value, 0, sizeof(pc.value)))
            abort();
        if (pc.kind == AK_SET) {
            struct config_error err;
            if (config_find_key(pc.key))
                (void)config_set(scratch, pc.key, pc.value, &err);
        }
    }
    abuf_free(&out);
    free(q);
    return 0;
}
