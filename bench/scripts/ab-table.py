#!/usr/bin/env python3
"""Medians per case of the runs bench/scripts/ab-trees.sh wrote into a folder, and the ratio of the medians (A/B: above 1
means B is faster). Usage: bench/scripts/ab-table.py OUT"""
import glob, re, statistics, sys

results = {}
for path in sorted(glob.glob(sys.argv[1] + "/*.txt")):
    tree = path.split("/")[-1].split(".")[0]
    for line in open(path):
        m = re.match(r"cpu (.*?) seed=\d+: ([\d.]+) (ms|µs|s)", line)
        if m:
            value = float(m.group(2)) * {"ms": 1.0, "µs": 1e-3, "s": 1e3}[m.group(3)]
            results.setdefault(m.group(1), {}).setdefault(tree, []).append(value)
for case, runs in results.items():
    a, b = runs.get("A", []), runs.get("B", [])
    ratio = statistics.median(a) / statistics.median(b) if a and b else float("nan")
    print(f"{case[:62]:62s} A {' '.join('%.2f' % x for x in a):28s} B {' '.join('%.2f' % x for x in b):28s} A/B {ratio:.2f}")
