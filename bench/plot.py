"""suite.png: median seconds per frame against object count per implementation, and image-encoder bars."""

from __future__ import annotations

from pathlib import Path

COLORS = {"sam2_hf": "tab:blue", "meta": "tab:orange", "transformers": "tab:green", "ultralytics": "tab:red"}


def bars(ax, groups: list[str], values: dict[str, list[dict]], ylabel: str, title: str) -> None:
    """Grouped bars of medians with min-max whiskers; values: implementation -> one summary per group."""
    width = 0.8 / max(len(values), 1)
    for k, (impl, stats) in enumerate(values.items()):
        xs = [i + (k - (len(values) - 1) / 2) * width for i in range(len(groups))]
        med = [s["median"] for s in stats]
        err = [[m - s["min"] for m, s in zip(med, stats)], [s["max"] - m for m, s in zip(med, stats)]]
        ax.bar(xs, med, width, yerr=err, capsize=3, label=impl, color=COLORS.get(impl, "tab:gray"))
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)


def write_plot(suite: dict, path: Path) -> bool:
    """False (and no file) when neither the image nor the video section ran."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sections = suite["sections"]
    panels = [key for key in ("video", "image") if key in sections]
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
    size = f"{suite['settings']['size']}, {suite['settings']['image_size']} px"
    for ax, key in zip(axes[0], panels):
        if key == "video":
            rows = sections["video"]["by_objects"]
            impls = list(rows[0]["timing"])
            values = {i: [r["timing"][i]["seconds"] for r in rows] for i in impls}
            bars(ax, [f"{r['objects']} obj" for r in rows], values, "s / frame", f"Video, steady state ({size})")
        else:
            timing = sections["image"]["encoder"]["timing"]
            values = {i: [t["seconds"]] for i, t in timing.items()}
            bars(ax, ["set_image"], values, "s / image", f"Image encoder ({size})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
