#!/usr/bin/env python3
"""Turns criterion's estimates for the storage bench into Strom/raw ratios.

Reads target/criterion/<group>/<function>/new/estimates.json (mean time per
iteration; every group's iterations move the same bytes) and prints a
markdown table of throughput ratios strom/raw for each group pair.
"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")


def mean_ns(group: str, function: str) -> float:
    path = root / group / function / "new" / "estimates.json"
    return json.loads(path.read_text())["mean"]["point_estimate"]


print("| measurement | batch | Strom vs raw (throughput ratio) | target |")
print("|---|---|---|---|")
for op, raw, target in [("append", "raw_write", 0.70), ("read", "raw_read", 0.80)]:
    for batch in ["16KiB", "1MiB"]:
        group = f"{op}_{batch}"
        try:
            ratio = mean_ns(group, raw) / mean_ns(group, "strom")
        except FileNotFoundError as e:
            sys.exit(f"missing criterion estimate: {e.filename}")
        goal = f">= {target:.2f}" if batch == "1MiB" or op == "read" else "-"
        print(f"| {op} | {batch} | {ratio:.2f} | {goal} |")
