#!/usr/bin/env python3
"""Reads the JSON lines of `cargo run -p cef --example catalogue_samples` on stdin and checks that
two third-party CEF parsers read every message back to the same header and the same values, with
no key missing, added, or bleeding into another:

- pycef (PyPI), a regex parser that returns values still escaped: they are unescaped here by the
  CEF rules before comparing, and its `csNLabel` folding is applied to the expectation;
- liblognorm's `cef` parser (Debian's liblognorm-utils, the parser behind rsyslog's mmnormalize),
  which unescapes values itself. Version 2.0.6 drops the first byte after the header's last `|`
  (it expects a space there), so its first key is compared without its first letter.

Exit code 0 if every message passes, 1 otherwise; prints one line per parser with counts.
"""
import json
import re
import subprocess
import sys

import pycef


def unescape(value):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), value)


def pycef_expectation(expected):
    out = dict(expected)
    for key in list(out):
        if key.endswith("Label") and key[:-5] in out:
            out[out[key]] = out.pop(key[:-5])
            del out[key]
    return out


def main():
    samples = [json.loads(line) for line in sys.stdin if line.strip()]
    for s in samples:
        keys = [k for k, _ in s["expected"]]
        if len(keys) != len(set(keys)):
            print(f"FAIL {s['type']}: a key appears twice in the sample")
            return 1
    if not samples:
        print("FAIL no samples on stdin")
        return 1
    failures = []
    header_keys = ["DeviceVendor", "DeviceProduct", "DeviceVersion", "DeviceEventClassID", "Name", "Severity"]

    for s in samples:
        got = pycef.parse(s["cef"])
        if got is None:
            failures.append(f"pycef: {s['type']}: not parsed")
            continue
        header = [got.get(k) for k in header_keys]
        if header != s["header"]:
            failures.append(f"pycef: {s['type']}: header {header} != {s['header']}")
        skip = set(header_keys) | {"DeviceName", "DeviceSeverity", "CEFVersion"}
        # pycef leaves escapes in place, also in a label it turned into a key.
        values = {unescape(k): unescape(v) for k, v in got.items() if k not in skip}
        want = pycef_expectation(dict(s["expected"]))
        if values != want:
            failures.append(f"pycef: {s['type']}: values differ:\n  got  {values}\n  want {want}")
    print(f"pycef: {len(samples)} messages, {sum(f.startswith('pycef') for f in failures)} failures")

    rulebase = "/tmp/siem-relay-cef.rb"
    with open(rulebase, "w") as f:
        f.write("version=2\nrule=:%cef:cef%\n")
    text = "".join(s["cef"] + "\n" for s in samples)
    out = subprocess.run(["lognormalizer", "-r", rulebase, "-e", "json"], input=text.encode(),
                         capture_output=True, check=True).stdout.decode()
    results = [json.loads(line) for line in out.splitlines() if line.strip()]
    if len(results) != len(samples):
        failures.append(f"liblognorm: {len(results)} results for {len(samples)} messages")
    for s, r in zip(samples, results):
        cef = r.get("cef")
        if cef is None:
            failures.append(f"liblognorm: {s['type']}: not parsed: {r}")
            continue
        header = [cef.get(k) for k in ["DeviceVendor", "DeviceProduct", "DeviceVersion", "SignatureID", "Name", "Severity"]]
        if header != s["header"]:
            failures.append(f"liblognorm: {s['type']}: header {header} != {s['header']}")
        pairs = s["expected"]
        want = {(k[1:] if i == 0 else k): v for i, (k, v) in enumerate(pairs)}
        if cef.get("Extensions") != want:
            failures.append(f"liblognorm: {s['type']}: values differ:\n  got  {cef.get('Extensions')}\n  want {want}")
    print(f"liblognorm: {len(results)} messages, {sum(f.startswith('liblognorm') for f in failures)} failures")

    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
