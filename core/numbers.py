"""Numbers as people write them.

Machine output keeps full precision but not binary float noise: ``tidy`` rounds every float of a
result to 15 significant digits, so a mean of 0.01 and 0.012 is ``0.011``, not
``0.011000000000000001`` (15 digits always survive a round trip through a double). It is applied
once, where every surface gets its results (``core.dispatch.execute``).

Human output rounds further: ``number`` keeps a few significant digits without an exponent, and
``duration`` picks the unit by magnitude (15 s, 4.5 min, 3.2 h, 2 d).
"""

from __future__ import annotations

import math

_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def tidy(value):
    """``value`` with every finite float, at any depth of dicts, lists and tuples, rounded to 15
    significant digits; everything else as it is."""
    if isinstance(value, float):
        return float(f"{value:.15g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: tidy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [tidy(v) for v in value]
    if isinstance(value, tuple):
        return tuple(tidy(v) for v in value)
    return value


def number(value, digits: int = 4) -> str:
    """A number for a person: ``digits`` significant digits (never dropping whole digits), no
    trailing zeros, an exponent only for the very large or very small."""
    if not isinstance(value, float) or not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude >= 15 or magnitude < -6:
        return f"{value:.{digits}g}"
    text = f"{value:.{max(0, digits - 1 - magnitude)}f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return "0" if text == "-0" else text


def duration(seconds: float) -> str:
    """``seconds`` in the largest unit that keeps it at least 1: 15 s, 4.5 min, 3.2 h, 2 d."""
    unit, size = next(((u, s) for u, s in _UNITS if abs(seconds) >= s), _UNITS[-1])
    return f"{number(float(seconds) / size, 2)} {unit}"
