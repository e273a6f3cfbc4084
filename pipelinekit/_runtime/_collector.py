"""The garbage collector while pipelinekit owns the process's event loop.

A run allocates many small objects that live until its end (events, attempts, records of
actions) and few cycles. With the collector's default thresholds, that steady growth triggers
young collections every 700 allocations and, as the survivors pile up, full ones that walk every
object of the process again and again: on 10,000 actions, 20-30 % of the wall time. While
``pk.run`` (or another caller that owns the loop) runs, the young generation is made much larger
and what existed before the run (the pipeline, its plan, the host's own objects) is frozen out
of the collector's walks. Both are put back when the run ends, so a host sees its own settings
again; ``pk.arun`` inside someone else's loop changes nothing.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["collector_tuned_for_a_run"]

#: Allocations between two young collections during a run (the default is 700).
YOUNG_THRESHOLD = 100_000


@contextlib.contextmanager
def collector_tuned_for_a_run() -> Iterator[None]:
    """Collect less often during the block, leaving what existed before it out of the walks."""
    if not gc.isenabled():  # the host turned it off: leave it so
        yield
        return
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], YOUNG_THRESHOLD), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
