#!/usr/bin/env python3
"""The PyTorch peer on the CPU: the gatys objective (content relu4_2 ×5, style relu1_1…relu5_1
×100, TV 1e-3, max pooling; VGG16 shapes, random weights) with autograd, in float32 and under
`torch.autocast('cpu', torch.bfloat16)` around the loss, as a PyTorch user would write it.
Prints one line per size and precision: ms per loss + gradient (median of 5 after a warm-up).

    python3 scripts/torch_cpu_peer.py 256,512
"""
import statistics
import sys
import time

import torch
import torch.nn.functional as F

torch.manual_seed(0)
CFG = [("1_1", 3, 64), ("1_2", 64, 64), "P", ("2_1", 64, 128), ("2_2", 128, 128), "P", ("3_1", 128, 256),
       ("3_2", 256, 256), ("3_3", 256, 256), "P", ("4_1", 256, 512), ("4_2", 512, 512), ("4_3", 512, 512), "P",
       ("5_1", 512, 512)]
W = {c[0]: (torch.randn(c[2], c[1], 3, 3) * (2 / (9 * c[1])) ** 0.5, torch.zeros(c[2])) for c in CFG if c != "P"}
MEAN = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
STYLE = ["1_1", "2_1", "3_1", "4_1", "5_1"]


def pre(x):
    return x[:, [2, 1, 0]] * 255 - MEAN


def feats(x):
    h, out = pre(x), {}
    for c in CFG:
        if c == "P":
            h = F.max_pool2d(h, 2, 2)
            continue
        h = torch.relu(F.conv2d(h, *W[c[0]], padding=1))
        out[c[0]] = h
    return out


def gram(f):
    a, b, c, d = f.shape
    m = f.reshape(a * b, c * d).float()
    return m @ m.t() / (a * b * c * d)


def tv(x):
    p = pre(x)
    return 0.5 * ((p[..., 1:] - p[..., :-1]) ** 2).sum() + 0.5 * ((p[..., 1:, :] - p[..., :-1, :]) ** 2).sum()


for size in [int(s) for s in sys.argv[1].split(",")]:
    content, style = torch.rand(1, 3, size, size), torch.rand(1, 3, size, size)
    with torch.no_grad():
        tc = feats(content)["4_2"]
        fs = feats(style)
        tg = {k: gram(fs[k]) for k in STYLE}
    for precision in ["fp32", "bf16"]:
        def evaluate():
            x = content.clone().requires_grad_(True)
            with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
                f = feats(x)
                loss = 5.0 * F.mse_loss(f["4_2"].float(), tc)
                for k in STYLE:
                    loss = loss + 100.0 * F.mse_loss(gram(f[k]), tg[k])
                loss = loss + 1e-3 * tv(x)
            loss.backward()
            return x.grad

        evaluate()
        times = []
        for _ in range(5):
            t = time.perf_counter()
            evaluate()
            times.append((time.perf_counter() - t) * 1e3)
        print(f"pytorch {torch.__version__} {precision} {size}x{size}: {statistics.median(times):.1f} ms per loss+gradient"
              f" ({torch.get_num_threads()} threads)", flush=True)
