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
struct user *db_find_or_add_user(const char *name);
struct user *db_find_user(const char *name);

/* Secret for server login as user: the forced password, the auth file, then
 * what auth_query gave the user's last login; NULL if none. */
const char *db_server_password(const struct database *db, const struct user *user);

/* Keep the secret a login got from auth_query (replacing an older one). */
bool db_user_set_secret(struct user *u, const char *secret);

#endif
