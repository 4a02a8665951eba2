#!/usr/bin/python3
# SPDX-License-Identifier: ISC
"""Generate the man pages pgmux(1) and pgmux.ini(5) from doc/manual.txt and the code.

One source, doc/manual.txt, holds the prose of both pages. What the code
defines comes from the code, so the pages cannot drift from it:

  * every [pgbouncer] key, its type, default, range, whether it needs a restart
    and whether it is a pgmux extension: the key table in src/config.c;
  * the keys of [databases], [users] and [peers] entries: the field tables
    config_db_fields / config_user_fields / config_peer_fields in src/config.c;
  * the command-line options: the getopt table in src/main.c;
  * the version: meson.build.

The generator refuses to write anything when a key or option of the code has
no description in manual.txt, or when manual.txt describes one the code does
not have. test/test_docs.py runs the same checks and compares the committed
pages with a fresh generation.

Usage: doc/genman.py [--check] [OUTDIR]
  OUTDIR defaults to doc/. --check writes nothing and exits 1 when the
  committed pages differ from what would be generated.

manual.txt markup (one directive per line, starting with @):
  @page NAME SECTION DESCRIPTION   start a page (.TH and the NAME section)
  @section TITLE / @subsection TITLE
  @item TERM                       a tagged paragraph; TERM in bold
  @option SHORT LONG [ARG]         a command-line option (checked against main.c)
  @key NAME                        a [pgbouncer] key: type and default are added
  @dbkey NAME[, ALIAS] / @userkey NAME / @peerkey NAME
  @pp                              back to the left margin after items
  @# ...                           a comment
Text: blank lines separate paragraphs; a line indented by 4 spaces is example
text (kept as is); "- " starts a bullet; `code` is bold, *word* italic.
"""

import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


# ---------------------------------------------------------------------------------------------
# What the code defines


def _split_args(s):
    """Split a C macro argument list on top-level commas (strings kept whole)."""
    out, cur, depth, i = [], "", 0, 0
    while i < len(s):
        c = s[i]
        if c == '"':
            j = i + 1
            while s[j] != '"':
                j += 2 if s[j] == "\\" else 1
            cur += s[i : j + 1]
            i = j + 1
            continue
        if c in "(":
            depth += 1
        elif c == ")":
            depth -= 1
        if c == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += c
        i += 1
    if cur.strip():
        out.append(cur.strip())
    return out


def _c_string(expr, defines):
    """The value of a C string expression: adjacent literals or a #define of them."""
    expr = expr.strip()
    if expr in defines:
        expr = defines[expr]
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', expr)
    return "".join(p.encode().decode("unicode_escape") for p in parts)


def _defines(text):
    out = {}
    for m in re.finditer(r"^#define\s+(\w+)\s+((?:.*\\\n)*.*)$", text, re.M):
        out[m.group(1)] = m.group(2).replace("\\\n", " ")
    return out


def config_keys(path=os.path.join(ROOT, "src", "config.c")):
    """[pgbouncer] keys in table order: dicts with name, type, default, reload, ext, min, max."""
    text = open(path).read()
    defines = _defines(text)
    m = re.search(r"config_key_table\[\]\s*=\s*\{(.*?)\n\};", text, re.S)
    if not m:
        raise SystemExit("genman: the key table was not found in %s" % path)
    keys = []
    for line in m.group(1).splitlines():
        line = line.strip()
        mm = re.match(r"(KEY|INT|BOOL|TIME|STR|XINT|XSTR)\((.*)\),?$", line)
        if not mm:
            if line and not line.startswith("/*") and not line.startswith("*"):
                raise SystemExit("genman: cannot read key table line: %s" % line)
            continue
        macro, args = mm.group(1), _split_args(mm.group(2))
        k = {"name": args[0], "ext": macro.startswith("X"), "min": None, "max": None}
        if macro == "KEY":
            k["type"] = args[1]
            k["default"] = _c_string(args[2], defines)
            k["reload"] = args[3] == "R"
            k["ext"] = args[4] == "true"
            if k["type"] in ("CFG_INT", "CFG_OCTAL"):
                k["min"], k["max"] = args[5], args[6]
        else:
            k["type"] = {"INT": "CFG_INT", "XINT": "CFG_INT", "BOOL": "CFG_BOOL", "TIME": "CFG_TIME"}.get(
                macro, "CFG_STRING"
            )
            k["default"] = _c_string(args[1], defines)
            k["reload"] = args[2] == "R"
            if macro in ("INT", "XINT"):
                k["min"], k["max"] = args[3], args[4]
        keys.append(k)
    return keys


def entry_fields(table, path=os.path.join(ROOT, "src", "config.c")):
    """Field names and kinds of config_db_fields / config_user_fields / config_peer_fields."""
    text = open(path).read()
    m = re.search(r"%s\[\]\s*=\s*\{(.*?)\n\};" % re.escape(table), text, re.S)
    if not m:
        raise SystemExit("genman: %s was not found in %s" % (table, path))
    out = []
    for line in m.group(1).splitlines():
        line = line.strip()
        mm = re.match(r"(?:DBF|USF|PEF)\((\w+),\s*(\w+)", line) or re.match(r'\{"(\w+)",\s*(\w+)', line)
        if mm:
            out.append((mm.group(1), mm.group(2)))
    if not out:
        raise SystemExit("genman: no fields in %s" % table)
    return out


def cli_options(path=os.path.join(ROOT, "src", "main.c")):
    """(short, long, takes_argument) from main()'s getopt_long table."""
    text = open(path).read()
    out = []
    for long_, arg, short in re.findall(r'\{"([\w-]+)",\s*(no_argument|required_argument|optional_argument),\s*NULL,\s*\'(\w)\'\}', text):
        out.append(("-" + short, "--" + long_, arg != "no_argument"))
    if not out:
        raise SystemExit("genman: no getopt table in %s" % path)
    return out


def version(path=os.path.join(ROOT, "meson.build")):
    m = re.search(r"version:\s*'([^']+)'", open(path).read())
    return m.group(1) if m else "unknown"


# ---------------------------------------------------------------------------------------------
# Rendering

ENUMS = {
    "CFG_POOL_MODE": "session, transaction or statement",
    "CFG_AUTH_TYPE": "any, trust, plain, md5, scram-sha-256, cert or hba",
    "CFG_SSLMODE": "disable, allow, prefer, require, verify-ca or verify-full",
}
ENTRY_KINDS = {
    "ENTRY_STR": "string",
    "ENTRY_INT": "integer",
    "ENTRY_PORT": "port",
    "ENTRY_SECS": "seconds",
    "ENTRY_POOL_MODE": "session, transaction or statement",
    "ENTRY_LB": "round-robin or disable",
}


def esc(s):
    """Escape text for roff (backslashes; a leading dot or quote is handled per line)."""
    return s.replace("\\", "\\e")


def inline(s, code_dashes=True):
    """`code` -> bold, *x* -> italic; escapes the rest."""
    out = []
    for i, part in enumerate(re.split(r"(`[^`]+`)", s)):
        if i % 2:
            body = esc(part[1:-1])
            if code_dashes:
                body = body.replace("-", "\\-")
            out.append("\\fB\\%%%s\\fR" % body)  # \\% : never hyphenate code
        else:
            part = esc(part)
            part = re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])", r"\\fI\1\\fR", part)
            out.append(part)
    return "".join(out)


def line_safe(s):
    return "\\&" + s if s.startswith((".", "'")) else s


def key_meta(k):
    t = k["type"]
    if t == "CFG_INT":
        lo, hi = k["min"], k["max"]
        if hi == "INT_MAX":
            kind = "integer" if lo == "0" else "integer, at least %s" % lo
        else:
            kind = "integer, %s to %s" % (lo, hi)
    elif t == "CFG_OCTAL":
        kind = "octal mode"
    elif t == "CFG_BOOL":
        kind = "boolean, 0 or 1"
    elif t == "CFG_TIME":
        kind = "seconds"
    elif t == "CFG_STRING":
        kind = "string"
    else:
        kind = ENUMS[t]
    d = k["default"]
    default = "empty" if d == "" else "\\fB%s\\fR" % esc(d).replace("-", "\\-")
    parts = [kind, "default " + default]
    if not k["reload"]:
        parts.append("needs a restart")
    if k["ext"]:
        parts.append("pgmux extension")
    return "; ".join(parts)


class Page:
    def __init__(self, name, section, description, ver):
        self.name, self.section = name, section
        self.lines = [
            '.\\" Generated by doc/genman.py from doc/manual.txt and src/; do not edit.',
            '.TH "%s" "%s" "" "pgmux %s" "pgmux manual"' % (name.upper(), section, ver),
            ".SH NAME",
            "%s \\- %s" % (esc(name).replace("-", "\\-"), esc(description)),
        ]

    def text(self):
        return "\n".join(self.lines) + "\n"


def render(source, keys, db_fields, user_fields, peer_fields, options, ver):
    """Render manual.txt; returns ({filename: text}, problems)."""
    key_by_name = {k["name"]: k for k in keys}
    field_tables = {"dbkey": dict(db_fields), "userkey": dict(user_fields), "peerkey": dict(peer_fields)}
    documented = {"key": [], "dbkey": [], "userkey": [], "peerkey": [], "option": []}
    problems = []
    pages, page = [], None
    in_item = False  # inside a .TP item: later paragraphs use .IP
    para = []  # pending paragraph lines

    def flush():
        nonlocal para
        if not para:
            return
        out = page.lines
        i = 0
        started = False
        while i < len(para):
            ln = para[i]
            if ln.startswith("    "):
                block = []
                while i < len(para) and (para[i].startswith("    ") or para[i] == ""):
                    block.append(para[i][4:])
                    i += 1
                out += [".RS 4" if not in_item else ".RS", ".nf"]
                out += [line_safe(esc(b)) for b in block]
                out += [".fi", ".RE"]
                started = True
                continue
            if ln.startswith("- "):
                items = []
                while i < len(para) and (para[i].startswith("- ") or para[i].startswith("  ")):
                    if para[i].startswith("- "):
                        items.append(para[i][2:])
                    else:
                        items[-1] += " " + para[i].strip()
                    i += 1
                if in_item:
                    out.append(".RS")
                for it in items:
                    out += [".IP \\(bu 2", line_safe(inline(it))]
                if in_item:
                    out.append(".RE")
                started = True
                continue
            text = []
            while i < len(para) and not para[i].startswith(("    ", "- ")):
                text.append(para[i])
                i += 1
            if started or not item_first[0]:
                out.append(".IP" if in_item else ".PP")
            item_first[0] = False
            out.append(line_safe(inline(" ".join(t.strip() for t in text))))
            started = True
        para = []
        item_first[0] = False

    item_first = [False]  # the first paragraph of an item follows its tag directly

    for n, raw in enumerate(source.splitlines(), 1):
        if raw.startswith("@#"):
            continue
        if raw.startswith("@"):
            flush()
            directive, _, arg = raw[1:].partition(" ")
            arg = arg.strip()
            if directive == "page":
                name, section, desc = arg.split(" ", 2)
                page = Page(name, section, desc, ver)
                pages.append(page)
                in_item = False
            elif directive == "section":
                page.lines.append('.SH "%s"' % esc(arg))
                in_item = False
            elif directive == "subsection":
                page.lines.append('.SS "%s"' % esc(arg))
                in_item = False
            elif directive == "pp":
                page.lines.append(".PP")
                in_item = False
            elif directive == "item":
                page.lines += [".TP", line_safe("\\fB%s\\fR" % inline(arg).replace("-", "\\-"))]
                in_item, item_first[0] = True, True
            elif directive == "option":
                parts = arg.split()
                short, long_ = parts[0], parts[1]
                argname = parts[2] if len(parts) > 2 else None
                documented["option"].append((short, long_, argname is not None))
                if argname:
                    tag = "\\fB%s\\fR \\fI%s\\fR, \\fB%s=\\fR\\fI%s\\fR" % (
                        short.replace("-", "\\-"), argname, long_.replace("-", "\\-"), argname)
                else:
                    tag = "\\fB%s\\fR, \\fB%s\\fR" % (short.replace("-", "\\-"), long_.replace("-", "\\-"))
                page.lines += [".TP", tag]
                in_item, item_first[0] = True, True
            elif directive == "key":
                documented["key"].append(arg)
                k = key_by_name.get(arg)
                if not k:
                    problems.append("manual.txt:%d: @key %s is not in src/config.c's key table" % (n, arg))
                    meta = "unknown key"
                else:
                    meta = key_meta(k)
                page.lines += [".TP", "\\fB\\%%%s\\fR (%s)" % (esc(arg), meta)]
                in_item, item_first[0] = True, True
            elif directive in field_tables:
                names = [a.strip() for a in arg.split(",")]
                kinds = []
                for a in names:
                    documented[directive].append(a)
                    if a not in field_tables[directive]:
                        problems.append("manual.txt:%d: @%s %s is not a field in src/config.c" % (n, directive, a))
                    else:
                        kinds.append(ENTRY_KINDS.get(field_tables[directive][a], "string"))
                tag = ", ".join("\\fB%s\\fR" % esc(a) for a in names)
                if kinds:
                    tag += " (%s)" % kinds[0]
                page.lines += [".TP", tag]
                in_item, item_first[0] = True, True
            else:
                problems.append("manual.txt:%d: unknown directive @%s" % (n, directive))
            continue
        if page is None:
            if raw.strip():
                problems.append("manual.txt:%d: text before the first @page" % n)
            continue
        if raw.strip() == "" and not (para and para[-1].startswith("    ")):
            flush()
        elif raw.strip() == "":
            para.append("")
        else:
            para.append(raw.rstrip())
    flush()

    # Every key, field and option of the code described exactly once, and nothing else.
    def compare(kind, want, label):
        got = documented[kind]
        for w in want:
            c = got.count(w)
            if c == 0:
                problems.append("%s %s is not documented in doc/manual.txt (@%s %s)" % (label, w, kind, w))
            elif c > 1:
                problems.append("%s %s is documented %d times" % (label, w, c))

    compare("key", [k["name"] for k in keys], "[pgbouncer] key")
    compare("dbkey", [f for f, _ in db_fields], "[databases] parameter")
    compare("userkey", [f for f, _ in user_fields], "[users] parameter")
    compare("peerkey", [f for f, _ in peer_fields], "[peers] parameter")
    for short, long_, takes in options:
        match = [o for o in documented["option"] if o[1] == long_]
        if not match:
            problems.append("option %s/%s is not documented in doc/manual.txt (@option)" % (short, long_))
        elif match[0][0] != short or match[0][2] != takes:
            problems.append("option %s is documented as %s%s" % (long_, match[0][0], " ARG" if match[0][2] else ""))
    for short, long_, _ in documented["option"]:
        if long_ not in [o[1] for o in options]:
            problems.append("option %s is documented but not in src/main.c" % long_)

    return {"%s.%s" % (p.name, p.section): p.text() for p in pages}, problems


def generate():
    source = open(os.path.join(HERE, "manual.txt")).read()
    return render(
        source,
        config_keys(),
        entry_fields("config_db_fields"),
        entry_fields("config_user_fields"),
        entry_fields("config_peer_fields"),
        cli_options(),
        version(),
    )


def main(argv):
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    outdir = args[0] if args else HERE
    pages, problems = generate()
    for p in problems:
        print("genman: " + p, file=sys.stderr)
    if problems:
        return 1
    if check:
        stale = []
        for name, text in pages.items():
            path = os.path.join(outdir, name)
            if not os.path.exists(path) or open(path).read() != text:
                stale.append(name)
        if stale:
            print("genman: out of date: %s (run doc/genman.py)" % ", ".join(stale), file=sys.stderr)
            return 1
        return 0
    os.makedirs(outdir, exist_ok=True)
    for name, text in pages.items():
        with open(os.path.join(outdir, name), "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
