"""Feature transforms between the data's units and the scale the models work on.

- ``standardize``: z = (x - mean) / sd, the original analysis' protocol; any finite values.
- ``log-standardize``: z = (log1p(x) - mean) / sd, the default for spend (right-skewed, many zeros);
  needs x >= 0.
- ``none``: the values as given (already on a common scale, e.g. z-scores); any finite values.
- ``one-hot``: categorical columns as drop-first 0/1 dummies (the Dunnhumby GMM baseline).
- ``indicators``: categorical columns as 0/1 indicators of every level, nothing dropped (exactly
  one 1 per column and row): the latent class model's data.

A fitted transform is a small frozen record that round-trips through a JSON-able dict, so a saved
fit carries the exact transform used and profiles can map results back to original units.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

TRANSFORMS = ("standardize", "log-standardize", "none", "one-hot", "indicators")
LOG_TRANSFORMS = ("log-standardize",)  # transforms that need values >= 0
CATEGORICAL_TRANSFORMS = ("one-hot", "indicators")


@dataclass(frozen=True)
class FittedTransform:
    """A transform with its fitted constants.

    Attributes
    ----------
    name : one of :data:`TRANSFORMS`.
    columns : names of the (D,) model-scale features.
    center, scale : (D,) constants; model scale = (g(x) - center) / scale, g = identity or log1p.
    levels : for ``one-hot`` and ``indicators``, the category levels of each input column (all of
        them; ``one-hot`` drops the first in its columns).
    """

    name: str
    columns: tuple[str, ...]
    center: tuple[float, ...]
    scale: tuple[float, ...]
    levels: tuple[tuple[str, ...], ...] = ()

    def apply(self, frame: pd.DataFrame) -> np.ndarray:
        """(N, D) model-scale matrix from a (N, columns) frame in original units."""
        if self.name in CATEGORICAL_TRANSFORMS:
            return _dummies(frame, self.levels, drop_first=self.name == "one-hot")
        values = frame.to_numpy(dtype=float)
        if self.name == "log-standardize":
            values = np.log1p(values)
        return (values - np.asarray(self.center)) / np.asarray(self.scale)

    def to_original(self, z: np.ndarray) -> np.ndarray:
        """Elementwise inverse: model-scale values (..., D) back to original units."""
        values = np.asarray(z) * np.asarray(self.scale) + np.asarray(self.center)
        return np.expm1(values) if self.name == "log-standardize" else values

    def original_mean(self, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        """Mean in original units of a Gaussian N(mean, var) on the model scale, per feature.

        For ``log-standardize`` the Gaussian is lognormal in 1 + x, so the functional is
        E[x] = exp(m + s^2 / 2) - 1 with m, s^2 the log1p-scale mean and variance. Shapes
        broadcast: (..., D) in, (..., D) out.
        """
        center, scale = np.asarray(self.center), np.asarray(self.scale)
        log_mean = np.asarray(mean) * scale + center
        if self.name != "log-standardize":
            return log_mean
        return np.expm1(log_mean + 0.5 * np.asarray(var) * scale**2)

    def original_probability_below(self, threshold: float, mean, var) -> np.ndarray:
        """P(x < threshold) in original units under N(mean, var) on the model scale (..., D)."""
        z = (self._forward_scalar(threshold) - np.asarray(mean)) / np.sqrt(var)
        return stats.norm.cdf(z)

    def model_zero(self) -> tuple[float, ...]:
        """(D,) model-scale location of a value of 0 in original units (a zero spend)."""
        return tuple(float(v) for v in self._forward_scalar(0.0))

    def to_config(self) -> dict:
        return asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> FittedTransform:
        return cls(
            name=config["name"],
            columns=tuple(config["columns"]),
            center=tuple(config["center"]),
            scale=tuple(config["scale"]),
            levels=tuple(tuple(level) for level in config.get("levels", ())),
        )

    def _forward_scalar(self, value: float) -> np.ndarray:
        raw = np.log1p(value) if self.name == "log-standardize" else value
        return (raw - np.asarray(self.center)) / np.asarray(self.scale)


def fit_transform(name: str, frame: pd.DataFrame) -> FittedTransform:
    """Fit ``name`` on a (N, columns) frame; raises ValueError for an unknown name."""
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform '{name}' (choose from {', '.join(TRANSFORMS)})")
    if name in CATEGORICAL_TRANSFORMS:
        levels = tuple(tuple(map(str, _levels(frame[c]))) for c in frame.columns)
        first = 1 if name == "one-hot" else 0
        columns = tuple(
            f"{c}={level}"
            for c, lv in zip(frame.columns, levels, strict=True)
            for level in lv[first:]
        )
        width = len(columns)
        return FittedTransform(name, columns, (0.0,) * width, (1.0,) * width, levels)
    values = frame.to_numpy(dtype=float)
    if name == "none":
        width = values.shape[1]
        return FittedTransform(name, tuple(map(str, frame.columns)), (0.0,) * width, (1.0,) * width)
    if name == "log-standardize":
        values = np.log1p(values)
    return FittedTransform(
        name,
        tuple(map(str, frame.columns)),
        tuple(np.nanmean(values, axis=0).tolist()),  # missing values (NaN) left out
        tuple(np.nanstd(values, axis=0).tolist()),  # population sd, as sklearn's StandardScaler
    )


def indicators_of(levels: dict[str, list[str]]) -> FittedTransform:
    """The ``indicators`` transform of categorical columns with known ``levels`` (variable ->
    its levels, in column order), e.g. a saved fit's: new data get the fit's columns."""
    columns = tuple(f"{c}={level}" for c, lv in levels.items() for level in lv)
    width = len(columns)
    return FittedTransform(
        "indicators", columns, (0.0,) * width, (1.0,) * width, tuple(map(tuple, levels.values()))
    )


def _levels(column: pd.Series) -> list:
    if isinstance(column.dtype, pd.CategoricalDtype):
        return list(column.cat.categories)
    return sorted(column.dropna().unique())


def _dummies(
    frame: pd.DataFrame, levels: tuple[tuple[str, ...], ...], drop_first: bool = True
) -> np.ndarray:
    first = 1 if drop_first else 0
    blocks = [
        (frame[c].astype(str).to_numpy()[:, None] == np.asarray(lv[first:])[None, :])
        for c, lv in zip(frame.columns, levels, strict=True)
    ]
    return np.concatenate(blocks, axis=1).astype(float)
