"""Sam2Processor: same outputs as transformers' Sam2Processor (prompts), Meta's pixels, config files."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sam2_hf.processing.image_processing import preprocess_images
from sam2_hf.processing.processor import Sam2Processor
from sam2_hf.processing.prompts import OutOfImageWarning

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_processor():
    return transformers.Sam2Processor(transformers.Sam2ImageProcessor())


@pytest.fixture(scope="module")
def images():
    rs = np.random.RandomState(0)
    return [rs.randint(0, 256, (300, 400, 3), dtype=np.uint8), rs.randint(0, 256, (200, 250, 3), dtype=np.uint8)]


def assert_same_outputs(ours, theirs, skip=("pixel_values",)):
    assert list(ours.keys()) == list(theirs.keys())
    for key in theirs:
        if key in skip:
            continue
        assert ours[key].dtype == theirs[key].dtype, key
        assert ours[key].shape == theirs[key].shape, key
        assert torch.allclose(ours[key].float(), theirs[key].float(), atol=1e-4, rtol=0), key


PROMPTS = {
    "points padded across objects and images": dict(
        input_points=[[[[10, 20], [30, 40]], [[5, 5]]], [[[1, 2]]]], input_labels=[[[1, 0], [1]], [[1]]]
    ),
    "one point per image": dict(input_points=[[[[399, 299]]], [[[0, 0]]]], input_labels=[[[1]], [[0]]]),
    "boxes": dict(input_boxes=[[[10, 20, 30, 40], [0, 0, 400, 300]], [[1, 2, 3, 4], [5, 6, 250, 200]]]),
    "boxes and points": dict(
        input_boxes=[[[10, 20, 300, 200]], [[5, 6, 200, 100]]],
        input_points=[[[[50, 60]]], [[[7, 8], [9, 10]]]],
        input_labels=[[[1]], [[1, 0]]],
    ),
    "points without labels": dict(input_points=[[[[10, 20]]], [[[1, 2]]]]),
    "numpy and tensors": dict(
        input_points=np.array([[[[10.5, 20.25]]], [[[100.0, 150.0]]]]), input_labels=torch.tensor([[[1]], [[1]]])
    ),
}


@pytest.mark.parametrize("case", list(PROMPTS))
def test_prompts_match_transformers(hf_processor, images, case):
    sizes = [[300, 400], [200, 250]]
    ours = Sam2Processor()(return_tensors="pt", original_sizes=sizes, **PROMPTS[case])
    theirs = hf_processor(original_sizes=sizes, return_tensors="pt", **PROMPTS[case])
    assert_same_outputs(ours, theirs)


def test_padding_values(images):
    out = Sam2Processor.for_image_size(256)(
        return_tensors="pt", images=images, **PROMPTS["points padded across objects and images"]
    )
    assert out["input_points"].shape == (2, 2, 2, 2) and out["input_labels"].shape == (2, 2, 2)
    assert (out["input_points"][0, 1, 1] == -10).all() and (out["input_points"][1, 1] == -10).all()
    assert out["input_labels"].tolist() == [[[1, 0], [1, -10]], [[1, -10], [-10, -10]]]
    assert torch.allclose(out["input_points"][0, 0, 1], torch.tensor([30 / 400 * 256, 40 / 300 * 256]))


def test_pixel_values_are_meta_and_close_to_transformers(hf_processor, images, capsys):
    ours = Sam2Processor()(return_tensors="pt", images=images, **PROMPTS["points padded across objects and images"])
    theirs = hf_processor(images=images, return_tensors="pt", **PROMPTS["points padded across objects and images"])
    assert_same_outputs(ours, theirs)
    assert ours["original_sizes"].tolist() == [[300, 400], [200, 250]]
    meta_pixels, _ = preprocess_images(images, 1024)  # equal to Meta's SAM2Transforms (test_image_processing)
    assert torch.equal(ours["pixel_values"], meta_pixels)
    diff = (ours["pixel_values"] - theirs["pixel_values"]).abs().max().item()
    with capsys.disabled():
        print(f"\n[sam2_hf] pixel_values max |ours (= Meta) - transformers| = {diff:.4g}")
    assert diff < 0.02  # transformers rounds the resized image to uint8 (<= 1 level / (255 * std))
    stock_order = Sam2Processor()(return_tensors="pt", images=images, rescale_before_resize=False)
    assert torch.equal(stock_order["pixel_values"], theirs["pixel_values"])  # the other order is stock's, exactly


def test_what_the_resize_order_does_to_masks(images, capsys):
    """The README's figure: masks from Meta's float resize vs transformers' uint8 resize, same random weights."""
    from sam2_hf import Sam2Model, Sam2VideoConfig

    torch.manual_seed(0)
    model = Sam2Model(Sam2VideoConfig.from_size("tiny", image_size=256)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
    processor = Sam2Processor.for_image_size(256)
    prompts = dict(
        input_points=[[[[100, 80]], [[300, 200]]], [[[50, 60]], [[200, 150]]]], input_labels=[[[1], [1]]] * 2
    )
    masks = []
    for rescale_first in (True, False):
        inputs = processor(return_tensors="pt", images=images, rescale_before_resize=rescale_first, **prompts)
        with torch.no_grad():
            logits = model(**inputs).pred_masks
        masks.append(torch.cat(processor.post_process_masks(logits, inputs["original_sizes"][:1].repeat(2, 1))))
    assert 0.01 < masks[0].float().mean() < 0.99  # the compared masks are neither empty nor full
    changed = (masks[0] != masks[1]).float().mean().item()
    with capsys.disabled():
        print(f"\n[sam2_hf] masks changed by the resize order: {100 * changed:.3f} % of pixels")
    assert 0 < changed < 0.01


def test_single_image_and_pil(images):
    from PIL import Image

    processor = Sam2Processor.for_image_size(256)
    out = processor(Image.fromarray(images[0]), input_points=[[[[1, 2]]]], input_labels=[[[1]]], return_tensors="pt")
    assert out["pixel_values"].shape == (1, 3, 256, 256)
    assert out["original_sizes"].tolist() == [[300, 400]]
    assert out.to("cpu")["input_points"].shape == (1, 1, 1, 2)
    assert processor(images[0], device="cpu", return_tensors="pt")["pixel_values"].device == torch.device("cpu")


# ---------------------------------------------------------------------------- post-processing
def test_post_process_masks_matches_transformers(hf_processor):
    masks = torch.randn(2, 3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    sizes = torch.tensor([[300, 400], [120, 90]])
    for kwargs in ({}, {"binarize": False}, {"apply_non_overlapping_constraints": True, "mask_threshold": 0.3}):
        ours = Sam2Processor().post_process_masks(masks, sizes, **kwargs)
        theirs = hf_processor.post_process_masks(masks.clone(), sizes, **kwargs)
        assert len(ours) == 2
        for a, b in zip(ours, theirs):
            assert a.shape == b.shape and a.dtype == b.dtype
            assert torch.equal(a, b)
    assert ours[1].shape == (3, 3, 120, 90)


def test_post_process_masks_fills_holes_and_removes_sprinkles():
    low_res = -torch.ones(1, 1, 1, 16, 16)
    low_res[..., 2:10, 2:10] = 5.0
    low_res[..., 5, 5] = -5.0  # 1-px hole
    low_res[..., 13, 13] = 5.0  # 1-px sprinkle
    processor = Sam2Processor.for_image_size(64)
    plain = processor.post_process_masks(low_res, [[16, 16]])[0][0, 0]
    assert not plain[5, 5] and plain[13, 13]
    cleaned = processor.post_process_masks(low_res, [[16, 16]], max_hole_area=1, max_sprinkle_area=1)[0][0, 0]
    assert cleaned[5, 5] and not cleaned[13, 13]
    assert cleaned.sum() == 64
    logits = processor.post_process_masks([low_res[0].numpy()], [[32, 32]], binarize=False)[0]
    assert logits.dtype == torch.float32 and logits.shape == (1, 1, 32, 32)


# -------------------------------------------------------------------------------- save / load
def test_save_pretrained_loads_in_transformers(tmp_path):
    Sam2Processor.for_image_size(512).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "processor_config.json").read_text())
    assert config["processor_class"] == "Sam2Processor" and config["point_pad_value"] == -10
    assert config["image_processor"]["image_processor_type"] == "Sam2ImageProcessor"
    hf = transformers.Sam2Processor.from_pretrained(tmp_path)
    assert type(hf.image_processor).__name__ == "Sam2ImageProcessor"
    assert hf.image_processor.size["height"] == hf.image_processor.size["width"] == 512
    assert hf.image_processor.mask_size["height"] == 128
    assert hf.target_size == 512 and hf.point_pad_value == -10
    assert list(hf.image_processor.image_mean) == list(Sam2Processor().image_processor.image_mean)
    ours = Sam2Processor.from_pretrained(tmp_path)
    assert ours.to_dict() == Sam2Processor.for_image_size(512).to_dict()
    hf_points = hf(original_sizes=[[100, 200]], input_points=[[[[10, 20]]]], return_tensors="pt")["input_points"]
    assert torch.allclose(hf_points, ours(original_sizes=[[100, 200]], input_points=[[[[10, 20]]]])["input_points"])


def test_loads_transformers_and_legacy_configs(hf_processor, tmp_path):
    hf_processor.save_pretrained(tmp_path / "new")
    assert Sam2Processor.from_pretrained(tmp_path / "new").to_dict() == Sam2Processor().to_dict()
    legacy = {  # flat preprocessor_config.json as on older Hub repos
        "do_convert_rgb": True, "do_normalize": True, "do_pad": False, "do_rescale": True, "do_resize": True,
        "image_mean": [0.485, 0.456, 0.406], "image_processor_type": "Sam2ImageProcessorFast",
        "image_std": [0.229, 0.224, 0.225], "mask_size": {"height": 64, "width": 64}, "point_pad_value": -10,
        "processor_class": "Sam2VideoProcessor", "resample": 2, "rescale_factor": 0.00392156862745098,
        "size": {"height": 256, "width": 256},
    }  # fmt: skip
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "preprocessor_config.json").write_text(json.dumps(legacy))
    processor = Sam2Processor.from_pretrained(tmp_path / "legacy")
    assert processor.target_size == 256 and processor.point_pad_value == -10
    assert processor.image_processor.size["height"] == 256 and processor.image_processor.rescale_before_resize
    assert Sam2Processor.from_pretrained(tmp_path / "legacy", size={"height": 512, "width": 512}).target_size == 512


def test_load_errors(tmp_path):
    with pytest.raises(OSError):
        Sam2Processor.from_pretrained(tmp_path)
    with pytest.raises(OSError):
        Sam2Processor.from_pretrained("facebook/sam2.1-hiera-tiny-not-cached", local_files_only=True)


def test_out_of_image_prompts_warn_and_are_used_as_given():
    """transformers' API: a clear warning, not an exception, and the coordinates rescaled as stock does."""
    processor, stock = Sam2Processor(), transformers.Sam2Processor(transformers.Sam2ImageProcessor())

    for prompt, what in (
        (dict(input_points=[[[[401, 20]]]], input_labels=[[[1]]]), "input_points of image 0 outside the 400x300"),
        (dict(input_points=[[[[10, -1]]]], input_labels=[[[1]]]), "input_points of image 0 outside"),
    ):
        with pytest.warns(OutOfImageWarning, match=what):
            ours = processor(return_tensors="pt", original_sizes=SIZES, **prompt)
        theirs = stock(original_sizes=SIZES, return_tensors="pt", **prompt)
        for key in prompt:
            assert torch.allclose(ours[key].float(), theirs[key].float())


def test_label_minus_one_is_padding_as_in_transformers():
    """Batched prompts with different point counts padded with label -1 (transformers' convention): the same
    tensors as stock's, except that the padding points get the model's padding label -10 (which our model
    leaves out of attention; stock passes -1, the "not a point" token, which changes the object's mask)."""
    prompt = dict(input_points=[[[[10, 20], [0, 0]], [[30, 40], [50, 60]]]], input_labels=[[[1, -1], [1, 0]]])
    ours = Sam2Processor()(return_tensors="pt", original_sizes=SIZES, **prompt)
    stock = transformers.Sam2Processor(transformers.Sam2ImageProcessor())
    theirs = stock(original_sizes=SIZES, return_tensors="pt", **prompt)
    assert torch.equal(ours["input_labels"], theirs["input_labels"].masked_fill(theirs["input_labels"] == -1, -10))
    assert torch.allclose(ours["input_points"], theirs["input_points"])
    with pytest.raises(ValueError, match="only padding points"):
        Sam2Processor()(return_tensors="pt", original_sizes=SIZES, input_points=[[[[10, 20]]]], input_labels=[[[-1]]])


# ------------------------------------------------------------------------------------ errors
SIZES = [[300, 400]]
BAD_INPUTS = [
    (
        dict(input_points=[[[[10, 20], [30, 40]]]], input_labels=[[[1]]]),
        "Object 0 of image 0 has 2 points but 1 labels",
    ),
    (dict(input_points=[[[[10, 20]], [[1, 1]]]], input_labels=[[[1]]]), "Image 0 has 2 objects in input_points but 1"),
    (
        dict(input_points=[[[[10, 20]]]], input_labels=[[[5]]]),
        r"labels must be 1 \(positive\) or 0 \(negative\).*\[5\]",
    ),
    (dict(input_boxes=[[[30, 20, 10, 40]]]), "x1 >= x0 and y1 >= y0"),
    (dict(input_boxes=[[[10, 40, 30, 20]]]), "x1 >= x0 and y1 >= y0"),
    (dict(input_points=[[[[1, 2]]], [[[3, 4]]]], input_labels=[[[1]], [[1]]]), "prompts for 2 images but 1 images"),
    (
        dict(input_boxes=[[[1, 2, 3, 4]]], input_points=[[[[1, 2]], [[3, 4]]]]),
        "1 boxes per image but input_points has 2",
    ),
    (dict(input_points=[[[10, 20]]], input_labels=[[[1]]]), "input_points must be nested 4 levels deep"),
    (dict(input_points=[[[[10, 20, 30]]]]), r"input_points must hold 2 numbers per entry"),
    (dict(input_labels=[[1]], input_points=[[[[1, 2]]]]), "input_labels must be nested 3 levels"),
    (dict(input_boxes=[[1, 2, 3, 4]]), "input_boxes must be nested 3 levels"),
    (dict(input_labels=[[[1]]]), "input_labels were given without input_points"),
]


@pytest.mark.parametrize("kwargs, match", BAD_INPUTS)
def test_bad_prompts_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Sam2Processor()(return_tensors="pt", original_sizes=SIZES, **kwargs)


def test_bad_calls_raise(images):
    processor = Sam2Processor.for_image_size(256)
    with pytest.raises(ValueError, match="Either images or original_sizes"):
        processor(input_points=[[[[1, 2]]]])
    with pytest.raises(ValueError, match="prompts for 1 images but 2 images"):
        processor(return_tensors="pt", images=images, input_points=[[[[1, 2]]]], input_labels=[[[1]]])
    with pytest.raises(ValueError, match="different numbers of boxes"):
        processor(return_tensors="pt", images=images, input_boxes=[[[1, 2, 3, 4]], [[1, 2, 3, 4], [5, 6, 7, 8]]])
    with pytest.raises(ValueError, match="disagree with the images' sizes"):
        processor(return_tensors="pt", images=images[:1], original_sizes=[[10, 10]])
    with pytest.raises(ValueError, match="original_sizes must be"):
        processor(return_tensors="pt", original_sizes=[[0, 10]])
    with pytest.raises(ValueError, match=r"\['segmentation_maps'\] need images"):
        processor(return_tensors="pt", original_sizes=[[10, 10]], segmentation_maps=[np.zeros((10, 10), np.uint8)])
    with pytest.raises(ValueError, match="Got masks for 2 images but 1 original sizes"):
        processor.post_process_masks(torch.zeros(2, 1, 1, 8, 8), [[8, 8]])
    with pytest.raises(ValueError, match=r"must be \(objects, masks, height, width\)"):
        processor.post_process_masks(torch.zeros(1, 8, 8), [[8, 8]])


def test_return_tensors_and_per_call_options(images):
    """transformers' processor contract: numpy outputs, per-call image options, 4-D batches, label maps."""
    processor = Sam2Processor.for_image_size(256)
    as_numpy = processor(images=images, input_points=[[[[1, 2]]], [[[3, 4]]]], return_tensors="np")
    assert isinstance(as_numpy["pixel_values"], np.ndarray) and as_numpy["pixel_values"].shape == (2, 3, 256, 256)
    assert isinstance(as_numpy["input_points"], np.ndarray)
    assert (
        processor(return_tensors="pt", images=images[0], size={"height": 128, "width": 128})["pixel_values"].shape[-1]
        == 128
    )
    batch = torch.from_numpy(np.stack([images[0], images[0]])).permute(0, 3, 1, 2)  # (B, 3, H, W) uint8
    assert torch.equal(
        processor(return_tensors="pt", images=batch)["pixel_values"][1],
        processor(return_tensors="pt", images=images[0])["pixel_values"][0],
    )
    ids = np.zeros((300, 400), np.uint8)
    ids[100:200, 100:300] = 3
    labels = processor(return_tensors="pt", images=images[0], segmentation_maps=ids)["labels"]
    assert labels.shape == (1, 64, 64) and labels.dtype == torch.int64 and set(labels.unique().tolist()) == {0, 3}


CONTENT_SIZE = 128  # model input size of the mask-generation tests
CONTENT_OPTIONS = dict(pred_iou_thresh=-100.0, stability_score_thresh=0.0, mask_threshold=0.12)  # logits within ±0.5


@pytest.fixture(scope="module")
def content_model(reference_models, tmp_path_factory):
    """sam2_hf's `Sam2Model` on the shared random reference (tiny 2.1, 128 px) changed to follow the image
    (`reference.follow_content`): on plain random weights every grid click gives the same image-wide blob, so
    mask generation keeps one mask and compares nothing else."""
    from sam2_hf import Sam2Model

    from reference import follow_content, save_meta_checkpoint

    meta = follow_content(reference_models("tiny", "2.1", CONTENT_SIZE).new_meta())
    path = save_meta_checkpoint(meta, tmp_path_factory.mktemp("content") / "sam2.1_hiera_tiny.pt")
    return Sam2Model.from_pretrained(path, image_size=CONTENT_SIZE).eval()


def test_mask_generation_pipeline_with_our_model_and_image_processor(content_model, tmp_path):
    """transformers' `pipeline("mask-generation")` runs on sam2_hf's model and image processor and gives stock's
    masks and scores on the same weights (transformers' uint8 resize order, so the pixels are stock's too).
    The image is square: on other shapes stock places the grid by the longest side (see the crop-layer test
    below). Not vacuous: several distinct partial masks survive the box NMS and are compared one to one."""
    from sam2_hf import Sam2ImageProcessor

    from reference import discs_image

    content_model.save_pretrained(tmp_path)
    stock = transformers.Sam2Model.from_pretrained(tmp_path).eval()
    image = Image.fromarray(discs_image(160, 160))
    options = dict(points_per_crop=8, **CONTENT_OPTIONS)
    square = {"height": CONTENT_SIZE, "width": CONTENT_SIZE}
    low_res = {"height": CONTENT_SIZE // 4, "width": CONTENT_SIZE // 4}
    ours_out = transformers.pipeline(
        "mask-generation",
        model=content_model,
        image_processor=Sam2ImageProcessor.for_image_size(CONTENT_SIZE, rescale_before_resize=False),
    )(image, **options)
    stock_out = transformers.pipeline(
        "mask-generation",
        model=stock,
        image_processor=transformers.Sam2ImageProcessor(size=square, mask_size=low_res),
    )(image, **options)
    assert len(ours_out["masks"]) == len(stock_out["masks"]) >= 3
    torch.testing.assert_close(
        torch.as_tensor(ours_out["scores"]), torch.as_tensor(stock_out["scores"]), atol=1e-4, rtol=0
    )
    masks = torch.stack([torch.as_tensor(m) for m in stock_out["masks"]]).flatten(1)
    for mine, theirs in zip(ours_out["masks"], stock_out["masks"]):
        assert torch.equal(torch.as_tensor(mine), torch.as_tensor(theirs))
    areas = masks.sum(1)
    overlap = (masks[:, None] & masks[None]).sum(-1) / (masks[:, None] | masks[None]).sum(-1)
    print(f"\n[sam2_hf] {len(masks)} masks compared, areas {areas.tolist()} of {masks.shape[1]} pixels")
    assert ((areas > 0) & (areas < masks.shape[1])).all()  # partial masks
    distinct = []  # masks each of IoU < 0.5 with every earlier one kept
    for i in range(len(masks)):
        if all(overlap[i, j] < 0.5 for j in distinct):
            distinct.append(i)
    assert len(distinct) >= 3, overlap


def test_mask_generation_pipeline_crop_layers_with_fewer_points(content_model):
    """`pipeline("mask-generation", crops_n_layers=1, crop_n_points_downscale_factor=2)` stopped with "stack
    expects each tensor to be equal size" (huggingface/transformers#35530, stock has it too). The processor now
    gives Meta's crops and per-layer grids (`sam2.utils.amg`, points mapped to the model input by Meta's
    `SAM2Transforms`, per axis, where stock scales by the longest side), and the pipeline's masks equal those of
    running each crop with its own grid (the loop of the upstream fix, transformers PR #35627), crop masks
    included. Weights: `content_model`."""
    from sam2.utils.amg import build_all_layer_point_grids, generate_crop_boxes
    from sam2.utils.transforms import SAM2Transforms

    from sam2_hf import Sam2ImageProcessor

    from reference import discs_image

    size, side, overlap = CONTENT_SIZE, 4, 512 / 1500
    image = discs_image()  # 120 x 160: not square, so points must be scaled per axis
    height, width = image.shape[:2]
    processor = Sam2ImageProcessor.for_image_size(size)
    boxes, points, crops, labels = processor.generate_crop_boxes(image, size, 1, overlap, side, 2)

    meta_boxes, meta_layers = generate_crop_boxes((height, width), 1, overlap)
    stock_boxes = transformers.Sam2ImageProcessor().generate_crop_boxes(image, size, 1, overlap, side, 1)[0]
    assert boxes.tolist() == meta_boxes == stock_boxes.tolist() and len(meta_boxes) == 5
    transforms, grids = SAM2Transforms(size, 0.0), build_all_layer_point_grids(side, 1, 2)
    assert points.shape == (1, side**2, 5, 2) and labels.shape == (1, side**2, 5) and bool((labels == 1).all())
    meta_points = []  # Meta's clicks of each crop, in model-input pixels
    for c, ((x0, y0, x1, y1), layer) in enumerate(zip(meta_boxes, meta_layers)):
        assert torch.equal(crops[c], torch.from_numpy(image[y0:y1, x0:x1]).permute(2, 0, 1))
        in_crop = torch.as_tensor(grids[layer] * [x1 - x0, y1 - y0], dtype=torch.float32)
        meta_points.append(transforms.transform_coords(in_crop, normalize=True, orig_hw=(y1 - y0, x1 - x0)))
        count = len(meta_points[c])
        assert count == (side if layer == 0 else side // 2) ** 2
        torch.testing.assert_close(points[0, :count, c], meta_points[c])
        repeats = torch.arange(side**2) % count  # the padding repeats the crop's own clicks, in order
        assert torch.equal(points[0, :, c], points[0, repeats, c])

    model, options = content_model, CONTENT_OPTIONS
    out = transformers.pipeline("mask-generation", model=model, image_processor=processor)(
        Image.fromarray(image), points_per_crop=side, crops_n_layers=1, crop_n_points_downscale_factor=2, **options
    )

    masks, scores, mask_boxes, crop_of_mask = [], [], [], []  # each crop with its own clicks only
    with torch.no_grad():
        for c, (x0, y0, x1, y1) in enumerate(meta_boxes):
            inputs = processor(images=image[y0:y1, x0:x1], return_tensors="pt")
            outputs = model(
                image_embeddings=model.get_image_embeddings(inputs["pixel_values"]),
                input_points=meta_points[c][None, :, None],
                input_labels=torch.ones(1, len(meta_points[c]), 1, dtype=torch.int64),
            )
            logits = processor.post_process_masks(
                outputs.pred_masks, inputs["original_sizes"], mask_threshold=options["mask_threshold"], binarize=False
            )
            kept = processor.filter_masks(
                logits[0], outputs.iou_scores[0], (height, width), torch.tensor(meta_boxes[c]), **options
            )
            masks += kept[0]
            scores.append(kept[1])
            mask_boxes.append(kept[2])
            crop_of_mask += [c] * len(kept[1])
    all_boxes, all_scores = torch.cat(mask_boxes), torch.cat(scores)
    expected, expected_scores, _, kept_boxes = processor.post_process_for_mask_generation(
        masks, all_scores, all_boxes, 0.7
    )
    kept_from = {crop_of_mask[i] for i in range(len(all_scores))
                 if ((all_boxes[i] == kept_boxes).all(1) & (all_scores[i] == expected_scores)).any()}  # fmt: skip
    assert kept_from - {0}  # masks of layer-1 crops survive: the crops matter
    assert len(out["masks"]) == len(expected) >= 3
    torch.testing.assert_close(torch.as_tensor(out["scores"]), expected_scores, atol=1e-4, rtol=0)
    for mine, theirs in zip(out["masks"], expected):
        assert 0 < theirs.float().mean() < 1 and (torch.as_tensor(mine) != theirs).float().mean() < 1e-3
