"""Benchmarks of SAM 2 on any checkpoint, with the official tools' conventions (`sam2-hf eval`).

- `metrics`: per-frame J (`db_eval_iou`) and F (`db_eval_boundary`), the DAVIS 2017 toolkit's functions;
- `scoring`: J&F per object, per sequence and per dataset (DAVIS 2017 and SA-V conventions), CSV reports;
- `vos`: semi-supervised VOS inference as Meta's `tools/vos_inference.py` (folders or in memory);
- `layout`: DAVIS-style palette PNG and SA-V per-object PNG folders;
- `clicks`: simulated clicks and 1- / 5-click image mIoU (COCO-format data);
- `pvs`: interactive video segmentation with first-frame and correction clicks.

In-memory entry points for training loops: `evaluate_clicks` (image IoU per click), `evaluate_video`
(first-frame-mask J&F), `evaluate_pvs` (J&F per interaction round), `summarize`.
"""

from .clicks import evaluate_clicks, evaluate_coco, next_click
from .layout import DAVIS_PALETTE
from .metrics import db_eval_boundary, db_eval_iou, db_statistics, f_measure
from .pvs import evaluate_pvs
from .scoring import ObjectScore, format_summary, per_sequence, score_folder, score_video, summarize, write_results
from .vos import evaluate_video, iter_vos_masks, run_vos_inference, segment_video, vos_predictor_options

__all__ = [
    "DAVIS_PALETTE",
    "ObjectScore",
    "db_eval_boundary",
    "db_eval_iou",
    "db_statistics",
    "evaluate_clicks",
    "evaluate_coco",
    "evaluate_pvs",
    "evaluate_video",
    "f_measure",
    "format_summary",
    "iter_vos_masks",
    "next_click",
    "per_sequence",
    "run_vos_inference",
    "score_folder",
    "score_video",
    "segment_video",
    "summarize",
    "vos_predictor_options",
    "write_results",
]
