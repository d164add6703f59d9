"""What the Space can be told at start-up: the model, the video limits and the speed presets.

`python app.py --help` lists the flags; `SAM2_HF_MODEL` sets the model too (the flag wins);
`--random-weights` runs offline on an untrained model.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

from sam2_hf.models.configuration import DEFAULT_MODEL

MODEL_ENV = "SAM2_HF_MODEL"
BACKEND_ENV = "SAM2_HF_BACKEND"  # as the CLI's (sam2_hf.cli.common)
BACKEND_CHOICES = ("auto", "torch", "compile", "onnxruntime", "openvino")
RANDOM_MODEL = "random-weights:sam2.1-hiera-tiny"  # --random-weights: no download, meaningless masks
UNTRAINED = "The model is untrained (random weights, --random-weights): its masks are meaningless."
SIZES = ("tiny", "small", "base-plus", "large")
HUB_MODELS = tuple(f"facebook/sam{version}-hiera-{size}" for version in ("2.1", "2") for size in SIZES)
MIN_IMAGE_SIZE = 128  # below this SAM 2's masks become too coarse to be useful
ORDINALS = {2: "2nd", 3: "3rd"}


def noted(text: str, model: str) -> str:
    """`text`, followed by the warning that the masks are meaningless when `model` is RANDOM_MODEL."""
    return f"{text} {UNTRAINED}" if model == RANDOM_MODEL else text


def every(stride: int) -> str:
    """The stride in words: every frame, every 2nd frame, every 4th frame, ..."""
    return "every frame" if stride == 1 else f"every {ORDINALS.get(stride, f'{stride}th')} frame"


@dataclass(frozen=True)
class Speed:
    """A speed/quality trade-off: the model's input size (a fraction of its native one) and how
    many frames tracking steps over (masks are held on the frames in between; clicked frames are
    always tracked)."""

    key: str
    name: str
    scale: float
    stride: int

    def image_size(self, native: int) -> int:
        return max(MIN_IMAGE_SIZE, round(native * self.scale / 32) * 32)

    def label(self, native: int) -> str:
        return f"{self.name} · {self.image_size(native)} px · {every(self.stride)}"


SPEEDS = {
    s.key: s
    for s in (
        Speed("best", "Best", 1.0, 1),
        Speed("balanced", "Balanced", 0.5, 1),
        Speed("fast", "Fast", 0.5, 2),
        Speed("fastest", "Fastest", 0.375, 4),
    )
}
DEFAULT_SPEED = {"cpu": "fast", "cuda": "best"}


@dataclass(frozen=True)
class Limits:
    """What one upload may be; larger videos are trimmed / downscaled with a notice, never refused,
    except beyond `max_input_pixels` (decoding such frames would exhaust memory)."""

    max_seconds: float = 10.0
    max_frames: int = 300
    max_side: int = 1280
    max_input_pixels: int = 7680 * 4320
    max_upload_mb: int = 200
    max_objects: int = 8
    max_track_seconds: float = 900.0  # one tracking run; what is done by then is kept


@dataclass(frozen=True)
class AppConfig:
    """The app's settings. How it queues (README, "The Space": "Under load"): clicks, frame changes, uploads,
    tracking and exports wait in separate lines (Gradio concurrency groups, `ui.wire`), so a click never waits
    behind a tracking run; the model computes one thing at a time, a waiting click first, and the admitted
    tracking runs take turns frame by frame (`engine.ComputeTurns`)."""

    model: str = DEFAULT_MODEL
    device: str = "cpu"
    limits: Limits = field(default_factory=Limits)
    speed: str = DEFAULT_SPEED["cpu"]
    feature_cache_mb: int = 256  # per session: image embeddings kept for re-tracking
    track_concurrency: int = 4  # tracking runs admitted at once, taking turns; the others wait and see their place
    queue_size: int = 256  # requests waiting at once, all kinds; beyond it Gradio refuses ("Queue is full")
    max_sessions: int = 64  # sessions holding a video; another upload is told how many are here and when to return
    examples: bool = True
    # What runs the model (sam2_hf.backends; $SAM2_HF_BACKEND): "auto" by default: on a CPU each part of the model on
    # the exact engine (torch, onnxruntime, openvino) that ran it fastest here at the variant's input size, measured
    # once per size (sam2_hf/backends/auto.py); the default speed's size is prepared at start-up (`ui.prepare_backend`),
    # another size on first use. "torch" runs the model itself; an engine name runs the whole model on that engine.
    backend: str = field(default_factory=lambda: os.environ.get(BACKEND_ENV) or "auto")

    def resolved_backend(self) -> str:
        """`backend`, with "auto" replaced by "torch" where it has nothing to measure (another device than the CPU,
        or neither onnxruntime nor OpenVINO installed: sam2_hf.backends.auto_measures)."""
        from sam2_hf.backends import auto_measures

        return ("auto" if auto_measures(self.device) else "torch") if self.backend == "auto" else self.backend


def default_device() -> str:
    import torch

    from .gpu import ZERO_GPU

    return "cuda" if ZERO_GPU or torch.cuda.is_available() else "cpu"


def parse_args(argv=None) -> tuple[AppConfig, argparse.Namespace]:
    """(config, the launch options: host, port, share)."""
    p = argparse.ArgumentParser(description="SAM 2 video masklets: the Gradio Space.")
    model = p.add_mutually_exclusive_group()
    model.add_argument(
        "--model",
        default=os.environ.get(MODEL_ENV) or DEFAULT_MODEL,
        help=f"Hub id, a folder saved with save_pretrained, or a Meta .pt (env {MODEL_ENV}; default: %(default)s)",
    )
    model.add_argument(
        "--random-weights",
        action="store_true",
        help="run offline on SAM 2.1 tiny with seeded random weights (no download; the masks are meaningless)",
    )
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--speed", choices=SPEEDS, default=None, help="speed preset (default: fast on cpu, best on gpu)")
    p.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default=os.environ.get(BACKEND_ENV) or "auto",
        help=f"what runs the model (env {BACKEND_ENV}; default: %(default)s: on a CPU each part on the fastest exact "
        "engine installed, measured at start-up)",
    )
    p.add_argument(
        "--max-seconds", type=float, default=Limits.max_seconds, help="longer videos are trimmed (default: %(default)g)"
    )
    p.add_argument(
        "--max-side", type=int, default=Limits.max_side, help="larger videos are downscaled (px; default: %(default)s)"
    )
    p.add_argument(
        "--max-frames", type=int, default=Limits.max_frames, help="longer videos are trimmed (default: %(default)s)"
    )
    p.add_argument(
        "--track-concurrency",
        type=int,
        default=AppConfig.track_concurrency,
        help="tracking runs admitted at once, taking turns frame by frame (default: %(default)s)",
    )
    p.add_argument(
        "--queue-size",
        type=int,
        default=AppConfig.queue_size,
        help="requests that may wait at once, all kinds (default: %(default)s)",
    )
    p.add_argument(
        "--max-sessions",
        type=int,
        default=AppConfig.max_sessions,
        help="sessions holding a video at once; the next upload is told when to return (default: %(default)s)",
    )
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"), help="(default: %(default)s)")
    p.add_argument(
        "--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)), help="(default: %(default)s)"
    )
    p.add_argument("--share", action="store_true", help="create a public gradio.live link")
    args = p.parse_args(argv)
    device = args.device or default_device()
    limits = Limits(max_seconds=args.max_seconds, max_side=args.max_side, max_frames=args.max_frames)
    speed = args.speed or DEFAULT_SPEED["cuda" if device.startswith("cuda") else "cpu"]
    model = RANDOM_MODEL if args.random_weights else args.model
    queueing = dict(
        track_concurrency=args.track_concurrency, queue_size=args.queue_size, max_sessions=args.max_sessions
    )
    for name, value in queueing.items():
        if value < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    return AppConfig(model=model, device=device, limits=limits, speed=speed, backend=args.backend, **queueing), args
