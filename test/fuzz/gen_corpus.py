#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Write the seed corpora of the libFuzzer drivers: test/fuzz/corpus/<driver>/.

Each seed is a small valid or edge-case input in the format the driver
documents at its top. Run it again after editing; the files are committed.
Crash inputs that were fixed live in corpus/<driver>/ too, under names
starting with "crash-", and are never removed by this script.
"""
import hashlib
import os
import struct
import sys

SEP = b"\x1e"  # FUZZ_SEP in fuzz.h
HERE = os.path.dirname(os.path.abspath(__file__))
UNIT_DATA = os.path.join(HERE, "..", "unit", "data")

RFC_CNONCE = b"rOprNGfwEbeRWgbNEkqO"
RFC_SNONCE = b"%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_CLIENT_FIRST = b"n,,n=user,r=" + RFC_CNONCE
RFC_SERVER_FIRST = b"r=" + RFC_CNONCE + RFC_SNONCE + b",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
RFC_CLIENT_FINAL = (b"c=biws,r=" + RFC_CNONCE + RFC_SNONCE +
                    b",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
RFC_SECRET = (b"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
              b"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=")


def startup_body(pairs, terminate=True):
    out = b""
    for k, v in pairs:
        out += k + b"\0" + v + b"\0"
    return out + (b"\0" if terminate else b"")


def msg(t, body):
    return t + struct.pack("!I", len(body) + 4) + body


def startup_packet(pairs, code=196608):
    body = struct.pack("!I", code) + startup_body(pairs)
    return struct.pack("!I", len(body) + 4) + body


def error_body(fields):
    return b"".join(c + v + b"\0" for c, v in fields) + b"\0"


def seeds_proto():
    return [
        startup_body([(b"user", b"alice"), (b"database", b"db")]),
        startup_body([(b"user", b"u"), (b"options", b"-c search_path=a\\ b --work-mem=64kB")]),
        startup_body([(b"options", b"  \\  a\\\\b\t-c\tx=y ")]),
        startup_body([(b"user", b"alice")], terminate=False),
        startup_body([(b"user", b"alice")]) + b"junk",
        b"user\0",
        b"\0",
        b"",
        error_body([(b"S", b"FATAL"), (b"V", b"FATAL"), (b"C", b"28P01"),
                    (b"M", b"password authentication failed")]),
        error_body([(b"S", b"ERROR"), (b"C", b"42601")])[:-1],
        b"M" + b"x" * 40,
        bytes(range(0, 60)),
    ]


def seeds_scram_server():
    return [
        RFC_CLIENT_FIRST + SEP + RFC_CLIENT_FINAL,
        RFC_CLIENT_FIRST + SEP + RFC_CLIENT_FINAL + SEP + RFC_SECRET,
        RFC_CLIENT_FIRST + SEP + RFC_CLIENT_FINAL.replace(b"p=dH", b"p=xH"),
        b"y,,n=,r=" + RFC_CNONCE + SEP + b"c=eSws,r=" + RFC_CNONCE + RFC_SNONCE + b",p=AAAA",
        b"p=tls-server-end-point,,n=,r=abc",
        b"n,a=admin,n=user,r=abc",
        b"n,,m=ext,n=user,r=abc",
        b"n,,n=user,r=",
        b"n,,n=user,r=abc,e=ext" + SEP + b"c=biws,r=abc,x=1,p=AAAA",
        RFC_CLIENT_FIRST + SEP + b"c=biws,r=" + RFC_CNONCE + RFC_SNONCE,
        RFC_CLIENT_FIRST + SEP + RFC_CLIENT_FINAL + SEP + b"SCRAM-SHA-256$1:c2FsdA==$AAAA:AAAA",
        b"n,,n=user,r=" + b"A" * 1100,
        b"",
    ]


def seeds_scram_client():
    return [
        RFC_SERVER_FIRST + SEP + RFC_SERVER_FINAL,
        RFC_SERVER_FIRST + SEP + b"e=invalid-proof",
        RFC_SERVER_FIRST + SEP + b"v=AAAA",
        b"r=" + RFC_CNONCE + b"X,s=c2FsdA==,i=1" + SEP + b"v=" + b"A" * 43 + b"=",
        b"r=" + RFC_CNONCE + b"X,s=c2FsdA==,i=16",
        b"r=" + RFC_CNONCE + b"X,s=c2FsdA==,i=1000001",
        b"r=" + RFC_CNONCE + b"X,s=c2FsdA==,i=4096,ext=1",
        b"r=" + RFC_CNONCE + b",s=c2FsdA==,i=4096",
        b"r=other,s=c2FsdA==,i=4096",
        b"m=ext,r=" + RFC_CNONCE + b"X,s=c2FsdA==,i=4096",
        b"r=" + RFC_CNONCE + b"X,s=!!!!,i=4096",
        b"",
    ]


def seeds_connstr():
    return [
        b"host=127.0.0.1 port=5432 dbname=app user=alice",
        b"host = /var/run/postgresql  dbname='my db' password='it''s'",
        b"pool_size=20 pool_mode=transaction max_user_connections=5",
        b"host=a,b,c port=5432,5433 load_balance_hosts=round-robin",
        b"connect_query='SELECT 1; SET x = ''y'''",
        b"dbname=''",
        b"dbname='unterminated",
        b"dbname='x'junk",
        b"=value",
        b"key",
        b"unknown=1",
        b"\t  ",
        b"",
    ]


def read_unit(name):
    try:
        with open(os.path.join(UNIT_DATA, name), "rb") as f:
            return f.read()
    except OSError:
        return None


def seeds_config():
    seeds = [
        b"[pgbouncer]\nlisten_port = 6432\nauth_type = md5\nauth_file = /x/userlist.txt\n"
        b"pool_mode = transaction\nmax_client_conn = 100\n\n[databases]\n"
        b"app = host=127.0.0.1 port=5432 dbname=app pool_size=10\n* = host=/tmp\n\n"
        b"[users]\nalice = pool_mode=session max_user_connections=3\n",
        b"; comment\n# comment\n[pgbouncer]\nserver_lifetime = 0.5\nunix_socket_mode = 0777\n"
        b"\"quoted key\" = 1\n",
        b"[pgbouncer]\n%include inc.ini\n" + SEP + b"[databases]\nx = dbname=y\n",
        b"[pgbouncer]\n%include inc.ini\n" + SEP + b"%include inc.ini\n",
        b"\xef\xbb\xbf[pgbouncer]\nlisten_addr = *\n[peers]\n1 = host=/tmp port=6432\n",
        b"[pgbouncer]\nlisten_port = 99999999999\n",
        b"[pgbouncer]\nauth_type = nonsense\n",
        b"[pgbouncer]\nunknown_key = 1\n",
        b"[databases]\npgbouncer = host=x\n",
        b"[pgbouncer\n",
        b"[pgbouncer]\n= value\n",
        b"[pgbouncer]\nlisten_port = 6432\0\n",
        b"",
    ]
    for name in ("full.ini", "full_include.ini"):
        data = read_unit(name)
        if data:
            seeds.append(data.replace(b"%include", b"%include_"))  # rewritten by the driver anyway
    return seeds


def seeds_hba():
    seeds = [
        b"local all all trust\nhost all all 127.0.0.1/32 md5\nhost all all ::1/128 scram-sha-256\n",
        b"hostssl db1,db2 alice,bob 10.0.0.0/8 cert map=m\nhostnossl all all 0.0.0.0/0 reject\n",
        b"host \"quoted db\" all 192.168.1.0 255.255.255.0 password\n",
        b"host @names @names all md5\n" + SEP + b"alice\nbob, carol\n\"dave\"\n",
        b"host @names all all md5\n" + SEP + b"@names\n",
        b"local sameuser all peer map=pm\n" + SEP + SEP + b"pm alice alice\npm root all\n",
        b"host replication repl 192.168.0.0/16 trust\n",
        b"host all +group all md5\n",
        b"host all all samehost md5\n",
        b"host all all 10.0.0.0/8 ldap ldapserver=x\n",
        b"include other.conf\n",
        b"host all all 10.0.0.1/33 md5\n",
        b"host all all ::ffff:10.0.0.0/104 md5\n",
        b"host \"unterminated all all md5\n",
        b"host a,,b all all md5\n",
        b"# comment only\n\n",
        b"",
    ]
    for name in ("hba/rules.conf",):
        data = read_unit(name)
        if data:
            seeds.append(data)
    return seeds


def seeds_authfile():
    return [
        b"\"alice\" \"secret\"\n\"bob\" \"md5" + hashlib.md5(b"pwbob").hexdigest().encode() + b"\"\n",
        b"\"pgbouncer\" \"" + RFC_SECRET + b"\"\n",
        b"; comment\n# comment\n\"user with space\" \"pa\"\"ss\" ignored fields\n",
        b"\"\"\"\" \"x\"\n",
        b"\"alice\" \"one\"\n\"alice\" \"two\"\n",
        b"\"alice\"\n",
        b"\"alice\" \"unterminated\n",
        b"alice secret\n",
        b"\"alice\" \"\"\n",
        b"\"alice\" \"x\"\0\n",
        b"",
    ]


def seeds_varcache():
    def op(slot, value, server=False):
        return bytes([slot | (0x80 if server else 0)]) + value
    return [
        SEP.join([b"IntervalStyle", op(0, b"UTF8"), op(2, b"Europe/Paris"), op(0, b"SQL_ASCII", True)]),
        SEP.join([b"", op(4, b"it's an app"), op(5, b"\"$user\", public")]),
        SEP.join([b"a, b,,c ,IntervalStyle", op(6, b"iso_8601"), op(7, b"x"), op(8, b"y")]),
        SEP.join([b"x" * 70, op(1, b"ISO, MDY"), op(1, b"ISO, MDY", True)]),
        SEP.join([b"", op(5, b""), op(4, b"")]),
        SEP.join([b"", op(4, b"back\\slash'quote")]),
        SEP.join([b",".join(b"p%d" % i for i in range(20))] + [op(i, b"v%d" % i) for i in range(16)]),
    ]


DRIVERS = {
    "proto": seeds_proto,
    "scram_server": seeds_scram_server,
    "scram_client": seeds_scram_client,
    "connstr": seeds_connstr,
    "config": seeds_config,
    "hba": seeds_hba,
    "authfile": seeds_authfile,
    "varcache": seeds_varcache,
}


def extra_drivers():
    """Seeds for the drivers that link the whole program (fuzz_core.c)."""
    def q(sql):
        return msg(b"Q", sql + b"\0")

    admin = [b"SHOW POOLS;", b"show  \"clients\"", b"SET default_pool_size = 20",
             b"set server_lifetime to '3600'", b"SET application_name = 'it''s'", b"PAUSE db1",
             b"SHUTDOWN WAIT_FOR_CLIENTS", b"select 1;", b"begin transaction", b"start transaction",
             b"KILL_CLIENT 12", b";;", b"", b"SHOW " + b"x" * 70, b"SET x = \"" + b"y" * 1100 + b"\"",
             b"SET x = 1.5e-3", b"SHOW \"\"\"\"", b"RELOAD;  ;"]
    http = [b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            b"HEAD /health/live HTTP/1.0\r\n\r\n",
            b"GET /health/ready HTTP/1.1\r\nConnection: close\r\n\r\n",
            b"GET /health HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n\r\nGET /nope HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nAuthorization: Basic YWxpY2U6c2VjcmV0\r\n\r\n",
            b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n", b"GET /\r\n\r\n", b"\r\n\r\nGET /health/live HTTP/1.1\n\n",
            b"GET /metrics?x=1 HTTP/1.1\r\n folded: x\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nX-" + b"a" * 9000 + b"\r\n\r\n"]
    su = startup_packet([(b"user", b"alice"), (b"database", b"db1")])
    sa = startup_packet([(b"user", b"stats"), (b"database", b"pgbouncer")])
    client = [
        su + q(b"SELECT 1") + msg(b"X", b""),
        sa + q(b"SHOW POOLS") + q(b"SHOW CLIENTS;") + q(b"SHOW CONFIG") + msg(b"X", b""),
        sa + msg(b"P", b"s1\0SHOW STATS\0\0\0") + msg(b"B", b"\0s1\0\0\0\0\0\0\0") +
        msg(b"D", b"P\0") + msg(b"E", b"\0\0\0\0\0") + msg(b"S", b""),
        struct.pack("!II", 8, 80877103) + su,
        struct.pack("!II", 8, 80877104) + su,
        struct.pack("!IIII", 16, 80877102, 1, 2),
        startup_packet([(b"user", b"alice"), (b"database", b"db1"),
                        (b"options", b"-c search_path=x --application-name=y"),
                        (b"application_name", b"psql"), (b"client_encoding", b"UTF8")]),
        startup_packet([(b"user", b"alice")], code=0x00030001),
        startup_packet([(b"user", b"alice"), (b"replication", b"true")]),
        struct.pack("!I", 3),
        struct.pack("!I", 100000) + b"\0\3\0\0",
        sa + q(b"SET x = 1") + q(b"PAUSE") + msg(b"X", b""),
    ]
    return {"admin": admin, "http": http, "client": client}


def main():
    out = os.path.join(HERE, "corpus")
    wanted = set(sys.argv[1:])
    sets = {name: fn() for name, fn in DRIVERS.items()}
    sets.update(extra_drivers())
    for name, seeds in sets.items():
        if wanted and name not in wanted:
            continue
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if f.startswith("seed-"):
                os.unlink(os.path.join(d, f))
        for i, s in enumerate(seeds):
            with open(os.path.join(d, "seed-%02d" % i), "wb") as f:
                f.write(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
