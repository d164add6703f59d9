"""The Hub format: folders saved here load in stock transformers and vice versa, with equal outputs.

- ours -> transformers: `save_pretrained` folders load in `transformers.Sam2VideoModel` / `Sam2Model`
  with zero missing / unexpected / mis-shaped keys and give the same image outputs and video
  building blocks (`get_image_features`, `_single_frame_forward`);
- transformers -> ours: a randomly initialized `transformers.Sam2VideoModel` (reduced image size)
  saved with its own `save_pretrained` loads here with zero key problems and equal outputs;
- ours -> ours: bit-exact weights and a round-tripping config; `Sam2Model` loads a video checkpoint
  ignoring only the memory weights;
- the official Hub config.json of `facebook/sam2.1-hiera-tiny` builds exactly transformers' key set.

SAM 2 and SAM 2.1 both run; weights are random (seeded), image size 256 for speed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import transformers

from sam2_hf import Sam2Model, Sam2VideoConfig, Sam2VideoModel
from sam2_hf.backends.torch import TorchBackend
from sam2_hf.tracking import heads

from reference import max_abs_diff

TOL = 1e-4
IMAGE_SIZE = 256
VERSIONS = ["2.1", "2"]
# config.json of the Hub repo facebook/sam2.1-hiera-tiny, as published
OFFICIAL_TINY_CONFIG = Path(__file__).resolve().parent / "data" / "hf_sam2_video_config_tiny.json"
MEMORY_PREFIXES = (
    "memory_",
    "mask_downsample",
    "object_pointer_proj",
    "temporal_positional_encoding_projection_layer",
    "no_memory_positional_encoding",
    "no_object_pointer",
    "occlusion_spatial_embedding_parameter",
)


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


@torch.no_grad()
def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Seeded N(0, 0.02) noise on every weight (nothing stays at its zero / one init), objects present."""
    generator = torch.Generator().manual_seed(seed)
    for _, value in sorted(model.state_dict().items()):
        if value.is_floating_point():
            value.add_(torch.randn(value.shape, generator=generator) * 0.02)
    model.mask_decoder.pred_obj_score_head.proj_out.bias += 4.0
    return model.eval()


def transformers_config(version: str, image_size: int = IMAGE_SIZE) -> transformers.Sam2VideoConfig:
    """A tiny `Sam2VideoConfig` built with transformers' own config classes at a reduced image size."""
    s = image_size
    backbone = transformers.Sam2HieraDetConfig(image_size=[s, s])
    vision = transformers.Sam2VisionConfig(
        backbone_config=backbone, backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]]
    )
    is_21 = version == "2.1"
    return transformers.Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config=transformers.Sam2VideoPromptEncoderConfig(image_size=s),
        mask_decoder_config=transformers.Sam2VideoMaskDecoderConfig(),
        image_size=s,
        memory_attention_rope_feat_sizes=[s // 16, s // 16],
        enable_occlusion_spatial_embedding=is_21,
        enable_temporal_pos_encoding_for_object_pointers=is_21,
    )


def inputs(image_size: int = IMAGE_SIZE):
    """B=2 images, 2 objects each of two clicks. No padding point: there sam2_hf differs from stock transformers
    on purpose (a padding point changes no result in sam2_hf, tests/test_inputs.py)."""
    generator = torch.Generator().manual_seed(5)
    pixels = torch.randn(2, 3, image_size, image_size, generator=generator)
    s = image_size
    points = (
        torch.tensor(
            [
                [[[0.30, 0.40], [0.70, 0.65]], [[0.55, 0.20], [0.35, 0.60]]],
                [[[0.62, 0.55], [0.10, 0.10]], [[0.80, 0.30], [0.40, 0.45]]],
            ]
        )
        * s
    )
    labels = torch.tensor([[[1, 0], [1, 0]], [[1, 1], [1, 0]]])
    boxes = (
        torch.tensor([[[0.1, 0.2, 0.7, 0.8], [0.4, 0.05, 0.9, 0.5]], [[0.05, 0.3, 0.5, 0.95], [0.2, 0.2, 0.8, 0.6]]])
        * s
    )
    return pixels, points, labels, boxes


def assert_loaded_cleanly(info: dict, what: str):
    problems = {k: v for k, v in info.items() if v}
    assert not problems, f"{what}: {problems}"


def compare_image_outputs(reference_model, our_model, image_size: int = IMAGE_SIZE, label: str = ""):
    """transformers-style `forward` of two image models on the same prompts: points, boxes, no multimask."""
    pixels, points, labels, boxes = inputs(image_size)
    ref = reference_model(pixel_values=pixels, input_points=points, input_labels=labels)
    ours = our_model(pixel_values=pixels, input_points=points, input_labels=labels)
    errors = {}
    for field in ("iou_scores", "pred_masks", "object_score_logits"):
        errors[field] = max_abs_diff(getattr(ref, field), getattr(ours, field))
    for i, (a, b) in enumerate(zip(ref.image_embeddings, ours.image_embeddings)):
        errors[f"image_embeddings[{i}]"] = max_abs_diff(a, b)
    for multimask, kw in [(False, {"input_boxes": boxes}), (False, {"input_points": points, "input_labels": labels})]:
        r = reference_model(image_embeddings=ref.image_embeddings, multimask_output=multimask, **kw)
        o = our_model(image_embeddings=ours.image_embeddings, multimask_output=multimask, **kw)
        tag = "boxes" if "input_boxes" in kw else "points_single"
        for field in ("iou_scores", "pred_masks", "object_score_logits"):
            errors[f"{tag}/{field}"] = max_abs_diff(getattr(r, field), getattr(o, field))
    print(f"\n{label} max |transformers - ours|: {max(errors.values()):.3e}")
    bad = {k: v for k, v in errors.items() if v > TOL}
    assert not bad, f"{label}: {bad}"
    # non-trivial: both signs, objects present, different objects differ
    assert (ours.pred_masks > 0).any() and (ours.pred_masks < 0).any()
    assert (ours.object_score_logits > 0).all()
    assert max_abs_diff(ours.pred_masks[:, 0], ours.pred_masks[:, 1]) > 100 * TOL
    return ours


def compare_video_blocks(hf_video, our_video, image_size: int = IMAGE_SIZE, label: str = ""):
    """transformers' `Sam2VideoModel.get_image_features` and `_single_frame_forward` vs our per-frame steps."""
    pixels, points, labels, _ = inputs(image_size)
    pixels = pixels[:1]
    hf = hf_video.get_image_features(pixels)
    ours = our_video.encode_frame(pixels)
    sizes = [image_size // 4, image_size // 8, image_size // 16]
    hf_maps = [f.permute(1, 2, 0).reshape(1, -1, s, s) for f, s in zip(hf.fpn_hidden_states, sizes)]
    errors = {
        "features/s0": max_abs_diff(hf_maps[0], ours.high_res_features[0]),
        "features/s1": max_abs_diff(hf_maps[1], ours.high_res_features[1]),
        "features/embeddings": max_abs_diff(hf_maps[2], ours.image_embeddings),
        "features/pos": max_abs_diff(
            hf.fpn_position_encoding[-1].permute(1, 2, 0).reshape(1, -1, sizes[2], sizes[2]), ours.position_embeddings
        ),
    }
    if hasattr(hf_video, "_single_frame_forward"):  # private; compared while it exists
        for multimask in (True, False):
            p, lab = points[:1, :1], labels[:1, :1]  # one object, two points
            ref = hf_video._single_frame_forward(
                pixel_values=pixels, input_points=p, input_labels=lab, multimask_output=multimask
            )
            out = heads.predict_masks(
                TorchBackend(our_video),
                our_video.image_only_embedding(ours.image_embeddings),
                ours.high_res_features,
                p[0],
                lab[0],
                multimask_output=multimask,
            )
            tag = "multimask" if multimask else "single"
            errors[f"frame/{tag}/iou"] = max_abs_diff(ref.iou_scores.reshape(out.iou_scores.shape), out.iou_scores)
            errors[f"frame/{tag}/mask"] = max_abs_diff(ref.pred_masks.reshape(out.masks.shape), out.masks)
            errors[f"frame/{tag}/pointer"] = max_abs_diff(
                ref.object_pointer.reshape(out.object_pointer.shape), out.object_pointer
            )
            errors[f"frame/{tag}/object_score"] = max_abs_diff(
                ref.object_score_logits.reshape(out.object_score_logits.shape), out.object_score_logits
            )
    print(f"\n{label} video blocks max |transformers - ours|: {max(errors.values()):.3e}")
    bad = {k: v for k, v in errors.items() if v > TOL}
    assert not bad, f"{label}: {bad}"


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module", params=VERSIONS, ids=[f"sam{v}" for v in VERSIONS])
def our_folder(request, tmp_path_factory):
    """(version, model, folder): our tiny model with random weights, saved with `save_pretrained`."""
    version = request.param
    torch.manual_seed(0)
    model = randomize(Sam2VideoModel(Sam2VideoConfig.from_size("tiny", version, image_size=IMAGE_SIZE)))
    folder = tmp_path_factory.mktemp(f"ours-{version}")
    model.save_pretrained(folder)
    return version, model, folder


@pytest.fixture(scope="module", params=VERSIONS, ids=[f"sam{v}" for v in VERSIONS])
def hf_folder(request, tmp_path_factory):
    """(version, model, folder): stock transformers' Sam2VideoModel with random weights, saved by transformers."""
    version = request.param
    torch.manual_seed(1)
    model = randomize(transformers.Sam2VideoModel(transformers_config(version)))
    folder = tmp_path_factory.mktemp(f"transformers-{version}")
    model.save_pretrained(folder)
    return version, model, folder


# --------------------------------------------------------------------------------------------- tests
def test_ours_loads_in_transformers(our_folder):
    version, ours, folder = our_folder
    hf_video, info = transformers.Sam2VideoModel.from_pretrained(folder, output_loading_info=True)
    assert_loaded_cleanly(info, "transformers.Sam2VideoModel")
    assert hf_video.state_dict().keys() == ours.state_dict().keys()
    hf_state = hf_video.state_dict()
    assert all(torch.equal(v, hf_state[k]) for k, v in ours.state_dict().items())
    assert hf_video.config.enable_occlusion_spatial_embedding == (version == "2.1")
    assert hf_video.config.image_size == IMAGE_SIZE

    hf_image, info = transformers.Sam2Model.from_pretrained(folder, output_loading_info=True)
    assert_loaded_cleanly(info, "transformers.Sam2Model")
    hf_image.eval(), hf_video.eval()
    our_image = Sam2Model.from_pretrained(folder).eval()
    compare_image_outputs(hf_image, our_image, label=f"ours(SAM {version}) -> transformers.Sam2Model vs Sam2Model")
    compare_image_outputs(hf_image, ours, label=f"ours(SAM {version}) -> transformers.Sam2Model vs Sam2VideoModel")
    compare_video_blocks(hf_video, ours, label=f"ours(SAM {version}) -> transformers.Sam2VideoModel")


def test_transformers_loads_in_ours(hf_folder):
    version, hf_video, folder = hf_folder
    ours, info = Sam2VideoModel.from_pretrained(folder, output_loading_info=True)
    assert_loaded_cleanly(info, "sam2_hf.Sam2VideoModel")
    assert ours.config.version == version and ours.config.image_size == IMAGE_SIZE
    hf_state = hf_video.state_dict()
    assert ours.state_dict().keys() == hf_state.keys()
    assert all(torch.equal(v, hf_state[k]) for k, v in ours.state_dict().items())

    our_image, info = Sam2Model.from_pretrained(folder, output_loading_info=True)
    assert_loaded_cleanly(info, "sam2_hf.Sam2Model")
    hf_image = transformers.Sam2Model.from_pretrained(folder).eval()
    compare_image_outputs(hf_image, our_image.eval(), label=f"transformers(SAM {version}) -> Sam2Model")
    compare_video_blocks(hf_video.eval(), ours.eval(), label=f"transformers(SAM {version}) -> Sam2VideoModel")


def test_save_reload_is_bit_exact(our_folder, tmp_path):
    version, model, folder = our_folder
    reloaded, info = Sam2VideoModel.from_pretrained(folder, output_loading_info=True)
    assert_loaded_cleanly(info, "reload")
    a, b = model.state_dict(), reloaded.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
    # The config round-trips (through the file, and through a second save).
    assert _strip(reloaded.config.to_dict()) == _strip(model.config.to_dict())
    reloaded.save_pretrained(tmp_path)
    # (transformers' from_pretrained fills the sub-configs' `dtype` field, None -> "float32"; nothing else changes)
    assert _strip(json.loads((tmp_path / "config.json").read_text())) == _strip(
        json.loads((folder / "config.json").read_text())
    )
    config = Sam2VideoConfig.from_pretrained(folder)
    assert config.version == version and config.image_size == IMAGE_SIZE and config.embedding_size == IMAGE_SIZE // 16
    assert json.loads((folder / "config.json").read_text())["model_type"] == "sam2_video"


def _strip(d: dict) -> dict:
    drop = {"transformers_version", "_name_or_path", "architectures", "dtype", "torch_dtype"}
    return {k: (_strip(v) if isinstance(v, dict) else v) for k, v in d.items() if k not in drop}


def test_image_model_loads_video_checkpoint(our_folder):
    """Reading a sam2_video folder as an image model is intended: it loads cleanly, without transformers'
    "model of type sam2_video to instantiate a model of type sam2" warning."""
    _version, video, folder = our_folder
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("transformers.configuration_utils")
    logger.addHandler(handler)
    try:
        image, info = Sam2Model.from_pretrained(folder, output_loading_info=True)
    finally:
        logger.removeHandler(handler)
    assert not [r.getMessage() for r in records if "sam2_video" in r.getMessage()]
    assert_loaded_cleanly(info, "Sam2Model from a sam2_video folder")
    video_keys, image_keys = set(video.state_dict()), set(image.state_dict())
    assert image_keys < video_keys
    ignored = video_keys - image_keys
    assert ignored and all(k.startswith(MEMORY_PREFIXES) for k in ignored), sorted(ignored)[:5]
    assert all(torch.equal(image.state_dict()[k], video.state_dict()[k]) for k in image_keys)


def test_image_folders_round_trip_with_transformers_image_model(our_folder, tmp_path):
    """An image model saves transformers' `sam2` format with the image weights only: stock `Sam2Model`
    loads it with every weight, stock's image folder loads back here, and the folder never claims a memory."""
    _version, _video, folder = our_folder
    ours = Sam2Model.from_pretrained(folder)
    ours.save_pretrained(tmp_path / "ours")
    saved = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert saved["model_type"] == "sam2" and saved["architectures"] == ["Sam2Model"]
    stock, info = transformers.Sam2Model.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert_loaded_cleanly(info, "stock Sam2Model from our image folder")
    compare_image_outputs(stock, ours, label="ours image -> stock image")
    stock.save_pretrained(tmp_path / "stock")
    back, info = Sam2Model.from_pretrained(tmp_path / "stock", output_loading_info=True)
    assert_loaded_cleanly(info, "our Sam2Model from stock's image folder")
    assert all(torch.equal(v, ours.state_dict()[k]) for k, v in back.state_dict().items())
    with pytest.raises(ValueError, match="lacks memory weights"):
        Sam2VideoModel.from_pretrained(tmp_path / "ours")
    with pytest.raises(TypeError, match="needs a Sam2VideoConfig"):
        Sam2VideoModel(ours.config)


def test_official_tiny_config_builds_transformers_key_set():
    raw = json.loads(OFFICIAL_TINY_CONFIG.read_text())
    config = Sam2VideoConfig.from_dict(raw)
    assert config.version == "2.1" and config.image_size == 1024
    ours = Sam2VideoModel(config)
    hf = transformers.Sam2VideoModel(transformers.Sam2VideoConfig.from_dict(raw))
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    hf_shapes = {k: tuple(v.shape) for k, v in hf.state_dict().items()}
    assert len(ours_shapes) == 469
    assert ours_shapes == hf_shapes
    # Our size preset for tiny / 2.1 is the official config.
    preset = _strip(Sam2VideoConfig.from_size("tiny", "2.1").to_dict())
    official = _strip(config.to_dict())
    assert preset == official, {
        k: (preset.get(k), official.get(k)) for k in preset.keys() | official.keys() if preset.get(k) != official.get(k)
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_key_sets_match_transformers_for_every_size(version):
    """Every size: our model's state-dict keys and shapes equal transformers' for the same config (no weights run)."""
    for size, count in {"tiny": 469, "small": 517, "base-plus": 613, "large": 901}.items():
        config = Sam2VideoConfig.from_size(size, version, image_size=IMAGE_SIZE)
        with torch.device("meta"):
            ours = Sam2VideoModel(config)
            hf = transformers.Sam2VideoModel(transformers.Sam2VideoConfig.from_dict(config.to_dict()))
        ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
        hf_shapes = {k: tuple(v.shape) for k, v in hf.state_dict().items()}
        assert ours_shapes == hf_shapes, (size, version, set(ours_shapes) ^ set(hf_shapes))
        assert len(ours_shapes) == (count if version == "2.1" else count - 3), (size, version, len(ours_shapes))


def strip_metadata(config: dict) -> dict:
    """A config dict without what says where it came from (name, dtype, architectures, versions), nested too."""
    ignored = {"architectures", "transformers_version", "dtype", "torch_dtype", "_name_or_path"}
    return {k: strip_metadata(v) if isinstance(v, dict) else v for k, v in config.items() if k not in ignored}


@pytest.mark.parametrize("cls", [Sam2VideoModel, Sam2Model])
def test_saved_folder_loads_at_another_image_size(cls, tmp_path):
    """`from_pretrained(folder, image_size=S)` (as for a Meta .pt): the same weights in a model built for S, every
    resolution-dependent field as `from_size` sets it, and the model runs at S."""
    torch.manual_seed(0)
    Sam2VideoModel(Sam2VideoConfig.from_size("tiny", image_size=256)).save_pretrained(tmp_path)
    model = cls.from_pretrained(tmp_path, image_size=512)
    expected = Sam2VideoConfig.from_size("tiny", image_size=512)
    expected = expected if cls is Sam2VideoModel else expected.image_config()
    assert strip_metadata(model.config.to_dict()) == strip_metadata(expected.to_dict())
    saved = cls.from_pretrained(tmp_path).state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    with torch.no_grad():
        out = model(pixel_values=torch.randn(1, 3, 512, 512), input_points=torch.tensor([[[[200.0, 300.0]]]]))
    assert out.pred_masks.shape[-1] == 128
    with pytest.raises(ValueError, match="multiple of 32"):
        cls.from_pretrained(tmp_path, image_size=500)
