"""`from sam2_hf import SAM2` (or `SAM`) in place of Ultralytics' import: the seed page's calls give Ultralytics'
masks on the same weights, and the `Results` hold what Ultralytics' do.

Ultralytics (a test-only dependency) runs its own `SAM(...)` on the seeded random tiny files of
tests/test_ultralytics.py. Images are not square, so its letterbox (kept aspect, padded right / bottom) matters:
150 x 230 (the letterboxed content ends inside a low-resolution mask pixel: the mask is sampled over its exact
span) and 192 x 256 (it ends on a pixel border: cropped). Masks equal but at pixels whose logit is within TOL of
the threshold; predicted IoUs within TOL; boxes and classes equal.
"""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch

from sam2_hf import SAM, SAM2, Results, Sam2VideoConfig, Sam2VideoModel
from sam2_hf.media.synthetic import synthetic_clip
from sam2_hf.predictors.ultralytics_results import Boxes, Masks
from sam2_hf.processing.image_processing import letterbox_pixels
from sam2_hf.tasks.ultralytics_api import decode_prompts, unletterbox_logits
from test_ultralytics import CHECKPOINTS, TOL, S, build_ultralytics_sam2

ultralytics = pytest.importorskip("ultralytics")

SHAPES = {"150x230": (150, 230), "192x256": (192, 256)}  # (H, W): content span not / on a mask-pixel border
CASES = {  # Ultralytics' keyword arguments, as its docs write them
    "one point (flat)": dict(points=[60, 80], labels=[1]),
    "one point, labels by default": dict(points=[[60, 80]]),
    "two points, one object": dict(points=[[[60, 80], [180, 110]]], labels=[[1, 0]]),
    "two objects": dict(points=[[60, 80], [180, 60]], labels=[1, 1]),
    "box (flat)": dict(bboxes=[20, 30, 140, 130]),
    "two boxes": dict(bboxes=[[20, 30, 140, 130], [150, 20, 220, 100]]),
    "box + point": dict(bboxes=[[20, 30, 140, 130]], points=[[[60, 80]]], labels=[[0]]),
}


@pytest.fixture(scope="module")
def release_file(tmp_path_factory):
    """Ultralytics' SAM 2.1 tiny release layout ({"model": state_dict}), seeded random weights."""
    path = tmp_path_factory.mktemp("ultralytics-api") / "sam2.1_t.pt"
    version = CHECKPOINTS[path.name][0]
    torch.save({"model": build_ultralytics_sam2(version).state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def models(release_file):
    """(Ultralytics' SAM, ours) on the same file."""
    return ultralytics.SAM(str(release_file)), SAM2(release_file)


def image(shape) -> np.ndarray:
    """The synthetic clip's first frame at (H, W), BGR as OpenCV reads it."""
    return np.ascontiguousarray(synthetic_clip(num_frames=1, height=shape[0], width=shape[1])[0][..., ::-1])


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("case", list(CASES))
def test_prompts_give_ultralytics_masks(models, shape, case):
    theirs, ours = models
    bgr, kwargs = image(SHAPES[shape]), CASES[case]
    their = theirs(bgr, imgsz=S, conf=0.0, device="cpu", verbose=False, save=False, **kwargs)[0]
    assert_ultralytics_masks(ours, bgr, kwargs, their, f"{case}, {shape}")


def assert_ultralytics_masks(ours, bgr, kwargs, their, what):
    """Our SAM2(...)(bgr, **kwargs) against Ultralytics' result `their`: masks equal but where our logit is within
    TOL of the threshold, IoUs within TOL, the same classes and image; the masks non-trivial. -> our Results."""
    mine = ours(bgr, imgsz=S, conf=0.0, verbose=False, **kwargs)[0]
    backend, hw = ours._backend(S, None, False), bgr.shape[:2]
    prompts = [kwargs.get(k) for k in ("bboxes", "points", "labels", "masks")]
    low_res, _ = decode_prompts(backend, letterbox_pixels(bgr, S), hw, *prompts)
    logits = unletterbox_logits(low_res, bgr.shape[:2], S).numpy()

    their_masks, my_masks = their.masks.data.numpy(), mine.masks.data.numpy()
    assert my_masks.shape == their_masks.shape == (len(low_res), *bgr.shape[:2])
    assert np.array_equal(my_masks, logits > 0)  # the results are these logits thresholded
    other_sign = my_masks != their_masks
    near = float(np.abs(logits[other_sign]).max(initial=0.0))
    print(f"[SAM2 vs ultralytics] {what}: pixels of other sign={int(other_sign.sum())}, |logit|<={near:.3g}")
    assert near <= TOL and other_sign.mean() < 1e-4
    assert np.abs(mine.boxes.conf.numpy() - their.boxes.conf.numpy()).max() <= TOL
    assert np.array_equal(mine.boxes.cls.numpy(), their.boxes.cls.numpy())
    if not other_sign.any():
        assert np.array_equal(mine.boxes.xyxy.numpy(), their.boxes.xyxy.numpy())
    assert mine.orig_shape == their.orig_shape and np.array_equal(mine.orig_img, their.orig_img)

    # non-trivial: partial masks, logits of both signs, scores not saturated; objects differ
    fractions = their_masks.reshape(len(their_masks), -1).mean(1)
    assert ((fractions > 0) & (fractions < 1)).all(), fractions
    assert low_res.min() < 0 < low_res.max()
    scores = mine.boxes.conf.numpy()
    assert ((scores > 0.01) & (scores < 0.99)).all(), scores
    if len(my_masks) > 1:
        assert (my_masks[0] != my_masks[1]).mean() > 0.01
    return mine


def disc(shape, centre, radius) -> np.ndarray:
    """(H, W) bool: the pixels within `radius` of `centre` (x, y)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 < radius**2


MASK_CASES = {  # Ultralytics' mask prompts: any size, letterboxed (nearest) to imgsz, values as given
    "image-size mask": lambda hw: disc(hw, (80, 70), 40).astype(np.float32),
    "low-res logits (S/4)": lambda hw: np.where(disc((S // 4, S // 4), (20, 15), 10), 8.0, -8.0),
    "mask + point, one object": lambda hw: (disc(hw, (80, 70), 40)[None], dict(points=[[[60, 80]]], labels=[[1]])),
    "one mask, two point objects": lambda hw: (disc(hw, (80, 70), 40), dict(points=[[60, 80], [180, 60]])),
}


@pytest.mark.parametrize("case", list(MASK_CASES))
def test_mask_prompts_give_ultralytics_masks(release_file, models, case):
    """masks= as Ultralytics' predictor reads them (`prompt_inference`); its `SAM(...)(...)` refuses masks= (not a
    YOLO argument), so its `SAM2Predictor` is called, as its docs call it."""
    from ultralytics.models.sam import SAM2Predictor

    _, ours = models
    bgr = image(SHAPES["150x230"])
    made = MASK_CASES[case](bgr.shape[:2])
    masks, kwargs = made if isinstance(made, tuple) else (made, {})
    overrides = dict(model=str(release_file), imgsz=S, conf=0.0, device="cpu", save=False, verbose=False)
    their = SAM2Predictor(overrides=overrides)(bgr, masks=masks, **kwargs)[0]
    mine = assert_ultralytics_masks(ours, bgr, dict(masks=masks, **kwargs), their, case)
    if kwargs:  # the mask changes what the points alone give
        assert (ours(bgr, imgsz=S, conf=0.0, verbose=False, **kwargs)[0].masks.data != mine.masks.data).any()


def test_results_fields_and_files_as_ultralytics(models, tmp_path):
    """boxes.xywh / xyxyn / xywhn, summary / to_json, save_txt lines, plot and save, against Ultralytics' Results
    for the same masks; masks.xy / xyn: Ultralytics' polygons for a mask of one region (a disc added to the two
    found masks), the same vertices for a mask of several (Ultralytics joins the regions' contours at their
    closest points, we list them one after another). `SAM` is `SAM2`."""
    from ultralytics.engine.results import Results as UltralyticsResults

    assert SAM is SAM2
    theirs, ours = models
    bgr, kwargs = image(SHAPES["192x256"]), CASES["two boxes"]
    their = theirs(bgr, imgsz=S, conf=0.0, device="cpu", verbose=False, save=False, **kwargs)[0]
    mine = ours(bgr, imgsz=S, conf=0.0, verbose=False, **kwargs)[0]
    assert isinstance(mine, Results) and len(mine) == len(their) == 2
    assert np.array_equal(mine.masks.data.numpy(), their.masks.data.numpy())  # as the parity test finds here
    for attribute in ("xyxy", "conf", "cls", "xywh", "xyxyn", "xywhn"):
        np.testing.assert_allclose(getattr(mine.boxes, attribute).numpy(), getattr(their.boxes, attribute).numpy())

    yy, xx = np.mgrid[: bgr.shape[0], : bgr.shape[1]]
    disc = torch.as_tensor((yy - 90) ** 2 + (xx - 120) ** 2 < 40**2)
    masks = torch.cat([mine.masks.data, disc[None]])
    rows = torch.cat([mine.boxes.data, torch.tensor([[80.0, 50, 159, 129, 0.5, 2]])])
    mine = Results(bgr, "image0.jpg", Masks(masks, bgr.shape[:2]), Boxes(rows, bgr.shape[:2]))
    their = UltralyticsResults(bgr, "image0.jpg", {0: "0", 1: "1", 2: "2"}, boxes=rows, masks=masks)
    regions = [count_regions(m) for m in masks.numpy()]
    assert regions[2] == 1 and max(regions) > 1, regions  # both kinds are compared
    for i, n in enumerate(regions):
        if n == 1:
            np.testing.assert_allclose(mine.masks.xy[i], their.masks.xy[i])
            np.testing.assert_allclose(mine.masks.xyn[i], their.masks.xyn[i], atol=1e-6)
        else:
            assert set(map(tuple, mine.masks.xy[i])) == set(map(tuple, their.masks.xy[i]))
    for mine_row, their_row in zip(mine.summary(), their.summary()):
        assert set(mine_row) == set(their_row) and mine_row["class"] == their_row["class"]
        assert mine_row["name"] == their_row["name"] and mine_row["box"] == pytest.approx(their_row["box"])
        assert mine_row["confidence"] == pytest.approx(their_row["confidence"], abs=1e-4)
    assert json.loads(mine.to_json(normalize=True))[2]["box"]["x2"] == round(159 / bgr.shape[1], 5)
    txt = [mine.save_txt(tmp_path / "mine.txt"), their.save_txt(tmp_path / "theirs.txt")]
    lines = [Path(t).read_text().splitlines() for t in txt]
    assert len(lines[0]) == len(lines[1]) == 3 and lines[0][2] == lines[1][2]  # the disc: one region
    plot = mine.plot()
    assert plot.shape == bgr.shape and plot.dtype == np.uint8 and (plot != bgr).any()
    saved = mine.save(tmp_path / "plot.jpg")
    assert (tmp_path / "plot.jpg").stat().st_size > 0 and saved.endswith("plot.jpg")
    numpy = mine.numpy()
    assert isinstance(numpy.masks.data, np.ndarray) and isinstance(numpy.boxes.conf, np.ndarray)
    assert len(mine[1:]) == 2 and mine[0].boxes.data.shape == (1, 6)


def test_results_extras_as_ultralytics(models, tmp_path):
    """verbose(), to_csv(), to_df() and save_crop() give what Ultralytics' Results give for the same masks and boxes:
    a found mask, two one-region discs (one at the image's corner, so its crop is clipped) with class 1 left out (as
    conf drops objects), and no masks at all."""
    from ultralytics.engine.results import Results as UltralyticsResults

    _, ours = models
    bgr = image(SHAPES["192x256"])
    found = ours(bgr, imgsz=S, conf=0.0, verbose=False, **CASES["box (flat)"])[0]
    discs = torch.as_tensor(np.stack([disc(bgr.shape[:2], (120, 90), 30), disc(bgr.shape[:2], (5, 5), 20)]))
    masks = torch.cat([found.masks.data, discs])
    rows = torch.cat([found.boxes.data, torch.tensor([[90.0, 60, 149, 119, 0.75, 2], [0, 0, 24, 24, 0.5, 3]])])
    mine = Results(bgr, "image0.jpg", Masks(masks, bgr.shape[:2]), Boxes(rows, bgr.shape[:2]))
    their = UltralyticsResults(bgr, "image0.jpg", {i: str(i) for i in range(4)}, boxes=rows, masks=masks)
    assert [count_regions(m) for m in discs.numpy()] == [1, 1] and 0 < masks[0].float().mean() < 1
    assert mine.verbose() == their.verbose() == "1 0, 1 2, 1 3, "
    for normalize in (False, True):
        for i in (1, 2):  # the discs (a found mask of several regions has other segments: Ultralytics joins them)
            assert mine[i].to_csv(normalize) == their[i].to_csv(normalize)
    assert mine.to_df().columns == their.to_df().columns and mine.to_df().height == 3
    for result, folder in ((mine, "mine"), (their, "theirs")):
        for _ in range(2):  # the second call numbers its files, as Ultralytics'
            result.save_crop(tmp_path / folder, "crop")
    crops = {f: sorted(p.relative_to(tmp_path / f) for p in (tmp_path / f).rglob("*.jpg")) for f in ("mine", "theirs")}
    assert crops["mine"] == crops["theirs"] and len(crops["mine"]) == 6 and Path("3/crop-2.jpg") in crops["mine"]
    for path in crops["mine"]:
        assert (tmp_path / "mine" / path).read_bytes() == (tmp_path / "theirs" / path).read_bytes()
    empty = Results(bgr, "image0.jpg", None, None)
    nothing = UltralyticsResults(bgr, "image0.jpg", {0: "0"}, boxes=torch.zeros(0, 6))
    assert empty.verbose() == nothing.verbose() and empty.to_csv() == nothing.to_csv() == "\n"


def count_regions(mask: np.ndarray) -> int:
    import cv2

    return len(cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0])


def test_sources_stream_save_and_conf(models, tmp_path, monkeypatch):
    """A file path, a folder, a glob, a PIL image and a list; stream=True yields; save=True writes runs/segment/
    predict, then predict-2 (Ultralytics 8.4's numbering); conf drops masks at or below it."""
    from PIL import Image

    _, ours = models
    bgr = image(SHAPES["150x230"])
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(bgr[..., ::-1]).save(folder / name)
    monkeypatch.chdir(tmp_path)
    sources = [str(folder / "a.png"), folder, str(folder / "*.png"), Image.open(folder / "a.png"), [bgr, bgr]]
    counts = [len(ours(s, points=[60, 80], imgsz=S, verbose=False)) for s in sources]
    assert counts == [1, 2, 2, 1, 2]
    first = ours(folder / "a.png", points=[60, 80], imgsz=S, verbose=False)[0]
    assert np.array_equal(first.masks.data, ours(bgr, points=[60, 80], imgsz=S, verbose=False)[0].masks.data)
    stream = ours(folder, points=[60, 80], imgsz=S, stream=True, verbose=False)
    assert not isinstance(stream, list) and len(list(stream)) == 2
    for run in ("predict", "predict-2"):
        ours(folder, points=[60, 80], imgsz=S, save=True, verbose=False)
        assert sorted(p.name for p in (tmp_path / "runs" / "segment" / run).iterdir()) == ["a.png", "b.png"]
    ours(folder, points=[60, 80], imgsz=S, save_txt=True, save_conf=True, verbose=False)
    labels = sorted((tmp_path / "runs" / "segment" / "predict-3" / "labels").iterdir())
    assert [p.name for p in labels] == ["a.txt", "b.txt"] and len(labels[0].read_text().split()) % 2 == 0  # + conf
    with pytest.raises(FileNotFoundError):
        ours(tmp_path / "missing.png", points=[60, 80], imgsz=S, save=True, verbose=False)
    assert not (tmp_path / "runs" / "segment" / "predict-4").exists()  # no empty run folder for a failed call
    assert set(first.speed) == {"preprocess", "inference", "postprocess"} and min(first.speed.values()) >= 0
    score = float(first.boxes.conf[0])
    assert len(ours(bgr, points=[60, 80], imgsz=S, conf=score, verbose=False)[0]) == 0
    assert len(ours(bgr, points=[60, 80], imgsz=S, conf=score - 1e-3, verbose=False)[0]) == 1


def test_image_urls_are_read(models, tmp_path):
    """An http(s) URL (a local server here) gives the masks of the file it serves, its path the URL; a missing page
    and bytes that are not an image are named."""
    import functools
    import http.server
    import threading

    from PIL import Image

    _, ours = models
    bgr = image(SHAPES["150x230"])
    Image.fromarray(bgr[..., ::-1]).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_text("not an image")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=tmp_path)
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        remote = ours(f"{url}/a.png", points=[60, 80], imgsz=S, verbose=False)[0]
        local = ours(tmp_path / "a.png", points=[60, 80], imgsz=S, verbose=False)[0]
        assert remote.path == f"{url}/a.png" and np.array_equal(remote.orig_img, bgr)
        assert np.array_equal(remote.masks.data, local.masks.data) and remote.masks.data.any()
        with pytest.raises(ValueError, match="Could not download .*missing.png"):
            ours(f"{url}/missing.png", points=[60, 80], imgsz=S, verbose=False)
        with pytest.raises(ValueError, match="did not return an image"):
            ours([f"{url}/b.png"], points=[60, 80], imgsz=S, verbose=False)
    finally:
        server.shutdown()
        server.server_close()


def test_bad_sources_and_prompts_are_named(models, tmp_path):
    _, ours = models
    bgr = image(SHAPES["150x230"])
    cases = [
        (dict(source=str(tmp_path / "missing.jpg"), points=[1, 1]), FileNotFoundError, "No such file"),
        (dict(source=[bgr, str(tmp_path / "clip.mp4")], points=[1, 1]), ValueError, "a video among other sources"),
        (dict(source=bgr, points=[[1, 2, 3]]), ValueError, "points must be"),
        (dict(source=bgr, points=[[1, 2], [3, 4]], labels=[1]), ValueError, "one label per point"),
        (dict(source=bgr, labels=[1]), ValueError, "labels were given without points"),
        (dict(source=bgr, bboxes=[1, 2, 3]), ValueError, "bboxes must be"),
        (dict(source=bgr, bboxes=[[0, 0, 9, 9]] * 2, points=[[1, 1]] * 3), ValueError, "one point set per box"),
        (dict(source=bgr.astype(np.float32), points=[1, 1]), TypeError, "must be uint8"),
        (dict(source=bgr, points=[1, 1], imgsz=250), ValueError, "multiple of 32"),
        (dict(source=bgr, points=[1, 1], imgsz=[256, 320]), ValueError, "square"),
        (dict(source=bgr, points=[[1, 1]] * 3, masks=np.zeros((2, 150, 230))), ValueError, "2 masks for 3"),
        (dict(source=bgr, masks=np.zeros((2, 3, 150, 230))), ValueError, "masks must be"),
        (dict(source=bgr, points=[1, 1], show=True), NotImplementedError, "show=True"),
        (dict(source=bgr, points=[1, 1], box=[1, 2, 3, 4]), TypeError, "Unknown argument"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            ours(**kwargs, verbose=False)


def test_no_prompt_segments_everything(models):
    """No prompt: the automatic mask generator at Ultralytics' settings; Results of the same form."""
    _, ours = models
    bgr = image(SHAPES["192x256"])
    result = ours(bgr, imgsz=S, conf=0.0, verbose=False)[0]
    n = len(result)
    assert result.masks.data.shape == (n, *bgr.shape[:2]) and result.boxes.data.shape == (n, 6)


PROMPT_KEYS = ("bboxes", "points", "labels", "masks")
VIDEO_CASES = {  # case -> (our face, Ultralytics' keyword arguments)
    "two point objects, SAM2(...)(video)": ("SAM2", dict(points=[[60, 80], [180, 60]], labels=[1, 1])),
    "two boxes, SAM2VideoPredictor": ("predictor", dict(bboxes=[[20, 30, 140, 130], [150, 20, 220, 100]])),
    "two masks, SAM2(...)(video)": ("SAM2", dict(masks=np.stack([disc((150, 230), (80, 70), 40),
                                                                   disc((150, 230), (180, 60), 30)]))),
}  # fmt: skip


@pytest.fixture(scope="module")
def video_release(tmp_path_factory):
    """(Ultralytics' SAM 2.1 tiny file whose objects are judged present, a 12-frame 150 x 230 clip): the clip is
    lossless (FFV1, BGR), so OpenCV (Ultralytics) and PyAV (sam2_hf) decode the same frames."""
    import av

    folder = tmp_path_factory.mktemp("ultralytics-video")
    state = build_ultralytics_sam2("2.1").state_dict()
    state["sam_mask_decoder.pred_obj_score_head.layers.2.bias"] += 4.0  # random weights judge objects absent
    torch.save({"model": state}, folder / "sam2.1_t.pt")
    frames = synthetic_clip(num_frames=12, height=150, width=230)
    with av.open(str(folder / "clip.mkv"), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.height, stream.width, stream.pix_fmt = *frames.shape[1:3], "bgr0"
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    return folder / "sam2.1_t.pt", folder / "clip.mkv"


@pytest.mark.parametrize("case", list(VIDEO_CASES))
def test_a_video_gives_ultralytics_masks(video_release, case):
    """Ultralytics' `SAM2VideoPredictor` and ours (`SAM2(...)(video)` or `SAM2VideoPredictor`) on the same file and
    clip (non-square frames, letterboxed): per frame the same objects, masks equal but at pixels where our logit is
    within TOL of the threshold or of another object's logit there (its masks do not overlap: the higher logit
    wins), in all under 1e-4 of the pixels; the same frames and confidences (1). 12 frames: from frame 10 on,
    Ultralytics' dropped memories (`PrunedSelection`) change the object pointers read. Objects are judged present
    on frame 0: where they are not, Ultralytics encodes the prompted frame's memory with a fixed object score of
    10 (its `_consolidate_temp_output_across_obj` never copies the real one), SAM 2 and sam2_hf with the real one."""
    from ultralytics.models.sam import SAM2VideoPredictor as UltralyticsVideoPredictor

    from sam2_hf.ultralytics import SAM2VideoPredictor

    weights, video = video_release
    face, kwargs = VIDEO_CASES[case]
    overrides = dict(model=str(weights), imgsz=S, conf=0.25, device="cpu", save=False, verbose=False)
    theirs = UltralyticsVideoPredictor(overrides=overrides)(source=str(video), **kwargs)
    if face == "SAM2":
        ours = SAM2(weights)
        mine = ours(video, imgsz=S, verbose=False, **kwargs)
    else:
        predictor = SAM2VideoPredictor(overrides=overrides)
        ours, mine = predictor.model, predictor(source=str(video), **kwargs)
    assert len(mine) == len(theirs) == 12
    other, near = 0, []
    for t, (my, their, logits) in enumerate(zip(mine, theirs, video_logits(ours, video, kwargs))):
        assert np.array_equal(my.orig_img, their.orig_img) and my.path == their.path
        assert my.boxes.cls.tolist() == their.boxes.cls.tolist() == [0.0, 1.0] and (my.boxes.conf == 1).all()
        my_masks, their_masks = my.masks.data.numpy(), their.masks.data.numpy()
        ranked = np.sort(logits, axis=0)
        decided_by_tol = (np.abs(logits) <= TOL) | (ranked[-1] - ranked[-2] <= TOL)
        differs = my_masks != their_masks
        assert not (differs & ~decided_by_tol).any(), f"frame {t}"
        other += int(differs.sum())
        # non-trivial: partial, different masks that move
        fractions = their_masks.reshape(2, -1).mean(1)
        assert ((fractions > 0.01) & (fractions < 0.9)).all() and (my_masks[0] != my_masks[1]).mean() > 0.01
        near.append(float(np.abs(logits[differs]).max(initial=0.0)))
    print(f"[video vs ultralytics] {case}: {other} pixels differ, our |logit| there <= {max(near):.3g}")
    assert other / (12 * 2 * 150 * 230) < 1e-4
    assert (mine[0].masks.data != mine[-1].masks.data).any()


def video_logits(ours, video, kwargs) -> list[np.ndarray]:
    """Our (N, H, W) logits per frame as `SAM2._track` computes them, before the non-overlap rule."""
    from sam2_hf.media.frames import open_frames
    from sam2_hf.tasks.ultralytics_api import video_prompts

    predictor = ours._video_predictor(S, None)
    with open_frames(str(video)) as frames:
        state = predictor.init_state(frames)
        for prompt in video_prompts(predictor, frames, *[kwargs.get(k) for k in PROMPT_KEYS]):
            predictor.add_prompt(state, prompt)
        run = predictor.propagate_in_video(state, 0)
        return [unletterbox_logits(low[:, 0], (frames.height, frames.width), S).numpy() for _, _, low in run]


def test_a_video_without_prompts_and_bad_video_calls(tmp_path):
    """No prompt: everything found on frame 0 tracked, one Results per frame; masks with points, a source that is
    not a video, and save= are refused with what to do."""
    from sam2_hf.ultralytics import SAM2VideoPredictor
    from test_video_frames import write_video

    weights = tmp_path / "tiny"
    Sam2VideoModel(Sam2VideoConfig.from_size("tiny", image_size=S)).save_pretrained(weights)
    frames = synthetic_clip(num_frames=3, height=96, width=128)
    video = write_video(tmp_path / "clip.mp4", frames, "libx264")
    ours = SAM2(weights)
    everything = ours(video, imgsz=S, verbose=False, stream=True)
    assert not isinstance(everything, list)
    assert [r.orig_shape for r in everything] == [(96, 128)] * 3
    with pytest.raises(ValueError, match="points / boxes or by a mask"):
        ours(video, points=[30, 30], masks=np.ones((96, 128)), imgsz=S, verbose=False)
    with pytest.raises(ValueError, match="tracks a video file"):
        SAM2VideoPredictor(overrides=dict(model=str(weights), imgsz=S))(source=frames[0], points=[30, 30])
    with pytest.raises(NotImplementedError, match="for videos"):
        ours(video, points=[30, 30], imgsz=S, save=True, verbose=False)


@pytest.mark.parametrize(
    "name, repo",
    [("sam2_b.pt", "facebook/sam2-hiera-base-plus"), ("sam2.1_t.pt", "facebook/sam2.1-hiera-tiny"),
     ("sam2.1_hiera_large.pt", "facebook/sam2.1-hiera-large")],
)  # fmt: skip
def test_release_names_resolve_on_the_hub(name, repo, tmp_path, monkeypatch):
    """A release name not found here is fetched from its official Hub repo (huggingface_hub faked: it serves a
    saved tiny model), in SAM2(...) as in every from_pretrained; offline, one message names the file, the repo and
    where to put the file."""
    saved = tmp_path / "snapshot"
    Sam2VideoModel(Sam2VideoConfig.from_size("tiny", image_size=256)).save_pretrained(saved)
    asked = []

    def fake_snapshot_download(repo_id, **kwargs):
        asked.append(repo_id)
        return str(saved)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    assert SAM2(name).model.config.image_size == 256 and asked == [repo]
    assert Sam2VideoModel.from_pretrained(name).config.image_size == 256 and asked == [repo] * 2  # every entry point

    def offline(repo_id, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("no connection and nothing cached")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(FileNotFoundError, match=rf"{name}.*Hugging Face Hub repo {repo}.*huggingface-cli download"):
        SAM2(name)


@pytest.mark.parametrize("name", ["sam_b.pt", "mobile_sam.pt", "FastSAM-s.pt"])
def test_models_that_are_not_sam2_are_named(name):
    with pytest.raises(ValueError, match="is not SAM 2"):
        SAM(name)


class FakeYOLO:
    """ultralytics' `YOLO` as `auto_annotate` uses it, with fixed detections per image stem (no YOLO weights here):
    `YOLO(path)(source, **settings)` -> results with `.boxes` (xyxy, cls, conf), `.orig_img`, and for a folder
    source streamed with `predictor.txt_path` naming the image (what Ultralytics' auto_annotate reads)."""

    DETECTIONS = {"a": ([[20, 30, 140, 130], [150, 20, 220, 100]], [3, 7], [0.9, 0.6]), "b": ([], [], [])}
    calls: list[dict] = []

    def __init__(self, path):
        self.path = path

    def __call__(self, source, stream=False, **settings):
        from types import SimpleNamespace

        import cv2

        FakeYOLO.calls.append(settings)
        paths = sorted(Path(source).iterdir()) if Path(source).is_dir() else [Path(source)]

        def results():
            for path in paths:
                boxes, cls, conf = (torch.tensor(v, dtype=torch.float32) for v in self.DETECTIONS[path.stem])
                self.predictor = SimpleNamespace(txt_path=Path(path.stem))
                found = SimpleNamespace(xyxy=boxes.reshape(-1, 4), cls=cls, conf=conf)
                found.cpu = lambda found=found: found
                yield SimpleNamespace(boxes=found, orig_img=cv2.imread(str(path)))

        return results() if stream else list(results())


def test_auto_annotate_as_ultralytics(release_file, tmp_path, monkeypatch):
    """`auto_annotate(data=..., det_model="yolo.pt", sam_model=...)` as on Ultralytics' page (its YOLO faked):
    labels where Ultralytics writes them, a file per image with detections, one line per detection with its class
    and its mask's polygon, the YOLO settings passed on; Ultralytics' own auto_annotate with the same detector and
    SAM file writes the same classes and polygon vertices for the masks it keeps."""
    from PIL import Image
    from ultralytics.data import annotator

    from sam2_hf import auto_annotate

    folder = tmp_path / "images"
    folder.mkdir()
    for stem in FakeYOLO.DETECTIONS:
        Image.fromarray(image(SHAPES["150x230"])[..., ::-1]).save(folder / f"{stem}.png")
    monkeypatch.setattr(ultralytics, "YOLO", FakeYOLO)
    monkeypatch.setattr(annotator, "YOLO", FakeYOLO)
    FakeYOLO.calls.clear()
    out = auto_annotate(data=str(folder), det_model="yolo11n.pt", sam_model=str(release_file), conf=0.3, classes=[3, 7])
    assert out == tmp_path / "images_auto_annotate_labels" and sorted(p.name for p in out.iterdir()) == ["a.txt"]
    assert FakeYOLO.calls[0] == dict(
        device=None, conf=0.3, iou=0.45, imgsz=640, max_det=300, classes=[3, 7], verbose=False
    )
    mine = (out / "a.txt").read_text().splitlines()
    assert [line.split()[0] for line in mine] == ["3", "7"] and all(len(line.split()) >= 7 for line in mine)

    annotator.auto_annotate(data=str(folder), det_model="yolo11n.pt", sam_model=str(release_file),
                            output_dir=tmp_path / "theirs")  # fmt: skip
    theirs = (tmp_path / "theirs" / "a.txt").read_text().splitlines()
    print(f"[auto_annotate] ours {len(mine)} lines, Ultralytics' {len(theirs)}")
    assert len(theirs) == len(mine)  # Ultralytics kept every mask here (it drops those scoring at or below 0.25)
    for our_line, their_line in zip(mine, theirs):  # same class, same polygon vertices (regions joined differently)
        ours_, theirs_ = (
            np.array(line.split()[1:], dtype=np.float64).reshape(-1, 2) for line in (our_line, their_line)
        )
        assert our_line.split()[0] == their_line.split()[0]
        assert set(map(tuple, ours_)) == set(map(tuple, theirs_))


def test_auto_annotate_as_ultralytics_with_a_detections_file(release_file, tmp_path):
    """det_model may be a COCO detections file (or a transformers detector): classes and max_det filter its boxes
    (the highest scores kept), and each kept box gets its line; output_dir as given."""
    from PIL import Image

    from sam2_hf import auto_annotate

    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(image(SHAPES["150x230"])[..., ::-1]).save(folder / "a.png")
    boxes, classes, scores = FakeYOLO.DETECTIONS["a"]
    coco = {
        "images": [{"id": 1, "file_name": "a.png"}],
        "annotations": [
            {"id": i, "image_id": 1, "category_id": c, "bbox": [x0, y0, x1 - x0, y1 - y0], "score": p}
            for i, ((x0, y0, x1, y1), c, p) in enumerate(zip([*boxes, boxes[0]], [*classes, 5], [*scores, 0.1]))
        ],
    }
    (tmp_path / "detections.json").write_text(json.dumps(coco))
    run = dict(data=folder, det_model=str(tmp_path / "detections.json"), sam_model=str(release_file))
    out = auto_annotate(**run, output_dir=tmp_path / "all")
    assert [line.split()[0] for line in (out / "a.txt").read_text().splitlines()] == ["3", "7", "5"]
    out = auto_annotate(**run, classes=[3, 5], max_det=1, output_dir=tmp_path / "filtered")
    assert [line.split()[0] for line in (out / "a.txt").read_text().splitlines()] == ["3"]  # 3 scores 0.9, 5 0.1
    with pytest.raises(ValueError, match="Give the detector once"):
        auto_annotate(folder, str(tmp_path / "detections.json"), det_model=str(tmp_path / "detections.json"))


def test_yolo_predict_line_has_its_sam2_hf_cli_equivalent(tmp_path, monkeypatch):
    """README maps `yolo predict model=sam2_b.pt source=video.mp4` to `sam2-hf segment video.mp4 --model sam2_b.pt`:
    the release name loads from its Hub repo (faked) and everything is tracked and written."""
    from sam2_hf.cli import main
    from test_video_frames import write_video

    weights = tmp_path / "snapshot"
    model = Sam2VideoModel(Sam2VideoConfig.from_size("tiny", image_size=S))
    with torch.no_grad():
        model.mask_decoder.pred_obj_score_head.proj_out.bias += 4.0  # objects judged present
    model.save_pretrained(weights)
    asked = []
    monkeypatch.setattr(
        huggingface_hub, "snapshot_download", lambda repo_id, **kw: asked.append(repo_id) or str(weights)
    )
    monkeypatch.chdir(tmp_path)
    video = write_video(tmp_path / "clip.mp4", synthetic_clip(num_frames=4, height=96, width=128), "libx264")
    options = ["--option", "points_per_side=4", "--option", "pred_iou_thresh=0", "--option", "stability_score_thresh=0"]
    assert main(["segment", str(video), "--model", "sam2_b.pt", "--out", "out", *options]) == 0
    assert asked == ["facebook/sam2-hiera-base-plus"]
    data = json.loads((tmp_path / "out" / "masks.json").read_text())
    assert data["annotations"] and (tmp_path / "out" / "overlay.mp4").stat().st_size > 0
