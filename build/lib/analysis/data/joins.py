"""``--join a+b+c``: categorical variables that nearly determine each other, as one joint variable.

A latent class model takes its variables to be independent within a class. When some of them are
near-functions of each other (``household_size``, ``household_comp`` and ``kids_count`` in the
Dunnhumby demographics: 11 of their 80 level combinations occur), local independence cannot hold
for them (the local-dependence check, :mod:`analysis.inference.local_dependence`, flags their pairs)
and extra classes go to reproducing their cross-tabulation. Joining them makes their dependence part
of one variable's distribution within a class, which the model allows.

The joint variable is named ``a+b+c`` and takes the place of ``a`` among the columns; its levels
are the combinations of the members' levels that occur in the data, labelled ``la / lb / lc`` and
ordered as the members' levels are (the first member's level first). A customer missing any
member (NaN) is missing in the joint variable: under ``--missing marginalize`` the model then
leaves out the whole joint answer, not only the member that is missing.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from analysis.data.datasets import MAX_LEVELS, Dataset
from analysis.errors import InputError

SEPARATOR = "+"  # between member names, in the option and in the joint variable's name
LEVEL_SEPARATOR = " / "  # between member levels in a joint level's label
# a flagged pair this associated (Cramér's V of the observed table) is suggested for --join: the
# same bar as for two variables that say the same thing in a class name
# (analysis.inference.profiles)
SUGGEST_CRAMERS_V = 0.7


def parse_joins(texts: list[str] | None) -> list[tuple[str, ...]]:
    """``["a+b+c", "d+e"]`` (repeated ``--join``) -> [("a", "b", "c"), ("d", "e")].

    InputError for a group of fewer than two names, an empty or repeated name, or a name that is
    in two groups.
    """
    groups, seen = [], set()
    for text in texts or []:
        members = tuple(name.strip() for name in text.split(SEPARATOR))
        if len(members) < 2 or not all(members):
            raise InputError(
                f"--join {text}: give two or more variable names joined by +, e.g. a+b"
            )
        repeated = sorted((seen & set(members)) | {m for m in members if members.count(m) > 1})
        if repeated:
            raise InputError(
                f"--join {text}: {', '.join(repeated)} named twice (a variable joins one group, "
                "once)"
            )
        seen.update(members)
        groups.append(members)
    return groups


def joint_variable(features: pd.DataFrame, members: tuple[str, ...]) -> pd.Series:
    """The combination of categorical columns ``members`` of ``features`` as one Categorical
    (levels: the combinations that occur, in the members' level order; NaN if any is missing)."""
    columns = [features[member].cat for member in members]
    codes = pd.DataFrame({m: c.codes for m, c in zip(members, columns, strict=True)})
    answered = (codes >= 0).all(axis=1).to_numpy()
    combinations = sorted(set(codes[answered].itertuples(index=False, name=None)))
    labels = {
        combination: LEVEL_SEPARATOR.join(
            str(c.categories[code]) for c, code in zip(columns, combination, strict=True)
        )
        for combination in combinations
    }
    values = [
        labels[row] if ok else None
        for row, ok in zip(codes.itertuples(index=False, name=None), answered, strict=True)
    ]
    return pd.Series(
        pd.Categorical(values, categories=list(labels.values())),
        index=features.index,
        name=SEPARATOR.join(members),
    )


def join_variables(dataset: Dataset, groups: list[tuple[str, ...]]) -> Dataset:
    """``dataset`` with each group of categorical columns replaced by its joint variable (at the
    place of the group's first member; a mixed dataset's categorical columns). InputError for
    continuous data, an unknown column, and
    a joint variable with more than :data:`~analysis.data.datasets.MAX_LEVELS` levels."""
    if not groups:
        return dataset
    if dataset.kind == "continuous":
        raise InputError(
            f"--join combines categorical variables; dataset '{dataset.name}' is {dataset.kind}"
        )
    part = "features" if dataset.kind == "categorical" else "categories"  # mixed: its answers
    features = getattr(dataset, part)
    for members in groups:
        unknown = [m for m in members if m not in features.columns]
        if unknown:
            raise InputError(
                f"--join {SEPARATOR.join(members)}: no variable {', '.join(unknown)} in "
                f"{dataset.name} (variables: {', '.join(features.columns)})"
            )
    columns = {}
    for column in features.columns:
        group = next((g for g in groups if column in g), None)
        if group is None:
            columns[column] = features[column]
        elif column == group[0]:
            joint = joint_variable(features, group)
            if len(joint.cat.categories) > MAX_LEVELS:
                raise InputError(
                    f"--join {joint.name}: {len(joint.cat.categories)} level combinations occur, "
                    f"more than the {MAX_LEVELS} levels a variable may have"
                )
            columns[joint.name] = joint
    return replace(dataset, **{part: pd.DataFrame(columns, index=features.index)})


def suggested_joins(pairs: pd.DataFrame, order: list[str] | None = None) -> list[tuple[str, ...]]:
    """The ``--join`` groups the local-dependence check suggests.

    ``pairs`` is its pairs table (:func:`analysis.inference.local_dependence.pair_checks`:
    ``variable_a``, ``variable_b``, ``flagged``, ``cramers_v``). Pairs that are flagged and
    associated above :data:`SUGGEST_CRAMERS_V` (near-functions of each other, which one joint
    variable models) are linked, and each connected group of variables is one suggestion, its
    members in the variables' ``order`` (the data's columns; None: the order they first appear in
    the table); a variable that is already a joint one (``a+b``) is replaced by its members. A
    flagged pair that is not so associated is left to the model.
    """
    linked = pairs[pairs["flagged"].astype(bool) & (pairs["cramers_v"] > SUGGEST_CRAMERS_V)]
    group_of: dict[str, int] = {}
    groups: list[list[str]] = []
    for a, b in zip(linked["variable_a"], linked["variable_b"], strict=True):
        ga, gb = group_of.get(a), group_of.get(b)
        if ga is None and gb is None:
            groups.append([a, b])
            group_of[a] = group_of[b] = len(groups) - 1
        elif gb is None:
            groups[ga].append(b)
            group_of[b] = ga
        elif ga is None:
            groups[gb].append(a)
            group_of[a] = gb
        elif ga != gb:
            groups[ga] += groups[gb]
            for variable in groups[gb]:
                group_of[variable] = ga
            groups[gb] = []
    if order is not None:
        groups = [sorted(group, key=order.index) for group in groups]
    return [
        tuple(member for variable in group for member in variable.split(SEPARATOR))
        for group in groups
        if group
    ]


def join_options(groups: list[tuple[str, ...]]) -> str:
    """``--join a+b+c --join d+e`` for ``groups``."""
    return " ".join(f"--join {SEPARATOR.join(group)}" for group in groups)
