/* SPDX-License-Identifier: ISC */
/*
 * scram_vectors: the RFC 7677 section 3 exchange ("user", password "pencil"),
 * shared by the SCRAM drivers and mirrored in gen_corpus.py's seeds. The
 * drivers fix both nonces to these values through src/scram.c's test hook,
 * so a seed that replays the RFC exchange reaches the proof and signature
 * checks, and mutations of it explore everything on the way.
 */
#ifndef PGMUX_FUZZ_SCRAM_VECTORS_H
#define PGMUX_FUZZ_SCRAM_VECTORS_H

#define RFC_PASSWORD "pencil"
#define RFC_CNONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_CLIENT_FIRST "n,,n=user,r=" RFC_CNONCE
#define RFC_CLIENT_FINAL                                                                           \
    "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SECRET                                                                                 \
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"    \
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

/* Test hooks defined in src/scram.c (not in scram.h: only tests use them). */
void scram_test_set_nonce(const char *nonce);
void scram_test_set_client_user(const char *user);

#endif
