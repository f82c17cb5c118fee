"""The Python API (``analysis.api``).

- Its docstring examples run, in order, in one namespace: the class example fits 150 simulated
  customers with K = 1, 2 (2 chains of 100 draws), the methods' examples use that fit. The same
  fit then shows that scoring the fitted customers gives their own assignments, and that the
  commands read what ``save`` writes and compute what the API computes.
- Bad input raises the command line's one-line messages, before any sampling.
- (slow) The notebook flow finds three well-separated simulated segments.
"""

from __future__ import annotations

import doctest
import io
import tomllib

import numpy as np
import pandas as pd
import pytest

import analysis
from analysis import Segmentation, api
from analysis.cli import main
from analysis.data.datasets import FRAME_SOURCE, load_frame
from analysis.data.simulate import gaussian_mixture, match_to_truth
from analysis.errors import InputError
from analysis.inference.fit import described_mode, load_fit
from analysis.inference.profiles import assignment_table, segment_profiles
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def examples() -> tuple[int, str, dict]:
    """Run every docstring example of ``analysis.api`` in name order (the class example first)
    in one namespace: (failures, the failure report, the namespace)."""
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    namespace: dict = {}
    report = io.StringIO()
    for test in doctest.DocTestFinder().find(api):
        test.globs = namespace
        runner.run(test, out=report.write, clear_globs=False)
    return runner.failures, report.getvalue(), namespace


@pytest.mark.sampling
def test_the_docstring_examples_run(examples):
    failures, report, _ = examples
    assert failures == 0, report


def test_every_public_method_has_an_example():
    tested = {test.name.rsplit(".", 1)[-1] for test in doctest.DocTestFinder().find(api)}
    public = {name for name in vars(Segmentation) if not name.startswith("_")}
    assert public | {"Segmentation"} <= tested


def fit_assignments(seg: Segmentation, k: int) -> pd.DataFrame:
    """The fit's own assignments, as ``assignments.csv`` of ``segment report``."""
    tree = described_mode(load_fit(seg.run_dir_ / "fits" / f"K{k}.nc"))
    tiers = segment_profiles(tree)[0].set_index("segment")["tier"]
    return assignment_table(tree, tiers)


@pytest.mark.sampling
def test_scoring_the_fitted_customers_gives_their_assignments(examples):
    seg, customers = examples[2]["seg"], examples[2]["customers"]
    scores = seg.score(customers, k=2)
    assignments = fit_assignments(seg, 2)
    pd.testing.assert_frame_equal(scores[assignments.columns], assignments)
    assert (scores["customer_id"] == customers.index).all()


@pytest.mark.sampling
def test_the_commands_read_a_saved_run_and_agree_with_the_api(examples, tmp_path, capsys):
    """``segment score`` and ``segment compare`` on the directory ``save`` wrote: the tables
    the API returns."""
    seg, customers = examples[2]["seg"], examples[2]["customers"]
    directory = seg.save(tmp_path / "run")
    data, scored = tmp_path / "customers.csv", tmp_path / "scores.csv"
    customers.reset_index().to_csv(data, index=False)
    argv = ["--run", str(directory), "--data", str(data), "--id-column", "customer"]
    assert main(["score", *argv, "--k", "2", "--out", str(scored)]) == 0
    written = pd.read_csv(scored, keep_default_na=False)  # tier "n/a" stays text
    pd.testing.assert_frame_equal(written, seg.score(customers, k=2))
    assert main(["compare", "--run", str(directory), "--no-moment-match"]) == 0
    written = pd.read_csv(directory / "comparison.csv")
    compared = seg.compare()
    numbers = compared.select_dtypes("number").columns
    pd.testing.assert_frame_equal(written[numbers], compared[numbers])
    assert (written["chosen"] == compared["chosen"]).all()
    assert "Rule:" in capsys.readouterr().out


@pytest.mark.sampling
def test_a_saved_comparison_is_the_one_segment_compare_writes_there(examples, tmp_path):
    """``save`` after ``compare`` writes comparison.csv and .md as ``segment compare --run`` on
    the saved directory does, naming that directory in its commands (the fits were made in a
    temporary one), and ``load`` reads the choice back."""
    seg = examples[2]["seg"]
    seg.compare()
    directory = seg.save(tmp_path / "saved")
    saved_csv = pd.read_csv(directory / "comparison.csv", keep_default_na=False)
    saved_md = (directory / "comparison.md").read_text()
    assert (directory / "baseline.csv").is_file()
    assert str(directory) in saved_csv.loc[saved_csv["K"] == 2, "extend"].item()
    assert str(seg.run_dir_) not in saved_md
    loaded = Segmentation.load(directory)
    assert loaded.chosen_k_ == seg.chosen_k_
    assert main(["compare", "--run", str(directory), "--no-moment-match"]) == 0
    pd.testing.assert_frame_equal(
        saved_csv, pd.read_csv(directory / "comparison.csv", keep_default_na=False)
    )
    assert saved_md == (directory / "comparison.md").read_text()


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """40 simulated customers, numbered by row (no sampling uses them)."""
    truth = gaussian_mixture(n=40, weights=(0.5, 0.5), n_features=2, seed=2)
    return pd.DataFrame(truth.x, columns=["f0", "f1"])


def non_numeric(table: pd.DataFrame) -> pd.DataFrame:
    table = table.astype({"f0": object})
    table.loc[2, "f0"] = "x"
    return table


@pytest.mark.parametrize(
    ("parameters", "edit", "options"),
    [
        ({"k": "0-2"}, None, ["--k", "0-2"]),
        ({"k": [3, 0]}, None, ["--k", "3,0"]),
        ({"chains": 0}, None, ["--chains", "0"]),
        ({"seed": -1}, None, ["--seed", "-1"]),
        ({"transform": "log-standardize"}, None, ["--transform", "log-standardize"]),
        ({"model": "lca"}, None, ["--model", "lca"]),
        ({}, non_numeric, []),
        ({}, lambda t: t.assign(f1=1.0), []),
        ({}, lambda t: t.head(1), []),
    ],
    ids=["k", "k-list", "chains", "seed", "log-of-negative", "model-kind", "text", "constant",
         "one-row"],
)  # fmt: skip
def test_bad_input_is_the_commands_one_line_message(
    frame, tmp_path, capsys, parameters, edit, options
):
    table = frame if edit is None else edit(frame)
    path = tmp_path / "customers.csv"
    table.to_csv(path, index=False)
    argv = ["fit", "--dataset", "csv", "--data", str(path), "--features", "f0,f1", "--k", "1"]
    assert main([*argv, "--out", str(tmp_path / "run"), *options]) == 2
    printed = capsys.readouterr().err.strip().removeprefix("segment: error: ")
    with pytest.raises(InputError) as raised:
        Segmentation(**({"k": 1} | parameters)).fit(table, out=tmp_path / "api")
    message = str(raised.value)
    assert "\n" not in message
    # the file's name and rows, as the DataFrame's are worded
    printed = printed.replace(str(path), FRAME_SOURCE).replace(
        "data row(s) below the header", "row(s)"
    )
    assert message == printed
    assert not (tmp_path / "run").exists() and not (tmp_path / "api").exists()


@pytest.mark.parametrize(
    ("parameters", "needle"),
    [
        ({"model": "kmeans"}, "--model: unknown 'kmeans' (choose from gmm, hurdle, lca, mixed"),
        ({"preset": "fast"}, "--preset: unknown 'fast' (choose from full, quick)"),
        ({"covariance": "tied"}, "--covariance: unknown 'tied' (choose from full, diag)"),
        ({"k": 2.5}, "--k: malformed K range '2.5'"),
        ({"draws": 10.5}, "--draws must be an integer, got 10.5"),
        ({"missing": "drop"}, "--missing: unknown 'drop' (choose from marginalize, error)"),
        ({"subsample": 40}, "--subsample 40: DataFrame has 40 customers"),
    ],
)
def test_bad_parameters_are_refused_before_sampling(frame, tmp_path, parameters, needle):
    with pytest.raises(InputError) as raised:
        Segmentation(**({"k": 1} | parameters)).fit(frame, out=tmp_path / "run")
    assert needle in str(raised.value)
    assert not (tmp_path / "run").exists()


def test_a_table_that_is_not_a_dataframe_or_a_segmentation_not_fitted_is_refused(frame):
    with pytest.raises(InputError, match="expected a pandas DataFrame of customers, got ndarray"):
        Segmentation(k=1).fit(frame.to_numpy())
    for method in ("diagnostics", "compare", "profiles"):
        with pytest.raises(InputError, match="not fitted"):
            getattr(Segmentation(), method)()


def test_frames_are_read_as_files_are(frame):
    """Index = customer IDs (missing and repeated ones refused); category columns are the
    categorical part; the columns not chosen are the profile."""
    customers = frame.set_axis(pd.Index(100 + np.arange(len(frame)), name="id"))
    level = pd.Categorical(np.where(frame["f0"] > 0, "high", "low"))
    mixed = load_frame(customers.assign(level=level, note="x"), features=["f0", "f1"])
    assert (mixed.kind, mixed.source, mixed.features.index.name) == (
        "mixed",
        FRAME_SOURCE,
        "customer",
    )
    assert list(mixed.categories.columns) == ["level"] and list(mixed.profile.columns) == ["note"]
    assert load_frame(customers[["f0", "f1"]]).features.index[0] == 100
    repeated = customers.set_axis(customers.index.where(customers.index != 101, 100))
    with pytest.raises(InputError, match="DataFrame: index: duplicated ID 100"):
        load_frame(repeated)
    with pytest.raises(InputError, match="DataFrame: column f0 appears 2 times"):
        load_frame(pd.concat([frame, frame[["f0"]]], axis=1))


def test_the_data_source_names_the_data():
    """A run directory reuses a fit only for the same data: the source records a digest."""
    first = load_frame(pd.DataFrame({"a": [1.0, 2.0, 3.0]}))
    changed = load_frame(pd.DataFrame({"a": [1.0, 2.0, 4.0]}))
    assert api._data_source(first) == api._data_source(first)
    assert api._data_source(first) != api._data_source(changed)
    assert api._data_source(first).startswith(f"{FRAME_SOURCE} sha256:")


def test_k_takes_ranges_lists_integers_and_text():
    assert api._k_values(range(1, 4)) == [1, 2, 3]
    assert api._k_values({4, 2}) == [2, 4]
    assert api._k_values(3) == [3]
    assert api._k_values("1-2,5") == [1, 2, 5]


def test_the_version_is_the_one_in_pyproject():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert analysis.__version__ == project["version"]


def test_provenance_names_the_checkouts_commit_and_this_package(monkeypatch):
    import subprocess

    from analysis.inference import fit

    recorded = fit.provenance()
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=REPO_ROOT, check=True).stdout.strip()  # fmt: skip
    assert recorded["git_commit"] == head
    assert recorded["versions"]["bayes-segments"] == analysis.__version__


def test_provenance_outside_a_checkout_comes_from_package_metadata(monkeypatch, tmp_path):
    """Installed as a wheel (no .git beside the package): the commit pip recorded for an
    install from a repository (direct_url.json), else "unknown"; never some other repository's
    HEAD."""
    from analysis.inference import fit

    site = tmp_path / "site-packages" / "analysis" / "inference"
    site.mkdir(parents=True)
    monkeypatch.setattr(fit, "__file__", str(site / "fit.py"))

    class Installed:
        def __init__(self, text):
            self.text = text

        def read_text(self, name):
            return self.text if name == "direct_url.json" else None

    from_git = (
        '{"url": "https://example.org/x.git", "vcs_info": {"vcs": "git", "commit_id": "abc123"}}'
    )
    monkeypatch.setattr(fit, "distribution", lambda name: Installed(from_git))
    assert fit.source_commit() == "abc123"
    monkeypatch.setattr(fit, "distribution", lambda name: Installed(None))
    assert fit.source_commit() == "unknown"


@pytest.mark.slow
def test_the_notebook_flow_finds_three_simulated_segments(tmp_path):
    """Fit, compare, profiles and score on three well-separated segments (300 customers): the
    comparison chooses K = 3, the profiles recover the true means and weights, and scoring the
    fitted customers gives their own assignments."""
    truth = gaussian_mixture(n=300, weights=(0.5, 0.3, 0.2), n_features=2, seed=0)
    customers = pd.DataFrame(truth.x, columns=["f0", "f1"])
    seg = Segmentation("gmm", range(1, 5), chains=4, draws=400, tune=300, seed=1)
    seg.fit(customers, out=tmp_path / "run").compare()
    profiles, scores = seg.profiles(), seg.score(customers)
    assert seg.chosen_k_ == 3, seg.comparison_[["K", "elpd_diff", "dse", "status"]]
    means = profiles.pivot(index="segment", columns="feature", values="mean_spend")
    matched = match_to_truth(means[["f0", "f1"]].to_numpy(), truth.means)
    np.testing.assert_allclose(means.to_numpy()[matched], truth.means, atol=0.3)
    weights = profiles.groupby("segment")["weight"].first().to_numpy()[matched]
    np.testing.assert_allclose(weights, truth.weights, atol=0.08)
    assignments = fit_assignments(seg, 3)
    pd.testing.assert_frame_equal(scores[assignments.columns], assignments)
