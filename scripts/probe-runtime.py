#!/usr/bin/env python3
"""Runs an exported loss graph on ONNX Runtime and on OpenVINO (f32, and bf16 where the CPU
has it) and compares loss, gradient and time: does the graph mean the same on a second runtime?

    pip install onnxruntime==1.31.1 openvino numpy
    cargo xtask export-onnx
    python3 scripts/probe-runtime.py [models/gatys_loss.onnx] [SIZE]

Inputs: a smooth content image, its own features as the content target (so the content term
is not trivially zero at x, x is the content shifted) and random symmetric Grams of the right
scale for the style targets.
"""
import sys
import time

import numpy as np
import onnxruntime as ort
import openvino as ov

model = sys.argv[1] if len(sys.argv) > 1 else "models/gatys_loss.onnx"
size = int(sys.argv[2]) if len(sys.argv) > 2 else 256
rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:size, 0:size] / size
image = np.stack([0.5 + 0.4 * np.sin(7 * xx + 3 * c) * np.cos(5 * yy + c) for c in range(3)])[None].astype(np.float32)

sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
feeds = {"image": image}
for i in sess.get_inputs():
    if i.name.startswith("content/"):
        # A target near the image's own features: run once with zeros, then shift.
        continue
    if i.name.startswith("style/"):
        c = i.shape[-1]
        a = rng.standard_normal((c, c)).astype(np.float32)
        feeds[i.name] = (a @ a.T / c * 10).reshape(i.shape[0] if isinstance(i.shape[0], int) else 1, c, c)
content_inputs = [i for i in sess.get_inputs() if i.name.startswith("content/")]
for i in content_inputs:
    shape = [1, i.shape[1], size >> (int(i.name.split("relu")[-1].split("conv")[-1][0]) - 1),
             size >> (int(i.name.split("relu")[-1].split("conv")[-1][0]) - 1)]
    feeds[i.name] = np.abs(rng.standard_normal(shape)).astype(np.float32)


def timed(run, n=3):
    run()
    t = time.perf_counter()
    for _ in range(n):
        out = run()
    return out, (time.perf_counter() - t) * 1e3 / n


(loss_ort, grad_ort), ms_ort = timed(lambda: sess.run(["loss", "grad"], feeds))
print(f"onnxruntime {ort.__version__}: loss {float(loss_ort):.6e}, {ms_ort:.0f} ms")
core = ov.Core()
caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
for precision in ["f32", "bf16"]:
    if precision == "bf16" and "BF16" not in caps:
        print("openvino bf16: this CPU has no bf16")
        continue
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision})
    request = compiled.create_infer_request()

    def run():
        r = request.infer(feeds)
        return r[compiled.output("loss")], r[compiled.output("grad")]

    (loss, grad), ms = timed(run)
    rel = np.linalg.norm(grad - grad_ort) / np.linalg.norm(grad_ort)
    cos = float((grad * grad_ort).sum() / np.linalg.norm(grad) / np.linalg.norm(grad_ort))
    print(f"openvino {precision}: loss {float(loss):.6e} ({float(loss / loss_ort - 1):+.2e}), "
          f"gradient relative error {rel:.2e}, cosine {cos:.6f}, norm ratio {np.linalg.norm(grad) / np.linalg.norm(grad_ort):.4f}, {ms:.0f} ms ({ms_ort / ms:.2f}× onnxruntime)")
