#!/usr/bin/env python3
"""The number crunching of tests/bench/e2e.sh (standard library only, except `plot`).

  e2e_report.py count RECORD FIRST LAST
      ids in FIRST..=LAST found in a siem-sink --record file: {"unique", "copies", "missing",
      "missing_ranges"} (copies = lines of those ids beyond the first of each)
  e2e_report.py latency MESSAGES T0_NS SERIES_CSV
      reads a siem-sink --messages file (`<arrival ns> <conn opened ns> <syslog message>`), keeps
      the messages relay-load wrote (APP-NAME relay-load), and takes for each
      latency = arrival ns at the sink - the RFC 5424 timestamp relay-load wrote into it (ms);
      writes one row per second since T0_NS (second, received, p50_ms, p99_ms) and prints the
      whole phase's figures as JSON
  e2e_report.py vmstat FILE
      mean us/sy/id/wa/st of the samples of a `vmstat -n 1` output (the first sample, the average
      since boot, is left out), as JSON
  e2e_report.py add RESULTS KEY=VALUE... [--json FILE]...
      appends one result (values parsed as JSON when they are, strings otherwise; --json merges
      an object from a file) to the JSONL file RESULTS and prints it as one figure line
  e2e_report.py summary RESULTS
      min / median / max of every figure per system over the runs, as text and a Markdown table
  e2e_report.py plot RESULTS_DIR PNG
      throughput and latency over time of every series-*.csv in RESULTS_DIR (needs matplotlib)
"""

import calendar
import csv
import glob
import json
import math
import os
import statistics
import sys
import time

SYSTEMS = ["siem-relay", "rsyslog-memory", "rsyslog-disk"]
LABELS = {
    "siem-relay": "siem-relay (3 nodes, Raft)",
    "rsyslog-memory": 'rsyslog, memory queue (LinkedList)',
    "rsyslog-disk": 'rsyslog, disk queue (checkpointInterval=1)',
}
COLOURS = {"siem-relay": "tab:blue", "rsyslog-memory": "tab:orange", "rsyslog-disk": "tab:green"}


def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list (p in 0..100)."""
    if not sorted_values:
        return None
    k = max(0, math.ceil(p / 100.0 * len(sorted_values)) - 1)
    return sorted_values[k]


def cmd_count(path, first, last):
    first, last = int(first), int(last)
    n = max(0, last - first + 1)
    seen = bytearray(n)
    copies = 0
    if os.path.exists(path):
        with open(path, "rb") as f:
            for line in f:
                try:
                    i = int(line) - first
                except ValueError:
                    continue
                if 0 <= i < n:
                    if seen[i]:
                        copies += 1
                    else:
                        seen[i] = 1
    unique = sum(seen)
    ranges, start = [], None
    for i in range(n + 1):
        missing = i < n and not seen[i]
        if missing and start is None:
            start = i
        elif not missing and start is not None:
            ranges.append(f"{first + start}-{first + i - 1}" if i - 1 > start else str(first + start))
            start = None
    print(json.dumps({"unique": unique, "copies": copies, "missing": n - unique,
                      "missing_ranges": ranges[:10] + (["..."] if len(ranges) > 10 else [])}))


_second_cache = {}


def header_ms(ts):
    """Epoch ms of an RFC 5424 timestamp `2026-11-29T10:15:43.120Z` (UTC, as relay-load writes)."""
    head = ts[:19]
    s = _second_cache.get(head)
    if s is None:
        s = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
        _second_cache[head] = s
    frac = ts[20:23] if len(ts) > 20 and ts[19] == "." else "0"
    return s * 1000 + int(frac)


STEADY_FROM_S = 5


def censored_percentile(sorted_values, unarrived, p):
    """Percentile over the arrivals plus `unarrived` alerts counted as slower than all of them;
    None when it falls among those."""
    n = len(sorted_values) + unarrived
    if n == 0:
        return None
    k = max(0, math.ceil(p / 100.0 * n) - 1)
    return sorted_values[k] if k < len(sorted_values) else None


def cmd_latency(path, t0_ns, series_csv, unarrived="0"):
    t0_ns, unarrived = int(t0_ns), int(unarrived)
    t0_ms = t0_ns / 1e6
    per_second = {}
    all_ms, steady_ms = [], []
    last_ns = None
    skipped = 0
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for line in f:
            # <arrival ns> <conn ns> <PRI>1 TIMESTAMP HOSTNAME APP-NAME ...
            parts = line.split(" ", 6)
            if len(parts) < 7 or parts[5] != "relay-load":
                skipped += 1
                continue
            try:
                at_ns = int(parts[0])
                sent_ms = header_ms(parts[3])
            except (ValueError, IndexError):
                skipped += 1
                continue
            if at_ns < t0_ns:  # the warm-up alert
                skipped += 1
                continue
            lat = at_ns / 1e6 - sent_ms
            all_ms.append(lat)
            if sent_ms >= t0_ms + STEADY_FROM_S * 1000:
                steady_ms.append(lat)
            sec = (at_ns - t0_ns) // 1_000_000_000
            per_second.setdefault(sec, []).append(lat)
            last_ns = at_ns if last_ns is None else max(last_ns, at_ns)
    with open(series_csv, "w", newline="") as out:
        w = csv.writer(out)
        w.writerow(["second", "received", "p50_ms", "p99_ms"])
        if per_second:
            for sec in range(0, max(per_second) + 1):
                v = sorted(per_second.get(sec, []))
                w.writerow([sec, len(v),
                            "" if not v else f"{percentile(v, 50):.1f}",
                            "" if not v else f"{percentile(v, 99):.1f}"])
    all_ms.sort()
    steady_ms.sort()
    result = {"arrivals": len(all_ms), "other_messages": skipped, "unarrived": unarrived,
              "last_arrival_s": None if last_ns is None else (last_ns - t0_ns) / 1e9}
    for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9), ("max", 100)):
        v = censored_percentile(all_ms, unarrived, p)
        result[f"lat_{name}_ms"] = None if v is None else round(v, 1)
    for name, p in (("p50", 50), ("p99", 99)):
        v = censored_percentile(steady_ms, unarrived, p)
        result[f"lat_steady_{name}_ms"] = None if v is None else round(v, 1)
    print(json.dumps(result))


def cmd_vmstat(path):
    cols, rows = None, []
    with open(path) as f:
        for line in f:
            fields = line.split()
            if not fields:
                continue
            if fields[0] == "r":
                cols = fields
                continue
            if cols is None or not fields[0].isdigit():
                continue
            rows.append(dict(zip(cols, fields)))
    rows = rows[1:]  # the first sample is the average since boot
    out = {"samples": len(rows)}
    for k in ("us", "sy", "id", "wa", "st"):
        vals = [int(r[k]) for r in rows if k in r]
        out[k] = round(statistics.mean(vals)) if vals else None
    print(json.dumps(out))


def rate_text(rate):
    return "flat out" if str(rate) in ("0", "0/s") else rate


def vm_text(v):
    if not v:
        return "?"
    return f"us {v.get('us')} sy {v.get('sy')} id {v.get('id')} st {v.get('st')}"


def lat_text(r, key):
    v = r.get(key)
    return f"> {r.get('drain_wait_s')} s (not arrived)" if v is None else f"{v}"


def figure_line(r):
    head = f"[{r['system']} {r['phase']} run {r['run']}]"
    if r["phase"] == "load":
        rss = ", ".join(f"{k} {v} MiB" for k, v in r.get("peak_rss_mib", {}).items())
        body = (f"received {r.get('received_per_s')} alerts/s ({r.get('unique')} of {r.get('sent')} sent"
                f"{'' if r.get('sent_per_s') is None else ' at %s/s' % r.get('sent_per_s')}, "
                f"not arrived {r.get('missing')}, copies {r.get('copies')}); latency send->sink ms "
                f"p50 {lat_text(r, 'lat_p50_ms')} p90 {lat_text(r, 'lat_p90_ms')} "
                f"p99 {lat_text(r, 'lat_p99_ms')} max {lat_text(r, 'lat_max_ms')}, sent from "
                f"{STEADY_FROM_S} s on: p50 {lat_text(r, 'lat_steady_p50_ms')} "
                f"p99 {lat_text(r, 'lat_steady_p99_ms')}; CPU {r.get('cpu_s_per_100k')} s per 100k "
                f"({r.get('cpu_s')} s); peak RSS {rss}")
        if r.get("append_timeouts") is not None:
            body += f"; append timeouts {r.get('append_timeouts')}"
        if r.get("not_drained"):
            body += (f"; NOT ALL ARRIVED: gave up {r.get('drain_wait_s')} s after the load "
                     f"(not-arrived alerts count as slower than every arrival)")
    else:
        body = (f"sent {r.get('sent')}, received unique {r.get('unique')}, lost {r.get('missing')} "
                f"{r.get('missing_ranges')}, duplicates {r.get('copies')}; sink SIGKILLed at "
                f"{r.get('kill_at_s')} s, back on the same port after {r.get('down_s')} s")
        if r.get("not_drained"):
            body += f" (the count stopped growing; waited {r.get('drain_wait_s')} s after the load)"
    load = r.get("load", {})
    tail = (f" | load {rate_text(load.get('rate'))} x {load.get('seconds')} s, {load.get('size')} B, batch "
            f"{load.get('batch')}, {load.get('connections')} TCP connections | vmstat before "
            f"{vm_text(r.get('vmstat_before'))}, during {vm_text(r.get('vmstat_during'))} | commit "
            f"{r.get('commit')} | {r.get('command')}")
    return head + " " + body + tail


def cmd_add(results, args):
    r = {}
    it = iter(args)
    for a in it:
        if a == "--json":
            with open(next(it)) as f:
                r.update(json.load(f))
            continue
        k, _, v = a.partition("=")
        try:
            r[k] = json.loads(v)
        except ValueError:
            r[k] = v
    with open(results, "a") as f:
        f.write(json.dumps(r) + "\n")
    print(figure_line(r))


def spread(values):
    """(min, median, max); None (not arrived) counts as infinite."""
    values = [math.inf if v is None else v for v in values]
    if not values:
        return None
    values.sort()
    return (values[0], values[(len(values) - 1) // 2] if len(values) % 2 else
            (values[len(values) // 2 - 1] + values[len(values) // 2]) / 2, values[-1])


def fmt(s, digits=0, inf_text="not arrived"):
    if s is None:
        return "n/a"
    f = (lambda v: inf_text if v == math.inf else f"{v:,.{digits}f}")
    return f"{f(s[0])} / {f(s[1])} / {f(s[2])}"


def range_text(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "?"
    return f"{min(vals)}" if min(vals) == max(vals) else f"{min(vals)}-{max(vals)}"


def vm_range(rows, key):
    parts = []
    for k in ("us", "sy", "id", "st"):
        parts.append(f"{k} {range_text([(r.get(key) or {}).get(k) for r in rows])}")
    return " ".join(parts)


def cmd_summary(results):
    rows = [json.loads(l) for l in open(results) if l.strip()]
    if not rows:
        print("no results")
        return
    first = rows[0]
    commits = ", ".join(sorted({str(r.get("commit")) for r in rows}))
    command = first.get("command")
    print(f"== summary: min / median / max over the runs | commit {commits} | {command}")
    table = []
    for system in SYSTEMS:
        lr = [r for r in rows if r["system"] == system and r["phase"] == "load"]
        kr = [r for r in rows if r["system"] == system and r["phase"] == "kill"]
        if lr:
            ld = lr[0]["load"]
            tail = (f" | load {rate_text(ld.get('rate'))} x {ld.get('seconds')} s, {ld.get('size')} B | vmstat "
                    f"before {vm_range(lr, 'vmstat_before')}, during {vm_range(lr, 'vmstat_during')} "
                    f"| commit {commits} | {command}")
            f = {k: spread([r.get(k) for r in lr]) for k in (
                "sent_per_s", "received_per_s", "lat_p50_ms", "lat_p90_ms", "lat_p99_ms", "lat_max_ms",
                "lat_steady_p50_ms", "lat_steady_p99_ms", "cpu_s_per_100k", "missing")}
            cens = f"> {min(r.get('drain_wait_s') or 0 for r in lr)} s"
            rss = spread([max(r.get("peak_rss_mib", {}).values() or [0]) for r in lr])
            rss_all = spread([sum(r.get("peak_rss_mib", {}).values()) for r in lr])
            print(f"{system}, load ({len(lr)} runs): sent/s {fmt(f['sent_per_s'])}, received/s "
                  f"{fmt(f['received_per_s'])}; latency ms "
                  f"p50 {fmt(f['lat_p50_ms'], 1, cens)}, p90 {fmt(f['lat_p90_ms'], 1, cens)}, p99 "
                  f"{fmt(f['lat_p99_ms'], 1, cens)}, max {fmt(f['lat_max_ms'], 1, cens)}; sent from "
                  f"{STEADY_FROM_S} s on: p50 {fmt(f['lat_steady_p50_ms'], 1, cens)}, p99 "
                  f"{fmt(f['lat_steady_p99_ms'], 1, cens)}; CPU-s per 100k {fmt(f['cpu_s_per_100k'], 2)}; "
                  f"peak RSS MiB largest process {fmt(rss)}, all processes {fmt(rss_all)}; not arrived "
                  f"{fmt(f['missing'])}{tail}")
            table.append((system, f, rss, rss_all, lr, cens))
        if kr:
            kd = kr[0]["load"]
            ktail = (f" | load {rate_text(kd.get('rate'))} x {kd.get('seconds')} s, {kd.get('size')} B | vmstat "
                     f"before {vm_range(kr, 'vmstat_before')}, during {vm_range(kr, 'vmstat_during')} "
                     f"| commit {commits} | {command}")
            print(f"{system}, SIEM killed ({len(kr)} runs): lost {fmt(spread([r.get('missing') for r in kr]))} "
                  f"(per run {[r.get('missing') for r in kr]} of {[r.get('sent') for r in kr]} sent), "
                  f"duplicates {fmt(spread([r.get('copies') for r in kr]))} (per run "
                  f"{[r.get('copies') for r in kr]}){ktail}")
    if table:
        print()
        print("| system | sent/s | received/s | latency p50 ms | latency p99 ms | latency max ms | "
              f"p99 ms, sent from {STEADY_FROM_S} s on | CPU-s per 100k | peak RSS MiB, largest process | "
              "peak RSS MiB, all | vmstat during (us sy id st) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for system, f, rss, rss_all, lr, cens in table:
            print(f"| {system} | {fmt(f['sent_per_s'])} | {fmt(f['received_per_s'])} | {fmt(f['lat_p50_ms'], 1, cens)} | "
                  f"{fmt(f['lat_p99_ms'], 1, cens)} | {fmt(f['lat_max_ms'], 1, cens)} | "
                  f"{fmt(f['lat_steady_p99_ms'], 1, cens)} | {fmt(f['cpu_s_per_100k'], 2)} | {fmt(rss)} | "
                  f"{fmt(rss_all)} | {vm_range(lr, 'vmstat_during')} |")
    kill_rows = [(s, [r for r in rows if r["system"] == s and r["phase"] == "kill"]) for s in SYSTEMS]
    kill_rows = [(s, kr) for s, kr in kill_rows if kr]
    if kill_rows:
        print()
        print("| system | SIEM killed: sent per run | lost per run | duplicates per run | vmstat during (us sy id st) |")
        print("|---|---|---|---|---|")
        for s, kr in kill_rows:
            print(f"| {s} | {', '.join(str(r.get('sent')) for r in kr)} | "
                  f"{', '.join(str(r.get('missing')) for r in kr)} | "
                  f"{', '.join(str(r.get('copies')) for r in kr)} | {vm_range(kr, 'vmstat_during')} |")


def cmd_plot(results_dir, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rx, ax_lat) = plt.subplots(2, 1, figsize=(13, 8), sharex=True)
    info = ""
    rows_path = os.path.join(results_dir, "results.jsonl")
    if os.path.exists(rows_path):
        rows = [json.loads(l) for l in open(rows_path) if l.strip()]
        lr = [r for r in rows if r["phase"] == "load"]
        if lr:
            ld = lr[0]["load"]
            info = (f"relay-load, CEF over syslog TCP, {rate_text(ld.get('rate'))} for {ld.get('seconds')} s, "
                    f"{ld.get('size')} B payload, {ld.get('connections')} connections; commit "
                    f"{lr[0].get('commit')}; {max(r['run'] for r in lr)} run(s) each")
    for system in SYSTEMS:
        files = sorted(glob.glob(os.path.join(results_dir, f"series-{system}-run*.csv")))
        for n, path in enumerate(files):
            secs, rx, p50, p99 = [], [], [], []
            with open(path) as f:
                for row in csv.DictReader(f):
                    secs.append(int(row["second"]) + 0.5)
                    rx.append(int(row["received"]))
                    p50.append(float(row["p50_ms"]) if row["p50_ms"] else float("nan"))
                    p99.append(float(row["p99_ms"]) if row["p99_ms"] else float("nan"))
            label = LABELS[system] if n == 0 else None
            c = COLOURS[system]
            ax_rx.plot(secs, rx, color=c, alpha=0.8, lw=1.2, label=label)
            ax_lat.plot(secs, p50, color=c, alpha=0.8, lw=1.2, label=(label + ", p50") if label else None)
            ax_lat.plot(secs, p99, color=c, alpha=0.8, lw=1.0, ls="--",
                        label=(label + ", p99") if label else None)
    ax_rx.set_ylabel("alerts received by the SIEM sink per second")
    ax_rx.set_title("Throughput over time (each run one line)")
    ax_rx.grid(True, alpha=0.3)
    ax_rx.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax_lat.set_yscale("log")
    ax_lat.set_ylabel("latency send -> sink, ms (log)")
    ax_lat.set_xlabel("seconds since the load started (by arrival at the sink)")
    ax_lat.set_title("Latency over time: p50 (solid) and p99 (dashed) of each second")
    ax_lat.grid(True, which="both", alpha=0.3)
    ax_lat.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.suptitle("siem-relay beside rsyslog, end to end on one 2-vCPU machine\n" + info, fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f"plot: {png}")


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "count":
        cmd_count(*args)
    elif cmd == "latency":
        cmd_latency(*args)
    elif cmd == "vmstat":
        cmd_vmstat(*args)
    elif cmd == "add":
        cmd_add(args[0], args[1:])
    elif cmd == "summary":
        cmd_summary(*args)
    elif cmd == "plot":
        cmd_plot(*args)
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
