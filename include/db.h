/* SPDX-License-Identifier: ISC */
/*
 * db: the database and user registries, built from [databases], [users],
 * the auth_file and auto-databases made from "*". A reload updates them in
 * place and marks servers of changed databases close_needed.
 */
#ifndef PGMUX_DB_H
#define PGMUX_DB_H

#include "pgmux.h"

struct config;

void db_init(void);
/* Apply a freshly loaded config (startup and reload). */
void db_apply_config(const struct config *cfg);

/* A database for a client's requested name: configured, auto from "*", or NULL. */
struct database *db_find_or_auto(const char *name);

/*
 * A login in progress holds db (from its startup packet until it joins a
 * pool or fails). When the last one lets go of a database made from `*`
 * that no pool uses and nothing else marked, the database is freed: names
 * in startup packets of logins that never succeed leave nothing behind.
 */
void db_login_ref(struct database *db);
void db_login_unref(struct database *db);
struct user *db_find_or_add_user(const char *name);
struct user *db_find_user(const char *name);

/*
 * Secret for a server login of pool p: the database's forced password, the
 * auth file, then what auth_query gave the pool's last login; NULL if none.
 * *keys: the SCRAM pass-through keys that go with that secret.
 */
const char *db_server_secret(const struct pool *p, const struct login_keys **keys);

/* Keep the secret a login of p got from auth_query (replacing an older one). */
bool db_pool_set_authq_secret(struct pool *p, const char *secret);

#endif
