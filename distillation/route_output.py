"""The GPU route's output folder and log: what may come back from a lent machine, and how.

The machine returns at most ``MAX_FILES`` files of at most ``MAX_FILE_BYTES`` each from one
folder, at most ``MAX_DEPTH`` folders deep, with names of ``[A-Za-z0-9._-]`` only.
:func:`check_out_dir` checks a folder against those rules; :class:`Tee` copies everything
printed to a log file there as it is printed, so a run cut short still brings its log back.
"""

from __future__ import annotations

import logging
import re
import shutil
import sys
import traceback
from pathlib import Path

from pytest_kdassert.core.errors import ConfigError

MAX_FILES = 8
MAX_FILE_BYTES = 16 * 2**20
MAX_TOTAL_BYTES = 64 * 2**20
MAX_DEPTH = 2
"""Folders below the output folder a returned file may sit in."""
WEIGHTS_LIMIT_BYTES = 15 * 2**20
"""The student's weights file, kept a margin below MAX_FILE_BYTES."""
STUDENT_DIR = "student"
STUDENT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "kdassert_format.json")
"""What ``load_seq2seq`` needs, and no more (no generation config, no training state)."""
BENCH_FILE = "bench.json"
LOG_FILE = "route.log"
PLOT_FILE = "loss.png"
_NAME = re.compile(r"[A-Za-z0-9._-]+")


def prepare_out_dir(path: Path) -> Path:
    """Create the output folder; refuse one that already holds files (they would come back too)."""
    path = Path(path)
    if path.exists() and any(path.iterdir()):
        raise ConfigError(f"The output folder {path} is not empty; give an empty or new folder.")
    path.mkdir(parents=True, exist_ok=True)
    return path


def copy_student(final: Path, out: Path) -> Path:
    """Copy the loadable student files of ``final`` into ``out/student``."""
    target = out / STUDENT_DIR
    target.mkdir(exist_ok=True)
    for name in STUDENT_FILES:
        shutil.copy2(final / name, target / name)
    size = (target / "model.safetensors").stat().st_size
    if size > WEIGHTS_LIMIT_BYTES:
        raise ConfigError(f"The student's weights take {size / 2**20:.1f} MiB, over the "
                          f"{WEIGHTS_LIMIT_BYTES / 2**20:.0f} MiB a returned file may have.")
    return target


def check_out_dir(out: Path) -> list[str]:
    """Every way ``out`` breaks the rules of what comes back (empty: all of it comes back)."""
    files = [p for p in Path(out).rglob("*") if not p.is_dir()]
    problems = []
    if len(files) > MAX_FILES:
        problems.append(f"{len(files)} files, at most {MAX_FILES} come back")
    if sum(p.stat().st_size for p in files if p.is_file()) > MAX_TOTAL_BYTES:
        problems.append(f"more than {MAX_TOTAL_BYTES // 2**20} MiB in all")
    for path in files:
        rel = path.relative_to(out)
        if path.is_symlink() or not path.is_file():
            problems.append(f"{rel}: not a plain file")
        elif path.stat().st_size > MAX_FILE_BYTES:
            problems.append(f"{rel}: {path.stat().st_size} bytes, over {MAX_FILE_BYTES}")
        if len(rel.parts) - 1 > MAX_DEPTH or not all(_NAME.fullmatch(p) for p in rel.parts):
            problems.append(f"{rel}: too deep or a name outside [A-Za-z0-9._-]")
    return problems


class Tee:
    """A text stream that writes to ``stream`` and to ``log`` (flushed on every write)."""

    def __init__(self, stream, log):
        self.stream, self.log = stream, log

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.log.write(text)
        self.stream.flush()
        self.log.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name):
        return getattr(self.stream, name)


class tee_output:  # noqa: N801 - used like open()
    """``with tee_output(path):`` stdout, stderr and log records also go to ``path``; records
    of ``distillation`` loggers at INFO and above are shown."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __enter__(self):
        self.log = self.path.open("a", encoding="utf-8")
        self.saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = Tee(sys.stdout, self.log), Tee(sys.stderr, self.log)
        self.handler = logging.StreamHandler(self.log)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(self.handler)
        package = logging.getLogger("distillation")
        self.level = package.level
        if package.getEffectiveLevel() > logging.INFO:
            package.setLevel(logging.INFO)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None:  # the log comes back even when the route fails: say why in it
            traceback.print_exception(exc_type, exc, tb, file=self.log)
        logging.getLogger().removeHandler(self.handler)
        logging.getLogger("distillation").setLevel(self.level)
        sys.stdout, sys.stderr = self.saved
        self.log.close()
