"""`sam2-hf eval`: the paper's benchmarks on any checkpoint.

    sam2-hf eval vos --model facebook/sam2.1-hiera-large --base-video-dir DAVIS/JPEGImages/480p \\
        --input-mask-dir DAVIS/Annotations/480p --video-list-file DAVIS/ImageSets/2017/val.txt --output-mask-dir out/
    sam2-hf eval score --gt-dir DAVIS/Annotations/480p --pred-dir out/ --protocol davis
    sam2-hf eval clicks --model facebook/sam2.1-hiera-large --coco-json instances.json --image-dir images/
    sam2-hf eval pvs --model facebook/sam2.1-hiera-large --base-video-dir JPEGImages --input-mask-dir Annotations

`vos` runs Meta's `tools/vos_inference.py` (same flags, dashed) and then scores the predictions (unless
`--protocol none`); `score` scores an existing prediction folder; `clicks` gives 1..N-click mIoU on a COCO
dataset; `pvs` the interactive video protocol's J&F per round. Exit status: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..models.configuration import DEFAULT_MODEL


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL, help="Hub id, saved folder or Meta .pt")
    parser.add_argument("--device", default=None, help="e.g. cuda, cpu (default: the model's)")
    parser.add_argument("--image-size", type=int, default=None, help="model input size for a Meta .pt (default 1024)")


def _video_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-video-dir", required=True, help="folder of <seq>/ frame folders (JPEGImages)")
    parser.add_argument("--input-mask-dir", required=True, help="folder of <seq>/ mask folders (Annotations)")
    parser.add_argument("--video-list-file", default=None, help="text file of sequence names (default: all)")
    parser.add_argument("--per-obj-png-file", action="store_true", help="per-object PNG masks (SA-V layout)")


def _score_arguments(parser: argparse.ArgumentParser, protocols) -> None:
    parser.add_argument("--protocol", choices=protocols, default="davis", help="scoring conventions (see README)")
    parser.add_argument("--keep-first-last", action="store_true", help="score the first and last frames too")
    parser.add_argument("--subset", default="val", help="name in the DAVIS CSV file names")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    modes = parser.add_subparsers(dest="mode", required=True)
    vos = modes.add_parser("vos", help="semi-supervised VOS inference (Meta's tools/vos_inference.py), then J&F")
    _model_arguments(vos)
    _video_arguments(vos)
    vos.add_argument("--output-mask-dir", required=True, help="where <seq>/ prediction folders are written")
    vos.add_argument("--score-thresh", type=float, default=0.0, help="logit threshold of the output masks")
    vos.add_argument("--use-all-masks", action="store_true", help="prompt with every annotated frame's masks")
    vos.add_argument(
        "--track-object-appearing-later-in-video", action="store_true", help="each object from its first mask"
    )
    vos.add_argument("--overwrite", action="store_true", help="redo sequences already in --output-mask-dir")
    vos.add_argument("--ray", action="store_true", help="run the sequences on Ray actors (sam2-hf[batch])")
    vos.add_argument("--actors", type=int, default=1, help="with --ray: models run at once (one per actor)")
    _score_arguments(vos, ("davis", "sav", "none"))

    score = modes.add_parser("score", help="J&F of a prediction folder against a ground-truth folder")
    score.add_argument("--gt-dir", required=True, help="ground truth: <seq>/ palette or per-object PNG folders")
    score.add_argument("--pred-dir", required=True, help="predictions in the same layout")
    score.add_argument("--video-list-file", default=None, help="text file of sequence names (default: all)")
    score.add_argument("--out", default=None, help="folder for the CSV files (default: --pred-dir)")
    _score_arguments(score, ("davis", "sav"))

    clicks = modes.add_parser("clicks", help="1..N-click mIoU with simulated clicks on a COCO-format dataset")
    _model_arguments(clicks)
    clicks.add_argument("--coco-json", required=True, help="COCO instances annotation file")
    clicks.add_argument("--image-dir", required=True, help="folder of the images' file_name")
    clicks.add_argument("--num-clicks", type=int, default=5)
    clicks.add_argument("--max-images", type=int, default=None, help="only the first N images by id")
    clicks.add_argument("--min-area", type=float, default=0, help="leave out smaller instances (pixels)")
    clicks.add_argument("--out", default=None, help="JSON file for the results")

    pvs = modes.add_parser("pvs", help="interactive video segmentation: first-frame clicks, then corrections")
    _model_arguments(pvs)
    _video_arguments(pvs)
    pvs.add_argument("--num-clicks", type=int, default=3, help="clicks on each object's first frame")
    pvs.add_argument("--num-rounds", type=int, default=3, help="correction rounds (one click per object)")
    pvs.add_argument("--out", default=None, help="JSON file for the results")


def run(args: argparse.Namespace) -> int:
    from .common import fail

    try:
        return {"vos": _run_vos, "score": _run_score, "clicks": _run_clicks, "pvs": _run_pvs}[args.mode](args)
    except (ValueError, FileNotFoundError, FileExistsError, ImportError) as e:  # ImportError: --ray without ray
        return fail(str(e))


def _load(cls, args, **options):
    kwargs = {"image_size": args.image_size} if args.image_size else {}
    try:
        return cls.from_pretrained(args.model, device=args.device, **kwargs, **options)
    except OSError as e:
        raise ValueError(
            f"could not load the model {args.model!r} ({e}). If you are offline, point --model at a local "
            "folder saved with save_pretrained or at a Meta .pt file."
        ) from e


def _sequences(args):
    from ..evaluation.layout import list_sequences

    names = list_sequences(args.base_video_dir, args.video_list_file)
    if not names:
        raise ValueError(f"no sequences in {args.video_list_file or args.base_video_dir}")
    return names


def _report(scores, protocol, out_dir, subset) -> None:
    from ..evaluation.scoring import format_summary, write_results

    print(format_summary(scores, protocol), end="")
    for path in write_results(scores, out_dir, protocol, subset):
        print(f"results: {path}")


def _run_vos(args) -> int:
    from ..evaluation.scoring import score_folder
    from ..evaluation.vos import run_vos_inference, vos_predictor_options
    from ..predictors.video_predictor import Sam2VideoPredictor

    names = _sequences(args)
    options = dict(
        score_thresh=args.score_thresh,
        use_all_masks=args.use_all_masks,
        per_obj_png_file=args.per_obj_png_file,
        track_object_appearing_later_in_video=args.track_object_appearing_later_in_video,
    )
    if args.ray:
        from ..batch.job import run_vos_on_ray

        model_kwargs = vos_predictor_options(args.per_obj_png_file) | {"device": args.device}
        model_kwargs |= {"image_size": args.image_size} if args.image_size else {}
        run_vos_on_ray(args.model, args.base_video_dir, args.input_mask_dir, args.output_mask_dir, names,
                       args.actors, model_kwargs, args.overwrite, **options)  # fmt: skip
    else:
        predictor = _load(Sam2VideoPredictor, args, **vos_predictor_options(args.per_obj_png_file))
        run_vos_inference(predictor, args.base_video_dir, args.input_mask_dir, args.output_mask_dir, names,
                          overwrite=args.overwrite, **options)  # fmt: skip
    print(f"predictions: {args.output_mask_dir}")
    if args.protocol != "none":
        scores = score_folder(args.input_mask_dir, args.output_mask_dir, args.protocol, names, not args.keep_first_last)
        _report(scores, args.protocol, args.output_mask_dir, args.subset)
    return 0


def _run_score(args) -> int:
    from ..evaluation.layout import list_sequences
    from ..evaluation.scoring import score_folder

    names = list_sequences(args.gt_dir, args.video_list_file)
    scores = score_folder(args.gt_dir, args.pred_dir, args.protocol, names, not args.keep_first_last)
    _report(scores, args.protocol, args.out or args.pred_dir, args.subset)
    return 0


def _write_json(result, path) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=2))
        print(f"results: {path}")


def _run_clicks(args) -> int:
    from ..evaluation.clicks import evaluate_coco
    from ..predictors.image_predictor import Sam2ImagePredictor

    predictor = _load(Sam2ImagePredictor, args)
    result = evaluate_coco(predictor, args.coco_json, args.image_dir, args.num_clicks, args.max_images, args.min_area)
    print(f"{result['num_masks']} masks on {result['num_images']} images")
    for k, miou in enumerate(result["miou"], start=1):
        print(f"{k}-click mIoU: {100 * miou:.1f}")
    _write_json(result, args.out)
    return 0


def _run_pvs(args) -> int:
    from ..evaluation.layout import check_vos_folders, read_video_masks
    from ..evaluation.pvs import evaluate_pvs
    from ..media.frames import ImageFolderFrames
    from ..predictors.video_predictor import Sam2VideoPredictor

    sequences = _sequences(args)
    check_vos_folders(args.base_video_dir, args.input_mask_dir, sequences, args.per_obj_png_file)  # vos: in its run
    predictor = _load(Sam2VideoPredictor, args, add_all_frames_to_correct_as_cond=True)
    results = {}
    for name in sequences:
        frames = ImageFolderFrames(Path(args.base_video_dir) / name)
        names = [path.stem for path in frames.files]
        sequence_dir = Path(args.input_mask_dir) / name
        gt = read_video_masks(sequence_dir, names, args.per_obj_png_file, frames.height, frames.width)
        results[name] = evaluate_pvs(predictor, frames, gt, args.num_clicks, args.num_rounds)
    rounds = range(args.num_rounds + 1)
    means = [sum(r[i]["J&F"] for r in results.values()) / len(results) for i in rounds]
    for i, jf in zip(rounds, means):
        print(f"round {i}: J&F {100 * jf:.1f}")
    _write_json({"sequences": results, "mean_jf_per_round": means}, args.out)
    return 0
