/* SPDX-License-Identifier: ISC */
/*
 * fuzz_scram_client: src/scram.c as the client (pgmux logging in to
 * PostgreSQL) on fuzzed server messages. The input is
 *   server-first-message [FUZZ_SEP server-final-message]
 * The client nonce and user name are the RFC 7677 ones, so the RFC server
 * messages are accepted. The client proves itself with the RFC ClientKey and
 * ServerKey (pass-through, no PBKDF2), which LLVMFuzzerInitialize recovers
 * by running the RFC exchange through the server side. When the iteration
 * count in the message is small, the password path (PBKDF2 and its cache)
 * runs as well; large counts are left out only because each costs real
 * PBKDF2 time (the cap itself, SCRAM_MAX_ITERATIONS, is checked either way).
 */
#include "fuzz.h"
#include "scram_vectors.h"

#include "scram.h"

#include <stdlib.h>
#include <string.h>

#define CHEAP_ITERATIONS 16

static struct scram_keys rfc_keys;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char first[] = RFC_CLIENT_FIRST, final[] = RFC_CLIENT_FINAL;
    struct scram_secret sec;
    struct scram_server st;
    char out[SCRAM_MAX_MSG];
    size_t outlen;
    const char *err;

    memset(&st, 0, sizeof(st));
    scram_test_set_nonce(RFC_SNONCE);
    if (!scram_parse_secret(RFC_SECRET, &sec) ||
        !scram_server_first(&st, &sec, (const uint8_t *)first, strlen(first), out, sizeof(out),
                            &outlen, &err) ||
        !scram_server_final(&st, &sec, (const uint8_t *)final, strlen(final), out, sizeof(out),
                            &outlen, &rfc_keys, &err))
        abort();
    return 0;
}

/* The value of the first ",i=" attribute when it is a small number, else 0. */
static int cheap_iterations(struct fuzz_part p)
{
    for (size_t i = 0; i + 3 < p.len; i++) {
        if (memcmp(p.p + i, ",i=", 3) != 0)
            continue;
        int v = 0;
        for (size_t k = i + 3; k < p.len && p.p[k] >= '0' && p.p[k] <= '9'; k++) {
            v = v * 10 + (p.p[k] - '0');
            if (v > CHEAP_ITERATIONS)
                return 0;
        }
        return v;
    }
    return 0;
}

static void exchange(struct fuzz_part *part, size_t n, bool use_password)
{
    struct scram_client st;
    char out[SCRAM_MAX_MSG];
    size_t outlen = 0;
    const char *err = NULL;

    memset(&st, 0, sizeof(st));
    scram_test_set_client_user("user");
    scram_test_set_nonce(RFC_CNONCE);
    if (!scram_client_first(&st, out, sizeof(out), &outlen))
        abort();
    scram_test_set_client_user(NULL);
    bool ok = scram_client_final(&st, use_password ? RFC_PASSWORD : NULL,
                                 use_password ? NULL : &rfc_keys, part[0].p, part[0].len, out,
                                 sizeof(out), &outlen, &err);
    if (ok && outlen >= sizeof(out))
        abort();
    if (!ok && err == NULL)
        abort();
    if (n < 2)
        return;
    err = NULL;
    ok = scram_client_verify(&st, part[1].p, part[1].len, &err);
    if (!ok && err == NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_part part[2];
    size_t n = fuzz_split(data, size, part, 2);

    exchange(part, n, false);
    if (cheap_iterations(part[0]) > 0)
        exchange(part, n, true);
    return 0;
}
