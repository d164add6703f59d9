"""Lower-precision exports (issue 23, opt-in, never exact): `sam2-hf export --precision bf16 | fp16 | int8 |
int8-static` writes graphs that compute in that precision, records how far their masks are from the exact ones
(`agreement` in export.json, printed by the command), and every predictor runs them as it runs an exact export.

The model is the content-bearing tiny SAM 2.1 at 256 px (tests/content_weights.py), so the masks compared are
partial, moving objects, not empty or saturated ones. The stored agreement is checked by recomputing it with the
public function a user would call, and each export is shown to compute differently from the exact graphs (it is
not the float32 export under another name).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sam2_hf import Sam2ImagePredictor, Sam2VideoModel, Sam2VideoPredictor
from sam2_hf.backends.export import MANIFEST
from sam2_hf.backends.exported import ExportedBackend
from sam2_hf.backends.torch import TorchBackend
from sam2_hf.cli import main as cli
from sam2_hf.media.synthetic import synthetic_clip
from sam2_hf.tasks.lower_precision import agreement, export_lower_precision

onnx = pytest.importorskip("onnx")
openvino = pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")

CLIP = synthetic_clip(num_frames=8, height=96, width=128)  # the clip the content-bearing weights were trained on


@pytest.fixture(scope="module")
def reference(video_reference):
    return video_reference(content=True)


@pytest.fixture(scope="module")
def model(reference):
    return reference.load(Sam2VideoModel)


@pytest.fixture(scope="module")
def frames_folder(tmp_path_factory):
    from PIL import Image

    folder = tmp_path_factory.mktemp("frames")
    for t, frame in enumerate(CLIP):
        Image.fromarray(frame).save(folder / f"{t:05d}.png")
    return folder


def first_frame_logits(backend) -> torch.Tensor:
    """The mask logits of one click on the first clip frame, on `backend`."""
    predictor = Sam2ImagePredictor(None, backend=backend)
    predictor.set_image(CLIP[0])
    _, _, low_res = predictor.predict(np.array([[19, 28]]), np.array([1]), multimask_output=False, return_logits=True)
    return torch.as_tensor(low_res)


def check_report(report: dict, model, folder, engine: str, clip) -> None:
    """The stored report is what `agreement` computes again on the same `clip`; its masks are not trivial; the
    export is close to the exact masks yet computes differently."""
    stored = json.loads((folder / MANIFEST).read_text())
    assert stored["agreement"] == report
    exported = ExportedBackend(folder, engine)
    assert not exported.exact and exported.agreement == report
    assert agreement(TorchBackend(model), exported, clip) == report
    for obj in report["objects"].values():  # partial masks: objects found, not the whole frame
        assert 0 < obj["exact_mask_pixels"] < 0.5 * report["pixels"] / len(report["objects"])
    assert 0.7 < report["iou_mean"] <= 1 and 0 <= report["iou_min"] <= report["iou_mean"]
    exact = first_frame_logits(TorchBackend(model))
    assert (first_frame_logits(exported) - exact).abs().max() > 1e-4  # not the float32 graphs


def test_int8_export_through_the_command(reference, model, frames_folder, tmp_path, capsys, caplog):
    out = tmp_path / "int8"
    argv = ["export", str(reference.path), "--image-size", "256", "--precision", "int8", "--out", str(out)]
    assert cli([*argv, "--check-clip", str(frames_folder)]) == 0
    quantizer = [r.getMessage() for r in caplog.records if "quantization" in r.pathname]
    assert not quantizer  # ONNX Runtime quantizer's root-logger advice is not shown (the agreement is, below)
    printed = capsys.readouterr().out
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["precision"] == "int8" and "not exact" in printed and "IoU mean" in printed
    assert manifest["quantized_graphs"] == ["image_encoder", "memory_attention", "memory_encoder"]
    ops = {node.op_type for node in onnx.load(out / "image_encoder.onnx").graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops
    assert "MatMulInteger" not in {node.op_type for node in onnx.load(out / "mask_decoder.onnx").graph.node}
    report = manifest["agreement"]
    assert f"{report['iou_mean']:.3f}" in printed and str(frames_folder) in report["clip"]
    first = report["objects"]["1"]  # each object's exact mask pixels are printed beside its IoU
    assert f"1: {first['iou_mean']:.3f} ({first['exact_mask_pixels']} exact mask pixels)" in printed
    check_report(report, model, out, "onnxruntime", frames_folder)
    with pytest.raises(ValueError, match="int8 export, which runs on onnxruntime"):
        ExportedBackend(out, "openvino")
    track = ["track", str(frames_folder), "--model", str(out), "--point", "0,19,28", "--out", str(tmp_path / "masks")]
    assert cli(track) == 0
    said = capsys.readouterr().err
    assert f"holds a lower-precision export (int8): masks not exact (IoU mean {report['iou_mean']:.3f}" in said
    tracker = Sam2VideoPredictor.from_pretrained(out)  # every predictor runs it as an exact export
    state = tracker.init_state(CLIP)
    tracker.add_new_points_or_box(state, 0, 1, points=[[19, 28]], labels=[1])
    assert sum(1 for _ in tracker.propagate_in_video(state)) == len(CLIP)


def test_int8_static_openvino_calibrated_on_the_users_frames(model, frames_folder, tmp_path, capsys):
    out = tmp_path / "static"
    report = export_lower_precision(model, out, "openvino", "int8-static", calibration=frames_folder, check_clip=CLIP)
    printed = capsys.readouterr()
    assert "NNCF" not in printed.out  # stdout keeps the agreement report; NNCF's progress, each graph named, on stderr
    assert all(f"NNCF: quantizing {name}" in printed.err for name in ("image_encoder", "memory_attention"))
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["format"] == "openvino" and all(f.endswith(".xml") for f in manifest["graphs"].values())
    assert str(frames_folder) in manifest["calibration"] and "8 frames" in manifest["calibration"]
    assert manifest["quantized_graphs"] == ["image_encoder", "memory_attention", "memory_encoder"]
    ops = lambda name: {op.get_type_name() for op in openvino.Core().read_model(out / f"{name}.xml").get_ops()}
    for name in manifest["quantized_graphs"]:  # NNCF's int8 ranges on OpenVINO's own graphs
        assert "FakeQuantize" in ops(name), name
    assert "FakeQuantize" not in ops("mask_decoder")
    check_report(report, model, out, "openvino", CLIP)


def test_bf16_runs_on_openvino_only(model, tmp_path):
    out = tmp_path / "bf16"
    report = export_lower_precision(model, out, "onnx", "bf16", check_clip=CLIP)  # OpenVINO reads ONNX
    assert json.loads((out / MANIFEST).read_text())["quantized_graphs"] == []
    with pytest.raises(ValueError, match="bf16 export, which runs on openvino, not on backend 'onnxruntime'"):
        ExportedBackend(out, "onnxruntime")
    assert Sam2ImagePredictor.from_pretrained(out).backend.engine == "openvino"  # no backend named: the one it runs on
    capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if "BF16" not in capabilities:
        pytest.skip(f"this CPU has no bf16 ({capabilities}): OpenVINO computes the bf16 export in float32")
    check_report(report, model, out, "openvino", CLIP)


def test_int8_image_model(reference, tmp_path, capsys):
    out = tmp_path / "image-int8"
    argv = ["export", str(reference.path), "--image-size", "256", "--image-only", "--precision", "int8"]
    assert cli([*argv, "--out", str(out)]) == 0
    assert "on every frame" in capsys.readouterr().out
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["quantized_graphs"] == ["image_encoder"] and "synthetic clip" in manifest["agreement"]["clip"]
    predictor = Sam2ImagePredictor.from_pretrained(out)
    predictor.set_image(CLIP[0])
    masks, _, _ = predictor.predict(np.array([[19, 28]]), np.array([1]), multimask_output=False)
    assert masks.shape == (1, 96, 128)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--precision", "int8-static"], "int8-static calibrates on your frames"),
        (["--precision", "int8", "--format", "openvino"], "'int8' is written as --format onnx, not 'openvino'"),
        (["--precision", "int8", "--format", "torch"], "is written as onnx or openvino, not torch"),
        (["--precision", "int8", "--calibration", "clip.mp4"], "--calibration is for --precision int8-static"),
        (["--precision", "int8-static", "--calibration", "missing.mp4"], "missing.mp4"),
        (["--precision", "bf16", "--check-clip", "missing_frames"], "missing_frames"),
        (["--check-clip", "clip.mp4"], "--check-clip is for a lower --precision"),
    ],
)
def test_bad_options_are_named_and_nothing_is_written(reference, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert cli(["export", str(reference.path), "--image-size", "256", "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not any(p.name.startswith(".export-") for p in tmp_path.iterdir())


def test_unreadable_check_clip_is_refused_before_anything_is_exported(model, tmp_path, monkeypatch):
    def exported(*args, **kwargs):
        raise AssertionError("exported before the check clip was read")

    monkeypatch.setattr("sam2_hf.tasks.lower_precision.export_model", exported)
    with pytest.raises(OSError, match="missing_frames"):
        export_lower_precision(model, tmp_path / "out", "onnx", "bf16", check_clip=tmp_path / "missing_frames")
