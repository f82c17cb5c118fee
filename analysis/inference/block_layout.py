"""Blocks of customers laid out with one structure, so one compiled function serves them all.

A mixture that reads structure off its data (the hurdle's zero spends, missing values:
``models.Mixture.structured``) compiles its log joint for one structure, a pattern per customer
row. Consecutive blocks of a large table hold different mixes of patterns, and compiling one
function per block (32 for 100,000 customers at 2,000 draws) made scoring them take 477.9 s
(``bench.score``).

So every block is laid out the same way: the rows of pattern p first, then those of the next
pattern, with pattern p given the same number of rows m_p in every block (its largest count in
any block). A block with fewer customers of pattern p repeats one of them to fill its rows; the
repeats are dropped from the results. The laid-out blocks have one structure, row by row.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def laid_out_blocks(
    structure: np.ndarray, block: int
) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """(rows, order, position) for consecutive blocks of ``block`` customers.

    Parameters
    ----------
    structure : (N, C) bool, each customer's pattern (``models.Mixture.data_structure``).
    block : customers per block (the last block may be shorter).

    Yields
    ------
    rows : slice of the customers in the block.
    order : (M,) indices into the N customers: the block laid out, M >= its length; equal for
        every block in the patterns of its rows (``structure[order]`` is the same array).
    position : (B,) the row of ``order`` holding each customer of ``rows``, in order.
    """
    n_customers = len(structure)
    _, pattern_of = np.unique(structure, axis=0, return_inverse=True)
    pattern_of = pattern_of.reshape(-1)
    n_patterns = pattern_of.max() + 1
    block_of = np.arange(n_customers) // block
    counts = np.bincount(
        block_of * n_patterns + pattern_of, minlength=(block_of[-1] + 1) * n_patterns
    )
    rows_per_pattern = counts.reshape(-1, n_patterns).max(axis=0)  # (P,) m_p
    first_of_pattern = np.unique(pattern_of, return_index=True)[1]  # (P,) a customer of each
    starts = np.concatenate([[0], np.cumsum(rows_per_pattern)[:-1]])  # (P,) where p's rows begin
    for start in range(0, n_customers, block):
        rows = slice(start, min(start + block, n_customers))
        patterns = pattern_of[rows]
        by_pattern = np.argsort(patterns, kind="stable")  # block rows, grouped by pattern
        rank = np.empty(len(patterns), dtype=int)  # each customer's rank within its pattern
        group_start = np.searchsorted(patterns[by_pattern], patterns[by_pattern])
        rank[by_pattern] = np.arange(len(patterns)) - group_start
        position = starts[patterns] + rank
        order = np.repeat(first_of_pattern, rows_per_pattern)  # filler: a customer of the pattern
        order[position] = np.arange(rows.start, rows.stop)
        yield rows, order, position
