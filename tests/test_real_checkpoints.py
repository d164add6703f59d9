"""transformers' published integration numbers for the real `facebook/sam2.1-hiera-tiny`.

The expected values are those of transformers' `tests/models/sam2/test_modeling_sam2.py`
(`Sam2ModelIntegrationTest`, fp32; the newer box numbers, which include the box padding point that
matches Meta). They run only when the checkpoint and the fixture images are already in the local
Hugging Face cache; nothing is downloaded. To run them, fetch once (network needed):

    hf download facebook/sam2.1-hiera-tiny config.json model.safetensors
    hf download --repo-type dataset hf-internal-testing/sam2-fixtures truck.jpg groceries.jpg
    hf download --repo-type dataset huggingface/documentation-images transformers/model_doc/dog-sam.png

(`huggingface-cli download ...` on older huggingface_hub.)

Pixels: transformers' image processor resizes the *uint8* image (torchvision, antialiased bilinear)
and then normalizes, while `sam2_hf.Sam2Processor` resizes the float image exactly like Meta's
`SAM2Transforms`; the two inputs differ by up to ~0.02 per pixel after normalization. The numbers
are therefore checked at transformers' own tolerance (atol = rtol = 1e-4) with transformers' pixel
values (needs torchvision; prompts, coordinates and padding still come from `sam2_hf.Sam2Processor`),
and end to end with `sam2_hf.Sam2Processor`'s own pixels at a looser tolerance.
"""

from __future__ import annotations

import os

import pytest
import torch

from sam2_hf import Sam2Model

MODEL_ID = "facebook/sam2.1-hiera-tiny"
MODEL_FILES = ("config.json", "model.safetensors")
IMAGES = {
    "truck": ("hf-internal-testing/sam2-fixtures", "truck.jpg"),
    "groceries": ("hf-internal-testing/sam2-fixtures", "groceries.jpg"),
    "dog": ("huggingface/documentation-images", "transformers/model_doc/dog-sam.png"),
}
# pixel source -> (atol, rtol) for IoU scores and for mask logits
TOLERANCES = {
    "transformers_pixels": {"scores": (1e-4, 1e-4), "logits": (1e-4, 1e-4)},
    # Uncalibrated (no weights offline): the uint8-vs-float resize difference moves real-model
    # outputs slightly; this still catches wrong normalization, coordinates or padding.
    "sam2_hf_pixels": {"scores": (1e-2, 1e-2), "logits": (0.5, 2e-2)},
}


def _cached(repo_id: str, filename: str, repo_type: str = "model") -> str | None:
    """Path of a file in the local Hugging Face cache, or None (never touches the network)."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, filename, repo_type=repo_type)
    return path if isinstance(path, str) and os.path.isfile(path) else None


def _skip_missing(what: str, repo_id: str, files, repo_type: str = "model"):
    missing = [f for f in files if _cached(repo_id, f, repo_type) is None]
    if missing:
        kind = "" if repo_type == "model" else f"--repo-type {repo_type} "
        pytest.skip(
            f"{what} not in the local Hugging Face cache (missing {repo_id}: {', '.join(missing)}); "
            f"fetch it once with `hf download {kind}{repo_id} {' '.join(missing)}` to run this test."
        )


@pytest.fixture(scope="module")
def model():
    _skip_missing("The real checkpoint is", MODEL_ID, MODEL_FILES)
    folder = os.path.dirname(_cached(MODEL_ID, "config.json"))
    if not os.path.isfile(os.path.join(folder, "model.safetensors")):  # cached at different revisions
        return Sam2Model.from_pretrained(MODEL_ID, local_files_only=True).eval()
    return Sam2Model.from_pretrained(folder).eval()


@pytest.fixture(scope="module")
def processor():
    try:
        from sam2_hf import Sam2Processor
    except ImportError as e:
        pytest.skip(f"sam2_hf.Sam2Processor is not available: {e}")
    return Sam2Processor.for_image_size(1024)


@pytest.fixture(scope="module")
def images():
    from PIL import Image

    for name, (repo, filename) in IMAGES.items():
        _skip_missing(f"The fixture image {name!r} is", repo, [filename], repo_type="dataset")
    return {name: Image.open(_cached(repo, f, "dataset")).convert("RGB") for name, (repo, f) in IMAGES.items()}


@pytest.fixture(scope="module", params=list(TOLERANCES))
def pixels(request):
    """How pixel values are made: transformers' image processor (exact numbers) or ours (end to end)."""
    if request.param == "transformers_pixels":
        try:
            from transformers import Sam2ImageProcessor

            image_processor = Sam2ImageProcessor()
        except (ImportError, RuntimeError, OSError, ValueError) as e:  # torchvision missing, or renamed
            pytest.skip(f"transformers' Sam2ImageProcessor (needs torchvision) is not usable: {e}")
        return request.param, image_processor
    return request.param, None


def prepare(processor, pixels, images, **prompts):
    inputs = processor(return_tensors="pt", images=images, **prompts)
    image_processor = pixels[1]
    if image_processor is not None:
        inputs["pixel_values"] = image_processor(images, return_tensors="pt")["pixel_values"]
        assert inputs["pixel_values"].shape == (len(images), 3, 1024, 1024)
    return inputs


def assert_close(actual, expected, pixels, kind: str):
    atol, rtol = TOLERANCES[pixels[0]][kind]
    torch.testing.assert_close(actual, torch.tensor(expected), atol=atol, rtol=rtol)


def _sorted(iou_scores, pred_masks):
    order = torch.argsort(iou_scores, descending=True)
    return iou_scores[order], pred_masks[order]


@torch.no_grad()
def test_one_point_multimask(model, processor, images, pixels):
    inputs = prepare(processor, pixels, [images["truck"]], input_points=[[[[500, 375]]]], input_labels=[[[1]]])
    outputs = model(**inputs)
    assert outputs.iou_scores.shape == (1, 1, 3) and outputs.pred_masks.shape == (1, 1, 3, 256, 256)
    scores, masks = _sorted(outputs.iou_scores.squeeze(), outputs.pred_masks.squeeze())
    assert_close(scores, [0.9547, 0.4932, 0.0427], pixels, "scores")
    assert_close(
        masks[0, :3, :3],
        [[-24.9288, -41.7466, -31.0128], [-34.5113, -31.1054, -36.5913], [-25.2597, -37.5912, -33.4030]],
        pixels,
        "logits",
    )
    full = processor.post_process_masks(outputs.pred_masks, inputs["original_sizes"])[0]
    assert full.shape == (1, 3, 1500, 2250) and full.dtype == torch.bool


@torch.no_grad()
def test_one_point_single_mask(model, processor, images, pixels):
    inputs = prepare(processor, pixels, [images["truck"]], input_points=[[[[500, 375]]]], input_labels=[[[1]]])
    outputs = model(**inputs, multimask_output=False)
    assert outputs.iou_scores.shape == (1, 1, 1) and outputs.pred_masks.shape == (1, 1, 1, 256, 256)
    assert_close(outputs.iou_scores.squeeze((0, 1)), [0.9364], pixels, "scores")
    assert_close(
        outputs.pred_masks.squeeze((0, 1))[0, :3, :3],
        [[-7.0462, -13.3857, -9.6419], [-10.4565, -9.7174, -12.3528], [-7.3704, -12.4391, -10.5539]],
        pixels,
        "logits",
    )


@torch.no_grad()
def test_batched_images_multi_points(model, processor, images, pixels):
    inputs = prepare(
        processor,
        pixels,
        [images["truck"], images["dog"]],
        input_points=[[[[500, 375]]], [[[770, 200], [730, 120]]]],
        input_labels=[[[1]], [[1, 0]]],
    )
    outputs = model(**inputs)
    assert outputs.iou_scores.shape == (2, 1, 3) and outputs.pred_masks.shape == (2, 1, 3, 256, 256)
    scores, masks = _sorted(outputs.iou_scores[0].squeeze(), outputs.pred_masks[0].squeeze())
    assert_close(scores, [0.9586, 0.4913, 0.0448], pixels, "scores")
    assert_close(
        masks[0, :3, :3],
        [[-22.2555, -37.9250, -27.8928], [-30.8681, -27.9519, -32.8032], [-22.4133, -33.9966, -29.7111]],
        pixels,
        "logits",
    )
    scores, masks = _sorted(outputs.iou_scores[1].squeeze(), outputs.pred_masks[1].squeeze())
    assert_close(scores, [0.9504, 0.8117, 0.7426], pixels, "scores")
    assert_close(
        masks[0, :3, :3],
        [[-13.1182, -17.3217, -14.9651], [-16.2372, -12.7739, -17.6346], [-13.5013, -17.1549, -15.6614]],
        pixels,
        "logits",
    )


@torch.no_grad()
def test_batched_images_batched_objects(model, processor, images, pixels):
    """Objects with fewer points are padded with label -10 (as transformers' processor does)."""
    inputs = prepare(
        processor,
        pixels,
        [images["truck"], images["groceries"]],
        input_points=[[[[500, 375]], [[650, 750]]], [[[400, 300]], [[630, 300], [550, 300]]]],
        input_labels=[[[1], [1]], [[1], [1, 1]]],
    )
    assert (inputs["input_labels"] == -10).sum() == 3
    outputs = model(**inputs, multimask_output=False)
    assert outputs.iou_scores.shape == (2, 2, 1) and outputs.pred_masks.shape == (2, 2, 1, 256, 256)
    assert_close(outputs.iou_scores, [[[0.9500], [0.9718]], [[0.9568], [0.9114]]], pixels, "scores")
    assert_close(
        outputs.pred_masks[:, :, :, :2, :2],
        [
            [[[[-5.8131, -11.3020], [-8.6487, -8.0690]]], [[[-4.7731, -8.7606], [-6.2399, -7.0738]]]],
            [[[[-13.8661, -19.1254], [-20.2477, -14.1636]]], [[[-8.8229, -10.2760], [-11.3797, -8.7189]]]],
        ],
        pixels,
        "logits",
    )


@torch.no_grad()
def test_batched_boxes(model, processor, images, pixels):
    """The newer transformers numbers (box corners plus the padding point, as Meta)."""
    boxes = [
        [[75, 275, 1725, 850], [425, 600, 700, 875], [1375, 550, 1650, 800], [1240, 675, 1400, 750]],
        [[450, 170, 520, 350], [350, 190, 450, 350], [500, 170, 580, 350], [580, 170, 640, 350]],
    ]
    inputs = prepare(processor, pixels, [images["truck"], images["groceries"]], input_boxes=boxes)
    outputs = model(**inputs, multimask_output=False)
    assert outputs.iou_scores.shape == (2, 4, 1) and outputs.pred_masks.shape == (2, 4, 1, 256, 256)
    assert_close(
        outputs.iou_scores,
        [[[0.9904], [0.9689], [0.9770], [0.9079]], [[0.9739], [0.9816], [0.9838], [0.9781]]],
        pixels,
        "scores",
    )
    assert_close(
        outputs.pred_masks[:, :, :, :2, :2],
        [
            [
                [[[-11.1540, -18.3994], [-12.4230, -17.4403]]],
                [[[-19.3144, -29.3947], [-24.6341, -24.1144]]],
                [[[-24.2983, -37.6470], [-31.6659, -31.0893]]],
                [[[-25.4313, -44.0231], [-34.0903, -34.7447]]],
            ],
            [
                [[[-22.5539, -30.4633], [-32.8940, -21.6813]]],
                [[[-23.6637, -31.3489], [-32.5095, -22.4442]]],
                [[[-25.2987, -30.9999], [-34.6243, -24.1717]]],
                [[[-26.3150, -30.5313], [-35.0152, -24.0271]]],
            ],
        ],
        pixels,
        "logits",
    )


@pytest.mark.parametrize(
    "labels,score,logits",
    [
        ([[[1, 1]]], [0.9738], [[-5.3899, -9.7908, -8.4931], [-5.5144, -8.8731, -8.3000], [-5.5976, -9.9249, -9.0761]]),
        (
            [[[1, 0]]],
            [0.9719],
            [[-15.5081, -21.8641, -18.0479], [-17.4401, -17.4754, -23.6469], [-14.3975, -19.4346, -18.5884]],
        ),
    ],
    ids=["positive", "negative"],
)
@torch.no_grad()
def test_previous_mask_as_input(model, processor, images, pixels, labels, score, logits):
    """Best mask of a one-point prediction + new points, reusing the image embeddings."""
    first = prepare(processor, pixels, [images["truck"]], input_points=[[[[500, 375]]]], input_labels=[[[1]]])
    outputs = model(**first)
    mask_input = outputs.pred_masks[:, :, torch.argmax(outputs.iou_scores)]
    inputs = processor(
        input_points=[[[[500, 375], [1125, 625]]]],
        input_labels=labels,
        original_sizes=first["original_sizes"],
        return_tensors="pt",
    )
    assert "pixel_values" not in inputs
    outputs = model(**inputs, input_masks=mask_input, image_embeddings=outputs.image_embeddings, multimask_output=False)
    assert outputs.iou_scores.shape == (1, 1, 1) and outputs.pred_masks.shape == (1, 1, 1, 256, 256)
    assert_close(outputs.iou_scores.squeeze((0, 1)), score, pixels, "scores")
    assert_close(outputs.pred_masks.squeeze((0, 1))[0, :3, :3], logits, pixels, "logits")
