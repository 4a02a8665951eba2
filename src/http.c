/* SPDX-License-Identifier: ISC */
/*
 * http: placeholder until the observability listeners land.
 */
#include "http.h"

bool http_open(const struct config *cfg)
{
    (void)cfg;
    return true;
}

void http_start(void)
{
}

void http_stop(void)
{
}
