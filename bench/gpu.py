"""GPU section: frames per second of sam2_hf beside Meta's `vos_optimized` predictor on the same GPU.

UNTESTED: written on a machine without CUDA, where only the skip path (`{"measured": False, ...}`) has run.

With CUDA: for each size, image_size 1024, one object clicked on frame 0 of the synthetic clip, frames per
second over the frames after `warmup` (cuda-synchronised), for sam2_hf in fp32 and bf16 (autocast), eager and
with its modules `torch.compile`d, and Meta's `build_sam2_video_predictor(..., vos_optimized=True)` (its own
compiled VOS predictor) in the same two precisions. Same seeded random weights as the CPU sections.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch

from .common import object_clicks, prepare_weights, reference_module, write_jpeg_folder
from .video import predictor_frames

SIZES = ("tiny", "small", "base-plus", "large")
COMPILED_MODULES = ("vision_encoder", "memory_attention", "memory_encoder", "mask_decoder")


def frames_per_second(predictor, folder: Path, click, dtype, warmup: int) -> float:
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        stream = predictor_frames(predictor, folder, [click])
        for _ in range(warmup + 1):
            next(stream)
        torch.cuda.synchronize()
        start, count = time.perf_counter(), 0
        for _ in stream:
            count += 1
        torch.cuda.synchronize()
    return count / (time.perf_counter() - start)


def meta_vos_predictor(weights):
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from sam2.build_sam import build_sam2_video_predictor

    config = reference_module().META_CONFIGS[(weights.size, weights.version)]
    GlobalHydra.instance().clear()
    with initialize_config_module("sam2", version_base="1.2"):
        return build_sam2_video_predictor(config, str(weights.pt), device="cuda", vos_optimized=True)


def sam2_hf_predictor(weights, compiled: bool):
    from sam2_hf.predictors.video_predictor import Sam2VideoPredictor

    predictor = Sam2VideoPredictor.from_pretrained(weights.folder, device="cuda", fill_hole_area=0)
    if compiled:
        for name in COMPILED_MODULES:
            getattr(predictor.model, name).compile()
    return predictor


def run_gpu(workdir: Path, sizes=SIZES, num_frames: int = 40, warmup: int = 10) -> dict:
    if not torch.cuda.is_available():
        return {"measured": False, "reason": "no CUDA device (torch.cuda.is_available() is False)"}
    folder = write_jpeg_folder(workdir / f"frames_{num_frames}_480x640", num_frames, 480, 640)
    click = object_clicks(1, 480, 640)[0]
    rows = []
    for size in sizes:
        weights = prepare_weights(workdir, 1024, size)
        for impl, compiled in (("sam2_hf", False), ("sam2_hf", True), ("meta vos_optimized", True)):
            predictor = meta_vos_predictor(weights) if impl.startswith("meta") else sam2_hf_predictor(weights, compiled)
            for dtype in ("fp32", "bf16"):
                fps = frames_per_second(predictor, folder, click, dtype, warmup)
                rows.append({"size": size, "impl": impl, "compiled": compiled, "dtype": dtype, "fps": fps})
            del predictor
            torch.cuda.empty_cache()
    return {"measured": True, "device": torch.cuda.get_device_name(), "frames": num_frames, "warmup": warmup,
            "rows": rows}  # fmt: skip
