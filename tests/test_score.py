"""``segment score`` on the shared small real run (``tests/small_run.py``, K = 2 hurdle fit).

Scoring the fitted customers again must give ``assignments.csv`` value for value, a few of them
alone must give the same rows (the fit's transform constants, not the new file's), and bad input
is one line and exit 2 with no output file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from analysis.cli import main
from analysis.decisions.score import thinned


@pytest.fixture(scope="module")
def data(run):
    return run.root.parent / "small.csv"


def score(run, data, out, *extra) -> int:
    argv = ["score", "--run", str(run.root), "--data", str(data), "--id-column", "ID"]
    return main([*argv, "--k", "2", "--out", str(out), *extra])


@pytest.fixture(scope="module")
def scored(run, data, tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("score") / "scored.csv"
    assert score(run, data, out) == 0
    return pd.read_csv(out)


def test_scoring_the_fitted_customers_reproduces_assignments_csv(run, scored):
    assignments = pd.read_csv(run.root / "assignments.csv")
    pd.testing.assert_frame_equal(scored[assignments.columns], assignments)


def test_scores_carry_hdis_lpd_and_novel(scored):
    for k in (0, 1):  # a membership's mean may fall outside its HDI (a skewed posterior)
        low, high = scored[f"p_{k}_hdi_low"], scored[f"p_{k}_hdi_high"]
        assert ((0 <= low) & (low <= high) & (high <= 1)).all()
    modal = scored["segment"].map(lambda k: f"p_{k}_hdi_low")
    np.testing.assert_array_equal(
        scored["probability_hdi_low"], [scored.at[i, c] for i, c in modal.items()]
    )
    assert np.isfinite(scored["lpd"]).all()
    # the 1st percentile of the fitted customers' own lpd: 2 of these 200 fall below it
    assert scored["novel"].sum() == 2
    assert set(scored.loc[scored["novel"], "lpd"]) == set(scored["lpd"].nsmallest(2))
    assert scored["segment_name"].notna().all()


def test_a_few_customers_alone_get_their_rows(run, data, scored, tmp_path):
    """Three customers (one constant column among them) on the fit's transform constants: the
    unchanged customers get the memberships and log predictive densities they get inside the
    whole file. Refitted constants would move lpd by about 1e-2; the vectorised log-sum-exp over
    a block of 3 customers instead of 200 may differ in the last bit (1 ulp, 4e-16 measured when
    this test runs alone), so lpd is compared to 1e-13 relative."""
    table = pd.read_csv(data)
    few = table.iloc[[0, 5, 9]].assign(MntFruits=0)
    few.to_csv(tmp_path / "few.csv", index=False)
    assert score(run, tmp_path / "few.csv", tmp_path / "few_out.csv") == 0
    alone = pd.read_csv(tmp_path / "few_out.csv")
    changed = table.iloc[[0, 5, 9]]["MntFruits"].to_numpy() != 0
    same = scored.set_index("customer_id").loc[alone["customer_id"][~changed]]
    np.testing.assert_allclose(alone["lpd"][~changed], same["lpd"], rtol=1e-13, atol=0)
    np.testing.assert_array_equal(alone["p_0"][~changed], same["p_0"])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.drop(columns="MntFruits"), "missing column(s) MntFruits"),
        (lambda t: t.astype({"MntWines": object}).assign(MntWines="x"), "non-numeric value 'x'"),
        (lambda t: t.assign(MntMeatProducts=-1.0), "negative value -1"),
    ],
)
def test_bad_data_is_one_line_and_no_output(run, data, tmp_path, capsys, edit, message):
    edit(pd.read_csv(data)).to_csv(tmp_path / "bad.csv", index=False)
    assert score(run, tmp_path / "bad.csv", tmp_path / "out.csv") == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and message in error and "bad.csv" in error
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--k", "5", "no fit"), ("--draws", "0", "--draws must be >= 1")],
)
def test_bad_options_are_one_line(run, data, tmp_path, capsys, option, value, message):
    assert score(run, data, tmp_path / "out.csv", option, value) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()


def test_out_is_checked_before_any_work(run, data, tmp_path, capsys):
    assert score(run, data, tmp_path) == 2
    assert "is a directory" in capsys.readouterr().err


def test_thinned_keeps_each_chains_draws_at_one_step():
    posterior = xr.Dataset({"w": (("chain", "draw"), np.arange(40.0).reshape(4, 10))})
    assert thinned(posterior, None).sizes["draw"] == 10
    assert thinned(posterior, 40).sizes["draw"] == 10
    kept = thinned(posterior, 20)
    assert kept.sizes["draw"] == 5
    np.testing.assert_array_equal(kept["w"].values[0], [0, 2, 4, 6, 8])
