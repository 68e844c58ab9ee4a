#!/usr/bin/env python3
"""Sums an ONNX Runtime profile (the JSON a session writes with profiling on) by operator:
milliseconds per run and share, the heaviest first. The first two runs are left out (one when
there are only two): the first plans memory and, on CUDA, tries every convolution algorithm;
the second allocates the planned block.
Usage: scripts/profile-summary.py PROFILE.json [NODES] (NODES: how many of the heaviest nodes to list, default 8)"""
import collections, json, sys

events = json.load(open(sys.argv[1]))
top = int(sys.argv[2]) if len(sys.argv) > 2 else 8
runs = sorted((e for e in events if e.get('name') == 'model_run'), key=lambda e: e['ts'])
if len(runs) < 2:
    sys.exit(f"{sys.argv[1]}: {len(runs)} run(s); the first is left out, so at least two are needed")
skip = min(2, len(runs) - 1)
warm = runs[skip - 1]['ts'] + runs[skip - 1]['dur']
runs = runs[skip:]
by_op, nodes = collections.Counter(), collections.Counter()
for e in events:
    if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time') and e['ts'] >= warm:
        op = e['args'].get('op_name', '?')
        by_op[op] += e['dur']
        nodes[(op, e['name'][:-len('_kernel_time')])] += e['dur']
n = len(runs)
total = sum(by_op.values())
print(f"{n} runs after {skip} left out: {sum(e['dur'] for e in runs) / n / 1e3:.1f} ms per run, of which nodes {total / n / 1e3:.1f} ms")
for op, us in by_op.most_common(12):
    print(f"  {op:24} {us / n / 1e3:8.2f} ms  {100 * us / total:5.1f} %")
print("heaviest nodes:")
for (op, name), us in nodes.most_common(top):
    print(f"  {name[:48]:48} {op:16} {us / n / 1e3:8.2f} ms")
