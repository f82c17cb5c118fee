"""One fit of the idiomatic PyMC mixture, run in its own process so the sweep can cap its wall time.

``python -m bench.idiomatic --data PATH --k K --chains C --draws D --tune T --seed S --out FIT.nc``

The model is ``models.gmm.build_gmm(..., likelihood="pm_mixture")``: the same priors and
posterior as the project's model, with the likelihood written as a user would,
``pm.Mixture(w, [pm.MvNormal.dist(mu=mu[k], chol=chol[k]) for k in range(K)])``, and sampled
with ``pm.sample()`` defaults (PyMC's NUTS, jitter+adapt_diag initialisation, no EM start).
The draws then go through the project's own relabelling and diagnostics, and the fit is saved
like any other (``fits/K*.nc`` format), so both sides are judged by the same code.
"""

from __future__ import annotations

import argparse
import time

from analysis.datasets import load_marketing
from analysis.fit import FitSpec, SamplerSettings, postprocess, run_sampler, save_fit
from analysis.transforms import fit_transform
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--k", type=int, required=True)
    parser.add_argument("--chains", type=int, required=True)
    parser.add_argument("--draws", type=int, required=True)
    parser.add_argument("--tune", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    settings = SamplerSettings(args.chains, args.draws, args.tune, args.seed, sampler="pymc")
    options = {"covariance": "full", "likelihood": "pm_mixture"}
    spec, x, dataset = marketing_spec(args.data, options, settings)
    features = list(spec.transform["columns"])
    model = spec.build_model(x, args.k, dataset.features.index, features)
    started = time.perf_counter()
    sampled = run_sampler(model, None, settings)  # no initvals: pm.sample's own initialisation
    seconds = time.perf_counter() - started
    tree = postprocess(sampled, model, spec.mixture, x, spec.identity(args.k), seconds)
    save_fit(tree, args.out)


if __name__ == "__main__":
    main()
