"""The content-bearing test weights (tests/content_weights.py, `reference_models(..., content=True)`).

Building them (steps 0-2 and the stored trained decoder) asserts their four properties (distinct tracked
objects, object scores present where the clip shows the object, logits beyond +-1, a memory that matters). This
test also runs test_video_parity's session on them: Meta's model reads the written `.pt`, and on the prompted
frames, where no memory is read, ours matches Meta's within `PROMPTED_TOLERANCE` (fp32 rounding on logits up to
~40 in magnitude).

On tracked frames it only prints the float32 drift from Meta (measured 2026-12-05, SAM 2.1 tiny @ 256 px,
memories in fp32 on both sides: 2e-4 on the first tracked frame, 3e-1 after 11, several logits after the
reverse pass; ours in fp32 drifts as far from ours in fp64, so it is the weights' sensitivity, not an
implementation difference): the constructed memory path (attention scores up to ~450, memories x200) amplifies
a rounding difference about 3x per frame. The video parity test on these weights therefore compares in float64
(tests/test_video_parity.py::test_video_predictor_matches_reference).
"""

from __future__ import annotations

import pytest

from content_weights import distinct_where_both_found
from test_video_parity import video_parity

PROMPTED_TOLERANCE = 5e-5  # max abs logit difference on prompted frames; measured 1.2e-5 (logits up to 36)
PROMPTED = ("click obj1 f0", "clicks obj2 f0", "box obj3 f10")


@pytest.fixture(scope="module")
def content_reference(reference_models):
    return reference_models("tiny", "2.1", 256, video=True, content=True)


def test_content_weights_make_tracking_real_and_prompted_frames_match_meta(content_reference, tmp_path_factory):
    parity = video_parity(content_reference, tmp_path_factory)  # builds the weights, asserting their properties
    print(f"\ncontent-bearing weights: {content_reference.content_properties}")
    errors = parity.errors(parity.predictor())
    assert len(errors) == len(parity.meta_log)
    prompted = [e for e in errors if e.label in PROMPTED]
    assert len(prompted) == len(PROMPTED)
    assert max(e.error for e in prompted) <= PROMPTED_TOLERANCE, prompted
    print("tracked-frame drift from Meta (max abs logit difference):")
    for e in errors:
        print(f"  {e.label:20s} frame {e.frame_idx:2d}: {e.error:.1e}")

    # The compared session is not trivial on these weights: Meta's own tracked masks of objects 1 (red disc)
    # and 2 (blue square) are distinct and non-empty on the first tracked frames.
    log = parity.meta_log
    first_tracked = [m[:2, 0] > 0 for label, frame, _, m in log if label == "propagate 1" and 1 <= frame <= 3]
    assert distinct_where_both_found(first_tracked) == len(first_tracked) == 3
