"""The fine-tuning data layer: layouts read the masks in their files, collation equals Meta's `collate_fn`,
augmentation keeps frames and masks aligned, sampling is seeded, and bad data raises DataError naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from pycocotools.coco import COCO
from scipy import ndimage
from torchvision import tv_tensors

from sam2_hf.cli import main
from sam2_hf.media.rle import decode_rle, decode_segmentation, encode_rle, rle_runs
from sam2_hf.processing.image_processing import IMAGENET_MEAN, IMAGENET_STD, preprocess_images
from sam2_hf.training import FinetuneRecipe, Sam2Trainer, Sam2VideoModelForTraining
from sam2_hf.training.data import (
    ClipSample,
    DataError,
    build_dataset,
    check_dataset,
    collate_clips,
    make_synthetic_dataset,
    parse_data_source,
    save_palette_png,
)
from sam2_hf.training.prompting import PromptSimulation, draw_clip_prompts, sample_box_points
from sam2_hf.training.transforms import ClipTransforms, resize_masks

SIZE = 64  # frames are written SIZE x SIZE and read at image_size=SIZE: the resize is the identity


def unnormalize(pixel_values: torch.Tensor) -> torch.Tensor:
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    return pixel_values * std + mean


def masks_in_files(root, kind: str, sample: ClipSample) -> np.ndarray:
    """(T, O, H, W) masks of the sample's frames and objects, read straight from the files."""
    out = []
    for name in sample.frame_names:
        if kind == "images":
            ids = np.array(Image.open(root / "masks" / name.replace(".jpg", ".png")))
            out.append([ids == i for i in sample.object_ids])
        elif kind == "coco":
            coco = COCO(str(root / "annotations.json"))
            out.append([coco.annToMask(coco.anns[i]).astype(bool) for i in sample.object_ids])
        elif kind == "davis":
            ids = np.array(Image.open(root / "Annotations" / sample.source.split("/")[-1] / name.replace("jpg", "png")))
            out.append([ids == i for i in sample.object_ids])
        else:
            frame = int(name.split()[-1])
            data = json.loads(Path(sample.source).read_text())
            if kind == "sav":
                rles = dict(zip(data["masklet_id"], data["masklet"][frame // 4]))
            else:
                rles = {a["object_id"]: a["segmentation"] for a in data["annotations"] if a["frame_index"] == frame}
            out.append([decode_rle(rles[i]) for i in sample.object_ids])
    return np.array(out)


@pytest.mark.parametrize("kind", ["images", "coco", "davis", "sav", "masklets"])
def test_each_layout_gives_the_masks_and_frames_in_its_files(tmp_path, kind):
    root = make_synthetic_dataset(tmp_path, kind, num_items=3, num_frames=4, height=SIZE, width=SIZE, seed=1)
    dataset = build_dataset(root, image_size=SIZE, num_frames=3, augment=False, seed=0)
    assert len(dataset) == 3 and len(list(dataset)) == 3  # iteration ends (__getitem__ also takes larger indices)
    for sample in dataset:
        expected = masks_in_files(root, kind, sample)
        assert sample.masks.dtype == torch.bool and sample.masks.shape == expected.shape
        np.testing.assert_array_equal(sample.masks.numpy(), expected)
        assert sample.masks[0].flatten(1).any(1).all()  # every object is visible on the clip's first frame
        assert 0 < sample.masks.float().mean() < 0.5  # partial masks: a non-trivial comparison
        on_disk = np.stack([np.array(Image.open(path)) for path in frame_files(kind, sample)])
        on_disk = torch.from_numpy(on_disk).permute(0, 3, 1, 2) / 255
        torch.testing.assert_close(unnormalize(sample.pixel_values), on_disk, atol=1e-5, rtol=0)


def frame_files(kind: str, sample: ClipSample) -> list[Path]:
    source = Path(sample.source)
    if kind in ("images", "coco"):
        return [source]
    if kind == "davis":
        return [source / name for name in sample.frame_names]
    folder = source.parent / source.name.replace("_manual.json", "").replace("_masks.json", "")
    return [folder / f"{int(name.split()[-1]):05d}.jpg" for name in sample.frame_names]


def test_per_object_pngs_hf_datasets_and_coco_polygons(tmp_path):
    per_object = make_synthetic_dataset(tmp_path / "a", "images", num_items=2, height=SIZE, width=SIZE,
                                        per_object_masks=True)  # fmt: skip
    for sample in build_dataset(per_object, image_size=SIZE, augment=False, seed=0):
        folder = per_object / "masks" / sample.frame_names[0].replace(".jpg", "")
        files = [np.array(Image.open(folder / f"{i}.png")) > 0 for i in sample.object_ids]
        np.testing.assert_array_equal(sample.masks[0].numpy(), np.array(files))

    datasets = pytest.importorskip("datasets")
    ids = np.zeros((SIZE, SIZE), np.uint8)
    ids[5:20, 5:30], ids[30:60, 40:50] = 3, 7
    image = Image.fromarray(np.full((SIZE, SIZE, 3), 90, np.uint8))
    table = datasets.Dataset.from_dict({"image": [image], "mask": [Image.fromarray(ids)]})
    table = table.cast_column("image", datasets.Image()).cast_column("mask", datasets.Image())
    sample = build_dataset(table, image_size=SIZE, augment=False, seed=0)[0]
    np.testing.assert_array_equal(sample.masks[0].numpy(), np.array([ids == i for i in sample.object_ids]))
    assert sorted(sample.object_ids) == [3, 7]

    coco_dir = tmp_path / "coco"
    (coco_dir / "images").mkdir(parents=True)
    image.save(coco_dir / "images" / "a.png")
    square = [[10.0, 10.0, 40.0, 10.0, 40.0, 30.0, 10.0, 30.0]]
    annotation = {"id": 5, "image_id": 1, "category_id": 1, "segmentation": square, "iscrowd": 0}
    coco = {"images": [{"id": 1, "file_name": "a.png", "height": SIZE, "width": SIZE}],
            "annotations": [annotation], "categories": [{"id": 1, "name": "x"}]}  # fmt: skip
    (coco_dir / "instances.json").write_text(json.dumps(coco))
    sample = build_dataset(coco_dir, image_size=SIZE, augment=False, seed=0)[0]
    reference = COCO(str(coco_dir / "instances.json")).annToMask(coco["annotations"][0]).astype(bool)
    assert sample.object_ids == [5] and 500 < reference.sum() < 800
    np.testing.assert_array_equal(sample.masks[0, 0].numpy(), reference)


def test_evaluation_transform_is_the_inference_preprocessing():
    frames = torch.randint(0, 256, (2, 50, 70, 3), dtype=torch.uint8)
    masks = torch.zeros(2, 1, 50, 70, dtype=torch.bool)
    pixel_values, _ = ClipTransforms(image_size=SIZE, augment=False)(frames, masks)
    expected, _ = preprocess_images([f.numpy() for f in frames], SIZE)
    torch.testing.assert_close(pixel_values, expected, atol=1e-6, rtol=0)


def test_collate_equals_metas_collate_fn(tmp_path):
    data_utils = pytest.importorskip("training.utils.data_utils")
    root = make_synthetic_dataset(tmp_path, "davis", num_items=2, num_frames=4, height=SIZE, width=SIZE, num_targets=3)
    dataset = build_dataset(root, image_size=SIZE, num_frames=3, seed=0)
    first, second = dataset[0], dataset[1]
    second = ClipSample(second.pixel_values, second.masks[:, :1], second.object_ids[:1], second.frame_names, "b")
    assert first.masks.shape[1] >= 2  # clips with different numbers of objects
    ours = collate_clips([first, second])

    def datapoint(sample, video_id):
        frames = [
            data_utils.Frame(data=sample.pixel_values[t], objects=[
                data_utils.Object(object_id=obj_id, frame_index=t, segment=sample.masks[t, k])
                for k, obj_id in enumerate(sample.object_ids)
            ])
            for t in range(len(sample.frame_names))
        ]  # fmt: skip
        return data_utils.VideoDatapoint(frames=frames, video_id=video_id, size=(SIZE, SIZE))

    meta = data_utils.collate_fn([datapoint(first, 0), datapoint(second, 1)], dict_key="all")
    assert torch.equal(ours["pixel_values"], meta.img_batch)
    assert torch.equal(ours["masks"], meta.masks)
    assert torch.equal(ours["obj_to_frame_idx"], meta.obj_to_frame_idx.long())
    assert 0 < ours["masks"].float().mean() < 0.5 and ours["obj_to_frame_idx"][..., 1].unique().tolist() == [0, 1]
    with pytest.raises(ValueError, match="same frames and size"):
        collate_clips([first, build_dataset(root, image_size=SIZE, num_frames=2, seed=0)[0]])


def test_augmentation_keeps_frames_and_masks_aligned():
    frame = np.full((96, 96, 3), 110, np.uint8)
    frame[20:50, 10:35] = (230, 20, 20)  # a red rectangle, off centre so that flips move it
    frames = torch.from_numpy(np.stack([frame, frame]))
    masks = torch.zeros(2, 1, 96, 96, dtype=torch.bool)
    masks[:, 0, 20:50, 10:35] = True
    unaugmented = ClipTransforms(image_size=SIZE, augment=False)(frames, masks)[1]
    transforms = ClipTransforms(image_size=SIZE, grayscale_prob=0.0)
    moved = 0
    for seed in range(12):
        torch.manual_seed(seed)
        pixel_values, out = transforms(frames, masks)
        assert torch.equal(out[0], out[1])  # one geometric draw for the clip
        redness = (unnormalize(pixel_values)[:, 0] - unnormalize(pixel_values)[:, 1]).numpy()  # (T, S, S)
        inside = out[:, 0].numpy()
        inner = ndimage.binary_erosion(inside, iterations=2, structure=np.ones((1, 3, 3)))
        near = ndimage.binary_dilation(inside, iterations=2, structure=np.ones((1, 3, 3)))
        assert inner.sum() > 100 and (redness[inner] > 0.5).all() and (redness[~near] < 0.2).all()
        moved += int(not torch.equal(out, unaugmented))
    assert moved >= 10  # flips and affines did move the rectangle


def test_sampling_is_seeded_and_draws_clips_as_meta(tmp_path):
    root = make_synthetic_dataset(tmp_path, "davis", num_items=3, num_frames=8, height=SIZE, width=SIZE)
    draws = [build_dataset(root, image_size=SIZE, num_frames=3, seed=seed) for seed in (5, 5, 6)]
    same, other = [[draws[k][i] for i in range(3)] for k in (1, 2)]
    for a, b in zip([draws[0][i] for i in range(3)], same):
        assert torch.equal(a.pixel_values, b.pixel_values) and torch.equal(a.masks, b.masks)
        assert (a.object_ids, a.frame_names) == (b.object_ids, b.frame_names)
    assert any(a.frame_names != b.frame_names or not torch.equal(a.pixel_values, b.pixel_values)
               for a, b in zip(same, other))  # fmt: skip
    draws[0].set_epoch(1)
    assert any(not torch.equal(draws[0][i].pixel_values, same[i].pixel_values) for i in range(3))
    starts = {build_dataset(root, image_size=SIZE, num_frames=3, seed=s)[0].frame_names[0] for s in range(8)}
    assert len(starts) > 1  # random starts

    torch.manual_seed(0)
    a = build_dataset(root, image_size=SIZE, num_frames=3)[0]
    torch.manual_seed(0)
    b = build_dataset(root, image_size=SIZE, num_frames=3)[0]
    assert torch.equal(a.pixel_values, b.pixel_values)  # seed=None follows torch's generator


def write_davis(root, ids_per_frame, as_rgb=False):
    (root / "JPEGImages" / "seq").mkdir(parents=True)
    (root / "Annotations" / "seq").mkdir(parents=True)
    for t, ids in enumerate(ids_per_frame):
        frame = np.full(ids.shape + (3,), 100 + 10 * t, np.uint8)
        Image.fromarray(frame).save(root / "JPEGImages" / "seq" / f"{t:05d}.jpg")
        path = root / "Annotations" / "seq" / f"{t:05d}.png"
        save_palette_png(ids, path)
        if as_rgb:
            Image.open(path).convert("RGB").save(path)
    return root


def test_objects_chosen_on_the_first_frame_may_vanish(tmp_path):
    ids = np.zeros((3, 32, 32), np.uint8)
    ids[:, 2:10, 2:10] = 1
    ids[0, 20:28, 20:28] = 2  # object 2 vanishes after frame 0
    root = write_davis(tmp_path, ids)
    forward = build_dataset(root, image_size=32, num_frames=3, augment=False, seed=0)[0]
    assert sorted(forward.object_ids) == [1, 2] and forward.frame_names[0] == "00000.jpg"
    k = forward.object_ids.index(2)
    assert forward.masks[0, k].any() and not forward.masks[1:, k].any()
    backward = build_dataset(root, image_size=32, num_frames=3, augment=False, seed=0, reverse_time_prob=1.0)[0]
    assert backward.object_ids == [1] and backward.frame_names == ["00002.jpg", "00001.jpg", "00000.jpg"]


def write_images(root, items):
    """items: {stem: (image array, mask array or None, mode of the mask PNG)}."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for stem, (image, mask) in items.items():
        Image.fromarray(image).save(root / "images" / f"{stem}.png")
        if mask is not None:
            (mask if isinstance(mask, Image.Image) else Image.fromarray(mask)).save(root / "masks" / f"{stem}.png")
    return root


def _image(h=32, w=32):
    return np.full((h, w, 3), 120, np.uint8)


def _ids(h=32, w=32):
    ids = np.zeros((h, w), np.uint8)
    ids[4:20, 6:24] = 1
    return ids


def _antialiased():
    mask = Image.fromarray(_ids() * 255).filter(ImageFilter.GaussianBlur(1.5))
    assert len(np.unique(np.array(mask))) > 10
    return mask


BAD_IMAGES = {
    "size": (_image(), _ids(40, 32), "is 32x40 but the image"),
    "rgb": (_image(), Image.fromarray(np.stack([_ids() * 200] * 3, -1)), "'RGB' image"),
    "soft": (_image(), _antialiased(), "not instance ids"),
    "empty": (_image(), np.zeros((32, 32), np.uint8), None),
}


@pytest.mark.parametrize("problem", list(BAD_IMAGES))
def test_bad_masks_raise_data_error_naming_the_file(tmp_path, problem):
    image, mask, message = BAD_IMAGES[problem]
    root = write_images(tmp_path, {"a": (image, mask)})
    if problem == "empty":  # an image whose only object is empty: nothing to prompt from
        (root / "masks" / "a.png").unlink()
        (root / "masks" / "a").mkdir()
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / "masks" / "a" / "1.png")
        message = "empty mask"
    with pytest.raises(DataError, match=message) as error:
        build_dataset(root, image_size=32, seed=0)  # refused up front: training never meets it mid-run
    assert str(root / "masks" / "a") in str(error.value)
    dataset = build_dataset(root, image_size=32, seed=0, check=False)  # unchecked: raised when the item is read
    with pytest.raises(DataError, match=message) as error:
        dataset[0]
    assert str(root / "masks" / "a") in str(error.value)


def test_bad_files_and_layouts_raise_data_error(tmp_path):
    root = write_davis(tmp_path / "rgb", np.stack([_ids()] * 3), as_rgb=True)
    with pytest.raises(DataError, match="palette PNG converted to RGB") as error:
        build_dataset(root, image_size=32, num_frames=2, seed=0)[0]
    assert "00000.png" in str(error.value) or "0000" in str(error.value)

    root = write_davis(tmp_path / "missing", np.stack([_ids()] * 3))
    (root / "JPEGImages" / "seq" / "00001.jpg").unlink()
    with pytest.raises(DataError, match="missing frames") as error:
        build_dataset(root, num_frames=2)
    assert str(root / "Annotations" / "seq") in str(error.value)

    root = write_images(tmp_path / "unreadable", {"a": (_image(), _ids())})
    (root / "images" / "a.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="not a readable image") as error:
        build_dataset(root, image_size=32)[0]
    assert str(root / "images" / "a.png") in str(error.value)

    root = make_synthetic_dataset(tmp_path / "short", "masklets", num_items=1, num_frames=4, height=32, width=32)
    with pytest.raises(DataError, match="fewer than num_frames=8"):
        build_dataset(root, num_frames=8)
    export = json.loads((root / "0000_masks.json").read_text())
    export["annotations"].append({**export["annotations"][0], "frame_index": 9})
    (root / "0000_masks.json").write_text(json.dumps(export))
    with pytest.raises(DataError, match=r"annotated frames \[9\] are missing") as error:
        build_dataset(root, num_frames=2)
    assert "0000_masks.json" in str(error.value)

    empty = write_images(tmp_path / "empty", {})
    with pytest.raises(DataError, match="empty dataset"):
        build_dataset(empty)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="no known dataset layout"):
        build_dataset(tmp_path / "nothing")


def test_coco_problems_name_the_annotation(tmp_path):
    """A COCO file's bad polygon, mis-sized RLE and annotations of unknown images are problems `check_dataset`
    lists (in words, not pycocotools' errors), and the file that is not JSON at all says so."""
    coco_dir = tmp_path / "coco"
    (coco_dir / "images").mkdir(parents=True)
    Image.fromarray(_image()).save(coco_dir / "images" / "a.png")
    height, width = _image().shape[:2]
    square = [[2.0, 2.0, 12.0, 2.0, 12.0, 12.0, 2.0, 12.0]]
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 2, 3]]},
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": {"size": [5, 5], "counts": "0"}},
        {"id": 3, "image_id": 7, "category_id": 1, "segmentation": square},
    ]
    coco = {"images": [{"id": 1, "file_name": "a.png", "height": height, "width": width}], "annotations": annotations}
    for i, problem in enumerate(["a polygon is a list of 6 or more", "the RLE's size [5, 5] is not the image's"]):
        (coco_dir / "instances.json").write_text(json.dumps({**coco, "annotations": [annotations[i], annotations[2]]}))
        problems = check_dataset(coco_dir / "instances.json", num_frames=1)
        assert any(f"annotation {i + 1} of image 1: {problem}" in p for p in problems), problems
        assert any("annotations [3] name image_id 7, which is not in 'images'" in p for p in problems), problems
    Image.fromarray(_image()).save(coco_dir / "instances.json", format="PNG")
    with pytest.raises(DataError, match="not a JSON file \\(binary content, not UTF-8 text\\)"):
        build_dataset(coco_dir / "instances.json")


def test_check_dataset_lists_every_problem_at_once(tmp_path):
    items = {name: (image, mask) for name, (image, mask, _) in BAD_IMAGES.items() if name != "empty"}
    items["good"] = (_image(), _ids())
    items["no_mask"] = (_image(), None)
    items["broken"] = (_image(), _ids())
    root = write_images(tmp_path, items)
    (root / "images" / "broken.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(DataError, match="no mask") as error:
        build_dataset(root)
    assert error.value.problems == [f"{root / 'images' / 'no_mask.png'}: no mask (expected masks/no_mask.png or a "
                                    "folder masks/no_mask/ of object PNGs)"]  # fmt: skip
    problems = check_dataset(root)
    named = {name: [p for p in problems if f"/{name}." in p] for name in ("size", "rgb", "soft", "no_mask", "broken")}
    assert all(len(lines) == 1 for lines in named.values()), problems
    assert len(problems) == 5 and not any("good" in p for p in problems)
    assert check_dataset(make_synthetic_dataset(tmp_path / "clean", "davis", num_items=2, num_frames=3), 3) == []


def write_coco(root: Path, annotations: list[dict], size=(32, 32)) -> Path:
    """One gray image `a.png` of `size` (H, W) under root/images/ and root/instances.json with `annotations`."""
    (root / "images").mkdir(parents=True)
    Image.fromarray(_image(*size)).save(root / "images" / "a.png")
    coco = {"images": [{"id": 1, "file_name": "a.png", "height": size[0], "width": size[1]}],
            "annotations": annotations, "categories": [{"id": 1, "name": "x"}]}  # fmt: skip
    (root / "instances.json").write_text(json.dumps(coco))
    return root / "instances.json"


def _annotation(ann_id: int, segmentation) -> dict:
    return {"id": ann_id, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": segmentation}


def test_rle_runs_are_the_column_major_runs_of_the_mask():
    rng = np.random.default_rng(0)
    for height, width, density in [(7, 5, 0.5), (40, 33, 0.02), (16, 16, 0.0), (9, 11, 1.0)]:
        mask = rng.random((height, width)) < density
        flat = mask.flatten(order="F").astype(int)  # COCO RLE runs alternate 0s and 1s, column by column
        changes = np.flatnonzero(np.diff(flat)) + 1
        runs = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
        expected = runs if flat[0] == 0 else [0, *runs]
        assert rle_runs(encode_rle(mask)["counts"]) == expected


def test_rle_that_does_not_cover_its_image_is_named_and_never_decoded(tmp_path):
    """pycocotools decodes an RLE whose runs stop short of height x width into uninitialised memory (a
    different mask on each read); check-data names it, training refuses it up front or raises on reading."""
    good = np.zeros((32, 32), bool)
    good[4:20, 6:24] = True
    short = encode_rle(np.ones((31, 32), bool))  # a mask of another image's size, its "size" edited
    short["size"] = [32, 32]
    annotations = [_annotation(1, encode_rle(good)), _annotation(2, short),
                   _annotation(3, {"size": [32, 32], "counts": [1000, 30]}),  # uncompressed, 1030 pixels
                   _annotation(4, {"size": [32, 32], "counts": encode_rle(good)["counts"][:-1] + "h"})]  # fmt: skip
    path = write_coco(tmp_path / "coco", annotations)
    covers = "the RLE's counts do not cover its 32x32 = 1024 pixels"
    for ann_id, bad in [(2, short), (3, annotations[2]["segmentation"]), (4, annotations[3]["segmentation"])]:
        path.write_text(
            json.dumps({**json.loads(path.read_text()), "annotations": [annotations[0], _annotation(ann_id, bad)]})
        )
        problems = check_dataset(path, num_frames=1, image_size=32)
        assert len(problems) == 1 and problems[0].startswith(f"{path}: annotation {ann_id} of image 1: ")
        assert covers in problems[0] or "ends inside a number" in problems[0], problems
        with pytest.raises(DataError) as error:
            build_dataset(path, image_size=32)
        assert error.value.problems == problems
        dataset = build_dataset(path, image_size=32, check=False)
        for _ in range(2):  # every read: the same error, never a mask
            with pytest.raises(DataError, match=f"annotation {ann_id} of image 1"):
                dataset[0]

    video = make_synthetic_dataset(tmp_path / "sav", "sav", num_items=1, num_frames=2, height=32, width=32)
    data = json.loads((video / "0000_manual.json").read_text())
    data["masklet"][1][0]["size"] = [32, 40]  # the RLE of a 32x32 frame said to be 32x40
    (video / "0000_manual.json").write_text(json.dumps(data))
    assert check_dataset(video, num_frames=2, image_size=32) == [
        f"{video / '0000_manual.json'} (frame 4): object 1: unreadable RLE (the RLE's counts do not cover its "
        "32x40 = 1280 pixels (runs of 1024 pixels, or a negative run): the mask is truncated or belongs to another "
        "image size)"
    ]


def test_boxes_only_annotations_are_named_and_refused_up_front(tmp_path):
    """COCO detection annotations (`"segmentation": []`, a box only) have no mask to supervise: check-data and
    training name each one (pycocotools raised IndexError in both)."""
    good = [[4.0, 4.0, 20.0, 4.0, 20.0, 20.0, 4.0, 20.0]]
    boxes_only = {**_annotation(2, []), "bbox": [1, 1, 10, 10]}
    no_key = {k: v for k, v in _annotation(3, None).items() if k != "segmentation"}
    path = write_coco(tmp_path, [_annotation(1, good), boxes_only, no_key])
    expected = [
        f"{path}: annotation {i} of image 1 has no mask ('segmentation' is empty): an object without a mask cannot "
        "supervise mask training; add its mask or leave the annotation out"
        for i in (2, 3)
    ]
    assert check_dataset(path, num_frames=1) == expected
    with pytest.raises(DataError) as error:
        build_dataset(path)
    assert error.value.problems == expected
    with pytest.raises(ValueError, match="the segmentation is empty"):
        decode_segmentation([], 32, 32)


def test_objects_that_vanish_at_the_training_size(tmp_path, capsys):
    """Nearest-neighbour resizing 64 -> 16 keeps source pixels (4i, 4j): a 3x3 object at rows and columns 1..3
    vanishes, one over (8, 4) stays. check-data names the vanishing one at that size; training refuses it up front."""
    ids = np.zeros((64, 64), np.uint8)
    ids[20:50, 20:50], ids[1:4, 1:4], ids[7:10, 3:6] = 1, 2, 3
    assert np.array_equal(np.unique(ids[::4, ::4]), [0, 1, 3])  # the right value: the pixels kept at 16
    root = write_images(tmp_path / "images", {"a": (_image(64, 64), ids)})
    mask_file = root / "masks" / "a.png"
    expected = [f"{mask_file}: objects [2] vanish when resized to 16x16 for training (too small; a larger size "
                "keeps them)"]  # fmt: skip
    assert check_dataset(root, image_size=16) == expected
    assert check_dataset(root, image_size=64) == []
    with pytest.raises(DataError) as error:
        build_dataset(root, image_size=16)
    assert error.value.problems == expected
    sample = build_dataset(root, image_size=16, check=False, seed=0)[0]
    assert sorted(sample.object_ids) == [1, 3] and sample.masks[0].flatten(1).any(1).all()

    assert main(["finetune", "--data", str(root), "--check-data", "--image-size", "16"]) == 1
    assert capsys.readouterr().out.splitlines() == expected
    assert main(["finetune", "--data", str(root), "--check-data"]) == 0  # 1024 by default: nothing vanishes

    # A video whose frame 0 shows only a 3x3 object: at 16x16 no clip may start there (it would start
    # empty); Meta's sampler, judging at the source size, would start there.
    frames = np.zeros((3, 64, 64), np.uint8)
    frames[0, 1:4, 1:4] = 2
    frames[1:, 20:50, 20:50] = 1
    frames[2, 30:60, 0:20] = 2
    video = write_davis(tmp_path / "davis", frames)
    assert check_dataset(video, num_frames=2, image_size=16) == []
    dataset = build_dataset(video, image_size=16, num_frames=2)
    starts = {dataset[0].frame_names[0] for dataset.epoch in range(12)}
    assert starts == {"00001.jpg"}
    at_source_size = build_dataset(video, image_size=64, num_frames=2)
    assert {at_source_size[0].frame_names[0] for at_source_size.epoch in range(12)} == {"00000.jpg", "00001.jpg"}
    frames[1:, 20:50, 20:50] = 0
    frames[2, 1:4, 1:4] = 2
    frames[2, 30:60, 0:20] = 0
    tiny = write_davis(tmp_path / "tiny", frames)
    assert check_dataset(tiny, num_frames=2, image_size=16) == [
        f"{tiny / 'JPEGImages' / 'seq'}: objects [2] vanish when resized to 16x16 for training (too small; a larger "
        "size keeps them) on every frame"
    ]


def _meta_affine_masks(frames, masks, seed: int, num_tentatives: int) -> torch.Tensor:
    """(T, O, H, W) masks after Meta's `RandomAffine` of the MOSE fine-tuning config, torch seeded `seed`."""
    meta_transforms = pytest.importorskip("training.dataset.transforms")
    from training.utils.data_utils import Frame, Object, VideoDatapoint

    datapoint = VideoDatapoint(
        frames=[
            Frame(frames[t].permute(2, 0, 1).float() / 255, [Object(k, t, m.to(torch.uint8)) for k, m in enumerate(ms)])
            for t, ms in enumerate(masks)
        ],
        video_id=0,
        size=tuple(masks.shape[-2:]),
    )
    affine = meta_transforms.RandomAffine(
        degrees=25, shear=20, consistent_transform=True, image_interpolation="bilinear",
        num_tentatives=num_tentatives, log_warning=False,
    )  # fmt: skip
    torch.manual_seed(seed)
    out = affine(datapoint)
    return torch.stack([torch.stack([obj.segment.bool() for obj in frame.objects]) for frame in out.frames])


def test_affine_guard_retries_and_skips_as_metas():
    """Meta's RandomAffine draws up to `num_tentatives` affines and leaves the clip unmoved when each one
    empties an object of the first frame. Ours gives Meta's masks draw for draw (same torch draws), skips
    included; at a smaller training size it also keeps objects that Meta's affine leaves as a sliver the
    resize then drops."""
    size = 64
    frames = torch.randint(0, 256, (2, size, size, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    masks = torch.zeros(2, 2, size, size, dtype=torch.bool)
    masks[:, 0, 20:44, 20:44] = True
    masks[:, 1, 0:4, 58:64] = True  # in the top right corner: many affines move it out of the frame
    video, target = tv_tensors.Video(frames.permute(0, 3, 1, 2).float() / 255), tv_tensors.Mask(masks.to(torch.uint8))
    for num_tentatives in (1, 3):
        transforms = ClipTransforms(image_size=size, num_tentatives=num_tentatives)
        skipped = 0
        for seed in range(20):
            expected = _meta_affine_masks(frames, masks, seed, num_tentatives)
            torch.manual_seed(seed)
            ours = transforms._affine_and_resize(video, target)[1].as_subclass(torch.Tensor).bool()
            assert torch.equal(ours, expected), (num_tentatives, seed)
            assert ours[0].flatten(1).any(1).all()  # the guard: both objects still on the first frame
            skipped += int(torch.equal(ours, masks))
        if num_tentatives == 1:
            assert 0 < skipped < 20  # some draws skipped, some applied: both paths compared
            skipped_once = skipped
    assert skipped < skipped_once  # retrying finds an affine that keeps the corner object more often

    small = ClipTransforms(image_size=16)
    lost_by_meta = 0
    for seed in range(12):
        lost_by_meta += int(not resize_masks(_meta_affine_masks(frames, masks, seed, 1)[0], 16).flatten(1).any(1).all())
        torch.manual_seed(seed)
        assert small(frames, masks)[1][0].flatten(1).any(1).all()
    assert lost_by_meta > 0  # the case arises: Meta's guard passed, its resize then emptied the object


def test_an_object_absent_from_a_box_prompted_frame_gets_no_inverted_box():
    """facebookresearch/sam2#470: Meta's `sample_box_points` gives an empty mask the box (W-1, H-1) -> (~0, ~0),
    inverted and spanning the image. Ours gives present objects Meta's boxes draw for draw and an absent one a
    negative background click plus a padding point (label -1), also when `draw_clip_prompts` boxes a second
    conditioning frame that the object has left."""
    sam2_utils = pytest.importorskip("sam2.modeling.sam2_utils")
    masks = torch.zeros(3, 1, 40, 50, dtype=torch.bool)
    masks[0, 0, 5:20, 10:30] = True
    masks[2, 0, 25:38, 2:12] = True
    torch.manual_seed(0)
    meta_coords, meta_labels = sam2_utils.sample_box_points(masks)
    (x0, y0), (x1, y1) = meta_coords[1].tolist()
    assert x0 == 49 and x0 > x1 and y0 > y1 and meta_labels[1].tolist() == [2, 3]  # Meta: inverted, whole image
    torch.manual_seed(0)
    coords, labels = sample_box_points(masks)
    torch.testing.assert_close(coords[[0, 2]], meta_coords[[0, 2]], rtol=0, atol=0)
    assert torch.equal(labels[[0, 2]], meta_labels[[0, 2]])
    assert labels[1].tolist() == [0, -1]
    x, y = coords[1, 0].tolist()
    assert 0 <= x < 50 and 0 <= y < 40 and x == int(x) and y == int(y)  # a pixel of the (all background) image

    simulation = PromptSimulation(prob_to_use_pt_input_for_eval=1.0, prob_to_use_box_input_for_eval=1.0,
                                  num_init_cond_frames_for_eval=2, num_frames_to_correct_for_eval=2)  # fmt: skip
    clip = torch.zeros(3, 2, 40, 50, dtype=torch.bool)  # (T, O, H, W): object 1 leaves after frame 0
    clip[:, 0, 5:20, 10:30] = True
    clip[0, 1, 25:38, 2:12] = True
    prompts = draw_clip_prompts(simulation, clip, training=False, rng=np.random.default_rng(0))
    assert prompts.use_pt_input and len(prompts.init_cond_frames) == 2
    for t in prompts.init_cond_frames:
        frame_coords, frame_labels = prompts.point_inputs[t]
        assert frame_labels[0].tolist() == [2, 3] and (frame_coords[0, 0] < frame_coords[0, 1]).all()
        assert frame_labels[1].tolist() == ([2, 3] if t == 0 else [0, -1])


def test_several_sources_mix_with_batches_of_one_source(tmp_path, reference_models, capsys):
    """Images and videos together (Meta's TorchTrainMixedDataset): every batch from one source (its clips share
    T), sources drawn with probability weight / sum (Meta's `dataset_prob`) or, without weights, in proportion
    to their numbers of batches (Meta's default); the order depends on (seed, epoch) only."""
    images = make_synthetic_dataset(tmp_path / "images", "images", num_items=6, height=32, width=32)
    videos = make_synthetic_dataset(tmp_path / "videos", "davis", num_items=2, num_frames=3, height=32, width=32)
    assert parse_data_source(f"{videos}:3") == (str(videos), 3.0) and parse_data_source(str(videos)) == str(videos)
    with pytest.raises(ValueError, match="must be a positive number"):
        parse_data_source(f"{videos}:0")
    with pytest.raises(ValueError, match="to every data source or to none"):
        build_dataset([images, (videos, 3.0)], image_size=32, num_frames=2)

    def shares(dataset, epochs=150):
        order = dataset.sampler(batch_size=2)
        assert len(order) == (3 + 1) * 2  # ceil(6 / 2) image batches + ceil(2 / 2) video batch, each full
        from_images = []
        for epoch in range(epochs):
            order.set_epoch(epoch)
            indices = list(order)
            batches = [indices[i : i + 2] for i in range(0, len(indices), 2)]
            assert all(len({i % 8 < 6 for i in batch}) == 1 for batch in batches)  # one source per batch
            from_images += [batch[0] % 8 < 6 for batch in batches]
        return np.mean(from_images)

    weighted = build_dataset([(images, 1.0), (videos, 3.0)], image_size=32, num_frames=2, seed=0)
    assert len(weighted) == 8 and shares(weighted) == pytest.approx(0.25, abs=0.05)
    again_in_the_epoch = weighted[6 + 8]  # video 0 on the sampler's second pass over the videos: a new draw
    assert again_in_the_epoch.source == weighted[6].source
    assert not torch.equal(again_in_the_epoch.pixel_values, weighted[6].pixel_values)
    unweighted = build_dataset([images, videos], image_size=32, num_frames=2, seed=0)
    assert shares(unweighted) == pytest.approx(0.75, abs=0.05)  # 3 of 4 batches hold images
    first, again = unweighted.sampler(2), unweighted.sampler(2)
    assert list(first) == list(again)
    again.set_epoch(1)
    assert list(first) != list(again)

    model = reference_models("tiny", "2.1", 256).load(Sam2VideoModelForTraining)
    args = FinetuneRecipe.fast().training_arguments(str(tmp_path / "out"), per_device_train_batch_size=2)
    trainer = Sam2Trainer(model, args, train_dataset=weighted)
    frames = [batch["pixel_values"].shape[0] for batch in trainer.get_train_dataloader()]
    assert len(frames) == 4 and set(frames) <= {1, 2} and 2 in frames  # collated: each batch one source

    argv = ["finetune", "--data", f"{images}:1", "--data", f"{videos}:3", "--check-data", "--num-frames", "2"]
    assert main(argv) == 0
    (videos / "Annotations" / "0001" / "00001.png").write_bytes(b"broken")
    assert main(argv) == 1 and "0001/00001.png" in capsys.readouterr().out
    assert main(["finetune", "--data", str(images), "--data", f"{videos}:3", "--check-data"]) == 2
    assert "Give a sampling weight to every data source or to none" in capsys.readouterr().err


def _hf_table():
    datasets = pytest.importorskip("datasets")
    ids = np.zeros((SIZE, SIZE), np.uint8)
    ids[5:20, 5:30], ids[30:60, 40:50] = 3, 7
    image = Image.fromarray(np.full((SIZE, SIZE, 3), 90, np.uint8))
    table = datasets.Dataset.from_dict({"image": [image], "mask": [Image.fromarray(ids)]})
    return table.cast_column("image", datasets.Image()).cast_column("mask", datasets.Image()), ids


def test_hugging_face_dataset_folders_and_hub_ids(tmp_path, monkeypatch):
    """A `save_to_disk` folder (a Dataset, or a DatasetDict's train split) and a Hub id (datasets.load_dataset,
    faked here: no network) are data sources like a `datasets.Dataset`."""
    import datasets

    table, ids = _hf_table()
    table.save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": table, "validation": table.select([0, 0])}).save_to_disk(str(tmp_path / "dict"))
    for source, length in [(tmp_path / "saved", 1), (str(tmp_path / "dict"), 1)]:
        dataset = build_dataset(source, image_size=SIZE, augment=False, seed=0)
        assert len(dataset) == length and sorted(dataset[0].object_ids) == [3, 7]
        np.testing.assert_array_equal(dataset[0].masks[0].numpy(), np.array([ids == i for i in dataset[0].object_ids]))
    assert len(build_dataset(tmp_path / "dict", image_size=SIZE, split="validation")) == 2
    with pytest.raises(DataError, match=r"no 'test' split; it has \['train', 'validation'\]"):
        build_dataset(tmp_path / "dict", split="test")
    assert check_dataset(tmp_path / "saved", image_size=SIZE) == []

    calls = []

    def load_dataset(name, *args, **kwargs):
        calls.append(name)
        if name != "me/my-masks":
            raise FileNotFoundError(f"Dataset '{name}' doesn't exist on the Hub")
        return datasets.DatasetDict({"train": table})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    assert sorted(build_dataset("me/my-masks", image_size=SIZE, augment=False)[0].object_ids) == [3, 7]
    with pytest.raises(DataError, match="me/missing: no local file or folder, nor a loadable Hub dataset"):
        build_dataset("me/missing")
    assert calls == ["me/my-masks", "me/missing"]


def test_coco_official_layout_and_image_dir(tmp_path, capsys):
    """COCO's own layout (annotations/instances_train2017.json beside train2017/): "file_name" is relative to
    the image folder, found there or given with --image-dir."""
    root = make_synthetic_dataset(tmp_path / "coco", "coco", num_items=2, height=SIZE, width=SIZE)
    (root / "annotations").mkdir()
    (root / "annotations.json").rename(root / "annotations" / "instances_train2017.json")
    (root / "images").rename(root / "train2017")
    annotations = root / "annotations" / "instances_train2017.json"
    dataset = build_dataset(annotations, image_size=SIZE, augment=False, seed=0)
    assert [Path(v.source).parent for v in dataset.videos] == [root / "train2017"] * 2
    coco = COCO(str(annotations))
    sample = dataset[0]
    expected = [coco.annToMask(coco.anns[i]).astype(bool) for i in sample.object_ids]
    np.testing.assert_array_equal(sample.masks[0].numpy(), np.array(expected))

    (root / "train2017").rename(tmp_path / "pictures")
    problems = check_dataset(annotations, image_size=SIZE)
    assert len(problems) == 2 and all("not found" in p for p in problems)
    assert len(build_dataset(annotations, image_size=SIZE, image_dir=tmp_path / "pictures")) == 2
    argv = ["finetune", "--data", str(annotations), "--check-data", "--image-size", str(SIZE)]
    assert main(argv) == 1 and main([*argv, "--image-dir", str(tmp_path / "pictures")]) == 0


def test_finetune_trains_on_images_and_videos_together(tmp_path, reference_models):
    """`sam2-hf finetune --data imgs/:1 --data vids/:3`: batches of 2 clips, each batch from one source, train
    end to end (a batch mixing 1-frame images and 2-frame clips would fail to collate)."""
    images = make_synthetic_dataset(tmp_path / "imgs", "images", num_items=2, height=SIZE, width=SIZE)
    videos = make_synthetic_dataset(tmp_path / "vids", "davis", num_items=2, num_frames=2, height=SIZE, width=SIZE)
    base = str(reference_models("tiny", "2.1", 256).path)
    out = tmp_path / "out"
    argv = ["finetune", "--model", base, "--data", f"{images}:1", "--data", f"{videos}:3", "--output-dir", str(out),
            "--image-size", "256", "--recipe", "fast", "--num-frames", "2", "--per_device_train_batch_size", "2",
            "--max-steps", "3", "--use_cpu", "--save_strategy", "no", "--report_to", "none", "--seed", "0"]  # fmt: skip
    order = build_dataset([(images, 1.0), (videos, 3.0)], image_size=256, num_frames=2, seed=0).sampler(2)
    steps = list(order)  # epoch 0: 2 batches (one per source's batch count), then epoch 1's first
    order.set_epoch(1)
    steps = [i % 4 < 2 for i in steps + list(order)[:2]]
    assert set(steps) == {True, False}  # the 3 steps meet both sources: the run below mixes them
    assert main(argv) == 0
    assert (out / "model.safetensors").exists()
    card = (out / "README.md").read_text()
    assert "imgs" in card and "vids" in card
