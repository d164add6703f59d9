"""`gpu`: ZeroGPU's `spaces.GPU` decorator when the `spaces` package is installed, else a no-op.

On a ZeroGPU Space a decorated function runs in a forked worker that holds the GPU; its arguments
and results are pickled across, so the functions decorated here (in `engine`) take and return
plain data only. Without ZeroGPU (`SPACES_ZERO_GPU` unset) `spaces.GPU` returns the function as is.
"""

from __future__ import annotations

import os

try:
    import spaces  # must come before torch initialises CUDA

    gpu = spaces.GPU
except ImportError:

    def gpu(fn=None, **_):
        """Stand-in for `spaces.GPU`, as `@gpu` or `@gpu(duration=...)`."""
        return fn if callable(fn) else (lambda f: f)


ZERO_GPU = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")
