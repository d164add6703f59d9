"""conversion/convert_meta_checkpoint.py: a Meta .pt becomes a Hub-format folder that both libraries load;
`sam2-hf convert --to meta` goes back: a folder becomes a .pt that Meta's builder loads."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import transformers

from sam2_hf import Sam2Model, Sam2Processor, Sam2VideoModel
from sam2_hf.cli import main as cli_main
from sam2_hf.models.checkpoint import convert_meta_key, to_meta_key
from sam2_hf.models.configuration import HIERA_SIZES, Sam2VideoConfig
from test_build_sam import meta_build_sam

from reference import META_CONFIGS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conversion"))
from convert_meta_checkpoint import main


def test_convert_meta_checkpoint_to_hub_folder(tmp_path, capsys, reference_models):
    main([str(reference_models("tiny", "2", 256).path), str(tmp_path / "out")])
    assert "SAM 2, 38,945,986 parameters" in capsys.readouterr().out
    ours = Sam2VideoModel.from_pretrained(tmp_path / "out")
    assert ours.config.version == "2"
    theirs, info = transformers.Sam2VideoModel.from_pretrained(tmp_path / "out", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    for key, value in ours.state_dict().items():
        assert torch.equal(value, theirs.state_dict()[key]), key
    assert Sam2Processor.from_pretrained(tmp_path / "out").target_size == 1024
    assert transformers.Sam2Processor.from_pretrained(tmp_path / "out").target_size == 1024
    stock_video = transformers.Sam2VideoProcessor.from_pretrained(tmp_path / "out")  # the video part is saved too
    assert stock_video.video_processor.size["height"] == 1024


@pytest.mark.parametrize("version", ["2", "2.1"])
def test_convert_to_meta_loads_in_metas_builder_with_the_original_weights(tmp_path, capsys, reference_models, version):
    """Meta's seeded model -> our folder (save_pretrained) -> `sam2-hf convert --to meta` -> Meta's `build_sam2`
    (strict loading) gives back every weight of the original, under SAM 2 and SAM 2.1 configs."""
    reference = reference_models("tiny", version, 256)
    Sam2VideoModel.from_pretrained(reference.path, image_size=256).save_pretrained(tmp_path / "ours")
    out = tmp_path / "converted.pt"
    assert cli_main(["convert", str(tmp_path / "ours"), "--to", "meta", "--out", str(out)]) == 0
    config = META_CONFIGS[("tiny", version)]
    printed = capsys.readouterr().out
    assert f"for build_sam2({config!r}, {str(out)!r})" in printed and "++model.image_size=256" in printed

    loaded = meta_build_sam().build_sam2(config, str(out), device="cpu").state_dict()
    original = reference.meta.state_dict()
    assert loaded.keys() == original.keys()
    for key, value in original.items():
        assert torch.equal(loaded[key], value), key
    assert original["sam_prompt_encoder.point_embeddings.3.weight"].abs().sum() > 0  # seeded, not zeros


def test_key_names_round_trip_for_every_size():
    """`to_meta_key` inverts `convert_meta_key` on every weight name of the four sizes (one table, both ways);
    Meta's own names are checked by the round trip through Meta's builder above."""
    for size in HIERA_SIZES:
        with torch.device("meta"):
            keys = Sam2VideoModel(Sam2VideoConfig.from_size(size, "2.1")).state_dict().keys()
        meta_keys = {to_meta_key(key) for key in keys}
        assert len(meta_keys) == len(keys) and not any(key.startswith("vision_encoder") for key in meta_keys)
        assert [key for key in keys if convert_meta_key(to_meta_key(key)) != key] == []


def test_convert_refuses_what_is_not_a_sam2_model(tmp_path, capsys, reference_models):
    out = str(tmp_path / "out.pt")
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "bert"}')
    image_only = tmp_path / "image-only"
    Sam2Model.from_pretrained(reference_models("tiny", "2.1", 256).path, image_size=256).save_pretrained(image_only)
    cases = {
        str(other): "holds a 'bert' model, not SAM 2",
        str(tmp_path): "is not a model folder: it has no config.json",
        str(tmp_path / "missing"): "no such folder or file",
        str(other / "config.json"): "is a file but not a .pt checkpoint",
        str(image_only): "lacks memory weights",
    }
    for source, message in cases.items():
        assert cli_main(["convert", source, "--to", "meta", "--out", out]) == 2
        err = capsys.readouterr().err
        assert f"sam2-hf: cannot convert {source}: " in err and message in err, err
    assert not Path(out).exists()
    assert cli_main(["convert", str(image_only), "--to", "meta", "--out", str(tmp_path / "out.safetensors")]) == 2
    assert "Meta's checkpoints are .pt or .pth files" in capsys.readouterr().err
    Path(out).write_bytes(b"")
    assert cli_main(["convert", str(image_only), "--to", "meta", "--out", out]) == 2
    assert "already exists: pass --overwrite" in capsys.readouterr().err
