"""Result writers: COCO RLE round trips, the RLE JSON file, per-object PNGs and the overlay MP4."""

import json
from fractions import Fraction

import av
import numpy as np
import pycocotools.mask as mask_utils
import pytest
from PIL import Image

from sam2_hf.media.render import PALETTE
from sam2_hf.media.rle import decode_rle, encode_rle, load_rle_json
from sam2_hf.media.writers import FORMATS, OverlayVideoWriter, PngMaskWriter, ResultWriters, RleJsonWriter

HEIGHT, WIDTH = 47, 65  # odd on purpose: the overlay video must pad to an even size


def disk(height, width, cy, cx, r) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def tracked_masks(t, height=HEIGHT, width=WIDTH) -> dict:
    """Frame t's masks: object 1 a disk moving right, object 7 a box, object 3 empty (lost)."""
    box = np.zeros((height, width), bool)
    box[5:20, 40:60] = True
    return {1: disk(height, width, 25, 10 + 4 * t, 8), np.int64(7): box, 3: np.zeros((height, width), bool)}


def video_info(num_frames=4):
    return {"path": "clip.mp4", "height": HEIGHT, "width": WIDTH, "fps": 10.0, "num_frames": num_frames}


def test_rle_json_video_info_becomes_plain_json(tmp_path):
    info = {"path": tmp_path / "clip.mp4", "height": np.int64(HEIGHT), "width": WIDTH, "fps": Fraction(30000, 1001)}
    with RleJsonWriter(tmp_path / "r.json", {**info, "num_frames": np.int32(2)}) as writer:
        writer.write(np.int64(0), {np.int32(4): np.ones((HEIGHT, WIDTH), bool)})
    result = load_rle_json(tmp_path / "r.json")
    assert result["video"] == {"path": str(tmp_path / "clip.mp4"), "height": HEIGHT, "width": WIDTH,
                               "fps": pytest.approx(29.97, abs=1e-3), "num_frames": 2}  # fmt: skip
    assert result["objects"] == [4] and result["annotations"][0]["area"] == HEIGHT * WIDTH


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools under numpy 2
@pytest.mark.parametrize("shape", [(1, 1), (HEIGHT, WIDTH), (64, 48)])
def test_rle_round_trip(shape):
    rng = np.random.default_rng(0)
    for mask in [rng.random(shape) > 0.5, np.zeros(shape, bool), np.ones(shape, bool)]:
        rle = encode_rle(mask)
        assert rle["size"] == list(shape) and isinstance(rle["counts"], str)
        json.dumps(rle)
        np.testing.assert_array_equal(decode_rle(rle), mask)
        reference = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        np.testing.assert_array_equal(reference.astype(bool), mask)
        assert mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))["counts"].decode() == rle["counts"]


def test_rle_json_structure(tmp_path):
    path = tmp_path / "out" / "masks.json"
    with RleJsonWriter(path, video_info()) as writer:
        for t in range(4):
            writer.write(t, tracked_masks(t))
    result = load_rle_json(path)
    assert result["video"] == video_info()
    assert result["objects"] == [1, 7, 3]
    annotations = result["annotations"]
    assert len(annotations) == 12
    assert [(a["frame_index"], a["object_id"]) for a in annotations[:4]] == [(0, 1), (0, 7), (0, 3), (1, 1)]
    for a in annotations:
        mask = tracked_masks(a["frame_index"])[a["object_id"]]
        np.testing.assert_array_equal(decode_rle(a["segmentation"]), mask)
        assert a["area"] == mask.sum()
        if mask.any():
            ys, xs = np.nonzero(mask)
            assert a["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        else:
            assert (a["area"], a["bbox"]) == (0, [0, 0, 0, 0])


def test_rle_json_stream_frame_count_and_errors(tmp_path):
    info = {"height": HEIGHT, "width": WIDTH, "fps": None, "num_frames": None}
    with RleJsonWriter(tmp_path / "stream.json", info) as writer:
        writer.write(0, tracked_masks(0))
        writer.write(5, tracked_masks(5))
        with pytest.raises(ValueError, match=r"\(47, 65\)"):
            writer.write(6, {1: np.zeros((10, 10), bool)})
    assert load_rle_json(tmp_path / "stream.json")["video"] == {**info, "num_frames": 6}
    with pytest.raises(ValueError, match="fps"):
        RleJsonWriter(tmp_path / "bad.json", {"height": 1, "width": 1, "num_frames": 1})


def test_png_masks(tmp_path):
    with PngMaskWriter(tmp_path / "png") as writer:
        for t in range(3):
            writer.write(t, tracked_masks(t))
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["1", "3", "7"]
    assert sorted(p.name for p in (tmp_path / "png" / "1").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    for obj_id in (1, 7, 3):
        with Image.open(tmp_path / "png" / str(obj_id) / "00002.png") as image:
            assert image.mode == "L" and image.size == (WIDTH, HEIGHT)
            pixels = np.array(image)
        assert set(np.unique(pixels)) <= {0, 255}
        np.testing.assert_array_equal(pixels == 255, tracked_masks(2)[obj_id])


def background(t):
    frame = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    frame[:, -1] = (0, 0, 255)  # last column: edge padding should repeat it
    frame[-1, :] = (255, 255, 0)
    return frame


def test_overlay_video(tmp_path):
    path = tmp_path / "overlay.mp4"
    with OverlayVideoWriter(path, fps=10, width=WIDTH, height=HEIGHT, colors={7: (255, 255, 255)}) as writer:
        for t in range(5):
            writer.write(t, tracked_masks(t), background(t))
        assert writer.color(1) == PALETTE[0] and writer.color(3) == PALETTE[1] and writer.color(7) == (255, 255, 255)
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: playable while downloading
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.format.name == "yuv420p"
        assert (stream.width, stream.height) == (WIDTH + 1, HEIGHT + 1)
        assert stream.average_rate == 10
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(stream)]
    assert len(frames) == 5
    last = frames[-1]
    expected_inside = 0.5 * 128 + 0.5 * np.array(PALETTE[0])
    assert np.abs(last[:HEIGHT, :WIDTH][disk(HEIGHT, WIDTH, 25, 26, 4)] - expected_inside).mean() < 12
    assert np.abs(last[36:44, 30:60] - 128).mean() < 4  # gray background, away from masks and coloured edges
    assert np.abs(last[10:15, 40] - 255).mean() < 20  # object 7's outline: its colour, opaque
    assert np.abs(last[10:15, 48] - (128 + 255) / 2).mean() < 8  # its inside: blended
    assert np.abs(last[20:30, WIDTH] - (0, 0, 255)).mean() < 40  # padded column repeats the last one


def test_overlay_rejects_wrong_sizes(tmp_path):
    with OverlayVideoWriter(tmp_path / "o.mp4", fps=10, width=WIDTH, height=HEIGHT) as writer:
        with pytest.raises(ValueError, match=r"\(47, 65, 3\) uint8"):
            writer.write(0, {}, np.zeros((HEIGHT, WIDTH), np.uint8))
        with pytest.raises(ValueError, match="mask"):
            writer.write(0, {1: np.zeros((HEIGHT + 1, WIDTH), bool)}, background(0))


def test_result_writers_fan_out(tmp_path):
    info = {**video_info(3), "fps": None}  # no frame rate (an image folder): the overlay uses DEFAULT_FPS
    with ResultWriters(
        info, {"png": tmp_path / "png", "rle": tmp_path / "r.json", "overlay": tmp_path / "o.mp4"}
    ) as out:
        for t in range(3):
            out.write(t, tracked_masks(t), frame=background(t))
        with pytest.raises(ValueError, match="needs the frame"):
            out.write(3, tracked_masks(3))
    assert len(load_rle_json(tmp_path / "r.json")["annotations"]) == 9 + 3  # the failed call wrote PNG + RLE first
    assert len(list((tmp_path / "png" / "1").iterdir())) == 4
    with av.open(str(tmp_path / "o.mp4")) as container:
        assert len(list(container.decode(video=0))) == 3
        assert container.streams.video[0].average_rate == 30

    with ResultWriters(video_info(2), {"rle": tmp_path / "only.json"}) as out:
        out.write(0, tracked_masks(0))
    assert load_rle_json(tmp_path / "only.json")["objects"] == [1, 7, 3]
    with pytest.raises(ValueError, match="No output"):
        ResultWriters(video_info(), {})
    with pytest.raises(ValueError, match=r"Unknown output formats \['gif'\]"):
        ResultWriters(video_info(), {"gif": tmp_path / "x.gif"})


def test_masklets_save_chooses_formats_and_never_mixes_runs(tmp_path):
    from sam2_hf import Masklets

    masklets = Masklets(HEIGHT, WIDTH, 3, 10.0)
    for t in range(3):
        masklets.add(t, tracked_masks(t))
    assert masklets.save(None, tmp_path, "rle") == {"rle": tmp_path / "masks.json"}  # one name, not its letters
    with pytest.raises(FileExistsError, match=r"already holds results \(masks.json\)"):
        masklets.save(None, tmp_path, ("rle", "png"))
    assert not (tmp_path / "masks").exists()  # refused before writing anything
    (tmp_path / "masks" / "9").mkdir(parents=True)  # an object of an earlier run
    written = masklets.save(None, tmp_path, ("png", "rle"), overwrite=True)
    assert written == {"png": tmp_path / "masks", "rle": tmp_path / "masks.json"}
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["1", "3", "7"]
    with pytest.raises(ValueError, match="No output format chosen"):
        masklets.save(None, tmp_path / "other", ())


def test_masklets_save_writes_every_processed_frame_in_every_format(tmp_path):
    """Frames processed without any object (detect-every-K-frames tracking that found nothing,
    IDEA-Research/Grounded-SAM-2#43) are still frames of the result: the overlay video has one frame per
    processed frame, in order, and every other output lists each of them."""
    from sam2_hf import Masklets

    video = np.stack([np.full((HEIGHT, WIDTH, 3), 20 * t, np.uint8) for t in range(7)])  # frame t: gray 20 t
    masklets = Masklets(HEIGHT, WIDTH, len(video), 10.0)
    with_objects = {1: {1: disk(HEIGHT, WIDTH, 25, 20, 8)}, 2: {1: disk(HEIGHT, WIDTH, 25, 30, 8)}, 4: tracked_masks(4)}
    processed = range(6)  # frames 0, 3 and 5 have no object (0: before the first detection); frame 6 not processed
    for t in processed:
        masklets.add(t, with_objects.get(t, {}))
    assert masklets.frames() == list(processed) and masklets.frames(7) == [4]
    written = masklets.save(video, tmp_path)
    assert set(written) == set(FORMATS)

    with av.open(str(written["overlay"])) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == len(processed)
    gray = [int(np.median(frame[:HEIGHT, :WIDTH])) for frame in frames]  # the background shows which frame it is
    assert np.abs(np.array(gray) - 20 * np.arange(len(processed))).max() <= 3
    assert np.abs(frames[1][25, 20].astype(int) - gray[1]).max() > 30  # object 1 is drawn on frame 1 ...
    assert np.abs(frames[3][25, 20].astype(int) - gray[3]).max() <= 3  # ... not on frame 3, which has none

    result = load_rle_json(written["rle"])
    assert result["frames"] == list(processed) and result["objects"] == [1, 7, 3]
    for obj_id in (1, 7, 3):  # one annotation per object per processed frame, empty where it has no result
        annotations = [a for a in result["annotations"] if a["object_id"] == obj_id]
        assert [a["frame_index"] for a in annotations] == list(processed)
        for a in annotations:
            expected = with_objects.get(a["frame_index"], {}).get(obj_id, np.zeros((HEIGHT, WIDTH), bool))
            np.testing.assert_array_equal(decode_rle(a["segmentation"]), expected)
        pngs = sorted((written["png"] / str(obj_id)).iterdir())
        assert [p.name for p in pngs] == [f"{t:05d}.png" for t in processed]
    assert np.array(Image.open(written["png"] / "1" / "00002.png")).any()
    assert not np.array(Image.open(written["png"] / "1" / "00003.png")).any()


def test_coco_segmentations_decode_or_say_what_is_wrong():
    """Polygons and both RLE forms decode as pycocotools' `annToMask`; malformed ones name the problem."""
    from sam2_hf.media.rle import decode_segmentation

    square = decode_segmentation([[2, 2, 9, 2, 9, 9, 2, 9]], 12, 16)
    assert square.shape == (12, 16) and 0 < square.sum() < 12 * 16
    compressed = mask_utils.encode(np.asfortranarray(square.astype(np.uint8)))
    assert np.array_equal(
        decode_segmentation({"size": [12, 16], "counts": compressed["counts"].decode()}, 12, 16), square
    )
    bad = {
        "a polygon is a list of 6 or more x, y pixel coordinates \\(even count\\); got 3": [[1, 2, 3]],
        "a polygon holds a value that is not a number": [[1, 2, "a", 4, 5, 6]],
        "the RLE's size \\[5, 5\\] is not the image's \\[height, width\\] \\[12, 16\\]": {
            "size": [5, 5],
            "counts": "0",
        },
        "the RLE's counts string holds '!', not an RLE character": {"size": [12, 16], "counts": "!!!!"},
        "a segmentation is a list of polygons or an RLE dict": "not a segmentation",
    }
    for message, segmentation in bad.items():
        with pytest.raises(ValueError, match=message):
            decode_segmentation(segmentation, 12, 16)
