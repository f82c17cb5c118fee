"""The report of a small real run: self-contained, complete, and every number equal to its CSV.

The run (``tests/small_run.py``) is real: baseline, two short fits, compare when this checkout
has it, report. The HTML is parsed with the standard library; every number in it is a
``<span class="n">`` naming its CSV, row and column, and is checked against the file.
"""

from __future__ import annotations

import base64
import html as html_module
import json
import math
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from analysis.cli import main
from analysis.inference.fit import load_fit, save_fit
from analysis.inference.profiles import PROFILE_COLUMNS, SEGMENT_COLUMNS
from analysis.paths import RunPaths
from analysis.reporting.report import Source, render
from analysis.reporting.report_outputs import FALLBACK, reported_k
from tests.small_run import ROWS

PNG = b"\x89PNG\r\n\x1a\n"


class Report(HTMLParser):
    """Collects traced values, images, tables, sections and table cells of the report."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.values, self.texts, self.images, self.tables, self.sections = [], [], [], [], []
        self.cells = []  # (text outside traced spans, traced?) per <td>
        self.links, self.scripts = [], 0
        self._span = None  # the traced span being read
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "span" and attrs.get("class") in ("n", "t"):
            self._span = attrs | {"text": ""}
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "table":
            self.tables.append(attrs.get("data-source"))
        elif tag == "section":
            self.sections.append(attrs.get("id"))
        elif tag == "td":
            self._cell = ""
        elif tag == "script":
            self.scripts += 1
        for name in ("href", "src"):
            if name in attrs:
                self.links.append(attrs[name])

    def handle_endtag(self, tag):
        if tag == "span" and self._span is not None:
            (self.values if self._span["class"] == "n" else self.texts).append(self._span)
            self._span = None
        elif tag == "td" and self._cell is not None:
            self.cells.append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._span is not None:
            self._span["text"] += data
        elif self._cell is not None:
            self._cell += data


@pytest.fixture(scope="module")
def html(run) -> str:
    return (run.root / "report.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def report(html) -> Report:
    parser = Report()
    parser.feed(html)
    return parser


@pytest.fixture(scope="module")
def csvs(run):
    return {path.name: pd.read_csv(path) for path in run.root.glob("*.csv")}


def test_report_is_one_self_contained_file(report, html):
    assert report.scripts == 0
    assert "<link" not in html
    external = [link for link in report.links if not link.startswith(("#", "data:"))]
    assert external == []
    assert report.images
    for image in report.images:
        assert image["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(image["src"].split(",", 1)[1])[:8] == PNG
        assert image.get("alt")


def test_sections_tables_and_figures_are_there(report, run):
    assert report.sections == [
        "answer", "data", "baseline", "choice", "diagnostics", "checks", "profiles", "revenue",
        "assignments", "response", "scoring", "migration", "splits", "files",
    ]  # fmt: skip
    for source in ("data_summary.csv", "settings.csv", "baseline.csv", "diagnostics.csv",
                   "zero_share.csv", "segments.csv", "profiles.csv", "assignments.csv",
                   "splits.csv"):  # fmt: skip
        assert source in report.tables, source
    if (run.root / "comparison.csv").is_file():
        assert "comparison.csv" in report.tables
    shown = {image["data-file"] for image in report.images}
    for name in ("baseline", "trace", "rank", "energy", "posterior_predictive", "profiles",
                 "revenue", "assignment_uncertainty"):  # fmt: skip
        assert f"{name}.png" in shown, name
        assert (run.root / "figures" / f"{name}.png").is_file()


def displayed_number(text: str) -> tuple[float, int]:
    """The number a cell shows and its decimals: '1,234.5' -> (1234.5, 1)."""
    plain = text.replace(",", "")
    decimals = len(plain.split(".")[1]) if "." in plain else 0
    return float(plain), decimals


def test_every_number_in_the_report_matches_its_csv(report, csvs):
    assert len(report.values) > 200
    for span in report.values:
        frame = csvs[span["data-src"]]
        value = frame.at[int(span["data-row"]), span["data-col"]]
        where = f"{span['data-src']} row {span['data-row']} {span['data-col']}"
        if isinstance(value, bool) or str(value) in ("True", "False"):
            assert span["data-value"] == str(value), where
            assert span["text"] == ("yes" if str(value) == "True" else "no"), where
            continue
        exact = float(value)
        if math.isnan(exact):
            assert span["text"] == "n/a", where
            continue
        assert float(span["data-value"]) == exact, where
        shown, decimals = displayed_number(span["text"])
        assert abs(shown - exact) <= 0.5 * 10**-decimals + 1e-9 * abs(exact), where


def test_every_string_cell_matches_its_csv(report, csvs):
    assert report.texts
    for span in report.texts:
        frame = csvs[span["data-src"]]
        value = frame.at[int(span["data-row"]), span["data-col"]]
        assert span["text"] == str(value), f"{span['data-src']} {span['data-row']}"


def test_no_table_cell_has_an_untraced_number(report):
    """Digits in a table cell appear only inside spans that name their CSV."""
    for text in report.cells:
        assert not re.search(r"\d", text), text


def traced(report, source: str) -> set[tuple[int, str]]:
    return {(int(s["data-row"]), s["data-col"]) for s in report.values if s["data-src"] == source}


def test_key_tables_are_shown_in_full(report, csvs):
    segment_columns = [c for c in SEGMENT_COLUMNS if c not in ("segment", "name", "tier")]
    for source, columns in (
        ("segments.csv", [*segment_columns, "customers", "precise", "broad"]),
        ("profiles.csv", ["mean_spend", "mean_spend_hdi_low", "mean_spend_hdi_high", "index"]),
        ("diagnostics.csv", ["K", "max_rhat", "min_ess_bulk", "min_ess_tail", "divergences"]),
        ("data_summary.csv", ["customers", "zero_share", "mean", "median", "max"]),
        ("splits.csv", ["customers"]),
    ):
        shown = traced(report, source)
        expected = {(row, column) for row in range(len(csvs[source])) for column in columns}
        assert expected <= shown, (source, sorted(expected - shown)[:5])


def test_profile_and_assignment_tables(csvs):
    profiles, segments = csvs["profiles.csv"], csvs["segments.csv"]
    assignments = csvs["assignments.csv"]
    assert list(profiles.columns) == list(PROFILE_COLUMNS)
    assert list(segments.columns[: len(SEGMENT_COLUMNS)]) == list(SEGMENT_COLUMNS)
    assert len(segments) == 2 and len(profiles) == 2 * 3
    assert abs(segments["revenue_share"].sum() - 1) < 1e-9
    assert abs(segments["weight"].sum() - 1) < 1e-9
    assert list(assignments.columns) == [
        "customer_id", "segment", "probability", "probability_hdi_low", "probability_hdi_high",
        "confidence", "tier", "p_0", "p_1",
    ]  # fmt: skip
    assert len(assignments) == ROWS and assignments["customer_id"].is_unique
    precise = assignments["probability_hdi_low"] >= 0.95
    assert (assignments["confidence"] == precise.map({True: "precise", False: "broad"})).all()
    tiers = segments.set_index("segment")["tier"]
    assert (assignments["tier"] == tiers.reindex(assignments["segment"]).to_numpy()).all()
    counts = assignments["segment"].value_counts().reindex(segments["segment"], fill_value=0)
    assert counts.tolist() == segments["customers"].tolist()


def test_strings_from_data_are_escaped(run, tmp_path):
    """A hostile segment name in segments.csv comes out as text, never as markup."""
    copy = tmp_path / "copy"
    shutil.copytree(run.root, copy, ignore=shutil.ignore_patterns("fits"))
    segments = pd.read_csv(copy / "segments.csv")
    segments.loc[0, "name"] = '<script>alert("x")</script> & <b>co</b>'
    segments.to_csv(copy / "segments.csv", index=False)
    document = render(RunPaths(copy))
    assert "<script>" not in document and "<b>co</b>" not in document
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;co&lt;/b&gt;" in (
        document
    )


def test_report_bad_input_is_one_line(run, tmp_path, capsys):
    code = main(["report", "--run", str(tmp_path / "missing")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "missing" in err
    code = main(["report", "--run", str(run.root), "--k", "7"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--k 7" in err


def test_report_is_rebuilt_from_the_csvs_alone(run, tmp_path):
    """render() needs only the CSVs and PNGs: the fits can be gone."""
    copy = tmp_path / "no-fits"
    shutil.copytree(run.root, copy, ignore=shutil.ignore_patterns("fits", "report.html"))
    document = render(RunPaths(copy))
    assert document.count("<section") == 14  # the answer and the thirteen numbered sections
    assert Path(copy / "fits").exists() is False


def test_no_fit_passed_falls_back_provisionally(run, tmp_path):
    """Short fits fail their diagnostics, so compare chooses no K: the report falls back to the
    comparison rule over all fits and says, at the top, that the result is provisional."""
    comparison = run.root / "comparison.csv"
    if not comparison.is_file():
        pytest.skip("segment compare is not part of this checkout")
    table = pd.read_csv(comparison)
    assert not table["chosen"].any() and (table["status"] != "ok").all()
    k, how = reported_k(RunPaths(run.root), None)
    assert how == FALLBACK and k in table["K"].tolist()
    copy = tmp_path / "fallback"
    shutil.copytree(run.root, copy, ignore=shutil.ignore_patterns("fits"))
    settings = pd.read_csv(copy / "settings.csv")
    settings.loc[settings["item"] == "K chosen by", "value"] = FALLBACK
    settings.to_csv(copy / "settings.csv", index=False)
    assert "<b>Provisional.</b>" in render(RunPaths(copy))


def test_settings_name_each_k_sampling_when_fits_differ(run, tmp_path, csvs):
    """A K refitted with another warm-up: the settings table says which K was sampled how."""
    assert "sampling by K" not in set(csvs["settings.csv"]["item"])  # one setting: no row
    copy = tmp_path / "refit"
    shutil.copytree(run.root, copy)
    tree = load_fit(run.root / "fits" / "K1.nc")
    config = json.loads(tree.attrs["segment_config"])
    config["sampler"]["tune"] *= 2
    tree.attrs["segment_config"] = json.dumps(config)
    save_fit(tree, copy / "fits" / "K1.nc")
    assert main(["report", "--run", str(copy), "--k", "2"]) == 0
    settings = pd.read_csv(copy / "settings.csv").set_index("item")["value"]
    draws, tune = config["sampler"]["draws"], config["sampler"]["tune"]
    assert settings["sampling by K"] == (
        f"K = 1: 2 chains x {draws} draws (+{tune} tune), nutpie (jax, low-rank mass matrix); "
        f"K = 2: 2 chains x {draws} draws (+{tune // 2} tune), nutpie (jax, low-rank mass matrix)"
    )
    assert "sampling by K" in (copy / "report.html").read_text()


def test_numbers_that_round_to_zero_show_no_minus_sign(tmp_path):
    pd.DataFrame({"total_spend": [-0.004, -0.06, 0.0]}).to_csv(tmp_path / "x.csv", index=False)
    source = Source(RunPaths(tmp_path), "x.csv")
    shown = [re.sub(r"<[^>]+>", "", source.num(row, "total_spend")) for row in range(3)]
    assert shown == ["0.0", "-0.1", "0.0"]


def test_counts_show_as_integers_and_expected_counts_to_one_decimal(tmp_path):
    """``customers`` is a count; response.csv holds its posterior expectation (947.99 customers
    of a segment), shown to a tenth of a customer, not to three decimals."""
    pd.DataFrame({"customers": [2240.0, 947.99, 0.004]}).to_csv(tmp_path / "x.csv", index=False)
    source = Source(RunPaths(tmp_path), "x.csv")
    shown = [re.sub(r"<[^>]+>", "", source.num(row, "customers")) for row in range(3)]
    assert shown == ["2,240", "948.0", "0.0"]


def test_spend_with_zeros_gets_the_hurdle_and_the_report_says_why(html, run):
    """The small run's MntFruits is exactly 0 for many customers: no --model was given, so the
    fit says it chose the hurdle and the data section explains it with that feature's share."""
    assert "model: hurdle (default: " in run.stderr
    assert "Model: hurdle mixture.</b>" in html
    assert 'data-col="zero_share"' in html.split("Model: hurdle mixture.")[1].split("</p>")[0]


def test_the_answer_comes_first_with_its_status_warnings_and_segments(html, csvs):
    """Issue 19: the first screen holds the reported K, its status, the warnings that bear on
    it and the segment table, before the table of contents."""
    answer = html[html.index('<section id="answer"') : html.index("<nav>")]
    comparison = csvs["comparison.csv"]
    settings = csvs["settings.csv"].set_index("item")["value"]
    reported = comparison[comparison["K"] == int(settings["K reported"])].iloc[0]
    assert re.search(rf"K = <span[^>]*>{int(reported['K'])}</span> segments", answer)
    assert f">{reported['status']}</span>" in answer
    assert 'data-source="segments.csv"' in answer
    for name in csvs["segments.csv"]["name"]:
        assert html_module.escape(name) in answer
    largest = int(reported["K"]) == int(comparison["K"].max())
    assert ("is the largest K fitted" in answer) == largest
    diagnostics = csvs["diagnostics.csv"]
    row = int(diagnostics.index[diagnostics["K"] == reported["K"]][0])
    for column in ("max_rhat", "min_ess_bulk", "min_ess_tail", "divergences", "min_bfmi"):
        assert f'data-src="diagnostics.csv" data-row="{row}" data-col="{column}"' in answer


def test_class_profiles_show_the_distinctive_levels_per_class(tmp_path):
    """No sampling: the profile tables of a constructed latent class fit (tests/test_profiles.py,
    a distinguishing variable and two redundant copies), written as the report step writes them;
    the profiles section ranks the variables and shows each class's top levels, every number
    traced to profiles.csv."""
    from analysis.inference.profiles import segment_profiles
    from analysis.reporting.report import section_profiles
    from tests.test_profiles import redundant_class_fit

    segments, profiles = segment_profiles(redundant_class_fit())
    segments.assign(customers=[800, 700, 500]).to_csv(tmp_path / "segments.csv", index=False)
    profiles.to_csv(tmp_path / "profiles.csv", index=False)
    paths = RunPaths(tmp_path)
    src = {name: Source(paths, name) for name in ("segments.csv", "profiles.csv")}
    text = section_profiles(paths, src, lambda name: "n/a", categorical=True)
    report = Report()
    report.feed(text)
    assert "What sets the classes apart" in text and "Cram&eacute;r" in text
    frame = pd.read_csv(tmp_path / "profiles.csv")
    spans = [s for s in report.values if s["data-src"] == "profiles.csv"]
    for span in spans:
        exact = frame.at[int(span["data-row"]), span["data-col"]]
        assert float(span["data-value"]) == float(exact)
    # the variables in rank order, then the top levels: class by class, rank 1..4, with HDIs
    ranks = [int(s["data-row"]) for s in spans if s["data-col"] == "variable_rank"]
    assert frame.loc[ranks, "variable"].tolist() == ["region", "size", "comp", "own"]
    rows = [int(s["data-row"]) for s in spans if s["data-col"] == "top_level"]
    shown = frame.loc[rows]
    assert shown["segment"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert shown["top_level"].tolist() == [1, 2, 3, 4] * 3
    for column in ("probability", "probability_hdi_low", "probability_hdi_high"):
        assert {int(s["data-row"]) for s in spans if s["data-col"] == column} >= set(rows)
    # an older profiles.csv without the columns still renders, without the selection
    frame.drop(columns=["distinctiveness", "variable_rank", "top_level"]).to_csv(
        tmp_path / "profiles.csv", index=False
    )
    src["profiles.csv"] = Source(paths, "profiles.csv")
    assert "What sets" not in section_profiles(paths, src, lambda name: "n/a", categorical=True)


def test_settings_of_a_latent_class_fit_say_categories():
    """No sampling: the settings table of a latent class fit (tests/test_profiles.py's
    constructed one) names its values as categories, without reading them as amounts (which
    crashed: its data have items, not features)."""
    from analysis.inference.profiles import fit_config
    from analysis.reporting.report_outputs import settings_table
    from tests.test_profiles import constructed_class_fit

    tree = constructed_class_fit()
    sampler = {"sampler": "nutpie", "chains": 2, "tune": 100, "draws": 100, "seed": 0}
    config = fit_config(tree) | {"source": "constructed", "sampler": sampler}
    tree.attrs["segment_config"] = json.dumps(config)
    table = settings_table(tree, 2, "the --k option", [config], 0.95).set_index("item")["value"]
    assert table["data kind"] == "categorical"
    assert table["values"] == "categories" and table["unit"] == "categories"
    assert table["tier rule"] == "n/a (no amounts)"


def fake_posterior(seed: int = 0) -> xr.DataTree:
    """2 chains x 400 draws of weights (2 segments), means and scales (2 x 2 features) and a
    ``chol`` the summary leaves out. The scales are skewed (log-normal), so their 94% HDI and
    their equal-tailed interval differ; chain 1's ``means[1, b]`` is shifted, so R-hat flags it."""
    rng = np.random.default_rng(seed)
    shape = (2, 400)
    means = rng.normal([[0.0, 1.0], [2.0, 3.0]], 0.1, size=(*shape, 2, 2))
    means[1, :, 1, 1] += 1.0
    posterior = xr.Dataset(
        {
            "weights": (("chain", "draw", "segment"), rng.dirichlet([30, 10], size=shape)),
            "means": (("chain", "draw", "segment", "feature"), means),
            "scales": (
                ("chain", "draw", "segment", "feature"),
                rng.lognormal(0, 0.8, (*shape, 2, 2)),
            ),
            "chol": (("chain", "draw", "segment"), rng.normal(size=(*shape, 2))),
        },
        coords={"chain": [0, 1], "draw": np.arange(400), "segment": [0, 1], "feature": ["a", "b"]},
    )
    return xr.DataTree.from_dict({"posterior": posterior})


def test_parameter_summary_is_arviz_summary_with_a_94_percent_hdi():
    """No sampling: one row per weight, mean and scale, with the HDI (not ArviZ 1.x's default
    ETI), the posterior mean and sd, and R-hat and ESS of the draws."""
    import arviz as az

    from analysis.reporting.report_outputs import SUMMARY_COLUMNS, parameter_summary

    tree = fake_posterior()
    table = parameter_summary(tree).set_index("parameter")
    assert list(table.columns) == list(SUMMARY_COLUMNS[1:])
    assert table.index.tolist()[:4] == ["weights[0]", "weights[1]", "means[0, a]", "means[0, b]"]
    assert len(table) == 2 + 4 + 4 and not table.index.str.startswith("chol").any()
    draws = tree["posterior"]["scales"].sel(segment=1, feature="b")
    row = table.loc["scales[1, b]"]
    assert (row["variable"], row["segment"], row["feature"]) == ("scales", 1, "b")
    assert row["mean"] == pytest.approx(float(draws.mean()))
    assert row["sd"] == pytest.approx(float(draws.std(ddof=1)), rel=1e-3)
    hdi = az.hdi(draws, prob=0.94).values
    assert (row["hdi_low"], row["hdi_high"]) == pytest.approx(tuple(hdi))
    eti = np.quantile(draws.values.ravel(), [0.03, 0.97])
    assert row["hdi_low"] < eti[0] - 0.01  # skewed: the HDI sits lower than the ETI
    assert table.loc["means[1, b]", "r_hat"] > 1.5  # the shifted chain
    mixed = table.drop(index="means[1, b]")  # independent draws: R-hat near 1, ESS near 800
    assert mixed["r_hat"].max() < 1.02 and mixed["ess_bulk"].min() > 400
    assert table.loc["means[1, b]", "ess_bulk"] < 50
    assert (table["mcse_mean"] > 0).all()


@pytest.mark.parametrize(
    ("mcse", "decimals"), [(0.0047, 3), (0.006, 2), (0.3, 1), (0.6, 0), (26.0, -1), (0.0, 3)]
)
def test_values_show_the_digits_their_monte_carlo_error_supports(mcse, decimals, tmp_path):
    """The leading digit of 2 x MCSE: 0.0047 -> 0.0094 (3 decimals), 0.006 -> 0.012 (2),
    0.6 -> 1.2 (0), 26 -> 52 (tens); no MCSE: 3 decimals."""
    from analysis.reporting.report import mc_decimals

    assert mc_decimals(mcse) == decimals
    pd.DataFrame({"mean": [1234.5678]}).to_csv(tmp_path / "x.csv", index=False)
    shown = re.sub(r"<[^>]+>", "", Source(RunPaths(tmp_path), "x.csv").num(0, "mean", decimals))
    assert shown == {3: "1,234.568", 2: "1,234.57", 1: "1,234.6", 0: "1,235", -1: "1,230"}[decimals]


def test_the_report_shows_the_parameter_summary_to_its_monte_carlo_digits(report, csvs, html):
    from analysis.reporting.report import mc_decimals

    summary = csvs["parameter_summary.csv"]
    # K = 2, three features: weights, means, scales and the hurdle's zero probabilities
    assert len(summary) == 2 + 3 * (2 * 3)
    assert "parameter_summary.csv" in report.tables
    means = {int(s["data-row"]): s["text"] for s in report.values
             if s["data-src"] == "parameter_summary.csv" and s["data-col"] == "mean"}  # fmt: skip
    assert sorted(means) == list(range(len(summary)))
    for row, text in means.items():
        decimals = displayed_number(text)[1]
        assert decimals == max(mc_decimals(summary.at[row, "mcse_mean"]), 0), (row, text)


def test_the_comparison_table_shows_the_columns_the_choice_reads(html):
    table = html.split('<table data-source="comparison.csv"')[1].split("</thead>")[0]
    headers = re.findall(r"<th>([^<]*)</th>", table)
    assert headers == ["K", "status", "elpd_loo", "se", "elpd_diff", "dse", "chosen", "BIC",
                       "BIC choice"]  # fmt: skip


def decision_outputs(root: Path, k: int = 2, refit: bool = True) -> RunPaths:
    """No sampling: the files ``segment track`` and ``segment score`` write into a run directory
    (their default --out), built by their own writers from hand-made draws for K = 2."""
    from analysis.decisions.drift import drift_signal, feature_shifts
    from analysis.decisions.migration import migration_table
    from analysis.decisions.score import score_summary
    from analysis.decisions.track import PeriodDraws, Tracking, size_table, write_tracking

    rng = np.random.default_rng(11)
    names = pd.Series(["low <spend>", "high"], index=[0, 1])
    expected = np.array([[60.0, 10.0], [5.0, 25.0]]) + rng.normal(scale=1.0, size=(40, 2, 2))
    realised = np.round(expected + rng.normal(scale=3.0, size=expected.shape))
    weights = rng.dirichlet([70, 30], size=40)
    periods = PeriodDraws(expected, realised, weights, rng.dirichlet([65, 35], size=40), None)
    fit_x = rng.normal(size=(100, 2))
    later_x = fit_x + ([0.8, 0.0] if refit else 0.0)
    replicated = fit_x[None] + rng.normal(scale=0.1, size=(20, 100, 2))
    fit_elpd = rng.normal(-2.0, 0.5, size=100)
    tracking = Tracking(
        migration=migration_table(expected, realised, names),
        sizes=size_table(periods, names),
        signal=drift_signal(fit_elpd - (0.4 if refit else 0.0) + rng.normal(0, 0.1, 100), fit_elpd),
        shifts=feature_shifts(fit_x, replicated, later_x, ["Wines", "Meat"]),
        matched=100,
        new=3,
        gone=7,
    )
    paths = RunPaths(root)
    write_tracking(tracking, paths.track_dir, k, "later.csv")
    scored = pd.DataFrame(
        {
            "segment": [0, 0, 0, 1, 0],
            "confidence": ["precise", "broad", "precise", "broad", "precise"],
            "novel": [False, False, True, False, False],
        }
    )
    score_summary(scored, names, k, "new.csv", 0.8).to_csv(paths.scores_summary_csv, index=False)
    return paths


def test_migration_and_scoring_sections_show_the_track_and_score_files(tmp_path):
    from analysis.reporting.report import TRACK_TABLES, section_migration, section_scoring

    paths = decision_outputs(tmp_path)
    src = {name: Source(paths, name) for name in (*TRACK_TABLES, "scores_summary.csv")}
    text = section_migration(paths, src, 2) + section_scoring(paths, src, 2)
    report = Report()
    report.feed(text)
    csvs = {name: pd.read_csv(tmp_path / name) for name in src}
    for span in report.values:  # every number traced to its cell and shown to its decimals
        exact = float(csvs[span["data-src"]].at[int(span["data-row"]), span["data-col"]])
        assert float(span["data-value"]) == exact
        shown, decimals = displayed_number(span["text"])
        assert abs(shown - exact) <= 0.5 * 10**-decimals + 1e-9 * abs(exact)
    for text_cell in report.cells:
        assert not re.search(r"\d", text_cell), text_cell
    migration = csvs["track/migration.csv"]
    assert traced(report, "track/migration.csv") >= {
        (r, c) for r in range(4) for c in ("expected", "realised_low", "realised_high")
    }
    assert {(0, c) for c in ("later_lpd", "fit_elpd_loo", "difference", "se")} <= traced(
        report, "track/drift_signal.csv"
    )
    assert "Refit recommended" in text
    moved = [s["text"] for s in report.texts if s["data-src"] == "track/drift.csv"]
    assert moved[0] == csvs["track/drift.csv"].at[0, "feature"] == "Wines"
    assert "low &lt;spend&gt;" in text and "<spend>" not in text  # names escaped
    assert [i["data-file"] for i in report.images] == ["migration.png"]
    assert traced(report, "track/sizes.csv") >= {(r, "later_weight") for r in range(2)}
    summary = csvs["scores_summary.csv"]
    assert summary["segment"].tolist() == ["0", "1", "all"]
    assert summary.set_index("segment").loc["all", ["customers", "precise", "novel"]].tolist() == [
        5, 3, 1,
    ]  # fmt: skip
    assert traced(report, "scores_summary.csv") >= {(2, "novel"), (2, "precise"), (2, "broad")}
    assert int(migration["realised_low"].iloc[0]) == migration["realised_low"].iloc[0]
    assert "is for K" not in text  # not stale


def test_migration_section_without_drift_stale_or_missing(tmp_path):
    from analysis.reporting.report import TRACK_TABLES, section_migration, section_scoring

    paths = decision_outputs(tmp_path, k=3, refit=False)
    src = {name: Source(paths, name) for name in (*TRACK_TABLES, "scores_summary.csv")}
    text = section_migration(paths, src, 2)
    assert "No drift" in text and "Refit recommended" not in text
    assert "drift_signal.csv is for K = " in text and "segment track --run" in text
    assert "scores_summary.csv is for K = " in section_scoring(paths, src, 2)
    (paths.track_dir / "sizes.csv").unlink()
    src = {name: Source(paths, name) for name in TRACK_TABLES}
    text = section_migration(paths, src, 2)
    assert 'class="missing"' in text and "track/sizes.csv not found" in text
    assert "<table" not in text
