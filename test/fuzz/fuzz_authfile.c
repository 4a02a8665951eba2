/* SPDX-License-Identifier: ISC */
/*
 * fuzz_authfile: src/authfile.c, the userlist.txt loader, on a file written
 * from the input. Users that loaded are looked up, and their secrets go
 * through secret_kind and the md5 helpers as a login would use them.
 */
#include "fuzz.h"

#include "authfile.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const users[] = {"alice", "bob", "", "\"", "user with space", "pgbouncer"};
    static const uint8_t salt[4] = {1, 2, 3, 4};
    const char *path = fuzz_write_file("userlist.txt", data, size);
    char err[512], out[36];
    struct authfile *af = authfile_load(path, err, sizeof(err));

    if (!af) {
        if (!memchr(err, 0, sizeof(err)))
            abort();
        return 0;
    }
    (void)authfile_count(af);
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
        const char *secret = authfile_lookup(af, users[i]);
        if (!secret)
            continue;
        switch (secret_kind(secret)) {
        case SECRET_PLAIN:
        case SECRET_MD5:
            md5_salted_response(secret, users[i], salt, out);
            if (!md5_check(secret, users[i], salt, out))
                abort(); /* our own answer must be accepted */
            (void)md5_check(secret, users[i], salt, "md500000000000000000000000000000000");
            break;
        case SECRET_SCRAM:
            break;
        }
    }
    authfile_free(af);
    return 0;
}
