"""Ultralytics' SAM 2 files (sam2_t.pt ... sam2.1_l.pt) in sam2_hf, against Ultralytics' own `SAM2Predictor`.

Ultralytics (a test-only dependency) builds its model with its own builder (`build_sam2_t`), here with seeded
random weights and nothing downloaded; the file is written as its release files are ({"model": state_dict}) or
as a bare state dict (its loader reads both), then read by Ultralytics' `SAM2Predictor` (its own strict loader)
and by `sam2_hf.Sam2ImagePredictor.from_pretrained`. Points and boxes: masks equal, scores and low-resolution
logits within the image tolerance of tests/test_image_predictor.py.

Where Ultralytics differs from Meta (and sam2_hf), and what these tests do about it:
- preprocessing: a letterbox (aspect kept, padded right/bottom) instead of Meta's stretch to a square, and
  normalization on the 0..255 scale: identical up to rounding (embeddings ~1e-5 apart) only for a square
  image of the input size, which the tests use (imgsz 256, Ultralytics' `set_imgsz`);
- SAM 2 vs 2.1: its builder takes the version from the file name ("sam2.1" in it) and fails on 2.1 weights
  in a "sam2_*.pt" file; sam2_hf reads the version from the weights (the name only warns);
- masks scoring below `conf` (0.25 by default) are dropped: conf=0 here;
- an (N, 2) point array is N one-point objects for Ultralytics, one N-point object for Meta's API: each case
  below gives both sides the same objects in their own layout.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from sam2_hf import Sam2ImagePredictor, Sam2Model, Sam2Tracker, Sam2VideoModel
from sam2_hf.media.synthetic import synthetic_clip
from sam2_hf.predictors.build_sam import build_sam2, build_sam2_video_predictor
from sam2_hf.predictors.video_predictor import Sam2VideoPredictor

from reference import max_abs_diff

ultralytics_build = pytest.importorskip("ultralytics.models.sam.build")

S = 256  # Ultralytics' imgsz and our image_size
TOL = 1e-4  # tests/test_image_predictor.py's
CHECKPOINTS = {  # file name -> (version, stored as Ultralytics' release files, or the bare state dict)
    "sam2.1_t.pt": ("2.1", "release"),
    "sam2_t.pt": ("2", "bare"),
}


def build_ultralytics_sam2(version: str, seed: int = 0):
    """Ultralytics' tiny SAM 2 / 2.1 from its builder, every float weight offset by seeded N(0, 0.02) noise.

    Its builder chooses SAM 2.1 when the checkpoint name contains "sam2.1" and then loads that file; here its
    loader is bypassed for the build, so the model keeps its own initialization before the noise."""
    loader = ultralytics_build._load_checkpoint
    ultralytics_build._load_checkpoint = lambda model, checkpoint: model
    try:
        torch.manual_seed(seed)
        model = ultralytics_build.build_sam2_t("sam2.1_t.pt" if version == "2.1" else None)
    finally:
        ultralytics_build._load_checkpoint = loader
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for value in model.state_dict().values():
            if value.is_floating_point():
                value.add_(torch.randn(value.shape, generator=generator) * 0.02)
    return model.eval()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """{file name: path} of the files in `CHECKPOINTS`, written as Ultralytics' tools store them."""
    folder = tmp_path_factory.mktemp("ultralytics")
    paths = {}
    for name, (version, layout) in CHECKPOINTS.items():
        state = build_ultralytics_sam2(version).state_dict()
        torch.save({"model": state} if layout == "release" else state, folder / name)
        paths[name] = folder / name
    return paths


def ultralytics_predictor(path):
    from ultralytics.models.sam import SAM2Predictor

    overrides = dict(model=str(path), imgsz=S, conf=0.0, device="cpu", save=False, verbose=False)
    return SAM2Predictor(overrides=overrides)


@pytest.fixture(scope="module", params=list(CHECKPOINTS))
def predictors(request, checkpoints):
    """(Ultralytics' predictor, ours, the BGR image Ultralytics reads) with the same square S x S image set."""
    image = synthetic_clip(num_frames=1, height=S, width=S)[0]
    theirs = ultralytics_predictor(checkpoints[request.param])
    bgr = np.ascontiguousarray(image[..., ::-1])  # Ultralytics reads OpenCV's BGR arrays
    theirs.set_image(bgr)
    ours = Sam2ImagePredictor.from_pretrained(checkpoints[request.param], image_size=S, device="cpu")
    ours.set_image(image)
    assert max_abs_diff(ours.get_image_embedding(), theirs.features["image_embed"]) < 1e-4
    return theirs, ours, bgr


# case -> (Ultralytics' keyword arguments, ours); each a single-mask output unless it says multimask
CASES = {
    "one point": (dict(points=[[60, 80]], labels=[1]), dict(point_coords=[[60, 80]], point_labels=[1])),
    "one point, multimask": (
        dict(points=[[60, 80]], labels=[1], multimask_output=True),
        dict(point_coords=[[60, 80]], point_labels=[1], multimask_output=True),
    ),
    "two points, one object": (
        dict(points=[[[60, 80], [200, 150]]], labels=[[1, 0]]),
        dict(point_coords=[[60, 80], [200, 150]], point_labels=[1, 0]),
    ),
    "two objects": (
        dict(points=[[60, 80], [190, 120]], labels=[1, 1]),
        dict(point_coords=[[[60, 80]], [[190, 120]]], point_labels=[[1], [1]]),
    ),
    "box": (dict(bboxes=[[20, 40, 140, 200]]), dict(box=[20, 40, 140, 200])),
    "box + point": (
        dict(bboxes=[[20, 40, 140, 200]], points=[[[60, 80]]], labels=[[0]]),
        dict(box=[20, 40, 140, 200], point_coords=[[60, 80]], point_labels=[0]),
    ),
    "two boxes": (
        dict(bboxes=[[20, 40, 140, 200], [150, 30, 250, 120]]),
        dict(box=[[20, 40, 140, 200], [150, 30, 250, 120]]),
    ),
}


def ours_flat(ours, kwargs):
    """Our predictor's (mask logits at the image size, scores, low-res logits) with objects and masks in one
    leading axis, as Ultralytics returns them."""
    logits, scores, low_res = ours.predict(**{"multimask_output": False, **kwargs}, return_logits=True)
    size = logits.shape[-2:]
    return logits.reshape(-1, *size), scores.reshape(-1), low_res.reshape(-1, *low_res.shape[-2:])


@pytest.mark.parametrize("case", list(CASES))
def test_points_and_boxes_match_ultralytics(predictors, case):
    theirs, ours, bgr = predictors
    their_kwargs, our_kwargs = CASES[case]
    result = theirs(**their_kwargs)[0]  # Ultralytics' public call: Results at the image size
    their_masks, their_scores = result.masks.data.numpy(), result.boxes.conf.numpy()
    their_logits, logit_scores = theirs.prompt_inference(theirs.preprocess([bgr]), **their_kwargs)
    logits, scores, low_res = ours_flat(ours, our_kwargs)

    assert logits.shape == their_masks.shape and low_res.shape == tuple(their_logits.shape)
    # Masks equal, but where a logit is within TOL of the threshold (the two sides' logits may differ by TOL)
    other_sign = (logits > 0) != their_masks
    diffs = {
        "scores": max_abs_diff(scores, their_scores),
        "low_res": max_abs_diff(low_res, their_logits.clamp(-32, 32)),
        "logit at a pixel of other sign": float(np.abs(logits[other_sign]).max(initial=0.0)),
    }
    print(f"[sam2_hf vs ultralytics] {case}: pixels of other sign={int(other_sign.sum())}, " + ", ".join(
        f"{k}={v:.3g}" for k, v in diffs.items()))  # fmt: skip
    assert max(diffs.values()) <= TOL and other_sign.mean() < 1e-4, diffs
    assert max_abs_diff(logit_scores, their_scores) == 0  # the public call and the logits are one computation

    # non-trivial: partial masks, logits of both signs and not clamped, scores not saturated
    fractions = their_masks.reshape(len(their_masks), -1).mean(1)
    assert ((fractions > 0) & (fractions < 1)).all(), fractions
    assert low_res.min() < 0 < low_res.max() and np.abs(low_res).min() < 32
    assert ((scores > 0.01) & (scores < 0.99)).all(), scores
    if len(their_masks) > 1:  # objects or mask choices differ
        assert max_abs_diff(low_res[0], low_res[1]) > 100 * TOL


def test_every_entry_point_reads_ultralytics_files(checkpoints):
    """Sam2Model / Sam2VideoModel / predictors / tracker / Meta-style builders, size and version from the
    weights, with the same weights everywhere (the CLI's --model goes through Sam2Tracker.from_pretrained)."""
    for name, path in checkpoints.items():
        version = CHECKPOINTS[name][0]
        video = Sam2VideoModel.from_pretrained(path, image_size=S)
        assert (video.config.version, video.config.image_size) == (version, S)
        reference = video.state_dict()
        config = "configs/sam2.1/sam2.1_hiera_t.yaml" if version == "2.1" else "configs/sam2/sam2_hiera_t.yaml"
        size_override = [f"++model.image_size={S}"]
        models = [
            Sam2Model.from_pretrained(path, image_size=S),
            Sam2ImagePredictor.from_pretrained(path, image_size=S).model,
            Sam2VideoPredictor.from_pretrained(path, image_size=S).model,
            Sam2Tracker.from_pretrained(path, image_size=S).predictor.model,
            build_sam2(config, path, device="cpu", hydra_overrides_extra=size_override),
            build_sam2_video_predictor(config, path, device="cpu", hydra_overrides_extra=size_override).model,
        ]
        for model in models:
            state = model.state_dict()
            assert all(torch.equal(value, reference[key]) for key, value in state.items()), type(model).__name__


def test_version_comes_from_the_weights_not_the_name(checkpoints, tmp_path):
    """SAM 2.1 weights in a file named like a SAM 2 one: Ultralytics builds SAM 2 and fails; we warn and load 2.1."""
    misnamed = tmp_path / "sam2_t.pt"
    misnamed.write_bytes(checkpoints["sam2.1_t.pt"].read_bytes())
    with pytest.raises(RuntimeError, match="Unexpected key"):
        ultralytics_build.build_sam(str(misnamed))
    with pytest.warns(UserWarning, match="Ultralytics release file of SAM 2 tiny, but its weights are SAM 2.1 tiny"):
        model = Sam2VideoModel.from_pretrained(misnamed, image_size=S)
    assert model.config.version == "2.1"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a matching name does not warn
        Sam2Model.from_pretrained(checkpoints["sam2.1_t.pt"], image_size=S)


def test_model_save_files_are_refused_with_advice(checkpoints, tmp_path):
    """Ultralytics' `Model.save()` pickles the model object: refused unread (weights_only), with the recipe."""
    from ultralytics.models.sam import SAM

    saved = tmp_path / "saved.pt"
    SAM(str(checkpoints["sam2.1_t.pt"])).save(saved)
    with pytest.raises(ValueError, match=r"pickled Python object \(ultralytics\..*Model.save\(\).*state_dict\(\)"):
        Sam2Model.from_pretrained(saved)
