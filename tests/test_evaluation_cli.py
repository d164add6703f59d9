"""`sam2-hf eval` on generated data: scoring a folder, VOS inference + scoring, click mIoU and PVS on a random-weight
Meta `.pt`, and bad input answered with exit status 2 and a message."""

from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image

from sam2_hf.cli import main
from sam2_hf.media.synthetic import synthetic_clip

IMAGE_SIZE = 256


def test_score_mode(davis_folder, tmp_path, capsys):
    pred = tmp_path / "pred"
    shutil.copytree(davis_folder / "Annotations", pred)
    png = pred / "shapes" / "00002.png"
    image = Image.open(png)
    labels = np.array(image)
    labels[labels == 1] = 0  # object 1 lost on one scored frame
    out = Image.fromarray(labels)
    out.putpalette(image.getpalette())
    out.save(png)
    args = ["eval", "score", "--gt-dir", str(davis_folder / "Annotations"), "--pred-dir", str(pred)]
    assert main([*args, "--out", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr().out
    assert "J&F-Mean" in printed and "shapes_1" in printed
    # By hand: 6 objects (3 per sequence); shapes_1 is lost (J = F = 0) on one of its 4 scored frames (frames
    # 1-4 of 6) and exact elsewhere, every other object exact (or absent on both sides: 1), so shapes_1 has
    # J-Mean = F-Mean = 3/4 and J&F-Mean = (3/4 + 5) / 6 = 0.95833.
    rows = (tmp_path / "report" / "global_results-val.csv").read_text().splitlines()
    assert rows[1].split(",")[:2] == ["0.958", "0.958"]
    per_object = (tmp_path / "report" / "per-sequence_results-val.csv").read_text().splitlines()
    assert per_object[1:] == ["shapes_1,0.750,0.750", "shapes_2,1.000,1.000", "shapes_3,1.000,1.000",
                              "shapes-b_1,1.000,1.000", "shapes-b_2,1.000,1.000", "shapes-b_3,1.000,1.000"]  # fmt: skip
    assert main([*args, "--protocol", "sav"]) == 0
    # SA-V reports only objects present in the scored ground truth: the green squares (3) are not, so 4 objects,
    # J&F, J and F = (75 + 3 * 100) / 4 = 93.75 %, printed to one decimal.
    lines = (pred / "results.csv").read_text().splitlines()
    assert lines[0].startswith("sequence") and lines[1].endswith("93.8, 93.8, 93.8") and len(lines) == 2 + 4

    (pred / "shapes" / "00003.png").unlink()
    assert main(args) == 2
    assert "00003.png is missing" in capsys.readouterr().err
    assert main(["eval", "score", "--gt-dir", str(davis_folder), "--pred-dir", str(pred)]) == 2
    assert f"{davis_folder} looks like the dataset root" in capsys.readouterr().err


def test_vos_mode(davis_folder, tmp_path, reference_models, capsys):
    checkpoint = reference_models("tiny", "2.1", IMAGE_SIZE, video=True).path
    (tmp_path / "list.txt").write_text("shapes-b\n")
    args = ["eval", "vos", "--model", str(checkpoint), "--image-size", str(IMAGE_SIZE), "--device", "cpu",
            "--base-video-dir", str(davis_folder / "JPEGImages"), "--input-mask-dir", str(davis_folder / "Annotations"),
            "--video-list-file", str(tmp_path / "list.txt"), "--output-mask-dir", str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 0
    assert sorted(p.name for p in (tmp_path / "out" / "shapes-b").iterdir()) == [f"{t:05d}.png" for t in range(5)]
    assert "shapes-b_3" in capsys.readouterr().out
    assert (tmp_path / "out" / "per-sequence_results-val.csv").exists()
    assert main([*args[:-1], str(tmp_path / "out2"), "--use-all-masks", "--protocol", "none"]) == 0

    missing = [*args[:8], "--base-video-dir", str(tmp_path / "nowhere"), *args[10:-1], str(tmp_path / "out3")]
    assert main(missing) == 2
    assert "nowhere" in capsys.readouterr().err


def test_clicks_and_pvs_modes(davis_folder, tmp_path, reference_models, capsys):
    image_pt = reference_models("tiny", "2.1", IMAGE_SIZE).path
    frame = synthetic_clip(num_frames=1, height=64, width=96)[0]
    Image.fromarray(frame).save(tmp_path / "a.png")
    polygon = [[10.0, 10.0, 40.0, 10.0, 40.0, 30.0, 10.0, 30.0]]
    coco = {"images": [{"id": 1, "file_name": "a.png", "height": 64, "width": 96}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": polygon,
                             "area": 600.0, "bbox": [10, 10, 30, 20]}],
            "categories": [{"id": 1, "name": "box"}]}  # fmt: skip
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    model = ["--model", str(image_pt), "--image-size", str(IMAGE_SIZE)]
    args = ["eval", "clicks", *model, "--coco-json", str(tmp_path / "coco.json"), "--image-dir", str(tmp_path)]
    assert main([*args, "--num-clicks", "2", "--out", str(tmp_path / "clicks.json")]) == 0
    result = json.loads((tmp_path / "clicks.json").read_text())
    assert result["num_masks"] == 1 and len(result["miou"]) == 2 and "2-click mIoU" in capsys.readouterr().out
    assert main([*args[:-2], "--image-dir", str(tmp_path / "nowhere")]) == 2
    assert "a.png" in capsys.readouterr().err

    video_pt = reference_models("tiny", "2.1", IMAGE_SIZE, video=True).path
    short = tmp_path / "short"  # 2 frames of one sequence keep the test quick
    for kind in ("JPEGImages", "Annotations"):
        (short / kind / "s").mkdir(parents=True)
        for path in sorted((davis_folder / kind / "shapes-b").iterdir())[:2]:
            shutil.copy(path, short / kind / "s")
    args = ["eval", "pvs", "--model", str(video_pt), "--image-size", str(IMAGE_SIZE), "--num-clicks", "1",
            "--num-rounds", "1", "--base-video-dir", str(short / "JPEGImages"),
            "--input-mask-dir", str(short / "Annotations"), "--out", str(tmp_path / "pvs.json")]  # fmt: skip
    assert main(args) == 0
    result = json.loads((tmp_path / "pvs.json").read_text())
    assert [r["round"] for r in result["sequences"]["s"]] == [0, 1] and len(result["mean_jf_per_round"]) == 2
    assert "round 1: J&F" in capsys.readouterr().out
    for option, value, message in (("--num-clicks", "0", "num_clicks must be at least 1"),
                                   ("--base-video-dir", str(short), f"{short} looks like the dataset root"),
                                   ("--per-obj-png-file", None, "holds palette PNGs (DAVIS layout)")):  # fmt: skip
        changed = [*args, option] + ([value] if value else [])
        assert main(changed) == 2 and message in capsys.readouterr().err
