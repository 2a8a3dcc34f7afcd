#!/usr/bin/env python3
"""Train and export the early-exit shapes demo model.

Draws a synthetic data set of coloured geometric shapes (10 classes, four
difficulty levels), trains a three-exit convolutional network on it, and
exports:

  <out>/fp32/shapes.onnx           full model: image -> logits, exit1_logits, exit2_logits
  <out>/early-exit/stage1.onnx     image     -> exit1_logits, features1
  <out>/early-exit/stage2.onnx     features1 -> exit2_logits, features2
  <out>/early-exit/stage3.onnx     features2 -> logits
  <out>/eval/images.npy            float32 [2000,3,32,32] held-out images in [0,1]
  <out>/eval/labels.npy            int64   [2000]         held-out labels
  <out>/eval/difficulty.npy        int64   [2000]         difficulty level 0..3
  <out>/calib/images.npy           float32 [512,3,32,32]  calibration images (INT8)
  <out>/labels.txt                 class names, one per line
  <out>/training-report.json       seed, counts, FLOPs, accuracies, thresholds, versions

Everything is seeded so that re-running produces the same files.
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

SEED = 2024
OPSET = 17
IMAGE_SIZE = 32
CLASSES = (
    "circle", "square", "triangle", "star", "cross",
    "ring", "diamond", "ellipse", "hexagon", "crescent",
)
NUM_CLASSES = len(CLASSES)
LEVELS = 4

TRAIN_SAMPLES = 36000
EVAL_SAMPLES = 2000
CALIB_SAMPLES = 512
# Independent random streams: one per data split, so that the splits never
# share a drawing and changing one split's size leaves the others untouched.
STREAM_TRAIN, STREAM_CALIB, STREAM_EVAL = 1, 2, 3

THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(os.path.dirname(SCRIPT_DIR), "shapes")


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
# Procedural data set
# --------------------------------------------------------------------------
# Every shape is a signed distance function (negative inside) in a unit frame
# where the shape spans roughly [-1, 1]; the frame is rotated, scaled by the
# radius in pixels and moved to the shape's centre.  Coverage of a pixel is
# clip(0.5 - distance_in_pixels, 0, 1), which gives anti-aliased edges.
def _box(u, v, hu, hv):
    qu, qv = np.abs(u) - hu, np.abs(v) - hv
    outside = np.sqrt(np.maximum(qu, 0) ** 2 + np.maximum(qv, 0) ** 2)
    return outside + np.minimum(np.maximum(qu, qv), 0)


def _regular_polygon(u, v, sides, apothem):
    d = None
    for k in range(sides):
        a = np.pi / 2 + 2 * np.pi * k / sides
        e = u * np.float32(np.cos(a)) + v * np.float32(np.sin(a)) - apothem
        d = e if d is None else np.maximum(d, e)
    return d


def _star(u, v, points=5, outer=1.0, inner=0.42):
    sector = 2 * np.pi / points
    r = np.sqrt(u * u + v * v)
    phi = np.mod(np.arctan2(v, u), sector) - sector / 2
    phi = np.abs(np.abs(phi) - sector / 2)  # 0 at a tip, sector/2 at a notch
    pu, pv = r * np.cos(phi), r * np.sin(phi)
    au, av = outer, 0.0
    bu, bv = inner * np.cos(sector / 2), inner * np.sin(sector / 2)
    eu, ev = bu - au, bv - av
    length = np.hypot(eu, ev)
    # Distance to the tip-to-notch edge; the origin side is the inside.
    return ((pu - au) * ev - (pv - av) * eu) / length


def _sdf(name, u, v):
    if name == "circle":
        return np.sqrt(u * u + v * v) - 0.92
    if name == "square":
        return _box(u, v, 0.78, 0.78)
    if name == "triangle":
        return _regular_polygon(u, v, 3, 0.55)
    if name == "star":
        return _star(u, v)
    if name == "cross":
        return np.minimum(_box(u, v, 0.95, 0.3), _box(u, v, 0.3, 0.95))
    if name == "ring":
        return np.abs(np.sqrt(u * u + v * v) - 0.7) - 0.24
    if name == "diamond":  # rhombus, half-diagonals 1.0 and 0.55
        a, b = 1.0, 0.55
        return (b * np.abs(u) + a * np.abs(v) - a * b) / np.float32(np.hypot(a, b))
    if name == "ellipse":  # semi-axes 1.0 and 0.55
        a, b = 1.0, 0.55
        return (np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1.0) * b
    if name == "hexagon":
        return _regular_polygon(u, v, 6, 0.85)
    if name == "crescent":
        disc = np.sqrt(u * u + v * v) - 0.92
        bite = np.sqrt((u - 0.45) ** 2 + v * v) - 0.72
        return np.maximum(disc, -bite)
    raise ValueError(name)


# Per difficulty level 0..3: shape radius in pixels, fill/background contrast
# (mean absolute RGB difference), pixel noise sigma, background gradient
# strength, number of clutter marks and probability of an occluding band.
RADIUS = ((10.0, 14.0), (8.0, 12.0), (6.5, 10.0), (5.5, 8.5))
CONTRAST = ((0.50, 0.80), (0.35, 0.60), (0.25, 0.45), (0.20, 0.36))
NOISE = (0.02, 0.05, 0.08, 0.10)
GRADIENT = (0.0, 0.10, 0.20, 0.30)
CLUTTER = (0, 1, 2, 3)
OCCLUDE = (0.0, 0.0, 0.5, 1.0)


def _grid():
    c = np.arange(IMAGE_SIZE, dtype=np.float32) + np.float32(0.5)
    return c[None, None, :], c[None, :, None]  # x [1,1,W], y [1,H,1]


def _paint(img, alpha, colour):
    """Alpha-blend a colour [n,3] with coverage alpha [n,H,W] into img [n,3,H,W]."""
    a = alpha[:, None]
    img *= 1 - a
    img += a * colour[:, :, None, None]


def _coverage(dist):
    return np.clip(np.float32(0.5) - dist, 0, 1).astype(np.float32)


def _fill_colour(rng, background, contrast):
    """A colour whose mean absolute difference from the background is contrast."""
    n = background.shape[0]
    target = rng.uniform(0, 1, (n, 3)).astype(np.float32)
    diff = target - background
    # A random colour too close to the background would be scaled up a lot;
    # push it to the far side of the cube in that case.
    weak = np.abs(diff).mean(axis=1) < 0.05
    diff[weak] = np.where(background[weak] > 0.5, -1.0, 1.0) * 0.5
    scale = contrast / np.abs(diff).mean(axis=1)
    colour = background + diff * scale[:, None]
    return np.clip(colour, 0, 1).astype(np.float32)


def _draw_chunk(rng, labels, levels):
    n = labels.shape[0]
    x, y = _grid()
    f32 = np.float32
    lv = levels

    def per_level(table, lo_hi=True):
        if lo_hi:
            lo = np.array([t[0] for t in table], dtype=np.float32)[lv]
            hi = np.array([t[1] for t in table], dtype=np.float32)[lv]
            return (lo + (hi - lo) * rng.uniform(0, 1, n)).astype(np.float32)
        return np.array(table, dtype=np.float32)[lv]

    # Background: a flat colour plus a linear ramp with a random direction
    # and a random tint per channel.
    background = rng.uniform(0, 1, (n, 3)).astype(np.float32)
    ramp_angle = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    ramp = (np.cos(ramp_angle)[:, None, None] * (x - 16)
            + np.sin(ramp_angle)[:, None, None] * (y - 16)) / f32(16)
    tint = rng.uniform(-1, 1, (n, 3)).astype(np.float32) * per_level(GRADIENT, False)[:, None]
    img = background[:, :, None, None] + tint[:, :, None, None] * ramp[:, None]
    img = np.clip(img, 0, 1).astype(np.float32)

    # Clutter: short line segments and small dots behind the main shape.
    for k in range(max(CLUTTER)):
        active = per_level(CLUTTER, False) > k
        ax, ay = rng.uniform(0, IMAGE_SIZE, n), rng.uniform(0, IMAGE_SIZE, n)
        ang = rng.uniform(0, 2 * np.pi, n)
        length = rng.uniform(3, 9, n)
        is_dot = rng.uniform(0, 1, n) < 0.4
        length[is_dot] = 0.0
        width = np.where(is_dot, rng.uniform(1.5, 3.0, n), rng.uniform(0.8, 1.6, n))
        bx, by = ax + length * np.cos(ang), ay + length * np.sin(ang)
        colour = rng.uniform(0, 1, (n, 3)).astype(np.float32)
        ax, ay, bx, by = (t.astype(np.float32)[:, None, None] for t in (ax, ay, bx, by))
        ex, ey = bx - ax, by - ay
        h = np.clip(((x - ax) * ex + (y - ay) * ey) / np.maximum(ex * ex + ey * ey, f32(1e-6)), 0, 1)
        dist = np.sqrt((x - ax - h * ex) ** 2 + (y - ay - h * ey) ** 2) - width.astype(np.float32)[:, None, None] / 2
        alpha = _coverage(dist) * active[:, None, None]
        _paint(img, alpha, colour)

    # The labelled shape.
    radius = per_level(RADIUS)
    margin = radius + 1.0
    cx = (margin + (IMAGE_SIZE - 2 * margin) * rng.uniform(0, 1, n)).astype(np.float32)
    cy = (margin + (IMAGE_SIZE - 2 * margin) * rng.uniform(0, 1, n)).astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    contrast = per_level(CONTRAST)
    fill = _fill_colour(rng, background, contrast)
    dist = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    for c, name in enumerate(CLASSES):
        sel = np.nonzero(labels == c)[0]
        if sel.size == 0:
            continue
        dx = x - cx[sel, None, None]
        dy = y - cy[sel, None, None]
        cos, sin = np.cos(theta[sel])[:, None, None], np.sin(theta[sel])[:, None, None]
        r = radius[sel, None, None]
        u = (dx * cos + dy * sin) / r
        v = (-dx * sin + dy * cos) / r
        dist[sel] = _sdf(name, u, v) * r
    _paint(img, _coverage(dist), fill)

    # Occluding band: a straight stripe across the shape, either in the
    # background colour (cuts the shape) or in a random colour.
    occlude = rng.uniform(0, 1, n) < per_level(OCCLUDE, False)
    band_angle = rng.uniform(0, np.pi, n).astype(np.float32)
    band_offset = (rng.uniform(-0.6, 0.6, n) * radius).astype(np.float32)
    band_width = rng.uniform(1.0, 1.0 + 0.25 * radius).astype(np.float32)
    use_bg = rng.uniform(0, 1, n) < 0.5
    band_colour = np.where(use_bg[:, None], background,
                           rng.uniform(0, 1, (n, 3))).astype(np.float32)
    along = (np.cos(band_angle)[:, None, None] * (x - cx[:, None, None])
             + np.sin(band_angle)[:, None, None] * (y - cy[:, None, None]))
    dist = np.abs(along - band_offset[:, None, None]) - band_width[:, None, None] / 2
    _paint(img, _coverage(dist) * occlude[:, None, None], band_colour)

    # Pixel noise.
    sigma = per_level(NOISE, False)
    img += rng.standard_normal(img.shape, dtype=np.float32) * sigma[:, None, None, None]
    return np.clip(img, 0, 1).astype(np.float32)


def make_dataset(count, stream, chunk=4096):
    """count images with balanced classes and difficulty levels, in random order."""
    rng = np.random.default_rng([SEED, stream])
    cells = NUM_CLASSES * LEVELS
    cell = np.arange(count) % cells
    cell = cell[rng.permutation(count)]
    labels = (cell % NUM_CLASSES).astype(np.int64)
    levels = (cell // NUM_CLASSES).astype(np.int64)
    images = np.empty((count, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    for start in range(0, count, chunk):
        end = min(start + chunk, count)
        images[start:end] = _draw_chunk(rng, labels[start:end], levels[start:end])
    return images, labels, levels


def check_disjoint(x_eval, others):
    """Fail if any held-out image also occurs (bit for bit) in another split."""
    held_out = {img.tobytes() for img in x_eval}
    for name, x in others.items():
        shared = sum(img.tobytes() in held_out for img in x)
        if shared:
            raise SystemExit(f"{shared} {name} images also occur in the eval set")


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------
# Batch normalisation speeds up training; before export it is folded into the
# convolution in front of it (fold_batchnorm), which leaves plain Conv + Relu.
class ConvUnit(nn.Module):
    """3x3 convolution (padding 1), optional batch norm, ReLU."""

    def __init__(self, cin, cout, batchnorm):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=True)
        self.bn = nn.BatchNorm2d(cout) if batchnorm else None

    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x)


def global_max(x, size):
    # A MaxPool whose (fixed) window is the whole size x size map; it exports
    # as a plain MaxPool node.
    return torch.flatten(F.max_pool2d(x, kernel_size=size), 1)


def global_avg(x):
    return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # GlobalAveragePool


# As in the digits script, each stage is a function of a module that owns
# that stage's sub-modules; the full model and the per-stage wrappers call the
# same functions on the same sub-module objects, so the stage files carry the
# full model's weights under the same initializer names.
def stage1_forward(m, image):
    features1 = m.block1(image)
    # Exit 1: a 1x1 convolution + ReLU, global max pool, linear.
    exit1 = m.head1(global_max(F.relu(m.head1_conv(features1)), 16))
    return exit1, features1


def stage2_forward(m, features1):
    features2 = m.block2(features1)
    # Exit 2: global max pool, linear.
    return m.head2(global_max(features2, 8)), features2


def stage3_forward(m, features2):
    # Final exit: global average pool, linear.
    return m.head3(global_avg(m.block3(features2)))


class ShapesEarlyExit(nn.Module):
    """Three-stage CNN for [N,3,32,32] images with an exit after each stage."""

    def __init__(self, batchnorm=False):
        super().__init__()
        # Stage 1: conv 3->32 @32x32, max pool, conv 32->32 @16x16 -> features1 [N,32,16,16]
        self.block1 = nn.Sequential(ConvUnit(3, 32, batchnorm), nn.MaxPool2d(2),
                                    ConvUnit(32, 32, batchnorm))
        self.head1_conv = nn.Conv2d(32, 64, 1)
        self.head1 = nn.Linear(64, NUM_CLASSES)
        # Stage 2: conv 32->64, conv 64->64 @16x16, max pool -> features2 [N,64,8,8]
        self.block2 = nn.Sequential(ConvUnit(32, 64, batchnorm), ConvUnit(64, 64, batchnorm),
                                    nn.MaxPool2d(2))
        self.head2 = nn.Linear(64, NUM_CLASSES)
        # Stage 3: conv 64->128, 128->128, 128->128 @8x8 -> logits
        self.block3 = nn.Sequential(ConvUnit(64, 128, batchnorm), ConvUnit(128, 128, batchnorm),
                                    ConvUnit(128, 128, batchnorm))
        self.head3 = nn.Linear(128, NUM_CLASSES)

    def forward(self, image):
        exit1, f1 = stage1_forward(self, image)
        exit2, f2 = stage2_forward(self, f1)
        logits = stage3_forward(self, f2)
        return logits, exit1, exit2


STAGE_PARTS = {
    "stage1": ("block1", "head1_conv", "head1"),
    "stage2": ("block2", "head2"),
    "stage3": ("block3", "head3"),
}


class _Stage(nn.Module):
    parts = ()

    def __init__(self, full):
        super().__init__()
        for part in self.parts:
            setattr(self, part, getattr(full, part))


class Stage1(_Stage):
    parts = STAGE_PARTS["stage1"]

    def forward(self, image):
        return stage1_forward(self, image)


class Stage2(_Stage):
    parts = STAGE_PARTS["stage2"]

    def forward(self, features1):
        return stage2_forward(self, features1)


class Stage3(_Stage):
    parts = STAGE_PARTS["stage3"]

    def forward(self, features2):
        return stage3_forward(self, features2)


@torch.no_grad()
def fold_batchnorm(trained):
    """A BatchNorm-free copy of a trained model with the same eval-mode outputs."""
    trained.eval()
    plain = ShapesEarlyExit(batchnorm=False)
    source = trained.state_dict()
    state = {k: source[k].clone() for k in plain.state_dict()}
    for name, module in trained.named_modules():
        if isinstance(module, ConvUnit) and module.bn is not None:
            bn = module.bn
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            state[f"{name}.conv.weight"] = module.conv.weight * scale[:, None, None, None]
            state[f"{name}.conv.bias"] = (module.conv.bias - bn.running_mean) * scale + bn.bias
    plain.load_state_dict(state, strict=True)
    return plain.eval()


def stage_flops(model):
    """Analytic FLOPs per sample for each stage, and a per-layer breakdown.

    Convention: one multiply-add = 2 FLOPs; only convolutions and linear layers
    are counted (bias adds, ReLU and pooling are left out).  A convolution
    costs 2 * (Cin/groups) * kh * kw * Cout * Hout * Wout, a linear layer
    2 * in * out; the output sizes come from one forward pass on a 1-image batch.
    """
    layers = []

    def hook_for(stage, name):
        def hook(module, inputs, output):
            if isinstance(module, nn.Conv2d):
                kh, kw = module.kernel_size
                macs = (module.in_channels // module.groups) * kh * kw * output[0].numel()
            else:
                macs = module.in_features * module.out_features
            layers.append((stage, name, 2 * macs))
        return hook

    handles = []
    for stage, parts in STAGE_PARTS.items():
        for part in parts:
            for name, module in getattr(model, part).named_modules(prefix=part):
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    handles.append(module.register_forward_hook(hook_for(stage, name)))
    with torch.no_grad():
        model(torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE))
    for h in handles:
        h.remove()
    per_stage = {stage: int(sum(f for s_, _, f in layers if s_ == stage)) for stage in STAGE_PARTS}
    return per_stage, layers


# --------------------------------------------------------------------------
# Training / evaluation
# --------------------------------------------------------------------------
EXIT_WEIGHTS = (0.4, 0.7, 1.0)  # (exit1, exit2, final)


def train(model, x_train, y_train, epochs, batch_size=128, lr=3e-3):
    gen = torch.Generator().manual_seed(SEED)
    xt = torch.from_numpy(x_train)
    yt = torch.from_numpy(y_train)
    n = xt.shape[0]
    steps_per_epoch = (n + batch_size - 1) // batch_size
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch, pct_start=0.2)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        t0 = time.perf_counter()
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            xb, yb = xt[idx], yt[idx]
            # Mirror half of the batch: every class is mirror-symmetric.
            flip = torch.rand(xb.shape[0], generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], torch.flip(xb, dims=(3,)), xb)
            logits, e1, e2 = model(xb)
            loss = (
                EXIT_WEIGHTS[0] * F.cross_entropy(e1, yb)
                + EXIT_WEIGHTS[1] * F.cross_entropy(e2, yb)
                + EXIT_WEIGHTS[2] * F.cross_entropy(logits, yb)
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * xb.shape[0]
        print(f"epoch {epoch + 1:3d}/{epochs}  loss {total / n:.4f}  "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)


@torch.no_grad()
def predict(model, x, batch_size=500):
    model.eval()
    outs = [model(torch.from_numpy(x[i:i + batch_size])) for i in range(0, len(x), batch_size)]
    logits, e1, e2 = (torch.cat([o[k] for o in outs]) for k in range(3))
    return e1, e2, logits  # in exit order


def accuracy_table(exits, y, levels):
    yt = torch.from_numpy(y)
    table = {}
    for name, out in zip(("exit1_logits", "exit2_logits", "logits"), exits):
        correct = (out.argmax(dim=1) == yt).numpy()
        table[name] = {
            "overall": round(float(correct.mean()), 6),
            "by_difficulty": [round(float(correct[levels == lv].mean()), 6) for lv in range(LEVELS)],
        }
    return table


def threshold_table(exits, y, levels, flops):
    """Confidence-based early exit, simulated in torch on the eval set.

    A sample leaves at the first exit whose top softmax probability is >= the
    threshold; the final exit always answers.  Threshold 1.0 means "never exit
    early" (a saturated float32 softmax can reach exactly 1.0, so it is
    special-cased rather than compared).
    """
    yt = torch.from_numpy(y)
    probs = [F.softmax(o, dim=1) for o in exits]
    conf = torch.stack([p.max(dim=1).values for p in probs], dim=1)
    preds = torch.stack([p.argmax(dim=1) for p in probs], dim=1)
    cumulative = np.cumsum([flops["stage1"], flops["stage2"], flops["stage3"]])
    rows = []
    for t in THRESHOLDS:
        confident = conf[:, :2] >= t if t < 1.0 else torch.zeros_like(conf[:, :2], dtype=torch.bool)
        taken = torch.full((len(y),), 2, dtype=torch.long)
        taken = torch.where(confident[:, 1], torch.tensor(1), taken)
        taken = torch.where(confident[:, 0], torch.tensor(0), taken)
        pred = preds.gather(1, taken[:, None])[:, 0]
        correct = (pred == yt).numpy()
        k = taken.numpy()
        rows.append({
            "threshold": t,
            "accuracy": round(float(correct.mean()), 6),
            "exit_fraction": [round(float((k == e).mean()), 6) for e in range(3)],
            "mean_mflops": round(float(cumulative[k].mean()) / 1e6, 4),
            "by_difficulty": [
                {
                    "accuracy": round(float(correct[levels == lv].mean()), 6),
                    "exit_fraction": [round(float((k[levels == lv] == e).mean()), 6) for e in range(3)],
                }
                for lv in range(LEVELS)
            ],
        })
    return rows


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
        if not d < 1e-5:
            raise SystemExit(f"stage chain mismatch on {name}: max abs diff {d}")
    return diffs


# --------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------
ALLOWED_OPS = {"Conv", "Relu", "MaxPool", "GlobalAveragePool", "AveragePool",
               "Flatten", "Gemm", "MatMul", "Add"}


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
    onnx.checker.check_model(model, full_check=True)
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
    ops = sorted({node.op_type for node in graph.node})
    unexpected = [op for op in ops if op not in ALLOWED_OPS]
    if unexpected:
        raise SystemExit(f"{path}: unexpected operators {unexpected}")
    return ops


def save_npy(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        np.lib.format.write_array(f, array, version=(1, 0), allow_pickle=False)


# --------------------------------------------------------------------------
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-samples", type=int, default=TRAIN_SAMPLES)
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)

    deterministic = seed_everything(SEED)
    t0 = time.perf_counter()
    x_train, y_train, _ = make_dataset(args.train_samples, STREAM_TRAIN)
    x_calib, _, _ = make_dataset(CALIB_SAMPLES, STREAM_CALIB)
    x_eval, y_eval, d_eval = make_dataset(EVAL_SAMPLES, STREAM_EVAL)
    check_disjoint(x_eval, {"train": x_train, "calibration": x_calib})
    print(f"generated {len(y_train)} train, {CALIB_SAMPLES} calibration and "
          f"{len(y_eval)} eval images in {time.perf_counter() - t0:.1f} s", flush=True)

    flops, layers = stage_flops(ShapesEarlyExit())
    for stage, name, f in layers:
        print(f"  {stage}  {name:22s} {f / 1e6:8.3f} MFLOPs")
    for stage, f in flops.items():
        print(f"{stage}: {f / 1e6:.3f} MFLOPs")
    print(f"total: {sum(flops.values()) / 1e6:.3f} MFLOPs per sample", flush=True)

    model = ShapesEarlyExit(batchnorm=True)
    t0 = time.perf_counter()
    train(model, x_train, y_train, args.epochs)
    train_seconds = time.perf_counter() - t0

    # Fold batch norm away; everything below (accuracy, export) uses the
    # folded model, which is the one that ships.
    trained_outputs = predict(model, x_eval)
    model = fold_batchnorm(model)
    exits = predict(model, x_eval)
    fold_diff = max(float((a - b).abs().max()) for a, b in zip(trained_outputs, exits))
    if not fold_diff < 1e-3:
        raise SystemExit(f"batch-norm folding changed the outputs by {fold_diff}")
    acc = accuracy_table(exits, y_eval, d_eval)
    thresholds = threshold_table(exits, y_eval, d_eval, flops)
    diffs = check_stages_match(model, x_eval[:500])

    # ---- ONNX export -----------------------------------------------------
    example = torch.from_numpy(x_eval[:2])
    with torch.no_grad():
        _, f1_ex = stage1_forward(model, example)
        _, f2_ex = stage2_forward(model, f1_ex)
    full_path = os.path.join(out, "fp32", "shapes.onnx")
    s1_path = os.path.join(out, "early-exit", "stage1.onnx")
    s2_path = os.path.join(out, "early-exit", "stage2.onnx")
    s3_path = os.path.join(out, "early-exit", "stage3.onnx")
    export(model, example, full_path, ["image"], ["logits", "exit1_logits", "exit2_logits"])
    export(Stage1(model), example, s1_path, ["image"], ["exit1_logits", "features1"])
    export(Stage2(model), f1_ex, s2_path, ["features1"], ["exit2_logits", "features2"])
    export(Stage3(model), f2_ex, s3_path, ["features2"], ["logits"])

    b, c = "batch", NUM_CLASSES
    f1_shape = [b] + list(f1_ex.shape[1:])
    f2_shape = [b] + list(f2_ex.shape[1:])
    ops = {}
    ops["fp32/shapes.onnx"] = verify_onnx(
        full_path, [("image", [b, 3, IMAGE_SIZE, IMAGE_SIZE])],
        [("logits", [b, c]), ("exit1_logits", [b, c]), ("exit2_logits", [b, c])])
    ops["early-exit/stage1.onnx"] = verify_onnx(
        s1_path, [("image", [b, 3, IMAGE_SIZE, IMAGE_SIZE])],
        [("exit1_logits", [b, c]), ("features1", f1_shape)])
    ops["early-exit/stage2.onnx"] = verify_onnx(
        s2_path, [("features1", f1_shape)], [("exit2_logits", [b, c]), ("features2", f2_shape)])
    ops["early-exit/stage3.onnx"] = verify_onnx(s3_path, [("features2", f2_shape)], [("logits", [b, c])])

    # ---- Data files and labels -------------------------------------------
    save_npy(os.path.join(out, "eval", "images.npy"), x_eval.astype("<f4", copy=False))
    save_npy(os.path.join(out, "eval", "labels.npy"), y_eval.astype("<i8", copy=False))
    save_npy(os.path.join(out, "eval", "difficulty.npy"), d_eval.astype("<i8", copy=False))
    save_npy(os.path.join(out, "calib", "images.npy"), x_calib.astype("<f4", copy=False))
    with open(os.path.join(out, "labels.txt"), "w", newline="\n") as f:
        f.write("".join(f"{name}\n" for name in CLASSES))

    report = {
        "seed": SEED,
        "epochs": args.epochs,
        "deterministic_algorithms": deterministic,
        "train_samples": int(len(y_train)),
        "calibration_samples": CALIB_SAMPLES,
        "eval_samples": int(len(y_eval)),
        "eval_samples_per_difficulty": [int((d_eval == lv).sum()) for lv in range(LEVELS)],
        "classes": list(CLASSES),
        "flops_convention": "multiply-add = 2 FLOPs; conv and linear layers only; per sample",
        "flops_per_stage": flops,
        "flops_total": int(sum(flops.values())),
        "eval_accuracy": acc,
        "early_exit_thresholds": thresholds,
        "stage_chain_max_abs_diff": diffs,
        "batchnorm_fold_max_abs_diff": round(fold_diff, 8),
        "onnx_operators": ops,
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

    print(json.dumps({k: report[k] for k in ("eval_accuracy", "flops_per_stage", "flops_total")}, indent=2))
    print("threshold  accuracy  exit1   exit2   final   mean MFLOPs")
    for r in thresholds:
        e = r["exit_fraction"]
        print(f"{r['threshold']:9.2f}  {r['accuracy']:.4f}   {e[0]:.3f}   {e[1]:.3f}   {e[2]:.3f}   "
              f"{r['mean_mflops']:.2f}")
    print(f"training took {train_seconds:.1f} s")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
