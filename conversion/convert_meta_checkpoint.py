"""Convert one of Meta's SAM 2 / 2.1 `.pt` checkpoints to the Hub format (config.json + model.safetensors +
processor_config.json), optionally pushing it to the Hub.

    python conversion/convert_meta_checkpoint.py sam2.1_hiera_tiny.pt sam2.1-hiera-tiny-hf [--push-to-hub user/repo]

The result loads with `sam2_hf.Sam2VideoModel.from_pretrained(folder)` and with stock
`transformers.Sam2VideoModel.from_pretrained(folder)`.
"""

from __future__ import annotations

import argparse

from sam2_hf import Sam2VideoModel, Sam2VideoProcessor


def convert(checkpoint: str, out_dir: str, size=None, version=None, push_to_hub: str | None = None):
    model = Sam2VideoModel.from_pretrained(checkpoint, size=size, version=version)
    processor = Sam2VideoProcessor.for_image_size(model.config.image_size)  # with the video part stock reads
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    if push_to_hub:
        model.push_to_hub(push_to_hub)
        processor.push_to_hub(push_to_hub)
    return model


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="Meta .pt file (e.g. sam2.1_hiera_tiny.pt)")
    parser.add_argument("out_dir", help="folder to write the Hub-format model to")
    parser.add_argument("--size", help="tiny, small, base-plus or large (default: inferred from the weights)")
    parser.add_argument("--version", help="2 or 2.1 (default: inferred from the weights)")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="also upload to this Hub repo")
    args = parser.parse_args(argv)
    model = convert(args.checkpoint, args.out_dir, args.size, args.version, args.push_to_hub)
    c = model.config
    print(f"SAM {c.version}, {sum(p.numel() for p in model.parameters()):,} parameters -> {args.out_dir}")


if __name__ == "__main__":
    main()
