"""The one exception type for bad user input.

The CLI turns an :class:`InputError` into a single line on stderr and exit code 2; every other
exception is a bug and keeps its traceback. The Python API (:mod:`analysis.api`) raises the same
errors with the same messages, which name the options by their command-line spelling (``--k``
is the argument ``k``).
"""

from collections.abc import Sequence


class InputError(Exception):
    """Bad input named precisely: file, column and problem, in one line."""


def check_choice(option: str, value, choices: Sequence[str]) -> None:
    """InputError unless ``value`` is one of ``choices``; ``option`` names it in the message."""
    if value not in choices:
        raise InputError(f"{option}: unknown '{value}' (choose from {', '.join(choices)})")
