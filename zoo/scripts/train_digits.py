#!/usr/bin/env python3
"""Train and export the early-exit digits demo model.

Trains a three-exit convolutional network on scikit-learn's bundled 8x8
handwritten digits, then exports:

  <out>/fp32/digits.onnx           full model: image -> logits, exit1_logits, exit2_logits
  <out>/early-exit/stage1.onnx     image     -> exit1_logits, features1
  <out>/early-exit/stage2.onnx     features1 -> exit2_logits, features2
  <out>/early-exit/stage3.onnx     features2 -> logits
  <out>/eval/images.npy            float32 [N,1,8,8] held-out images in [0,1]
  <out>/eval/labels.npy            int64   [N]       held-out labels
  <out>/labels.txt                 class labels "0".."9"
  <out>/training-report.json       seed, sample counts, per-exit accuracy, versions

Everything is seeded so that re-running produces the same weights.
"""

import argparse
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import onnx
import sklearn
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SEED = 1234
OPSET = 17
NUM_CLASSES = 10

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(os.path.dirname(SCRIPT_DIR), "digits")


# --------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------
def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    deterministic = True
    try:
        torch.use_deterministic_algorithms(True)
    except Exception:  # pragma: no cover - depends on torch build
        deterministic = False
    try:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    except Exception:  # pragma: no cover
        pass
    return deterministic


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------
# The per-stage computations are plain functions of a module that owns the
# relevant sub-modules (block1/head1, ...).  The full model and the stage
# wrappers both call them, and the wrappers hold the *same* sub-module objects
# as the full model, so the stage graphs use exactly the full model's weights
# (and the exported initializers carry the same names).
def stage1_forward(m, image):
    features1 = m.block1(image)
    # Exit 1: deliberately weak - a linear read-out of the per-channel global
    # maximum of one conv layer (16 numbers, no spatial layout at all).
    exit1 = m.head1(torch.flatten(F.adaptive_max_pool2d(features1, 1), 1))
    return exit1, features1


def stage2_forward(m, features1):
    features2 = m.block2(features1)
    # Exit 2: 2x2 average pool of features2 ([N,32,2,2] -> 128) + linear.
    exit2 = m.head2(torch.flatten(F.adaptive_avg_pool2d(features2, 2), 1))
    return exit2, features2


def stage3_forward(m, features2):
    x = m.block3(features2)
    return m.head3(torch.flatten(x, 1))


class DigitsEarlyExit(nn.Module):
    """Three-stage CNN with an exit head after each stage."""

    def __init__(self):
        super().__init__()
        # Stage 1: [N,1,8,8] -> features1 [N,16,8,8]; exit head on global max.
        self.block1 = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU())
        self.head1 = nn.Linear(16, NUM_CLASSES)
        # Stage 2: [N,16,8,8] -> features2 [N,32,4,4]; exit head on 2x2 avg pool.
        self.block2 = nn.Sequential(
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.head2 = nn.Linear(32 * 2 * 2, NUM_CLASSES)
        # Stage 3: [N,32,4,4] -> [N,64,2,2] -> flatten 256 -> logits.
        self.block3 = nn.Sequential(
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.head3 = nn.Linear(256, NUM_CLASSES)

    def forward(self, image):
        exit1, f1 = stage1_forward(self, image)
        exit2, f2 = stage2_forward(self, f1)
        logits = stage3_forward(self, f2)
        return logits, exit1, exit2


class Stage1(nn.Module):
    def __init__(self, full):
        super().__init__()
        self.block1, self.head1 = full.block1, full.head1

    def forward(self, image):
        return stage1_forward(self, image)


class Stage2(nn.Module):
    def __init__(self, full):
        super().__init__()
        self.block2, self.head2 = full.block2, full.head2

    def forward(self, features1):
        return stage2_forward(self, features1)


class Stage3(nn.Module):
    def __init__(self, full):
        super().__init__()
        self.block3, self.head3 = full.block3, full.head3

    def forward(self, features2):
        return stage3_forward(self, features2)


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------
def load_data():
    digits = load_digits()
    x = (digits.images.astype(np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_train, x_eval, y_train, y_eval = train_test_split(
        x, y, test_size=0.3, random_state=0, stratify=y
    )
    return (
        np.ascontiguousarray(x_train, dtype=np.float32),
        np.ascontiguousarray(x_eval, dtype=np.float32),
        np.ascontiguousarray(y_train, dtype=np.int64),
        np.ascontiguousarray(y_eval, dtype=np.int64),
    )


# --------------------------------------------------------------------------
# Training / evaluation
# --------------------------------------------------------------------------
EXIT_WEIGHTS = (0.5, 0.75, 1.0)  # (exit1, exit2, final)


def train(model, x_train, y_train, epochs, batch_size=64, lr=2e-3):
    gen = torch.Generator().manual_seed(SEED)
    xt = torch.from_numpy(x_train)
    yt = torch.from_numpy(y_train)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = xt.shape[0]
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            xb, yb = xt[idx], yt[idx]
            logits, e1, e2 = model(xb)
            loss = (
                EXIT_WEIGHTS[0] * F.cross_entropy(e1, yb)
                + EXIT_WEIGHTS[1] * F.cross_entropy(e2, yb)
                + EXIT_WEIGHTS[2] * F.cross_entropy(logits, yb)
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * xb.shape[0]
        if (epoch + 1) % 10 == 0 or epoch == 0 or epoch + 1 == epochs:
            print(f"epoch {epoch + 1:3d}/{epochs}  loss {total / n:.4f}", flush=True)


@torch.no_grad()
def evaluate(model, x, y):
    model.eval()
    logits, e1, e2 = model(torch.from_numpy(x))
    yt = torch.from_numpy(y)

    def acc(t):
        return float((t.argmax(dim=1) == yt).float().mean().item())

    return {"exit1": acc(e1), "exit2": acc(e2), "final": acc(logits)}


@torch.no_grad()
def check_stages_match(model, x):
    model.eval()
    inp = torch.from_numpy(x)
    logits, e1, e2 = model(inp)
    s1, s2, s3 = Stage1(model).eval(), Stage2(model).eval(), Stage3(model).eval()
    c_e1, f1 = s1(inp)
    c_e2, f2 = s2(f1)
    c_logits = s3(f2)
    diffs = {
        "exit1_logits": float((c_e1 - e1).abs().max()),
        "exit2_logits": float((c_e2 - e2).abs().max()),
        "logits": float((c_logits - logits).abs().max()),
    }
    for name, d in diffs.items():
        if not d < 1e-6:
            raise SystemExit(f"stage chain mismatch on {name}: max abs diff {d}")
    return diffs


# --------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------
def export(module, example, path, input_names, output_names):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    dynamic_axes = {n: {0: "batch"} for n in list(input_names) + list(output_names)}
    module.eval()
    torch.onnx.export(
        module,
        (example,),
        path,
        export_params=True,
        opset_version=OPSET,
        do_constant_folding=True,
        input_names=list(input_names),
        output_names=list(output_names),
        dynamic_axes=dynamic_axes,
    )


def _dims(value_info):
    out = []
    for d in value_info.type.tensor_type.shape.dim:
        if d.HasField("dim_param"):
            out.append(d.dim_param)
        elif d.HasField("dim_value"):
            out.append(d.dim_value)
        else:
            out.append(None)
    return out


def verify_onnx(path, inputs, outputs):
    """inputs/outputs: list of (name, [dims]) with 'batch' as the symbolic dim 0."""
    model = onnx.load(path)
    onnx.checker.check_model(model)
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    real_inputs = [i for i in graph.input if i.name not in initializers]
    for kind, actual, expected in (
        ("input", real_inputs, inputs),
        ("output", list(graph.output), outputs),
    ):
        got = [(v.name, _dims(v)) for v in actual]
        if got != [(n, list(s)) for n, s in expected]:
            raise SystemExit(f"{path}: {kind}s are {got}, expected {expected}")
        for v in actual:
            if v.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
                raise SystemExit(f"{path}: {kind} {v.name} is not FLOAT")
    if model.opset_import[0].version != OPSET:
        raise SystemExit(f"{path}: opset {model.opset_import[0].version} != {OPSET}")
    # Graph outputs must be produced by a node (not alias an input or another output).
    produced = {o for node in graph.node for o in node.output}
    for v in graph.output:
        if v.name not in produced:
            raise SystemExit(f"{path}: output {v.name} is not produced by any node")


def save_npy(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        np.lib.format.write_array(f, array, version=(1, 0), allow_pickle=False)


# --------------------------------------------------------------------------
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)

    deterministic = seed_everything(SEED)
    x_train, x_eval, y_train, y_eval = load_data()
    print(f"train samples {len(y_train)}, eval samples {len(y_eval)}")

    model = DigitsEarlyExit()
    t0 = time.perf_counter()
    train(model, x_train, y_train, args.epochs)
    train_seconds = time.perf_counter() - t0
    model.eval()

    acc = evaluate(model, x_eval, y_eval)
    diffs = check_stages_match(model, x_eval)

    # ---- ONNX export -----------------------------------------------------
    example = torch.from_numpy(x_eval[:2])
    with torch.no_grad():
        _, f1_ex = stage1_forward(model, example)
        _, f2_ex = stage2_forward(model, f1_ex)
    full_path = os.path.join(out, "fp32", "digits.onnx")
    s1_path = os.path.join(out, "early-exit", "stage1.onnx")
    s2_path = os.path.join(out, "early-exit", "stage2.onnx")
    s3_path = os.path.join(out, "early-exit", "stage3.onnx")
    export(model, example, full_path, ["image"], ["logits", "exit1_logits", "exit2_logits"])
    export(Stage1(model), example, s1_path, ["image"], ["exit1_logits", "features1"])
    export(Stage2(model), f1_ex, s2_path, ["features1"], ["exit2_logits", "features2"])
    export(Stage3(model), f2_ex, s3_path, ["features2"], ["logits"])

    b = "batch"
    verify_onnx(full_path, [("image", [b, 1, 8, 8])],
                [("logits", [b, 10]), ("exit1_logits", [b, 10]), ("exit2_logits", [b, 10])])
    verify_onnx(s1_path, [("image", [b, 1, 8, 8])],
                [("exit1_logits", [b, 10]), ("features1", [b, 16, 8, 8])])
    verify_onnx(s2_path, [("features1", [b, 16, 8, 8])],
                [("exit2_logits", [b, 10]), ("features2", [b, 32, 4, 4])])
    verify_onnx(s3_path, [("features2", [b, 32, 4, 4])], [("logits", [b, 10])])

    # ---- Evaluation set and labels --------------------------------------
    save_npy(os.path.join(out, "eval", "images.npy"), x_eval.astype("<f4", copy=False))
    save_npy(os.path.join(out, "eval", "labels.npy"), y_eval.astype("<i8", copy=False))
    with open(os.path.join(out, "labels.txt"), "w", newline="\n") as f:
        f.write("".join(f"{i}\n" for i in range(NUM_CLASSES)))

    report = {
        "seed": SEED,
        "epochs": args.epochs,
        "deterministic_algorithms": deterministic,
        "train_samples": int(len(y_train)),
        "eval_samples": int(len(y_eval)),
        "eval_accuracy": {
            "exit1_logits": round(acc["exit1"], 6),
            "exit2_logits": round(acc["exit2"], 6),
            "logits": round(acc["final"], 6),
        },
        "stage_chain_max_abs_diff": diffs,
        "opset": OPSET,
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
        },
    }
    with open(os.path.join(out, "training-report.json"), "w", newline="\n") as f:
        json.dump(report, f, indent=2, sort_keys=False)
        f.write("\n")

    print(json.dumps(report, indent=2))
    print(f"training took {train_seconds:.1f} s")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
