#!/usr/bin/env python3
"""Sums an ONNX Runtime profile (the JSON a session writes with profiling on) by operator:
total milliseconds per run and share, the heaviest first.
Usage: scripts/profile-summary.py PROFILE.json [RUNS] (RUNS: the runs the profile holds, default: counted)"""
import collections, json, sys

events = json.load(open(sys.argv[1]))
runs = int(sys.argv[2]) if len(sys.argv) > 2 else max(1, sum(1 for e in events if e.get('name') == 'model_run'))
by_op, nodes = collections.Counter(), collections.Counter()
for e in events:
    if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time'):
        op = e['args'].get('op_name', '?')
        by_op[op] += e['dur']
        nodes[(op, e['name'][:-len('_kernel_time')])] += e['dur']
total = sum(by_op.values())
model = sum(e['dur'] for e in events if e.get('name') == 'model_run')
print(f"{runs} runs: {model / runs / 1e3:.1f} ms per run, of which nodes {total / runs / 1e3:.1f} ms")
for op, us in by_op.most_common(12):
    print(f"  {op:24} {us / runs / 1e3:8.2f} ms  {100 * us / total:5.1f} %")
print("heaviest nodes:")
for (op, name), us in nodes.most_common(8):
    print(f"  {name[:48]:48} {op:16} {us / runs / 1e3:8.2f} ms")
