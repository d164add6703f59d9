"""The README's promises about Meta's imports (issue 19, B7): each row of the "Running Meta's scripts" table
imports in both libraries, every Meta class sam2_hf exports under Meta's name has its row, and no line
says such a class has no sam2_hf equivalent."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sam2_hf

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
ROW = re.compile(r"^\| `(from sam2\.[\w.]+ import [\w, ]+)` \| `(from sam2_hf[\w.]* import [\w, ]+)` \|$", re.MULTILINE)
ROWS = ROW.findall(README)
ULTRALYTICS_NAMES = {"SAM", "SAM2"}  # Ultralytics' class names (README, "Coming from Ultralytics"), not Meta's
META_NAMES = sorted(name for name in sam2_hf.__all__ if name.startswith("SAM2") and name not in ULTRALYTICS_NAMES)


@pytest.mark.parametrize("meta_import, ours", ROWS, ids=[meta for meta, _ in ROWS])
def test_import_table_rows_import_in_both_libraries(meta_import, ours):
    meta_names, our_names = {}, {}
    exec(meta_import, meta_names)
    exec(ours, our_names)
    imported = lambda line: [name.strip() for name in line.split(" import ")[1].split(",")]
    assert imported(meta_import) == imported(ours)
    assert all(name in our_names for name in imported(ours))


@pytest.mark.parametrize("name", META_NAMES)
def test_every_meta_named_class_has_its_row_and_no_missing_claim(name):
    meta_rows = [meta for meta, _ in ROWS if re.search(rf"\b{name}\b", meta)]
    assert len(meta_rows) == 1, f"no import-table row for {name}"
    module = meta_rows[0].split()[1]
    assert hasattr(__import__(module, fromlist=[name]), name)  # the row names Meta's real module
    assert not [line for line in README.splitlines() if name in line and "no sam2_hf equivalent" in line]


DOCUMENTED_IMPORT = re.compile(r"from (sam2_hf[\w.]*) import ([\w, ]+)")
DOCUMENTED_PATH = re.compile(r"\bsam2_hf(?:\.[A-Za-z_]\w*)+")


def documented_names() -> list[str]:
    """Every dotted name README documents: `from sam2_hf.x import A, B` gives sam2_hf.x.A, sam2_hf.x.B."""
    names = {
        f"{module}.{name.strip()}" for module, names in DOCUMENTED_IMPORT.findall(README) for name in names.split(",")
    }
    return sorted(names | set(DOCUMENTED_PATH.findall(README)))


def resolve(dotted: str):
    """The object a dotted path names: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ModuleNotFoundError(dotted)


@pytest.mark.parametrize("dotted", documented_names())
def test_every_import_path_readme_documents_resolves(dotted):
    """Moving a module must not break a path users were told about (issue 20, requirement 6)."""
    assert resolve(dotted) is not None


def test_python_m_cli_runs():
    """README: `python -m sam2_hf.cli` (the torchrun form of `sam2-hf finetune`)."""
    result = subprocess.run([sys.executable, "-m", "sam2_hf.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "finetune" in result.stdout
