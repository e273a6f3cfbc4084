"""``StageGraph``: which stages must finish before which, as plain dictionaries.

Validation asks two questions of the stages' ``needs``: is there a cycle, and is stage A
certain to finish before stage B starts. A pipeline has tens of stages, rarely hundreds, so
plain dictionaries answer both at once; networkx (which costs a third of a second to import)
is left to the compiler's exports, where a person asks for a graph. Cycles are found with the
standard library's ``graphlib``.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Iterator, Mapping

__all__ = ["StageGraph"]


class StageGraph:
    """Stages in declaration order, each with the stages it needs directly."""

    def __init__(self, stages: Iterable[str]) -> None:
        """A graph of ``stages`` with no edge yet."""
        self.needs: dict[str, list[str]] = {stage: [] for stage in stages}
        self._ancestors: dict[str, frozenset[str]] = {}

    def add_need(self, before: str, after: str) -> None:
        """``after`` needs ``before``: it starts only once ``before`` finished."""
        needs = self.needs[after]
        if before not in needs:
            needs.append(before)
        self._ancestors.clear()

    @property
    def edges(self) -> Iterator[tuple[str, str]]:
        """``(before, after)`` for every need, in declaration order of ``after``."""
        for after, needs in self.needs.items():
            for before in needs:
                yield before, after

    def cycles(self) -> list[list[str]]:
        """Each separate cycle once, starting at its stage declared first.

        Found one at a time by ``graphlib``; the stages of a cycle found are left out of the
        search for the next, so a tangle of cycles is reported once, not once per loop.
        """
        order = {stage: index for index, stage in enumerate(self.needs)}
        remaining = {stage: set(needs) for stage, needs in self.needs.items()}
        found: list[list[str]] = []
        while True:
            try:
                graphlib.TopologicalSorter(remaining).prepare()
            except graphlib.CycleError as error:
                loop: list[str] = list(error.args[1][:-1])
            else:
                return found
            # graphlib lists each stage before one that needs it: running order already.
            start = min(range(len(loop)), key=lambda i: order[loop[i]])
            found.append(loop[start:] + loop[:start])
            for stage in loop:
                remaining.pop(stage, None)
            for needs in remaining.values():
                needs.difference_update(loop)

    def runs_before(self, before: str, after: str) -> bool:
        """Whether ``before`` is certain to finish before ``after`` starts (through needs)."""
        return before in self.ancestors(after)

    def ancestors(self, stage: str) -> frozenset[str]:
        """Every stage that must finish before ``stage`` starts (for an acyclic graph)."""
        known = self._ancestors.get(stage)
        if known is not None:
            return known
        # Iterative, post-order: a long chain of stages must not exhaust the recursion limit.
        stack: list[tuple[str, bool]] = [(stage, False)]
        visiting: set[str] = set()
        while stack:
            current, expanded = stack.pop()
            if current in self._ancestors:
                continue
            if expanded:
                found: set[str] = set()
                for need in self.needs[current]:
                    found.add(need)
                    found |= self._ancestors.get(need, frozenset())
                self._ancestors[current] = frozenset(found)
                continue
            if current in visiting:
                continue  # a cycle: reported elsewhere; stop walking it
            visiting.add(current)
            stack.append((current, True))
            stack.extend((need, False) for need in self.needs[current])
        return self._ancestors[stage]

    def as_mapping(self) -> Mapping[str, tuple[str, ...]]:
        """Each stage's direct needs, as tuples."""
        return {stage: tuple(needs) for stage, needs in self.needs.items()}
