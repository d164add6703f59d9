"""conversion/convert_meta_checkpoint.py: a Meta .pt becomes a Hub-format folder that both libraries load."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import transformers

from sam2_hf import Sam2Processor, Sam2VideoModel

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
