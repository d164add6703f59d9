#!/usr/bin/env bash
# Install the test dependencies and run the whole test suite.
#
#   bash scripts/test.sh                 # everything (what CI runs, via .ci/run)
#   bash scripts/test.sh -x -k decoder   # extra arguments go to pytest
#   SAM2_HF_SKIP_INSTALL=1 bash scripts/test.sh tests/test_x.py   # rerun without the installs
#
# Installs: CPU-capable torch/torchvision pins, transformers (the comparison peer), this package with
# its [test] extra (editable), then Meta's reference `sam2==1.1.0`, which needs torch already present
# (--no-build-isolation) and must not try to build its CUDA extension (SAM2_BUILD_CUDA=0).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PYTHONUNBUFFERED=1
# pip's output minus the harmless warnings about this machine's unused local index folders.
pip_install() {
    "$PYTHON" -m pip install -q "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}

if [ "${SAM2_HF_SKIP_INSTALL:-0}" != "1" ]; then
    echo "== Installing test dependencies (first run downloads ~4 GB of torch wheels)"
    pip_install setuptools wheel "torch==2.14.1" "torchvision==0.29.1" "transformers==5.23.0"
    pip_install -e ".[test]"
    SAM2_BUILD_CUDA=0 pip_install --no-build-isolation "sam2==1.1.0"

    # The Space's browser test (tests/test_space_browser.py) drives Debian's chromium with Playwright
    # (no browser download); it skips, saying why, when /usr/bin/chromium is missing.
    if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
        echo "== Installing chromium for the browser test"
        if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } >/dev/null; then
            echo "WARNING: could not install chromium (not root?); the browser test will be skipped." >&2
        fi
    fi
fi

"$PYTHON" - <<'PY'
import importlib.metadata as md
import shutil
import sys
import tempfile

import sam2_hf
import torch

print(f"python {sys.version.split()[0]}")
for name in ("torch", "torchvision", "transformers", "sam2", "sam2-hf"):
    try:
        print(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name} NOT INSTALLED")
print(f"sam2_hf imported from {sam2_hf.__file__}")
print(f"cuda available: {torch.cuda.is_available()}")
# A full run keeps about 7 GB of checkpoints and exports in pytest's temporary folder until it ends.
tmp = tempfile.gettempdir()
free_gb = shutil.disk_usage(tmp).free / 1e9
print(f"free disk in {tmp}: {free_gb:.1f} GB" + ("  WARNING: a full run needs about 7 GB" if free_gb < 7 else ""))
PY

[ $# -eq 0 ] && set -- tests
echo "== python -m pytest -q $*"
set +e
"$PYTHON" -m pytest -q "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "ERROR: pytest collected no tests (exit code 5); treating this as a failure." >&2
    exit 1
fi
exit "$rc"
