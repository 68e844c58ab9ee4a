#!/usr/bin/env python3
"""PyTorch's time for VGG16's convolutions alone (conv1_1 … conv5_1, what the gatys objective
uses), forward and input gradient, each layer timed on its own with cuDNN's autotuner and TF32
as the peer runs them: the floor for the convolutions of one loss+gradient, to set beside the
Conv rows of nst's profile (scripts/profile-summary.py).
Usage: python3 scripts/torch-convs.py 512,2048"""
import sys, torch

torch.backends.cudnn.allow_tf32 = True
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.benchmark = True
# (block, input channels, output channels) of conv1_1 … conv5_1
CONVS = [(1, 3, 64), (1, 64, 64), (2, 64, 128), (2, 128, 128), (3, 128, 256), (3, 256, 256), (3, 256, 256),
         (4, 256, 512), (4, 512, 512), (4, 512, 512), (5, 512, 512)]


def ms(f, n=5):
    f()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(True), torch.cuda.Event(True)
    start.record()
    for _ in range(n):
        f()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / n


for size in [int(s) for s in sys.argv[1].split(',')]:
    fwd = grad = 0.0
    for block, cin, cout in CONVS:
        side = size >> (block - 1)
        x = torch.randn(1, cin, side, side, device='cuda')
        w = torch.randn(cout, cin, 3, 3, device='cuda')
        gy = torch.randn(1, cout, side, side, device='cuda')
        fwd += ms(lambda: torch.nn.functional.conv2d(x, w, padding=1))
        grad += ms(lambda: torch.ops.aten.convolution_backward(gy, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
                                                                [True, False, False]))
        del x, w, gy
    torch.cuda.empty_cache()
    print(f"{size}²: PyTorch's convolutions: forward {fwd:.2f} ms + input gradient {grad:.2f} ms = {fwd + grad:.2f} ms")
