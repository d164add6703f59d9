"""`sam2-hf`: the command line. One table of subcommands (`SUBCOMMANDS`), one module each in this package
(`common.py`: what they share); `python -m sam2_hf.cli` runs it too. A subcommand's module is imported only
when the parser is built and keeps its heavy imports inside `run`.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys

# One row per subcommand: name -> (module defining it, one-line help). The module defines
# `add_arguments(parser)` and `run(args) -> int` (exit status); it is imported when the parser is built,
# so it keeps its own heavy imports inside `run`.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "track": ("sam2_hf.cli.track", "track objects through a video and write their masks"),
    "track-many": ("sam2_hf.cli.track_many", "track the videos of a manifest on Ray actors (resumable)"),
    "annotate": ("sam2_hf.cli.annotate", "label images with SAM 2 masks from detector boxes (COCO or YOLO-seg)"),
    "segment": ("sam2_hf.cli.segment", "masks for an image, image folder or video: prompted, or everything"),
    "eval": ("sam2_hf.cli.eval", "benchmarks: VOS J&F, click mIoU on images, interactive video (PVS)"),
    "finetune": ("sam2_hf.cli.finetune", "fine-tune on your images and videos, evaluate, push to the Hub"),
    "convert": ("sam2_hf.cli.convert", "write a model in Meta's .pt format (sam2.build_sam.build_sam2 loads it)"),
    "export": ("sam2_hf.cli.export", "write a model's graphs for ONNX Runtime, OpenVINO or torch.export"),
}
_ENTRY_POINTS: dict[str, tuple] = {}


def _entry_points(module_name: str):
    if module_name not in _ENTRY_POINTS:
        module = importlib.import_module(module_name)
        _ENTRY_POINTS[module_name] = (module.add_arguments, module.run)
    return _ENTRY_POINTS[module_name]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sam2-hf", description="SAM 2 for images and videos.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        add_arguments, _ = _entry_points(module_name)
        # No abbreviations: with every TrainingArguments field as an option, a prefix would silently pick one.
        add_arguments(sub.add_parser(name, help=help_text, description=help_text, allow_abbrev=False))
    return parser


def main(argv=None) -> int:
    """Runs one subcommand; its exit status (0 done, 2 bad input, the message on stderr saying which)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _refuse_unknown(parser, args.command, unknown)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the words given, e.g. to record or repeat the command
    _, run = _entry_points(SUBCOMMANDS[args.command][0])
    return run(args)


def _refuse_unknown(parser: argparse.ArgumentParser, command: str, unknown: list[str]) -> None:
    """Exit 2 naming the unknown options, the closest known ones and the subcommand's --help (its usage can
    list every TrainingArguments field, too long to print)."""
    subparser = next(a for a in parser._subparsers._group_actions if a.dest == "command").choices[command]
    known = [o for action in subparser._actions for o in action.option_strings]
    close = {o: difflib.get_close_matches(o, known, n=1) for o in unknown if o.startswith("-")}
    hints = "".join(f"; {o}: did you mean {m[0]}?" for o, m in close.items() if m)
    subparser.exit(2, f"{subparser.prog}: unrecognized arguments: {' '.join(unknown)}{hints} "
                      f"(`{subparser.prog} --help` lists the options)\n")  # fmt: skip
