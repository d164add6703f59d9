"""Sam2ImagePredictor vs Meta's SAM2ImagePredictor with the same random weights (image_size 256)."""

import numpy as np
import pytest
import torch

from sam2_hf.predictors.image_predictor import Sam2ImagePredictor
from sam2_hf.processing.processor import Sam2Processor
from sam2_hf.processing.prompts import OutOfImageWarning

from reference import max_abs_diff

S = 256
TOL = 1e-4
H, W = 300, 400  # the test image: not square, not a multiple of S


def meta_predictor(meta_model, **kwargs):
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    predictor = SAM2ImagePredictor(meta_model, **kwargs)
    predictor._bb_feat_sizes = [(S // 4, S // 4), (S // 8, S // 8), (S // 16, S // 16)]  # hard-coded for 1024
    return predictor


def make_image(h, w, seed):
    """Smooth blobs plus noise, uint8 RGB."""
    rs = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w]
    image = rs.randint(0, 40, (h, w, 3)).astype(np.float64)
    for _ in range(4):
        cy, cx, r = rs.randint(0, h), rs.randint(0, w), rs.randint(20, 80)
        image[(y - cy) ** 2 + (x - cx) ** 2 < r**2] += rs.randint(60, 200, 3)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def models(reference_models):
    reference = reference_models("tiny", "2.1", image_size=S)
    meta = reference.meta  # Meta's predictors only read it
    ours = reference.load(Sam2ImagePredictor, device="cpu", max_hole_area=0.0)
    assert not ours.model.training and ours.image_size == S and ours.max_hole_area == 0.0
    return meta, ours


@pytest.fixture(scope="module")
def predictors(models):
    """Meta's and ours, each with the same image set."""
    meta_model, ours = models
    meta = meta_predictor(meta_model)
    image = make_image(H, W, seed=0)
    meta.set_image(image)
    ours.set_image(image)
    return meta, ours


def report(name, **diffs):
    print(f"[sam2_hf parity] {name}: " + ", ".join(f"{k}={v:.3g}" for k, v in diffs.items()))


def compare(meta, ours, name, **kwargs):
    """Both predictors' outputs for the same prompt; asserts they agree and returns ours."""
    expected, got = meta.predict(**kwargs), ours.predict(**kwargs)
    diffs = {}
    for what, a, b in zip(("masks", "iou", "low_res"), expected, got):
        assert a.shape == b.shape and a.dtype == b.dtype, (what, a.shape, b.shape, a.dtype, b.dtype)
        diffs[what] = max_abs_diff(a, b)
    report(name, **diffs)
    assert max(diffs.values()) <= TOL, diffs
    return got


def assert_nontrivial(masks, iou, low_res):
    assert low_res.min() < 0 < low_res.max()  # not saturated to one sign
    assert np.abs(low_res).min() < 32  # not clamped everywhere
    assert 0 < (low_res > 0).mean() < 1
    assert np.isfinite(iou).all()


CASES = {
    "one point": dict(point_coords=np.array([[120, 80]]), point_labels=np.array([1])),
    "one point, single mask": dict(point_coords=[[120, 80]], point_labels=[1], multimask_output=False),
    "several points": dict(
        point_coords=np.array([[120, 80], [300, 200], [50, 250], [399, 1]]),
        point_labels=np.array([1, 0, 1, 0]),
        multimask_output=False,
    ),
    "several points, multimask": dict(point_coords=[[120, 80], [300, 200]], point_labels=[1, 1]),
    "box": dict(box=np.array([50, 60, 250, 220])),
    "box, single mask": dict(box=np.array([50, 60, 250, 220]), multimask_output=False),
    "box + points": dict(box=np.array([50, 60, 250, 220]), point_coords=[[120, 80], [200, 100]], point_labels=[1, 0]),
    "normalize_coords=False": dict(
        point_coords=np.array([[0.3, 0.25]]),
        point_labels=np.array([1]),
        box=[0.1, 0.2, 0.6, 0.7],
        normalize_coords=False,
    ),
    "batched boxes": dict(
        box=np.array([[50, 60, 250, 220], [10, 10, 100, 100], [200, 100, 390, 290]]), multimask_output=False
    ),
    "batched boxes + points": dict(
        box=np.array([[50, 60, 250, 220], [200, 100, 390, 290]]),
        point_coords=np.array([[[120, 80]], [[300, 200]]]),
        point_labels=np.array([[1], [0]]),
    ),
    "batched points": dict(
        point_coords=np.array([[[120, 80], [10, 20]], [[300, 200], [390, 290]]]), point_labels=[[1, 0], [1, 1]]
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_predict_matches_meta(predictors, case):
    meta, ours = predictors
    masks, iou, low_res = compare(meta, ours, case, return_logits=True, **CASES[case])
    assert_nontrivial(masks, iou, low_res)
    batched = case.startswith("batched")
    num_masks = 3 if CASES[case].get("multimask_output", True) else 1
    assert masks.shape[-3:] == (num_masks, H, W) and low_res.shape[-3:] == (num_masks, S // 4, S // 4)
    assert (masks.ndim == 4) == batched and iou.shape[-1] == num_masks


def test_predict_matches_meta_at_1024(reference_models):
    """At the official size Meta's predictor runs unpatched."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    reference = reference_models("tiny", "2.1", image_size=1024, seed=1)
    meta = SAM2ImagePredictor(reference.new_meta())  # used once: not kept for the session
    ours = Sam2ImagePredictor.from_pretrained(reference.path)  # the image size comes from the default
    image = make_image(H, W, seed=3)
    meta.set_image(image)
    ours.set_image(image)
    kwargs = dict(box=np.array([50, 60, 250, 220]), point_coords=[[120, 80]], point_labels=[1], return_logits=True)
    masks, iou, low_res = compare(meta, ours, "image_size 1024, box + point", **kwargs)
    assert masks.shape == (3, H, W) and low_res.shape == (3, 256, 256)
    assert_nontrivial(masks, iou, low_res)


def test_binary_masks_match_meta(predictors):
    meta, ours = predictors
    masks, _, _ = compare(meta, ours, "binary masks", **CASES["one point"])
    assert masks.dtype == np.float32 and set(np.unique(masks)) == {0.0, 1.0}  # Meta returns 0/1 floats


def test_mask_input_matches_meta(predictors):
    meta, ours = predictors
    _, iou, low_res = ours.predict(**CASES["one point"])
    previous = low_res[np.argmax(iou)][None]  # (1, S/4, S/4)
    points = {k: v for k, v in CASES["several points"].items() if k != "multimask_output"}
    with_points = compare(
        meta, ours, "mask input + points", mask_input=previous, multimask_output=False, return_logits=True, **points
    )
    without = ours.predict(**CASES["several points"], return_logits=True)
    assert max_abs_diff(with_points[0], without[0]) > 1e-2  # the mask prompt changes the result
    alone = compare(meta, ours, "mask input alone", mask_input=previous, return_logits=True)
    assert_nontrivial(*alone)
    batched = compare(
        meta,
        ours,
        "batched mask input",
        mask_input=np.stack([previous, previous]),
        return_logits=True,
        **CASES["batched boxes + points"],
    )
    assert batched[0].shape == (2, 3, H, W)


def test_different_prompts_give_different_masks(predictors):
    _, ours = predictors
    point = ours.predict(**CASES["one point"], return_logits=True)[0]
    box = ours.predict(**CASES["box"], return_logits=True)[0]
    assert max_abs_diff(point, box) > 1e-2


def test_embedding_matches_meta(predictors):
    meta, ours = predictors
    assert ours.get_image_embedding().shape == (1, 256, S // 16, S // 16)
    diff = max_abs_diff(meta.get_image_embedding(), ours.get_image_embedding())
    report("image embedding", embed=diff)
    assert diff <= TOL
    assert ours._orig_hw == meta._orig_hw == [(H, W)]
    assert ours.device == torch.device("cpu") and not ours._is_batch


def test_batch_of_images_matches_meta(models):
    meta_model, ours_model = models
    meta, ours = meta_predictor(meta_model), Sam2ImagePredictor(ours_model.model)
    images = [make_image(H, W, seed=1), make_image(180, 240, seed=2)]
    meta.set_image_batch(images)
    ours.set_image_batch(images)
    assert ours._is_batch and ours._orig_hw == [(H, W), (180, 240)]
    kwargs = dict(
        point_coords_batch=[np.array([[120, 80]]), np.array([[60, 70], [200, 150]])],
        point_labels_batch=[np.array([1]), np.array([1, 0])],
        box_batch=[None, np.array([20, 30, 220, 170])],
        return_logits=True,
    )
    expected, got = meta.predict_batch(**kwargs), ours.predict_batch(**kwargs)
    mask_input_batch = [got[2][0][:1], None]
    kwargs2 = dict(
        point_coords_batch=kwargs["point_coords_batch"],
        point_labels_batch=kwargs["point_labels_batch"],
        mask_input_batch=mask_input_batch,
        multimask_output=False,
    )
    expected2, got2 = meta.predict_batch(**kwargs2), ours.predict_batch(**kwargs2)
    for name, (exp, out) in {
        "predict_batch": (expected, got),
        "predict_batch, mask input, binary": (expected2, got2),
    }.items():
        assert all(len(x) == 2 for x in out)
        diffs = {
            f"{what}[{i}]": max_abs_diff(a, b)
            for what, exp_list, out_list in zip(("masks", "iou", "low_res"), exp, out)
            for i, (a, b) in enumerate(zip(exp_list, out_list))
        }
        report(name, **diffs)
        assert max(diffs.values()) <= TOL
    assert got[0][1].shape == (3, 180, 240) and got2[0][0].shape == (1, H, W)
    assert_nontrivial(got[0][1], got[1][1], got[2][1])


def test_processor_and_model_give_the_predictor_masks(predictors):
    """Sam2Processor + Sam2Model.forward + post_process_masks == Sam2ImagePredictor.predict."""
    _, ours = predictors
    processor = Sam2Processor.for_image_size(S)
    inputs = processor(
        return_tensors="pt", original_sizes=[[H, W]], input_points=[[[[120, 80], [300, 200]]]], input_labels=[[[1, 0]]]
    )
    embeddings = [*ours._features["high_res_feats"], ours._features["image_embed"]]
    with torch.inference_mode():
        out = ours.model(
            image_embeddings=embeddings, input_points=inputs["input_points"], input_labels=inputs["input_labels"]
        )
    assert (out.object_score_logits > 0).all()  # the object is judged present
    masks = processor.post_process_masks(out.pred_masks, inputs["original_sizes"], binarize=False)[0]
    expected = ours.predict(point_coords=[[120, 80], [300, 200]], point_labels=[1, 0], return_logits=True)
    assert max_abs_diff(masks[0], expected[0]) <= TOL
    assert max_abs_diff(out.iou_scores[0, 0], expected[1]) <= TOL


def test_hole_filling_matches_meta_with_a_cpu_component_kernel(models, predictors, monkeypatch):
    """Meta's hole/sprinkle step needs its CUDA kernel; give it a brute-force CPU one and compare."""
    import sam2.utils.misc

    from test_image_processing import brute_force_components

    def get_connected_components(mask):  # (N, 1, H, W) -> labels, areas
        results = [brute_force_components(m[0].numpy().astype(bool)) for m in mask]
        return tuple(torch.tensor(np.stack([r[i] for r in results]))[:, None] for i in (0, 1))

    monkeypatch.setattr(sam2.utils.misc, "get_connected_components", get_connected_components)
    meta_plain, ours_plain = predictors
    kwargs = dict(mask_threshold=0.1, max_hole_area=20, max_sprinkle_area=20)
    meta = meta_predictor(models[0], **kwargs)
    ours = Sam2ImagePredictor(ours_plain.model, **kwargs)
    for predictor, source in ((meta, meta_plain), (ours, ours_plain)):  # reuse the embeddings
        predictor._features, predictor._orig_hw, predictor._is_image_set = source._features, source._orig_hw, True
    for return_logits in (True, False):
        name = f"hole filling (return_logits={return_logits})"
        cleaned = compare(meta, ours, name, return_logits=return_logits, **CASES["box + points"])
        plain = ours_plain.predict(return_logits=return_logits, **CASES["box + points"])
        assert (cleaned[0] != plain[0]).any()  # random-weight masks are speckled: cleaning changes them


# ---------------------------------------------------------------------------------- bad input
BAD_PROMPTS = [
    (dict(point_coords=[[10, 10]]), "point_labels must be supplied if point_coords is supplied"),
    (dict(point_labels=[1]), "point_labels were given without point_coords"),
    (dict(point_coords=[[10, 10], [20, 20]], point_labels=[1]), r"point_labels must have shape \(2,\)"),
    (dict(point_coords=[[10, 10]], point_labels=[5]), r"must be 1 \(positive\) or 0 \(negative\).*got \[5\]"),
    (dict(point_coords=[[10, 10]], point_labels=[-1]), r"got \[-1\]"),
    (dict(point_coords=[10, 10], point_labels=[1]), r"point_coords must be \(N, 2\) or \(B, N, 2\)"),
    (dict(point_coords=np.zeros((0, 2)), point_labels=np.zeros(0)), "point_coords is empty"),
    (dict(point_coords=[[np.nan, 10]], point_labels=[1]), "NaN or infinite"),
    (dict(point_coords=[["a", "b"]], point_labels=[1]), "point_coords must be numbers"),
    (dict(box=[250, 60, 50, 220]), "x1 >= x0 and y1 >= y0"),
    (dict(box=[50, 220, 250, 60]), "x1 >= x0 and y1 >= y0"),
    (dict(box=[50, 60, 250]), r"box must be \(4,\) or \(B, 4\)"),
    (
        dict(box=np.zeros((2, 4)), point_coords=np.zeros((3, 1, 2)), point_labels=np.ones((3, 1))),
        "same number of prompt sets",
    ),
    (dict(mask_input=np.zeros((1, 256, 256))), r"mask_input must be \(1, 64, 64\) or \(B, 1, 64, 64\)"),
    (dict(mask_input=np.zeros((64, 64))), r"mask_input must be \(1, 64, 64\)"),
    (
        dict(mask_input=np.zeros((3, 1, 64, 64)), box=np.zeros((2, 4))),
        "mask_input has 3 masks but there are 2 prompt sets",
    ),
]


OUT_OF_IMAGE = [
    (dict(point_coords=[[401, 10]], point_labels=[1]), r"points \(pixels\) outside the 400x300 image"),
    (dict(point_coords=[[10, -0.5]], point_labels=[1]), "outside the 400x300 image"),
    (
        dict(point_coords=[[0.5, 1.5]], point_labels=[1], normalize_coords=False),
        r"normalized \[0, 1\] coordinates\) outside",
    ),
    (dict(box=[50, 60, 450, 220]), r"box \(pixels\) outside the 400x300 image"),
]


@pytest.mark.parametrize("kwargs, match", OUT_OF_IMAGE)
def test_out_of_image_prompts_warn_and_give_metas_masks(predictors, kwargs, match):
    """Meta's predictor uses such prompts as given; so does ours, with a warning naming them."""
    meta, ours = predictors
    with pytest.warns(OutOfImageWarning, match=match):
        compare(meta, ours, f"out of image {kwargs}", **kwargs)


@pytest.mark.parametrize("kwargs, match", BAD_PROMPTS)
def test_bad_prompts_raise(predictors, kwargs, match):
    _, ours = predictors
    with pytest.raises(ValueError, match=match):
        ours.predict(**kwargs)


BAD_IMAGES = [
    (np.zeros((10, 10, 3), dtype=np.float64) + 7, ValueError, r"values in \[0, 1\]"),
    (np.zeros((10, 10, 3), dtype=np.int32), TypeError, "uint8 .* got dtype int32"),
    (np.zeros((10, 10, 5), dtype=np.uint8), ValueError, "channels; got 5"),
    (np.zeros((1, 10, 10, 3), dtype=np.uint8), ValueError, r"\(H, W\) or \(H, W, C\)"),
    (np.zeros((0, 10, 3), dtype=np.uint8), ValueError, "empty"),
    ("image.jpg", TypeError, "got str"),
    ([np.zeros((10, 10, 3), dtype=np.uint8)], TypeError, "use set_image_batch"),
]


@pytest.mark.parametrize("image, error, match", BAD_IMAGES)
def test_bad_images_raise(models, image, error, match):
    predictor = Sam2ImagePredictor(models[1].model)
    with pytest.raises(error, match=match):
        predictor.set_image(image)
    assert not predictor._is_image_set


def test_bad_call_order_raises(models, predictors):
    predictor = Sam2ImagePredictor(models[1].model)
    with pytest.raises(RuntimeError, match=r"An image must be set with \.set_image"):
        predictor.predict(**CASES["one point"])
    with pytest.raises(RuntimeError, match="An image must be set"):
        predictor.get_image_embedding()
    with pytest.raises(RuntimeError, match=r"set_image_batch"):
        predictor.predict_batch()
    with pytest.raises(TypeError, match="non-empty list"):
        predictor.set_image_batch(np.zeros((10, 10, 3), dtype=np.uint8))
    with pytest.raises(TypeError, match="non-empty list"):
        predictor.set_image_batch([])
    _, ours = predictors
    with pytest.raises(RuntimeError, match=r"predict_batch needs images set with \.set_image_batch"):
        ours.predict_batch(point_coords_batch=[[[1, 1]]], point_labels_batch=[[1]])
    batch = Sam2ImagePredictor(models[1].model)
    batch._features, batch._orig_hw, batch._is_image_set, batch._is_batch = ours._features, [(H, W)], True, True
    with pytest.raises(RuntimeError, match=r"use \.predict_batch"):
        batch.predict(**CASES["one point"])
    with pytest.raises(ValueError, match="point_coords_batch has 2 entries but 1 images"):
        batch.predict_batch(point_coords_batch=[[[1, 1]], [[2, 2]]], point_labels_batch=[[1], [1]])
    batch.reset_predictor()
    assert not batch._is_image_set and batch._features is None and batch._orig_hw is None


def test_clicks_reuse_the_images_decoder_projections(models):
    """set_image computes the mask decoder's prompt-independent projections of the image (`ImageProjections`) once;
    each click, and each prompt set of a batch, reuses them instead of projecting the image tokens again (the Meta
    parity tests above check the masks of both paths); a mask input changes the image tokens, so its call projects
    them itself, and the model refuses both together."""
    model = models[1].model
    predictor = Sam2ImagePredictor(model)
    key_projection = model.mask_decoder.transformer.layers[0].cross_attn_token_to_image.k_proj
    projected_rows = []  # image tokens the first layer's key projection ran on, per call
    handle = key_projection.register_forward_hook(lambda _m, args, _out: projected_rows.append(args[0].shape[:-1]))
    try:
        predictor.set_image(make_image(H, W, seed=3))
        assert projected_rows == [(1, (S // 16) ** 2)]
        predictor.predict(**CASES["one point"])
        predictor.predict(**CASES["batched boxes"])
        assert projected_rows == [(1, (S // 16) ** 2)]
        predictor.predict(**CASES["one point"], mask_input=np.zeros((1, S // 4, S // 4), np.float32))
        assert projected_rows == [(1, (S // 16) ** 2)] * 2
    finally:
        handle.remove()
    embeddings = predictor.get_image_embedding()
    projections = model.project_image(embeddings)
    features = predictor._features["high_res_feats"]
    with pytest.raises(ValueError, match="image_projections are computed without a mask input"):
        model.decode(embeddings, features, mask_inputs=torch.zeros(1, 1, S // 4, S // 4), image_projections=projections)
