/* SPDX-License-Identifier: ISC */
/*
 * db: databases and users. Each configured database gets one struct that
 * lives as long as the process, so pools and servers can point at it across
 * reloads; a reload rewrites its fields and, when the connection settings
 * changed, marks its servers close_needed so they are replaced as they come
 * back to the pool. A database that disappeared from the config is marked
 * dead: no new logins, its servers close when released.
 */
#include "db.h"

#include "authfile.h"
#include "config.h"
#include "log.h"
#include "pool.h"
#include "server.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void db_init(void)
{
    list_init(&G.databases);
    list_init(&G.users);
}

static struct database *db_find(const char *name)
{
    struct list *item;
    for (item = G.databases.next; item != &G.databases; item = item->next) {
        struct database *db = container_of(item, struct database, head);
        if (strcmp(db->name, name) == 0)
            return db;
    }
    return NULL;
}

struct user *db_find_user(const char *name)
{
    struct list *item;
    for (item = G.users.next; item != &G.users; item = item->next) {
        struct user *u = container_of(item, struct user, head);
        if (strcmp(u->name, name) == 0)
            return u;
    }
    return NULL;
}

static void user_reset(struct user *u)
{
    u->pool_mode = u->pool_size = u->reserve_pool = CONFIG_UNSET;
    u->max_user_connections = u->max_user_client_connections = CONFIG_UNSET;
    u->query_timeout = u->idle_transaction_timeout = u->transaction_timeout = -1;
    u->client_idle_timeout = u->query_wait_timeout = -1;
}

struct user *db_find_or_add_user(const char *name)
{
    struct user *u = db_find_user(name);
    if (u)
        return u;
    if (strlen(name) >= MAX_NAME)
        return NULL;
    u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    strcpy(u->name, name);
    user_reset(u);
    list_insert_after(G.users.prev, &u->head);
    return u;
}

static bool str_changed(const char *a, const char *b)
{
    if (!a || !b)
        return a != b;
    return strcmp(a, b) != 0;
}

static void set_str(char **dst, const char *src)
{
    free(*dst);
    *dst = src ? strdup(src) : NULL;
}

/* Mark every server of db to be closed; idle ones go now. */
static void db_recycle_servers(struct database *db)
{
    struct list *pi;
    for (pi = G.pools.next; pi != &G.pools; pi = pi->next) {
        struct pool *p = container_of(pi, struct pool, head);
        if (p->db != db)
            continue;
        pool_recycle_servers(p, "database configuration changed");
        /* The welcome may have been made by the old server: take a fresh one. */
        free(p->welcome);
        p->welcome = NULL;
        p->welcome_len = 0;
        p->welcome_ready = false;
    }
}

static void db_fill(struct database *db, const struct cfg_db *cd, const char *auto_dbname)
{
    const char *dbname = cd->dbname ? cd->dbname : (auto_dbname ? auto_dbname : cd->name);
    bool changed = str_changed(db->host, cd->host) || db->port != cd->port ||
                   str_changed(db->dbname, dbname) || str_changed(db->forced_user, cd->user) ||
                   str_changed(db->forced_password, cd->password) ||
                   str_changed(db->connect_query, cd->connect_query) ||
                   str_changed(db->client_encoding, cd->client_encoding) ||
                   str_changed(db->datestyle, cd->datestyle) ||
                   str_changed(db->timezone, cd->timezone) ||
                   str_changed(db->application_name, cd->application_name);
    set_str(&db->host, cd->host);
    db->port = cd->port > 0 ? cd->port : 5432;
    set_str(&db->dbname, dbname);
    set_str(&db->forced_user, cd->user);
    set_str(&db->forced_password, cd->password);
    set_str(&db->connect_query, cd->connect_query);
    set_str(&db->auth_user, cd->auth_user);
    set_str(&db->auth_query, cd->auth_query);
    set_str(&db->auth_dbname, cd->auth_dbname);
    set_str(&db->client_encoding, cd->client_encoding);
    set_str(&db->datestyle, cd->datestyle);
    set_str(&db->timezone, cd->timezone);
    set_str(&db->application_name, cd->application_name);
    db->pool_size = cd->pool_size;
    db->min_pool_size = cd->min_pool_size;
    db->reserve_pool = cd->reserve_pool;
    db->pool_mode = cd->pool_mode;
    db->max_db_connections = cd->max_db_connections;
    db->max_db_client_connections = cd->max_db_client_connections;
    db->server_lifetime = cd->server_lifetime != CONFIG_UNSET ? cd->server_lifetime : -1;
    db->dead = false;
    if (changed) {
        db->generation++;
        db->addrlen = 0; /* resolve again */
        db->addr_expires = 0;
        if (db->generation > 1) {
            log_info("database %s: connection settings changed, recycling servers", db->name);
            db_recycle_servers(db);
        }
    }
}

/* A removed database serves nobody again: its waiting clients are told now. */
static void db_fail_waiting(struct database *db)
{
    struct list *pi;
    for (pi = G.pools.next; pi != &G.pools; pi = pi->next) {
        struct pool *p = container_of(pi, struct pool, head);
        if (p->db == db)
            pool_fail_waiting(p, "08P01", "database removed");
    }
}

static struct database *db_new(const char *name)
{
    struct database *db = calloc(1, sizeof(*db));
    if (!db)
        return NULL;
    snprintf(db->name, sizeof(db->name), "%s", name);
    list_insert_after(G.databases.prev, &db->head);
    return db;
}

static const struct cfg_db *wildcard(const struct config *cfg)
{
    return config_find_db(cfg, "*");
}

void db_apply_config(const struct config *cfg)
{
    struct list *item;
    for (item = G.databases.next; item != &G.databases; item = item->next) {
        struct database *db = container_of(item, struct database, head);
        const struct cfg_db *cd = config_find_db(cfg, db->name);
        if (cd && strcmp(cd->name, "*") != 0) {
            /* An entry of its own now wins over the `*` it was made from. */
            db->is_autodb = false;
            db_fill(db, cd, NULL);
        } else if (db->is_autodb && wildcard(cfg)) {
            db_fill(db, wildcard(cfg), db->name);
        } else if (!db->dead) {
            log_info("database %s removed from the configuration", db->name);
            db->dead = true;
            db_recycle_servers(db);
            db_fail_waiting(db);
        }
    }
    for (int i = 0; i < cfg->n_dbs; i++) {
        const struct cfg_db *cd = &cfg->dbs[i];
        if (strcmp(cd->name, "*") == 0 || db_find(cd->name))
            continue;
        struct database *db = db_new(cd->name);
        if (db)
            db_fill(db, cd, NULL);
    }
    for (item = G.users.next; item != &G.users; item = item->next)
        user_reset(container_of(item, struct user, head));
    for (int i = 0; i < cfg->n_users; i++) {
        const struct cfg_user *cu = &cfg->users[i];
        struct user *u = db_find_or_add_user(cu->name);
        if (!u)
            continue;
        u->pool_mode = cu->pool_mode;
        u->pool_size = cu->pool_size;
        u->reserve_pool = cu->reserve_pool;
        u->max_user_connections = cu->max_user_connections;
        u->max_user_client_connections = cu->max_user_client_connections;
        u->query_timeout = cu->query_timeout;
        u->idle_transaction_timeout = cu->idle_transaction_timeout;
        u->transaction_timeout = cu->transaction_timeout;
        u->client_idle_timeout = cu->client_idle_timeout;
        u->query_wait_timeout = cu->query_wait_timeout;
    }
}

struct database *db_find_or_auto(const char *name)
{
    struct database *db = db_find(name);
    if (db && !db->dead)
        return db;
    const struct cfg_db *w = wildcard(G.cfg);
    if (!w)
        return db;
    if (!db) {
        db = db_new(name);
        if (!db)
            return NULL;
    }
    db->is_autodb = true;
    db_fill(db, w, name);
    return db;
}

void db_login_ref(struct database *db)
{
    db->logins++;
}

void db_login_unref(struct database *db)
{
    if (--db->logins > 0 || !db->is_autodb || db->disabled || db->paused || db->resolving)
        return;
    struct list *pi;
    for (pi = G.pools.next; pi != &G.pools; pi = pi->next)
        if (container_of(pi, struct pool, head)->db == db)
            return;
    list_del(&db->head);
    free(db->host);
    free(db->dbname);
    free(db->forced_user);
    if (db->forced_password)
        OPENSSL_cleanse(db->forced_password, strlen(db->forced_password));
    free(db->forced_password);
    free(db->connect_query);
    free(db->auth_user);
    free(db->auth_query);
    free(db->auth_dbname);
    free(db->client_encoding);
    free(db->datestyle);
    free(db->timezone);
    free(db->application_name);
    free(db);
}

const char *db_server_secret(const struct pool *p, const struct login_keys **keys)
{
    const struct database *db = p->db;
    const struct user *user = p->user;
    const char *pw;
    *keys = &user->keys;
    if (db->forced_user && strcmp(db->forced_user, user->name) == 0 && db->forced_password)
        return db->forced_password;
    pw = G.authfile ? authfile_lookup(G.authfile, user->name) : NULL;
    if (pw)
        return pw;
    *keys = &p->authq_keys;
    return p->authq_secret;
}

bool db_pool_set_authq_secret(struct pool *p, const char *secret)
{
    if (p->authq_secret && strcmp(p->authq_secret, secret) == 0)
        return true;
    char *copy = strdup(secret);
    if (!copy)
        return false;
    if (p->authq_secret) {
        OPENSSL_cleanse(p->authq_secret, strlen(p->authq_secret));
        free(p->authq_secret);
    }
    p->authq_secret = copy;
    /* Keys proved against the old secret do not fit the new one. */
    OPENSSL_cleanse(&p->authq_keys, sizeof(p->authq_keys));
    return true;
}
