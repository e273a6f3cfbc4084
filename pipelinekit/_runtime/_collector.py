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
import threading
from collections.abc import Iterator

__all__ = ["collector_tuned_for_a_run"]

#: Allocations between two young collections during a run (the default is 700).
YOUNG_THRESHOLD = 100_000


class _Tuning:
    """Who is inside a tuned block: the first in tunes, the last out puts things back.

    Runs in several threads of one process share the one collector, so they share one tuning.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.thresholds: tuple[int, ...] = ()
        self.froze = False


# The collector is process-wide, so what remembers its settings is too: a lock and a count,
# never more than the settings being borrowed.
_TUNING = _Tuning()


@contextlib.contextmanager
def collector_tuned_for_a_run() -> Iterator[None]:
    """Collect less often during the block, leaving what existed before it out of the walks.

    A collector the host disabled is left alone, and so are objects the host froze itself (a
    pre-forking server's): then nothing is frozen or unfrozen here.
    """
    with _TUNING.lock:
        if _TUNING.inside == 0 and gc.isenabled():
            _TUNING.thresholds = gc.get_threshold()
            _TUNING.froze = gc.get_freeze_count() == 0
            if _TUNING.froze:
                gc.freeze()
            gc.set_threshold(max(_TUNING.thresholds[0], YOUNG_THRESHOLD), *_TUNING.thresholds[1:])
        _TUNING.inside += 1
    try:
        yield
    finally:
        with _TUNING.lock:
            _TUNING.inside -= 1
            if _TUNING.inside == 0 and _TUNING.thresholds:
                gc.set_threshold(*_TUNING.thresholds)
                if _TUNING.froze:
                    gc.unfreeze()
                _TUNING.thresholds = ()
                _TUNING.froze = False
