"""`sam2-hf segment` on a generated image folder and a generated video: prompted masks and everything."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sam2_hf import Sam2AutomaticMaskGenerator, Sam2ImagePredictor
from sam2_hf.cli import main
from sam2_hf.media.render import PALETTE, blend_masks
from sam2_hf.media.rle import decode_rle
from sam2_hf.media.synthetic import synthetic_clip
from test_video_cli import NUM_FRAMES, video_path  # noqa: F401 (the generated video fixture)

S = 256
OPTIONS = dict(
    points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.05, stability_score_offset=0.05, box_nms_thresh=1.0
)
EVERYTHING = [arg for name, value in OPTIONS.items() for arg in ("--option", f"{name}={value}")]


@pytest.fixture(scope="module")
def model(reference_models):
    return ["--model", str(reference_models("tiny", "2.1", S, video=True).path), "--image-size", str(S)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("images")
    for t, frame in enumerate(synthetic_clip(num_frames=4)[::3]):
        Image.fromarray(frame).save(path / f"shot{t}.png")
    return path


def read_masks(result_dir):
    """{obj_id: mask} of frame 0 from masks.json, checked against the PNG masks beside it."""
    annotations = json.loads((result_dir / "masks.json").read_text())["annotations"]
    masks = {a["object_id"]: decode_rle(a["segmentation"]) for a in annotations if a["frame_index"] == 0}
    for obj_id, mask in masks.items():
        assert np.array_equal(np.array(Image.open(result_dir / "masks" / str(obj_id) / "00000.png")) > 0, mask)
    return masks


def test_everything_in_an_image_folder(folder, model, reference_models, tmp_path):
    assert main(["segment", str(folder), *model, *EVERYTHING, "--out", str(tmp_path)]) == 0
    generator = reference_models("tiny", "2.1", S, video=True).load(Sam2AutomaticMaskGenerator, **OPTIONS)
    for name in ("shot0", "shot1"):
        image = np.array(Image.open(folder / f"{name}.png"))
        expected = [r["segmentation"] for r in generator.generate(image)]
        masks = read_masks(tmp_path / name)
        assert len(masks) == len(expected) >= 2 and all(0 < m.mean() < 1 for m in masks.values())
        assert all(np.array_equal(masks[i], m) for i, m in enumerate(expected, start=1))
        colors = {obj_id: PALETTE[(obj_id - 1) % len(PALETTE)] for obj_id in masks}  # ids 1, 2, ... in order
        overlay = np.array(Image.open(tmp_path / name / "overlay.png"))
        assert np.array_equal(overlay, blend_masks(image, masks, colors))  # the one renderer
        assert not np.array_equal(overlay, image)
    assert main(["segment", str(folder), *model, "--out", str(tmp_path)]) == 2  # results there: not overwritten


def test_prompts_in_an_image_folder(folder, model, reference_models, tmp_path, capsys):
    args = ["segment", str(folder), *model, "--point", "0,20,29", "--box", "2:1,60,50,120,90", "--out", str(tmp_path)]
    assert main(args) == 0
    predictor = reference_models("tiny", "2.1", S, video=True).load(Sam2ImagePredictor)
    for index, (obj_id, prompt) in enumerate([(1, dict(point_coords=[[20, 29]], point_labels=[1])),
                                               (2, dict(box=[60, 50, 120, 90]))]):  # fmt: skip
        predictor.set_image(np.array(Image.open(folder / f"shot{index}.png")))
        expected, _, _ = predictor.predict(**prompt, multimask_output=False)
        assert list(read_masks(tmp_path / f"shot{index}")) == [obj_id]
        assert np.array_equal(read_masks(tmp_path / f"shot{index}")[obj_id], expected[0] > 0)
    assert main([*args[:-1], str(tmp_path / "other"), "--point", "5,1,1"]) == 2
    assert "a prompt for image 5, but there are 2 images" in capsys.readouterr().err
    assert main([*args[:-1], str(tmp_path / "typo"), "--point", "0,900,10"]) == 2  # refused as `track` does
    assert "outside the" in capsys.readouterr().err


def test_video_everything_and_prompts(video_path, model, tmp_path):  # noqa: F811
    assert main(["segment", str(video_path), *model, *EVERYTHING, "--max-objects", "3", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "masks.json").read_text())
    assert result["objects"] == [1, 2, 3] and result["video"]["num_frames"] == NUM_FRAMES
    assert {a["frame_index"] for a in result["annotations"]} == set(range(NUM_FRAMES))
    assert (tmp_path / "overlay.mp4").stat().st_size > 0 and len(list((tmp_path / "masks").iterdir())) == 3
    assert main(["segment", str(video_path), *model, "--point", "0,20,29", "--out", str(tmp_path / "p")]) == 0
    assert json.loads((tmp_path / "p" / "masks.json").read_text())["objects"] == [1]


def test_a_folder_of_frames_is_tracked_as_a_video(folder, model, tmp_path, capsys):
    """With --frames the folder's images are one video's frames: objects keep their ids across them."""
    assert main(["segment", str(folder), "--frames", *model, "--point", "0,20,29", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "masks.json").read_text())
    assert result["objects"] == [1] and result["video"]["num_frames"] == 2
    assert {a["frame_index"] for a in result["annotations"]} == {0, 1}
    assert not (tmp_path / "shot0").exists()  # not segmented image by image
    (folder / "shot2.png").write_bytes(b"not an image")  # a frame that cannot be read: what came before is written
    try:
        args = ["segment", str(folder), "--frames", *model, "--point", "0,20,29", "--out", str(tmp_path / "cut")]
        assert main(args) == 1
        assert "writing the 2 frames tracked before it" in capsys.readouterr().err
        assert {a["frame_index"] for a in json.loads((tmp_path / "cut" / "masks.json").read_text())["annotations"]} == {
            0,
            1,
        }
    finally:
        (folder / "shot2.png").unlink()
    assert main(["segment", str(folder / "shot0.png"), "--frames", *model, "--out", str(tmp_path / "f")]) == 2
    assert "--frames takes a folder" in capsys.readouterr().err
