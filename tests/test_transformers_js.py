"""transformers.js (npm `@huggingface/transformers`) loads a folder written by `sam2-hf export --format
transformers.js` (backends/transformers_js.py) and segments with the masks of `Sam2ImagePredictor`.

The model is the seeded random tiny SAM 2.1 at 256 px (its Meta `.pt`, exported by the CLI), the image a 256 x 256
synthetic frame: the model's input size, so neither side resizes it (transformers.js resizes with sharp, this package
as Meta does; only an image already at the input size gives both the same pixels). Five prompts cover what
transformers.js' `Sam2Model` sends the decoder graph: a click, a positive and a negative click, a box with a click,
two boxes (two prompt sets, no points), two one-click prompt sets.

- `test_layout_and_graphs_on_onnxruntime` (no Node needed): the files, names, dtypes and configs transformers.js
  reads, and onnxruntime running the two graphs on the inputs transformers.js builds, against the predictor.
- `test_transformers_js_segments_like_the_predictor`: Node runs tests/js/sam2_transformers_js.mjs with
  @huggingface/transformers (installed once with npm into ~/.cache/sam2_hf/npm, `SAM2_HF_NPM_CACHE`; skipped without
  node / npm or an npm registry): its processor's pixels, its decoder's low-resolution logits and IoU scores and its
  `post_process_masks` masks against the predictor's.

Tolerance: transformers.js runs float32 graphs traced from the model on onnxruntime-node, the predictor runs the model
in torch, so they differ by float32 rounding only. Measured here (2-core x86 CPU, onnxruntime-node 1.30 under
transformers.js 4.3.2, torch 2.14): pixel_values within 1.2e-7, low-resolution logits (spanning about +-0.65) within
9.2e-7, IoU scores within 6e-8, no mask pixel different. LOGIT_TOL = 1e-4 (the bound tests/test_export.py holds
exported graphs to) leaves room for other CPUs' kernels and still catches prompt errors: moving the click by 0.1 pixel
changes these logits by 6e-4 (by 5.7e-3 for 1 pixel). Masks must be equal except where the predictor's full-size
logit is within LOGIT_TOL of the threshold (bilinear upscaling is a convex combination, so it keeps the logits' bound).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest

from sam2_hf import Sam2ImagePredictor, Sam2Model
from sam2_hf.backends.transformers_js import EMBEDDINGS, GRAPHS
from sam2_hf.cli import main as cli
from sam2_hf.media.synthetic import synthetic_clip
from sam2_hf.processing.image_processing import Sam2ImageProcessor

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

SIZE = 256
LOGIT_TOL = 1e-4
LOW_RES_LIMIT = 32.0  # the predictor clamps its low-resolution logits to +-32
VERSION = "4.3.2"
TRANSFORMERS_JS = f"@huggingface/transformers@{VERSION}"
SCRIPT = Path(__file__).parent / "js" / "sam2_transformers_js.mjs"
IMAGE = synthetic_clip(num_frames=1, height=SIZE, width=SIZE)[0]  # (256, 256, 3) uint8
# As transformers.js' processor takes them (image pixels; points (P, N, 2), labels (P, N), boxes (1, NB, 4)), with the
# same prompt as the predictor's arguments.
PROMPTS = [
    ({"input_points": [[[60, 75]]], "input_labels": [[1]]}, {"point_coords": [[60, 75]], "point_labels": [1]}),
    (
        {"input_points": [[[60, 75], [200, 180]]], "input_labels": [[1, 0]]},
        {"point_coords": [[60, 75], [200, 180]], "point_labels": [1, 0]},
    ),
    (
        {"input_points": [[[60, 75]]], "input_labels": [[1]], "input_boxes": [[[30, 40, 110, 120]]]},
        {"point_coords": [[60, 75]], "point_labels": [1], "box": [30, 40, 110, 120]},
    ),
    (
        {"input_boxes": [[[30, 40, 110, 120], [120, 140, 250, 230]]]},
        {"box": [[30, 40, 110, 120], [120, 140, 250, 230]]},
    ),
    (
        {"input_points": [[[60, 75]], [[180, 200]]], "input_labels": [[1], [1]]},
        {"point_coords": [[[60, 75]], [[180, 200]]], "point_labels": [[1], [1]]},
    ),
]


@pytest.fixture(scope="module")
def reference(reference_models):
    return reference_models("tiny", "2.1", SIZE)


@pytest.fixture(scope="module")
def folder(reference, tmp_path_factory):
    """The model exported by `sam2-hf export --format transformers.js`, once for the module."""
    out = tmp_path_factory.mktemp("transformers-js") / "sam2-tiny-256"
    args = ["export", str(reference.path), "--format", "transformers.js", "--out", str(out), "--image-size", str(SIZE)]
    assert cli(args) == 0
    return out


@pytest.fixture(scope="module")
def expected(reference):
    """The predictor's results for each prompt: low-resolution logits (Q, 3, 64, 64), IoU scores (Q, 3), full-size
    logits (Q, 3, 256, 256), for Q prompt sets."""
    predictor = Sam2ImagePredictor(reference.load(Sam2Model).eval())
    predictor.set_image(IMAGE)
    results = []
    for _, arguments in PROMPTS:
        logits, iou, low_res = predictor.predict(**arguments, multimask_output=True, return_logits=True)
        results.append({"low_res": low_res.reshape(-1, 3, SIZE // 4, SIZE // 4), "iou": iou.reshape(-1, 3),
                        "logits": logits.reshape(-1, 3, SIZE, SIZE)})  # fmt: skip
    return results


def model_input(image: np.ndarray) -> np.ndarray:
    """This package's preprocessing of `image`: pixel_values (1, 3, SIZE, SIZE) float32."""
    return Sam2ImageProcessor.for_image_size(SIZE)(image, return_tensors="pt")["pixel_values"].numpy()


def js_decoder_inputs(prompt: dict) -> dict:
    """What transformers.js' `Sam2Model.forward` gives the decoder graph (an image at the input size: pixels as given):
    points with an empty box list, or boxes with one empty point set."""
    feed = {}
    if "input_points" in prompt:
        feed["input_points"] = np.array([prompt["input_points"]], dtype=np.float32)
        feed["input_labels"] = np.array([prompt["input_labels"]], dtype=np.int64)
        boxes = np.array(prompt.get("input_boxes", np.zeros((1, 0, 4))), dtype=np.float32)
    else:
        boxes = np.array(prompt["input_boxes"], dtype=np.float32)
        feed["input_points"] = np.zeros((1, 1, 0, 2), dtype=np.float32)
        feed["input_labels"] = np.zeros((1, 1, 0), dtype=np.int64)
    return {**feed, "input_boxes": boxes.reshape(1, -1, 4)}


def compare_logits(low_res: np.ndarray, iou: np.ndarray, want: dict) -> float:
    """Largest difference of low-resolution logits (clamped as the predictor clamps them) and IoU scores."""
    assert low_res.shape == want["low_res"].shape and iou.shape == want["iou"].shape
    low_res = np.clip(low_res, -LOW_RES_LIMIT, LOW_RES_LIMIT)
    return max(float(np.abs(low_res - want["low_res"]).max()), float(np.abs(iou - want["iou"]).max()))


def check_masks(masks: np.ndarray, want: dict) -> int:
    """Masks equal to the predictor's except near the threshold; returns how many pixels differ there."""
    assert masks.shape == want["logits"].shape
    differ = masks != (want["logits"] > 0)
    assert np.all(np.abs(want["logits"][differ]) <= LOGIT_TOL), "masks differ away from the threshold"
    return int(differ.sum())


def test_layout_and_graphs_on_onnxruntime(folder, expected):
    graphs = {name: onnx.load(folder / "onnx" / f"{name}.onnx") for name in GRAPHS}
    float32, int64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
    kinds = lambda values: {v.name: v.type.tensor_type.elem_type for v in values}
    assert kinds(graphs["vision_encoder"].graph.input) == {"pixel_values": float32}
    assert kinds(graphs["vision_encoder"].graph.output) == dict.fromkeys(EMBEDDINGS, float32)
    decoder = graphs["prompt_encoder_mask_decoder"].graph
    assert kinds(decoder.input) == {**dict.fromkeys(EMBEDDINGS, float32), "input_points": float32,
                                    "input_labels": int64, "input_boxes": float32}  # fmt: skip
    assert kinds(decoder.output) == dict.fromkeys(("iou_scores", "pred_masks", "object_score_logits"), float32)
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "sam2" and config["vision_config"]["num_feature_levels"] == 3
    assert config["transformers.js_config"] == {"dtype": "fp32"}
    preprocessor = json.loads((folder / "preprocessor_config.json").read_text())
    assert preprocessor["image_processor_type"] == "Sam2ImageProcessor"
    assert preprocessor["size"] == {"height": SIZE, "width": SIZE} and preprocessor["do_normalize"]

    session = lambda name: ort.InferenceSession(
        str(folder / "onnx" / f"{name}.onnx"), providers=["CPUExecutionProvider"]
    )
    pixel_values = model_input(IMAGE)
    embeddings = dict(zip(EMBEDDINGS, session("vision_encoder").run(None, {"pixel_values": pixel_values})))
    assert [e.shape[1:] for e in embeddings.values()] == [(32, 64, 64), (64, 32, 32), (256, 16, 16)]
    decoder = session("prompt_encoder_mask_decoder")
    worst = 0.0
    for (prompt, _), want in zip(PROMPTS, expected, strict=True):
        iou, low_res, object_scores = decoder.run(None, {**embeddings, **js_decoder_inputs(prompt)})
        assert object_scores.shape == (1, len(want["iou"]), 1)
        worst = max(worst, compare_logits(low_res[0], iou[0], want))
    assert worst <= LOGIT_TOL, worst


# ------------------------------------------------------------------------------------------------ Node.js


@pytest.fixture(scope="module")
def transformers_js() -> Path:
    """A folder whose node_modules holds @huggingface/transformers: installed once with npm into the cache
    (`SAM2_HF_NPM_CACHE`, default ~/.cache/sam2_hf/npm; a staging folder renamed when complete). Skips without node /
    npm or when the npm registry cannot be reached."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node / npm are not installed: the transformers.js check runs @huggingface/transformers in Node.js")
    root = Path(os.environ.get("SAM2_HF_NPM_CACHE", Path.home() / ".cache" / "sam2_hf" / "npm"))
    prefix = root / f"transformers-js-{VERSION}"
    installed = prefix / "node_modules" / "@huggingface" / "transformers" / "package.json"
    if installed.is_file():
        return prefix
    quick = ["--fetch-retries=0", "--fetch-timeout=20000"]
    try:
        probe = subprocess.run([npm, "view", TRANSFORMERS_JS, "version", *quick], capture_output=True, text=True,
                               timeout=60)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.skip(f"the npm registry did not answer within 60 s (npm view {TRANSFORMERS_JS})")
    if probe.returncode != 0:
        pytest.skip(f"the npm registry is unreachable (npm view {TRANSFORMERS_JS}): {probe.stderr.strip()[:300]}")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".install-"))
    env = {**os.environ, "ONNXRUNTIME_NODE_INSTALL_CUDA": "skip"}  # CPU only: no CUDA download at install time
    try:
        install = subprocess.run(
            [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund", "--omit=dev", TRANSFORMERS_JS],
            capture_output=True, text=True, timeout=600, env=env,
        )  # fmt: skip
        if install.returncode != 0:
            pytest.fail(f"npm install {TRANSFORMERS_JS} failed:\n{install.stderr[-2000:]}")
        try:
            staging.rename(prefix)
        except OSError:
            if not installed.is_file():  # not another process's finished install
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return prefix


def decode(field: dict) -> np.ndarray:
    dtype = {"float32": np.float32, "bool": np.uint8, "uint8": np.uint8}[field["type"]]
    return np.frombuffer(base64.b64decode(field["data"]), dtype=dtype).reshape(field["dims"])


def test_transformers_js_segments_like_the_predictor(transformers_js, folder, expected, tmp_path):
    image = tmp_path / "image.rgb"
    image.write_bytes(np.ascontiguousarray(IMAGE).tobytes())
    request = {"model": str(folder), "image": str(image), "width": SIZE, "height": SIZE,
               "prompts": [prompt for prompt, _ in PROMPTS], "out": str(tmp_path / "result.json")}  # fmt: skip
    (tmp_path / "request.json").write_text(json.dumps(request))
    run = subprocess.run([shutil.which("node"), str(SCRIPT), str(transformers_js), str(tmp_path / "request.json")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["version"] == VERSION

    pixel_values = model_input(IMAGE)
    assert np.abs(decode(result["pixel_values"]) - pixel_values[0]).max() <= 1e-6  # the same model input

    worst, near_threshold, fractions = 0.0, 0, []
    for got, want in zip(result["results"], expected, strict=True):
        q = len(want["iou"])
        assert decode(got["object_score_logits"]).shape == (1, q, 1)
        worst = max(worst, compare_logits(decode(got["pred_masks"])[0], decode(got["iou_scores"])[0], want))
        masks = decode(got["masks"]).astype(bool)  # post_process_masks: (Q, 3, 256, 256)
        near_threshold += check_masks(masks, want)
        fractions += [float(m.mean()) for m in masks.reshape(-1, SIZE * SIZE)]
    assert worst <= LOGIT_TOL, worst
    # The compared masks are neither empty nor full: the threshold is crossed inside the image.
    assert all(0.01 < f < 0.99 for f in fractions), fractions
    assert near_threshold <= 1e-4 * len(fractions) * SIZE * SIZE, near_threshold
