"""J&F of video object segmentation: per object, per sequence and over a dataset, with the official tools'
conventions, from masks in memory (`score_video`) or in dataset folders (`score_folder`).

Two protocols, each following one tool's code:

- "davis": the DAVIS 2017 semi-supervised toolkit (davisvideochallenge/davis2017-evaluation,
  `davis2017/evaluation.py`, `davis2017/davis.py`). Every frame of the sequence is annotated; the first
  and the last are left out; the objects are ids 1..N with N the largest id on the first ground-truth
  frame (DAVIS's void label 255 counts as background); each object is scored on every remaining frame
  (an object absent from both masks scores J = F = 1 there). Per object: mean, recall and decay
  (`db_statistics`). Differences: the toolkit exits when the predictions hold fewer or more object ids
  than the ground truth; here an object missing from the predictions is scored as empty, and an extra id
  is a ValueError.
- "sav": Meta's SA-V evaluator (facebookresearch/sam2 `sav_dataset/utils/sav_benchmark.py`, from
  hkchengrex/vos-benchmark), also used for MOSE-style palette folders. The frames are the annotated ones
  (the ground-truth PNG files, sorted by name), the first and last left out (`skip_first_and_last`); an
  object is scored from the first of those frames where it appears in the ground truth or the prediction
  on, and reported only if it appears in the ground truth there. Its tables show percentages.

Both tools average over objects (not sequences) for the dataset's J, F and J&F = (J + F) / 2.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .layout import (
    VOID_LABEL,
    dataset_root_problem,
    is_per_object_layout,
    list_sequences,
    load_ann_png,
    object_folders,
)
from .metrics import db_eval_boundary, db_eval_iou, db_statistics

PROTOCOLS = ("davis", "sav")
GLOBAL_COLUMNS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


@dataclass
class ObjectScore:
    """One object's per-frame J and F in one sequence.

    sequence: the sequence name; obj_id: the object's id; j, f: (N,) float64 in [0, 1], one value per
    evaluated frame; frames: (N,) indices of those frames among the sequence's annotated frames.
    """

    sequence: str
    obj_id: int
    j: np.ndarray
    f: np.ndarray
    frames: np.ndarray

    @property
    def j_mean(self) -> float:
        return float(np.mean(self.j))

    @property
    def f_mean(self) -> float:
        return float(np.mean(self.f))

    @property
    def jf_mean(self) -> float:
        return (self.j_mean + self.f_mean) / 2

    def statistics(self) -> dict[str, float]:
        """{"J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"} (`db_statistics`), in [0, 1]."""
        stats = {}
        for name, values in (("J", self.j), ("F", self.f)):
            stats[f"{name}-Mean"], stats[f"{name}-Recall"], stats[f"{name}-Decay"] = db_statistics(values)
        return stats


def _as_video(masks, what: str) -> np.ndarray:
    masks = np.asarray(masks).astype(bool)
    if masks.ndim != 3:
        raise ValueError(f"{what}: masks must be (T, H, W), got shape {masks.shape}.")
    return masks


def score_video(gt, pred, protocol: str = "davis", sequence: str = "", skip_first_and_last: bool = True):
    """Score one sequence's predicted masks against its ground truth -> [ObjectScore], by object id.

    gt, pred: {obj_id: (T, H, W) bool} on the same T annotated frames in order (an object missing from
    `pred` is empty there). protocol: "davis" or "sav" (module docstring); for "davis" the objects are
    `gt`'s keys. skip_first_and_last: leave out the first and the last frame (both tools' semi-supervised
    default). Raises ValueError for an unknown protocol, shapes that differ, too few frames, or (for
    "davis") predicted objects the ground truth lacks.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}; expected one of {PROTOCOLS}.")
    gt = {k: _as_video(v, f"{sequence} ground truth of object {k}") for k, v in gt.items()}
    pred = {k: _as_video(v, f"{sequence} prediction of object {k}") for k, v in pred.items()}
    shapes = {v.shape for v in (*gt.values(), *pred.values())}
    if len(shapes) > 1:
        raise ValueError(f"{sequence}: ground truth and predictions differ in shape: {sorted(shapes)}.")
    if not shapes:
        return []
    (shape,) = shapes
    frames = np.arange(shape[0])[1:-1] if skip_first_and_last else np.arange(shape[0])
    if len(frames) == 0:
        raise ValueError(f"{sequence}: {shape[0]} annotated frames leave none to score without the first and last.")
    if protocol == "davis":
        extra = sorted(set(pred) - set(gt))
        if extra:
            raise ValueError(f"{sequence}: predicted object ids {extra} are not in the ground truth {sorted(gt)}.")
        objects = sorted(gt)
    else:
        objects = sorted(k for k in gt if gt[k][frames].any())
    empty = np.zeros(shape, dtype=bool)
    scores = []
    for obj_id in objects:
        a, s = gt.get(obj_id, empty)[frames], pred.get(obj_id, empty)[frames]
        kept = frames
        if protocol == "sav":  # the SA-V evaluator starts each object where it first appears (either side)
            first = int(np.argmax((a | s).any(axis=(1, 2))))
            a, s, kept = a[first:], s[first:], frames[first:]
        j, f = np.atleast_1d(db_eval_iou(a, s)), np.atleast_1d(db_eval_boundary(a, s))
        scores.append(ObjectScore(sequence, obj_id, j, f, kept))
    return scores


def summarize(scores: list[ObjectScore]) -> dict[str, float]:
    """Dataset figures as the DAVIS toolkit's global table, in [0, 1]: `GLOBAL_COLUMNS` each averaged over
    objects ("J&F-Mean" = (J-Mean + F-Mean) / 2). Raises ValueError for no scores."""
    if not scores:
        raise ValueError("No objects were scored.")
    per_object = [s.statistics() for s in scores]
    means = {key: float(np.mean([p[key] for p in per_object])) for key in GLOBAL_COLUMNS[1:]}
    return {"J&F-Mean": (means["J-Mean"] + means["F-Mean"]) / 2, **means}


def per_sequence(scores: list[ObjectScore]) -> dict[str, dict[str, float]]:
    """{sequence: {"J&F", "J", "F"}}: each sequence's objects' means, averaged over its objects, in [0, 1]."""
    out: dict[str, list[ObjectScore]] = {}
    for score in scores:
        out.setdefault(score.sequence, []).append(score)
    result = {}
    for name, objs in out.items():
        j, f = float(np.mean([o.j_mean for o in objs])), float(np.mean([o.f_mean for o in objs]))
        result[name] = {"J&F": (j + f) / 2, "J": j, "F": f}
    return result


# ---------------------------------------------------------------------------------------------- folders
def _frame_stack(folder: Path, names: list[str], what: str, shape=None, unscored=()) -> np.ndarray:
    """(T, H, W) uint8 of `folder/<name>` for each name; a missing file named in `unscored` reads as zeros of
    `shape` (the tools never open it). ValueError naming any other missing file or one of another size."""
    arrays = []
    for name in names:
        path = folder / name
        if not path.exists() and name in unscored:
            arrays.append(np.zeros(shape, dtype=np.uint8))
        elif not path.exists():
            raise ValueError(f"{what}: {path} is missing.")
        else:
            arrays.append(load_ann_png(path)[0])
        if arrays[-1].shape != (shape or arrays[0].shape):
            raise ValueError(f"{what}: {path} is {arrays[-1].shape}, the ground truth {shape or arrays[0].shape}.")
    return np.stack(arrays)


def _png_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".png" and not p.name.startswith("."))


def read_sequence(gt_dir, pred_dir, protocol: str = "davis", skip_first_and_last: bool = True):
    """Ground truth and predictions of one sequence from folders -> [(gt, pred)], each {obj_id: (T, H, W) bool}
    on the ground truth's annotated frames: one pair for a palette sequence, one per object folder for the
    per-object (SA-V) layout (the layout is read from `gt_dir`; predictions must use the same). Palette
    objects: for "davis" ids 1..max id of the first frame (255 is background), for "sav" every id present.
    With `skip_first_and_last` the first and last predictions may be missing (read as empty), as both tools
    never open them. Raises ValueError naming a missing or mis-sized prediction file, or predicted ids above
    that maximum ("davis")."""
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    if is_per_object_layout(gt_dir):
        pairs = []
        for obj_id, folder in object_folders(gt_dir).items():
            names = _png_names(folder)
            gt = _frame_stack(folder, names, f"ground truth {folder}")
            unscored = {names[0], names[-1]} if skip_first_and_last else ()
            pred = _frame_stack(pred_dir / folder.name, names, f"predictions of {folder}", gt.shape[1:], unscored)
            gt, pred = gt > 0, pred > 0
            pairs.append(({obj_id: gt}, {obj_id: pred}))
        return pairs
    names = _png_names(gt_dir)
    gt = _frame_stack(gt_dir, names, f"ground truth {gt_dir}")
    unscored = {names[0], names[-1]} if skip_first_and_last else ()
    pred = _frame_stack(pred_dir, names, f"predictions of {gt_dir}", gt.shape[1:], unscored)
    gt[gt == VOID_LABEL] = 0
    if protocol == "davis":
        count = int(gt[0].max())
        if pred.max() > count:
            raise ValueError(
                f"{pred_dir}: predicted object id {int(pred.max())} > the {count} objects of the ground truth."
            )
        return [({k: gt == k for k in range(1, count + 1)}, {k: pred == k for k in range(1, count + 1)})]
    return [({k: gt == k for k in _ids(gt)}, {k: pred == k for k in _ids(pred)})]


def _ids(labels: np.ndarray) -> list[int]:
    return [int(k) for k in np.unique(labels) if k]


def score_folder(gt_root, pred_root, protocol="davis", sequences=None, skip_first_and_last=True, progress=True):
    """Score predictions `pred_root/<seq>/` against ground truth `gt_root/<seq>/` -> [ObjectScore].

    sequences: names (default: every sub-folder of `gt_root`). Layouts: see `read_sequence`. Raises
    ValueError naming the sequence and file for a missing prediction (both tools require every scored
    annotated frame to be predicted) or for a dataset root given as `gt_root`, FileNotFoundError for a
    missing root.
    """
    gt_root, pred_root = Path(gt_root), Path(pred_root)
    if not pred_root.is_dir():
        raise FileNotFoundError(f"No prediction folder at {pred_root}.")
    if problem := dataset_root_problem(gt_root, "--gt-dir", "Annotations"):
        raise ValueError(problem + ".")
    scores = []
    for name in tqdm(list_sequences(gt_root) if sequences is None else sequences, desc="J&F", disable=not progress):
        if not (pred_root / name).is_dir():
            raise ValueError(f"No predictions for sequence {name!r} in {pred_root}.")
        for gt, pred in read_sequence(gt_root / name, pred_root / name, protocol, skip_first_and_last):
            scores += score_video(gt, pred, protocol, name, skip_first_and_last)
    return scores


# ---------------------------------------------------------------------------------------------- reports
def write_results(scores: list[ObjectScore], out_dir, protocol: str = "davis", subset: str = "val") -> list[Path]:
    """Write the official tool's CSV files into `out_dir`; returns their paths.

    "davis" (the toolkit's `evaluation_method.py`): `global_results-<subset>.csv` (`GLOBAL_COLUMNS`) and
    `per-sequence_results-<subset>.csv` (Sequence = "<seq>_<obj_id>", J-Mean, F-Mean), values in [0, 1] to
    3 decimals. "sav" (the SA-V evaluator): `results.csv`, a "Global score" row and one row per object
    ("<seq>,<obj:03>, J&F, J, F"), percentages to 1 decimal.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if protocol == "sav":
        path = out_dir / "results.csv"
        path.write_text(format_summary(scores, "sav"))
        return [path]
    summary = summarize(scores)
    global_path, sequence_path = (
        out_dir / f"global_results-{subset}.csv",
        out_dir / f"per-sequence_results-{subset}.csv",
    )
    with open(global_path, "w", newline="") as f:
        csv.writer(f).writerows([GLOBAL_COLUMNS, [f"{summary[c]:.3f}" for c in GLOBAL_COLUMNS]])
    rows = [("Sequence", "J-Mean", "F-Mean")]
    rows += [(f"{s.sequence}_{s.obj_id}", f"{s.j_mean:.3f}", f"{s.f_mean:.3f}") for s in scores]
    with open(sequence_path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return [global_path, sequence_path]


def format_summary(scores: list[ObjectScore], protocol: str = "davis") -> str:
    """The table the official tool prints: "davis", the global figures then J / F per object in [0, 1];
    "sav", the SA-V evaluator's comma-separated table in percentages (also its `results.csv`)."""
    summary = summarize(scores)
    if protocol == "sav":
        width = max(len("Global score"), *(len(s.sequence) for s in scores))
        jf, j, f = (100 * summary[k] for k in ("J&F-Mean", "J-Mean", "F-Mean"))
        lines = [f"{'sequence':<{width}},{'obj':>3}, {'J&F':>4}, {'J':>4}, {'F':>4}"]
        lines.append(f"{'Global score':<{width}},{'':>3}, {jf:.1f}, {j:.1f}, {f:.1f}")
        for s in scores:
            values = (100 * s.jf_mean, 100 * s.j_mean, 100 * s.f_mean)
            lines.append(f"{s.sequence:<{width}},{s.obj_id:03}, " + ", ".join(f"{v:>4.1f}" for v in values))
        return "\n".join(lines) + "\n"
    header = " ".join(f"{c:>9}" for c in GLOBAL_COLUMNS)
    lines = [
        header,
        " ".join(f"{summary[c]:>9.3f}" for c in GLOBAL_COLUMNS),
        "",
        f"{'Sequence':>24} {'J-Mean':>7} {'F-Mean':>7}",
    ]
    lines += [f"{s.sequence + '_' + str(s.obj_id):>24} {s.j_mean:>7.3f} {s.f_mean:>7.3f}" for s in scores]
    return "\n".join(lines) + "\n"
