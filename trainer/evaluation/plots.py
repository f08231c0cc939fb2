"""Colour ramps for report images (numpy only)."""

from __future__ import annotations

import numpy as np

# A perceptual dark-to-bright ramp (black → purple → orange → yellow), interpolated.
_RAMP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]],
                 np.float64)


def colorize(values: np.ndarray) -> np.ndarray:
    """[h, w] values in 0..1 → [h, w, 3] uint8 colours of the ramp."""
    position = np.clip(values, 0.0, 1.0) * (len(_RAMP) - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, len(_RAMP) - 1)
    fraction = (position - low)[..., None]
    return (_RAMP[low] * (1 - fraction) + _RAMP[high] * fraction).round().astype(np.uint8)
