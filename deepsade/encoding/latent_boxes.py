"""Per-assert latent boxes: the box of ``z = [h; s]`` each assert is checked over.

An assert ``P(x) -> Q`` only constrains the network where its premise holds. When the premise bounds
single inputs, every such ``x`` lies in a smaller input box (``deepsade.regions``), and interval bounds
over that box are a sound latent box for that assert: never wider than the whole domain's, often far
tighter. ``LatentBoxes`` carries the whole-domain box and, per assert, the box over its region (an
assert without one uses the whole-domain box).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

Box = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class LatentBoxes:
    """The whole-domain latent box and, by assert index, the latent box over that assert's region."""

    whole: Box
    per_assert: Mapping[int, Box] = field(default_factory=dict)

    def for_assert(self, index: int) -> Box:
        """The latent box assert ``index`` is checked over (the whole-domain box when it has no region)."""
        return self.per_assert.get(index, self.whole)

    @classmethod
    def coerce(cls, low, high=None) -> LatentBoxes:
        """``low`` itself when it is a ``LatentBoxes``; else one box ``[low, high]`` for every assert."""
        if isinstance(low, LatentBoxes):
            return low
        if high is None:
            raise TypeError("a latent box needs both low and high (or one LatentBoxes)")
        return cls((low, high))
