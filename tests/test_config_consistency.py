"""The configurations keep the model's input size and connected widths consistent.

The input size S is stored in several places: `Sam2VideoConfig.image_size`, `prompt_encoder_config.image_size`
(point normalisation, mask-prompt grid), the Hiera trunk's `image_size`, `backbone_feature_sizes` and the memory
attention's RoPE grid. `image_size=S` alone sets all of them; a given sub-config or RoPE grid that contradicts
S is a ValueError naming both fields. Widths the model wires together must agree. Saved and Hub configs, all
consistent, load and round-trip unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import transformers

from sam2_hf.models.configuration import (
    HIERA_SIZES,
    VERSIONS,
    Sam2Config,
    Sam2HieraDetConfig,
    Sam2PromptEncoderConfig,
    Sam2VideoConfig,
    Sam2VideoPromptEncoderConfig,
    Sam2VisionConfig,
)

OFFICIAL_TINY_CONFIG = Path(__file__).resolve().parent / "data" / "hf_sam2_video_config_tiny.json"
CLASSES = [Sam2Config, Sam2VideoConfig]


def prompt_encoder(cls, **kwargs):
    """The prompt encoder config class that `cls` holds."""
    return (Sam2VideoPromptEncoderConfig if cls is Sam2VideoConfig else Sam2PromptEncoderConfig)(**kwargs)


def size_fields(config) -> dict[str, object]:
    """Every stored copy of the input size."""
    fields = {
        "image_size": config.image_size,
        "prompt_encoder_config.image_size": config.prompt_encoder_config.image_size,
        "backbone_config.image_size": config.vision_config.backbone_config.image_size,
        "backbone_feature_sizes": config.vision_config.backbone_feature_sizes,
    }
    if isinstance(config, Sam2VideoConfig):
        fields["memory_attention_rope_feat_sizes"] = config.memory_attention_rope_feat_sizes
    return fields


def expected_size_fields(cls, size: int) -> dict[str, object]:
    fields = {
        "image_size": size,
        "prompt_encoder_config.image_size": size,
        "backbone_config.image_size": [size, size],
        "backbone_feature_sizes": [[size // 4] * 2, [size // 8] * 2, [size // 16] * 2],
    }
    if cls is Sam2VideoConfig:
        fields["memory_attention_rope_feat_sizes"] = [size // 16] * 2
    return fields


def round_trips(config) -> None:
    """to_dict -> from_dict and the JSON text -> from_dict give the same configuration back."""
    cls = type(config)
    assert cls.from_dict(config.to_dict()).to_dict() == config.to_dict()
    assert cls.from_dict(json.loads(config.to_json_string())).to_json_string() == config.to_json_string()
    assert cls.from_dict(json.loads(config.to_json_string(use_diff=True))).to_dict() == config.to_dict()


# ------------------------------------------------------------------------------------- image_size alone
@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_image_size_alone_sets_every_copy(cls):
    config = cls(image_size=512)
    assert size_fields(config) == expected_size_fields(cls, 512)
    assert config.embedding_size == 32
    assert config.to_dict() == cls.from_size("tiny", image_size=512).to_dict()
    assert config.to_dict() == cls().with_image_size(512).to_dict()
    round_trips(config)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_defaults_are_1024_everywhere(cls):
    assert size_fields(cls()) == expected_size_fields(cls, 1024)
    assert cls().to_dict() == cls(image_size=1024).to_dict() == cls.from_size("tiny").to_dict()


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_without_image_size_the_top_level_follows_the_sub_configs(cls):
    """No top-level image_size: S comes from the given prompt encoder, else the given trunk; the parts not
    given are built at that S."""
    from_prompt = cls(prompt_encoder_config=prompt_encoder(cls, image_size=512))
    assert size_fields(from_prompt) == expected_size_fields(cls, 512)
    vision = Sam2VisionConfig(
        backbone_config=Sam2HieraDetConfig(image_size=[256, 256]),
        backbone_feature_sizes=[[64, 64], [32, 32], [16, 16]],
    )
    from_trunk = cls(vision_config=vision)
    assert size_fields(from_trunk) == expected_size_fields(cls, 256)
    assert vision.backbone_config.image_size == [256, 256]  # a given sub-config is not changed
    as_dicts = cls(**{k: v for k, v in from_trunk.to_dict().items() if k.endswith("_config")})
    assert size_fields(as_dicts) == expected_size_fields(cls, 256)


def test_image_config_of_a_resized_video_config_is_consistent():
    config = Sam2VideoConfig(image_size=384).image_config()
    assert size_fields(config) == expected_size_fields(Sam2Config, 384)


# ------------------------------------------------------------------------------------- contradictions
def contradictions(cls):
    """(kwargs, fields the message must name) for configs whose copies of the input size disagree."""
    vision_512_stale_grid = Sam2VisionConfig(backbone_config=Sam2HieraDetConfig(image_size=[512, 512]))
    cases = [
        (
            dict(image_size=512, prompt_encoder_config=prompt_encoder(cls)),
            "prompt_encoder_config.image_size=1024 but image_size=512",
        ),
        (
            dict(image_size=512, prompt_encoder_config={"image_size": 1024}),
            "prompt_encoder_config.image_size=1024 but image_size=512",
        ),
        (
            dict(image_size=512, vision_config=Sam2VisionConfig()),
            "vision_config.backbone_config.image_size=[1024, 1024] but image_size=512",
        ),
        (
            dict(image_size=512, vision_config={"backbone_config": {"image_size": 1024}}),
            "vision_config.backbone_config.image_size=[1024, 1024] but image_size=512",
        ),
        (
            dict(image_size=512, vision_config=vision_512_stale_grid),
            "vision_config.backbone_feature_sizes=[[256, 256], [128, 128], [64, 64]] but image_size=512",
        ),
        (
            dict(prompt_encoder_config={"image_size": 512}, vision_config=Sam2VisionConfig()),
            "vision_config.backbone_config.image_size=[1024, 1024] but prompt_encoder_config.image_size=512",
        ),
    ]
    if cls is Sam2VideoConfig:
        cases += [
            (
                dict(image_size=512, memory_attention_rope_feat_sizes=[64, 64]),
                "memory_attention_rope_feat_sizes=[64, 64] but image_size=512",
            ),
            (
                dict(memory_attention_rope_feat_sizes=[32, 32]),
                "memory_attention_rope_feat_sizes=[32, 32] but image_size=1024",
            ),
            (
                dict(prompt_encoder_config={"image_size": 512}, memory_attention_rope_feat_sizes=[64, 64]),
                "memory_attention_rope_feat_sizes=[64, 64] but prompt_encoder_config.image_size=512",
            ),
        ]
    return [pytest.param(cls, kwargs, message, id=f"{cls.__name__}-{i}") for i, (kwargs, message) in enumerate(cases)]


@pytest.mark.parametrize(("cls", "kwargs", "message"), [*contradictions(Sam2Config), *contradictions(Sam2VideoConfig)])
def test_a_contradicting_input_size_raises(cls, kwargs, message):
    with pytest.raises(ValueError) as error:
        cls(**kwargs)
    assert message in str(error.value)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_a_saved_mixed_config_is_rejected(cls):
    """A config.json whose top-level image_size disagrees with its parts (what `Sam2VideoConfig(image_size=512)`
    used to save) is a ValueError, not a model that mixes the two sizes."""
    mixed = {**Sam2VideoConfig().to_dict(), "image_size": 512}
    with pytest.raises(ValueError, match=r"prompt_encoder_config\.image_size=1024 but image_size=512"):
        cls.from_dict(mixed)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(image_size=500), "image_size"),
        (dict(image_size=0), "image_size"),
        (dict(image_size=1008), "image_size"),  # a multiple of 16 only: the stride-32 stage would not tile it
        (dict(prompt_encoder_config={"image_size": 1000}), "prompt_encoder_config.image_size"),
    ],
)
def test_image_size_must_be_a_multiple_of_32(cls, kwargs, field):
    with pytest.raises(ValueError, match=rf"^{field} must be a positive multiple of 32"):
        cls(**kwargs)
    with pytest.raises(ValueError, match="multiple of 32"):
        cls().with_image_size(500)


# ------------------------------------------------------------------------------------- widths
def width_errors(cls):
    """(kwargs, message) for configs whose connected widths differ."""
    cases = [
        (
            dict(mask_decoder_config={"hidden_size": 128}),
            "mask_decoder_config.hidden_size=128 but vision_config.fpn_hidden_size=256",
        ),
        (
            dict(vision_config={"fpn_hidden_size": 128}),
            "mask_decoder_config.hidden_size=256 but vision_config.fpn_hidden_size=128",
        ),
        (
            dict(prompt_encoder_config={"hidden_size": 128}),
            "prompt_encoder_config.hidden_size=128 but mask_decoder_config.hidden_size=256",
        ),
    ]
    if cls is Sam2VideoConfig:
        cases += [
            (
                dict(memory_attention_hidden_size=128),
                "memory_attention_hidden_size=128 but vision_config.fpn_hidden_size=256",
            ),
            (
                dict(memory_encoder_hidden_size=128),
                "memory_encoder_hidden_size=128 but vision_config.fpn_hidden_size=256",
            ),
            (dict(mask_downsampler_embed_dim=128), "mask_downsampler_embed_dim=128 but memory_encoder_hidden_size=256"),
            (dict(memory_fuser_embed_dim=128), "memory_fuser_embed_dim=128 but memory_encoder_hidden_size=256"),
            (
                dict(memory_encoder_output_channels=48),
                "vision_config.fpn_hidden_size=256 is not a multiple of memory_encoder_output_channels=48",
            ),
        ]
    return [pytest.param(cls, kwargs, message, id=f"{cls.__name__}-{i}") for i, (kwargs, message) in enumerate(cases)]


@pytest.mark.parametrize(("cls", "kwargs", "message"), [*width_errors(Sam2Config), *width_errors(Sam2VideoConfig)])
def test_mismatched_widths_raise(cls, kwargs, message):
    with pytest.raises(ValueError) as error:
        cls(**kwargs)
    assert message in str(error.value)


def test_consistent_non_default_widths_build():
    """Only what the model wires together is checked: one width throughout is accepted, and widths the model
    does not connect (the memory's channels, the MLP widths) stay free."""
    config = Sam2VideoConfig(
        vision_config={"fpn_hidden_size": 128},
        prompt_encoder_config={"hidden_size": 128},
        mask_decoder_config={"hidden_size": 128, "mlp_dim": 512},
        memory_attention_hidden_size=128,
        memory_encoder_hidden_size=128,
        mask_downsampler_embed_dim=128,
        memory_fuser_embed_dim=128,
        memory_encoder_output_channels=32,
        memory_attention_feed_forward_hidden_size=512,
        memory_fuser_intermediate_dim=256,
    )
    assert config.image_config().vision_config.fpn_hidden_size == 128
    round_trips(config)


# ------------------------------------------------------------------------------------- existing configs
@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("size", list(HIERA_SIZES))
@pytest.mark.parametrize("version", VERSIONS)
def test_presets_build_and_round_trip(cls, size, version):
    config = cls.from_size(size, version)
    assert size_fields(config) == expected_size_fields(cls, 1024)
    round_trips(config)
    small = cls.from_size(size, version, image_size=512)
    assert size_fields(small) == expected_size_fields(cls, 512)
    assert config.with_image_size(512).to_dict() == small.to_dict()
    round_trips(small)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_defaults_round_trip(cls):
    round_trips(cls())


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_save_and_load_are_unchanged(cls, tmp_path):
    config = cls.from_size("small", image_size=256)
    config.save_pretrained(tmp_path)
    assert cls.from_pretrained(tmp_path).to_dict() == config.to_dict()


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_from_pretrained_image_size_resizes_every_copy(cls, tmp_path):
    """transformers' `from_pretrained(folder, image_size=S)` would set the top-level field alone."""
    cls.from_size("tiny", image_size=256).save_pretrained(tmp_path)
    expected = cls.from_size("tiny", image_size=512).to_dict()
    assert cls.from_pretrained(tmp_path, image_size=512).to_dict() == expected
    config, unused = cls.from_pretrained(tmp_path, image_size=512, return_unused_kwargs=True, unknown=1)
    assert config.to_dict() == expected and unused == {"unknown": 1}


def subset_differences(given: dict, full: dict, path: str = "") -> list[str]:
    """Keys of `given` (recursively) whose value differs in `full`."""
    found = []
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(full.get(key), dict):
            found += subset_differences(value, full[key], f"{path}{key}.")
        elif full.get(key) != value:
            found.append(f"{path}{key}: {value!r} -> {full.get(key)!r}")
    return found


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_official_hub_config_loads_unchanged(cls):
    hub = json.loads(OFFICIAL_TINY_CONFIG.read_text())
    config = cls.from_dict(dict(hub))
    assert config.image_size == 1024
    saved = json.loads(config.to_json_string())
    if cls is Sam2VideoConfig:
        assert subset_differences(hub, saved) == []
    else:  # the image parts only, as transformers' image types
        for key in ("vision_config", "prompt_encoder_config", "mask_decoder_config"):
            expected = {k: v for k, v in hub[key].items() if k != "model_type"}
            assert subset_differences(expected, saved[key]) == [], key


@pytest.mark.parametrize("image_size", [1024, 512])
def test_transformers_configs_load(image_size):
    """transformers' own video config, consistent at any size, loads as both of ours."""
    s = image_size
    theirs = transformers.Sam2VideoConfig(
        vision_config=transformers.Sam2VisionConfig(
            backbone_config=transformers.Sam2HieraDetConfig(image_size=[s, s]),
            backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
        ),
        prompt_encoder_config=transformers.Sam2VideoPromptEncoderConfig(image_size=s),
        image_size=s,
        memory_attention_rope_feat_sizes=[s // 16, s // 16],
    ).to_dict()
    for cls in CLASSES:
        assert size_fields(cls.from_dict(dict(theirs))) == expected_size_fields(cls, s)
