"""The `sam2-hf track` command and the high-level tracker on a generated video (random weights)."""

from __future__ import annotations

import argparse
import json

import av
import numpy as np
import pytest
import torch
from PIL import Image

from sam2_hf import Sam2VideoConfig, Sam2VideoModel
from sam2_hf.cli import main
from sam2_hf.cli.common import merge_prompts, parse_box, parse_point
from sam2_hf.media.rle import decode_rle
from sam2_hf.media.synthetic import synthetic_clip

NUM_FRAMES, HEIGHT, WIDTH = 6, 96, 128


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model")
    Sam2VideoModel(Sam2VideoConfig.from_size("tiny", image_size=128)).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def video_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for frame in synthetic_clip(NUM_FRAMES, HEIGHT, WIDTH):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_prompt_parsing():
    assert parse_point("0,10,20").clicks == [((10.0, 20.0), 1)]
    p = parse_point("3:2,10,20,0")
    assert (p.obj_id, p.frame, p.clicks) == (3, 2, [((10.0, 20.0), 0)])
    b = parse_box("2:1,1,2,30,40")
    assert (b.obj_id, b.frame, b.box.tolist()) == (2, 1, [1.0, 2.0, 30.0, 40.0])
    merged = merge_prompts([b, parse_point("2:1,5,6"), parse_point("2:1,7,8,0"), parse_point("0,7,8")])
    assert [m.obj_id for m in merged] == [1, 2]
    assert merged[1].box.tolist() == [1.0, 2.0, 30.0, 40.0] and merged[1].clicks == [((5.0, 6.0), 1), ((7.0, 8.0), 0)]
    with pytest.raises(argparse.ArgumentTypeError, match=r"'0,7,8,5'.*labels must be 1"):
        parse_point("0,7,8,5")
    with pytest.raises(argparse.ArgumentTypeError, match="x1 >= x0"):
        parse_box("1,30,2,1,40")


def test_cli_writes_all_three_formats(model_dir, video_path, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "track",
            str(video_path),
            "--model",
            str(model_dir),
            "--point",
            "0,20,29",
            "--box",
            "2:2,26,57,45,77",
            "--point",
            "2:2,35,67",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    for obj in (1, 2):
        pngs = sorted((out / "masks" / str(obj)).glob("*.png"))
        assert len(pngs) == NUM_FRAMES
        assert np.asarray(Image.open(pngs[0])).shape == (HEIGHT, WIDTH)
    data = json.loads((out / "masks.json").read_text())
    assert data["objects"] == [1, 2] and len(data["annotations"]) == 2 * NUM_FRAMES
    assert decode_rle(data["annotations"][0]["segmentation"]).shape == (HEIGHT, WIDTH)
    with av.open(str(out / "overlay.mp4")) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
    assert len(frames) == NUM_FRAMES and stream.codec_context.name == "h264"
    assert frames[0].format.name == "yuv420p" and (frames[0].width, frames[0].height) == (WIDTH, HEIGHT)


def test_cli_errors_are_readable(model_dir, tmp_path, capsys):
    assert main(["track", str(tmp_path / "nothing.mp4"), "--model", str(model_dir)]) == 2
    assert "at least one --point or --box" in capsys.readouterr().err
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    assert main(["track", str(bad), "--model", str(model_dir), "--point", "0,1,1", "--out", str(tmp_path / "o")]) == 2
    assert "bad.mp4" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_cli_exit_status_outputs_and_overwrite(model_dir, tmp_path, capsys):
    """A damaged frame: status 1 and the frames before it written; errors the user can fix: status 2 and one
    line, no traceback; results already in --out are kept unless --overwrite, so runs never mix."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(synthetic_clip(NUM_FRAMES, HEIGHT, WIDTH)):
        Image.fromarray(frame).save(folder / f"{t:05d}.jpg")
    out = tmp_path / "out"
    args = ["track", str(folder), "--model", str(model_dir), "--point", "0,20,29", "--point", "2:0,25,67"]
    assert main([*args, "--out", str(out), "--no-overlay"]) == 0
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["1", "2"]
    capsys.readouterr()

    (folder / "00003.jpg").write_bytes(b"\xff\xd8 damaged")
    one_object = ["track", str(folder), "--model", str(model_dir), "--point", "0,20,29", "--out", str(out)]
    assert main(one_object) == 2
    assert "already holds results (masks, masks.json)" in capsys.readouterr().err
    assert main([*one_object, "--overwrite"]) == 1
    err = capsys.readouterr().err
    assert "00003.jpg (frame 3)" in err and "writing the 3 frames tracked before it" in err
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["1"]  # object 2 of the first run is gone
    assert len(list((out / "masks" / "1").iterdir())) == 3
    data = json.loads((out / "masks.json").read_text())
    assert sorted({a["frame_index"] for a in data["annotations"]}) == [0, 1, 2]

    assert (
        main(["track", str(folder), "--model", str(model_dir), "--point", "3,20,29", "--out", str(tmp_path / "z")]) == 1
    )
    printed = capsys.readouterr().out
    assert "masks.json" in printed and "overlay" not in printed  # nothing tracked: no overlay claimed
    assert not (tmp_path / "z" / "overlay.mp4").exists()

    for bad, message in (
        (["--point", "0,500,10"], "outside the 128x96 image"),
        (["--point", "9,10,10"], "Frame index 9 is out of range"),
        (["--point", "0,10,10", "--no-png", "--no-rle", "--no-overlay"], "nothing to write"),
    ):
        status = main(["track", str(folder), "--model", str(model_dir), "--out", str(tmp_path / "x"), *bad])
        assert status == 2 and message in capsys.readouterr().err, bad
