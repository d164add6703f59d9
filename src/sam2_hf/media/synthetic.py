"""A synthetic test clip: moving shapes, one occluded and reappearing, one leaving and re-entering the frame.

Used by the tests, the benchmarks and the Space's bundled example; deterministic for given arguments.
"""

from __future__ import annotations

import numpy as np


def synthetic_clip(num_frames: int = 12, height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8 frames on a textured background.

    - a red disc moving left to right,
    - a blue square passing behind a grey bar (hidden in the middle frames),
    - a green square leaving through the right edge and coming back.
    """
    rng = np.random.default_rng(seed)
    background = (rng.random((height, width, 3)) * 40 + 100).astype(np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    bar = (xx >= width * 0.45) & (xx < width * 0.6)
    frames = []
    for t in range(num_frames):
        phase = t / max(num_frames - 1, 1)
        frame = background.copy()
        cx, cy, r = width * (0.15 + 0.5 * phase), height * 0.3, height * 0.12
        frame[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = (220, 40, 40)
        sx, sy, s = width * (0.2 + 0.6 * phase), height * 0.7, height * 0.1
        frame[(abs(xx - sx) <= s) & (abs(yy - sy) <= s)] = (40, 60, 220)
        gx = width * (0.75 + 0.5 * np.sin(np.pi * phase)) if num_frames > 1 else width * 0.75
        gy, g = height * 0.5, height * 0.08
        frame[(abs(xx - gx) <= g) & (abs(yy - gy) <= g)] = (40, 200, 60)
        frame[bar] = (128, 128, 128)  # the occluder is drawn last: it hides the blue square
        frames.append(frame)
    return np.stack(frames)


def save_jpeg_folder(frames: np.ndarray, folder) -> str:
    """Write frames as 00000.jpg, 00001.jpg, ... (the layout Meta's predictor reads)."""
    import os

    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(os.path.join(folder, f"{i:05d}.jpg"), quality=95)
    return str(folder)


def _texture(kind: str, yy: np.ndarray, xx: np.ndarray, period: float, angle: float) -> np.ndarray:
    """(H, W) bool pattern: "stripes" (bands at `angle` radians) or "checker" (squares), `period` pixels."""
    if kind == "stripes":
        return ((xx * np.cos(angle) + yy * np.sin(angle)) // (period / 2)) % 2 == 0
    return ((xx // (period / 2)) + (yy // (period / 2))) % 2 == 0


def textured_scene(
    num_frames: int = 1,
    height: int = 128,
    width: int = 128,
    num_targets: int = 2,
    num_distractors: int = 3,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Textured objects of one kind among look-alike distractors: a segmentation task that texture alone
    decides, for fine-tuning demos and tests. Deterministic for given arguments.

    Every object is an ellipse painted with two colours from one shared palette; targets carry diagonal
    stripes, distractors a checkerboard (same colours, sizes and motion), on a noisy background. Each object
    moves at a constant random velocity (pixels per frame), so in a clip targets may pass behind
    distractors or leave the frame (vanish). Targets are fully inside the first frame.

    Returns `frames` (T, H, W, 3) uint8 RGB and `instances` (T, H, W) uint8: 0 background and distractors,
    k for the visible pixels of target k (1..num_targets).
    """
    rng = np.random.default_rng(seed)
    colors = np.array([(200, 60, 50), (40, 90, 200), (230, 200, 60), (60, 170, 80), (240, 240, 240), (30, 30, 30)])
    background = (rng.random((height, width, 3)) * 50 + 90).astype(np.uint8)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    objects = []  # drawn in this (random) depth order: later objects cover earlier ones
    for k in rng.permutation(num_targets + num_distractors):
        is_target = k < num_targets
        ry, rx = rng.uniform(0.08, 0.18, 2) * min(height, width)
        cy, cx = rng.uniform(ry, height - ry), rng.uniform(rx, width - rx)
        velocity = rng.uniform(-0.04, 0.04, 2) * (height, width)
        pair = colors[rng.choice(len(colors), 2, replace=False)]
        pattern = _texture("stripes" if is_target else "checker", yy, xx, rng.uniform(6, 12), rng.uniform(0, np.pi))
        painted = np.where(pattern[..., None], *pair)
        objects.append((int(k) + 1 if is_target else 0, (cy, cx), (ry, rx), velocity, painted))
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    instances = np.zeros((num_frames, height, width), dtype=np.uint8)
    for t in range(num_frames):
        frames[t] = background
        for obj_id, (cy, cx), (ry, rx), (vy, vx), painted in objects:
            inside = ((yy - cy - vy * t) / ry) ** 2 + ((xx - cx - vx * t) / rx) ** 2 <= 1
            frames[t][inside] = painted[inside]
            instances[t][inside] = obj_id
    return frames, instances
