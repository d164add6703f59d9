"""Checkpoint loading: Meta `.pt` files and Hub folders, size/version inference, and clear errors.

What transformers 5.x `from_pretrained` does by default with a bad folder, and what we do:
  - weights of another shape than config.json says: transformers raises a RuntimeError pointing at a
    logged report ("You set `ignore_mismatched_sizes` to `False`..."); we raise a ValueError naming keys;
  - weights missing from / unexpected by the config (e.g. SAM 2 weights under a 2.1 config, or the
    reverse): transformers only logs a warning and initializes missing weights randomly; we raise;
  - a truncated or corrupt model.safetensors: transformers raises a bare `SafetensorError`
    ("Error while deserializing header..."); we raise a ValueError saying the file is unreadable.
`strict=False` keeps transformers' lenient behaviour.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
import transformers

from sam2_hf import Sam2Model, Sam2VideoConfig, Sam2VideoModel
from sam2_hf.models.checkpoint import (
    convert_meta_state_dict,
    infer_size_and_version,
    load_meta_checkpoint,
    name_hint,
    read_checkpoint,
    read_meta_checkpoint,
)
from sam2_hf.models.configuration import normalize_version

from reference import ALL_CONFIGS, save_meta_checkpoint

IMAGE_SIZE = 256


@pytest.fixture(scope="module")
def tiny_reference(reference_models):
    """Meta's tiny SAM 2.1 with random weights, saved as a Meta .pt."""
    return reference_models("tiny", "2.1", IMAGE_SIZE)


@pytest.fixture(scope="module")
def tiny_meta(tiny_reference):
    """(state dict, path) of that model: the tests read the state dict and never change it."""
    return tiny_reference.meta.state_dict(), tiny_reference.path


@pytest.fixture(scope="module")
def tiny_folder(tiny_reference, tmp_path_factory):
    """A Hub-format folder (our save_pretrained) of the same model."""
    folder = tmp_path_factory.mktemp("hub") / "tiny"
    tiny_reference.load(Sam2VideoModel).save_pretrained(folder)
    return folder


def _copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    return target


def _write_config(folder: Path, size: str, version: str):
    Sam2VideoConfig.from_size(size, version, image_size=IMAGE_SIZE).save_pretrained(folder)


# --------------------------------------------------------------------------------- Meta .pt files
def test_meta_checkpoint_loads_video_and_image_models(tiny_meta):
    state, path = tiny_meta
    converted = convert_meta_state_dict(state)
    video, info = Sam2VideoModel.from_pretrained(path, image_size=IMAGE_SIZE, output_loading_info=True)
    assert not any(info.values())
    assert video.config.version == "2.1" and video.config.image_size == IMAGE_SIZE and not video.training
    assert video.state_dict().keys() == converted.keys()
    assert all(torch.equal(v, converted[k]) for k, v in video.state_dict().items())

    image = load_meta_checkpoint(Sam2Model, path, image_size=IMAGE_SIZE)
    assert type(image) is Sam2Model and not hasattr(image, "memory_attention")
    image_state = image.state_dict()
    dropped = set(converted) - set(image_state)
    assert image_state.keys() < converted.keys() and dropped
    assert all(
        k.startswith(
            (
                "memory_",
                "mask_downsample",
                "object_pointer_proj",
                "temporal_positional",
                "no_memory_positional",
                "no_object_pointer",
                "occlusion_spatial",
            )
        )
        for k in dropped
    )
    assert all(torch.equal(v, converted[k]) for k, v in image_state.items())
    assert len(Sam2Model.from_pretrained(str(path), image_size=IMAGE_SIZE).state_dict()) == len(image_state)


def test_meta_checkpoint_explicit_size_and_version(tiny_meta):
    _, path = tiny_meta
    for size, version in [("tiny", "2.1"), ("t", 2.1), ("tiny", "2.1")]:
        model = Sam2VideoModel.from_pretrained(path, size=size, version=version, image_size=IMAGE_SIZE)
        assert model.config.version == "2.1"
    with pytest.raises(ValueError, match=r"size='small' was requested but the checkpoint .* holds a tiny model"):
        Sam2VideoModel.from_pretrained(path, size="small", image_size=IMAGE_SIZE)
    with pytest.raises(ValueError, match=r"size='b\+' was requested .* tiny"):
        Sam2Model.from_pretrained(path, size="b+", image_size=IMAGE_SIZE)
    with pytest.raises(ValueError, match=r"version='2' was requested but the checkpoint .* is SAM 2\.1"):
        Sam2VideoModel.from_pretrained(path, version="2", image_size=IMAGE_SIZE)
    with pytest.raises(ValueError, match=r"version=2\.0 was requested"):
        Sam2VideoModel.from_pretrained(path, version=2.0, image_size=IMAGE_SIZE)
    with pytest.raises(ValueError, match="Unknown SAM 2 size 'huge'"):
        Sam2VideoModel.from_pretrained(path, size="huge", image_size=IMAGE_SIZE)
    with pytest.raises(ValueError, match="Unknown SAM 2 version '3'"):
        Sam2VideoModel.from_pretrained(path, version="3", image_size=IMAGE_SIZE)
    with pytest.raises(TypeError, match=r"Unknown argument\(s\) \['imagesize'\]"):
        Sam2VideoModel.from_pretrained(path, imagesize=IMAGE_SIZE)


def test_a_folder_is_checked_against_the_size_and_version_asked_for(tiny_reference, tmp_path):
    """`size=` / `version=` on a saved folder (as on a `.pt`): a match loads, a mismatch is named; an image model's
    folder does not record its version, so asking for one is refused rather than unchecked."""
    folder = tmp_path / "tiny"
    tiny_reference.load(Sam2VideoModel).save_pretrained(folder)
    assert Sam2VideoModel.from_pretrained(folder, size="Tiny", version=2.1).config.version == "2.1"
    model, info = Sam2VideoModel.from_pretrained(folder, size="tiny", image_size=320, output_loading_info=True)
    assert model.config.image_size == 320 and not info["missing_keys"]  # resized, with the loading report
    with pytest.raises(ValueError, match=r"size='small' was requested but '.*tiny' holds a tiny model"):
        Sam2VideoModel.from_pretrained(folder, size="small")
    with pytest.raises(ValueError, match=r"version='2' was requested but '.*tiny' is SAM 2\.1"):
        Sam2VideoModel.from_pretrained(folder, version="2")
    image_folder = tmp_path / "tiny-image"
    Sam2Model.from_pretrained(folder, size="tiny").save_pretrained(image_folder)
    with pytest.raises(ValueError, match=r"size='large' was requested but '.*tiny-image' holds a tiny model"):
        Sam2Model.from_pretrained(image_folder, size="large")
    with pytest.raises(ValueError, match="version='2.1' cannot be checked for .*: it is read as an image model"):
        Sam2Model.from_pretrained(image_folder, version="2.1")
    # a name that is no size or version is named as such before anything is read (not as a mismatch or missing weights)
    with pytest.raises(ValueError, match="Unknown SAM 2 version '3'"):
        Sam2Model.from_pretrained(image_folder, version="3")
    with pytest.raises(ValueError, match=r"Unknown SAM 2 size 'huge'; .* \(or t, s, b\+, b, base_plus, l\)"):
        Sam2VideoModel.from_pretrained(image_folder, size="huge")
    with pytest.raises(ValueError, match=r"size='b' was requested but .* holds a tiny model"):  # Ultralytics' b
        Sam2Model.from_pretrained(image_folder, size="b")


def test_normalize_version():
    assert [normalize_version(v) for v in ("2", "2.0", 2, 2.0, "2.1", 2.1, "SAM 2.1")] == ["2"] * 4 + ["2.1"] * 3
    with pytest.raises(ValueError, match="Unknown SAM 2 version"):
        normalize_version("2.2")


def test_meta_checkpoint_matching_no_size(tiny_meta, tmp_path):
    state, _ = tiny_meta
    dropped = {k: v for k, v in state.items() if not k.startswith("image_encoder.trunk.blocks.11.")}
    path = save_meta_checkpoint(dropped, tmp_path / "dropped_block.pt")
    with pytest.raises(ValueError, match=r"image encoder \(width 96, 11 blocks\) matches no SAM 2 size"):
        Sam2VideoModel.from_pretrained(path)
    # A gap in the block indices is not mistaken for a smaller model.
    gap = {k: v for k, v in state.items() if not k.startswith("image_encoder.trunk.blocks.3.")}
    path = save_meta_checkpoint(gap, tmp_path / "gap.pt")
    with pytest.raises(ValueError, match=r"11 blocks; block indices are not 0\.\.10.*matches no SAM 2 size"):
        Sam2VideoModel.from_pretrained(path)


def test_meta_checkpoint_with_missing_unexpected_or_reshaped_weights(tiny_meta, tmp_path):
    state, _ = tiny_meta
    missing = {k: v for k, v in state.items() if k != "sam_mask_decoder.iou_token.weight"}
    with pytest.raises(ValueError, match=r"1 missing \['mask_decoder\.iou_token\.weight'\], 0 unexpected"):
        Sam2VideoModel.from_pretrained(save_meta_checkpoint(missing, tmp_path / "missing.pt"))
    extra = dict(state, **{"sam_mask_decoder.extra_head.weight": torch.zeros(3)})
    with pytest.raises(ValueError, match=r"1 unexpected \['mask_decoder\.extra_head\.weight'\]"):
        Sam2Model.from_pretrained(save_meta_checkpoint(extra, tmp_path / "extra.pt"))
    reshaped = dict(state, no_mem_embed=torch.zeros(1, 1, 128))
    with pytest.raises(ValueError, match=r"1 with other shapes \['no_memory_embedding: checkpoint \(1, 1, 128\)"):
        Sam2VideoModel.from_pretrained(save_meta_checkpoint(reshaped, tmp_path / "reshaped.pt"))
    # SAM 2.1 weights minus only the occlusion embedding: inferred as SAM 2, then the 2.1-only
    # temporal projection of object pointers is reported as unexpected.
    half = {k: v for k, v in state.items() if k != "no_obj_embed_spatial"}
    with pytest.raises(ValueError, match=r"unexpected \['temporal_positional_encoding_projection_layer"):
        Sam2VideoModel.from_pretrained(save_meta_checkpoint(half, tmp_path / "half.pt"))


def test_truncated_random_and_empty_pt(tiny_meta, tmp_path):
    _, path = tiny_meta
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    random_bytes = tmp_path / "random.pt"
    random_bytes.write_bytes(random.Random(0).randbytes(4096))
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    for bad in (truncated, random_bytes, empty):
        with pytest.raises(ValueError, match="is not a readable PyTorch checkpoint"):
            Sam2VideoModel.from_pretrained(bad)
    with pytest.raises(FileNotFoundError, match="No checkpoint file at"):
        Sam2VideoModel.from_pretrained(tmp_path / "absent.pt")


def _touch(path: str):
    Path(path).touch()


class _Payload:
    """Unpickling this runs code (touches a file): weights_only loading must refuse it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (_touch, (str(self.marker),))


def test_pickled_objects_are_refused(tiny_meta, tmp_path):
    state, _ = tiny_meta
    marker = tmp_path / "code_ran"
    evil = tmp_path / "evil.pt"
    torch.save({"model": state, "extra": _Payload(marker)}, evil)
    with pytest.raises(ValueError, match=r"Refusing to load .*pickled Python object \(\S*_touch\)"):
        Sam2VideoModel.from_pretrained(evil)
    assert not marker.exists(), "pickled code was executed"
    with pytest.raises(ValueError, match="pickled Python object"):
        read_meta_checkpoint(evil)
    # Allowed containers, but not a state dict of tensors / not SAM 2.
    not_tensors = tmp_path / "ints.pt"
    torch.save({"model": {"a": 1, "b": torch.zeros(1)}}, not_tensors)
    with pytest.raises(ValueError, match=r"holds no SAM 2 state dict: 1 entries are not tensors"):
        Sam2VideoModel.from_pretrained(not_tensors)
    a_list = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], a_list)
    with pytest.raises(ValueError, match=r"holds no SAM 2 state dict"):
        Sam2VideoModel.from_pretrained(a_list)
    other = tmp_path / "other.pt"
    torch.save({"model": {"layer.weight": torch.zeros(2, 2)}}, other)
    with pytest.raises(ValueError, match="Not a SAM 2 checkpoint"):
        Sam2VideoModel.from_pretrained(other)


@pytest.mark.parametrize("size,version", ALL_CONFIGS, ids=[f"{s}-{v}" for s, v in ALL_CONFIGS])
def test_size_and_version_inference(size, version, reference_models):
    """All 8 configurations, from Meta state dicts built at a small image size, Meta and Hub key layouts."""
    reference = reference_models(size, version, image_size=IMAGE_SIZE)
    state = reference.new_meta().state_dict()
    assert infer_size_and_version(state) == (size, version)
    assert infer_size_and_version(convert_meta_state_dict(state)) == (size, version)
    if size != "tiny":
        reference.release()  # its .pt (up to 0.9 GB) is not needed here


def test_inference_does_not_depend_on_image_size(reference_models):
    shapes = {}
    for image_size in (256, 512):
        state = reference_models("small", "2", image_size=image_size).new_meta().state_dict()
        assert infer_size_and_version(state) == ("small", "2")
        shapes[image_size] = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes[256] == shapes[512]


# ------------------------------------------------------------------------------------- Hub folders
def test_folder_loads_strictly(tiny_folder):
    _model, info = Sam2VideoModel.from_pretrained(tiny_folder, output_loading_info=True)
    assert not any(info.values())
    assert isinstance(Sam2VideoModel.from_pretrained(tiny_folder), Sam2VideoModel)


def test_corrupt_safetensors(tiny_folder, tmp_path):
    folder = _copy(tiny_folder, tmp_path)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        Sam2VideoModel.from_pretrained(folder)
    weights.write_bytes(random.Random(1).randbytes(2048))
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        Sam2Model.from_pretrained(folder)
    weights.unlink()
    with pytest.raises(OSError, match="no file named model.safetensors"):
        Sam2VideoModel.from_pretrained(folder)


def test_config_of_another_size(tiny_folder, tmp_path):
    folder = _copy(tiny_folder, tmp_path)
    _write_config(folder, "small", "2.1")  # same width, more blocks, other stage boundaries
    with pytest.raises(
        ValueError,
        match=r"do not fit Sam2VideoModel \(config: Hiera width 96, 16 blocks.*missing.*"
        r"another model size or SAM version",
    ):
        Sam2VideoModel.from_pretrained(folder)
    _write_config(folder, "base-plus", "2.1")  # other widths: transformers itself raises on these
    with pytest.raises(ValueError, match=r"width 112, 24 blocks.*with other shapes"):
        Sam2Model.from_pretrained(folder)


def test_config_of_another_version(tiny_folder, tmp_path):
    folder = _copy(tiny_folder, tmp_path)
    _write_config(folder, "tiny", "2")  # 2.1 weights, SAM 2 config: 3 unexpected weights
    with pytest.raises(ValueError, match=r"0 missing \[\], 3 unexpected \['occlusion_spatial_embedding_parameter'"):
        Sam2VideoModel.from_pretrained(folder)
    # What transformers does by default: it loads without error, and the three SAM 2.1 weights are
    # dropped (its Sam2VideoModel even filters them out of the loading info: its instances carry the
    # image model's ignore patterns for memory weights; only the logged report shows them).
    hf, info = transformers.Sam2VideoModel.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]
    assert "occlusion_spatial_embedding_parameter" not in hf.state_dict()
    # `strict=False` gives transformers' behaviour back.
    _, info = Sam2VideoModel.from_pretrained(folder, strict=False, output_loading_info=True)
    assert len(info["unexpected_keys"]) == 3


def test_sam2_weights_with_sam21_config(tmp_path):
    """Weights missing from the checkpoint: transformers would fill them randomly; we raise."""
    torch.manual_seed(0)
    folder = tmp_path / "sam2"
    Sam2VideoModel(Sam2VideoConfig.from_size("tiny", "2", image_size=IMAGE_SIZE)).save_pretrained(folder)
    _write_config(folder, "tiny", "2.1")
    _, info = transformers.Sam2VideoModel.from_pretrained(folder, output_loading_info=True)
    assert len(info["missing_keys"]) == 3  # transformers: random weights, a warning, no error
    with pytest.raises(ValueError, match=r"3 missing .*lacks memory weights"):
        Sam2VideoModel.from_pretrained(folder)
    _model, info = Sam2VideoModel.from_pretrained(folder, strict=False, output_loading_info=True)
    assert len(info["missing_keys"]) == 3


def test_image_only_save_is_not_a_video_checkpoint(tiny_meta, tmp_path):
    image = Sam2Model.from_pretrained(tiny_meta[1], image_size=IMAGE_SIZE)
    image.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "sam2" and "num_maskmem" not in saved  # transformers' image format
    _reloaded, info = Sam2Model.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info.values())
    with pytest.raises(ValueError, match=r"missing .*lacks memory weights: an image-only \(Sam2Model\) save"):
        Sam2VideoModel.from_pretrained(tmp_path)


def test_invalid_config_json(tiny_folder, tmp_path):
    folder = _copy(tiny_folder, tmp_path)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(OSError, match="not a valid JSON file"):
        Sam2VideoModel.from_pretrained(folder)


@pytest.mark.parametrize("relative", ["./no-such-model/", "models/no-such/model", "no-such-model/"])
def test_a_path_with_nothing_there_is_named(tmp_path, relative, monkeypatch):
    """A name that can only be a local path says it does not exist (huggingface_hub would answer about repo ids);
    the predictors load through the same method."""
    from sam2_hf import Sam2ImagePredictor

    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=f"{relative} does not exist. Give a Hub model id"):
        Sam2Model.from_pretrained(relative)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Sam2ImagePredictor.from_pretrained(tmp_path / "nothing" / "model")


# ------------------------------------------------------------------------ release file names (PT_FORMATS)
@pytest.mark.parametrize(
    "name,expected",
    [
        ("sam2_b.pt", ("Ultralytics", "base-plus", "2")),
        ("sam2.1_t.pt", ("Ultralytics", "tiny", "2.1")),
        ("SAM2.1_L.pt", ("Ultralytics", "large", "2.1")),
        ("sam2_hiera_b+.pt", ("Meta", "base-plus", "2")),
        ("sam2.1_hiera_base_plus.pt", ("Meta", "base-plus", "2.1")),
        ("sam2.1_hiera_small.pt", ("Meta", "small", "2.1")),
        ("my_model.pt", None),
        ("sam2_x.pt", None),
    ],
)
def test_release_file_name_hints(name, expected):
    hint = name_hint(Path("some/folder") / name)
    assert (hint if hint is None else (hint[0].name, *hint[1:])) == expected


def test_name_is_only_a_hint(tiny_meta, tmp_path, monkeypatch):
    """The weights decide; a name that says otherwise warns, a missing release file says what it is (its Hub repo
    unreachable: huggingface_hub faked offline; tests/test_ultralytics_api.py fetches one)."""
    import huggingface_hub

    def offline(repo_id, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("no connection and nothing cached")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    state, _ = tiny_meta
    misnamed = tmp_path / "sam2_s.pt"
    save_meta_checkpoint(state, misnamed)
    with pytest.warns(UserWarning, match="release file of SAM 2 small, but its weights are SAM 2.1 tiny"):
        assert read_checkpoint(misnamed)[1:] == ("tiny", "2.1")
    with pytest.raises(FileNotFoundError, match=r"sam2_b\.pt' is the Ultralytics release file of SAM 2 base-plus"):
        Sam2Model.from_pretrained(tmp_path / "sam2_b.pt")
    not_sam = tmp_path / "sam2.1_l.pt"
    torch.save({"layer.weight": torch.zeros(2, 2)}, not_sam)
    with pytest.raises(ValueError, match="release file of SAM 2.1 large, but its weights do not say.*Not a SAM 2"):
        Sam2Model.from_pretrained(not_sam)


def test_bare_state_dict_loads(tiny_meta, tmp_path):
    """Ultralytics' loader also reads a state dict saved without the {"model": ...} wrapper; so do we."""
    state, path = tiny_meta
    bare = tmp_path / "bare.pt"
    torch.save(state, bare)
    expected = Sam2VideoModel.from_pretrained(path, image_size=IMAGE_SIZE).state_dict()
    got = Sam2VideoModel.from_pretrained(bare, image_size=IMAGE_SIZE).state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in got.items()) and got.keys() == expected.keys()
