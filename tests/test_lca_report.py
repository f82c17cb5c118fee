"""End to end on a sampled latent class fit: ``segment run`` on a categorical csv writes a report
with the class profiles, the local-dependence check and its suggested join, and the comparison
with the one-hot GMM + BIC recipe (the report's own code path, not constructed tables).

The data are :func:`analysis.data.simulate.latent_classes_with_copy` (2 classes, q5 a near-copy of
q4 within each class), so the check must flag q4 x q5 and suggest ``--join q4+q5``.
"""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.cli import main
from analysis.data.simulate import latent_classes_with_copy
from tests.test_join_recovery import COPY, ITEM_PROBS, WEIGHTS, answers

pytestmark = pytest.mark.sampling


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lca_report")
    frame = answers(latent_classes_with_copy(ITEM_PROBS, WEIGHTS, COPY, n=400, seed=0))
    frame.insert(0, "household", [f"h{i}" for i in range(len(frame))])
    data = root / "answers.csv"
    frame.to_csv(data, index=False)
    out = root / "run"
    argv = [
        "run", "--dataset", "csv", "--data", str(data), "--id-column", "household",
        "--categorical", ",".join(frame.columns[1:]), "--k", "1-2", "--chains", "2",
        "--tune", "300", "--draws", "600", "--budget", "0", "--baseline-k", "1-3", "--n-init", "1",
        "--seeds", "0", "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    return out


def settings(run) -> dict[str, str]:
    table = pd.read_csv(run / "settings.csv")
    return dict(zip(table["item"], table["value"], strict=True))


def test_the_report_has_the_class_sections(run):
    html = (run / "report.html").read_text()
    for heading in ("Segment profiles", "Beside the GMM + BIC recipe", "Local dependence"):
        assert heading in html
    assert settings(run)["data kind"] == "categorical"
    profiles = pd.read_csv(run / "profiles.csv")
    assert {"probability", "population_share", "lift"} <= set(profiles.columns)
    crosstab = pd.read_csv(run / "classes_vs_gmm.csv")
    assert crosstab["customers"].sum() == 400


def test_the_near_copy_is_flagged_and_its_join_suggested(run):
    pairs = pd.read_csv(run / "local_dependence.csv")
    top = pairs.iloc[0]
    assert (top["variable_a"], top["variable_b"], bool(top["flagged"])) == ("q4", "q5", True)
    suggestion = settings(run)["suggested joins"]
    assert suggestion == "rerun with --join q4+q5 added to this run's options"  # a csv file
    assert "--join q4+q5" in (run / "report.html").read_text()
