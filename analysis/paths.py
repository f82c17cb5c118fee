"""The run-directory layout, defined once, and atomic file writing.

A run directory is shared by the pipeline steps::

    DIR/baseline.csv            scikit-learn GMM sweep (segment baseline)
    DIR/fits/K{k}.nc            one ArviZ DataTree per K (segment fit)
    DIR/diagnostics.csv         convergence per K (status ok/slow/multimodal/divergent/skipped)
    DIR/skipped.json            K the sweep's stopping rule did not fit, and why
    DIR/comparison.csv, .md     LOO / WAIC / BIC table (segment compare)
    DIR/profiles.csv, assignments.csv, report.html (segment report)
    DIR/response.csv, targeting.csv  campaign response per segment (segment response)
    DIR/scores.csv, scores_summary.csv  new customers scored (segment score, default --out)
    DIR/track/                  migration and drift of a later period (segment track, default --out)
    DIR/figures/*.png
    DIR/.segment.lock           held while a step writes (:func:`run_lock`)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.errors import InputError

RESPONSE_TABLES = ("response.csv", "targeting.csv")  # segment response; the report shows them
SCORE_TABLES = ("scores.csv", "scores_summary.csv")  # segment score's default --out; shown
TRACK_DIR = "track"  # segment track's default --out; the report shows what it holds
# What segment track writes into its --out.
TRACK_FILES = (
    "migration.csv", "migration.png", "sizes.csv", "drift.csv", "drift_signal.csv", "drift.txt",
)  # fmt: skip
# What atomic_path writes before the rename: .NAME.PID.tmp beside NAME.
TEMPORARY = re.compile(r"\..+\.(?P<pid>\d+)\.tmp")
_held_locks: set[Path] = set()  # run directories whose lock this process holds


@dataclass(frozen=True)
class RunPaths:
    """Paths inside one run directory ``root``."""

    root: Path

    @property
    def baseline_csv(self) -> Path:
        return self.root / "baseline.csv"

    @property
    def fits_dir(self) -> Path:
        return self.root / "fits"

    def fit(self, k: int) -> Path:
        return self.fits_dir / f"K{k}.nc"

    def fit_files(self) -> list[Path]:
        """Every saved fit ``fits/K*.nc``, sorted by name (none when there is no fits dir)."""
        return sorted(self.fits_dir.glob("K*.nc"))

    @property
    def diagnostics_csv(self) -> Path:
        return self.root / "diagnostics.csv"

    @property
    def skipped_json(self) -> Path:
        """The K the sweep's stopping rule left unfitted, and why."""
        return self.root / "skipped.json"

    @property
    def comparison_csv(self) -> Path:
        return self.root / "comparison.csv"

    @property
    def comparison_md(self) -> Path:
        return self.root / "comparison.md"

    @property
    def profiles_csv(self) -> Path:
        return self.root / "profiles.csv"

    @property
    def assignments_csv(self) -> Path:
        return self.root / "assignments.csv"

    @property
    def response_csv(self) -> Path:
        return self.root / RESPONSE_TABLES[0]

    @property
    def targeting_csv(self) -> Path:
        return self.root / RESPONSE_TABLES[1]

    @property
    def scores_csv(self) -> Path:
        return self.root / SCORE_TABLES[0]

    @property
    def scores_summary_csv(self) -> Path:
        return self.root / SCORE_TABLES[1]

    @property
    def track_dir(self) -> Path:
        return self.root / TRACK_DIR

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def figures_dir(self) -> Path:
        return self.root / "figures"

    def figure(self, name: str) -> Path:
        return self.figures_dir / f"{name}.png"

    @property
    def lock_file(self) -> Path:
        return self.root / ".segment.lock"

    def check_writable(self, option: str) -> None:
        """Before any long work: InputError unless the run directory and its ``fits/`` and
        ``figures/`` are writable directories, or their nearest existing ancestor is one (they
        are made when written). ``option`` names the command-line option; creates nothing."""
        for directory in (self.root, self.fits_dir, self.figures_dir):
            existing = next(
                p for p in (directory, *directory.parents) if p.exists() or p.is_symlink()
            )
            named = "" if existing == self.root else f"{existing} "
            if not existing.is_dir():
                raise InputError(f"{option} {self.root}: {named}exists and is not a directory")
            if not os.access(existing, os.W_OK | os.X_OK):
                raise InputError(f"{option} {self.root}: {named}is not writable")


def check_output_file(path: Path, option: str) -> None:
    """Before any long work: InputError unless ``path`` can be written as a file: it is not a
    directory, and its nearest existing ancestor directory is writable (missing parents are
    made when it is written; the file is replaced by a rename). Creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} {path}: is a directory, expected a file name")
    existing = next(p for p in path.parents if p.exists() or p.is_symlink())
    if not existing.is_dir():
        raise InputError(f"{option} {path}: {existing} exists and is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: {existing} is not writable")


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (signal 0 asks without sending anything)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists: another user's process
        pass
    return True


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete the :func:`atomic_path` temporaries in ``directory`` whose writer (the PID in the
    name) is gone, as a kill mid-write leaves them; return the deleted paths."""
    stale = []
    for path in sorted(directory.glob(".*.tmp")):
        match = TEMPORARY.fullmatch(path.name)
        if match and not process_alive(int(match["pid"])):
            path.unlink(missing_ok=True)
            stale.append(path)
    return stale


@contextlib.contextmanager
def run_lock(paths: RunPaths, create: bool = True) -> Iterator[None]:
    """Hold the run directory's lock while a step writes into it.

    The lock is an exclusive ``flock`` on ``DIR/.segment.lock``, which names the holder's PID
    and is removed at exit. The kernel releases the flock of a process that dies, so a lock file
    left by a killed run is taken over; while its holder lives, another writer gets an
    InputError naming the PID. Re-entrant within a process: ``segment run`` holds it across
    the steps, which take it again. Taking it also removes the temporaries of writers that are
    gone (:func:`remove_stale_temporaries`).

    Parameters
    ----------
    paths : the run directory.
    create : make the directory when absent; when False and it is absent, nothing is locked
        (the step then fails on the files it lacks).
    """
    if not create and not paths.root.is_dir():
        yield
        return
    paths.root.mkdir(parents=True, exist_ok=True)
    root = paths.root.resolve()
    if root in _held_locks:
        yield
        return
    handle = _take_lock(paths)
    _held_locks.add(root)
    try:
        for directory in (paths.root, paths.fits_dir, paths.figures_dir):
            for path in remove_stale_temporaries(directory):
                print(
                    f"segment: removed {path}, left by a writer killed mid-write", file=sys.stderr
                )
        yield
    finally:
        _held_locks.discard(root)
        paths.lock_file.unlink(missing_ok=True)
        handle.close()


def _take_lock(paths: RunPaths):
    """The open lock file, flocked and holding this PID; InputError when a live process holds
    it. Retries when the file was replaced between opening and locking it (its holder removed
    it on exit)."""
    while True:
        handle = paths.lock_file.open("a+")  # never truncates a holder's PID before the flock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise InputError(
                f"{paths.root}: another segment process (PID {holder}) is writing into this run "
                f"directory (lock {paths.lock_file}); wait for it to finish or use another one"
            ) from None
        try:
            current = os.stat(paths.lock_file)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(os.fstat(handle.fileno()), current):
            break
        handle.close()
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it onto ``path`` only if the block succeeds.

    A crash or kill mid-write leaves at most a ``*.tmp`` file, never a truncated ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def read_step_csv(path: Path, columns: Iterable[str], rewrite: str) -> pd.DataFrame:
    """Read a CSV that an earlier step wrote into the run directory.

    Parameters
    ----------
    path : the CSV; it exists.
    columns : the columns the reader uses.
    rewrite : the command that writes the file again, named in the message.

    Raises
    ------
    InputError
        When the file cannot be parsed, has no rows, or lacks one of ``columns``: one line
        naming the file and the missing columns.
    """
    try:
        table = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise InputError(
            f"{path}: cannot read it as CSV ({error.__class__.__name__}); rerun `{rewrite}`"
        ) from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: file is empty; rerun `{rewrite}`") from None
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {', '.join(missing)} (damaged or edited); rerun `{rewrite}`"
        )
    if table.empty:
        raise InputError(f"{path}: no rows below the header; rerun `{rewrite}`")
    return table
