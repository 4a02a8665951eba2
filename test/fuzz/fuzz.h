/* SPDX-License-Identifier: ISC */
/*
 * fuzz: helpers shared by the libFuzzer drivers in test/fuzz/. Each driver
 * defines LLVMFuzzerTestOneInput (and optionally LLVMFuzzerInitialize); the
 * helpers split one input into several messages or files and write files
 * into a private temporary directory made once per process.
 *
 * Inputs that hold several parts separate them with FUZZ_SEP (ASCII record
 * separator), which the dictionaries list so the fuzzer can add parts.
 */
#ifndef PGMUX_FUZZ_H
#define PGMUX_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FUZZ_SEP 0x1e

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

struct fuzz_part {
    const uint8_t *p;
    size_t len;
};

/*
 * Split data at FUZZ_SEP into at most max parts (the last part keeps any
 * further separators). Returns the number of parts, at least 1.
 */
size_t fuzz_split(const uint8_t *data, size_t size, struct fuzz_part *parts, size_t max);

/* A NUL-terminated heap copy of part (exactly len + 1 bytes, so ASan sees overreads). */
char *fuzz_strdup(struct fuzz_part part);

/* The process's temporary directory (made on first use; aborts if it cannot be). */
const char *fuzz_tmpdir(void);

/*
 * Write all len bytes to fd. Returns false when fd stopped taking them (a
 * closed peer, a full non-blocking socket): what was left is lost, as on a
 * network.
 */
bool fuzz_write_all(int fd, const void *data, size_t len);

/* Write len bytes to name inside fuzz_tmpdir(); returns the full path (static buffer per slot). */
const char *fuzz_write_file(const char *name, const void *data, size_t len);

#endif
