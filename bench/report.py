"""suite.md: the suite's JSON as tables, one per section, every time beside its ratios, floor and mask check."""

from __future__ import annotations

from pathlib import Path

from .provenance import provenance_lines

NAMES = {
    "sam2_hf": "sam2_hf",
    "meta": "Meta sam2 1.1.0",
    "transformers": "transformers",
    "ultralytics": "Ultralytics",
    "samexporter": "samexporter (onnxruntime)",
}


def name_of(impl: str) -> str:
    return NAMES.get(impl, impl)


def stat(s: dict, scale: float = 1.0) -> str:
    """median [min-max] with 3 significant digits."""
    return f"{s['median'] * scale:.3g} [{s['min'] * scale:.3g}–{s['max'] * scale:.3g}]"


def ratio(row: dict, peer: str) -> str:
    r = row.get(f"ratio_to_{peer}")
    return "–" if r is None else f"{r['median']:.2f}× [{r['min']:.2f}–{r['max']:.2f}]"


REFUSED_RATIO = "— (contended)"  # a time / floor below 1, refused by `flops.FloorCheck`


def floor_cells(entry: dict | None, flops: dict | None, scale: float = 1.0) -> list[str]:
    """GFLOP, floor (seconds x `scale`) and time / floor of a row: from its `FloorCheck` entry, or the GFLOP
    alone from its FLOP count where the run measured no floor."""
    if entry is None:
        return [f"{flops['total'] / 1e9:.3g}" if flops else "–", "–", "–"]
    ratio = entry["time_over_floor"]
    return [f"{entry['gflop']:.3g}", f"{entry['floor_s'] * scale:.3g}",
            REFUSED_RATIO if ratio is None else f"{ratio:.1f}×"]  # fmt: skip


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows]


def agreement_cells(a: dict | None) -> list[str]:
    if a is None:
        return ["–", "–"]
    diff = "– (masks only)" if a["max_abs_logit_diff"] is None else f"{a['max_abs_logit_diff']:.2e}"
    return [diff, f"{a['sign_mismatch_pixels']} / {a['pixels']}"]


# ------------------------------------------------------------------------------ sections
def image_lines(sec: dict) -> list[str]:
    st = sec["settings"]
    h, w = st["image_hw"]
    x, y = st["click"]
    lines = ["## Image", "", f"One {w}x{h} synthetic image; click = one positive point at ({x:.0f}, {y:.0f}), "
             "multimask output (3 masks).", ""]  # fmt: skip
    if "ultralytics" in st["implementations"]:
        lines += ["Ultralytics: `SAM2Predictor.set_image`, then its public call `predictor(points=..., labels=..., "
                  "multimask_output=True)`; its logits for the check come from an untimed `prompt_inference`. It "
                  "letterboxes the image (aspect kept, padded) where Meta stretches it to a square, so on this "
                  "non-square image its embeddings and masks differ from Meta's by design (tests/test_ultralytics.py: "
                  "equal on a square image of the input size). It has no batched encoder.", ""]  # fmt: skip
    lines += auto_lines(st)
    if "samexporter" in st["implementations"]:
        lines += ["samexporter: PyPI's ONNX export of Meta's image encoder and prompt encoder + mask decoder from the "
                  "same `.pt` (its `export_sam2`, untimed), on onnxruntime through its `SegmentAnything2ONNX`: "
                  "`encode` (its own cv2 resize inside, so its embeddings differ slightly from Meta's resize), "
                  "`predict_masks` (3 masks decoded, the best resized to the image by cv2; its 3 masks for the "
                  "check come from an untimed call of its decoder graph, resized the same way). Image parts only: it "
                  "cannot track a video. No batched encoder.", ""]  # fmt: skip
    parts = (
        ("encoder", "Image encoder, seconds per image (`set_image`; transformers: `get_image_embeddings` on the "
         "same preprocessed pixels)", 1, "max abs embedding diff vs Meta"),
        ("click", f"Click to mask with a cached embedding, ms per click (a sample is the mean of "
         f"{st['clicks_per_sample']} clicks)", 1000, None),
        ("batch", f"Batch of {st['batch_size']} images (`set_image_batch`; transformers: a batch of pixel_values), "
         "seconds per image", 1, "max abs embedding diff vs Meta"),
    )  # fmt: skip
    for key, title, scale, embedding_column in parts:
        part = sec[key]
        unit = "ms" if scale == 1000 else "s"
        header = ["implementation", f"{unit} median [min–max]", "× Meta", "× transformers", "GFLOP",
                  f"floor {unit}", "time / floor"]  # fmt: skip
        header += [embedding_column] if embedding_column else ["max abs logit diff vs Meta", "pixels of other sign"]
        rows = []
        for impl, row in part["timing"].items():
            flops = part.get("flops", {}).get(impl) or sec["encoder"]["flops"].get(impl)  # batch: the same per image
            floor = floor_cells(part.get("floor", {}).get(impl), flops, scale)
            a = part["agreement"][impl]
            checks = [f"{a['max_abs_embedding_diff']:.2e}"] if embedding_column else agreement_cells(a)
            rows.append([name_of(impl), stat(row["seconds"], scale), ratio(row, "meta"), ratio(row, "transformers"),
                         *floor, *checks])  # fmt: skip
        lines += [f"### {title}", "", *table(header, rows), ""]
    return lines


def video_lines(sec: dict) -> list[str]:
    st = sec["settings"]
    h, w = st["frame_hw"]
    lines = [
        "## Video: steady-state seconds per frame",
        "",
        f"Synthetic {w}x{h} clip (JPEG folder), one click per object on frame 0, forward propagation. Frames "
        f"1..{sec['by_objects'][0]['timed_frames'][0] - 1} are warm-up (frame {st['warmup_frames']} FLOP-counted), "
        "then each timed frame "
        "is one sample; implementations take turns frame by frame. Masks of every timed frame are compared with "
        "Meta's at video resolution (worst frame shown; pixels of other sign out of all objects' pixels). "
        "Ultralytics reads the frames from a Motion-JPEG file, letterboxes them and keeps objects from overlapping "
        "(binary masks only): its masks differ from Meta's by design.",
        "",
        *auto_lines(st),
    ]
    header = ["objects", "implementation", "s/frame median [min–max] (timed frames)", "× Meta", "× transformers",
              "GFLOP/frame", "floor s", "time / floor", "max abs logit diff vs Meta",
              "pixels of other sign"]  # fmt: skip
    rows, low_rows = [], []
    for r in sec["by_objects"]:
        for impl, row in r["timing"].items():
            seconds = f"{stat(row['seconds'])} ({row['seconds']['n']})"
            cells = [r["objects"], name_of(impl), seconds, ratio(row, "meta"), ratio(row, "transformers"),
                     *floor_cells(r.get("floor", {}).get(impl), r["flops"].get(impl))]  # fmt: skip
            if "@" in impl:
                iou = r["low_res_iou"]["min_per_object"]
                low_rows.append([*cells[:3], ratio(row, "sam2_hf"), cells[3], *cells[5:8],
                                 ", ".join(f"{x:.3f}" for x in iou)])  # fmt: skip
            else:
                rows.append(cells + agreement_cells(r["agreement"].get(impl)))
    lines += table(header, rows) + [""]
    marginal = sec.get("marginal_cost_per_object")
    if marginal:
        counts = [r["objects"] for r in sec["by_objects"]]
        lines += ["### Marginal cost of one more object (seconds per frame per object)", "",
                  f"From the median s/frame at {', '.join(map(str, counts))} objects.", ""]  # fmt: skip
        lines += table(
            ["implementation", "least-squares slope", f"(t{counts[-1]} − t{counts[0]}) / {counts[-1] - counts[0]}"],
            [[name_of(k), f"{v['least_squares_slope']:.3g}", f"{v['end_to_end']:.3g}"] for k, v in marginal.items()],
        ) + [""]  # fmt: skip
    if low_rows:
        lines += ["### Opt-in, not exact: sam2_hf at a lower processing resolution", "",
                  f"The same weights in a model built for image_size {st['low_res']} (not the exact answer). Agreement "
                  "with the exact sam2_hf masks: IoU per object of masks thresholded at 0, the worst timed frame. "
                  "With random weights the masks are arbitrary blobs, so these IoUs say little about real checkpoints.",
                  ""]  # fmt: skip
        header = ["objects", "implementation", "s/frame median [min–max]", "× sam2_hf exact", "× Meta",
                  "GFLOP/frame", "floor s", "time / floor", "IoU vs exact per object"]  # fmt: skip
        lines += table(header, low_rows) + [""]
    return lines


def floor_lines(sec: dict) -> list[str]:
    g, check = sec["gemm_gflops"], sec["attention_check"]
    uncounted = sec.get("uncounted_heavy_ops") or {}
    return [
        "## Floor: FLOPs / measured GEMM throughput",
        "",
        f"fp32 {sec['gemm_n']}³ matmul throughput in this run: {stat(g)} GFLOP/s (median [min–max] of {g['n']} "
        "samples taken at the start and after each timed section; the median is used). FLOPs are counted with "
        "`torch.utils.flop_counter.FlopCounterMode` on one untimed call (video: one steady-state frame) of each "
        "implementation, plus a formula for `aten._scaled_dot_product_flash_attention_for_cpu` (CPU attention, "
        "otherwise counted as 0). Only matmuls, convolutions and attention are counted; the floor is the time "
        "those alone would take at the measured rate, so time / floor shows how far each implementation is from "
        "compute-bound. No time can beat its floor: a ratio below 1 means the rate was measured under contention, "
        f'so it is not given ("{REFUSED_RATIO}") and the run is marked contended.',
        "",
        f"Check by hand: {check['layer']} with {check['queries']} queries and {check['memory_tokens']} memory tokens "
        f"(dim {check['dim']}, kv {check['kv_dim']}, MLP {check['ff_dim']}): counted {check['counted']:,} FLOPs, "
        f"hand count {check['hand_count']:,} ({'equal' if check['equal'] else 'DIFFERENT'}).",
        "",
        "Matmul/conv/attention ops met without a FLOP formula: "
        + (", ".join(f"{k} ({v} calls)" for k, v in uncounted.items()) if uncounted else "none")
        + ".",
        "",
    ]


def memory_lines(sec: dict) -> list[str]:
    lines = ["## Memory: peak RSS against video length", ""]
    if not sec.get("measured"):
        return lines + [f"Not available: {sec['reason']}.", ""]
    lengths = sorted({r["frames"] for r in sec["runs"]})
    by_key = {(r["impl"], r["frames"]): r for r in sec["runs"]}
    st = sec["settings"]
    lines += [f"From [{Path(sec['link']).name}]({sec['link']}) (bench/memory_vs_length.py: one fresh "
              f"process per cell, hiera-tiny, image_size {st['image_size']}, {st['width']}x{st['height']} frames, one "
              f"object, {st['threads']} threads; run {', '.join(sec['started'])}; not rerun by this suite unless "
              "`--sections memory --lengths ...`). Peak RSS in MiB:", ""]  # fmt: skip
    rows = []
    for impl in sec["implementations"]:
        cells = []
        for n in lengths:
            r = by_key.get((impl, n))
            cells.append("–" if r is None else f"{r['peak_rss_mib']:.0f}" + ("" if r["status"] == "ok" else "+ (cut)"))
        rows.append([impl, *cells])
    lines += table(["implementation", *(f"{n:,} frames" for n in lengths)], rows) + [""]
    if sec.get("worst_mask_logit_diff_vs_meta") is not None:
        lines += [f"Masks there vs Meta's: max abs logit diff {sec['worst_mask_logit_diff_vs_meta']:.2e}.", ""]
    return lines


def gpu_lines(sec: dict) -> list[str]:
    lines = ["## GPU", ""]
    if not sec.get("measured"):
        return lines + [f"**Not measured**: {sec['reason']}. (The GPU code in bench/gpu.py is untested.)", ""]
    rows = [[r["size"], r["impl"], r["compiled"], r["dtype"], f"{r['fps']:.1f}"] for r in sec["rows"]]
    return lines + [f"{sec['device']}, image_size 1024, one object, {sec['frames']} frames ({sec['warmup']} warm-up).",
                    "", *table(["size", "implementation", "compiled", "dtype", "frames/s"], rows), ""]  # fmt: skip


# ------------------------------------------------------------------------------ document
def section_load_line(suite: dict) -> list[str]:
    """The CPU cores other processes kept busy during each timed section (the run's contended marking, in the
    provenance lines, says when that oversubscribed the CPUs)."""
    used = suite.get("other_cores", {})
    if not used:
        return []
    return ["CPU cores kept busy by other processes during each timed section, on average: "
            + ", ".join(f"{name} {cores:.2f}" for name, cores in used.items()) + ".", ""]  # fmt: skip


def header_lines(suite: dict) -> list[str]:
    m, st = suite["machine"], suite["settings"]
    HELD = " (held for every timed call: bench/timing.py)"
    return [
        "# SAM 2 benchmark suite (CPU): sam2_hf vs Meta's reference vs transformers"
        + (" vs Ultralytics" if m.get("ultralytics", "not installed") != "not installed" else ""),
        "",
        f"Command: `{suite['command']}`  ",
        f"Run {suite['started']} – {suite['finished']} ({suite['wall_s'] / 60:.1f} min).  ",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['ram_gib']} GiB RAM, shared with other work; "
        f"Python {m['python']}, torch {m['torch']}, "
        f"transformers {m['transformers']}, sam2 {m['sam2']}, sam2-hf {m['sam2-hf']}, "
        f"ultralytics {m.get('ultralytics', 'not installed')}, samexporter {m.get('samexporter', 'not installed')}; "
        f"torch threads: {st['threads']}{HELD if st.get('threads_held') else ''}.  ",
        *provenance_lines(suite.get("provenance")),
        f"Setup: hiera-{st['size']} (SAM {st['version']}), seeded random weights (tests/reference.py, the same `.pt` "
        f"for Meta and Ultralytics, its `save_pretrained` folder for sam2_hf and transformers), "
        f"image_size {st['image_size']}, fp32, "
        "inference mode, everything in one process.",
        "",
        "How to read: the machine is noisy, so each figure is a median [min–max] over repeats, and the "
        "implementations' repeats are interleaved (A B C A B C ...). `× Meta` / `× transformers` is the median "
        "[min–max] of the per-repeat ratio to that implementation's time in the same round (< 1 = faster). "
        "Mask checks are on the timed runs' own outputs."
        + (
            " Every implementation runs an untimed round (video: an untimed frame) after its FLOP-counted call, "
            "before its timed ones."
            if st.get("untimed_round")
            else ""
        ),
        "",
        *section_load_line(suite),
    ]


def write_report(suite: dict, path: Path) -> None:
    sections = suite["sections"]
    lines = header_lines(suite)
    if "image" in sections:
        lines += image_lines(sections["image"])
    if "video" in sections:
        lines += video_lines(sections["video"])
    if "floor" in sections:
        lines += floor_lines(sections["floor"])
    if "memory" in sections:
        lines += memory_lines(sections["memory"])
    if "gpu" in sections:
        lines += gpu_lines(sections["gpu"])
    if suite.get("plot"):
        lines += [f"![median times]({suite['plot']})", ""]
    path.write_text("\n".join(lines))


def auto_lines(settings: dict) -> list[str]:
    """What sam2_hf[auto] ran each part on (backend auto measures the parts on this machine and picks per part)."""
    lines = []
    for row, chosen in settings.get("auto_engines", {}).items():
        lines += [f"{row}: each part on the exact engine backend auto measured fastest for it here: {chosen}.", ""]
    return lines
