"""`ExportedBackend`: the compute seam (backends/protocol.py) on graphs written by `export_model` (backends/export.py),
run by ONNX Runtime, OpenVINO or torch.export's loader. Only the four parts change; every predictor, the tracker,
the automatic mask generator, the CLI and the Space keep their one implementation above the seam.

Each engine turns named float32 / int64 / bool tensors into the graph's outputs; the parts here only arrange the
inputs (one prompt point list, stacked memories) and pick the decoder's outputs with the same `choose_outputs` the
torch part uses. An "fp32" export is exact: float32 throughout (parity with the torch backend is tested,
tests/test_export.py); a lower-precision one (backends/precision.py) says so (`exact`, `precision`, `agreement`).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..models.components.mask_decoder import DecoderOutput, choose_outputs
from ..models.components.prompt_encoder import mask_input_at, not_a_point_prompt, sparse_prompt_points
from ..models.configuration import Sam2Config, Sam2VideoConfig, check_requested_model
from ..models.modeling import stack_selections
from ..models.outputs import MemorySelection, Sam2FrameFeatures
from .export import CONSTANTS, EXTRAS, FORMAT_VERSION, FORMATS, MANIFEST, import_optional, read_json
from .precision import PRECISIONS, Precision, check_engine, get_precision

EXACT = PRECISIONS["fp32"]

ENGINES = {"onnxruntime": "onnx", "openvino": "openvino", "torch-export": "torch"}  # engine -> the format it reads


class OnnxRuntimeGraph:
    """One `.onnx` graph (float32 or int8-quantized) in an ONNX Runtime session on the CPU."""

    def __init__(self, path: Path, threads: int | None = None, precision: Precision = EXACT):
        del precision  # ONNX Runtime computes what the graph holds
        ort = import_optional("onnxruntime")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # no busy-waiting between calls: ONNX Runtime's spinning workers took the CPU from the torch parts run next
        # (backend auto in the Space's Fast preset: 0.36-0.37 s per video frame with spinning, 0.32-0.33 s without,
        # torch alone 0.32 s; 2-core CPU)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # no memory pattern (one pre-planned block for all of a run's intermediate tensors): at 1024 px it doubled
        # the working memory of the image encoder (1,312-1,325 MiB vs 690-700) and of the memory attention (1,284 vs
        # 643) for 3-4 % less time per encoder call and none per decoder call (tiny, one-off, 2-core CPU)
        options.enable_mem_pattern = False
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        feed = {name: x.detach().cpu().numpy() for name, x in zip(self.names, inputs, strict=True)}
        return [torch.from_numpy(y) for y in self.session.run(None, feed)]


class OpenVinoGraph:
    """One OpenVINO graph (`.xml` IR, or `.onnx` read directly) compiled for the CPU, computing in the export's
    precision (float32 when exact: OpenVINO would otherwise pick bf16 on CPUs that have it). The compiled graph is
    kept in OpenVINO's model cache (`openvino_cache`), so the next process loads it instead of compiling again."""

    def __init__(self, path: Path, threads: int | None = None, precision: Precision = EXACT):
        openvino = import_optional("openvino")
        config = {"INFERENCE_NUM_THREADS": threads} if threads else {}
        config["INFERENCE_PRECISION_HINT"] = precision.openvino_hint
        cache = openvino_cache()
        if cache is not None:
            config["CACHE_DIR"] = str(cache)
        self.model = openvino.Core().compile_model(str(path), "CPU", config)

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        results = self.model([x.detach().cpu().numpy() for x in inputs])
        return [torch.from_numpy(results[output].copy()) for output in self.model.outputs]


def exported_config(manifest: dict) -> Sam2Config:
    """The config of the model an export was written from (its `export.json`)."""
    config_class = Sam2VideoConfig if manifest["model_class"] == "Sam2VideoModel" else Sam2Config
    return config_class.from_dict(manifest["config"])


def openvino_cache() -> Path | None:
    """OpenVINO's model cache (`CACHE_DIR`): `openvino` in the export cache (`SAM2_HF_EXPORT_CACHE`); None where it
    cannot be made (a read-only home: graphs are then compiled on every load)."""
    from . import export_cache

    folder = export_cache() / "openvino"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


class ExportedProgramGraph:
    """One torch.export ExportedProgram (`.pt2`), run as the module it unflattens to."""

    def __init__(self, path: Path, threads: int | None = None, precision: Precision = EXACT):
        del threads, precision  # torch's own thread setting applies; torch exports are float32 only
        self.module = torch.export.load(path).module()

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            out = self.module(*inputs)
        return list(out) if isinstance(out, tuple | list) else [out]


GRAPH_RUNNERS = {"onnxruntime": OnnxRuntimeGraph, "openvino": OpenVinoGraph, "torch-export": ExportedProgramGraph}


def read_manifest(folder: Path, engine: str) -> dict:
    """`export.json` of `folder`, checked: it exists, its format version is this code's, the engine can read its
    format and every graph file is there. ValueError / FileNotFoundError naming what is wrong."""
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not an exported sam2_hf model: no {MANIFEST} (write one with "
                                f"`sam2-hf export MODEL --format onnx --out {folder}`).")  # fmt: skip
    manifest = read_json(folder)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{folder} was exported in format version {manifest.get('format_version')}; this sam2_hf "
                         f"reads version {FORMAT_VERSION}. Export the model again with this version.")  # fmt: skip
    if engine not in ENGINES:
        raise ValueError(f"Unknown exported backend {engine!r}; choose one of {sorted(ENGINES)}.")
    if manifest["format"] not in READS[engine]:
        raise ValueError(f"{folder} holds an export in format {manifest['format']!r}, which backend {engine!r} "
                         f"cannot read; run it with {engine_choices(manifest)}, or export with "
                         f"--format {ENGINES[engine]} for {engine}.")  # fmt: skip
    for name, file in manifest["graphs"].items():
        if not (folder / file).is_file():
            raise FileNotFoundError(f"{folder} lacks the {name} graph ({file}); export the model again.")
    check_engine(manifest.get("precision", "fp32"), engine, folder)
    return manifest


class ExportedBackend:
    """The four parts on an exported folder. `config` comes from `export.json`; `device` is the CPU, `dtype`
    float32 (the dtype of what goes in and out; a lower-precision export computes inside in its `precision`, and
    `exact` is False, its measured agreement in `agreement`). Raises what `read_manifest` raises for a folder that
    does not fit, and ImportError naming the extra for a missing runtime."""

    def __init__(self, folder: str | Path, engine: str = "onnxruntime", threads: int | None = None, wrap=None):
        """`wrap(name, runner)`, if given, replaces each graph's runner (e.g. to record its inputs)."""
        folder = Path(folder)
        manifest = read_manifest(folder, engine)
        self.folder, self.engine, self.manifest = folder, engine, manifest
        self._config = exported_config(manifest)
        self.precision = get_precision(manifest.get("precision", "fp32"))
        runner = GRAPH_RUNNERS[engine]
        graphs = {name: runner(folder / file, threads, self.precision) for name, file in manifest["graphs"].items()}
        if wrap is not None:
            graphs = {name: wrap(name, graph) for name, graph in graphs.items()}
        constants = load_file(folder / CONSTANTS)
        stability = manifest["stability_rule"]
        self.image_encoder = ExportedImageEncoder(graphs["image_encoder"], constants["no_memory_embedding"])
        self.mask_decoder = ExportedMaskDecoder(
            graphs["mask_decoder"], graphs.get("mask_downsample"), graphs.get("object_pointer"),
            constants.get("no_object_pointer"), self._config, tuple(stability) if stability else None,
        )  # fmt: skip
        video = "memory_attention" in graphs
        self.memory_attention = ExportedMemoryAttention(graphs["memory_attention"], self._config) if video else None
        self.memory_encoder = ExportedMemoryEncoder(graphs["memory_encoder"]) if video else None

    @property
    def config(self) -> Sam2Config:
        return self._config

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def exact(self) -> bool:
        """Whether the graphs compute what the torch model computes (float32), within float32 rounding."""
        return self.precision.exact

    @property
    def agreement(self) -> dict | None:
        """A lower-precision export's agreement with the exact masks, measured when it was written
        (tasks/lower_precision.py); None for an exact export."""
        return self.manifest.get("agreement")

    def matches(self, weights_sha256: str) -> bool:
        """Whether the folder was exported from weights with this hash (`export.weights_hash`)."""
        return self.manifest["weights_sha256"] == weights_sha256


def one_call_each(graph, count: int, inputs_of) -> list[torch.Tensor]:
    """Runs `graph` once per item (image, prompt set or object) `i < count` on `inputs_of(i)` and concatenates each
    output over the items. The graphs take a batch, but ONNX Runtime and OpenVINO then keep every item's
    intermediate blocks at once: at 1024 px the exported video held 999-1,113 MiB more peak memory per object with
    every part batched (`git show 93a84a6:bench/results/memory_per_object.md`), 7-31 MiB item by item (`git show
    5ba93af:...`), which is also faster here (one-off, tiny at 1024, onnxruntime: 16 prompt sets through the mask
    decoder 732 ms vs 881 ms batched)."""
    outputs = [graph(*inputs_of(i)) for i in range(count)]
    return [torch.cat(parts) for parts in zip(*outputs)]


class ExportedImageEncoder:
    def __init__(self, graph, no_memory_embedding: torch.Tensor):
        self.graph, self.no_memory_embedding = graph, no_memory_embedding

    def encode_frame(self, pixel_values: torch.Tensor) -> Sam2FrameFeatures:
        """(B, 3, S, S) -> features; the graph takes one image, so a batch runs image by image."""
        embeddings, feat_s0, feat_s1, positions = one_call_each(
            self.graph, len(pixel_values), lambda i: (pixel_values[i : i + 1].float(),)
        )
        return Sam2FrameFeatures(embeddings, [feat_s0, feat_s1], positions[:1])

    def image_only_embedding(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        return image_embeddings + self.no_memory_embedding.reshape(1, -1, 1, 1)


class ExportedMaskDecoder:
    def __init__(self, graph, downsample, pointer, no_object_pointer, config: Sam2Config, stability):
        self.graph, self.downsample, self.pointer = graph, downsample, pointer
        self._no_object_pointer, self.stability = no_object_pointer, stability
        h = config.image_size // 16
        self.mask_input_size = (4 * h, 4 * h)

    def decode(self, image_embeddings, high_res_features, points=None, labels=None, boxes=None, mask_inputs=None,
               multimask_output=True, empty_prompt_as_point=True, image_projections=None) -> DecoderOutput:  # fmt: skip
        """As `Sam2Model.decode` (backends/protocol.py): the prompt becomes one point list for the graph, which runs
        once per prompt set (`one_call_each`) and projects the image itself (`image_projections` is None here)."""
        n = image_embeddings.shape[0]
        if points is None and boxes is None and empty_prompt_as_point:
            points, labels = not_a_point_prompt(n, image_embeddings)
        if points is None and boxes is None:
            coords, kinds = image_embeddings.new_zeros(n, 0, 2), torch.zeros(n, 0, dtype=torch.int64)
        else:
            coords, kinds = sparse_prompt_points(points, labels, boxes)
        has_mask = mask_inputs is not None
        masks = (
            mask_input_at(mask_inputs, self.mask_input_size) if has_mask else torch.zeros(1, 1, *self.mask_input_size)
        )
        masks, has_mask = masks.float().expand(n, -1, -1, -1), torch.tensor(has_mask)
        feat_s0, feat_s1 = (f.float() for f in high_res_features)
        out = one_call_each(self.graph, n, lambda i: (
            image_embeddings[i : i + 1].float(), feat_s0[i : i + 1], feat_s1[i : i + 1], coords[i : i + 1].float(),
            kinds[i : i + 1].long(), masks[i : i + 1], has_mask,
        ))  # fmt: skip
        return choose_outputs(DecoderOutput(*out), multimask_output, self.stability)

    def project_image(self, image_embeddings: torch.Tensor) -> None:
        return None  # the graph projects the image tokens in each call

    def downsample_mask(self, mask: torch.Tensor) -> torch.Tensor:
        return self.downsample(mask.float())[0]

    def project_object_pointer(self, mask_token: torch.Tensor) -> torch.Tensor:
        return self.pointer(mask_token.float())[0]

    @property
    def no_object_pointer(self) -> torch.Tensor:
        return self._no_object_pointer


class ExportedMemoryAttention:
    def __init__(self, graph, config: Sam2VideoConfig):
        self.graph, self.pointer_dim = graph, config.vision_config.fpn_hidden_size

    def condition_on_memory(self, features: Sam2FrameFeatures, selections: Sequence[MemorySelection]) -> torch.Tensor:
        """The torch part's interface (features of one frame shared by the objects, or one frame per object; one
        `MemorySelection` per object -> (N, 256, h, w)), one graph call per object with that object's memories and
        pointers (`one_call_each`; the batched graph held about 1 GB more peak memory per object at 1024 px)."""
        memories, index, pointers, offsets, max_pointers = stack_selections(selections, torch.float32, self.pointer_dim)
        emb, max_pointers = features.image_embeddings.float(), torch.tensor(float(max_pointers))
        return one_call_each(self.graph, len(memories), lambda i: (
            emb[i : i + 1] if len(emb) > 1 else emb, features.position_embeddings, memories[i : i + 1],
            index[i : i + 1], pointers[i : i + 1].float(), offsets[i : i + 1], max_pointers,
        ))[0]  # fmt: skip


class ExportedMemoryEncoder:
    def __init__(self, graph):
        self.graph = graph

    def encode_memory(self, features, high_res_masks, object_score_logits, binarize=False) -> torch.Tensor:
        """As `Sam2VideoModel.encode_memory` (backends/protocol.py), one graph call per object (`one_call_each`)."""
        emb, binarize = features.image_embeddings.float(), torch.tensor(bool(binarize))
        return one_call_each(self.graph, len(high_res_masks), lambda i: (
            emb[i : i + 1] if len(emb) > 1 else emb, high_res_masks[i : i + 1].float(),
            object_score_logits[i : i + 1].float(), binarize,
        ))[0]  # fmt: skip


READS = {"onnxruntime": {"onnx"}, "openvino": {"onnx", "openvino"}, "torch-export": {"torch"}}  # engine -> formats


def reading_engines(content: dict) -> list[str]:
    """The engines that read an export's format and run its precision (`content`: its `export.json`), the one
    written for its format first (onnx: onnxruntime; openvino: openvino; torch: torch-export)."""
    fmt, engines = content.get("format"), get_precision(content.get("precision", "fp32")).engines
    readable = [e for e in ENGINES if e in engines and fmt in READS[e]]
    return sorted(readable, key=lambda e: ENGINES[e] != fmt)


def engine_installed(engine: str) -> bool:
    """Whether `engine` can run here (torch-export needs only torch)."""
    return engine not in EXTRAS or importlib.util.find_spec(engine) is not None


def engine_choices(content: dict) -> str:
    """The backends that run an export (`content`: its `export.json`), as an error message offers them to Python and
    command-line users alike; an engine that is not installed names the extra that installs it."""
    names = [
        e if engine_installed(e) else f"{e} (not installed: pip install 'sam2-hf[{EXTRAS[e]}]')"
        for e in reading_engines(content)
    ]
    return f"backend= (--backend on the command line) one of: {', '.join(names + ['auto'])}"


def default_engine(folder: Path) -> str:
    """The engine an exported folder runs on when no backend is given: the one written for its format that runs its
    precision (a bf16 ONNX export: openvino), so every export loads without naming one."""
    return (reading_engines(read_json(folder)) or ["onnxruntime"])[0]


def fastest_engine(folder: Path) -> str:
    """The engine backend="auto" runs an exported folder on: the fastest installed one (in `CPU_SPEED_ORDER`, then
    torch-export) of those that read its format and run its precision."""
    from . import CPU_SPEED_ORDER

    order = list(CPU_SPEED_ORDER)
    readable = sorted(reading_engines(read_json(folder)), key=lambda e: order.index(e) if e in order else len(order))
    installed = [e for e in readable if engine_installed(e)]
    return (installed or readable or ["onnxruntime"])[0]


def exported_folder_backend(model_id, backend, device, loading_kwargs: dict, needs_memory: bool = False):
    """What a predictor's `from_pretrained` does with a folder written by `sam2-hf export`: the `ExportedBackend` on
    it (engine `backend`; none given: `default_engine`, the one written for its format; "auto": `fastest_engine`);
    None when `model_id` is not such a folder.

    Raises ValueError naming the problem for a backend that cannot run it ("torch": the folder holds graphs, not the
    model), a device other than the CPU, a `size` / `version` other than the exported model's, model-loading
    keywords the exported graphs cannot honour (their input size and dtype are fixed at export), and
    (`needs_memory`) an export without memory graphs used for video;
    FileNotFoundError for a folder of graphs without its `export.json`. All checked before a graph is compiled.
    """
    folder = Path(model_id) if isinstance(model_id, str | Path) else None
    if folder is None or not (folder / MANIFEST).is_file():
        check_not_a_partial_export(folder)
        return None
    engine = fastest_engine(folder) if backend == "auto" else backend or default_engine(folder)
    if not isinstance(engine, str) or engine not in ENGINES:
        original = f", or load the original model for backend={engine!r}" if engine in ("torch", "compile") else ""
        raise ValueError(f"{folder} is an exported model: run it with {engine_choices(read_json(folder))}"
                         f"{original}.")  # fmt: skip
    if device is not None and torch.device(device).type != "cpu":
        raise ValueError(f"Exported runtimes run on the CPU here; device={device!r} is not supported for {folder}.")
    content = read_manifest(folder, engine)  # checked before the graphs are compiled (OpenVINO: up to minutes)
    if needs_memory and "memory_attention" not in content["graphs"]:
        raise ValueError(f"{folder} holds no memory graphs (exported from a Sam2Model, or with --image-only); video "
                         "tracking needs a full export of a Sam2VideoModel.")  # fmt: skip
    config = exported_config(content)
    check_requested_model(
        f"the exported model in {folder}", config, loading_kwargs.pop("size", None), loading_kwargs.pop("version", None)
    )
    exported_size = config.image_size
    size = loading_kwargs.pop("image_size", exported_size)
    if size != exported_size:
        raise ValueError(f"{folder} was exported at image_size={exported_size}, not {size}: export the model again "
                         "at that size.")  # fmt: skip
    if loading_kwargs:
        raise ValueError(f"Loading options {sorted(loading_kwargs)} do not apply to the exported model in {folder} "
                         "(its graphs are fixed at export: float32 inputs and outputs, one input size; a lower "
                         "precision is an export option, `sam2-hf export --precision`).")  # fmt: skip
    return ExportedBackend(folder, engine)


def check_not_a_partial_export(folder: Path | None) -> None:
    """FileNotFoundError for a folder that holds exported graphs but no `export.json` (written last by an export:
    one that did not finish, or a file removed), which would otherwise be read as a model folder."""
    if folder is None or not folder.is_dir() or (folder / "config.json").is_file():
        return
    graphs = sorted(p.name for suffix in FORMATS.values() for p in folder.glob(f"*{suffix}"))
    if graphs:
        raise FileNotFoundError(f"{folder} holds exported graphs ({', '.join(graphs)}) but no {MANIFEST}, which "
                                "`sam2-hf export` writes last: the export did not finish or the file was removed; "
                                "export the model again.")  # fmt: skip
