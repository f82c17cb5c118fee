"""``segment report``: profiles, assignments and one self-contained HTML report for a run directory.

Two stages, so that every number in the report is traceable to a CSV in the run directory:

1. :func:`analysis.reporting.report_outputs.write_outputs` reads the chosen fit (and, for the split
   tables, the modal assignments of every fitted K) and writes the tables (:data:`TABLES`) and
   the figures (``figures/*.png``).
2. :func:`render` builds ``report.html`` from those CSVs and PNGs only (plus ``baseline.csv``,
   ``comparison.csv`` and ``diagnostics.csv`` written by the earlier steps). Every number shown is
   a ``<span class="n">`` that names its CSV, row (0-based data row), column and exact value, so
   a test can check each one against the file. Figures are embedded as base64 PNG; nothing is
   fetched from the network. Every string that comes from data is HTML-escaped.

The chosen K is the row of ``comparison.csv`` with ``chosen == True`` unless ``--k`` overrides it.
"""

from __future__ import annotations

import base64
import html
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.data.joins import SUGGEST_CRAMERS_V
from analysis.decisions.drift import MOVED_FEATURES
from analysis.decisions.response import POPULATION
from analysis.errors import InputError
from analysis.inference import diagnostics as diagnostic_rule
from analysis.inference.diagnostics import CHOOSABLE
from analysis.inference.local_dependence import FLAG_BELOW, PAIR_COLUMNS
from analysis.inference.profiles import (
    PRECISE_THRESHOLD,
)
from analysis.paths import RESPONSE_TABLES, SCORE_TABLES, TRACK_DIR, RunPaths, atomic_path
from analysis.reporting import figures
from analysis.reporting.report_outputs import (
    ANSWER_SUMMARY,
    CLASSES_VS_GMM,
    CLASSES_VS_GMM_SCORES,
    COMPARE_FIGURES,
    DATA_SUMMARY,
    FALLBACK,
    LEVEL_PROFILES,
    LEVEL_SHARES,
    LOCAL_DEPENDENCE,
    LOCAL_DEPENDENCE_CELLS,
    MODES,
    PARAMETER_SUMMARY,
    SEGMENTS,
    SETTINGS,
    SPLITS,
    TABLES,
    ZERO_SHARE,
    check_step_outputs,
    is_true,
    reported_k,
    write_outputs,
)
from analysis.selection.comparison_text import shown_columns
from analysis.selection.decision import RULE_SE, better_unusable
from analysis.selection.sweep import skipped_ks

ASSIGNMENT_PREVIEW = 10  # assignment rows shown in the report


def esc(value) -> str:
    return html.escape(str(value), quote=True)


INTEGER_COLUMNS = {
    "K", "K_from", "K_to", "segment", "segment_from", "segment_to", "seed", "customers",
    "precise", "broad", "divergences", "pareto_k_bad", "n_params", "pareto_k_remaining",
    "pareto_k_good", "pareto_k_very_bad", "n_modes", "attempts", "cells", "draws",
    "variable_rank", "top_level", "cluster", "class_customers", "cluster_customers", "novel",
    "from_segment", "to_segment", "matched", "new", "gone", "realised_low", "realised_high",
}  # fmt: skip
ID_COLUMNS = {"customer_id", "customer"}
DECIMALS = {
    "min_ess_bulk": 0, "min_ess_tail": 0, "seconds": 0, "sampling_seconds": 0, "max_rhat": 3,
    "min_bfmi": 3,
    "customer_share": 3, "zero_share": 4, "observed": 4, "replicated_mean": 4,
    "replicated_hdi_low": 4, "replicated_hdi_high": 4, "index": 2, "std_difference": 2,
    "k_threshold": 2,
    "lift": 2, "lift_hdi_low": 2, "lift_hdi_high": 2, "share": 3, "population_share": 3,
    "stacking_weight": 3, "chi2_ratio": 2, "p_value": 3, "expected": 1, "distinctiveness": 3,
    "ess_bulk": 0, "ess_tail": 0, "r_hat": 3, "fit_mean": 3, "later_mean": 3, "fit_sd": 3,
    "shift_sd": 2, "precise_threshold": 2, "fit_weight": 3, "fit_weight_hdi_low": 3,
    "fit_weight_hdi_high": 3, "later_weight": 3, "later_weight_hdi_low": 3,
    "later_weight_hdi_high": 3,
}  # fmt: skip
# What segment track writes into the run directory (its default --out) and the report shows.
TRACK_TABLES = tuple(
    f"{TRACK_DIR}/{name}"
    for name in ("migration.csv", "sizes.csv", "drift.csv", "drift_signal.csv")
)
THREE_DECIMAL_PREFIXES = ("weight", "revenue_share", "probability", "zero_prob", "rate")


def decimals_for(column: str) -> int | None:
    """Display decimals of a CSV column (None: integer with thousands separators).

    Shares and probabilities 3 (zero shares 4), ratios 2, ESS and seconds 0, everything else
    (spend, elpd and its SE, p_loo, BIC/AIC/ICL, log-likelihood) 1.
    """
    if column in INTEGER_COLUMNS:
        return None
    if column in DECIMALS:
        return DECIMALS[column]
    if column.startswith(THREE_DECIMAL_PREFIXES) or (
        column.startswith("p_") and column[2:].isdigit()
    ):
        return 3
    if column.startswith("spend_ratio"):
        return 2
    return 1


class Source:
    """One CSV of the run directory, read back, whose values the report shows."""

    def __init__(self, paths: RunPaths, name: str):
        self.name = name
        self.path = paths.root / name
        self.frame = pd.read_csv(self.path) if self.path.is_file() else None

    @property
    def exists(self) -> bool:
        return self.frame is not None

    def num(self, row: int, column: str, decimals: int | str | None = "auto") -> str:
        """A traced number: the span names this CSV, the row, column and exact value.

        ``decimals``: "auto" (:func:`decimals_for`), None (an integer with thousands separators;
        a fraction, an expected count, to 1 decimal) or the decimals to round to (negative: to
        tens, hundreds, ...).
        """
        value = self.frame.at[row, column]
        if decimals == "auto":
            decimals = decimals_for(column)
        if isinstance(value, (bool, np.bool_)):
            text = "yes" if value else "no"
        elif isinstance(value, float) and math.isnan(value):
            text = "n/a"
        elif decimals is None and float(value).is_integer():
            text = f"{int(value):,}"
        else:
            decimals = 1 if decimals is None else decimals
            rounded = round(float(value), decimals)  # decimals < 0: to tens, hundreds, ...
            text = f"{rounded:,.{max(decimals, 0)}f}"
            text = text.removeprefix("-") if not text.strip("-0.,") else text  # no "-0.0"
        exact = value if isinstance(value, str) else repr(_plain(value))
        return (
            f'<span class="n" data-src="{esc(self.name)}" data-row="{row}" '
            f'data-col="{esc(column)}" data-value="{esc(exact)}" '
            f'title="{esc(self.name)}, row {row}, {esc(column)}">{text}</span>'
        )

    def interval(self, row: int, column: str) -> str:
        """'mean [low, high]' with the columns ``column``, ``column_hdi_low/high``."""
        return (
            f'{self.num(row, column)} <span class="hdi">[{self.num(row, column + "_hdi_low")}, '
            f"{self.num(row, column + '_hdi_high')}]</span>"
        )

    def text(self, row: int, column: str) -> str:
        """A traced string cell, HTML-escaped."""
        return (
            f'<span class="t" data-src="{esc(self.name)}" data-row="{row}" '
            f'data-col="{esc(column)}">{esc(self.frame.at[row, column])}</span>'
        )


def _is_number(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def _plain(value):
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def table(
    source: Source, columns, headers=None, rows=None, row_class=None, text_columns=(), css=""
):
    """An HTML table of ``columns`` of ``source``; numbers traced, strings escaped.

    ``columns`` items are CSV column names or (header, callable(row) -> html) pairs (a third
    item "num" aligns the cells as numbers); ``hdi`` columns ("weight~hdi") render
    'mean [low, high]'.
    """
    frame = source.frame
    rows = range(len(frame)) if rows is None else rows
    head = []
    for index, column in enumerate(columns):
        if isinstance(column, tuple):
            head.append(column[0])
        else:
            label = headers[index] if headers else column.replace("~hdi", "")
            head.append(label)
    css = f' class="{css}"' if css else ""
    out = [f'<div class="scroll"><table data-source="{esc(source.name)}"{css}><thead><tr>']
    out += [f"<th>{esc(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for row in rows:
        tr_class = f' class="{row_class(row)}"' if row_class and row_class(row) else ""
        out.append(f"<tr{tr_class}>")
        for column in columns:
            if isinstance(column, tuple):
                cell = ' class="num"' if column[2:] == ("num",) else ""
                out.append(f"<td{cell}>{column[1](row)}</td>")
            elif column.endswith("~hdi"):
                out.append(f'<td class="num">{source.interval(row, column[:-4])}</td>')
            elif column in text_columns or column in ID_COLUMNS or not _is_number(frame[column]):
                out.append(f"<td>{source.text(row, column)}</td>")
            else:
                out.append(f'<td class="num">{source.num(row, column)}</td>')
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def image(paths: RunPaths, name: str, caption: str) -> str:
    """The figure ``figures/<name>.png`` embedded as base64, or a note that it is missing."""
    return embedded(paths.figure(name), caption)


def embedded(path: Path, caption: str) -> str:
    """The PNG at ``path`` embedded as base64, or a note that it is missing."""
    if not path.is_file():
        return f'<p class="missing">Figure {esc(path.name)} not found in the run directory.</p>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}" '
        f'data-file="{esc(path.name)}"><figcaption>{esc(caption)}</figcaption></figure>'
    )


def missing(name: str, step: str) -> str:
    return f'<p class="missing">{esc(name)} not found: run <code>{esc(step)}</code>.</p>'


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1400px;
margin:0 auto;padding:1.5em 2em;color:#222;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;
margin-top:2em}h3{margin-top:1.4em}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:.85em}
th,td{border:1px solid #ccc;padding:.2em .45em;vertical-align:top}
th{background:#f2f2f2;text-align:left}td.num{text-align:right;white-space:nowrap}
tr.chosen td{background:#e6f4ea;font-weight:600}tr.failed td{background:#fde8e8}
.hdi{color:#666}.missing{color:#a00}.note{color:#555;font-size:.92em}.warning{color:#a00000}
figure{margin:.8em 0 1.4em}img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.88em;color:#555}.banner{background:#fff4d6;border:1px solid #e0c060;
padding:.6em 1em}nav ol{columns:2;font-size:.95em}code{background:#f4f4f4;padding:0 .2em}
details{margin:.4em 0}summary{cursor:pointer}.scroll{overflow-x:auto;max-width:100%}
table.wide{font-size:.78em}table.wide td{white-space:nowrap}
"""


def render(paths: RunPaths) -> str:
    """The report as one HTML string, from the run directory's CSVs and PNGs only."""
    src = {
        name: Source(paths, name)
        for name in (
            *TABLES, *RESPONSE_TABLES, SCORE_TABLES[1], *TRACK_TABLES, "baseline.csv",
            "comparison.csv", "diagnostics.csv",
        )
    }  # fmt: skip
    settings = src[SETTINGS]
    if not settings.exists:
        raise InputError(f"{settings.path}: not found; run `segment report --run {paths.root}`")
    item = {value: row for row, value in enumerate(settings.frame["item"])}

    def setting(name: str) -> str:
        return settings.text(item[name], "value") if name in item else "n/a"

    categorical = "data kind" in item and settings.frame.at[item["data kind"], "value"] == (
        "categorical"
    )
    chosen = int(settings.frame.at[item["K reported"], "value"])
    chosen_html = settings.num(item["K reported"], "value", None)
    dataset = setting("dataset")
    page_title = esc(settings.frame.at[item["dataset"], "value"])  # <title> holds text only
    sections = [
        ("data", "Data", section_data(src, setting, item, categorical)),
        ("baseline", "Baseline: scikit-learn GMM and BIC", section_baseline(paths, src)),
        (
            "choice",
            "Choosing K",
            section_choice(paths, src, chosen, chosen_html, setting, item),
        ),
        (
            "diagnostics",
            "Convergence diagnostics",
            section_diagnostics(paths, src, chosen, setting),
        ),
        ("checks", "Predictive checks", section_checks(paths, src, categorical)),
        ("profiles", "Segment profiles", section_profiles(paths, src, setting, categorical)),
        *(
            [("versus", "Beside the GMM + BIC recipe", section_versus_gmm(src, setting))]
            if categorical
            else []
        ),
        ("revenue", "Revenue concentration", section_revenue(paths, src, categorical)),
        ("assignments", "Customer assignments", section_assignments(paths, src, setting, item)),
        ("response", "Campaign response by segment", section_response(paths, src, chosen)),
        ("scoring", "Scoring new customers", section_scoring(paths, src, chosen)),
        ("migration", "Migration and drift", section_migration(paths, src, chosen)),
        ("splits", "How segments split as K grows", section_splits(src, chosen)),
        ("files", "Files in the run directory", section_files(paths)),
    ]
    provisional = ""
    if settings.frame.at[item["K chosen by"], "value"] == FALLBACK:
        provisional = (
            '<p class="banner"><b>Provisional.</b> No fit passed its convergence diagnostics '
            "(see section 4), so no K was chosen by the comparison; the K reported here is the "
            "one the comparison rule picks when the diagnostics are ignored. Sample longer "
            "(e.g. <code>--preset full</code>) before relying on these segments.</p>"
        )
    answer = section_answer(paths, src, chosen, chosen_html, setting, categorical)
    nav = "".join(f'<li><a href="#{key}">{esc(title)}</a></li>' for key, title, _ in sections)
    body = "".join(
        f'<section id="{key}"><h2>{number}. {esc(title)}</h2>{content}</section>'
        for number, (key, title, content) in enumerate(sections, start=1)
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Customer segments: {page_title}</title><style>{CSS}</style></head><body>"
        f"<h1>Customer segments: {dataset}</h1>"
        f'<p class="note">Run directory <code>{esc(paths.root)}</code>. Model '
        f"<code>{setting('model')}</code> on <code>{setting('transform')}</code> features; "
        f"reported K = {chosen_html} (chosen by {setting('K chosen by')}). Every interval is a "
        f"{setting('interval')}. Every number below is read from a CSV in the run directory "
        "(hover a number to see which: each one carries its file, row and column).</p>"
        f"{provisional}{answer}<nav><ol>{nav}</ol></nav>{body}</body></html>\n"
    )


def local_dependence_warnings(src, setting) -> list[str]:
    """The first screen's warning when the local-dependence check flags pairs (none if not),
    with the refit that joins the near-functions among them (settings' "suggested joins")."""
    pairs = src[LOCAL_DEPENDENCE]
    if not pairs.exists:
        return []
    flagged = [row for row in pairs.frame.index if is_true(pairs.frame.at[row, "flagged"])]
    if not flagged:
        return []
    listed = ", ".join(
        f"{pairs.text(row, 'variable_a')} &times; {pairs.text(row, 'variable_b')}"
        for row in flagged
    )
    return [
        f"The classes do not reproduce the cross-tabulation of {listed} (local dependence: "
        f"posterior predictive p &lt; {FLAG_BELOW}, see Predictive checks): classes may be "
        "spent on these pairs rather than on describing customers."
        + (
            f" Variables that nearly determine each other (Cram&eacute;r's V &gt; "
            f"{SUGGEST_CRAMERS_V}) can be modelled as one: <code>{suggestion}</code>"
            if (suggestion := setting("suggested joins")) not in ("none", "n/a")
            else ""
        )
    ]


def extend_advice(src, comparison: pd.DataFrame, row: int, chosen: int) -> str:
    """The first screen's next step when the chosen K is the largest fitted: ' Next: <command>
    (K = 4's fit took 187 s; ...)', from comparison.csv's ``extend`` column and diagnostics.csv's
    ``seconds``; "" for a run written without them."""
    command = comparison.at[row, "extend"] if "extend" in comparison else None
    if not isinstance(command, str) or not command:
        return ""
    diagnostics = src["diagnostics.csv"]
    took = ""
    if diagnostics.exists and "seconds" in diagnostics.frame:
        rows = diagnostics.frame.index[diagnostics.frame["K"] == chosen]
        if len(rows):
            took = (
                f" (K = {chosen}'s fit took {diagnostics.num(rows[0], 'seconds', decimals=0)} s; "
                "each larger K takes about as long or longer), then <code>segment compare</code>"
            )
    return f" Next: <code>{html.escape(command)}</code>{took}."


def worst_diagnostics(diagnostics: Source, chosen: int) -> str:
    """ " Its worst diagnostics: ..." of the reported fit (over all its chains), from
    diagnostics.csv; "" when the file has no row for it."""
    if not diagnostics.exists or "max_rhat" not in diagnostics.frame:
        return ""
    rows = diagnostics.frame.index[diagnostics.frame["K"] == chosen]
    if not len(rows):
        return ""
    row = rows[0]
    return (
        f" Its worst diagnostics, over all chains: max R-hat {diagnostics.num(row, 'max_rhat')}, "
        f"min bulk ESS {diagnostics.num(row, 'min_ess_bulk')}, min tail ESS "
        f"{diagnostics.num(row, 'min_ess_tail')}, {diagnostics.num(row, 'divergences')} "
        f"divergences, min E-BFMI {diagnostics.num(row, 'min_bfmi')} (pass: R-hat &le; "
        f"{diagnostic_rule.MAX_RHAT}, ESS &ge; {diagnostic_rule.MIN_ESS}, no divergences, "
        f'E-BFMI &ge; {diagnostic_rule.MIN_BFMI}; <a href="#diagnostics">details</a>).'
    )


def section_answer(paths, src, chosen: int, chosen_html, setting, categorical: bool) -> str:
    """The first screen: the reported K with its status, every warning that bears on it (a
    better K that failed its diagnostics, the largest K fitted, an unreliable elpd_loo), and
    the segment table. The sections below give the evidence."""
    comparison, diagnostics = src["comparison.csv"], src["diagnostics.csv"]
    status = "n/a"
    for source in (comparison, diagnostics):  # comparison's: ok, stacked, ...
        if source.exists and "status" in source.frame:
            rows = source.frame.index[source.frame["K"] == chosen]
            if len(rows):
                status = source.text(rows[0], "status")
                break
    warnings = []
    if comparison.exists and "chosen" in comparison.frame:
        frame = comparison.frame
        warnings += [html.escape(line) for line in better_unusable(frame, chosen, RULE_SE)]
        rows = frame.index[frame["K"] == chosen]
        if len(rows) and chosen == int(frame["K"].max()) and not skipped_ks(paths):
            warnings.append(
                f"K = {chosen_html} is the largest K fitted: a larger K may fit better still."
                + extend_advice(src, frame, rows[0], chosen)
            )
        if len(rows) and "loo_reliable" in frame and not is_true(frame.at[rows[0], "loo_reliable"]):
            warnings.append(
                f"{comparison.num(rows[0], 'pareto_k_remaining')} customer(s) keep a Pareto k "
                "above the threshold at this K: its elpd_loo is not reliable."
            )
    warnings += local_dependence_warnings(src, setting)
    segments = src[SEGMENTS]
    columns = ["segment", "name", "weight~hdi", "customers", "precise"]
    headers = ["segment", "name", "share of customers [94% HDI]", "customers (modal)",
               "precise assignments"]  # fmt: skip
    if not categorical and holds_amounts(src):
        columns[3:3] = ["tier", "revenue_share~hdi"]
        headers[3:3] = ["tier", "share of revenue [94% HDI]"]
    return "".join(
        [
            '<section id="answer" class="answer">',
            f"<p><b>K = {chosen_html} segments</b>, status <b>{status}</b>, chosen by "
            f"{setting('K chosen by')}.{worst_diagnostics(diagnostics, chosen)}</p>",
            "<ul>" + "".join(f'<li class="warning">{w}</li>' for w in warnings) + "</ul>"
            if warnings
            else "",
            table(segments, columns, headers=headers) if segments.exists else "",
            "</section>",
        ]
    )


def model_reason(summary, settings) -> str:
    """Why the hurdle mixture models this spend: the feature with the most exact zeros."""
    model_row = settings.frame.index[settings.frame["item"] == "model"]
    if not len(model_row) or settings.frame.at[model_row[0], "value"] != "hurdle":
        return ""
    row = int(summary.frame["zero_share"].idxmax())
    return (
        f"<p><b>Model: hurdle mixture.</b> {summary.text(row, 'feature')} is exactly 0 for a "
        f"share {summary.num(row, 'zero_share')} of customers. A Gaussian mixture gives exact "
        "values no probability, so its components can spike on the tied zeros; the hurdle gives "
        "each segment its own probability of a zero spend per feature, and a Gaussian for the "
        "amounts above it (the zero-share check in Predictive checks compares observed and "
        "replicated shares).</p>"
    )


def section_data(src, setting, item, categorical: bool) -> str:
    summary = src[DATA_SUMMARY]
    settings = src[SETTINGS]
    rows = [
        "dataset", "source", "data kind", "values", "customers", "unit", "categorical columns",
        "model", "transform", "joined variables", "options",
        "K fitted", "chains",
        "tune", "draws", "seed", "sampler", "backend", "sampling by K", "priors", "fit git commit",
        "fit packages", "report written",
    ]  # fmt: skip
    settings_rows = [item[name] for name in rows if name in item]
    if categorical:
        described = (
            "<p>Categorical answers: customers and share of customers per level of each "
            "variable (missing answers are their own level).</p>"
            + table(summary, ["variable", "level", "customers", "share"])
        )
    else:
        customers = settings.num(item["customers"], "value", 0) if "customers" in item else "All"
        amounts = holds_amounts(src)
        described = (
            f"<p>{customers} customers. {'Spend' if amounts else 'Values'} per feature "
            f"({setting('unit')}) as the model saw it (model-scale data mapped back through the "
            "transform); customers = those with a value (a missing value drops out of that "
            "customer's likelihood); zero_share = share of them with exactly 0.</p>"
            + table(
                summary,
                ["feature", "customers", "zero_share", "mean", "median", "max"],
                rows=None if amounts else list(range(len(summary.frame) - 1)),  # no total
            )
            + model_reason(summary, src[SETTINGS])
        )
        if src[ANSWER_SUMMARY].exists:
            described += (
                "<details><summary>Categorical columns (the mixed model's second part): "
                "customers and share of those who answered, per level (a missing answer drops "
                f"out of that customer's likelihood; {ANSWER_SUMMARY})</summary>"
                + table(src[ANSWER_SUMMARY], ["variable", "level", "customers", "share"])
                + "</details>"
            )
    out = [
        described,
        "<h3>Fit settings</h3>",
        table(
            settings, ["item", ("value", lambda r: _setting_value(settings, r))], rows=settings_rows
        ),
    ]
    return "".join(out)


def _setting_value(settings: Source, row: int) -> str:
    value = settings.frame.at[row, "value"]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return settings.text(row, "value")
    if math.isnan(number):
        return settings.text(row, "value")
    return settings.num(row, "value", None if number.is_integer() else 3)


def section_baseline(paths, src) -> str:
    baseline = src["baseline.csv"]
    if not baseline.exists:
        return missing("baseline.csv", f"segment baseline --out {paths.root}")
    frame = baseline.frame
    out = [
        "<p>The classic recipe: scikit-learn <code>GaussianMixture</code> (EM) for every K, "
        "several seeds, scored by BIC, AIC and ICL (lower is better). Minimum per seed and "
        "criterion:</p>"
    ]
    best_rows = []
    for _, group in frame.groupby(["covariance_type", "seed"], sort=True):
        best_rows.append(
            {c: int(group[c].idxmin()) for c in ("bic", "aic", "icl")} | {"first": group.index[0]}
        )
    out.append(
        '<table data-source="baseline.csv"><thead><tr><th>covariance</th><th>seed</th>'
        "<th>min-BIC K</th><th>BIC</th><th>min-AIC K</th><th>min-ICL K</th></tr></thead><tbody>"
    )
    for best in best_rows:
        first = best["first"]
        out.append(
            f"<tr><td>{baseline.text(first, 'covariance_type')}</td>"
            f'<td class="num">{baseline.num(first, "seed")}</td>'
            f'<td class="num">{baseline.num(best["bic"], "K")}</td>'
            f'<td class="num">{baseline.num(best["bic"], "bic")}</td>'
            f'<td class="num">{baseline.num(best["aic"], "K")}</td>'
            f'<td class="num">{baseline.num(best["icl"], "K")}</td></tr>'
        )
    out.append("</tbody></table>")
    out.append(
        "<details><summary>All baseline fits (baseline.csv)</summary>"
        + table(
            baseline,
            [
                "K",
                "seed",
                "covariance_type",
                "bic",
                "aic",
                "icl",
                "loglik",
                "n_params",
                "converged",
            ],
        )
        + "</details>"
    )
    out.append(image(paths, "baseline", "Baseline: BIC, AIC and ICL against K, one line per seed"))
    return "".join(out)


# The comparison columns the report shows: what the choice of K reads (comparison.csv has all).
DECISION_COLUMNS = (
    "K", "status", "elpd_loo", "se_loo", "elpd_diff", "dse", "chosen", "bic", "bic_chosen",
)  # fmt: skip
DECISION_HEADERS = {"se_loo": "se", "bic": "BIC", "bic_chosen": "BIC choice"}


def section_choice(paths, src, chosen, chosen_html, setting, item) -> str:
    comparison = src["comparison.csv"]
    if not comparison.exists:
        return (
            missing("comparison.csv", f"segment compare --run {paths.root}")
            + f"<p>K = {chosen_html} was chosen by {setting('K chosen by')}.</p>"
        )
    frame = comparison.frame
    columns = shown_columns(frame, DECISION_COLUMNS)

    def row_class(row):
        if frame.at[row, "K"] == chosen:
            return "chosen"
        return "" if str(frame.at[row, "status"]) in CHOOSABLE else "failed"

    overridden = ""
    if src[SETTINGS].frame.at[item["K chosen by"], "value"] != "comparison.csv":
        overridden = (
            f'<p class="banner">The reported K = {chosen_html} was set by '
            f"{setting('K chosen by')}, not by this comparison.</p>"
        )
    out = [
        overridden,
        "<p>Bayesian fits compared by PSIS-LOO: elpd_loo (higher is better) with its SE, and "
        "elpd_diff and dse against the best usable fit, which the rule below reads; beside them "
        "the baseline's BIC (best over seeds) at the same K and the K it chooses. Fits that "
        "failed convergence diagnostics (red: slow or divergent) are not eligible; a "
        "multimodal fit enters by its chain-stacked elpd (status stacked). Highlighted: the "
        "reported K. The full table is comparison.csv: p_loo, stacking and pseudo-BMA weights, "
        "Pareto k counts and the LOO method, WAIC, the baseline's AIC, ICL and BIC spread over "
        "seeds, and its held-out yardstick on the scale of elpd_loo, gmm_heldout_elpd"
        + (
            "; elpd_outside: the summed log predictive density of the customers outside the "
            "subsample the fits were sampled on (exact held-out data)"
            if "elpd_outside" in frame and frame["elpd_outside"].notna().any()
            else ""
        )
        + ".</p>",
        table(
            comparison,
            columns,
            headers=[DECISION_HEADERS.get(c, c) for c in columns],
            row_class=row_class,
        ),
        "<h3>Why this K</h3>",
        reasoning(comparison, skipped_ks(paths)),
    ]
    for name in COMPARE_FIGURES:
        if paths.figure(name).is_file():
            out.append(image(paths, name, f"Comparison figure: {name.replace('_', ' ')}"))
    return "".join(out)


def reasoning(comparison: Source, skipped: dict[int, str]) -> str:
    """The decision rule of ``segment compare`` and its outcome; every number traced."""
    frame = comparison.frame
    num = comparison.num
    items = [
        "Rule: among fits that passed diagnostics (ok, or multimodal by their chain-stacked "
        f"elpd), the smallest K whose elpd_loo is within "
        f"{RULE_SE:g} &times; dse of the best (elpd_diff &ge; &minus;{RULE_SE:g} dse): "
        "parsimony under the uncertainty of the comparison."
    ]
    chosen_rows = frame.index[frame["chosen"].map(is_true)]
    chosen_row = chosen_rows[0] if len(chosen_rows) else None
    ok = frame[frame["status"].astype(str).isin(CHOOSABLE)]
    if chosen_row is None or not len(ok):
        items.append("No K chosen: no fit passed its diagnostics.")
    else:
        chosen_html = num(chosen_row, "K")
        best = int(ok["elpd_loo"].idxmax())
        items.append(
            f"Best elpd_loo among fits that passed: K = {num(best, 'K')}, "
            f"{num(best, 'elpd_loo')} (SE {num(best, 'se_loo')})."
        )
        if best == chosen_row:
            items.append(f"Chosen K = {chosen_html}: the best fit itself.")
        else:
            items.append(
                f"Chosen K = {chosen_html}: elpd_diff {num(chosen_row, 'elpd_diff')} with dse "
                f"{num(chosen_row, 'dse')}, inside the {RULE_SE:g}-dse band."
            )
        smaller = ok[ok["K"] < frame.at[chosen_row, "K"]]
        if len(smaller):
            items.append(
                "Smaller K rejected (outside the band): "
                + "; ".join(
                    f"K = {num(r, 'K')}: elpd_diff {num(r, 'elpd_diff')}, dse {num(r, 'dse')}"
                    for r in smaller.index
                )
                + "."
            )
        if "loo_reliable" in frame and not is_true(frame.at[chosen_row, "loo_reliable"]):
            items.append(
                f"Caution: {num(chosen_row, 'pareto_k_remaining')} customer(s) keep a Pareto k "
                f"above {num(chosen_row, 'k_threshold')} at the chosen K: its elpd_loo is not "
                "reliable."
            )
    failed = frame[~frame["status"].astype(str).isin(CHOOSABLE)]
    if len(failed):
        listed = ", ".join(f"{num(r, 'K')} ({frame.at[r, 'status']})" for r in failed.index)
        items.append(f"Never chosen because their diagnostics failed: K = {listed}.")
    if chosen_row is not None:
        chosen_k = int(frame.at[chosen_row, "K"])
        items += [
            f'<strong class="warning">{html.escape(line)}</strong>'
            for line in better_unusable(frame, chosen_k, RULE_SE)
        ]
        if chosen_k == int(frame["K"].max()) and not skipped:
            items.append(
                f"The chosen K = {num(chosen_row, 'K')} is the largest K fitted: a larger K may "
                "fit better still; fit it before relying on this choice."
            )
    if skipped:
        items.append(
            "Not fitted (the sweep's stopping rule): "
            + "; ".join(f"K = {k}: {html.escape(r)}" for k, r in sorted(skipped.items()))
            + "."
        )
    if "bic_chosen" in frame:
        bic_rows = frame.index[frame["bic_chosen"].map(is_true)]
        if len(bic_rows):
            b = bic_rows[0]
            if chosen_row is None:
                verdict = "there is no Bayesian choice to set it against"
            elif b == chosen_row:
                verdict = "it agrees with the Bayesian choice"
            else:
                verdict = "it disagrees with the Bayesian choice (comparison.md explains why)"
            items.append(
                f"The baseline's BIC (best over seeds) is lowest at K = {num(b, 'K')} "
                f"(BIC {num(b, 'bic')}, spread over seeds {num(b, 'bic_spread')}) among the "
                f"fitted K: {verdict}."
            )
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def section_diagnostics(paths, src, chosen, setting) -> str:
    diagnostics = src["diagnostics.csv"]
    if not diagnostics.exists:
        return missing("diagnostics.csv", f"segment fit --out {paths.root}")
    frame = diagnostics.frame

    def row_class(row):
        if frame.at[row, "K"] == chosen:
            return "chosen" if frame.at[row, "status"] in ("ok", "multimodal") else "failed"
        return "failed" if frame.at[row, "status"] != "ok" else ""

    def verdict(row):
        status = str(frame.at[row, "status"])
        return "pass" if status == "ok" else f"{status.upper()}: {diagnostics.text(row, 'reason')}"

    out = [
        f"<p>Pass = max R-hat &le; {diagnostic_rule.MAX_RHAT}, bulk and tail ESS &ge; "
        f"{diagnostic_rule.MIN_ESS}, no divergent transitions and E-BFMI &ge; "
        f"{diagnostic_rule.MIN_BFMI} on every chain (over {setting('diagnosed')}, after "
        "relabelling). <code>seconds</code> is the whole fit (model compilation and "
        "sampling), <code>sampling_seconds</code> the sampler alone.</p>",
        table(
            diagnostics,
            ["K", ("result", verdict)]
            + [c for c in diagnostic_rule.COLUMNS[3:] if c in frame.columns],
            row_class=row_class,
        ),
    ]
    chosen_rows = frame.index[frame["K"] == chosen]
    chosen_status = str(frame.at[chosen_rows[0], "status"]) if len(chosen_rows) else "ok"
    if chosen_status == "multimodal":
        out.append(
            f'<p class="banner">The reported K = {diagnostics.num(chosen_rows[0], "K")} is '
            "multimodal: its chains settle in distinct modes. It was compared by its "
            "chain-stacked elpd; the profiles and assignments describe the mode with the "
            "largest stacking weight (the fit's <code>assignments</code> attrs list its "
            "chains); the trace and rank plots show every chain.</p>"
        )
        modes = src[MODES]
        if modes.exists:
            out.append(
                "<p>Its modes (segment weights: posterior means within the mode; the first is "
                "the one described):</p>"
                + table(modes, list(modes.frame.columns), text_columns=("chains",))
            )
    elif chosen_status != "ok":
        out.append(
            f'<p class="banner">The reported K = {diagnostics.num(chosen_rows[0], "K")} FAILED '
            "its diagnostics: treat every number below as provisional.</p>"
        )
    summary = src[PARAMETER_SUMMARY]
    if summary.exists:
        mode = " (the chains of the mode described)" if chosen_status == "multimodal" else ""
        out.append(
            f"<h3>Parameter summary, K = {chosen}</h3><p>ArviZ's <code>az.summary</code> of "
            f"the segment-level parameters ({esc(', '.join(summary.frame['variable'].unique()))}"
            f"; means and scales on the model scale) over the draws of the reported fit{mode}: "
            "posterior mean and sd, 94% HDI, the Monte Carlo standard errors (MCSE) of the mean "
            "and the sd, bulk and tail ESS, and R-hat. A mean or sd is printed to the leading "
            "digit of twice its MCSE, the HDI bounds to the digits of the mean; "
            f"{PARAMETER_SUMMARY} has every value unrounded. Red: R-hat above "
            f"{diagnostic_rule.MAX_RHAT} or an ESS below {diagnostic_rule.MIN_ESS}.</p>"
            + parameter_table(summary)
        )
    out.append(
        f"<h3>MCMC plots for K = {chosen}</h3><p>Trace and rank plots show the "
        f"{figures.N_WORST} scalar parameters with the highest R-hat (all of them would be "
        "unreadable); rank plots should be flat and overlapping across chains.</p>"
    )
    out.append(image(paths, "trace", f"Trace plot, K = {chosen}: worst-R-hat parameters"))
    out.append(image(paths, "rank", f"Rank plot, K = {chosen}: worst-R-hat parameters"))
    out.append(image(paths, "energy", f"Energy plot, K = {chosen}, with E-BFMI per chain"))
    return "".join(out)


def mc_decimals(mcse: float) -> int:
    """The decimals a posterior mean (or sd) with Monte Carlo standard error ``mcse`` supports:
    those of the leading digit of 2 x mcse (0.0047 -> 0.0094: 3; 26 -> 52: -1, i.e. tens).
    3 when the MCSE is not a positive number."""
    if not (np.isfinite(mcse) and mcse > 0):
        return 3
    return -int(np.floor(np.log10(2 * mcse)))


def significant_decimals(value: float, digits: int = 2) -> int:
    """The decimals that show ``value`` to ``digits`` significant digits (3 for 0 or NaN)."""
    if not (np.isfinite(value) and value != 0):
        return 3
    return digits - 1 - int(np.floor(np.log10(abs(value))))


def parameter_table(summary: Source) -> str:
    """The rows of ``parameter_summary.csv``, each value to the digits its MCSE supports
    (:func:`mc_decimals`; the MCSEs to 2 significant digits); red when a parameter fails the
    R-hat or ESS rule."""
    frame = summary.frame

    def rounded(column: str, mcse: str):
        return lambda row: summary.num(row, column, mc_decimals(frame.at[row, mcse]))

    def interval(row: int) -> str:
        decimals = mc_decimals(frame.at[row, "mcse_mean"])
        low, high = summary.num(row, "hdi_low", decimals), summary.num(row, "hdi_high", decimals)
        return f'<span class="hdi">[{low}, {high}]</span>'

    def error(column: str):
        return lambda row: summary.num(row, column, significant_decimals(frame.at[row, column]))

    def row_class(row: int) -> str:
        ess = min(frame.at[row, "ess_bulk"], frame.at[row, "ess_tail"])
        passed = (
            frame.at[row, "r_hat"] <= diagnostic_rule.MAX_RHAT and ess >= diagnostic_rule.MIN_ESS
        )
        return "" if passed else "failed"

    columns = [
        "parameter", ("mean", rounded("mean", "mcse_mean"), "num"),
        ("sd", rounded("sd", "mcse_sd"), "num"), ("94% HDI", interval, "num"),
        ("MCSE mean", error("mcse_mean"), "num"), ("MCSE sd", error("mcse_sd"), "num"),
        "ess_bulk", "ess_tail", "r_hat",
    ]  # fmt: skip
    return table(summary, columns, row_class=row_class)


def check_table(source: Source, labels: list[str]) -> str:
    """Observed statistic against its replicated mean and 94% HDI (zero share, level share)."""

    def interval(row):
        return (
            f"[{source.num(row, 'replicated_hdi_low')}, {source.num(row, 'replicated_hdi_high')}]"
        )

    def inside(row):
        return "yes" if is_true(source.frame.at[row, "inside_hdi"]) else "<b>no</b>"

    columns = [*labels, "observed", "replicated_mean", ("replicated 94% HDI", interval),
               ("observed inside HDI", inside)]  # fmt: skip
    return table(source, columns)


def section_checks(paths, src, categorical: bool) -> str:
    shares = src[LEVEL_SHARES]
    level_check = (
        "<p>Posterior predictive check: the share of customers at each level, observed and "
        "in data sets replicated from the posterior (mean and 94% HDI over replications). "
        "A latent class model reproduces one-way shares easily; a miss flags a level the "
        "classes cannot hold.</p>"
        + check_table(shares, ["variable", "level"])
        + section_local_dependence(paths, src)
        if shares.exists
        else missing(LEVEL_SHARES, f"segment report --run {paths.root}")
    )
    if categorical:
        return level_check
    zero = src[ZERO_SHARE]
    out = [
        "<p>Replicated data sets from the posterior against the observed data, per feature, on "
        "the model scale (for log-standardize: standardized log1p(spend), so the spike on the "
        "left of a panel is the customers with zero spend).</p>",
        image(paths, "posterior_predictive", "Posterior predictive check per feature"),
    ]
    if zero.exists:
        out.append(
            "<h3>Zero-spend share</h3><p>Share of customers who spent less than one unit: "
            "observed, and replicated (posterior predictive mean and 94% HDI). The mixture has "
            "no point mass at zero: it can only reproduce a spike of zeros by putting a narrow "
            "component there. <b>no</b> marks a feature whose observed share falls outside the "
            "replicated 94% HDI.</p>" + check_table(zero, ["feature"])
        )
    if paths.figure("prior_predictive").is_file():
        out.append(
            "<h3>Prior predictive check</h3><p>Data sets drawn from the priors alone: they "
            "should cover the observed data without being absurdly wide.</p>"
            + image(paths, "prior_predictive", "Prior predictive check per feature")
        )
    else:
        out.append(
            '<p class="note">No prior predictive sample in this fit (fits saved before the '
            "predictive checks were added carry only the posterior predictive one).</p>"
        )
    if src[LEVEL_PROFILES].exists:  # a mixed fit: its answers are checked too
        out.append("<h3>Answers (categorical part)</h3>" + level_check)
    return "".join(out)


def section_local_dependence(paths, src) -> str:
    """The pairs check of a latent class fit: heatmap and the per-pair table, failing rows red."""
    pairs = src[LOCAL_DEPENDENCE]
    if not pairs.exists:
        return missing(LOCAL_DEPENDENCE, f"segment report --run {paths.root}")

    def failed(row: int) -> str:
        return "failed" if is_true(pairs.frame.at[row, "flagged"]) else ""

    return (
        "<h3>Local dependence: pairs of variables</h3><p>Within a class the model takes the "
        "variables to be independent, so it implies each two-way table: the customers who "
        "answered both times the class-weighted sum of products of their level probabilities. "
        "Per pair, the Pearson chi-square of the observed table against that implied table is "
        "set against the chi-square of a table replicated from the same posterior draw (the "
        "same customers answering the same variables; <code>draws</code> evenly spaced draws). "
        "The posterior predictive p-value is the share of draws whose replicated chi-square "
        f"reaches the observed one. A pair with p &lt; {FLAG_BELOW} is flagged: the classes do "
        "not reproduce its cross-tabulation, and extra classes may be spent on it (the Bayesian "
        "counterpart of the bivariate residuals of LCA software). These p-values sit near 0.5 "
        f"when the model holds, so {FLAG_BELOW} errs towards not flagging. "
        "<code>chi2_ratio</code> (observed / replicated chi-square) says how far off a pair "
        "is, and <code>cramers_v</code> (of the observed table: 1 when one variable determines "
        f"the other) whether joining it (<code>--join</code>) is the remedy (above "
        f"{SUGGEST_CRAMERS_V}); the cell counts are in "
        f"<code>{esc(LOCAL_DEPENDENCE_CELLS)}</code>.</p>"
        + image(paths, "local_dependence", "Local dependence per pair of variables")
        + table(pairs, list(PAIR_COLUMNS), row_class=failed)
    )


NAME_RULE = (
    "Names: the feature with the largest index (segment mean spend / model-implied population "
    "mean) leads ('-led'; '-tilted' when even that index is below 1, i.e. the segment buys less "
    "of every feature than the population); 'all-round' when no feature stands out (largest "
    "index &lt; 1.5 &times; smallest); 'low engagement' for the lowest-spending low-tier "
    "segment below the population "
    "on every feature (at most one; other low segments are named by their lead); 'no "
    "&lt;feature&gt; (&lt;tier&gt;)' when at least 90% of the segment's customers (weighted by "
    "membership) spent nothing on that feature: such a segment is the spike of zeros, not a "
    "spending pattern."
)
MEASUREMENT_NAME_RULE = (
    "The features are measurements (some values are negative), not amounts: no totals, revenue "
    "shares or value tiers. Names: the (at most two) features whose segment mean is furthest "
    "from the population mean, at least 0.5 sd away, as 'feature high' or 'feature low'; 'near "
    "average' when none is. Standardized difference = (segment mean - model-implied population "
    "mean) / the feature's observed sd."
)
MEASUREMENT_COLUMNS = ["segment", "name", "feature", "mean_spend~hdi", "observed_segment_mean",
                       "implied_population_mean", "std_difference"]  # fmt: skip
MEASUREMENT_HEADERS = ["segment", "name", "feature", "model mean [94% HDI]",
                       "observed mean (membership-weighted)", "population mean (model)",
                       "standardized difference"]  # fmt: skip
CLASS_NAME_RULE = (
    "Variables are ranked by distinctiveness: the weight-averaged total-variation distance "
    "between each class's level probabilities and the population shares (0: every class answers "
    "like everyone; 1: no two classes share a level). A class's distinctive level of a variable "
    "is the one with the highest lift (class probability / population share) among those most of "
    "the class has (probability &ge; 0.5) with lift &ge; 1.25. Names: the distinctive levels of "
    "the (at most two) most distinctive variables that have one, leaving out a second level "
    "redundant with the first (its variable's Cram&eacute;r's V with the first's above 0.7, or "
    "one level implying the other for at least 90% of the customers); 'typical mix' when none "
    "qualifies."
)
TOP_LEVELS_RULE = (
    "Per class, its most distinctive levels: the name's, then for the other variables in "
    "distinctiveness order the class's distinctive level (else its level furthest from the "
    "population share), redundant ones last."
)


def section_profiles(paths, src, setting, categorical: bool) -> str:
    segments = src[SEGMENTS]
    profiles = src["profiles.csv"]
    if categorical:
        return "".join(
            [
                f"<p>Latent classes: per class the probability of each level of each variable, "
                f"posterior mean and 94% HDI, beside the population share. {CLASS_NAME_RULE}</p>",
                weights_table(segments, "class"),
                distinctive_levels(profiles),
                level_probabilities(paths, profiles, "profiles", "class"),
            ]
        )
    spend = (
        section_measurement_profiles(paths, segments, profiles, setting)
        if not holds_amounts(src)
        else section_spend_profiles(paths, segments, profiles, setting)
    )
    if not src[LEVEL_PROFILES].exists:
        return spend
    return spend + (
        "<h3>Answers per segment</h3><p>The categorical part of the mixed model: per segment "
        "the probability of each level of each variable, posterior mean and 94% HDI, beside "
        "the population share. Segment names add the answer with the highest lift (probability "
        "&ge; 0.5, lift &ge; 1.25) after the spend name.</p>"
        + level_probabilities(paths, src[LEVEL_PROFILES], "level_profiles", "segment")
    )


def distinctive_levels(profiles) -> str:
    """The variables by distinctiveness and each class's top levels (``top_level`` > 0): rows of
    the level profile table itself, so every number is traced to it. Empty for a profile table
    written before those columns existed."""
    frame = profiles.frame
    if frame is None or "top_level" not in frame:
        return ""
    variables = frame.drop_duplicates("variable").sort_values("variable_rank", kind="stable")
    top = frame[frame["top_level"] > 0].sort_values(["segment", "top_level"], kind="stable")
    out = [
        "<h3>What sets the classes apart</h3>",
        "<p>Variables by distinctiveness (from profiles.csv, one row per variable):</p>",
        table(
            profiles,
            ["variable_rank", "variable", "distinctiveness"],
            headers=["rank", "variable", "distinctiveness"],
            rows=list(variables.index),
        ),
    ]
    columns = ["segment", "name", "top_level", "variable", "level", "probability~hdi",
               "population_share", "lift"]  # fmt: skip
    headers = ["class", "name", "rank", "variable", "level", "probability [94% HDI]",
               "population share", "lift"]  # fmt: skip
    if len(top):
        out += [
            f"<p>{TOP_LEVELS_RULE}</p>",
            table(profiles, columns, headers=headers, rows=list(top.index)),
        ]
    return "".join(out)


def level_probabilities(paths, profiles, figure: str, label: str) -> str:
    """The level probabilities per class or segment (``label``): figure and table."""
    return "".join(
        [
            image(paths, figure, f"{label.title()} profiles: level probabilities with 94% HDI"),
            f"<details><summary>Level probabilities per {label} ({profiles.path.name})</summary>",
            table(
                profiles,
                [
                    "segment",
                    "name",
                    "variable",
                    "level",
                    "probability~hdi",
                    "population_share",
                    "lift",
                ],
                headers=[
                    label,
                    "name",
                    "variable",
                    "level",
                    "probability [94% HDI]",
                    "population share",
                    "lift",
                ],
            ),
            "</details>",
        ]
    )


def section_spend_profiles(paths, segments, profiles, setting) -> str:
    segment_columns = ["segment", "name", "tier", "weight~hdi", "revenue_share~hdi",
                       "total_spend~hdi", "spend_ratio~hdi", "customers"]  # fmt: skip
    segment_headers = ["segment", "name", "tier", "weight (share of customers)", "revenue share",
                       "total spend", "spend ratio", "customers (modal)"]  # fmt: skip
    profile_columns = ["segment", "name", "feature", "mean_spend~hdi", "observed_segment_mean",
                       "implied_population_mean", "index", "std_difference",
                       "zero_share"]  # fmt: skip
    profile_headers = ["segment", "name", "feature", "model mean spend [94% HDI]",
                       "observed mean spend (membership-weighted)", "population mean (model)",
                       "index", "standardized difference",
                       "share of its customers with no spend"]  # fmt: skip
    if "zero_prob" in profiles.frame and profiles.frame["zero_prob"].notna().any():  # hurdle
        profile_columns.append("zero_prob~hdi")
        profile_headers.append("model P(no purchase) [94% HDI]")
    return "".join(
        [
            f"<p>Spend functional: {setting('spend functional')}, in {setting('unit')}. "
            f"Value tier: {setting('tier rule')}. {NAME_RULE}</p>",
            table(segments, segment_columns, headers=segment_headers),
            image(paths, "profiles", "Segment profiles: mean spend per feature with 94% HDI"),
            "<details open><summary>Mean spend per segment and feature (profiles.csv)</summary>",
            table(profiles, profile_columns, headers=profile_headers),
            "</details>",
        ]
    )


def holds_amounts(src) -> bool:
    """Whether the report's features are amounts or categories, not measurements (the settings
    row ``values``; runs written before that row existed were never measurements)."""
    frame = src[SETTINGS].frame
    values = frame.loc[frame["item"] == "values", "value"]
    return not (len(values) and str(values.iloc[0]).startswith("measurements"))


def weights_table(segments, label: str) -> str:
    """Segments (or classes, ``label``) with their weight and modal customer count."""
    return table(
        segments,
        ["segment", "name", "weight~hdi", "customers"],
        headers=[label, "name", "weight (share of customers)", "customers (modal)"],
    )


def section_measurement_profiles(paths, segments, profiles, setting) -> str:
    """Profiles of measurements: segment means with HDIs and standardized differences."""
    return "".join(
        [
            f"<p>Segment means in {setting('unit')}. {MEASUREMENT_NAME_RULE}</p>",
            weights_table(segments, "segment"),
            image(paths, "profiles", "Segment profiles: mean per feature with 94% HDI"),
            "<details open><summary>Mean per segment and feature (profiles.csv)</summary>",
            table(profiles, MEASUREMENT_COLUMNS, headers=MEASUREMENT_HEADERS),
            "</details>",
        ]
    )


def section_revenue(paths, src, categorical: bool) -> str:
    if categorical:
        return "<p>Not applicable: categorical data carry no spend.</p>"
    if not holds_amounts(src):
        return "<p>Not applicable: the features are measurements with negative values.</p>"
    segments = src[SEGMENTS]
    columns = ["segment", "name", "weight~hdi", "revenue_share~hdi", "customer_share"]
    headers = ["segment", "name", "share of customers (weight)", "share of revenue",
               "share of customers (modal assignment)"]  # fmt: skip
    return (
        "<p>Share of customers (segment weight) against expected share of revenue, "
        "R<sub>k</sub> = w<sub>k</sub>&middot;T<sub>k</sub> / &Sigma;<sub>j</sub> "
        "w<sub>j</sub>&middot;T<sub>j</sub> with T<sub>k</sub> the segment's implied mean "
        "total spend, per posterior draw; posterior mean and 94% HDI.</p>"
        + table(segments, columns, headers=headers)
        + image(paths, "revenue", "Share of customers vs share of revenue, 94% HDIs")
    )


def section_assignments(paths, src, setting, item) -> str:
    segments = src[SEGMENTS]
    assignments = src["assignments.csv"]
    settings = src[SETTINGS]
    threshold = settings.num(item["precise threshold"], "value", 2)
    p_columns = [c for c in assignments.frame.columns if c.startswith("p_")]
    out = [
        "<p>Each customer's modal segment (largest posterior-mean membership probability) with "
        f"that probability and its 94% HDI. <b>precise</b>: lower HDI bound &ge; {threshold}; "
        "<b>broad</b> otherwise (target precise customers with confidence; treat broad ones as "
        "between segments). All customers are in <code>assignments.csv</code>.</p>",
        table(
            segments, ["segment", "name", "tier", "customers", "customer_share", "precise", "broad"]
        ),
        image(paths, "assignment_uncertainty", "Assignment uncertainty histograms"),
        f"<h3>First {ASSIGNMENT_PREVIEW} rows of assignments.csv</h3>",
        table(
            assignments,
            ["customer_id", "segment", "probability~hdi", "confidence", "tier", *p_columns],
            headers=[
                "customer_id",
                "segment",
                "probability [94% HDI]",
                "confidence",
                "tier",
                *p_columns,
            ],
            rows=range(min(ASSIGNMENT_PREVIEW, len(assignments.frame))),
        ),
    ]
    return "".join(out)


def section_response(paths, src, chosen: int) -> str:
    response, targeting = (src[name] for name in RESPONSE_TABLES)
    if not response.exists:
        return missing("response.csv", f"segment response --run {paths.root}")
    stale = stale_warning(response, chosen, f"segment response --run {paths.root}")
    columns = ["outcome", "segment", "name", "customers", "responders", "rate~hdi", "lift~hdi"]
    headers = ["outcome", "segment", "name", "customers (expected)", "responders (expected)",
               "response rate [94% HDI]", "lift over all customers [94% HDI]"]  # fmt: skip
    out = [
        stale,
        "<p>Per posterior draw every customer's segment is drawn from their membership "
        "probabilities, and the segment's rate from Beta(1 + responders, 1 + non-responders) of "
        "that draw's counts, so the intervals carry the assignment uncertainty. The population "
        "rate is the count-weighted mean of the same draw's segment rates; lift = segment rate / "
        "population rate. Customers and responders are posterior means of the drawn counts; "
        "missing outcomes are left out. Segments are drawn from spend alone, so where "
        "memberships are uncertain the rates are pulled toward the population rate.</p>",
        table(response, columns, headers=headers,
              row_class=lambda r: "chosen" if response.frame.at[r, "segment"] == "all" else ""),
    ]  # fmt: skip
    if targeting.exists:
        columns = ["outcome", "segment", "name", "group", "customers", "responders", "rate~hdi"]
        out.append(
            "<details><summary>Targeting rule: precise vs broad customers, and what a membership "
            "threshold would have reached</summary><p><b>precise</b>/<b>broad</b>: customers "
            "with the segment as modal segment, by confidence; <b>p &ge; t</b>: customers whose "
            "posterior-mean membership probability in the segment is at least t. Customers "
            "reached and responders are plain counts of these fixed groups (no draws); the rate "
            "is their Beta posterior (94% HDI).</p>"
            + table(targeting, columns, headers=[*columns[:-1], "response rate [94% HDI]"])
            + "</details>"
        )
    return "".join(out)


def stale_warning(source: Source, chosen: int, rerun: str) -> str:
    """A warning when the step table ``source`` (its first row's ``K``) is of another K than the
    reported ``chosen``, naming the command ``rerun`` that writes it again; else nothing."""
    if int(source.frame.at[0, "K"]) == chosen:
        return ""
    return (
        f'<p class="warning">{esc(source.name)} is for K = {source.num(0, "K", None)}, not the '
        f"reported K = {chosen}: rerun <code>{esc(rerun)}</code>.</p>"
    )


def section_scoring(paths, src, chosen: int) -> str:
    """The customers ``segment score`` assigned with its default --out (``scores_summary.csv``):
    per modal segment, how many are precise, broad and novel."""
    summary = src[SCORE_TABLES[1]]
    rerun = f"segment score --run {paths.root} --data NEW_FILE"
    if not summary.exists:
        return missing(summary.name, rerun)
    columns = ["segment", "segment_name", "customers", "precise", "broad", "novel"]
    return "".join(
        [
            stale_warning(summary, chosen, rerun),
            f"<p>New customers ({summary.text(0, 'data')}) assigned with the K = "
            f"{summary.num(0, 'K', None)} fit's saved posterior, without resampling, on the "
            "fit's own transform constants. <b>precise</b>: lower 94% HDI bound of the modal "
            f"segment's membership probability &ge; {summary.num(0, 'precise_threshold')}; "
            "<b>novel</b>: log predictive density below the 1st percentile of the fitted "
            "customers' own, so about 1 in 100 customers like the fitted ones is novel, and a "
            "much larger share says the new customers fit no segment. Every customer is in "
            f"<code>{esc(SCORE_TABLES[0])}</code>.</p>",
            table(
                summary,
                columns,
                headers=["segment", "name", "customers", "precise", "broad", "novel"],
                row_class=lambda r: (
                    "chosen" if summary.frame.at[r, "segment"] == POPULATION else ""
                ),
                text_columns=("segment",),
            ),
        ]
    )


def section_migration(paths, src, chosen: int) -> str:
    """What ``segment track`` wrote into the run directory's ``track/``: the migration matrix
    (expected counts and realised-count 94% HDIs), its figure, the drift signal with its SE and
    verdict, and the per-feature shifts."""
    migration, sizes, shifts, signal = (src[name] for name in TRACK_TABLES)
    rerun = f"segment track --run {paths.root} --data LATER_FILE"
    absent = [source.name for source in (migration, sizes, shifts, signal) if not source.exists]
    if absent:
        return missing(", ".join(absent), rerun)
    frame = migration.frame
    matrix = crosstab_table(
        migration,
        frame,
        "from_segment",
        "to_segment",
        lambda r: f"{migration.num(r, 'from_segment')}: {migration.text(r, 'from_name')}",
        lambda r: f"{migration.num(r, 'to_segment')}: {migration.text(r, 'to_name')}",
        corner="earlier \u2192 later",
        cell=lambda r: (
            f'{migration.num(r, "expected")} <span class="hdi">[{migration.num(r, "realised_low")}'
            f", {migration.num(r, 'realised_high')}]</span>"
        ),
    )
    moved = ", ".join(
        f"{shifts.text(r, 'feature')} {shifts.num(r, 'shift_sd')} sd"
        for r in range(min(MOVED_FEATURES, len(shifts.frame)))
    )
    if is_true(signal.frame.at[0, "refit"]):
        verdict = (
            f'<p class="warning"><b>Refit recommended:</b> the later period is predicted worse '
            f"than the fit's own customers by more than {signal.num(0, 'refit_se', 0)} SE. "
            f"Features that moved most: {moved}.</p>"
        )
    else:
        verdict = (
            f"<p><b>No drift:</b> the later period is not predicted worse than the fit's own "
            f"customers by more than {signal.num(0, 'refit_se', 0)} SE.</p>"
        )
    replicated = (
        "replicated mean [94% HDI]",
        lambda r: (
            f'{shifts.num(r, "replicated_mean", 3)} <span class="hdi">['
            f"{shifts.num(r, 'replicated_hdi_low', 3)}, {shifts.num(r, 'replicated_hdi_high', 3)}"
            "]</span>"
        ),
        "num",
    )
    return "".join(
        [
            stale_warning(signal, chosen, rerun),
            f"<p>The fit's customers in a later period ({signal.text(0, 'later_data')}), matched "
            f"by ID: {signal.num(0, 'matched')} in both periods; {signal.num(0, 'new')} new in the "
            f"later table and {signal.num(0, 'gone')} gone from it are left out. Written by "
            f"<code>segment track</code> with the K = {signal.num(0, 'K', None)} fit, without "
            "resampling.</p>",
            "<h3>Migration matrix</h3><p>Expected customers moving from each earlier segment "
            "(rows) to each later one (columns), the posterior mean over draws of "
            "&sum;<sub>i</sub> p<sub>earlier</sub>(a) p<sub>later</sub>(b); in brackets the 94% "
            "HDI of the count itself (at every draw every customer's two segments are drawn "
            "from their memberships and counted), the interval a count can be checked against. "
            "The HDI of the expected count alone (parameter uncertainty only) is in "
            "<code>migration.csv</code>.</p>",
            matrix,
            embedded(paths.track_dir / "migration.png", "Migration between segments"),
            "<p>Segment sizes: the fit's weights, and the later period's, estimated for every "
            "posterior draw with the fit's segment profiles held fixed (the prior of every later "
            "membership above); expected matched customers in each period (the matrix's row and "
            "column sums).</p>",
            table(
                sizes,
                [
                    "segment",
                    "name",
                    "fit_weight~hdi",
                    "later_weight~hdi",
                    "earlier_customers",
                    "later_customers",
                ],
                headers=[
                    "segment",
                    "name",
                    "fit weight [94% HDI]",
                    "later weight [94% HDI]",
                    "earlier customers (expected)",
                    "later customers (expected)",
                ],
            ),
            "<h3>Drift</h3>"
            f"<p>The later period's mean log predictive density per customer under the fit, "
            f"{signal.num(0, 'later_lpd', 3)} nats, against the fit's own mean PSIS-LOO elpd per "
            f"customer, {signal.num(0, 'fit_elpd_loo', 3)} nats (model scale): difference "
            f"{signal.num(0, 'difference', 3)} nats per customer, paired SE "
            f"{signal.num(0, 'se', 3)}.</p>",
            verdict,
            "<p>Per feature (model scale): the fit's observed mean, its replicated mean "
            "(posterior predictive), the later observed mean of the same customers and the "
            "shift = (later - replicated) / the fit's sd, largest first.</p>",
            table(
                shifts,
                ["feature", "fit_mean", replicated, "later_mean", "fit_sd", "shift_sd"],
                headers=["feature", "fit mean", "", "later mean", "fit sd", "shift (sd)"],
            ),
        ]
    )


def crosstab_table(
    source,
    frame,
    row_key: str,
    column_key: str,
    row_label,
    column_label,
    corner: str = "",
    cell=None,
) -> str:
    """An HTML cross-tabulation of a long table (one row per cell): a row per ``row_key`` value
    and a column per ``column_key`` value, both sorted; ``row_label(r)`` and ``column_label(r)``
    give the header text of the frame row ``r`` that opens them, and ``cell(r)`` the content of
    its cell (default: the ``customers`` counted). Every number keeps its source cell
    (``source.num``)."""
    cell = cell or (lambda r: source.num(r, "customers"))
    columns = frame.drop_duplicates(column_key).sort_values(column_key)
    head = "".join(f"<th>{column_label(r)}</th>" for r in columns.index)
    rows = []
    for _, block in frame.groupby(row_key, sort=True):
        cells = "".join(
            f'<td class="num">{cell(r)}</td>' for r in block.sort_values(column_key).index
        )
        rows.append(f"<tr><th>{row_label(block.index[0])}</th>{cells}</tr>")
    return (
        f'<table data-source="{source.name}"><thead><tr><th>{corner}</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def section_versus_gmm(src, setting) -> str:
    """The latent classes beside the baseline's own clusters at its BIC K: each side's held-out
    log score and the households of each class in each cluster (:data:`CLASSES_VS_GMM_SCORES`,
    :data:`CLASSES_VS_GMM`, from ``analysis.selection.baseline_clusters``)."""
    scores, crosstab = src[CLASSES_VS_GMM_SCORES], src[CLASSES_VS_GMM]
    if not crosstab.exists:
        why = setting("baseline clusters")
        return f"<p>The comparison with the baseline's clusters was {why}.</p>"
    households = crosstab_table(
        crosstab,
        crosstab.frame,
        "cluster",
        "segment",
        lambda r: (
            f"GMM {crosstab.num(r, 'cluster')}: {crosstab.text(r, 'cluster_levels')} "
            f"({crosstab.num(r, 'cluster_customers')})"
        ),
        lambda r: (
            f"{crosstab.num(r, 'segment')}: {crosstab.text(r, 'name')} "
            f"({crosstab.num(r, 'class_customers')})"
        ),
        corner="GMM cluster",
    )
    return "".join(
        [
            "<p>The seed analysis segmented the households with the one-hot GMM + BIC recipe: "
            "scikit-learn <code>GaussianMixture</code> on the answers' dummies, K of lowest BIC. "
            "That recipe's own answer is the baseline fit of lowest BIC, refitted with its seed "
            f"and EM starts ({setting('baseline clusters')}). Both sides are scored on one "
            "measure, the log probability of each household's observed answers summed over "
            "households (higher is better): the latent classes by PSIS-LOO, the GMM's clusters "
            "(fitted on the other folds and made latent classes, as compare's "
            "<code>gmm_heldout_elpd</code>) by 10-fold cross-validation. The difference is taken "
            "household by household: 0 on the better side's row, and on the other its "
            "difference with the paired SE (<code>dse</code>); more than 2 dse is a clear "
            "difference.</p>",
            table(
                scores,
                ["side", "K", "K_chosen_by", "elpd", "se", "elpd_diff", "dse", "estimate"],
                headers=[
                    "",
                    "K",
                    "K chosen by",
                    "held-out log score",
                    "SE",
                    "difference",
                    "dse",
                    "estimate",
                ],
            ),
            "<p>Households by GMM cluster (rows, numbered by size, each named by the levels all "
            "its households share, rarest first: the dummies on which the GMM's diagonal "
            "Gaussian spikes) and modal latent class (columns, named as in the profiles); "
            "cluster and class sizes in brackets (classes_vs_gmm.csv). A class that is one "
            "row is a cluster the recipe also finds; a class spread over rows, or a row over "
            "classes, is where the two segmentations differ.</p>",
            households,
        ]
    )


def section_splits(src, chosen) -> str:
    splits = src[SPLITS]
    if not splits.exists or not len(splits.frame):
        return "<p>Only one K was fitted: nothing to cross-tabulate.</p>"
    frame = splits.frame
    out = [
        "<p>Customers by modal segment at K (rows) and at the next fitted K (columns), so a "
        "segment that splits shows as one row spread over two columns. Segment numbers are each "
        "fit's own labels; names follow the profile rule applied to that fit.</p>"
    ]
    for (k_from, k_to), block in frame.groupby(["K_from", "K_to"], sort=True):
        involved = chosen in (k_from, k_to)
        content = crosstab_table(
            splits,
            block,
            "segment_from",
            "segment_to",
            lambda r, k=k_from: (
                f"K={k} · {splits.num(r, 'segment_from')}: {splits.text(r, 'name_from')}"
            ),
            lambda r, k=k_to: f"K={k} · {splits.num(r, 'segment_to')}: {splits.text(r, 'name_to')}",
        )
        summary = f"K = {k_from} → K = {k_to}" + (" (includes the reported K)" if involved else "")
        out.append(
            f"<details{' open' if involved else ''}><summary>{summary}</summary>{content}</details>"
        )
    return "".join(out)


def section_files(paths) -> str:
    names = sorted(p.name for p in paths.root.glob("*.csv"))
    return (
        "<ul>"
        + "".join(f"<li><code>{esc(n)}</code></li>" for n in names)
        + "<li><code>figures/</code>: every figure above as PNG</li>"
        + "<li><code>fits/K*.nc</code>: the fits (ArviZ DataTree, configuration in attrs)</li>"
        + "</ul>"
    )


def check_threshold(threshold: float) -> None:
    """InputError unless the precise-assignment threshold is a probability in (0, 1]."""
    if not 0 < threshold <= 1:
        raise InputError(f"--precise-threshold: must be in (0, 1], got {threshold}")


def build_report(
    paths: RunPaths,
    k: int | None = None,
    threshold: float = PRECISE_THRESHOLD,
    progress="stderr",
) -> Path:
    """Write the tables, the figures and ``report.html`` for the run directory; return its path.

    ``progress``: a text stream for progress lines, None for none; "stderr" (the default) is
    ``sys.stderr`` looked up at call time, so redirections apply.
    """
    if not paths.root.is_dir():
        raise InputError(f"--run {paths.root}: not a directory")
    paths.check_writable("--run")
    check_threshold(threshold)
    progress = sys.stderr if progress == "stderr" else progress  # at call time: redirectable
    check_step_outputs(paths)
    chosen, how = reported_k(paths, k)
    write_outputs(paths, chosen, how, threshold, progress)
    document = render(paths)
    with atomic_path(paths.report_html) as temporary:
        temporary.write_text(document, encoding="utf-8")
    return paths.report_html
