/* SPDX-License-Identifier: ISC */
/*
 * control: process-level actions shared by signals and the admin console
 * (implemented in main.c).
 */
#ifndef PGMUX_CONTROL_H
#define PGMUX_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Build the process state from G.cfg once the config and auth file are
 * loaded: parameter cache, buffer size, lists, pools, the loop, the client
 * address table, DNS and the databases. Everything that runs the pooler
 * (main() and the fuzzers' fuzz_core) calls this, so the two cannot drift
 * apart. False only when the address table could not be made.
 */
bool pgmux_setup(void);

/*
 * After SET changed a key of TLS or authentication (auth_type, auth_file,
 * auth_hba_file, auth_ident_file, *_tls_*) in G.cfg: load what it names and
 * put it in force, as a reload would (server_tls_changed: recycle the server
 * connections). False (and nothing changes but the key, which the caller
 * puts back) when something fails; err says why.
 */
bool pgmux_apply_auth_settings(bool server_tls_changed, char *err, size_t errlen);

/* True for the keys pgmux_apply_auth_settings() is for. */
bool pgmux_key_needs_auth_reload(const char *key);

/* Re-read config and auth_file; on failure nothing changes and err says why. */
bool pgmux_reload(char *err, size_t errlen);

/* mode 1 = WAIT_FOR_SERVERS (SIGINT), 2 = WAIT_FOR_CLIENTS (SIGTERM); a second call exits. */
void pgmux_begin_shutdown(int mode, const char *why);

/* Close listeners, remove the pidfile, exit(0). */
void pgmux_exit_now(void) __attribute__((noreturn));

#endif
