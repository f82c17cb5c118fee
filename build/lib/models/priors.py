"""Default priors with a user's overrides, the same rule for every mixture."""

from __future__ import annotations


def merge_priors(defaults: dict, overrides: dict | None = None, *, model: str) -> dict:
    """``defaults`` updated by ``overrides``; a key not in ``defaults`` is a ValueError."""
    unknown = set(overrides or {}) - set(defaults)
    if unknown:
        raise ValueError(f"unknown {model} prior(s): {', '.join(sorted(unknown))}")
    return defaults | dict(overrides or {})
