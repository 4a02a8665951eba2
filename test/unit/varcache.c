/* SPDX-License-Identifier: ISC */
/*
 * Unit tests of src/varcache.c: tracked names, interning (equal values are
 * the same pointer), and the SET statement built for differing values.
 */
#include "tap.h"

#include "varcache.h"

#include <stdio.h>
#include <string.h>

int main(void)
{
    struct varcache a, b;
    char buf[512];

    varcache_init_names("IntervalStyle, TimeZone,foo_bar");
    TAP_CHECK(varcache_lookup("timezone") >= 0, "lookup is case-insensitive");
    TAP_CHECK(varcache_lookup("intervalstyle") >= 0, "extra parameter tracked");
    TAP_CHECK(varcache_lookup("foo_bar") >= 0, "second extra parameter tracked");
    TAP_CHECK(varcache_lookup("work_mem") < 0, "untracked name");
    TAP_CHECK(varcache_count() == 8, "6 fixed + 2 extra, duplicate TimeZone dropped (got %d)",
              varcache_count());

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    int tz = varcache_lookup("TimeZone");
    int app = varcache_lookup("application_name");
    int sp = varcache_lookup("search_path");

    TAP_CHECK(varcache_build_set(&a, &b, buf, sizeof(buf)) == 0, "nothing to set when empty");
    varcache_set(&a, tz, "UTC");
    varcache_set(&b, tz, "UTC");
    TAP_CHECK(varcache_same(&a, &b, tz), "equal values are interned to one pointer");
    TAP_CHECK(varcache_build_set(&a, &b, buf, sizeof(buf)) == 0, "equal values need no SET");

    varcache_set(&a, app, "it's me");
    int n = varcache_build_set(&a, &b, buf, sizeof(buf));
    TAP_CHECK(n > 0, "differing value gives a SET");
    TAP_STR_EQ(buf, "SET application_name='it''s me';", "quote doubled in the literal");
    TAP_CHECK(varcache_same(&a, &b, app), "server takes the client's value optimistically");
    TAP_CHECK(varcache_build_set(&a, &b, buf, sizeof(buf)) == 0, "second build has nothing");

    varcache_set(&a, sp, "\"$user\", public");
    varcache_build_set(&a, &b, buf, sizeof(buf));
    TAP_STR_EQ(buf, "SET search_path=\"$user\", public;", "search_path is sent as a list");

    varcache_set(&a, tz, "Europe/Paris");
    TAP_CHECK(varcache_build_set(&a, &b, buf, 10) == -1, "too small a buffer is reported");
    TAP_CHECK(!varcache_same(&a, &b, tz), "a failed build leaves the server's values alone");

    varcache_set(&a, sp, "x; BEGIN");
    varcache_build_set(&a, &b, buf, sizeof(buf));
    TAP_STR_EQ(buf, "SET TimeZone='Europe/Paris';SET search_path='x; BEGIN';",
               "a search_path that is not an identifier list goes as one literal");
    varcache_set(&a, app, "a\\b'c");
    varcache_build_set(&a, &b, buf, sizeof(buf));
    TAP_STR_EQ(buf, "SET application_name=E'a\\\\b''c';", "backslashes use E'' quoting");
    varcache_set(&a, sp, "\"My \"\"Schema\"\"\" , public");
    varcache_build_set(&a, &b, buf, sizeof(buf));
    TAP_STR_EQ(buf, "SET search_path=\"My \"\"Schema\"\"\" , public;",
               "quoted identifiers stay as a list");

    struct varcache c;
    memset(&c, 0, sizeof(c));
    varcache_copy(&c, &a);
    TAP_STR_EQ(varcache_get(&c, tz), "Europe/Paris", "copy");
    varcache_clear(&a);
    TAP_STR_EQ(varcache_get(&c, tz), "Europe/Paris", "copy survives clearing the source");
    TAP_CHECK(varcache_get(&a, tz) == NULL, "cleared slot is unset");
    varcache_clear(&b);
    varcache_clear(&c);

    /* Many distinct values force the intern table to grow and reuse tombstones. */
    for (int i = 0; i < 2000; i++) {
        char v[32];
        snprintf(v, sizeof(v), "value-%d", i);
        varcache_set(&a, app, v);
    }
    TAP_STR_EQ(varcache_get(&a, app), "value-1999", "last of 2000 values kept");
    varcache_clear(&a);
    return tap_done();
}
