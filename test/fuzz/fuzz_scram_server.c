/* SPDX-License-Identifier: ISC */
/*
 * fuzz_scram_server: src/scram.c as the server (pgmux checking a client).
 * The input is up to three parts separated by FUZZ_SEP:
 *   client-first-message, client-final-message, [stored secret]
 * The exchange runs against the RFC 7677 secret with the RFC server nonce,
 * so the RFC client messages succeed. A third part, when it parses as a
 * secret (scram_parse_secret is fuzzed too), is passed to
 * scram_server_final in place of the original, which must then match the
 * salt and count the client was challenged with.
 */
#include "fuzz.h"
#include "scram_vectors.h"

#include "scram.h"

#include <stdlib.h>
#include <string.h>

static struct scram_secret secret;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (!scram_parse_secret(RFC_SECRET, &secret))
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_part part[3];
    size_t n = fuzz_split(data, size, part, 3);
    struct scram_server st;
    struct scram_secret other;
    const struct scram_secret *final_sec = &secret;
    char out[SCRAM_MAX_MSG];
    size_t outlen = 0;
    const char *err = NULL;
    struct scram_keys keys;

    if (n >= 3) {
        char *text = fuzz_strdup(part[2]);
        bool ok = scram_parse_secret(text, &other);
        free(text);
        final_sec = ok ? &other : NULL;
    }

    memset(&st, 0, sizeof(st));
    scram_test_set_nonce(RFC_SNONCE);
    bool ok = scram_server_first(&st, &secret, part[0].p, part[0].len, out, sizeof(out), &outlen,
                                 &err);
    scram_test_set_nonce(NULL);
    if (ok && outlen >= sizeof(out))
        abort();
    if (!ok && err == NULL)
        abort();
    if (n < 2)
        return 0;
    err = NULL;
    ok = scram_server_final(&st, final_sec, part[1].p, part[1].len, out, sizeof(out), &outlen,
                            &keys, &err);
    if (ok && outlen >= sizeof(out))
        abort();
    if (!ok && err == NULL)
        abort();
    /* A second final after success or failure must be refused. */
    if (scram_server_final(&st, final_sec, part[1].p, part[1].len, out, sizeof(out), &outlen,
                           &keys, &err))
        abort();
    return 0;
}
