#!/usr/bin/env python3
"""Helpers for contrib/bench/run.sh (Python 3 standard library only).

  benchlib.py ports N                       print N free TCP ports on 127.0.0.1
  benchlib.py sample PID OUT                every 0.1 s append "epoch cpu_ticks" of PID to OUT
  benchlib.py analyze RESULTS KEY=VALUE...  add one pgbench run to RESULTS (JSON lines)
  benchlib.py idle RESULTS KEY=VALUE...     add one idle-clients measurement to RESULTS
  benchlib.py report DIR OUT.md             print the tables, write them as markdown to OUT.md

analyze keys: target, workload, round, out (pgbench stdout+stderr), rc (pgbench exit code),
logs (prefix of pgbench -l files), samples (sampler output, optional), error (optional: the run
counts as failed with this reason, e.g. a failed TLS check).
report reads from DIR: meta.tsv (key TAB value), targets.tsv (key label status log why),
workloads.tsv (key title args), results.jsonl, idle.jsonl.
"""
import glob
import json
import os
import re
import socket
import statistics
import sys
import time

CLK_TCK = os.sysconf('SC_CLK_TCK')
NOT_TLS = {'forwarder'}     # targets the tls_ workloads leave out (run.sh TLS_TARGETS)


def cmd_ports(n):
    socks = []
    for _ in range(int(n)):
        s = socket.socket()
        s.bind(('127.0.0.1', 0))
        socks.append(s)
    print(' '.join(str(s.getsockname()[1]) for s in socks))


def cpu_ticks(pid):
    with open('/proc/%s/stat' % pid) as f:
        rest = f.read().rpartition(')')[2].split()
    return int(rest[11]) + int(rest[12])     # utime + stime (fields 14, 15), all threads


def cmd_sample(pid, out):
    with open(out, 'w', buffering=1) as f:
        while True:
            try:
                f.write('%.4f %d\n' % (time.time(), cpu_ticks(pid)))
            except OSError:
                return
            time.sleep(0.1)


def cpu_at(samples, t):
    """CPU ticks at epoch t, interpolated between samples; None if t is outside them."""
    for (t0, c0), (t1, c1) in zip(samples, samples[1:]):
        if t0 <= t <= t1:
            return c0 + (c1 - c0) * ((t - t0) / (t1 - t0) if t1 > t0 else 0)
    return None


def cmd_analyze(results, *kv):
    a = dict(x.split('=', 1) for x in kv)
    r = {'target': a['target'], 'workload': a['workload'], 'round': int(a['round']),
         'out': a['out'], 'ok': False}
    try:
        text = open(a['out'], errors='replace').read()
    except OSError:
        text = ''
    m = re.search(r'^tps = ([0-9.]+)', text, re.M)
    n = re.search(r'^number of transactions actually processed: (\d+)', text, re.M)
    f = re.search(r'^number of failed transactions: (\d+)', text, re.M)
    lat = re.search(r'^latency average = ([0-9.]+) ms', text, re.M)
    r['failed_tx'] = int(f.group(1)) if f else None
    if a.get('error'):
        r['error'] = a['error'][:200]
    elif a.get('rc') != '0' or not m or not n:
        err = [l for l in text.splitlines() if 'error' in l.lower() or 'abort' in l.lower()]
        r['error'] = (err[0] if err else 'pgbench exit code %s' % a.get('rc'))[:200]
    else:
        r.update(ok=True, tps=float(m.group(1)), tx=int(n.group(1)),
                 lat_avg_ms=float(lat.group(1)) if lat else None)
    # per-transaction logs: client tx_no latency_us script_no epoch_s epoch_us [...]
    lats, t_first, t_last = [], None, None
    for path in glob.glob(a['logs'] + '.*'):
        with open(path) as fh:
            for line in fh:
                p = line.split()
                if len(p) < 6 or not p[2].isdigit():
                    continue            # failed / skipped transactions
                us = int(p[2])
                end = int(p[4]) + int(p[5]) / 1e6
                lats.append(us)
                start = end - us / 1e6
                t_first = start if t_first is None or start < t_first else t_first
                t_last = end if t_last is None or end > t_last else t_last
        os.unlink(path)
    if lats:
        lats.sort()
        r['p99_ms'] = lats[min(len(lats) - 1, int(len(lats) * 0.99))] / 1000
        r['logged_tx'] = len(lats)
        if r.get('lat_avg_ms') is None:
            r['lat_avg_ms'] = sum(lats) / len(lats) / 1000
    # pooler CPU over the timed window (first transaction start .. last transaction end)
    if a.get('samples') and lats and os.path.exists(a['samples']):
        samples = []
        for line in open(a['samples']):
            p = line.split()
            if len(p) == 2:
                samples.append((float(p[0]), int(p[1])))
        c0, c1 = cpu_at(samples, t_first), cpu_at(samples, t_last)
        if c0 is not None and c1 is not None:
            r['cpu_us_per_tx'] = (c1 - c0) / CLK_TCK * 1e6 / len(lats)
            r['cpu_util'] = (c1 - c0) / CLK_TCK / (t_last - t_first)
        if samples:
            r['cpu_s_total'] = (samples[-1][1] - samples[0][1]) / CLK_TCK
    with open(results, 'a') as fh:
        fh.write(json.dumps(r) + '\n')
    status = 'tps=%.0f p99=%.2fms cpu=%sus/tx' % (r['tps'], r.get('p99_ms', 0), '%.1f' % r['cpu_us_per_tx'] if 'cpu_us_per_tx' in r else '-') if r['ok'] else 'FAILED: ' + r['error']
    print(status)


def cmd_idle(results, *kv):
    a = dict(x.split('=', 1) for x in kv)
    for k in ('connected', 'failed', 'rss_before_kb', 'rss_after_kb'):
        if k in a:
            a[k] = int(a[k])
    if 'seconds' in a:
        a['seconds'] = float(a['seconds'])
    with open(results, 'a') as fh:
        fh.write(json.dumps(a) + '\n')


def read_tsv(path, n):
    rows = []
    if os.path.exists(path):
        for line in open(path):
            p = line.rstrip('\n').split('\t')
            rows.append(p + [''] * (n - len(p)))
    return rows


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec):
    return '-' if x is None else format(x, spec)


def ratio(a, b):
    return '-' if a is None or b is None or b == 0 else '%.2fx' % (a / b)


def cmd_report(d, out_md):
    meta = dict(read_tsv(os.path.join(d, 'meta.tsv'), 2))
    meta['seconds'], meta['rounds'] = int(meta['seconds']), int(meta['rounds'])
    targets = [dict(zip(('key', 'label', 'status', 'log', 'why'), r))
               for r in read_tsv(os.path.join(d, 'targets.tsv'), 5)]
    meta['workloads'] = [dict(zip(('key', 'title', 'args'), r))
                         for r in read_tsv(os.path.join(d, 'workloads.tsv'), 3)]
    runs, mem = [], []
    for name, into in (('results.jsonl', runs), ('idle.jsonl', mem)):
        if os.path.exists(os.path.join(d, name)):
            into.extend(json.loads(l) for l in open(os.path.join(d, name)))
    label = {t['key']: t['label'] for t in targets}
    txt, md = [], []

    def both(line, mdline=None):
        txt.append(line)
        md.append(line if mdline is None else mdline)

    both('pgmux benchmark  %s' % meta['date'], '# pgmux benchmark, %s' % meta['date'])
    for k in ('host', 'postgres', 'config', 'load', 'pgmux', 'tls'):
        if k == 'tls' and k not in meta:
            continue
        both('%-9s %s' % (k + ':', meta.get(k, '')), '- %s: %s' % (k, meta.get(k, '')))
    for t in targets:
        if t['status'] != 'ok':
            both('%s: failed: %s (see %s)' % (t['key'], t['why'], t['log']),
                 '- **%s: failed**: %s (see `%s`)' % (t['key'], t['why'], t['log']))
    both('')
    hdr = ['target', 'TPS', 'spread', 'lat avg ms', 'p99 ms', 'CPU us/tx', 'CPU util', 'runs']
    for w in meta['workloads']:
        wk = w['key']
        both('== %s  (%s; %d s x %d rounds)' % (w['title'], w['args'], meta['seconds'], meta['rounds']),
             '## %s\n\n`pgbench %s`, %d s x %d rounds, medians over rounds\n' % (w['title'], w['args'], meta['seconds'], meta['rounds']))
        rows, agg = [], {}
        tls = wk.startswith('tls_')
        for t in targets:
            if tls and t['key'] in NOT_TLS:
                continue
            rs = [r for r in runs if r['workload'] == wk and r['target'] == t['key']]
            good = [r for r in rs if r['ok']]
            if t['status'] != 'ok' and not good:
                rows.append([t['label'], '%s: failed (see %s)' % (t['key'], t['log'])])
                continue
            if not good:
                why = rs[0]['error'] if rs else 'not run'
                rows.append([t['label'], 'failed: %s (see %s)' % (why, rs[0]['out'] if rs else t['log'])])
                continue
            tps = [r['tps'] for r in good]
            m = {'tps': med(tps), 'lat': med([r.get('lat_avg_ms') for r in good]),
                 'p99': med([r.get('p99_ms') for r in good]),
                 'cpu': med([r.get('cpu_us_per_tx') for r in good]),
                 'util': med([r.get('cpu_util') for r in good])}
            agg[t['key']] = m
            spread = (max(tps) - min(tps)) / m['tps'] * 100 if len(tps) > 1 else None
            bad = len(rs) - len(good)
            rows.append([t['label'], fmt(m['tps'], '.0f'), '-' if spread is None else '%.1f%%' % spread,
                         fmt(m['lat'], '.3f'), fmt(m['p99'], '.3f'), fmt(m['cpu'], '.1f'),
                         '-' if m['util'] is None else '%.0f%%' % (m['util'] * 100),
                         '%d' % len(good) + (' (%d failed)' % bad if bad else '')])
        widths = [max([len(hdr[i])] + [len(r[i]) for r in rows if len(r) == len(hdr)]) for i in range(len(hdr))]
        txt.append('  '.join(h.ljust(widths[i]) for i, h in enumerate(hdr)))
        md.append('| ' + ' | '.join(hdr) + ' |')
        md.append('|' + '---|' * len(hdr))
        for r in rows:
            if len(r) == len(hdr):
                txt.append('  '.join(c.ljust(widths[i]) for i, c in enumerate(r)))
                md.append('| ' + ' | '.join(r) + ' |')
            else:
                txt.append(r[0].ljust(widths[0]) + '  ' + r[1])
                md.append('| ' + r[0] + ' | ' + r[1] + ' |' + ' |' * (len(hdr) - 2))
        # ratios against the references, with the DESIGN.md goals
        lines = []
        # TLS: issue 4's goals (at least PgBouncer's TPS, at most its CPU per transaction)
        tps_goal = 1.0 if tls else 1.2 if wk.startswith('connect') else 1.1
        cpu_goal = 1.0 if tls else 0.75
        pm = agg.get('pgmux')
        for ref in ('pgbouncer-new', 'pgbouncer-deb'):
            if ref not in agg:
                continue
            if pm:
                lines.append('pgmux / %s: TPS %s (goal >= %.2fx), CPU/tx %s (goal <= %.2fx), p99 %s' % (
                    label[ref], ratio(pm['tps'], agg[ref]['tps']), tps_goal,
                    ratio(pm['cpu'], agg[ref]['cpu']), cpu_goal, ratio(pm['p99'], agg[ref]['p99'])))
        if tls and pm and 'direct' in agg:
            lines.append('pgmux / direct PG: TPS %s, p99 %s' % (ratio(pm['tps'], agg['direct']['tps']),
                                                               ratio(pm['p99'], agg['direct']['p99'])))
        if pm and 'forwarder' in agg:
            lines.append('pgmux / forwarder: CPU/tx %s (goal <= 1.05x)' % ratio(pm['cpu'], agg['forwarder']['cpu']))
        if not pm and any(t['key'] == 'pgmux' for t in targets):
            lines.append('pgmux: failed (see %s)' % next(t['log'] for t in targets if t['key'] == 'pgmux'))
        if 'pgbouncer-new' in agg and 'pgbouncer-deb' in agg:
            lines.append('%s / %s: TPS %s, CPU/tx %s' % (label['pgbouncer-new'], label['pgbouncer-deb'],
                         ratio(agg['pgbouncer-new']['tps'], agg['pgbouncer-deb']['tps']),
                         ratio(agg['pgbouncer-new']['cpu'], agg['pgbouncer-deb']['cpu'])))
        for ref in ('pgbouncer-new', 'pgbouncer-deb'):
            if ref in agg and 'forwarder' in agg:
                lines.append('%s / forwarder: CPU/tx %s' % (label[ref], ratio(agg[ref]['cpu'], agg['forwarder']['cpu'])))
        both('')
        for l in lines:
            txt.append('  ' + l)
            md.append('- ' + l)
        both('')
    # memory
    if mem:
        both('== RSS per idle client (%d logged-in idle clients per pooler)' % int(meta['idle_clients']),
             '## RSS per idle client\n\n%d logged-in idle clients (libpq, SCRAM) per pooler; VmRSS delta / clients\n' % int(meta['idle_clients']))
        hdr = ['target', 'connected', 'RSS before KiB', 'RSS after KiB', 'bytes/client', 'login s']
        md.append('| ' + ' | '.join(hdr) + ' |')
        md.append('|' + '---|' * len(hdr))
        rows = []
        for m in mem:
            if m.get('error'):
                rows.append([label.get(m['target'], m['target']), '%s: failed (%s; see %s)' % (m['target'], m['error'], m['log'])])
                continue
            per = (m['rss_after_kb'] - m['rss_before_kb']) * 1024 / m['connected'] if m['connected'] else None
            rows.append([label.get(m['target'], m['target']), str(m['connected']) + ('' if not m['failed'] else ' (%d failed)' % m['failed']),
                         str(m['rss_before_kb']), str(m['rss_after_kb']), fmt(per, '.0f'), fmt(m.get('seconds'), '.1f')])
        widths = [max([len(hdr[i])] + [len(r[i]) for r in rows if len(r) == len(hdr)]) for i in range(len(hdr))]
        txt.append('  '.join(h.ljust(widths[i]) for i, h in enumerate(hdr)))
        for r in rows:
            if len(r) == len(hdr):
                txt.append('  '.join(c.ljust(widths[i]) for i, c in enumerate(r)))
                md.append('| ' + ' | '.join(r) + ' |')
            else:
                txt.append(r[0].ljust(widths[0]) + '  ' + r[1])
                md.append('| ' + r[0] + ' | ' + r[1] + ' |' + ' |' * (len(hdr) - 2))
        both('')
        per = {m['target']: (m['rss_after_kb'] - m['rss_before_kb']) * 1024 / m['connected']
               for m in mem if not m.get('error') and m.get('connected')}
        lines = ['pgmux / %s: %s' % (label[ref], ratio(per['pgmux'], per[ref]))
                 for ref in ('pgbouncer-new', 'pgbouncer-deb') if 'pgmux' in per and ref in per]
        for l in lines + ['goal: pgmux <= 1024 bytes per idle client']:
            txt.append('  ' + l)
            md.append('- ' + l)
    print('\n'.join(txt))
    os.makedirs(os.path.dirname(os.path.abspath(out_md)), exist_ok=True)
    with open(out_md, 'w') as f:
        f.write('\n'.join(md) + '\n')


if __name__ == '__main__':
    cmds = {'ports': cmd_ports, 'sample': cmd_sample, 'analyze': cmd_analyze, 'idle': cmd_idle,
            'report': cmd_report}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])
