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

from gatys_torch import Gatys, random_weights

torch.manual_seed(0)
W = random_weights()

for size in [int(s) for s in sys.argv[1].split(",")]:
    content, style = torch.rand(1, 3, size, size), torch.rand(1, 3, size, size)
    gatys = Gatys(W, content, style)
    for precision in ["fp32", "bf16"]:
        def evaluate():
            x = content.clone().requires_grad_(True)
            with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
                loss = gatys.loss(x)
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
