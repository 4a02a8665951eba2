/* SPDX-License-Identifier: ISC */
/*
 * fuzz_connstr: src/connstr.c, the key=value strings of [databases],
 * [users] and [peers]. The input (up to its first NUL) is parsed with each
 * section's key list and with none, through both the in-place iterator and
 * connstr_parse, checking the documented promises: values are never empty,
 * keys are in the list, pointers stay inside the buffer and error offsets
 * inside the string.
 */
#include "fuzz.h"

#include "connstr.h"

#include <stdlib.h>
#include <string.h>

static bool count_pair(void *arg, const char *key, const char *value, struct connstr_error *err)
{
    int *pairs = arg;

    if (value[0] == 0)
        abort();
    /* Stop at the fourth pair, as a caller rejecting a value would. */
    return ++*pairs < 4;
}

static void iterate(const char *text, size_t len, const char *const *keys)
{
    char *buf = malloc(len + 1);
    struct connstr cs;
    struct connstr_error err;
    const char *key, *value;
    enum connstr_status st;

    if (!buf)
        abort();
    memcpy(buf, text, len + 1);
    connstr_init(&cs, buf, keys);
    while ((st = connstr_next(&cs, &key, &value, &err)) == CONNSTR_PAIR) {
        if (key < buf || key > buf + len || value < buf || value > buf + len)
            abort();
        if (value[0] == 0 || !connstr_key_known(keys, key))
            abort();
    }
    if (st == CONNSTR_ERROR && (err.offset > len || !memchr(err.msg, 0, sizeof(err.msg)) ||
                                !memchr(err.key, 0, sizeof(err.key))))
        abort();
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_part all = {data, size};
    char *text = fuzz_strdup(all);
    size_t len = strlen(text);
    const char *const *lists[] = {connstr_db_keys, connstr_user_keys, connstr_peer_keys, NULL};
    struct connstr_error err;

    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        int pairs = 0;
        iterate(text, len, lists[i]);
        if (!connstr_parse(text, lists[i], count_pair, &pairs, &err) && err.offset > len)
            abort();
    }
    free(text);
    return 0;
}
