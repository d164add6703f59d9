"""`sam2-hf convert`: a SAM 2 model in Meta's `.pt` format, for Meta's own code (its builders, training and tools).

    sam2-hf convert sam2-my-objects/ --to meta --out sam2-my-objects.pt

then, with Meta's `sam2`: `build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", "sam2-my-objects.pt")` (the command
prints the config to use). The other way, Meta `.pt` -> folder, is `conversion/convert_meta_checkpoint.py`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

TARGETS = ("meta",)
SAM2_MODEL_TYPES = ("sam2_video", "sam2")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `sam2-hf convert`."""
    parser.add_argument(
        "model", help="a SAM 2 folder saved with save_pretrained (e.g. by sam2-hf finetune), a Hub id, or a .pt"
    )
    parser.add_argument(
        "--to", required=True, choices=TARGETS, help="meta: {'model': state_dict} with SAM2Base's key names"
    )
    parser.add_argument("--out", required=True, help="the .pt file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 written, 2 nothing written (not a SAM 2 model, or a bad --out; the message says which)."""
    from ..models.checkpoint import META_CHECKPOINT_SUFFIXES, write_meta_checkpoint
    from ..models.modeling import Sam2VideoModel
    from .common import fail

    out = Path(args.out)
    if out.suffix.lower() not in META_CHECKPOINT_SUFFIXES:
        return fail(f"--out {args.out}: Meta's checkpoints are {' or '.join(META_CHECKPOINT_SUFFIXES)} files")
    if out.exists() and not args.overwrite:
        return fail(f"--out {args.out} already exists: pass --overwrite or another --out")
    try:
        check_sam2_folder(args.model)
        model = Sam2VideoModel.from_pretrained(args.model)
        config_name = write_meta_checkpoint(model, out)
    except (OSError, ValueError) as e:
        return fail(f"cannot convert {args.model}: {e}")
    print(f"{out}: SAM {model.config.version}, for build_sam2({config_name!r}, {str(out)!r})")
    if model.config.image_size != 1024:
        size = model.config.image_size
        feat = size // 16
        overrides = [f"++model.image_size={size}"] + [
            f"++model.memory_attention.layer.{part}.feat_sizes=[{feat},{feat}]"
            for part in ("self_attention", "cross_attention")
        ]
        print(f"The model works at {size} px; give Meta's builder hydra_overrides_extra={overrides}")
    return 0


def check_sam2_folder(source: str) -> None:
    """Raise when the local `source` is no SAM 2 model: FileNotFoundError for a path that does not exist (a Hub id,
    `namespace/name`, is left to `from_pretrained`), ValueError for a file that is not a `.pt` and for a folder
    without config.json or whose config.json names another model type."""
    from ..models.checkpoint import META_CHECKPOINT_SUFFIXES
    from ..processing.validation import read_json_file

    path = Path(source)
    if not path.exists():
        if source.startswith((".", "/", "~")) or source.count("/") > 1:
            raise FileNotFoundError(f"no such folder or file: {source}")
        return
    if path.is_file():
        if path.suffix.lower() not in META_CHECKPOINT_SUFFIXES:
            raise ValueError(f"{source} is a file but not a .pt checkpoint: give the model's folder or a .pt")
        return
    config = path / "config.json"
    if not config.is_file():
        raise ValueError(f"{source} is not a model folder: it has no config.json (save_pretrained writes one)")
    model_type = read_json_file(config).get("model_type")
    if model_type not in SAM2_MODEL_TYPES:
        raise ValueError(
            f"{source} holds a {model_type!r} model, not SAM 2 (config.json model_type {' or '.join(SAM2_MODEL_TYPES)})"
        )
