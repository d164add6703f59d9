"""`python -m sam2_hf.cli` (e.g. under torchrun): the `sam2-hf` command."""

import sys

from . import main

sys.exit(main())
