"""Inputs from real users' bug reports, fed to every entry point that takes them.

Each test is one *kind* of input (an empty prompt, a box of the wrong shape, a 16-bit image, a frame that
cannot be decoded, ...). Every entry point that accepts that kind — Meta-style image and video
predictors, `Sam2Processor`, `Sam2Tracker` (and its stream), the frame sources — is given the same
input and must handle it as documented or raise an error that names the problem, keeping what it had
already computed. Random weights: each comparison also shows the compared masks are not trivial.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sam2_hf import (
    Prompt,
    Sam2ImagePredictor,
    Sam2Processor,
    Sam2Tracker,
    Sam2VideoConfig,
    Sam2VideoModel,
    Sam2VideoPredictor,
    TrackingError,
)
from sam2_hf.media.frames import StreamFrames, VideoDecodeError, open_frames
from sam2_hf.media.synthetic import save_jpeg_folder, synthetic_clip
from sam2_hf.processing.prompts import EmptyPromptError, OutOfImageWarning

from reference import max_abs_diff

IMAGE_SIZE = 128
HEIGHT, WIDTH = 96, 128
CLIP = synthetic_clip(num_frames=8, height=HEIGHT, width=WIDTH)
CLICK = [[20, 29]]  # on the first shape of the clip
IMAGE = CLIP[0]


@pytest.fixture(scope="module")
def video_reference(reference_models):
    return reference_models("tiny", "2.1", IMAGE_SIZE, video=True)


@pytest.fixture(scope="module")
def video_predictor(video_reference):
    return video_reference.load(Sam2VideoPredictor, fill_hole_area=0)


@pytest.fixture(scope="module")
def image_predictor(reference_models):
    predictor = reference_models("tiny", "2.1", IMAGE_SIZE).load(Sam2ImagePredictor)
    predictor.set_image(IMAGE)
    return predictor


def foreground_fraction(mask) -> float:
    return float((torch.as_tensor(mask) > 0).float().mean())


# ------------------------------------------------------------------------------------ prompts
# Empty prompts (issue 19, B8): every entry point x every prompt argument x list / numpy / tensor x single /
# batched call -> the same `EmptyPromptError` naming the argument as that entry point calls it, before any work.
CONTAINERS = {"list": lambda shape: np.zeros(shape).tolist(), "numpy": np.zeros, "tensor": torch.zeros}
S4 = IMAGE_SIZE // 4
VIDEO_SHAPES = {
    "points": ((0, 2), (1, 0, 2)),
    "labels": ((0,), (1, 0)),
    "box": ((0,), (1, 0)),
    "mask": ((0, 0), (HEIGHT, 0)),
}
PROCESSOR_SHAPES = {  # [image][object][point][x, y]; batched: two images
    "points": ((1, 1, 0, 2), (2, 0, 1, 2)),
    "labels": ((1, 1, 0), (2, 1, 0)),
    "boxes": ((1, 0, 4), (2, 0, 4)),
    "masks": ((0, HEIGHT, WIDTH), (1, 0, WIDTH)),  # video processor: one mask per object
}
VALID = dict(points=[[20, 29]], labels=[1])


EMPTY_SHAPES = {  # entry point -> prompt argument -> (single-call shape, batched-call shape)
    "Sam2ImagePredictor.predict": {
        "point_coords": ((0, 2), (2, 0, 2)),
        "point_labels": ((0,), (2, 0)),
        "box": ((0,), (0, 4)),
        "mask_input": ((1, 0, 0), (0, 1, S4, S4)),
    },
    "Sam2ImagePredictor.predict_batch": {  # a list with one entry per image, and an empty list
        "point_coords_batch": ((1, 0, 2), (0,)),
        "point_labels_batch": ((1, 0), (0,)),
        "box_batch": ((1, 0, 4), (0,)),
        "mask_input_batch": ((1, 1, 0, 0), (0,)),
    },
    "Sam2VideoPredictor.add_new_points_or_box": {k: VIDEO_SHAPES[k] for k in ("points", "labels", "box")},
    "Sam2VideoPredictor.add_new_mask": {"mask": VIDEO_SHAPES["mask"]},
    "Prompt": VIDEO_SHAPES,
    "TrackingStream.add_prompt": VIDEO_SHAPES,
    "Sam2Processor": {f"input_{k}": PROCESSOR_SHAPES[k] for k in ("points", "labels", "boxes")},
    "Sam2VideoProcessor.add_inputs_to_inference_session": {f"input_{k}": v for k, v in PROCESSOR_SHAPES.items()},
    "Sam2Model": {  # tensors only, (batch, objects, points, 2) etc.
        "input_points": ((1, 1, 0, 2), (2, 0, 1, 2)),
        "input_labels": ((1, 1, 0), (2, 1, 0)),
        "input_boxes": ((1, 0, 4), (2, 0, 4)),
        "input_masks": ((1, 0, S4, S4), (2, 1, 0, S4)),
    },
    "Sam2Tracker.track": {"prompts": ((0,), (0,))},
    "Sam2AutomaticMaskGenerator": {"point_grids": ((0,), (1, 0, 2))},
}
EMPTY_CASES = [
    (entry, name, container, batched)
    for entry, names in EMPTY_SHAPES.items()
    for name in names
    for container in (["tensor"] if entry == "Sam2Model" else CONTAINERS)
    for batched in (False, True)
]


@pytest.fixture(scope="module")
def entry_points_of_prompts(video_predictor, image_predictor, image_model, reference_models):
    """entry point -> call(name, value): the entry point given `value` for the prompt argument `name`, every
    other prompt valid (or absent)."""
    from sam2_hf import Sam2AutomaticMaskGenerator, Sam2VideoProcessor

    batch_predictor = reference_models("tiny", "2.1", IMAGE_SIZE).load(Sam2ImagePredictor)
    batch_predictor.set_image_batch([IMAGE])
    processor, video_processor = Sam2Processor.for_image_size(IMAGE_SIZE), Sam2VideoProcessor.for_image_size(IMAGE_SIZE)
    stream = Sam2Tracker(video_predictor).stream()
    stream.push(CLIP[0])
    clicks = dict(input_points=[[[[20, 29]]]], input_labels=[[[1]]])
    model_inputs = processor(images=IMAGE, return_tensors="pt", **clicks)

    def video_processor_call(name, value):
        session = video_processor.init_video_session(video=CLIP[:2])
        prompts = {} if name in ("input_boxes", "input_masks") else clicks
        video_processor.add_inputs_to_inference_session(session, 0, 1, **{**prompts, name: value})

    def points_or_box(name):
        return {} if name in ("box", "mask") else dict(VALID)

    return {
        "Sam2ImagePredictor.predict": lambda name, value: image_predictor.predict(
            **{**dict(point_coords=VALID["points"], point_labels=VALID["labels"]), name: value}
        ),
        "Sam2ImagePredictor.predict_batch": lambda name, value: batch_predictor.predict_batch(**{name: value}),
        "Sam2VideoPredictor.add_new_points_or_box": lambda name, value: video_predictor.add_new_points_or_box(
            video_predictor.init_state(CLIP[:2]), 0, 1, **{**points_or_box(name), name: value}
        ),
        "Sam2VideoPredictor.add_new_mask": lambda name, value: video_predictor.add_new_mask(
            video_predictor.init_state(CLIP[:2]), 0, 1, value
        ),
        "Prompt": lambda name, value: Prompt(0, 1, **{**points_or_box(name), name: value}),
        "TrackingStream.add_prompt": lambda name, value: stream.add_prompt(1, **{**points_or_box(name), name: value}),
        "Sam2Processor": lambda name, value: processor(images=IMAGE, **{**clicks, name: value}),
        "Sam2VideoProcessor.add_inputs_to_inference_session": video_processor_call,
        "Sam2Model": lambda name, value: image_model(**{**model_inputs, name: value}),
        "Sam2Tracker.track": lambda name, value: Sam2Tracker(video_predictor).track(CLIP[:2], value),
        "Sam2AutomaticMaskGenerator": lambda name, value: Sam2AutomaticMaskGenerator(
            image_model, points_per_side=None, point_grids=value
        ),
    }


@pytest.mark.parametrize("entry, name, container, batched", EMPTY_CASES)
def test_empty_prompts_are_refused_by_name_everywhere(entry_points_of_prompts, entry, name, container, batched):
    value = CONTAINERS[container](EMPTY_SHAPES[entry][name][batched])
    if entry == "Sam2ImagePredictor.predict_batch" and not batched:
        value = list(value)  # one (empty) entry per image
    with pytest.raises(EmptyPromptError, match=rf": {name} is empty; give at least one point"):
        entry_points_of_prompts[entry](name, value)


def test_no_prompt_at_all(video_predictor, image_predictor, reference_models):
    """None is "not given": a prompt with nothing is refused by name where an object needs one; the image
    predictor runs without any prompt as Meta's predictor does (same masks)."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    with pytest.raises(EmptyPromptError, match="the prompt is empty"):
        Prompt(0, 1)
    state = video_predictor.init_state(CLIP)
    with pytest.raises(EmptyPromptError, match="the prompt is empty"):
        video_predictor.add_new_points_or_box(state, 0, 1)
    assert state.obj_ids == []  # nothing half-made: no object without prompts
    meta = SAM2ImagePredictor(reference_models("tiny", "2.1", IMAGE_SIZE).meta)
    meta._bb_feat_sizes = [(IMAGE_SIZE // s,) * 2 for s in (4, 8, 16)]  # Meta hard-codes them for 1024
    meta.set_image(IMAGE)
    ours, theirs = image_predictor.predict(return_logits=True), meta.predict(return_logits=True)
    assert all(max_abs_diff(a, b) < 1e-4 for a, b in zip(ours, theirs))  # masks, scores, low-res logits
    assert 0.01 < (theirs[0] > 0).mean() < 0.99


BAD_SHAPES = [
    (dict(box=[[10, 10, 50, 50], [60, 20, 100, 70]]), r"box must be 4 numbers .*got shape \(2, 4\).*own object"),
    (dict(box=[10, 10, 50]), r"box must be 4 numbers .*got shape \(3,\)"),
    (dict(points=[[10, 10, 1]], labels=[1]), r"points must be \(K, 2\) as x, y pairs .*got shape \(1, 3\)"),
    (dict(points=[[10, 10], [20, 20]], labels=[1]), r"labels must be \(2,\), one per point"),
    (dict(points=[[10, 10]]), "points and labels must be given together"),
    (dict(points=[[10, np.nan]], labels=[1]), "NaN or infinite"),
    (dict(points=[[10, 10]], labels=[7]), r"labels must be 1 \(positive\) or 0 \(negative\).*\[7\]"),
    (dict(box=[50, 10, 10, 40]), "x1 >= x0 and y1 >= y0"),
]


@pytest.mark.parametrize("kwargs, match", BAD_SHAPES)
def test_bad_prompt_shapes_are_named_by_every_entry_point(video_predictor, kwargs, match):
    state = video_predictor.init_state(CLIP)
    with pytest.raises(ValueError, match=match):
        video_predictor.add_new_points_or_box(state, 0, 1, **kwargs)
    with pytest.raises(ValueError, match=match):
        Prompt(0, 1, **kwargs)
    stream = Sam2Tracker(video_predictor).stream()
    stream.push(CLIP[0])
    with pytest.raises(ValueError, match=match):
        stream.add_prompt(1, **kwargs)
    assert state.obj_ids == [] and stream.state.obj_ids == []


def test_box_layouts_and_corner_labels_give_the_same_masks(video_predictor):
    box = [8, 16, 40, 44]
    results = []
    for kwargs in (
        dict(box=box),
        dict(box=[box]),  # (1, 4)
        dict(box=[box[:2], box[2:]]),  # (2, 2), as Meta's reshape reads it
        dict(points=[box[:2], box[2:]], labels=[2, 3]),  # Meta's corner labels
    ):
        state = video_predictor.init_state(CLIP)
        results.append(video_predictor.add_new_points_or_box(state, 0, 1, **kwargs)[2])
    assert 0.01 < foreground_fraction(results[0]) < 0.9
    assert all(torch.equal(results[0], r) for r in results[1:])


def test_image_predictor_takes_meta_corner_labels(reference_models, image_predictor):
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    meta = SAM2ImagePredictor(reference_models("tiny", "2.1", IMAGE_SIZE).meta)
    meta._bb_feat_sizes = [(IMAGE_SIZE // s,) * 2 for s in (4, 8, 16)]  # Meta hard-codes them for 1024
    meta.set_image(IMAGE)
    corners = dict(point_coords=[[8, 16], [40, 44], [20, 29]], point_labels=[2, 3, 1])
    ours = image_predictor.predict(**corners, return_logits=True)
    theirs = meta.predict(**corners, return_logits=True)
    as_box = image_predictor.predict(box=[8, 16, 40, 44], point_coords=[[20, 29]], point_labels=[1], return_logits=True)
    for a, b, c in zip(ours, theirs, as_box):
        assert max_abs_diff(a, b) < 1e-4
        assert np.array_equal(a, c)
    assert all(0.01 < (m > 0).mean() < 0.99 for m in ours[0])


# ------------------------------------------------------------------------------------- images
def sixteen_bit(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image[..., 0].astype(np.uint16) * 16)  # 12-bit data, mode "I;16"


def entry_points(image_predictor):
    """name -> a call that reads one image and returns what that entry point made of it."""
    processor = Sam2Processor.for_image_size(IMAGE_SIZE)
    return {
        "Sam2ImagePredictor.set_image": lambda image: image_predictor.set_image(image),
        "Sam2Processor": lambda image: processor(return_tensors="pt", images=image)["pixel_values"],
        "frame list": lambda image: open_frames([image]).frame(0),
        "frame stream": lambda image: StreamFrames().push(image),
    }


@pytest.mark.parametrize(
    "image, match",
    [
        (sixteen_bit(IMAGE), "mode 'I;16'"),
        (Image.fromarray(IMAGE[..., 0].astype(np.int32)), "mode 'I'"),
        (IMAGE.astype(np.uint16), "uint16"),
        (torch.from_numpy(IMAGE).permute(2, 0, 1).to(torch.int16), "int16"),
        (IMAGE.astype(np.float32), r"values in \[0, 1\]; got range \["),  # 0..255 as floats
        (Image.fromarray(IMAGE[..., 0].astype(np.float32)), r"mode 'F'.*values in \[0, 1\]"),
    ],
    ids=["png16", "pil-int32", "uint16", "torch-int16", "float-0-255", "pil-F-0-255"],
)
def test_wide_images_are_refused_by_name_everywhere(image_predictor, image, match):
    """One policy for every container: no silent clipping of 16-bit or unscaled float images."""
    for name, read in entry_points(image_predictor).items():
        with pytest.raises((TypeError, ValueError), match=match):
            read(image)
        if name.startswith("frame"):
            with pytest.raises(VideoDecodeError, match=r"\(frame 0\)"):
                read(image)


def test_every_container_and_layout_reads_the_same_pixels(image_predictor):
    processor = Sam2Processor.for_image_size(IMAGE_SIZE)
    unit = IMAGE.astype(np.float32) / 255
    flipped = np.ascontiguousarray(IMAGE[::-1, ::-1])
    same = {
        "uint8": IMAGE,
        "PIL RGB": Image.fromarray(IMAGE),
        "float in [0, 1]": unit,
        "float16": unit.astype(np.float16).astype(np.float32),
        "CHW tensor": torch.from_numpy(IMAGE).permute(2, 0, 1),
        "RGBA": np.dstack([IMAGE, np.full(IMAGE.shape[:2], 9, np.uint8)]),
        "read-only": np.frombuffer(IMAGE.tobytes(), np.uint8).reshape(IMAGE.shape),
        "big-endian float": unit.astype(">f4"),
    }
    expected = processor(return_tensors="pt", images=IMAGE)["pixel_values"]
    for name, image in same.items():
        tolerance = 1e-3 if name == "float16" else 1e-6
        assert max_abs_diff(processor(return_tensors="pt", images=image)["pixel_values"], expected) <= tolerance, name
        np.testing.assert_array_equal(open_frames([image]).frame(0), IMAGE, err_msg=name)
    views = {"negative strides": IMAGE[::-1, ::-1], "non-contiguous": np.zeros((HEIGHT, WIDTH, 6), np.uint8)}
    views["non-contiguous"][..., ::2] = IMAGE
    views["non-contiguous"] = views["non-contiguous"][..., ::2]
    for name, image in views.items():
        copy = np.ascontiguousarray(image)
        assert torch.equal(
            processor(return_tensors="pt", images=image)["pixel_values"],
            processor(return_tensors="pt", images=copy)["pixel_values"],
        ), name
        np.testing.assert_array_equal(open_frames([image]).frame(0), copy, err_msg=name)
    assert not np.array_equal(flipped, IMAGE)
    gray = IMAGE[..., 0]
    for image in (gray, gray[..., None], Image.fromarray(gray), Image.fromarray(IMAGE).convert("P")):
        pixels = processor(return_tensors="pt", images=image)["pixel_values"]
        rgb = image.convert("RGB") if isinstance(image, Image.Image) else np.repeat(np.atleast_3d(image), 3, 2)
        assert torch.equal(pixels, processor(return_tensors="pt", images=rgb)["pixel_values"])
    with pytest.raises(ValueError, match="Image 0 has only padding points"):
        processor(
            return_tensors="pt", images=IMAGE, input_points=[[[[-10, -10]]]]
        )  # no labels: the coordinates say padding
    with pytest.warns(OutOfImageWarning, match="outside the 128x96 image"):
        processor(
            return_tensors="pt", images=IMAGE, input_points=[[[[-10, -10]]]], input_labels=[[[1]]]
        )  # a real point: checked
    pil_float = Image.fromarray(unit[..., 0])  # mode "F" in [0, 1]: held to the float rule, accepted
    assert torch.equal(
        processor(return_tensors="pt", images=pil_float)["pixel_values"],
        processor(return_tensors="pt", images=unit[..., 0])["pixel_values"],
    )


# ------------------------------------------------------------------------------------- frames
def frame_sources(tmp_path, bad_frame: int | None):
    """One source per kind of frame source, frame `bad_frame` unreadable in each (None: all good)."""
    folder = save_jpeg_folder(CLIP, tmp_path / f"frames-{bad_frame}")
    frames = list(CLIP)
    if bad_frame is not None:
        (tmp_path / f"frames-{bad_frame}" / f"{bad_frame:05d}.jpg").write_bytes(b"\xff\xd8 truncated")
        frames[bad_frame] = sixteen_bit(CLIP[bad_frame])
    return {"folder": folder, "frame list": frames}


@pytest.mark.parametrize("kind", ["folder", "frame list"])
def test_a_bad_frame_stops_tracking_and_keeps_every_earlier_result(video_predictor, tmp_path, kind):
    tracker = Sam2Tracker(video_predictor)
    prompts = [Prompt(0, 1, points=CLICK, labels=[1])]
    with pytest.raises(TrackingError, match=r"\(frame 5\)") as error:
        tracker.track(frame_sources(tmp_path, 5)[kind], prompts, direction="forward", progress=False)
    assert error.value.frame_index == 5
    assert isinstance(error.value.__cause__, VideoDecodeError)
    assert error.value.masklets.frames() == [0, 1, 2, 3, 4]
    good = tracker.track(frame_sources(tmp_path, None)[kind], prompts, direction="forward", progress=False)
    for t in range(5):
        assert np.array_equal(error.value.masklets.mask(t, 1), good.mask(t, 1))
    assert 0 < good.mask(4, 1).mean() < 0.9


def test_a_prompt_on_an_unreadable_frame_changes_nothing(video_predictor, tmp_path):
    state = video_predictor.init_state(frame_sources(tmp_path, 5)["folder"])
    video_predictor.add_new_points_or_box(state, 0, 1, points=CLICK, labels=[1])
    with pytest.raises(VideoDecodeError, match=r"00005.jpg \(frame 5\)"):
        video_predictor.add_new_points_or_box(state, 5, 2, points=CLICK, labels=[1])
    assert state.obj_ids == [1]  # no half-made object 2: tracking object 1 still works
    assert [t for t, _, _ in video_predictor.propagate_in_video(state, max_frame_num_to_track=3)] == [0, 1, 2, 3]


def test_a_bad_frame_pushed_to_a_stream_is_refused_and_the_stream_goes_on(video_predictor):
    stream = Sam2Tracker(video_predictor).stream()
    stream.push(CLIP[0])
    stream.add_prompt(1, points=CLICK, labels=[1])
    masks = [stream.push(CLIP[1])]
    with pytest.raises(VideoDecodeError, match=r"frame stream \(frame 2\).*uint16") as error:
        stream.push(CLIP[2].astype(np.uint16))
    assert error.value.frame_index == 2
    masks.append(stream.push(CLIP[2]))  # the stream continues at the same index
    assert stream.last_index == 2 and len(masks) == 2 and masks[1][1].any()


def test_macos_companion_files_are_not_frames(video_predictor, tmp_path):
    folder = tmp_path / "frames"
    save_jpeg_folder(CLIP, folder)
    for jpeg in sorted(folder.glob("*.jpg")):
        (folder / f"._{jpeg.name}").write_bytes(b"\x00\x05\x16\x07" + bytes(4000))
    state = video_predictor.init_state(str(folder))
    assert state.num_frames == len(CLIP)
    masklets = Sam2Tracker(video_predictor).track(
        folder, [Prompt(0, 1, points=CLICK, labels=[1])], direction="forward", progress=False
    )
    assert masklets.frames() == list(range(len(CLIP)))


# ------------------------------------------------------------------------------------- memory
def per_object_clear(meta):
    """Meta 1.1.0 calls `_clear_obj_non_cond_mem_around_input` but forgot to define it; this is what it means
    (its per-object twin of `_clear_non_cond_mem_around_input`)."""

    def clear(inference_state, frame_idx, obj_idx):
        r = meta.memory_temporal_stride_for_eval
        outputs = inference_state["output_dict_per_obj"][obj_idx]["non_cond_frame_outputs"]
        for t in range(frame_idx - r * meta.num_maskmem, frame_idx + r * meta.num_maskmem + 1):
            outputs.pop(t, None)

    return clear


def clearing_session(predictor, state, correct: bool, start: int):
    """Object 1 clicked on frame 0, object 2 on frame 2, propagate; then (optionally) a negative click on
    object 1 at frame 5 (a conditioning frame: clearing is meant for that setting, a non-conditioning
    correction would itself be cleared), propagate again. -> {(pass, frame): logits}."""
    results = {}
    predictor.add_new_points_or_box(state, 0, 1, points=CLICK, labels=[1])
    predictor.add_new_points_or_box(state, 2, 2, points=[[25, 67]], labels=[1])
    for frame_idx, _, masks in predictor.propagate_in_video(state, start_frame_idx=start):
        results[(0, frame_idx)] = masks.float().cpu()
    if correct:
        predictor.add_new_points_or_box(state, 5, 1, points=[[30, 40]], labels=[0])
    for frame_idx, _, masks in predictor.propagate_in_video(state, start_frame_idx=start):
        results[(1, frame_idx)] = masks.float().cpu()
    return results


def test_clearing_memory_around_a_correction_touches_only_that_object(video_reference, tmp_path):
    folder = save_jpeg_folder(CLIP, tmp_path / "frames")
    options = dict(fill_hole_area=0, clear_non_cond_mem_around_input=True, add_all_frames_to_correct_as_cond=True)
    ours = video_reference.load(Sam2VideoPredictor, **options)
    corrected = clearing_session(ours, ours.init_state(str(folder)), correct=True, start=0)  # crashed before
    plain = clearing_session(ours, ours.init_state(str(folder)), correct=False, start=0)
    late = [t for t in range(len(CLIP)) if t >= 2]
    assert all(torch.equal(corrected[(1, t)][1], plain[(1, t)][1]) for t in late)  # object 2 untouched
    assert any(not torch.equal(corrected[(1, t)][0], plain[(1, t)][0]) for t in late)  # object 1 corrected
    assert all(0 < foreground_fraction(corrected[(1, t)][1]) < 0.9 for t in late)

    meta = video_reference.new_meta()
    for name, value in options.items():
        setattr(meta, name, value)
    meta._clear_obj_non_cond_mem_around_input = per_object_clear(meta)
    with torch.inference_mode():
        expected = clearing_session(meta, meta.init_state(str(folder)), correct=True, start=2)
    got = clearing_session(ours, ours.init_state(str(folder)), correct=True, start=2)
    assert expected.keys() == got.keys()
    worst = max(max_abs_diff(expected[k], got[k]) for k in expected)
    assert worst <= 1e-3, worst


def test_window_policy_refuses_a_window_smaller_than_memory_reads(video_reference):
    predictor = video_reference.load(Sam2VideoPredictor, memory_policy="window", memory_temporal_stride_for_eval=5)
    with pytest.raises(ValueError, match=r"keeps 24 frames .* reads 26 frames back"):
        predictor.init_state(CLIP)
    predictor.memory_temporal_stride_for_eval = 4  # reads 21 frames back: fits
    assert predictor.init_state(CLIP).memory_policy == "window"
    with pytest.raises(ValueError, match="Unknown memory policy 'windows'"):
        predictor.init_state(CLIP, memory_policy="windows")


# ---------------------------------------------------------------------------------- corrections
def track_and_correct(predictor, k: int, click):
    """Click object 1 on frame 0, track forward, a negative `click` on tracked frame k, track forward from
    k again. -> (first run {frame: logits}, the mask shown after the click, second run {frame: logits})."""
    state = predictor.init_state(CLIP)
    predictor.add_new_points_or_box(state, 0, 1, points=CLICK, labels=[1])
    tracked = {t: m for t, _, m in predictor.propagate_in_video(state)}
    _, _, shown = predictor.add_new_points_or_box(state, k, 1, points=[click], labels=[0])
    again = {t: m for t, _, m in predictor.propagate_in_video(state, start_frame_idx=k)}
    return tracked, shown, again


def test_tracker_corrections_are_conditioning_frames_and_survive_tracking(tmp_path):
    """Sam2Tracker's predictor keeps a click on a tracked frame as given when tracking runs again; the
    Meta-compatible default re-tracks that frame and loses it. (transformers-style random init: with the
    noised Meta weights no negative click removes anything, so the case could not be shown there.)"""
    torch.manual_seed(0)
    Sam2VideoModel(Sam2VideoConfig.from_size("tiny", image_size=IMAGE_SIZE)).save_pretrained(tmp_path / "model")
    tracker = Sam2Tracker.from_pretrained(tmp_path / "model", fill_hole_area=0)
    meta_default = Sam2VideoPredictor.from_pretrained(tmp_path / "model", fill_hole_area=0)
    assert tracker.predictor.add_all_frames_to_correct_as_cond and not meta_default.add_all_frames_to_correct_as_cond
    k = 3
    for x, y in [(x, y) for y in range(8, HEIGHT, 16) for x in range(8, WIDTH, 16)]:
        tracked, shown, again = track_and_correct(tracker.predictor, k, [x, y])
        removed = tracked[k][0, 0, y, x] > 0 and shown[0, 0, y, x] <= 0
        if removed and 0 < foreground_fraction(shown) < foreground_fraction(tracked[k]):
            break  # a negative click on the mask that removes part of it (random weights: not every one does)
    else:
        pytest.fail("no negative click on the mask removes part of it")
    assert torch.equal(again[k], shown)  # the correction holds
    assert not torch.equal(again[k + 1], tracked[k + 1])  # and changes what follows
    _, shown_default, again_default = track_and_correct(meta_default, k, [x, y])
    assert not torch.equal(again_default[k], shown_default)  # Meta's default re-tracks the corrected frame


# ------------------------------------------------------------------------------------- JSON files
def test_json_files_that_are_not_json_are_named_with_the_reason(tmp_path):
    """One reader for every JSON a user hands in (COCO, detections, masklets, training data): the error names
    the file and says why in plain words (no codec bytes, no parser internals)."""
    from sam2_hf.processing.validation import read_json_file

    binary, broken, folder = tmp_path / "image.json", tmp_path / "broken.json", tmp_path / "folder.json"
    Image.new("RGB", (4, 4)).save(binary, format="PNG")
    broken.write_text('{"images": [1, 2,\n "annotations": []}')
    folder.mkdir()
    cases = {
        binary: f"{binary}: not a JSON file (binary content, not UTF-8 text).",
        broken: f"{broken}: not valid JSON (line 2, column 15: expecting ',' delimiter).",
        folder: f"{folder}: a folder, not a JSON file.",
    }
    for path, message in cases.items():
        with pytest.raises(ValueError) as error:
            read_json_file(path)
        assert str(error.value) == message
    with pytest.raises(FileNotFoundError):
        read_json_file(tmp_path / "missing.json")
    (tmp_path / "ok.json").write_text('{"a": [1]}')
    assert read_json_file(tmp_path / "ok.json") == {"a": [1]}


# ------------------------------------------------------------------------- batched prompts (issue 19, B3)
@pytest.fixture(scope="module")
def image_model(reference_models):
    from sam2_hf import Sam2Model

    return reference_models("tiny", "2.1", IMAGE_SIZE).load(Sam2Model).eval()


@pytest.mark.parametrize("multimask_output", [True, False])
def test_a_padding_point_changes_no_object_result(image_model, multimask_output):
    """Objects with different point counts in one batched call (transformers' padding: label -10 added by the
    processor, or -1 given by the user) give each object what prompting it alone with its real points gives."""
    processor = Sam2Processor.for_image_size(IMAGE_SIZE)
    objects = [([[20, 29], [60, 50]], [1, 0]), ([[90, 60]], [1]), ([[100, 30], [0, 0]], [1, -1]), ([[20, 29]], [1])]

    def segment(points, labels):
        inputs = processor(images=IMAGE, input_points=[points], input_labels=[labels], return_tensors="pt")
        with torch.no_grad():
            return inputs["input_labels"], image_model(**inputs, multimask_output=multimask_output)

    batched_labels, batched = segment([p for p, _ in objects], [lab for _, lab in objects])
    assert batched_labels[0, :, 1].tolist() == [0, -10, -10, -10]  # the model's padding label for both kinds
    unlabelled = processor(images=IMAGE, input_points=[[[[20, 29], [60, 50]], [[90, 60]]]])["input_labels"]
    assert unlabelled.tolist() == [[[1, 1], [1, -10]]]  # without labels too: padding is not taken for a click
    for j, (points, labels) in enumerate(objects):
        real = [k for k, label in enumerate(labels) if label != -1]
        _, alone = segment([[points[k] for k in real]], [[labels[k] for k in real]])
        mask = alone.pred_masks[0, 0] > 0
        assert 0.01 < mask.float().mean() < 0.99, j  # a real mask, not an empty or full one
        assert torch.equal(batched.pred_masks[0, j] > 0, mask), j
        assert max_abs_diff(batched.pred_masks[0, j], alone.pred_masks[0, 0]) < 1e-5, j
        assert max_abs_diff(batched.iou_scores[0, j], alone.iou_scores[0, 0]) < 1e-5, j
        assert max_abs_diff(batched.object_score_logits[0, j], alone.object_score_logits[0, 0]) < 1e-5, j


def test_padded_video_prompts_give_each_object_its_alone_result(video_reference):
    """Sam2VideoProcessor stores the padded clicks of objects prompted together; the model's masks on the prompted
    frame and on the next, tracked one equal those of each object prompted alone in its own session."""
    from sam2_hf import Sam2VideoProcessor

    model = video_reference.load().eval()
    processor = Sam2VideoProcessor.for_image_size(IMAGE_SIZE)
    objects = {1: ([[20, 29], [60, 50], [40, 70]], [1, 1, 0]), 2: ([[90, 60]], [1])}

    def track(obj_ids):
        session = processor.init_video_session(video=CLIP)
        points, labels = [[objects[i][0] for i in obj_ids]], [[objects[i][1] for i in obj_ids]]
        processor.add_inputs_to_inference_session(session, 0, obj_ids, input_points=points, input_labels=labels)
        with torch.inference_mode():
            model(inference_session=session, frame_idx=0)
            return [out.pred_masks for out in model.propagate_in_video_iterator(session, max_frame_num_to_track=1)]

    together = track([1, 2])
    for j, obj_id in enumerate(objects):
        for frame, (both, alone) in enumerate(zip(together, track([obj_id]))):
            assert 0.01 < (alone > 0).float().mean() < 0.99, (obj_id, frame)
            # float noise (a memory mask binarised from points); stock's padding tokens give 3e-2
            assert max_abs_diff(both[j], alone[0]) < 1e-3, (obj_id, frame)


# ---------------------------------------------------------------------------- float mask prompts (issue 19, B4)
def logit_map() -> torch.Tensor:
    """(HEIGHT, WIDTH) float32 logits of a soft disc (+8 at its centre, -10 far away), not binarised: what
    transformers' propagate_video_from_mask_input test passes (`post_process_masks(..., binarize=False)`)."""
    y, x = torch.meshgrid(torch.arange(HEIGHT), torch.arange(WIDTH), indexing="ij")
    distance = ((x - 50.0) ** 2 + (y - 40.0) ** 2).sqrt()
    return (8.0 - distance / 2).clamp(min=-10.0)


FLOAT_MASKS = {"logits": logit_map(), "probabilities in [0, 1)": torch.sigmoid(logit_map()) * 0.999}


@pytest.mark.parametrize("kind", FLOAT_MASKS)
def test_float_mask_prompts_read_as_meta_and_transformers_read_them(video_reference, tmp_path, kind):
    """A float mask (tensor, numpy array or list) given to every entry point is stored as the model mask that
    Meta's add_new_mask and transformers' Sam2VideoProcessor make of the tensor: resized, then >= 0.5."""
    from sam2_hf import Sam2VideoProcessor

    mask = FLOAT_MASKS[kind]
    stock = transformers_video_processor()
    stock_session = stock.init_video_session(video=CLIP[:2])
    stock.add_inputs_to_inference_session(stock_session, frame_idx=0, obj_ids=1, input_masks=mask)
    expected = stock_session.mask_inputs_per_obj[0][0]
    meta = video_reference.meta
    meta_state = meta.init_state(save_jpeg_folder(CLIP[:2], tmp_path / "frames"))
    meta.add_new_mask(meta_state, 0, 1, mask)
    assert torch.equal(meta_state["mask_inputs_per_obj"][0][0], expected)
    assert 0.02 < expected.mean() < 0.5  # the object, not the whole frame as reading non-zero values would give

    processor = Sam2VideoProcessor.for_image_size(IMAGE_SIZE)
    for given in (mask, mask.numpy(), mask.tolist()):  # every container reads the same (one rule, in `Prompt`)
        assert torch.equal(Prompt(0, 1, mask=given).model_mask(IMAGE_SIZE), expected)
        session = processor.init_video_session(video=CLIP[:2])
        processor.add_inputs_to_inference_session(session, frame_idx=0, obj_ids=1, input_masks=[given])
        assert torch.equal(session.mask_inputs_per_obj[0][0], expected)
    predictor = video_reference.load(Sam2VideoPredictor, fill_hole_area=0)
    state = predictor.init_state(CLIP[:2])
    predictor.add_new_mask(state, 0, 1, mask.numpy())  # Meta's predictor would read a numpy array as non-zero
    assert torch.equal(state.object(1).masks[0], expected)
    stream = Sam2Tracker(predictor).stream()
    stream.push(CLIP[0])
    stream.add_prompt(1, mask=mask)
    assert torch.equal(stream.state.object(1).masks[0], expected)


def transformers_video_processor():
    import transformers

    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    return transformers.Sam2VideoProcessor(
        transformers.Sam2ImageProcessor(size=size), transformers.Sam2VideoVideoProcessor(size=size)
    )
