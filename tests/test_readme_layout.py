"""README's "Project layout" names every module of src/sam2_hf, and nothing that is not there (issue 20: the
section had drifted, three modules missing). The layout block's grammar: under `src/sam2_hf/`, a line indented
by 2 names top-level entries, `folder/` opens a folder whose entries follow indented 2 more (folders nest); an
entry is the leading `name.py` (or a comma-separated run of them) before its description."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "src" / "sam2_hf"
ENTRY = re.compile(r"^(?P<indent> +)(?P<names>[\w.]+(?:/|\.py)(?:, [\w.]+\.py)*)")


def layout_block() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Project layout", 1)[1]
    block = section.split("```", 2)[1]
    lines = block.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split(" ", 1)[0] == "src/sam2_hf/")
    end = next(i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith(" "))
    return lines[start + 1 : end]


def named_modules() -> set[str]:
    """Paths relative to src/sam2_hf of the modules the layout block names."""
    named, folders = set(), []  # folders: the open folders, outermost first
    for line in layout_block():
        match = ENTRY.match(line)
        if match is None:  # a description's continuation line
            continue
        depth = len(match["indent"]) // 2 - 1  # 0 for top-level entries
        if depth > len(folders):  # a continuation line's leading word that looks like an entry
            continue
        del folders[depth:]
        for name in match["names"].split(", "):
            if name.endswith("/"):
                folders.append(name)
            else:
                named.add("".join(folders) + name)
    return named


def test_readme_layout_names_every_module_and_only_those():
    modules = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    named = named_modules()
    assert not modules - named, f"modules README's Project layout does not name: {sorted(modules - named)}"
    assert not named - modules, f"README's Project layout names modules that do not exist: {sorted(named - modules)}"
