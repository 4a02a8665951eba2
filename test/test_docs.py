"""The man pages document every key of the code, and are current.

The key list is read from src/config.c here, independently of doc/genman.py,
so a bug in the generator's parser cannot hide a missing key:
  * every [pgbouncer] key of the key table has an entry in pgmux.ini(5), with
    the table's default and "needs a restart" exactly when it is not reloadable;
  * every [databases] / [users] / [peers] parameter has an entry;
  * every command-line option of src/main.c is in pgmux(1);
  * doc/pgmux.1 and doc/pgmux.ini.5 are what doc/genman.py makes now;
  * groff formats them without warnings.

    /usr/bin/python3 -m pytest --noconftest test/test_docs.py
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "doc")
CONFIG_C = os.path.join(ROOT, "src", "config.c")
MAIN_C = os.path.join(ROOT, "src", "main.c")

sys.path.insert(0, DOC)
import genman  # noqa: E402


def table_keys():
    """(name, default, reloadable) of each row of config_key_table, read by regex."""
    text = open(CONFIG_C).read()
    body = re.search(r"config_key_table\[\] = \{(.*?)\n\};", text, re.S).group(1)
    rows = []
    for m in re.finditer(r"^\s*(KEY|INT|BOOL|TIME|STR|XINT|XSTR)\((\w+),\s*(.*)\),\s*$", body, re.M):
        macro, name, rest = m.groups()
        if macro == "KEY":
            rest = rest.split(",", 1)[1]  # drop the type
        default_expr, after = re.match(r'\s*("(?:[^"\\]|\\.)*"|\w+)\s*,\s*(\w+)', rest).groups()
        rows.append((name, default_expr, after == "R"))
    assert len(rows) > 50, "the key table was not found"
    return rows


def entry_keys(table):
    text = open(CONFIG_C).read()
    body = re.search(r"%s\[\] = \{(.*?)\n\};" % table, text, re.S).group(1)
    names = re.findall(r'^\s*(?:DBF|USF|PEF)\((\w+),', body, re.M) + re.findall(r'^\s*\{"(\w+)",', body, re.M)
    assert names
    return names


def long_options():
    return re.findall(r'\{"([\w-]+)",\s*\w+_argument,\s*NULL,\s*\'\w\'\}', open(MAIN_C).read())


def man(name):
    return open(os.path.join(DOC, name)).read()


def entry_tags(page):
    """{name: tag line} for every .TP item of a generated page."""
    lines = page.splitlines()
    tags = {}
    for i, line in enumerate(lines[:-1]):
        if line == ".TP":
            tag = lines[i + 1]
            for name in re.findall(r"\\fB(?:\\%)?([\w.\-\\]+?)\\fR", tag):
                tags.setdefault(name.replace("\\-", "-"), tag)
    return tags


KEYS = table_keys()


@pytest.mark.parametrize("name,default_expr,reloadable", KEYS, ids=[k[0] for k in KEYS])
def test_pgbouncer_key_documented(name, default_expr, reloadable):
    page = man("pgmux.ini.5")
    tags = entry_tags(page[page.index('.SH "[pgbouncer]"'):])
    assert name in tags, "[pgbouncer] key %s has no entry in pgmux.ini(5): add '@key %s' to doc/manual.txt" % (name, name)
    tag = tags[name]
    assert ("needs a restart" in tag) == (not reloadable), tag
    if default_expr.startswith('"'):
        default = default_expr[1:-1]
        if default:
            shown = default.replace("\\", "\\e").replace("-", "\\-")
            assert "default \\fB%s\\fR" % shown in tag, tag
        else:
            assert "default empty" in tag, tag


@pytest.mark.parametrize(
    "table,page_section",
    [("config_db_fields", "[databases]"), ("config_user_fields", "[users]"), ("config_peer_fields", "[peers]")],
)
def test_entry_parameters_documented(table, page_section):
    page = man("pgmux.ini.5")
    start = page.index('.SH "%s"' % page_section)
    end = page.index(".SH", start + 4)
    tags = entry_tags(page[start:end])
    missing = [n for n in entry_keys(table) if n not in tags]
    assert not missing, "%s parameters missing from pgmux.ini(5): %s" % (page_section, missing)


def test_options_documented():
    page = man("pgmux.1")
    opts = long_options()
    assert "daemon" in opts and "user" in opts
    for o in opts:
        assert "\\fB\\-\\-%s" % o.replace("-", "\\-") in page, "--%s missing from pgmux(1)" % o


def test_signals_documented():
    page = man("pgmux.1")
    text = open(MAIN_C).read()
    handled = set(re.findall(r"case (SIG[A-Z0-9]+):", text))
    assert {"SIGHUP", "SIGTERM", "SIGINT"} <= handled
    for sig in handled:
        assert "\\fB%s\\fR" % sig in page, "%s is handled in main.c but not in pgmux(1) SIGNALS" % sig


def test_no_undocumented_or_unknown_entries():
    pages, problems = genman.generate()
    assert problems == []


def test_generator_reads_the_same_keys():
    assert [k["name"] for k in genman.config_keys()] == [k[0] for k in KEYS]


def test_pages_are_current():
    pages, _ = genman.generate()
    assert set(pages) == {"pgmux.1", "pgmux.ini.5"}
    for name, text in pages.items():
        assert man(name) == text, "doc/%s is out of date: run doc/genman.py and commit the result" % name


def test_generator_refuses_a_missing_key(tmp_path):
    source = open(os.path.join(DOC, "manual.txt")).read()
    broken = re.sub(r"^@key listen_port\n.*?\n\n", "", source, flags=re.S | re.M)
    assert broken != source
    _, problems = genman.render(
        broken,
        genman.config_keys(),
        genman.entry_fields("config_db_fields"),
        genman.entry_fields("config_user_fields"),
        genman.entry_fields("config_peer_fields"),
        genman.cli_options(),
        "test",
    )
    assert any("listen_port is not documented" in p for p in problems), problems


def test_generator_refuses_an_unknown_key():
    source = open(os.path.join(DOC, "manual.txt")).read() + "\n@key no_such_key\nText.\n"
    _, problems = genman.render(
        source,
        genman.config_keys(),
        genman.entry_fields("config_db_fields"),
        genman.entry_fields("config_user_fields"),
        genman.entry_fields("config_peer_fields"),
        genman.cli_options(),
        "test",
    )
    assert any("no_such_key is not in src/config.c" in p for p in problems), problems


@pytest.mark.parametrize("name", ["pgmux.1", "pgmux.ini.5"])
def test_groff_has_no_warnings(name):
    if not shutil.which("groff"):
        pytest.skip("groff not installed")
    p = subprocess.run(["groff", "-man", "-ww", "-z", os.path.join(DOC, name)], capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr == "", p.stderr
