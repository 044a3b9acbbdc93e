"""The AI result SR: what the model found, before any reader looked at it.

One TID 1410 planar ROI group per finding (tracking UID stable across every
object we write, "finding #N" with the review's fixed number, the finding type,
the box, the score with the algorithm), the model as device observer. It is
PRELIMINARY and UNVERIFIED: a reader's verdict is the review SR's job.
"""

from __future__ import annotations

import highdicom as hd

from workstation.results import codes
from workstation.results.context import RunContext, ai_items, model_text
from workstation.results.sr_common import algorithm, device_observer, document, roi_groups


def build_ai_sr(run: RunContext) -> tuple[hd.sr.Comprehensive3DSR, dict]:
    """The SR and the content it says (for the content key)."""
    items = ai_items(run)
    algorithm_id = algorithm(run)
    groups = [group for item in items for group in roi_groups(run, item, algorithm_id)]
    observation = hd.sr.ObservationContext(observer_device_context=device_observer(run))
    sr = document(run, "ai-sr", observation, groups, run.started_utc, f"AI {model_text(run)} result",
                  codes.local_schemes((item.label for item in items), reviewed=False), is_complete=True, is_final=False, is_verified=False)
    return sr, {"findings": [item.content() for item in items]}
