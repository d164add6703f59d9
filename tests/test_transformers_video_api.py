"""transformers' video API on sam2_hf (`Sam2VideoProcessor`, `Sam2VideoInferenceSession`, `Sam2VideoModel.forward
(inference_session=...)`, `propagate_in_video_iterator`) vs stock `transformers.Sam2VideoModel` +
`transformers.Sam2VideoProcessor`, on the same random weights.

Our model is saved with `save_pretrained` and loaded by stock `from_pretrained`. Each scenario of transformers'
docs runs the same calls on both sides, frames in, low-resolution `pred_masks` out: one click then propagate;
several objects in one call (padded clicks); a box; a mask prompt; an object added on a later frame; a
refinement click, then propagating again; reverse; streaming with `frame=` one frame at a time. Our
processor is built with `rescale_before_resize=False` (transformers' uint8 resize), so the whole pipeline
is compared, preprocessing included. Every output must have the same `object_ids` and `frame_idx`, and
`pred_masks` / `object_score_logits` within 1e-3 (measured: ~1e-6; memories are bf16 on both sides).

The comparison is not vacuous: on every frame every object is judged present, its mask is neither empty
nor full, masks differ between frames, and on tracked frames between objects (their memories differ).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2_hf import Sam2VideoInferenceSession, Sam2VideoModel, Sam2VideoProcessor, Sam2VideoSegmentationOutput
from sam2_hf.media.synthetic import synthetic_clip
from sam2_hf.processing.image_processing import Sam2ImageProcessor

transformers = pytest.importorskip("transformers")

IMAGE_SIZE = 128
NUM_FRAMES = 4
HEIGHT, WIDTH = 96, 128
CLIP = synthetic_clip(num_frames=NUM_FRAMES, height=HEIGHT, width=WIDTH)
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def sides(reference_models, tmp_path_factory):
    """{"ours": (model, processor), "stock": (model, processor)} with the same weights."""
    ours = reference_models("tiny", "2.1", IMAGE_SIZE).load(Sam2VideoModel).eval()
    folder = tmp_path_factory.mktemp("hf")
    ours.save_pretrained(folder)
    stock, info = transformers.Sam2VideoModel.from_pretrained(folder, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    stock_processor = transformers.Sam2VideoProcessor(
        transformers.Sam2ImageProcessor(size=size), transformers.Sam2VideoVideoProcessor(size=size)
    )
    processor = Sam2VideoProcessor(Sam2ImageProcessor.for_image_size(IMAGE_SIZE, rescale_before_resize=False))
    return {"ours": (ours, processor), "stock": (stock.eval(), stock_processor)}


def run_both(sides, scenario):
    """scenario(model, processor, log) on both sides under inference mode -> (our log, stock log)."""
    logs = {}
    for name, (model, processor) in sides.items():
        logs[name] = []
        with torch.inference_mode():
            scenario(model, processor, logs[name])
    return logs["ours"], logs["stock"]


def assert_same(ours, stock, tracked_frames_differ_between_objects=True):
    """Same outputs (ids, frames, masks and scores within TOLERANCE), and non-trivial ones."""
    assert [(o.frame_idx, list(o.object_ids)) for o in ours] == [(o.frame_idx, list(o.object_ids)) for o in stock]
    worst = 0.0
    for a, b in zip(ours, stock):
        assert isinstance(a, Sam2VideoSegmentationOutput)
        assert a.pred_masks.shape == b.pred_masks.shape and a.object_score_logits.shape == b.object_score_logits.shape
        worst = max(worst, (a.pred_masks - b.pred_masks.float()).abs().max().item())
        worst = max(worst, (a.object_score_logits - b.object_score_logits.float()).abs().max().item())
        assert (a.object_score_logits > 0).all(), "an object is judged absent"
        foreground = (a.pred_masks > 0).flatten(1).float().mean(1)
        assert ((foreground > 0) & (foreground < 1)).all(), "a mask is empty or full"
    print(f"\n{len(ours)} outputs, max abs diff vs stock transformers: {worst:.2e}")
    assert worst <= TOLERANCE
    assert len({o.frame_idx for o in ours}) == 1 or any(
        (a.pred_masks - b.pred_masks).abs().max() > 10 * TOLERANCE
        for a, b in zip(ours, ours[1:])
        if a.object_ids == b.object_ids
    ), "masks do not change between frames"
    tracked = ours[-1].pred_masks
    if tracked_frames_differ_between_objects and len(tracked) > 1:
        assert (tracked[0] - tracked[1]).abs().max() > TOLERANCE, "objects get the same mask on a tracked frame"


def click(processor, session, frame_idx, obj_ids, points, labels, **kwargs):
    processor.add_inputs_to_inference_session(
        inference_session=session,
        frame_idx=frame_idx,
        obj_ids=obj_ids,
        input_points=[points],
        input_labels=[labels],
        **kwargs,
    )


# --------------------------------------------------------------------------- the docs' examples
def test_one_click_then_propagate(sides):
    def scenario(model, processor, log):
        session = processor.init_video_session(video=CLIP)
        click(processor, session, 0, 1, [[[20, 29]]], [[1]])
        log.append(model(inference_session=session, frame_idx=0))
        log.extend(model.propagate_in_video_iterator(session))

    ours, stock = run_both(sides, scenario)
    assert len(ours) == 1 + NUM_FRAMES and ours[0].pred_masks.shape == (1, 1, IMAGE_SIZE // 4, IMAGE_SIZE // 4)
    assert_same(ours, stock)


def test_several_objects_in_one_call_and_a_box(sides):
    """Objects 2 and 3 in one call (3 clicks each: with fewer clicks object 3 would be padded, and stock's
    padding tokens change its mask where ours change nothing, see
    test_inputs.py::test_padded_video_prompts_give_each_object_its_alone_result), then a box for object 4
    on the same frame (each call followed by the model, as each call replaces the session's objects with new
    inputs), propagation over part of the video."""

    def scenario(model, processor, log):
        session = processor.init_video_session(video=list(CLIP))
        clicks = [[[25, 67], [40, 60], [60, 20]], [[20, 29], [24, 33], [100, 80]]]
        click(processor, session, 0, [2, 3], clicks, [[1, 1, 0], [1, 1, 0]])
        log.append(model(inference_session=session, frame_idx=0))
        processor.add_inputs_to_inference_session(session, 0, 4, input_boxes=[[[88, 40, 104, 56]]])
        log.append(model(inference_session=session, frame_idx=0))
        log.extend(model.propagate_in_video_iterator(session, start_frame_idx=0, max_frame_num_to_track=2))

    ours, stock = run_both(sides, scenario)
    assert ours[-1].object_ids == [2, 3, 4] and ours[-1].frame_idx == 2
    assert_same(ours, stock)


def test_mask_prompt(sides):
    """A mask from a click, post-processed to the video's size, given back as a mask prompt (docs' test)."""

    def scenario(model, processor, log):
        session = processor.init_video_session(video=CLIP)
        click(processor, session, 0, 1, [[[20, 29], [25, 67]]], [[1, 1]])
        first = model(inference_session=session, frame_idx=0)
        mask = processor.post_process_masks([first.pred_masks], [[HEIGHT, WIDTH]])[0][0, 0]
        session.reset_inference_session()
        processor.add_inputs_to_inference_session(session, 0, 1, input_masks=mask)
        log.append(model(inference_session=session, frame_idx=0))
        log.extend(model.propagate_in_video_iterator(session, start_frame_idx=0))

    ours, stock = run_both(sides, scenario)
    assert ours[0].pred_masks.abs().max() <= 10  # a mask prompt is its own output: logits +-10, downsampled
    assert_same(ours, stock)


def test_object_added_later_refinement_and_reverse(sides):
    """Track object 1; add object 2 on frame 2; refine object 1 with a negative click on frame 3 (a tracked
    frame: a correction); propagate again from the start; then backwards from the last frame."""

    def scenario(model, processor, log):
        session = processor.init_video_session(video=CLIP)
        click(processor, session, 0, 1, [[[20, 29]]], [[1]])
        log.append(model(inference_session=session, frame_idx=0))
        log.extend(model.propagate_in_video_iterator(session))
        click(processor, session, 2, 2, [[[88, 48]]], [[1]])
        log.append(model(inference_session=session, frame_idx=2))
        click(processor, session, 3, 1, [[[60, 20]]], [[0]], clear_old_inputs=False)
        log.append(model(inference_session=session, frame_idx=3))
        log.extend(model.propagate_in_video_iterator(session))
        log.extend(model.propagate_in_video_iterator(session, start_frame_idx=NUM_FRAMES - 1, reverse=True))

    ours, stock = run_both(sides, scenario)
    assert [o.frame_idx for o in ours[-NUM_FRAMES:]] == list(range(NUM_FRAMES - 1, -1, -1))
    assert_same(ours, stock)


def test_propagating_straight_from_new_inputs_in_reverse(sides):
    """New inputs consumed by the propagation itself (no model call first): object 2 clicked on the last
    frame while object 1 is tracked, then reverse propagation from there (transformers' `any`-object
    binarized memories on that frame included)."""

    def scenario(model, processor, log):
        session = processor.init_video_session(video=CLIP)
        click(processor, session, 0, 1, [[[20, 29]]], [[1]])
        log.extend(model.propagate_in_video_iterator(session, start_frame_idx=0))
        click(processor, session, NUM_FRAMES - 1, 2, [[[88, 48]]], [[1]])
        log.extend(model.propagate_in_video_iterator(session, start_frame_idx=NUM_FRAMES - 1, reverse=True))

    assert_same(*run_both(sides, scenario))


def test_streaming(sides):
    """No video: frames are pushed one at a time with `frame=`, the prompt given with `original_size`."""

    def scenario(model, processor, log):
        session = processor.init_video_session()
        for frame_idx, frame in enumerate(CLIP):
            inputs = processor(images=frame, return_tensors="pt")
            if frame_idx == 0:
                click(
                    processor,
                    session,
                    0,
                    1,
                    [[[20, 29], [25, 67]]],
                    [[1, 1]],
                    original_size=inputs["original_sizes"][0],
                )
            log.append(model(inference_session=session, frame=inputs["pixel_values"][0]))

    ours, stock = run_both(sides, scenario)
    assert [o.frame_idx for o in ours] == list(range(NUM_FRAMES))
    assert_same(ours, stock)


def test_session_state_matches_stock(sides):
    """What users read off a session: sizes, frame count, object bookkeeping, stored prompts, resets."""

    def scenario(model, processor, log):
        session = processor.init_video_session(video=CLIP)
        click(processor, session, 1, ["a", "b"], [[[20, 29]], [[25, 67]]], [[1], [1]])
        processor.add_inputs_to_inference_session(session, 2, "a", input_boxes=[[[88, 40, 104, 56]]])
        points = session.point_inputs_per_obj
        log.append(
            (
                session.num_frames,
                session.video_height,
                session.video_width,
                list(session.obj_ids),
                session.get_obj_num(),
                session.obj_id_to_idx("b"),
                session.obj_idx_to_id(0),
                list(session.obj_with_new_inputs),
                {i: sorted(frames) for i, frames in points.items()},
                points[0][2]["point_labels"].tolist(),
                tuple(session.get_frame(3).shape),
            )
        )
        log.append(points[0][2]["point_coords"])  # the box's corners in model-input pixels
        session.reset_tracking_data()
        log.append((session.get_obj_num(), list(session.obj_ids), session.num_frames))

    ours, stock = run_both(sides, scenario)
    assert ours[0] == stock[0] and ours[2] == stock[2]
    assert torch.allclose(ours[1], stock[1]) and ours[1].shape == (1, 1, 2, 2)
    assert ours[0][-1] == (3, IMAGE_SIZE, IMAGE_SIZE)


def test_video_pixels_match_streamed_pixels_and_stock(sides):
    """A session's frames are the image processor's pixels, as transformers' video processor gives them."""
    processor = sides["ours"][1]
    session = processor.init_video_session(video=CLIP)
    stock = sides["stock"][1].init_video_session(video=CLIP)
    for i, frame in enumerate(CLIP):
        pixels = session.get_frame(i)
        assert torch.equal(pixels, processor(images=frame, return_tensors="pt")["pixel_values"][0])
        assert (pixels - stock.get_frame(i)).abs().max() < 1e-5


# --------------------------------------------------------------------------- errors
def test_errors_are_named(sides):
    model, processor = sides["ours"]
    stock_model, stock_processor = sides["stock"]
    session = processor.init_video_session(video=CLIP)
    with pytest.raises(IndexError, match="out of range"):
        click(processor, session, NUM_FRAMES, 1, [[[20, 29]]], [[1]])
    with pytest.raises(ValueError, match="the prompt is empty"):
        processor.add_inputs_to_inference_session(session, 0, 1)
    with pytest.raises(ValueError, match="input_points is empty"):
        click(processor, session, 0, 1, [[]], [[]])
    with pytest.raises(ValueError, match="4 numbers"):
        processor.add_inputs_to_inference_session(session, 0, 1, input_boxes=[[[1, 2, 3]]])
    with pytest.raises(ValueError, match="mask must be a non-empty 2-D"):
        processor.add_inputs_to_inference_session(session, 0, 1, input_masks=np.zeros((2, HEIGHT, WIDTH)))
    assert session.get_obj_num() == 0  # nothing was half added
    with pytest.raises(KeyError, match="No object at index 0"):
        session.obj_idx_to_id(0)
    click(processor, session, 0, 1, [[[20, 29]]], [[1]])
    with pytest.raises(IndexError, match="out of range"):
        model(inference_session=session, frame_idx=NUM_FRAMES)
    stock_session = stock_processor.init_video_session(video=CLIP)
    for proc, sess in ((processor, session), (stock_processor, stock_session)):
        messages = []
        for kwargs in (
            {"obj_ids": [1, 2], "input_points": [[[[20, 29]]]], "input_labels": [[[1]]]},
            {"obj_ids": 1, "input_points": [[[[20, 29]]]]},
            {"obj_ids": 1, "input_boxes": [[[1, 2, 3, 4]]], "input_masks": np.ones((HEIGHT, WIDTH), bool)},
            {"obj_ids": 1, "input_boxes": [[[1, 2, 3, 4]]], "clear_old_inputs": False},
        ):
            with pytest.raises(ValueError) as error:
                proc.add_inputs_to_inference_session(sess, 0, **kwargs)
            messages.append(str(error.value))
        if proc is processor:
            ours = messages
    assert ours == messages  # transformers' own messages
    with pytest.raises(ValueError, match="Cannot determine the starting frame index"):
        next(model.propagate_in_video_iterator(session))
    for m, p in ((model, processor), (stock_model, stock_processor)):
        stream = p.init_video_session()
        with pytest.raises(ValueError, match="^No objects are provided for tracking; please add inputs first.$"):
            m(inference_session=stream, frame=session.get_frame(0))
        with pytest.raises(ValueError, match="original_size must be provided"):
            click(p, stream, 0, 1, [[[20, 29]]], [[1]])


def test_object_without_conditioning_output_is_refused(sides):
    """An object whose inputs were never segmented cannot be tracked: transformers would segment it from no
    prompt at all on an untracked frame (or fail later); ours says what happened."""
    model, processor = sides["ours"]
    session = processor.init_video_session(video=CLIP)
    click(processor, session, 0, 1, [[[20, 29]]], [[1]])
    with torch.inference_mode():
        model(inference_session=session, frame_idx=0)
        click(processor, session, 2, 2, [[[88, 48]]], [[1]])
        with pytest.raises(ValueError, match=r"Object 2 has no conditioning output.*frames \[2\]"):
            model(inference_session=session, frame_idx=0)


def test_streamed_frames_are_bounded():
    session = Sam2VideoInferenceSession()
    for _ in range(20):
        session.add_new_frame(torch.zeros(1, 3, 32, 32))
    assert session.num_frames == 20 and session.get_frame(19).shape == (3, 32, 32)
    with pytest.raises(IndexError, match="kept for the newest 8"):
        session.get_frame(0)


def test_processor_saves_and_loads_with_stock(tmp_path):
    ours = Sam2VideoProcessor.for_image_size(IMAGE_SIZE)
    ours.save_pretrained(tmp_path / "ours")
    stock = transformers.Sam2VideoProcessor.from_pretrained(tmp_path / "ours")
    assert stock.target_size == IMAGE_SIZE and stock.video_processor.size["height"] == IMAGE_SIZE
    stock.save_pretrained(tmp_path / "stock")
    again = Sam2VideoProcessor.from_pretrained(tmp_path / "stock")
    assert isinstance(again, Sam2VideoProcessor) and again.target_size == IMAGE_SIZE
    assert isinstance(again.image_processor, Sam2ImageProcessor)
