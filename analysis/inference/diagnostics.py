"""Convergence diagnosis of one relabelled fit, computed with ArviZ: one status per fit.

Over the mixture's diagnosed variables (e.g. weights, means, scales) a fit is

- ``ok``: max R-hat <= 1.01, min bulk and tail ESS >= 400, no divergences, every chain's
  E-BFMI >= 0.3;
- ``divergent``: divergent transitions or an E-BFMI below 0.3, a geometry NUTS cannot handle
  (more draws do not fix it); the reason names the parameters the divergent draws sit apart on;
- ``multimodal``: R-hat or ESS short because the chains settle in distinct modes
  (:mod:`analysis.inference.modes`), each of them a settled state: within every mode, split R-hat
  (each chain cut in halves) <= MODE_MAX_RHAT; the reason lists each mode's chains and how its
  segments differ. Chains apart but not settled (very short runs) are ``slow``;
- ``slow``: one mode, but R-hat or ESS short: more warm-up and draws are what to try.

Only ``ok`` fits (and multimodal ones, through chain stacking in the comparison) choose K.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import xarray as xr

from analysis.inference.modes import describe_modes, find_modes, summary

MAX_RHAT = 1.01
MIN_ESS = 400
MIN_BFMI = 0.3
STATUSES = ("ok", "slow", "multimodal", "divergent")
# comparison entries the K rule may choose: ok fits, and multimodal fits by their chain-stacked
# elpd (their status in the comparison table)
CHOOSABLE = ("ok", "stacked")
DIVERGENT_SHOWN = 3  # parameters named in a divergent fit's reason
# A mode is a settled state when its own draws, each chain cut in two halves, have split R-hat at
# most this: loose next to MAX_RHAT, because a mode of one chain has only that chain's draws.
MODE_MAX_RHAT = 1.05
COLUMNS = (
    "K",
    "status",
    "reason",
    "max_rhat",
    "min_ess_bulk",
    "min_ess_tail",
    "divergences",
    "min_bfmi",
    "n_modes",
    "attempts",
    "seconds",
    "sampling_seconds",
)


def convergence(diagnosed: xr.Dataset, method: str) -> xr.Dataset:
    """ArviZ's R-hat (``method="rhat"``) or bulk/tail ESS (``"bulk"``, ``"tail"``) per scalar of
    (chain, draw, ...) ``diagnosed``. A parameter that is constant by construction (the one weight
    at K = 1) has no between/within variance ratio: NaN, which :func:`_extreme` leaves out,
    without the 0/0 RuntimeWarning a user would otherwise read as a fault."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "rhat":
            return az.rhat(diagnosed)
        return az.ess(diagnosed, method=method)


def worst_convergence(diagnosed: xr.Dataset) -> tuple[float, float, float]:
    """(max R-hat, min bulk ESS, min tail ESS) over every scalar of (chain, draw, ...)
    ``diagnosed`` (:func:`convergence`; NaN of constant parameters left out)."""
    return (
        _extreme(convergence(diagnosed, "rhat"), np.max),
        _extreme(convergence(diagnosed, "bulk"), np.min),
        _extreme(convergence(diagnosed, "tail"), np.min),
    )


def _extreme(dataset: xr.Dataset, reduce) -> float:
    values = np.concatenate([np.ravel(v.values) for v in dataset.data_vars.values()])
    values = values[np.isfinite(values)]
    return float(reduce(values)) if len(values) else float("nan")


def divergent_parameters(diagnosed: xr.Dataset, diverging: xr.DataArray) -> list[str]:
    """The scalars whose divergent draws sit furthest from all draws, in posterior sd, e.g.
    ``"scales[3, Fish] 2.1 sd low"``: where in the posterior NUTS meets the geometry it cannot
    follow (a scale near zero, a weight near an empty segment). At most DIVERGENT_SHOWN."""
    shifts = []
    for name, variable in diagnosed.data_vars.items():
        mean = variable.mean(("chain", "draw"))
        shift = (variable.where(diverging).mean(("chain", "draw")) - mean) / np.maximum(
            variable.std(("chain", "draw")), 1e-12
        )
        for index, value in shift.to_series().items():
            where = ", ".join(map(str, index)) if isinstance(index, tuple) else str(index)
            side = "high" if value > 0 else "low"
            shifts.append((abs(value), f"{name}[{where}] {abs(value):.1f} sd {side}"))
    return [text for _, text in sorted(shifts, key=lambda item: -item[0])[:DIVERGENT_SHOWN]]


def mode_convergence(posterior: xr.Dataset, variables: tuple[str, ...], chains: list) -> dict:
    """Max R-hat and min bulk/tail ESS over ``variables`` within one mode's ``chains``, each
    chain cut into two halves (so a mode of one chain has an R-hat too): whether the mode is a
    settled state, and how many effective draws its description rests on."""
    diagnosed = posterior[list(variables)].sel(chain=list(chains))
    half = diagnosed.sizes["draw"] // 2
    halves = [
        diagnosed.isel(draw=slice(start, start + half)).assign_coords(draw=np.arange(half))
        for start in (0, half)
    ]
    diagnosed = xr.concat(halves, dim="half").stack(pseudo_chain=("half", "chain"))
    diagnosed = diagnosed.drop_vars(["pseudo_chain", "half", "chain"]).rename(pseudo_chain="chain")
    diagnosed = diagnosed.transpose("chain", "draw", ...)
    max_rhat, min_ess_bulk, min_ess_tail = worst_convergence(diagnosed)
    return {"max_rhat": max_rhat, "min_ess": min(min_ess_bulk, min_ess_tail)}


def diagnose(posterior: xr.Dataset, sample_stats: xr.Dataset, variables: tuple[str, ...]) -> dict:
    """Diagnostics dict (the :data:`COLUMNS` minus K, attempts and timings, plus ``modes``: the
    chains' modes, JSON-able, highest mean log density first) of a relabelled posterior."""
    diagnosed = posterior[list(variables)]
    max_rhat, min_ess_bulk, min_ess_tail = worst_convergence(diagnosed)
    diverging = sample_stats["diverging"].astype(bool)
    divergences = int(diverging.sum())
    min_bfmi = float(np.min(az.bfmi(sample_stats, var_names="energy")["energy"].values))
    modes = find_modes(posterior, sample_stats["lp"], variables)
    mixing = []
    if not max_rhat <= MAX_RHAT:
        mixing.append(f"R-hat {max_rhat:.3f} > {MAX_RHAT}")
    if not min(min_ess_bulk, min_ess_tail) >= MIN_ESS:
        mixing.append(f"ESS bulk/tail {min_ess_bulk:.0f}/{min_ess_tail:.0f} < {MIN_ESS}")
    geometry = []
    if divergences:
        chains = diverging.any("draw")
        listed = ", ".join(str(c) for c in diverging["chain"].values[chains.values])
        involved = divergent_parameters(diagnosed, diverging)
        geometry.append(
            f"{divergences} divergent transitions (chains {listed})"
            + (f", at {'; '.join(involved)}" if involved else "")
        )
    if not min_bfmi >= MIN_BFMI:
        geometry.append(f"E-BFMI {min_bfmi:.2f} < {MIN_BFMI}")
    if geometry:
        status, reasons = "divergent", geometry + mixing
    elif not mixing:
        status, reasons = "ok", []
    elif len(modes) > 1 and all(
        mode_convergence(posterior, variables, list(mode.chains))["max_rhat"] <= MODE_MAX_RHAT
        for mode in modes
    ):
        best = ", ".join(str(chain) for chain in modes[0].chains)
        differences = "; ".join(describe_modes(modes, posterior, variables))
        status = "multimodal"
        modes_text = f"chains in {len(modes)} modes: highest density in chains {best}"
        reasons = [*mixing, f"{modes_text}; {differences}"]
    else:
        unsettled = "chains apart but not settled" if len(modes) > 1 else "one mode"
        status = "slow"
        reasons = [*mixing, f"{unsettled}: more warm-up and draws should fix it"]
    return {
        "status": status,
        "reason": "; ".join(reasons),
        "max_rhat": max_rhat,
        "min_ess_bulk": min_ess_bulk,
        "min_ess_tail": min_ess_tail,
        "divergences": divergences,
        "min_bfmi": min_bfmi,
        "n_modes": len(modes),
        "modes": summary(modes),
    }
