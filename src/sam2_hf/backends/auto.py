"""backend="auto" on the CPU: for each of the compute seam's four parts, the exact engine that ran it fastest on
this machine, at this model's size, measured once and kept beside the model's exports.

Which engine is fastest depends on the part, the input size and the CPU: on the 2-core Xeon of bench/results/backends
OpenVINO encoded a frame faster than eager torch at 1024 px, while torch's attention kernel read the memory bank
faster. So "auto" times each part on each installed exact engine (torch, onnxruntime, openvino: float32 all three,
the same masks within float32 rounding, tests/test_export.py) on steady-state inputs of the model's size, and runs
each part on its fastest (`MixedBackend`). The parts that take a batch of objects (mask decoder, memory attention,
memory encoder) are timed with one object and with `OBJECT_COUNTS[-1]` tracked together, and a call runs on the engine
fastest at the count nearer its own (`PartByObjects`): the fastest engine changes with the count (on the CPU above,
onnxruntime's memory attention took 1.13x torch's time for one object and 1.28x for three; torch attends the frame's
first self-attention once for all objects). The measurement (`measure_parts`: a few minutes at 1024 px, the export
included) is stored as `auto-<model>-<size>-<weights hash>.json` in the export cache with the CPU, thread count and
engines it was made with, and made again when any of them differs.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..models.outputs import FrameOutput, MemorySelection

logger = logging.getLogger(__name__)  # says which engine runs which part (the CLI shows it on stderr)
PARTS = ("image_encoder", "mask_decoder", "memory_attention", "memory_encoder")  # the seam's parts (protocol.py)
BATCHED_PARTS = ("mask_decoder", "memory_attention", "memory_encoder")  # their calls take N objects (prompt sets)
OBJECT_COUNTS = (1, 2)  # the object counts the batched parts are timed at (the image encoder: one frame)
REPEATS = 3  # timed calls per part and engine, taken in turns (A B C A B C), after one untimed call each
MEASUREMENT_VERSION = 5  # raised when what is measured changes; older measurements are made again (2: per count;
# 3: the exported memory attention runs object by object; 4: so do the mask decoder and the memory encoder; 5: a
# click is decoded with the image's decoder projections made beforehand)


class MixedBackend:
    """The four parts, each from the backend that ran it fastest: `engines` {objects: {part: backend name}} and
    `seconds` {objects: {part: {backend: median seconds per call}}} as measured (`OBJECT_COUNTS`; the image encoder
    at 1 only). A part whose fastest engine depends on the count is a `PartByObjects`. Float32 throughout: every part
    it takes is exact."""

    def __init__(self, backends: dict, engines: dict[int, dict[str, str]], seconds: dict[int, dict[str, dict]]):
        self.engines, self.seconds = engines, seconds
        torch_backend = backends["torch"]
        self._config, self._device = torch_backend.config, torch_backend.device
        for part in PARTS:
            by_count = self.engines_of(part)
            if len(set(by_count.values())) > 1:
                setattr(self, part, PartByObjects({n: getattr(backends[e], part) for n, e in by_count.items()}))
            else:
                setattr(self, part, getattr(backends[next(iter(by_count.values()), "torch")], part))

    def engines_of(self, part: str) -> dict[int, str]:
        """{objects: the engine that runs `part` for that many} (none for a part not measured: an image model's
        memory parts)."""
        return {n: chosen[part] for n, chosen in self.engines.items() if part in chosen}

    @property
    def config(self):
        return self._config

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def describe(self) -> str:
        """Which engine runs which part, e.g. "image encoder openvino, mask decoder onnxruntime, memory attention
        onnxruntime for 1 object, torch for 2+ objects"."""
        described = []
        for part in PARTS:
            chosen = self.engines_of(part)
            if len(set(chosen.values())) == 1:
                described.append(f"{part.replace('_', ' ')} {next(iter(chosen.values()))}")
            elif chosen:
                counts = ", ".join(f"{e} for {objects_label(n, n == max(chosen))}" for n, e in chosen.items())
                described.append(f"{part.replace('_', ' ')} {counts}")
        return ", ".join(described)


def objects_label(n: int, or_more: bool = False) -> str:
    """'1 object', '3 objects', '2+ objects'."""
    return f"{n}{'+' * or_more} object{'s' * (n > 1 or or_more)}"


class PartByObjects:
    """One part on two engines: a call with N objects (prompt sets) runs on the one measured fastest at the count
    of `parts` ({objects: that engine's part}) nearest N (a tie: the larger count). Same methods as the part."""

    def __init__(self, parts: dict[int, object]):
        self.parts = parts

    def at(self, n: int):
        """The part that runs a call with `n` objects."""
        return self.parts[min(self.parts, key=lambda count: (abs(count - n), -count))]

    def decode(self, image_embeddings: torch.Tensor, *args, **kwargs):
        return self.at(len(image_embeddings)).decode(image_embeddings, *args, **kwargs)

    def project_image(self, image_embeddings: torch.Tensor):
        """The projections of the first engine that makes them (the others' `decode` ignores them), else None."""
        projected = (part.project_image(image_embeddings) for part in self.parts.values())
        return next((p for p in projected if p is not None), None)

    def downsample_mask(self, mask: torch.Tensor) -> torch.Tensor:
        return self.at(len(mask)).downsample_mask(mask)

    def project_object_pointer(self, mask_token: torch.Tensor) -> torch.Tensor:
        return self.at(len(mask_token)).project_object_pointer(mask_token)

    @property
    def no_object_pointer(self) -> torch.Tensor:
        return self.at(1).no_object_pointer

    def condition_on_memory(self, features, selections) -> torch.Tensor:
        return self.at(len(selections)).condition_on_memory(features, selections)

    def encode_memory(self, features, high_res_masks: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self.at(len(high_res_masks)).encode_memory(features, high_res_masks, *args, **kwargs)


def installed_candidates() -> list[str]:
    """The exact engines installed (of `CPU_SPEED_ORDER`), torch first (always there; it wins a tie)."""
    from . import CPU_SPEED_ORDER

    installed = [name for name, module in CPU_SPEED_ORDER.items() if importlib.util.find_spec(module) is not None]
    return sorted(installed, key=lambda name: name != "torch")


def auto_backend(model) -> MixedBackend:
    """The `MixedBackend` for `model` (float32, on the CPU): from its stored measurement when that was made on this
    CPU with this many threads and the same engines installed, otherwise measured now (`measure_parts`) and stored.
    Only the engines it runs are kept (each exported engine holds its compiled graphs)."""
    from . import export_cache
    from .export import weights_hash

    candidates = installed_candidates()
    path = export_cache() / f"auto-{type(model).__name__}-{model.config.image_size}-{weights_hash(model)[:24]}.json"
    machine = {"cpu": cpu_name(), "threads": torch.get_num_threads(), "candidates": candidates}
    stored = json.loads(path.read_text()) if path.is_file() else {}
    measured = stored.get("machine") != machine or stored.get("version") != MEASUREMENT_VERSION
    backends = {name: engine_backend(model, name) for name in (candidates if measured else ["torch"])}
    parts = [p for p in PARTS if getattr(backends["torch"], p) is not None]
    if measured:
        logger.info("measuring %s on %s for %s at %d px (once; kept in %s)", ", ".join(parts), ", ".join(candidates),
                    type(model).__name__, model.config.image_size, path)  # fmt: skip
        stored = {"version": MEASUREMENT_VERSION, "machine": machine, "seconds": measure_parts(backends, parts)}
        path.parent.mkdir(parents=True, exist_ok=True)
        written = path.with_name(f"{path.name}.{os.getpid()}")
        written.write_text(json.dumps(stored, indent=2))
        written.replace(path)  # whole, also with two processes measuring at once
    seconds = {int(n): by_part for n, by_part in stored["seconds"].items()}  # JSON keys are strings
    engines = {n: {part: min(s, key=s.get) for part, s in by_part.items()} for n, by_part in seconds.items()}
    for name in {e for chosen in engines.values() for e in chosen.values()} - set(backends):
        backends[name] = engine_backend(model, name)
    backend = MixedBackend(backends, engines, seconds)
    logger.info("backend auto at %d px: %s (%s %s)", model.config.image_size, backend.describe(),
                "measured now, kept in" if measured else "as measured in", path)  # fmt: skip
    return backend


def engine_backend(model, name: str):
    """`model`'s parts on engine `name`: the model itself for "torch", else its ONNX export (made once, cached; OpenVINO
    reads the ONNX graphs too, so one export serves both engines)."""
    from . import cached_export
    from .exported import ExportedBackend
    from .torch import TorchBackend

    return TorchBackend(model) if name == "torch" else ExportedBackend(cached_export(model, "onnx"), name)


def measure_parts(backends: dict, parts=PARTS, repeats: int = REPEATS) -> dict[int, dict[str, dict[str, float]]]:
    """Median seconds per call of each part on each backend, {objects: {part: {name: seconds}}}: every part with one
    object, the `BATCHED_PARTS` also at the other `OBJECT_COUNTS`, on `part_calls`' inputs; the backends take turns
    call by call, so a change of load hits them all."""
    calls = {name: part_calls(backend) for name, backend in backends.items()}
    return {
        objects: {
            part: measure_part({name: c[objects][part] for name, c in calls.items()}, repeats)
            for part in parts
            if objects == 1 or part in BATCHED_PARTS
        }
        for objects in OBJECT_COUNTS
    }


def measure_part(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """{name: median seconds} of `repeats` timed calls each, in turns, after one untimed call each (first-call set-up:
    OpenVINO plans shapes on first sight)."""
    samples = {name: [] for name in calls}
    for call in calls.values():
        call()
    for _ in range(repeats):
        for name, call in calls.items():
            began = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - began)
    return {name: statistics.median(values) for name, values in samples.items()}


def part_calls(backend) -> dict[int, dict[str, Callable[[], object]]]:
    """{objects: {part: one call}} on steady-state inputs at the backend's size, for each of `OBJECT_COUNTS` (objects
    or prompt sets tracked together; the image encoder with one): a frame encoded, a click per object decoded (with
    the image's decoder projections made beforehand, as the image predictor's clicks are), each object's full memory
    bank attended (num_maskmem frames, max_object_pointers_in_encoder object pointers), their memories encoded. The
    frame is encoded once for all of them. Random values: time does not depend on them."""
    config = backend.config
    size = config.image_size
    generator = torch.Generator().manual_seed(0)
    random = lambda *shape: torch.randn(*shape, generator=generator)
    with torch.inference_mode():
        features = backend.image_encoder.encode_frame(random(1, 3, size, size))
        projections = backend.mask_decoder.project_image(features.image_embeddings)
    bank = full_memory_bank(config, features.image_embeddings.shape[-1], random) if backend.memory_attention else None

    def batched(objects: int) -> dict[str, Callable[[], object]]:
        batch = [f.expand(objects, -1, -1, -1) for f in (features.image_embeddings, *features.high_res_features)]
        points, labels = torch.tensor([[[size / 3, size / 2]]] * objects), torch.tensor([[1]] * objects)
        calls = {"mask_decoder": lambda: backend.mask_decoder.decode(
            batch[0], batch[1:], points, labels, image_projections=projections
        )}  # fmt: skip
        if bank is not None:
            masks, scores = random(objects, 1, size, size), torch.ones(objects, 1)
            calls["memory_attention"] = lambda: backend.memory_attention.condition_on_memory(features, [bank] * objects)
            calls["memory_encoder"] = lambda: backend.memory_encoder.encode_memory(features, masks, scores)
        return calls

    by_count = {objects: batched(objects) for objects in OBJECT_COUNTS}
    by_count[1]["image_encoder"] = lambda: backend.image_encoder.encode_frame(random(1, 3, size, size))
    return {objects: {part: inference(call) for part, call in calls.items()} for objects, calls in by_count.items()}


def inference(call: Callable[[], object]) -> Callable[[], object]:
    def run():
        with torch.inference_mode():
            return call()

    return run


def full_memory_bank(config, h: int, random) -> MemorySelection:
    """One object's memory at steady state: a conditioning frame, num_maskmem - 1 recent frames and
    max_object_pointers_in_encoder object pointers (what `ReferenceSelection.select` gives in a long video)."""
    channels, width = config.memory_encoder_output_channels, config.vision_config.fpn_hidden_size
    output = lambda: FrameOutput(
        mask_logits=random(1, 1, 4 * h, 4 * h),
        object_pointer=random(1, width),
        object_score_logits=torch.ones(1, 1),
        memory=random(1, channels, h, h).to(torch.bfloat16),
    )
    spatial = [(0, output())] + [(config.num_maskmem - k, output()) for k in range(1, config.num_maskmem)]
    pointers = [(t, output()) for t in range(1, config.max_object_pointers_in_encoder + 1)]
    return MemorySelection(spatial, pointers, config.max_object_pointers_in_encoder)


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else the machine type."""
    import platform

    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
