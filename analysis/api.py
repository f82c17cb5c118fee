"""The Python API: the ``segment`` steps on a pandas DataFrame, from a notebook.

:class:`Segmentation` runs the code the commands run: :meth:`~Segmentation.fit` is
``segment fit`` (the same checks, transform, model, sampling and stopping rule, fits saved in a
run directory), :meth:`~Segmentation.compare` is ``segment compare`` without its files,
:meth:`~Segmentation.profiles` the profile table of ``segment report``, and
:meth:`~Segmentation.score` is ``segment score``. Bad input raises
:class:`~analysis.errors.InputError` with the one-line message the command prints; the message
names an option as the command line spells it (``--k`` is the argument ``k``).

The examples of the methods continue the class example, which fits ``seg`` once (the tests run
them in that order: ``tests/test_api.py``).
"""

from __future__ import annotations

import hashlib
import inspect
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import pandas as pd

from analysis.data.datasets import FRAME_SOURCE, Dataset, load_frame
from analysis.data.joins import SEPARATOR, join_variables, parse_joins
from analysis.decisions.score import check_draws, fit_columns, joined_like_fit, score_dataset
from analysis.distributed import ClusterOptions, cluster_options, open_cluster
from analysis.errors import InputError, check_choice
from analysis.inference.fit import adaptation_of, backend_of, described_mode, load_fit, saved_attrs
from analysis.inference.profiles import PRECISE_THRESHOLD, fit_config, segment_profiles
from analysis.paths import RunPaths, atomic_path, run_lock
from analysis.reporting.report import check_threshold
from analysis.reporting.report_outputs import fitted_ks, is_true, read_step_output, reported_k
from analysis.selection import sweep
from analysis.selection.compare import (
    Comparison,
    check_compare_options,
    compare_fits,
    moved,
    write_comparison,
)
from analysis.selection.loo import MAX_MOMENT_MATCH
from analysis.workflow.fit_plan import (
    fitted_transform,
    parse_k_range,
    plan_fit,
    run_plan,
    sampler_settings,
    sweep_rules,
)
from analysis.workflow.pipeline import DEFAULT_PRESET, PRESETS


class Segmentation:
    """Bayesian mixture segmentation of a customer table, K chosen by PSIS-LOO.

    The parameters are those of ``segment run`` (``segment fit`` and the preset); they are
    stored as given and checked by :meth:`fit`, before any sampling. ``k``, ``chains``,
    ``draws``, ``tune`` and ``budget`` left at None take the ``preset``'s values.

    Parameters
    ----------
    model : str, optional
        ``"gmm"``, ``"hurdle"``, ``"lca"``, ``"mixed-gmm"``, ``"mixed-hurdle"`` or ``"mixed"``;
        default: chosen from the data as ``segment fit`` does (the hurdle for non-negative
        features with exact zeros, such as spend; the latent class model for categorical ones).
    k : int, str or iterable of int, optional
        The K to fit, e.g. ``range(1, 5)``, ``[2, 4]``, ``3`` or ``"1-4"``; default: the
        preset's.
    preset : str, default "quick"
        ``"quick"`` or ``"full"`` (``analysis.workflow.pipeline.PRESETS``): K range, chains, draws,
        warm-up, time budget and moment matching.
    chains, draws, tune : int, optional
        Chains, posterior draws per chain and warm-up draws per chain; default: the preset's.
    seed : int, default 0
        Seed of the EM starts and of the sampler.
    transform : str, optional
        ``"standardize"``, ``"log-standardize"``, ``"none"``, ``"one-hot"`` or
        ``"indicators"``; default: log-standardize for spend, standardize when a feature has a
        negative value, indicators for categorical columns.
    covariance : str, default "full"
        Segment covariance of the continuous features: ``"full"`` or ``"diag"``.
    sampler, backend, adaptation : str
        ``"nutpie"`` or ``"pymc"``; nutpie's compiler ``"jax"`` or ``"numba"``; its mass matrix
        ``"low_rank"`` or ``"diag"``.
    budget : float, optional
        Minutes of wall time within which slow fits are sampled again, longer; 0: never;
        default: the preset's.
    patience : int, optional
        Stop after this many K in a row that do not beat the best K (0: fit every K); default:
        ``analysis.selection.sweep.PATIENCE``.
    stop_at_empty : bool, default True
        Stop after a fit with a nearly empty segment.
    subsample : int, optional
        Sample the posterior on this many random customers and assign every customer.
    missing : str, default "marginalize"
        A missing value drops out of its customer's likelihood (``"marginalize"``) or is refused
        (``"error"``), in :meth:`fit` and :meth:`score`.
    scheduler : str, optional
        Address of a Dask scheduler (``"tcp://host:8786"``): :meth:`fit` (one K per task),
        :meth:`compare` (one K-fold refit per task) and :meth:`score` (blocks of customers) send
        their parallel parts there, as ``--scheduler`` does (``analysis.distributed``).
    workers : int, optional
        Start a local Dask cluster of this many single-threaded worker processes for those
        parts instead (``--workers``); neither: everything in this process (the default).

    Attributes
    ----------
    run_dir_ : pathlib.Path
        The run directory holding the fits (``fits/K*.nc``, ``diagnostics.csv``,
        ``skipped.json``): the ``out`` of :meth:`fit`, a temporary directory removed with this
        object, or the directory :meth:`load` read.
    model_ : str
        The model fitted (``"mixed"`` and the default resolved).
    comparison_ : pandas.DataFrame or None
        The table of the last :meth:`compare` (or the run's ``comparison.csv``); None before.
    chosen_k_ : int or None
        The K the comparison chose; None before :meth:`compare` and when no fit passed its
        diagnostics.

    Examples
    --------
    Two well-separated segments of 150 simulated customers, fitted with K = 1 and 2 on a tiny
    budget (2 chains of 100 draws; ``budget=0``: slow fits are not sampled again):

    >>> import numpy as np
    >>> import pandas as pd
    >>> from analysis import Segmentation
    >>> from analysis.data.simulate import gaussian_mixture
    >>> truth = gaussian_mixture(n=150, weights=(0.6, 0.4), n_features=2, seed=1)
    >>> ids = pd.Index(1000 + np.arange(150), name="customer")
    >>> customers = pd.DataFrame(truth.x, index=ids, columns=["f0", "f1"])
    >>> seg = Segmentation(k=range(1, 3), chains=2, draws=100, tune=100, budget=0)
    >>> seg.fit(customers)
    Segmentation(k=range(1, 3), chains=2, draws=100, tune=100, budget=0)
    >>> seg.model_
    'gmm'
    """

    def __init__(
        self,
        model: str | None = None,
        k: int | str | Iterable[int] | None = None,
        *,
        preset: str = DEFAULT_PRESET,
        chains: int | None = None,
        draws: int | None = None,
        tune: int | None = None,
        seed: int = 0,
        transform: str | None = None,
        covariance: str = "full",
        sampler: str = "nutpie",
        backend: str = "jax",
        adaptation: str = "low_rank",
        budget: float | None = None,
        patience: int | None = None,
        stop_at_empty: bool = True,
        subsample: int | None = None,
        missing: str = "marginalize",
        scheduler: str | None = None,
        workers: int | None = None,
    ):
        self.model = model
        self.k = k
        self.preset = preset
        self.chains = chains
        self.draws = draws
        self.tune = tune
        self.seed = seed
        self.transform = transform
        self.covariance = covariance
        self.sampler = sampler
        self.backend = backend
        self.adaptation = adaptation
        self.budget = budget
        self.patience = patience
        self.stop_at_empty = stop_at_empty
        self.subsample = subsample
        self.missing = missing
        self.scheduler = scheduler
        self.workers = workers

    def __repr__(self) -> str:
        given = [
            f"{name}={getattr(self, name)!r}"
            for name, parameter in inspect.signature(type(self)).parameters.items()
            if repr(getattr(self, name)) != repr(parameter.default)  # an array k compares too
        ]
        return f"{type(self).__name__}({', '.join(given)})"

    def fit(
        self,
        customers: pd.DataFrame,
        *,
        categorical: list[str] | None = None,
        join: Iterable[str | Iterable[str]] = (),
        out: str | Path | None = None,
    ) -> Segmentation:
        """Fit the mixture with every K, as ``segment fit`` does, into a run directory.

        Parameters
        ----------
        customers : pandas.DataFrame
            One row per customer, indexed by customer ID (a default ``RangeIndex``: numbered by
            row). Every column is a numeric feature except the categorical ones; both kinds
            together give the mixed model.
        categorical : list of str, optional
            The categorical columns; default: the columns of dtype ``category``.
        join : iterable of str or of iterables of str, optional
            Groups of categorical columns that nearly determine each other, each fitted as one
            joint variable (``--join``, :mod:`analysis.data.joins`): ``["a+b"]`` or
            ``[("a", "b")]``. :meth:`score` joins them in a new table too.
        out : str or pathlib.Path, optional
            Run directory, as ``segment fit --out``: each fit is saved there as it finishes, and
            the fits already saved with the same configuration and data are reused (an
            interrupted fit resumes). Default: a temporary directory, removed with this object
            or its next fit (:meth:`save` keeps the fits).

        Returns
        -------
        Segmentation
            This object, fitted.

        Raises
        ------
        InputError
            Before any sampling, for a bad parameter (an unknown model, a malformed ``k``, ...),
            a column that is not numeric, or data the model cannot take.

        Examples
        --------
        Fitting again into a run directory that holds these fits reuses them, sampling
        nothing:

        >>> import tempfile
        >>> directory = seg.save(tempfile.mkdtemp())
        >>> saved = (directory / "fits" / "K2.nc").stat().st_mtime_ns
        >>> seg.fit(customers, out=directory).run_dir_ == directory
        True
        >>> (directory / "fits" / "K2.nc").stat().st_mtime_ns == saved
        True
        """
        check_choice("--preset", self.preset, sorted(PRESETS))
        cluster = self._cluster()
        ks = _k_values(self._option("k"))
        settings = sampler_settings(
            self._option("chains"),
            self._option("draws"),
            self._option("tune"),
            self.seed,
            self.sampler,
            self.backend,
            self.adaptation,
        )
        rules = sweep_rules(self._option("budget"), self.patience, self.stop_at_empty)
        paths = None if out is None else RunPaths(Path(out))
        if paths is not None:
            paths.check_writable("--out")
        groups = parse_joins([g if isinstance(g, str) else SEPARATOR.join(g) for g in join])
        dataset = load_frame(customers, categorical=categorical, missing=self.missing)
        dataset = join_variables(dataset, groups)
        transform, notes = fitted_transform(dataset, self.transform, "indicators")
        plan = plan_fit(
            dataset, transform, notes, self.model, self.covariance, settings, self.subsample,
            tuple(groups),
        )  # fmt: skip
        plan = replace(plan, spec=replace(plan.spec, source=_data_source(dataset)))
        scratch = None  # an interrupted fit leaves this object as it was
        if paths is None:
            scratch = tempfile.TemporaryDirectory(prefix="segment-")
            paths = RunPaths(Path(scratch.name))
        sweep.check_saved_fits(paths, ks)
        with open_cluster(cluster):
            run_plan(plan, ks, paths, rules)
        self._scratch, self.run_dir_, self.model_ = scratch, paths.root, plan.spec.model
        self._set_comparison(None)
        return self

    def diagnostics(self) -> pd.DataFrame:
        """Convergence of every fit, as ``diagnostics.csv``.

        Returns
        -------
        pandas.DataFrame
            One row per K, sorted: ``status`` (``ok``, ``slow``, ``multimodal``, ``divergent``;
            ``skipped`` for a K the stopping rule did not fit), ``reason``, ``max_rhat``,
            ``min_ess_bulk``, ``min_ess_tail``, ``divergences``, ``min_bfmi``, ``n_modes``,
            ``attempts``, ``seconds`` and ``sampling_seconds``.

        Examples
        --------
        >>> table = seg.diagnostics()
        >>> table["K"].tolist()
        [1, 2]
        >>> table.columns[:4].tolist()
        ['K', 'status', 'reason', 'max_rhat']
        """
        return sweep.diagnostics_table(self._run())

    def compare(
        self,
        *,
        moment_matching: bool | None = None,
        max_moment_match: int = MAX_MOMENT_MATCH,
        kfold: int | None = None,
    ) -> pd.DataFrame:
        """Compare the fits by PSIS-LOO, WAIC and the BIC baseline and choose K, as
        ``segment compare`` does; nothing is written.

        Parameters
        ----------
        moment_matching : bool, optional
            Moment-match the customers with a high Pareto k; default: the preset's.
        max_moment_match : int, default ``analysis.selection.loo.MAX_MOMENT_MATCH``
            At most this many customers per fit.
        kfold : int, optional
            Exact K-fold cross-validation with this many folds (refits: slow) for fits whose
            Pareto k stay high; default: off (such rows are marked unreliable).

        Returns
        -------
        pandas.DataFrame
            The comparison table, one row per K: ``elpd_loo``, ``se_loo``, ``elpd_diff`` and
            ``dse`` (against the best usable fit), ``weight``, ``status``, ``chosen``, the
            baseline's ``bic`` and the columns of ``comparison.csv``
            (``analysis.selection.compare.COLUMNS``). Also stored as ``comparison_``, and its choice
            as ``chosen_k_``.

        Examples
        --------
        >>> table = seg.compare()
        >>> table["K"].tolist()
        [1, 2]
        >>> table.columns[:6].tolist()
        ['K', 'elpd_loo', 'se_loo', 'p_loo', 'elpd_diff', 'dse']
        """
        paths = self._run()
        check_compare_options(kfold, max_moment_match)
        if moment_matching is None:
            check_choice("--preset", self.preset, sorted(PRESETS))
            moment_matching = PRESETS[self.preset]["moment_match"]
        with open_cluster(self._cluster()):
            comparison = compare_fits(
                paths,
                moment_matching=moment_matching,
                max_moment_match=max_moment_match,
                kfold_folds=kfold,
            )
        self._set_comparison(comparison)
        return comparison.table

    def profiles(self, k: int | None = None) -> pd.DataFrame:
        """Segment profiles of one fit, as ``profiles.csv`` of ``segment report``.

        Parameters
        ----------
        k : int, optional
            The fit to describe; default: ``chosen_k_`` (when no fit passed its diagnostics,
            the comparison rule over every fit, with a warning, as ``segment report`` does).

        Returns
        -------
        pandas.DataFrame
            One row per segment and feature (per segment, variable and level for a latent
            class fit): the segment's ``name``, ``tier``, ``weight``, the feature's mean in its
            own units (``mean_spend``) and for spend its revenue share, each with its 94% HDI
            (``*_hdi_low``, ``*_hdi_high``).

        Examples
        --------
        >>> profiles = seg.profiles(k=2)
        >>> profiles[["segment", "feature"]].drop_duplicates().shape
        (4, 2)
        >>> profiles.filter(like="mean_spend").columns.tolist()
        ['mean_spend', 'mean_spend_hdi_low', 'mean_spend_hdi_high']
        """
        tree = described_mode(load_fit(self._run().fit(self._k(k))))
        return segment_profiles(tree)[1]

    def score(
        self,
        customers: pd.DataFrame,
        k: int | None = None,
        *,
        draws: int | None = None,
        precise_threshold: float = PRECISE_THRESHOLD,
    ) -> pd.DataFrame:
        """Assign customers with a fit's posterior, without resampling, as ``segment score``.

        Parameters
        ----------
        customers : pandas.DataFrame
            Indexed by customer ID, with the fit's columns (others are ignored); on the fit's
            transform constants, never refitted.
        k : int, optional
            The fit to score with; default as in :meth:`profiles`.
        draws : int, optional
            At most this many posterior draws, evenly thinned within each chain (large tables);
            default: all.
        precise_threshold : float, default 0.95
            An assignment is ``precise`` when the lower 94% HDI bound of its modal segment's
            probability is at least this.

        Returns
        -------
        pandas.DataFrame
            One row per customer, as ``segment score`` writes: ``customer_id``, the modal
            ``segment`` with its ``probability`` and 94% HDI, ``confidence``, ``tier``,
            ``segment_name``, each segment's membership probability ``p_<k>`` with its HDI,
            ``lpd`` (nats, model scale) and ``novel``. Scoring the fitted customers gives the
            fit's own assignments.

        Examples
        --------
        >>> scores = seg.score(customers.head(3), k=2)
        >>> scores["customer_id"].tolist()
        [1000, 1001, 1002]
        >>> scores.filter(like="p_0").columns.tolist()
        ['p_0', 'p_0_hdi_low', 'p_0_hdi_high']
        """
        check_threshold(precise_threshold)
        check_draws(draws)
        tree = load_fit(self._run().fit(self._k(k)))
        config = fit_config(tree)
        features, categorical = fit_columns(config)
        dataset = load_frame(customers, features, categorical, self.missing, fitting=False)
        dataset = joined_like_fit(dataset, config)
        with open_cluster(self._cluster()):
            return score_dataset(tree, dataset, precise_threshold, draws)

    def save(self, directory: str | Path) -> Path:
        """Write the fits as a run directory of ``segment fit --out``, and the comparison of
        :meth:`compare` as ``segment compare`` writes it.

        ``fits/K*.nc`` (one ArviZ DataTree per K, its configuration in the attributes),
        ``diagnostics.csv``, ``skipped.json`` and the baseline the comparison read or ran
        (``baseline.csv`` and its figure); after :meth:`compare`, also ``comparison.csv``,
        ``comparison.md`` and the comparison figures, their commands naming ``directory``. The
        commands read it (``segment compare --run DIRECTORY`` when there is no comparison yet,
        ``segment report`` and ``segment score``), and :meth:`load` reads it back, with the
        comparison.

        Parameters
        ----------
        directory : str or pathlib.Path
            Made when absent. Fits already in it must be these ones (saved before).

        Returns
        -------
        pathlib.Path
            The directory.

        Examples
        --------
        >>> import tempfile
        >>> table = seg.compare()
        >>> directory = seg.save(tempfile.mkdtemp())
        >>> sorted(path.name for path in (directory / "fits").iterdir())
        ['K1.nc', 'K2.nc']
        >>> Segmentation.load(directory).comparison_["K"].tolist()
        [1, 2]
        """
        source, target = self._run(), RunPaths(Path(directory))
        if target.root.resolve() == source.root.resolve():
            return target.root
        target.check_writable("directory")
        ours = {path.name: saved_attrs(path)["config"] for path in source.fit_files()}
        for path in target.fit_files():
            if saved_attrs(path)["config"] != ours.get(path.name):
                raise InputError(
                    f"{path}: another fit; save into a new directory or one these fits were "
                    "saved in"
                )
        with run_lock(target):
            baseline = [source.baseline_csv, source.figure("baseline")]
            for path in [*source.fit_files(), source.skipped_json, *baseline]:
                if path.is_file():
                    with atomic_path(target.root / path.relative_to(source.root)) as temporary:
                        shutil.copyfile(path, temporary)
            sweep.write_diagnostics(target)
            if self._comparison is not None:
                write_comparison(moved(self._comparison, target), target)
        return target.root

    @classmethod
    def load(cls, directory: str | Path) -> Segmentation:
        """A segmentation of the fits in a run directory (:meth:`save`, ``segment fit --out``
        or ``segment run --out``); its ``comparison.csv``, when present, is ``comparison_``.

        Parameters
        ----------
        directory : str or pathlib.Path
            A run directory with ``fits/K*.nc``. It is read in place: :meth:`fit` with it as
            ``out`` writes there.

        Returns
        -------
        Segmentation
            Fitted, with the parameters the fits were made with.

        Examples
        --------
        >>> import tempfile
        >>> Segmentation.load(seg.save(tempfile.mkdtemp()))
        Segmentation(model='gmm', k=[1, 2], chains=2, draws=100, tune=100, transform='standardize')
        """
        paths = RunPaths(Path(directory))
        if not paths.root.is_dir():
            raise InputError(f"--run {paths.root}: not a directory")
        ks = fitted_ks(paths)
        if not ks:
            raise InputError(
                f"{paths.fits_dir}: no fits found; run `segment fit --out {paths.root}`"
            )
        attrs = saved_attrs(paths.fit(ks[0]))
        config = attrs.get("request", attrs["config"])  # a slow fit sampled longer: as asked
        sampler = config["sampler"]
        loaded = cls(
            model=config["model"],
            k=ks,
            chains=sampler["chains"],
            draws=sampler["draws"],
            tune=sampler["tune"],
            seed=sampler["seed"],
            transform=config["transform"]["name"],
            covariance=config["options"].get("covariance", "full"),
            sampler=sampler["sampler"],
            backend=backend_of(sampler),
            adaptation=adaptation_of(sampler),
            subsample=config.get("subsample"),
        )
        loaded.run_dir_, loaded.model_ = paths.root, config["model"]
        loaded._set_comparison(None)
        if paths.comparison_csv.is_file():
            loaded.comparison_ = read_step_output(paths, "comparison.csv")
            loaded.chosen_k_ = _chosen_k(loaded.comparison_)
        return loaded

    def _cluster(self) -> ClusterOptions:
        """``scheduler`` and ``workers``, checked (InputError with the options' messages)."""
        return cluster_options(self)

    def _option(self, name: str):
        """The parameter ``name``, or the preset's value when it is None."""
        value = getattr(self, name)
        return PRESETS[self.preset][name] if value is None else value

    def _run(self) -> RunPaths:
        """The run directory; InputError before :meth:`fit` or :meth:`load`."""
        if not hasattr(self, "run_dir_"):
            raise InputError("not fitted: call fit(customers) or Segmentation.load(directory)")
        return RunPaths(self.run_dir_)

    def _set_comparison(self, comparison: Comparison | None) -> None:
        """Store a comparison, its table and the K it chose (None: none)."""
        self._comparison = comparison
        self.comparison_ = None if comparison is None else comparison.table
        self.chosen_k_ = None if comparison is None else _chosen_k(comparison.table)

    def _k(self, k: int | None) -> int:
        """``k`` when it is fitted, else the comparison's choice (:func:`reported_k`)."""
        if k is None and self.comparison_ is None:
            raise InputError("no K chosen yet: call compare() first, or pass k")
        return reported_k(self._run(), k, self.comparison_)[0]


def _chosen_k(table: pd.DataFrame) -> int | None:
    """The K a comparison table chose, None when it chose none."""
    chosen = table.loc[table["chosen"].map(is_true), "K"]
    return int(chosen.iloc[0]) if len(chosen) == 1 else None


def _k_values(k: int | str | Iterable[int]) -> list[int]:
    """The sorted K of ``k``: a K range text (``"1-4"``, :func:`parse_k_range`), one integer or
    integers; InputError, with the message of ``--k``, for anything else."""
    if isinstance(k, str):
        return parse_k_range(k)
    values = list(k) if isinstance(k, Iterable) else [k]
    return parse_k_range(",".join(map(str, values)))


def _data_source(dataset: Dataset) -> str:
    """``DataFrame sha256:<16 hex digits>``: the source a fit of ``dataset`` (from
    :func:`~analysis.data.datasets.load_frame`) records, a digest of its customer IDs, columns and
    values, so that a run directory reuses a saved fit only for the same data."""
    parts = [dataset.features] + ([] if dataset.categories is None else [dataset.categories])
    digest = hashlib.sha256()
    for frame in parts:
        digest.update(pd.util.hash_pandas_object(frame).to_numpy().tobytes())
        digest.update("\0".join(frame.columns).encode())
    return f"{FRAME_SOURCE} sha256:{digest.hexdigest()[:16]}"
