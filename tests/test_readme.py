"""The README's promises about Meta's imports (issue 19, B7): each row of the "Running Meta's scripts" table
imports in both libraries, every Meta class sam2_hf exports under Meta's name has its row, and no line
says such a class has no sam2_hf equivalent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import sam2_hf

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
ROW = re.compile(r"^\| `(from sam2\.[\w.]+ import [\w, ]+)` \| `(from sam2_hf[\w.]* import [\w, ]+)` \|$", re.MULTILINE)
ROWS = ROW.findall(README)
META_NAMES = sorted(name for name in sam2_hf.__all__ if name.startswith("SAM2"))


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
