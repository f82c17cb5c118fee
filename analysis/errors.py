"""The one exception type for bad user input.

The CLI turns an :class:`InputError` into a single line on stderr and exit code 2; every other
exception is a bug and keeps its traceback.
"""


class InputError(Exception):
    """Bad input named precisely: file, column and problem, in one line."""
