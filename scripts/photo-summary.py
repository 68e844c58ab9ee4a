#!/usr/bin/env python3
"""The summary of `scripts/gpu-check.sh photo`: for each size, nst's runs (their --report files
and process seconds) beside PyTorch's (scripts/torch-photo.py), the losses they reached, their
times and the ratios. Both minimize the same objective on the same pixels, so their losses at the
output size compare; at 512² both run one stage from the photo, so their losses at the photo agree
(the check that they do) and each can be followed evaluation by evaluation.
Usage: python3 scripts/photo-summary.py FOLDER [SIZE...]   (default: every size in FOLDER)"""
import glob, json, os, sys

folder = sys.argv[1]


def seconds(path):
    try:
        return float(open(path).read())
    except (OSError, ValueError):
        return float('nan')


def reached(trace, target):
    """The evaluation after which the trace is first at or below target, or None."""
    return next((i + 1 for i, loss in enumerate(trace) if loss <= target), None)


sizes = [int(s) for s in sys.argv[2:]] or sorted(
    {int(os.path.basename(p).split('-')[1].split('.')[0]) for p in glob.glob(f'{folder}/*-*.json*')})
for size in sizes:
    torch_runs = {}
    try:
        for line in open(f'{folder}/torch-{size}.jsonl'):
            run = json.loads(line)
            torch_runs[run['optimizer']] = run
    except OSError:
        pass
    torch_s = seconds(f'{folder}/torch-{size}.s')
    print(f'photo {size} px:')
    for name, t in torch_runs.items():
        print(f"  PyTorch {t['torch']} LBFGS, {name} step: loss {t['final_loss']:.6g} after {t['evaluations']} "
              f"evaluations (lowest {t['lowest_loss']:.6g}; clamped to [0, 1] as saved {t['clamped_loss']:.6g}), "
              f"{t['ms_per_evaluation']:.1f} ms per evaluation")
    print(f'  PyTorch process (both optimizers, start-up and warm-up included): {torch_s:.1f} s')
    for path in sorted(glob.glob(f'{folder}/nst-{size}-*.json')):
        name = os.path.basename(path)[len('nst-'):-len('.json')]
        try:
            r = json.load(open(path))
        except (OSError, ValueError) as e:
            print(f'  nst {name}: no report ({e})')
            continue
        trace = [e['loss'] for e in r['evaluations']]
        stages = ', '.join(f"{s['ms_per_evaluation']:.1f}" for s in r.get('stages', []))
        process = seconds(f'{folder}/nst-{name}.s')
        print(f"  nst {name} ({r['device']}, {r['precision']}): loss {r['final_loss']:.6g} after {len(trace)} "
              f"evaluations, {r['timings']['ms_per_evaluation']:.1f} ms per evaluation (by stage: {stages}), "
              f"{r['timings']['optimize_s']:.1f} s optimizing, {process:.1f} s the process")
        for optimizer, t in torch_runs.items():
            ratio_ms = t['ms_per_evaluation'] / r['timings']['ms_per_evaluation']
            ratio_loss = r['final_loss'] / t['lowest_loss']
            line = (f"    against PyTorch {optimizer}: {ratio_ms:.2f}× its speed per evaluation (above 1, nst is "
                    f"faster); its loss {ratio_loss:.4f}× PyTorch's lowest")
            if len(r.get('stages', [])) == 1:
                first = trace[0]
                line += f"; at the photo {abs(first - t['initial_loss']) / t['initial_loss']:.1e} apart (the same objective)"
                n = reached(trace, t['lowest_loss'])
                if n is not None:
                    line += f"; nst reaches PyTorch's lowest after {n} evaluations, {n * r['timings']['ms_per_evaluation'] / 1e3:.1f} s"
                m = reached(t['trace'], r['final_loss'])
                line += (f"; PyTorch reaches nst's after {m}" if m is not None
                         else "; PyTorch does not reach nst's loss")
            print(line)
