"""Time per frame of each speed preset, through the Space's own session code.

    python -m space.benchmark                  # random-weight SAM 2.1 tiny (1024 px), 640x360 synthetic clip
    python -m space.benchmark --model facebook/sam2.1-hiera-tiny --frames 24

Prints, per preset: the click latency on a new frame (image encoder + decoder) and on the same frame
again (decoder only: the embedding is reused), and tracking time per tracked frame and per video frame
(two objects, forward from frame 0). Then, per effect, the time to draw one frame with it (the frame view's and
the exports' renderer; two objects tracked at the last preset).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from sam2_hf import Sam2VideoConfig, Sam2VideoModel
from sam2_hf.media.render import BACKGROUND_EFFECTS, OBJECT_EFFECTS, Effects
from sam2_hf.media.synthetic import synthetic_clip

from . import engine
from .config import BACKEND_CHOICES, SPEEDS, AppConfig, default_device
from .engine import Engine
from .models import ModelStore
from .render import overlay_masks
from .session import Session
from .video import write_mp4


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="Hub id, folder or Meta .pt (default: random-weight tiny at 1024 px)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", default="640x360", help="WIDTHxHEIGHT of the synthetic clip")
    parser.add_argument("--device", default=None)
    parser.add_argument("--backend", default="auto", choices=BACKEND_CHOICES, help="what runs the model (the app's)")
    args = parser.parse_args(argv)
    width, height = map(int, args.size.split("x"))
    device = args.device or default_device()
    work = Path(tempfile.mkdtemp(prefix="sam2-space-bench-"))
    model = args.model
    if model is None:
        torch.manual_seed(0)
        model = str(work / "random-tiny")
        Sam2VideoModel(Sam2VideoConfig.from_size("tiny")).save_pretrained(model)
    backend = AppConfig(device=device, backend=args.backend).resolved_backend()
    models = ModelStore(device, backend=backend)
    engine.ENGINE = Engine(models)
    clip = write_mp4(synthetic_clip(args.frames, height, width), work / "clip.mp4")
    print(
        f"{model} on {device} ({torch.get_num_threads()} threads, backend {backend}), {args.frames} frames of "
        f"{width}×{height}, 2 objects"
    )
    print(f"{'preset':<38} {'click new frame':>15} {'click again':>11} {'s/tracked frame':>15} {'s/video frame':>13}")
    for key, speed in SPEEDS.items():
        session = Session(f"bench-{key}", AppConfig(model=model, device=device, speed=key), models, work)
        session.load_video(clip, lambda i, n: None)
        began = time.perf_counter()
        session.add_point(1, 1, width * 0.15, height * 0.3)  # frame 1: not encoded by loading
        new_frame = time.perf_counter() - began
        began = time.perf_counter()
        session.add_point(1, 1, width * 0.2, height * 0.3, "negative")
        same_frame = time.perf_counter() - began
        session.add_object()
        session.add_point(0, 2, width * 0.2, height * 0.7)
        began, steps = time.perf_counter(), []
        for _ in session.track(0, "forward"):
            steps.append(time.perf_counter() - began)
        total = steps[-1]
        per_tracked = (total - steps[0]) / max(len(steps) - 1, 1)  # the start frame is the clicked one: no work
        label = speed.label(models.native_size(model))
        print(
            f"{label:<38} {new_frame:>14.2f}s {same_frame:>10.2f}s {per_tracked:>14.2f}s {total / args.frames:>12.2f}s"
        )
        if key != list(SPEEDS)[-1]:
            session.close()
    print(f"\n{'effect':<24} {'ms/frame':>8}")
    for name, effects in [
        *((f"background {b}", Effects(background=b)) for b in BACKGROUND_EFFECTS),
        *((f"objects {o}", Effects(default_object=o)) for o in OBJECT_EFFECTS),
    ]:
        print(f"{name:<24} {1000 * draw_seconds(session, effects):>8.1f}")
    session.close()


def draw_seconds(session: Session, effects: Effects) -> float:
    """Mean seconds to draw one of the session's frames with its masks and `effects` (`overlay_masks`)."""
    frames = range(session.video.num_frames)
    began = time.perf_counter()
    for t in frames:
        overlay_masks(session.frames.frame(t), session.results.masks(t), effects)
    return (time.perf_counter() - began) / len(frames)


if __name__ == "__main__":
    main()
