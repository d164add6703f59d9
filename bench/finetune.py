"""`python -m bench.finetune`: fine-tuning learns (validation metrics before / after), and its seconds per
training step beside Meta's trainer (`training/train.py` of the sam2 1.1.0 wheel) on the same data.

    python -m bench.finetune --threads 1 --max-steps 600 --eval-steps 150 --logging-steps 10 \\
        --learning-rate 1e-3 --timed-steps 12 --warmup-steps 3 --out bench/results    # the committed run (~27 min)
    python -m bench.finetune --sections timing --threads 1       # only the step-time comparison

On a shared 2-core machine use `--threads 1`: two torch threads stall whenever another process takes a core.

Data (generated, `sam2_hf.training.data.make_synthetic_dataset`): striped elliptic targets among checkered
look-alikes (only targets annotated), as images and as short DAVIS-layout clips; validation from other seeds.
Starting model: hiera-tiny (SAM 2.1) with seeded random weights (tests/reference.py, the `.pt` of
`bench.common.prepare_weights`): no real weights can be downloaded here, so the model cannot segment at first.

Sections (timing runs first; finetune.json is written after each):
- learn: `Sam2Trainer` on images + clips (prompts, loss and schedule of the "fast" recipe, learning rate
  `--learning-rate`), validation mIoU@1 / mIoU@5 (images) and J&F (clips) before, every `--eval-steps` and
  after; the loss terms every `--logging-steps`.
- timing: on the training clips only, with Meta's MOSE fine-tuning settings (prompt probabilities, losses,
  optimizer, augmentations) at this size, batch 1, fp32, no data-loader workers: `--timed-steps` steps of
  `Sam2Trainer` and of Meta's `training.trainer.Trainer`, launched through `training.train.main` in a
  subprocess (config: bench/meta_finetune_tiny.yaml, filled in per run), after `--warmup-steps` untimed ones.
  A step is the wall time from one optimizer step's end to the next one's (data loading included), as
  Meta's "Batch Time" meter measures it.

Writes finetune.json (raw), finetune.md (tables) and finetune.png (loss and validation curves) to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import REPO, cpu_ticks, machine_description, other_cores, prepare_weights
from .provenance import RunProvenance, provenance_lines
from .timing import summary

SECTIONS = ("learn", "timing")
META_CONFIG = REPO / "bench" / "meta_finetune_tiny.yaml"
META_BATCH_TIME = re.compile(
    r"Train Epoch: \[\d+\]\[\s*(\d+)/\d+\] \| Batch Time: ([\d.]+) \([\d.]+\) \| Data Time: ([\d.]+)"
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m bench.finetune",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    p.add_argument("--image-size", type=int, default=256, help="model input size (multiple of 32)")
    p.add_argument("--data-size", type=int, default=192, help="side of the generated images and frames, pixels")
    p.add_argument("--train-images", type=int, default=64)
    p.add_argument("--train-clips", type=int, default=16)
    p.add_argument("--val-images", type=int, default=16)
    p.add_argument("--val-clips", type=int, default=6)
    p.add_argument("--num-frames", type=int, default=4, help="frames per clip (training and validation)")
    p.add_argument("--max-num-objects", type=int, default=3, help="objects per training clip at most")
    p.add_argument("--max-steps", type=int, default=600, help="learn: training steps (batch 1)")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="learn: peak AdamW learning rate")
    p.add_argument("--warmup-ratio", type=float, default=0.05, help="learn: linear warmup, fraction of the steps")
    p.add_argument("--eval-steps", type=int, default=150, help="learn: validation every N steps")
    p.add_argument("--logging-steps", type=int, default=10, help="learn: loss logged every N steps")
    p.add_argument("--timed-steps", type=int, default=12, help="timing: timed steps per trainer")
    p.add_argument("--warmup-steps", type=int, default=3, help="timing: untimed steps before the timed ones")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", default="/tmp/sam2_hf_bench", help="cached weights; data and runs in finetune/")
    p.add_argument("--out", default=str(REPO / "bench" / "results"))
    p.add_argument("--meta-worker", metavar="CONFIG", help=argparse.SUPPRESS)  # internal: run Meta's trainer
    return p.parse_args(argv)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ------------------------------------------------------------------------------ data
def make_data(root: Path, args) -> dict[str, Path]:
    """The four generated datasets (train / validation x images / DAVIS-layout clips), each its own seeds."""
    from sam2_hf.training.data import make_synthetic_dataset

    size = dict(height=args.data_size, width=args.data_size, num_targets=2, num_distractors=3)
    parts = {
        "train_images": ("images", args.train_images, args.seed),
        "train_clips": ("davis", args.train_clips, args.seed + 10_000),
        "val_images": ("images", args.val_images, args.seed + 20_000),
        "val_clips": ("davis", args.val_clips, args.seed + 30_000),
    }
    return {
        name: make_synthetic_dataset(root / name, kind=kind, num_items=n, num_frames=args.num_frames, seed=seed, **size)
        for name, (kind, n, seed) in parts.items()
    }


def clip_dataset(folders: list[Path], image_size: int, args, augment: bool):
    """One `ClipDataset` over the items of several folders (images are 1-frame clips)."""
    from sam2_hf.training.data import ClipDataset, build_dataset

    parts = [build_dataset(f, image_size, args.num_frames, args.max_num_objects, augment, args.seed) for f in folders]
    videos = [video for part in parts for video in part.videos]
    return ClipDataset(videos, parts[0].transforms, args.num_frames, args.max_num_objects, seed=args.seed)


def step_clock():
    """A `TrainerCallback` that records the time at the end of every optimizer step (`.ends`, seconds)."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

    return StepClock()


def step_seconds(ends: list[float], skip_after: set[int] = frozenset()) -> list[float]:
    """Seconds of each step from consecutive step ends; steps that follow a step in `skip_after` (1-based:
    an evaluation ran in between) are left out."""
    return [b - a for step, (a, b) in enumerate(zip(ends, ends[1:])) if step not in skip_after]


# ------------------------------------------------------------------------------ learning run
def run_learning(weights, data: dict[str, Path], args) -> dict:
    """Fine-tune the random model on images + clips; validation before, during and after."""
    from sam2_hf.training.evaluate import evaluate_model
    from sam2_hf.training.model import Sam2VideoModelForTraining
    from sam2_hf.training.recipe import FinetuneRecipe
    from sam2_hf.training.trainer import Sam2Trainer

    size = args.image_size
    train = clip_dataset([data["train_images"], data["train_clips"]], size, args, augment=True)
    val = clip_dataset([data["val_images"], data["val_clips"]], size, args, augment=False)
    model = Sam2VideoModelForTraining.from_pretrained(weights.folder, image_size=size)
    recipe = FinetuneRecipe.named(
        "fast", learning_rate=args.learning_rate, num_frames=args.num_frames, max_num_objects=args.max_num_objects
    )
    training_args = recipe.training_arguments(
        str(Path(args.workdir) / "finetune" / "learn_run"),
        max_steps=args.max_steps,
        seed=args.seed,
        use_cpu=True,
        save_strategy="no",
        logging_steps=args.logging_steps,
        eval_strategy="steps",
        eval_steps=args.eval_steps,
        warmup_steps=round(args.warmup_ratio * args.max_steps),
        disable_tqdm=True,
    )
    log("validation before training")
    start = time.perf_counter()
    before = evaluate_model(model, val.videos)
    eval_seconds = time.perf_counter() - start
    log(f"before: {fmt_metrics(before)} ({eval_seconds:.0f} s)")
    clock = step_clock()
    trainer = Sam2Trainer(model, training_args, train_dataset=train, eval_dataset=val, recipe=recipe, callbacks=[clock])
    ticks = cpu_ticks()
    start = time.perf_counter()
    trainer.train()
    train_wall = time.perf_counter() - start
    history = trainer.state.log_history
    evaluations = [{"step": 0, **before}] + [
        {"step": h["step"], **{k.removeprefix("eval_"): v for k, v in h.items() if k.startswith("eval_")}}
        for h in history
        if any(k.startswith("eval_") for k in h)
    ]
    if evaluations[-1]["step"] != args.max_steps:
        evaluations.append({"step": args.max_steps, **strip_eval(trainer.evaluate())})
    after = {k: v for k, v in evaluations[-1].items() if k != "step"}
    log(f"after: {fmt_metrics(after)}")
    eval_steps = set(range(args.eval_steps, args.max_steps + 1, args.eval_steps))
    return {
        "train_items": {
            "images": sum(v.is_image for v in train.videos),
            "clips": sum(not v.is_image for v in train.videos),
        },
        "val_items": {"images": sum(v.is_image for v in val.videos), "clips": sum(not v.is_image for v in val.videos)},
        "recipe": {
            "name": "fast",
            **{
                k: getattr(recipe, k)
                for k in (
                    "learning_rate",
                    "vision_lr_scale",
                    "layer_decay",
                    "weight_decay",
                    "max_grad_norm",
                    "min_lr_rate",
                    "num_frames",
                    "max_num_objects",
                )
            },
        },
        "warmup_steps": training_args.warmup_steps,
        "before": before,
        "after": after,
        "evaluations": evaluations,
        "loss": [
            {k: h[k] for k in h if k == "step" or k.startswith("loss") or k == "learning_rate"}
            for h in history
            if "loss" in h
        ],
        "step_seconds": summary(step_seconds(clock.ends, eval_steps)),
        "train_wall_s": train_wall,
        "eval_wall_s_before": eval_seconds,
        "other_cores": other_cores(ticks, cpu_ticks()),
    }


def strip_eval(metrics: dict) -> dict:
    return {k.removeprefix("eval_"): v for k, v in metrics.items() if k.startswith("eval_")}


def fmt_metrics(metrics: dict) -> str:
    return ", ".join(f"{k} {metrics[k]:.3f}" for k in ("mIoU@1", "mIoU@5", "J&F") if k in metrics)


# ------------------------------------------------------------------------------ step time beside Meta's trainer
def timing_dataset_args(args) -> dict:
    """The settings both trainers are timed with (Meta's MOSE fine-tuning values at this size)."""
    return {
        "image_size": args.image_size,
        "num_frames": args.num_frames,
        "max_num_objects": args.max_num_objects,
        "batch_size": 1,
        "dtype": "float32",
        "data_loader_workers": 0,
        "steps": args.warmup_steps + args.timed_steps,
        "timed_steps": args.timed_steps,
    }


def time_ours(weights, clips: Path, args) -> tuple[list[float], float]:
    """Seconds of each step of `Sam2Trainer` with `FinetuneRecipe.meta()` on the DAVIS-layout clips, and the
    mean seconds of preparing one batch (measured after the run, outside the steps)."""
    from sam2_hf.training.data import build_dataset, collate_clips
    from sam2_hf.training.model import Sam2VideoModelForTraining
    from sam2_hf.training.recipe import FinetuneRecipe
    from sam2_hf.training.trainer import Sam2Trainer

    recipe = FinetuneRecipe.named("meta", num_frames=args.num_frames, max_num_objects=args.max_num_objects)
    train = build_dataset(clips, args.image_size, args.num_frames, args.max_num_objects, augment=True, seed=args.seed)
    steps = args.warmup_steps + args.timed_steps
    training_args = recipe.training_arguments(
        str(Path(args.workdir) / "finetune" / "timing_ours"),
        max_steps=steps,
        seed=args.seed,
        use_cpu=True,
        save_strategy="no",
        logging_steps=steps,
        disable_tqdm=True,
    )
    model = Sam2VideoModelForTraining.from_pretrained(weights.folder, image_size=args.image_size)
    clock = step_clock()
    Sam2Trainer(model, training_args, train_dataset=train, recipe=recipe, callbacks=[clock]).train()
    start = time.perf_counter()
    for i in range(steps):  # reading, sampling, augmenting and collating one clip, as each step does
        collate_clips([train[i % len(train)]])
    return step_seconds(clock.ends)[args.warmup_steps :], (time.perf_counter() - start) / steps


def meta_config(weights, clips: Path, run_dir: Path, args) -> Path:
    """bench/meta_finetune_tiny.yaml with this run's values, written to run_dir/config/ (run_dir emptied
    first); its path. The clip list holds as many videos as there are steps (one epoch of batch 1 = the timed
    run)."""
    from omegaconf import OmegaConf

    steps = args.warmup_steps + args.timed_steps
    videos = sorted(p.name for p in (clips / "JPEGImages").iterdir())
    if len(videos) < steps:
        raise ValueError(f"--train-clips {len(videos)} < --warmup-steps + --timed-steps ({steps})")
    shutil.rmtree(run_dir, ignore_errors=True)  # a checkpoint left there would be resumed (nothing to train)
    run_dir.mkdir(parents=True)
    (run_dir / "videos.txt").write_text("\n".join(videos[:steps]) + "\n")
    cfg = OmegaConf.load(META_CONFIG)
    cfg.scratch.update(
        resolution=args.image_size,
        feat_size=args.image_size // 16,
        num_frames=args.num_frames,
        max_num_objects=args.max_num_objects,
        checkpoint=str(weights.pt),
    )
    cfg.dataset.update(
        img_folder=str(clips / "JPEGImages"),
        gt_folder=str(clips / "Annotations"),
        file_list_txt=str(run_dir / "videos.txt"),
    )
    cfg.launcher.experiment_log_dir = str(run_dir / "logs")
    path = run_dir / "config" / "meta_finetune_tiny.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text("# @package _global_\n" + OmegaConf.to_yaml(cfg))
    return path


def time_meta(weights, clips: Path, args) -> tuple[list[float], float, str]:
    """Seconds of each step of Meta's trainer (`training.train.main` in a subprocess, `meta_worker`), read
    from its per-step progress lines ("Batch Time"), the mean of their "Data Time" (waiting for the batch),
    and the tail of its output."""
    run_dir = Path(args.workdir) / "finetune" / "timing_meta"
    config = meta_config(weights, clips, run_dir, args)
    command = [sys.executable, "-m", "bench.finetune", "--meta-worker", str(config)]
    command += ["--threads", str(args.threads)] if args.threads else []
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"Meta's trainer failed (exit {done.returncode}):\n{output[-4000:]}")
    steps = {int(step): (float(batch), float(data)) for step, batch, data in META_BATCH_TIME.findall(output)}
    timed = [steps[k] for k in sorted(steps)][args.warmup_steps :]
    if not timed:
        raise RuntimeError(f"Meta's trainer ran {len(steps)} steps, none timed; its output ends:\n{output[-4000:]}")
    return [batch for batch, _ in timed], statistics.mean(data for _, data in timed), output[-2000:]


def meta_worker(config: Path, threads: int | None) -> None:
    """Run Meta's `training/train.py` `main` on `config`, unchanged, in this (fresh) process: one local
    process (`--use-cluster 0 --num-gpus 1`). One shim: its `train_epoch` calls
    `torch.cuda.reset_peak_memory_stats()` after every step (MemMeter), which raises on a machine without
    CUDA; it is made a no-op (nothing else of the trainer needs CUDA on CPU)."""
    import torch
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if threads:
        torch.set_num_threads(threads)
    torch.cuda.reset_peak_memory_stats = lambda device=None: None
    import training.train as meta_train
    from training.utils.train_utils import register_omegaconf_resolvers

    GlobalHydra.instance().clear()
    initialize_config_dir(config_dir=str(config.parent), version_base="1.2")
    register_omegaconf_resolvers()
    meta_train.main(
        argparse.Namespace(
            config=config.stem, use_cluster=0, num_gpus=1, num_nodes=1, partition=None, account=None, qos=None
        )
    )


def run_timing(weights, clips: Path, args) -> dict:
    """Both trainers, one after the other, on the same clips and settings; medians and the ratio."""
    ticks = cpu_ticks()
    log(f"timing sam2_hf's Sam2Trainer ({args.warmup_steps} + {args.timed_steps} steps)")
    ours, ours_data = time_ours(weights, clips, args)
    ours_cores = other_cores(ticks, cpu_ticks())
    ticks = cpu_ticks()
    log(f"timing Meta's training/train.py ({args.warmup_steps} + {args.timed_steps} steps)")
    meta, meta_data, meta_tail = time_meta(weights, clips, args)
    meta_cores = other_cores(ticks, cpu_ticks())  # its subprocess is waited for: its CPU time counts as ours
    ratio = statistics.median(ours) / statistics.median(meta)
    log(f"s/step: sam2_hf {statistics.median(ours):.2f}, Meta {statistics.median(meta):.2f} (x{ratio:.2f})")
    return {
        "settings": timing_dataset_args(args),
        "sam2_hf": {**summary(ours), "mean": statistics.mean(ours), "data_s": ours_data, "other_cores": ours_cores},
        "meta": {
            **summary(meta),
            "mean": statistics.mean(meta),
            "data_s": meta_data,
            "other_cores": meta_cores,
            "output_tail": meta_tail,
        },
        "ratio_sam2_hf_to_meta": ratio,
    }


# ------------------------------------------------------------------------------ report and plot
METRICS = ("mIoU@1", "mIoU@5", "J&F", "J", "F")


def write_report(result: dict, path: Path) -> None:
    """finetune.md: setup, before / after table, step-time table, notes."""
    m, st = result["machine"], result["settings"]
    lines = [
        "# Fine-tuning learns; seconds per training step beside Meta's trainer (CPU)",
        "",
        f"Command: `{result['command']}`  ",
        f"Run {result['started']} – {result['finished']} ({result['wall_s'] / 60:.1f} min).  ",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['ram_gib']} GiB RAM, shared with other work; "
        f"Python {m['python']}, torch {m['torch']}, transformers {m['transformers']}, sam2 {m['sam2']}, "
        f"sam2-hf {m['sam2-hf']}; torch threads: {m['torch_threads']}.  ",
        *provenance_lines(result.get("provenance")),
        f"Starting model: hiera-tiny (SAM 2.1 config) with **seeded random weights** (tests/reference.py "
        f"`build_meta_model`: Meta's init plus N(0, 0.02) noise on every weight, object-score bias +4; the `.pt` "
        f"of `bench.common.prepare_weights`). No real weights can be downloaded here, so the model starts from "
        f"scratch and cannot segment at first. image_size {st['image_size']}, fp32, CPU.  ",
        f"Data (generated by `make_synthetic_dataset`, {st['data_size']}x{st['data_size']} px): two striped "
        f"elliptic targets among three checkered look-alikes (same colours, sizes, motion; only targets annotated). "
        f"Train: {st['train_images']} images + {st['train_clips']} DAVIS-layout clips of {st['num_frames']} frames; "
        f"validation: {st['val_images']} images + {st['val_clips']} clips from other seeds.",
    ]
    if "learn" in result:
        lines += learn_section(result["learn"], st)
    if "timing" in result:
        lines += timing_section(result["timing"])
    path.write_text("\n".join(lines) + "\n")


def learn_section(learn: dict, st: dict) -> list[str]:
    r = learn["recipe"]
    lines = [
        "",
        "## Learning run",
        *carried_note(learn),
        "",
        f"`Sam2Trainer`, {st['max_steps']} steps of batch 1 ({learn['train_items']['images']} images and "
        f'{learn["train_items"]["clips"]} clips, shuffled, Meta\'s augmentations), the "fast" recipe: AdamW '
        f"lr {r['learning_rate']:g} everywhere (no layer decay), weight decay {r['weight_decay']}, gradients "
        f"clipped at {r['max_grad_norm']}, {learn['warmup_steps']} warmup steps then cosine to "
        f"{r['min_lr_rate']:g}x; Meta's MOSE prompt simulation (clips: masks, clicks or boxes on 1-2 frames, "
        f"7 corrective clicks on 1-2 frames; images: a click or a box and 7 corrective clicks) and loss (focal x20, "
        f"dice, IoU L1, object score). Validation (`sam2_hf.training.evaluate`): mIoU after 1 and 5 simulated "
        f"clicks on the images, J&F of tracking the clips from the first frame's masks (DAVIS conventions).",
        "",
        "| step | " + " | ".join(METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    for e in learn["evaluations"]:
        lines.append(f"| {e['step']} | " + " | ".join(f"{e[k]:.3f}" if k in e else "–" for k in METRICS) + " |")
    before, after = learn["before"], learn["after"]
    change = ", ".join(f"{k} {before[k]:.3f} → {after[k]:.3f}" for k in ("mIoU@1", "mIoU@5", "J&F") if k in before)
    losses = learn["loss"]
    first, last = losses[: max(1, len(losses) // 10)], losses[-max(1, len(losses) // 10) :]
    mean = lambda rows, key: statistics.mean(r[key] for r in rows)
    lines += [
        "",
        f"Before → after: {change}.  ",
        f"Training loss (mean of the logged values over the first / last tenth of the run): "
        f"{mean(first, 'loss'):.2f} → {mean(last, 'loss'):.2f} (dice term {mean(first, 'loss_dice'):.2f} → "
        f"{mean(last, 'loss_dice'):.2f}).  ",
        f"Training took {learn['train_wall_s'] / 60:.1f} min (validations included); median "
        f"{learn['step_seconds']['median']:.2f} s per step [{learn['step_seconds']['min']:.2f}–"
        f"{learn['step_seconds']['max']:.2f}] (images are cheaper than clips). Other processes kept "
        f"{learn['other_cores']:.2f} CPU cores busy on average meanwhile.",
        "",
        "![loss and validation metrics](finetune.png)",
    ]
    return lines


def timing_section(timing: dict) -> list[str]:
    st, ours, meta = timing["settings"], timing["sam2_hf"], timing["meta"]
    row = lambda name, t: (
        f"| {name} | {t['median']:.2f} [{t['min']:.2f}–{t['max']:.2f}] | {t['mean']:.2f} | "
        f"{t['n']} | {t['data_s']:.3f} | {t['other_cores']:.2f} |"
    )
    return [
        "",
        "## Seconds per training step: sam2_hf's `Sam2Trainer` vs Meta's `training/train.py`",
        *carried_note(timing),
        "",
        f"Both on the same training clips (DAVIS layout: JPEGImages/ + Annotations/), from the same `.pt`, with "
        f"Meta's `sam2.1_hiera_b+_MOSE_finetune.yaml` settings at this size: clips of {st['num_frames']} frames, up "
        f"to {st['max_num_objects']} objects, batch 1, its prompt probabilities, loss, optimizer (AdamW, lr 5e-6 / "
        f"3e-6 image encoder, layer decay 0.9, clipping 0.1, cosine) and augmentations, fp32, no data-loader "
        f"workers, one process, one after the other in this run. {st['steps'] - st['timed_steps']} untimed steps, "
        f"then {st['timed_steps']} timed ones each. A step is the wall time between two optimizer steps' ends "
        f'(data loading included), as Meta\'s "Batch Time" meter counts it; each step draws its own prompts '
        f"(mask vs clicks/box, frames corrected), so steps vary.",
        "",
        "| trainer | s/step median [min–max] | mean | steps | data s/step | other cores busy |",
        "|---|---|---|---|---|---|",
        row("sam2_hf `Sam2Trainer` (transformers Trainer)", ours),
        row("Meta `training.train.main` (sam2 1.1.0)", meta),
        "",
        f"**Ratio sam2_hf / Meta (medians): {timing['ratio_sam2_hf_to_meta']:.2f}×** "
        f"(means: {ours['mean'] / meta['mean']:.2f}×).",
        "",
        "How Meta's trainer was run: `training.train.main` (its `train.py`, unchanged) with `--use-cluster 0 "
        "--num-gpus 1`, config bench/meta_finetune_tiny.yaml (the MOSE file with tiny's model, `accelerator: cpu`, "
        "backend gloo, AMP off, 0 workers), in a subprocess (`--meta-worker`). It does not run on a CPU-only "
        "machine as shipped: `training/trainer.py:802` `mem_meter.update(reset_peak_usage=True)` calls "
        "`torch.cuda.reset_peak_memory_stats()` (`training/utils/train_utils.py:209`) after every step, which "
        "raises `RuntimeError: invalid argument to reset_peak_memory_stats` without CUDA; the worker replaces that "
        "torch function with a no-op, nothing else. Its imports also need `submitit` and `fvcore`, which the sam2 "
        "wheel does not declare (installed for this run). Model difference: Hiera's drop_path_rate is 0 here "
        "(sam2_hf has no stochastic depth; MOSE's b+ config uses 0.1); memory-attention dropout 0.1 in both. "
        "sam2_hf's data s/step is measured after its run (reading, sampling, augmenting, collating one clip); "
        'Meta\'s is its "Data Time" meter.',
    ]


def write_plot(result: dict, path: Path) -> bool:
    """Loss terms against steps and the validation metrics at each evaluation; False without a learning run."""
    if "learn" not in result:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    learn = result["learn"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    steps = [r["step"] for r in learn["loss"]]
    for key, label in (("loss", "total"), ("loss_dice", "dice"), ("loss_iou", "IoU"), ("loss_mask", "focal (x1)")):
        left.plot(steps, [r[key] for r in learn["loss"]], label=label)
    left.set_xlabel("step")
    left.set_ylabel(f"training loss (mean of {result['settings']['logging_steps']} steps)")
    left.set_yscale("log")
    left.legend(fontsize=8)
    left.set_title("Training loss", fontsize=10)
    evals = learn["evaluations"]
    for key in ("mIoU@1", "mIoU@5", "J&F"):
        if key in evals[0]:
            right.plot([e["step"] for e in evals], [e[key] for e in evals], marker="o", label=key)
    right.set_xlabel("step")
    right.set_ylim(0, 1)
    right.set_ylabel("validation score")
    right.legend(fontsize=8)
    right.set_title("Validation (images: mIoU; clips: J&F)", fontsize=10)
    fig.suptitle(f"hiera-tiny from random weights, image_size {result['settings']['image_size']}, CPU", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ------------------------------------------------------------------------------ main
def carried_sections(previous: Path, run: list[str]) -> dict:
    """The sections of an earlier finetune.json that this run does not redo, each marked with the run it comes
    from ("carried_from": its command, start and sam2_hf commit), so a report never passes them off as new."""
    if not previous.is_file():
        return {}
    old = json.loads(previous.read_text())
    code = old.get("provenance", {}).get("code", {})
    commit = code.get("commit") and code["commit"][:12] + ("+dirty" if code["dirty"] else "")
    origin = {"command": old["command"], "started": old["started"],
              "sam2_hf_commit": commit or old["machine"].get("sam2_hf_commit")}  # fmt: skip
    return {name: {**old[name], "carried_from": old[name].get("carried_from", origin)}
            for name in SECTIONS if name not in run and name in old}  # fmt: skip


def carried_note(section: dict) -> list[str]:
    """The line saying a section was not rerun (empty for a section of this run)."""
    origin = section.get("carried_from")
    if not origin:
        return []
    return ["", f"*Not rerun: this section comes from the run of {origin['started']} (`{origin['command']}`, "
                f"sam2_hf {origin['sam2_hf_commit'] or 'commit not recorded'}).*"]  # fmt: skip


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.meta_worker:
        return meta_worker(Path(args.meta_worker), args.threads)
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    workdir, out = Path(args.workdir), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "command": "python -m bench.finetune " + shlex.join(sys.argv[1:] if argv is None else argv),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {**machine_description(), "torch_threads": torch.get_num_threads()},
        "settings": {k: v for k, v in vars(args).items() if k not in ("meta_worker", "out", "workdir")},
    }
    result.update(carried_sections(out / "finetune.json", args.sections))
    start = time.perf_counter()
    provenance = RunProvenance(torch.get_num_threads())
    weights = prepare_weights(workdir, args.image_size, "tiny", "2.1")
    data = make_data(workdir / "finetune" / f"data_{args.data_size}_{args.num_frames}", args)
    sections = {
        "timing": lambda: run_timing(weights, data["train_clips"], args),
        "learn": lambda: run_learning(weights, data, args),
    }
    for name, section in sections.items():  # the short one first; what is done is saved after each
        if name in args.sections:
            log(f"{name} section")
            result[name] = section()
            (out / "finetune.json").write_text(json.dumps(result, indent=1))
    result["provenance"] = provenance.finish()
    result.update(finished=time.strftime("%Y-%m-%d %H:%M:%S"), wall_s=time.perf_counter() - start)
    result["plot"] = "finetune.png" if write_plot(result, out / "finetune.png") else None
    (out / "finetune.json").write_text(json.dumps(result, indent=1))
    write_report(result, out / "finetune.md")
    log(f"wrote {out / 'finetune.md'}, .json, .png")


if __name__ == "__main__":
    main()
