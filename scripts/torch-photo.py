#!/usr/bin/env python3
"""PyTorch's Gatys on a photograph, the peer of `scripts/gpu-check.sh photo`: the real VGG16
weights (nst's vgg16_conv.safetensors), the gatys_max objective of ../shared/fixtures/README.md
(what nst's default minimizes), torch.optim.LBFGS from the photo with 100 pairs, as the PyTorch
scripts run it: the fixed step lr=1 (neural-style's setting) and strong Wolfe. TF32 on and
cuDNN's autotuner, PyTorch at its fastest. The images are taken at their own size (gpu-check.sh
writes them at the size both run at, so nst and PyTorch see the same pixels).

Usage: python3 scripts/torch-photo.py WEIGHTS CONTENT STYLE OUT_PREFIX EVALUATIONS [--cpu]
Prints one JSON line per optimizer: the loss at the photo, the loss after EVALUATIONS and the
lowest on the way, the loss after each evaluation, ms per evaluation (the optimizer's own work
included), seconds in all; writes OUT_PREFIX-<optimizer>.png (the image clamped to [0, 1])."""
import json, sys, time
import numpy as np
import torch
from PIL import Image

from gatys_torch import Gatys, load_weights

weights_path, content_path, style_path, prefix, evaluations = sys.argv[1:6]
evaluations = int(evaluations)
dev = 'cpu' if '--cpu' in sys.argv else 'cuda'
sync = torch.cuda.synchronize if dev == 'cuda' else (lambda: None)
torch.backends.cudnn.allow_tf32 = True
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.benchmark = True


def image(path):
    rgb = np.asarray(Image.open(path).convert('RGB'), dtype=np.float32) / 255
    return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).contiguous().to(dev)


content = image(content_path)
loss_fn = Gatys(load_weights(weights_path, dev), content, image(style_path)).loss
with torch.no_grad():
    initial = loss_fn(content).item()
# One warm-up evaluation: cuDNN's autotuner tries its algorithms outside the timing.
warm = content.clone().requires_grad_(True)
loss_fn(warm).backward()
del warm

for optimizer, search in [('fixed', None), ('wolfe', 'strong_wolfe')]:
    x = content.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1, history_size=100, max_iter=evaluations, max_eval=evaluations,
                            tolerance_grad=-1, tolerance_change=-1, line_search_fn=search)
    trace = []

    def closure():
        opt.zero_grad()
        loss = loss_fn(x)
        loss.backward()
        trace.append(loss.item())
        return loss

    sync()
    start = time.perf_counter()
    while len(trace) < evaluations:
        before = len(trace)
        opt.step(closure)
        if len(trace) == before:
            break
    sync()
    seconds = time.perf_counter() - start
    out = x.detach().clamp(0, 1)
    with torch.no_grad():
        clamped = loss_fn(out).item()
    rgb = (out[0].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    Image.fromarray(rgb).save(f'{prefix}-{optimizer}.png')
    print(json.dumps(dict(peer='pytorch', torch=torch.__version__, optimizer=optimizer, device=dev,
                          size=list(content.shape[2:]), evaluations=len(trace), initial_loss=initial,
                          final_loss=trace[-1], lowest_loss=min((v for v in trace if v == v), default=float('nan')),
                          clamped_loss=clamped,
                          ms_per_evaluation=round(seconds * 1e3 / len(trace), 3), seconds=round(seconds, 3),
                          trace=trace)), flush=True)
