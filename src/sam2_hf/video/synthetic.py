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
