"""Backends: what runs the compute seam's four parts (protocol.py). One table, one place to add a backend.

- "torch": the model itself, eager PyTorch (`TorchBackend`), the default;
- "compile": the same parts with the model's compute methods compiled by torch.compile (`CompiledBackend`);
- "onnxruntime", "openvino", "torch-export": the model's graphs exported (export.py) into a cache folder keyed by a
  hash of its weights (`SAM2_HF_EXPORT_CACHE`, default ~/.cache/sam2_hf/exports), run by that engine
  (`ExportedBackend`); exact (float32), tested against "torch" (tests/test_export.py).

- "auto": on the CPU in float32, each part on the exact engine (torch, onnxruntime, openvino) that ran it fastest on
  this machine at the model's size, measured once and kept in the export cache (auto.py, `MixedBackend`); "torch"
  elsewhere. The CLI's and the Space's default.

`make_backend(model, "onnxruntime")` is what every predictor does with its `backend=` option, so `from_pretrained(...,
backend="openvino")`, `Sam2Tracker`, the automatic mask generator and the CLI's `--backend` all take a name.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from .protocol import Sam2Backend
from .torch import TorchBackend

BACKENDS = ("torch", "compile", "onnxruntime", "openvino", "torch-export", "auto")
# The exact engines an exported folder can run on, fastest first on the CPU (bench/results/backends/suite.md, tiny
# 2.1 at 1024: OpenVINO before onnxruntime per image and per video frame), each with the module it needs. A model
# (not a folder) on auto is measured part by part instead (auto.py).
CPU_SPEED_ORDER = {"openvino": "openvino", "onnxruntime": "onnxruntime", "torch": "torch"}


def auto_measures(device=None, dtype=None) -> bool:
    """Whether backend="auto" measures the exported engines for a model on `device` in `dtype` (auto.py): on the CPU
    in float32 (dtype None) with onnxruntime or OpenVINO installed. Elsewhere auto is "torch" (the exported runtimes
    run float32 on the CPU here)."""
    import torch  # here: this package's `torch` is its torch backend module

    if (device is not None and torch.device(device).type != "cpu") or dtype not in (None, torch.float32):
        return False
    exported = [module for name, module in CPU_SPEED_ORDER.items() if name != "torch"]
    return any(importlib.util.find_spec(module) is not None for module in exported)


def export_cache() -> Path:
    """Where `make_backend` keeps exports: `SAM2_HF_EXPORT_CACHE`, default ~/.cache/sam2_hf/exports."""
    return Path(os.environ.get("SAM2_HF_EXPORT_CACHE", Path.home() / ".cache" / "sam2_hf" / "exports"))


def make_backend(model, backend: str | Sam2Backend | None = None) -> Sam2Backend:
    """The backend a predictor runs on: None or "torch" -> `TorchBackend(model)`; "auto" -> `auto.auto_backend(model)`
    where `auto_measures` (a `MixedBackend`), else `TorchBackend(model)`; "compile" ->
    `CompiledBackend(model)`; an engine name -> the model's export (made once, then reused from the cache) run by
    that engine; a backend object -> itself.

    Raises ValueError for an unknown name (naming the choices) and ImportError naming the extra for a missing engine.
    """
    if backend == "auto":
        if auto_measures(next(model.parameters()).device, model.dtype):
            from .auto import auto_backend

            return auto_backend(model)
        backend = "torch"
    if backend is None or backend == "torch":
        return TorchBackend(model)
    if not isinstance(backend, str):
        return backend
    if backend not in BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}; choose one of {list(BACKENDS)}.")
    if backend == "compile":
        from .compiled import CompiledBackend

        return CompiledBackend(model)
    from .exported import ENGINES, ExportedBackend

    return ExportedBackend(cached_export(model, ENGINES[backend]), backend)


def cached_export(model, format: str) -> Path:
    """The folder holding `model`'s export in `format`: made in the cache on first use (written to a temporary folder
    and renamed, so an interrupted export leaves nothing half-written), reused while the weights are the same."""
    from .export import MANIFEST, export_model, staging_folder, weights_hash

    folder = export_cache() / f"{type(model).__name__}-{model.config.image_size}-{weights_hash(model)[:24]}-{format}"
    if (folder / MANIFEST).is_file():
        return folder
    staging = staging_folder(folder.parent)
    try:
        export_model(model, staging, format)
        staging.rename(folder)
    except OSError:
        if not (folder / MANIFEST).is_file():  # not another process's finished export
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
