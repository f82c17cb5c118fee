"""One fit of the idiomatic PyMC mixture, run in its own process so the sweep can cap its wall time.

``python -m bench.idiomatic --data PATH --k K --chains C --draws D --tune T --seed S --cap SECONDS
--out FIT.nc``

The model is ``models.gmm.build_gmm(..., likelihood="pm_mixture")``: the same priors and
posterior as the project's model, with the likelihood written as a user would,
``pm.Mixture(w, [pm.MvNormal.dist(mu=mu[k], chol=chol[k]) for k in range(K)])``, and sampled
with ``pm.sample()`` defaults (PyMC's NUTS, jitter+adapt_diag initialisation, no EM start).
The draws then go through the project's own relabelling and diagnostics, and the fit is saved
like any other (``fits/K*.nc`` format), so both sides are judged by the same code.

At ``--cap`` seconds after the start (compilation included) sampling is stopped and the posterior
draws made so far are kept (``pm.sample`` keeps the longest equal-length set of chains).
``FIT.progress.json`` records what every chain reached: warm-up and posterior iterations and
gradient evaluations. No fit is saved when no chain got past its warm-up.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from analysis.data.datasets import load_marketing
from analysis.data.transforms import fit_transform
from analysis.inference.fit import FitSpec, SamplerSettings, postprocess, run_sampler, save_fit
from models import MIXTURES


def marketing_spec(data: str, options: dict, sampler: SamplerSettings, model: str = "gmm"):
    """The bench's data and fit spec: marketing, log-standardize. Returns (spec, x, dataset).

    The options gain those the model reads off the transform (``Mixture.data_options``, as in
    ``segment fit``), e.g. the hurdle's model-scale location of a zero spend.
    """
    dataset = load_marketing(data)
    transform = fit_transform("log-standardize", dataset.features)
    options = options | MIXTURES[model].data_options(transform, list(dataset.features.columns))
    spec = FitSpec(
        dataset.name, dataset.source, model, transform.to_config(), options, sampler=sampler
    )
    return spec, transform.apply(dataset.features), dataset


class CappedProgress:
    """``pm.sample`` callback: counts each chain's warm-up and posterior iterations and gradient
    evaluations (NUTS ``tree_size``), and stops sampling once ``cap`` seconds have passed since
    ``started`` (a ``time.perf_counter`` value)."""

    def __init__(self, chains: int, cap: float, started: float):
        self.tune, self.draws, self.gradients = [0] * chains, [0] * chains, [0] * chains
        self.cap, self.started, self.capped = cap, started, False

    def __call__(self, trace, draw) -> None:
        counts = self.tune if draw.tuning else self.draws
        counts[draw.chain] += 1
        self.gradients[draw.chain] += int(draw.stats[0]["tree_size"])
        if time.perf_counter() - self.started > self.cap:
            self.capped = True
            raise KeyboardInterrupt  # pm.sample stops and keeps the draws so far

    def summary(self) -> dict:
        return {
            "capped": self.capped,
            "tune": self.tune,
            "draws": self.draws,
            "gradient_evaluations": self.gradients,
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--k", type=int, required=True)
    parser.add_argument("--chains", type=int, required=True)
    parser.add_argument("--draws", type=int, required=True)
    parser.add_argument("--tune", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--cap", type=float, required=True, help="seconds, compilation included")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    started = time.perf_counter()

    settings = SamplerSettings(args.chains, args.draws, args.tune, args.seed, sampler="pymc")
    options = {"covariance": "full", "likelihood": "pm_mixture"}
    spec, x, dataset = marketing_spec(args.data, options, settings)
    features = list(spec.transform["columns"])
    model = spec.build_model(x, args.k, dataset.features.index, features)
    progress = CappedProgress(args.chains, args.cap, started)
    try:  # no initvals: pm.sample's own initialisation
        sampled = run_sampler(model, None, settings, callback=progress)
    except ValueError:  # pm.sample: "Not enough samples to build a trace" (all still warming up)
        sampled = None
    seconds = time.perf_counter() - started
    progress_path = args.out.with_suffix(".progress.json")
    progress_path.write_text(json.dumps(progress.summary() | {"seconds": seconds}))
    if sampled is not None:
        tree = postprocess(sampled, model, spec.mixture, x, spec.identity(args.k), seconds)
        save_fit(tree, args.out)


if __name__ == "__main__":
    main()
