#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Write the seed corpora of the libFuzzer drivers: test/fuzz/corpus/<driver>/.

Each seed is a small valid or edge-case input in the format the driver
documents at its top. Run it again after editing; the files are committed.
Crash inputs that were fixed live in corpus/<driver>/ too, under names
starting with "crash-", and are never removed by this script.
"""
import base64
import hashlib
import hmac
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


def scram_server_side(password, cnonce, snonce, salt, iterations):
    """server-first and server-final for pgmux's client-first "n,,n=,r=<cnonce>" (RFC 5802)."""
    nonce = cnonce + snonce
    server_first = b"r=" + nonce + b",s=" + base64.b64encode(salt) + b",i=%d" % iterations
    salted = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    auth_message = b"n=,r=" + cnonce + b"," + server_first + b",c=biws,r=" + nonce
    signature = hmac.new(server_key, auth_message, "sha256").digest()
    return server_first, b"v=" + base64.b64encode(signature)


def seeds_server():
    """fuzz_server: scenario byte, then steps ('S' server bytes, 'C' client bytes, 'X', 'K')."""
    ALICE, SESSION, STMT, CQ, APPNAME, ERIN, FRANK, NOPW = range(8)

    def auth(code, body=b""):
        return msg(b"R", struct.pack("!I", code) + body)

    def param(k, v):
        return msg(b"S", k + b"\0" + v + b"\0")

    def rfq(status=b"I"):
        return msg(b"Z", status)

    def cc(tag):
        return msg(b"C", tag + b"\0")

    def q(sql):
        return msg(b"Q", sql + b"\0")

    def err(sev, code, text):
        return msg(b"E", error_body([(b"S", sev), (b"V", sev), (b"C", code), (b"M", text)]))

    rowdesc = msg(b"T", struct.pack("!H", 1) + b"?column?\0" + struct.pack("!IHIhih", 0, 0, 23, 4, -1, 0))
    datarow = msg(b"D", struct.pack("!HI", 1, 1) + b"1")
    params = (param(b"server_version", b"15.8") + param(b"client_encoding", b"UTF8") +
              param(b"DateStyle", b"ISO, MDY") + param(b"TimeZone", b"UTC") +
              param(b"standard_conforming_strings", b"on") + param(b"IntervalStyle", b"postgres") +
              param(b"integer_datetimes", b"on"))
    login_tail = params + msg(b"K", struct.pack("!II", 4242, 0x12345678)) + rfq()
    login = auth(0) + login_tail
    select1 = rowdesc + datarow + cc(b"SELECT 1") + rfq()

    def steps(scenario, *parts):
        return SEP.join([bytes([scenario])] + list(parts))

    salt = b"0123456789abcdef"
    sfirst, sfinal = scram_server_side(b"secret", RFC_CNONCE, b"SRVNONCE", salt, 16)
    parse = msg(b"P", b"s1\0SELECT $1::int\0" + struct.pack("!HI", 1, 23))
    bind = msg(b"B", b"\0s1\0" + struct.pack("!HHI", 0, 1, 1) + b"7" + struct.pack("!H", 0))
    describe = msg(b"D", b"P\0")
    execute = msg(b"E", b"\0" + struct.pack("!I", 0))
    sync = msg(b"S", b"")
    ext = parse + bind + describe + execute + sync
    # pgmux sends Close + Parse of its own statement name for a client's Parse: the
    # CloseComplete is its own (dropped), the ParseComplete the client's.
    ext_answer = (msg(b"3", b"") + msg(b"1", b"") + msg(b"2", b"") + rowdesc +
                  msg(b"D", struct.pack("!HI", 1, 1) + b"7") + cc(b"SELECT 1") + rfq())
    return [
        # login variants
        steps(ALICE, b"S" + login, b"C" + q(b"SELECT 1"), b"S" + select1, b"C" + msg(b"X", b"")),
        steps(ALICE, b"S" + auth(3), b"S" + login, b"C" + q(b"SELECT 1"), b"S" + select1),
        steps(ALICE, b"S" + auth(5, b"salt"), b"S" + login, b"C" + q(b"SELECT 1"), b"S" + select1),
        steps(ERIN, b"S" + auth(5, b"\x01\x02\x03\x04"), b"S" + login),
        steps(ERIN, b"S" + auth(3)),
        steps(FRANK, b"S" + auth(10, b"SCRAM-SHA-256\0\0")),
        steps(NOPW, b"S" + auth(5, b"salt")),
        steps(ALICE, b"S" + auth(10, b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"), b"S" + auth(11, sfirst),
              b"S" + auth(12, sfinal) + login, b"C" + q(b"SELECT 1"), b"S" + select1),
        steps(ALICE, b"S" + auth(10, b"SCRAM-SHA-256\0\0"), b"S" + auth(11, sfirst), b"S" + auth(12, b"v=AAAA")),
        steps(ALICE, b"S" + auth(10, b"SCRAM-SHA-256\0\0") + auth(11, b"r=x,s=c2FsdA==,i=1")),
        steps(ALICE, b"S" + auth(12, b"v=x")),
        steps(ALICE, b"S" + auth(7)),
        steps(ALICE, b"S" + err(b"FATAL", b"28P01", b"password authentication failed for user \"alice\"")),
        steps(ALICE, b"S" + err(b"FATAL", b"57P03", b"the database system is starting up")),
        steps(ALICE, b"S" + msg(b"v", struct.pack("!II", 0, 1) + b"_pq_.x\0") + msg(b"N", error_body([(b"M", b"hi")])) + login,
              b"C" + q(b"SELECT 1"), b"S" + select1),
        steps(ALICE, b"S" + auth(0) + param(b"x" * 5000, b"y") + rfq(), b"C" + q(b"SELECT 1"), b"S" + select1),
        steps(ALICE, b"S" + auth(0) + msg(b"K", b"short") + rfq()),
        steps(ALICE, b"S" + auth(0) + msg(b"D", b"")),
        steps(ALICE, b"S" + b"R\0\0\0\3"),
        steps(ALICE, b"K"),
        # linked phase
        steps(ALICE, b"S" + login, b"C" + q(b"BEGIN"), b"S" + cc(b"BEGIN") + rfq(b"T"), b"C" + q(b"SELECT 1"),
              b"S" + select1[:-6] + rfq(b"T"), b"C" + q(b"COMMIT"), b"S" + cc(b"COMMIT") + rfq()),
        steps(ALICE, b"S" + login, b"C" + q(b"SELECT 1/0"),
              b"S" + err(b"ERROR", b"22012", b"division by zero") + rfq()),
        steps(ALICE, b"S" + login, b"C" + q(b"COPY t FROM STDIN"), b"S" + msg(b"G", struct.pack("!bHH", 0, 1, 0)),
              b"C" + msg(b"d", b"1\n") + msg(b"c", b""), b"S" + cc(b"COPY 1") + rfq()),
        steps(ALICE, b"S" + login, b"C" + q(b"COPY t TO STDOUT"),
              b"S" + msg(b"H", struct.pack("!bHH", 0, 1, 0)) + msg(b"d", b"1\n") + msg(b"c", b"") + cc(b"COPY 1") + rfq()),
        steps(ALICE, b"S" + login, b"C" + q(b"SELECT 1"), b"S" + rowdesc + msg(b"D", struct.pack("!HI", 1, 9000) + b"x" * 9000)
              + cc(b"SELECT 1") + rfq()),
        steps(ALICE, b"S" + login, b"C" + q(b"SELECT 1"), b"S" + rowdesc + datarow, b"K"),
        steps(ALICE, b"S" + login, b"C" + q(b"SELECT 1"), b"S" + rowdesc, b"X", b"S" + datarow + cc(b"SELECT 1") + rfq()),
        steps(ALICE, b"S" + login, b"C" + q(b"SET application_name = 'x'"),
              b"S" + cc(b"SET") + param(b"application_name", b"x") + rfq()),
        steps(ALICE, b"S" + login, b"C" + q(b"LISTEN x"), b"S" + cc(b"LISTEN") + rfq(),
              b"S" + msg(b"A", struct.pack("!I", 1) + b"x\0\0")),
        steps(ALICE, b"S" + login, b"S" + msg(b"N", error_body([(b"M", b"idle notice")])), b"S" + select1),
        steps(ALICE, b"S" + login, b"C" + ext, b"S" + ext_answer, b"C" + bind + execute + sync,
              b"S" + msg(b"2", b"") + datarow + cc(b"SELECT 1") + rfq()),
        steps(ALICE, b"S" + login, b"C" + ext, b"S" + msg(b"3", b"") + err(b"ERROR", b"42601", b"syntax error") + rfq()),
        # the statement on a new server: pgmux slips a Parse in front of the Bind
        steps(ALICE, b"S" + login, b"C" + ext, b"S" + ext_answer, b"K", b"C" + bind + execute + sync,
              b"S" + login, b"S" + msg(b"3", b"") + msg(b"1", b"") + msg(b"2", b"") + datarow + cc(b"SELECT 1") + rfq()),
        steps(ALICE, b"S" + login, b"C" + ext, b"S" + ext_answer, b"K", b"C" + bind + execute + sync,
              b"S" + login, b"S" + msg(b"3", b"") + err(b"ERROR", b"42P01", b"relation does not exist") + rfq()),
        # a COPY behind pipelined Syncs
        steps(ALICE, b"S" + login, b"C" + msg(b"P", b"\0COPY t FROM STDIN\0\0\0") + msg(b"B", b"\0\0\0\0\0\0\0\0") +
              execute + sync + sync, b"S" + msg(b"1", b"") + msg(b"2", b"") + msg(b"G", struct.pack("!bHH", 0, 1, 0)),
              b"C" + msg(b"d", b"1\n") + msg(b"c", b"") + sync, b"S" + cc(b"COPY 1") + rfq()),
        steps(ALICE, b"S" + login, b"C" + ext + q(b"DISCARD ALL"), b"S" + ext_answer + cc(b"DISCARD ALL") + rfq()),
        steps(ALICE, b"S" + login, b"C" + msg(b"C", b"Ss1\0") + sync, b"S" + msg(b"3", b"") + rfq()),
        steps(STMT, b"S" + login, b"C" + q(b"BEGIN"), b"S" + cc(b"BEGIN") + rfq(b"T")),
        # internal queries
        steps(CQ, b"S" + login, b"S" + select1, b"C" + q(b"SELECT 1"), b"S" + select1),
        steps(CQ, b"S" + login, b"S" + err(b"ERROR", b"42P01", b"no such table") + rfq()),
        steps(CQ, b"S" + login, b"S" + cc(b"BEGIN") + rfq(b"T")),
        steps(APPNAME, b"S" + login, b"C" + q(b"SELECT 1"), b"S" + cc(b"SET") + param(b"application_name", b"fuzz") + rfq(),
              b"S" + select1),
        steps(APPNAME, b"S" + login, b"C" + q(b"SELECT 1"), b"S" + err(b"ERROR", b"22023", b"invalid value") + rfq()),
        steps(SESSION, b"S" + login, b"C" + q(b"SELECT 1"), b"S" + select1, b"X", b"S" + cc(b"DISCARD ALL") + rfq()),
        steps(SESSION, b"S" + login, b"C" + q(b"SELECT 1"), b"S" + select1, b"X", b"S" + err(b"ERROR", b"0A000", b"no") + rfq()),
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
    "server": seeds_server,
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
