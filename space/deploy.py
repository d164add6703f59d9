"""Assemble the Space folder and upload it to the Hugging Face Hub.

    python space/deploy.py --repo user/space-name             # assemble into build/space and upload
    python space/deploy.py --repo user/space-name --dry-run   # assemble only, and list what would go up

The folder holds app.py, the space/ package, the library (src/sam2_hf -> sam2_hf/), README.md (the
Space's front matter: sdk, sdk_version, python_version, app_file, models), requirements.txt (the
library's dependencies from pyproject.toml; gradio comes from sdk_version) and packages.txt (apt).
Uploading needs a token with write access (`huggingface-cli login` or HF_TOKEN).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
NOT_DEPLOYED = ("deploy.py", "benchmark.py", "loadtest.py", "README.md", "packages.txt")  # space/ files, not app code


def assemble(out: Path) -> Path:
    """Write the Space into `out` (emptied first); returns it."""
    shutil.rmtree(out, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "src" / "sam2_hf", out / "sam2_hf", ignore=ignore)
    shutil.copytree(REPO / "space", out / "space", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", *NOT_DEPLOYED))
    shutil.copy(REPO / "app.py", out / "app.py")
    shutil.copy(REPO / "space" / "README.md", out / "README.md")
    shutil.copy(REPO / "space" / "packages.txt", out / "packages.txt")
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (out / "requirements.txt").write_text("\n".join(dependencies) + "\n")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True, help="the Space, as user/space-name")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "space", help="where to assemble it")
    parser.add_argument("--dry-run", action="store_true", help="assemble and list, do not upload")
    parser.add_argument("--private", action="store_true", help="create the Space private")
    args = parser.parse_args(argv)
    folder = assemble(args.out)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    print(f"Assembled {len(files)} files in {folder}:\n  " + "\n  ".join(files))
    if args.dry_run:
        print(f"Dry run: nothing uploaded to spaces/{args.repo}.")
        return
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(args.repo, repo_type="space", space_sdk="gradio", private=args.private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=folder, repo_id=args.repo, repo_type="space", commit_message="Update the Space"
    )
    print(f"Uploaded: {commit.commit_url}")


if __name__ == "__main__":
    main()
