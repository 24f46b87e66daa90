"""The model in a process of its own, so torch never enters the test process.

:class:`WorkerSuggester` has :class:`~.suggester.ModelSuggester`'s interface. On its first
call it starts ``python -m pytest_kdassert.model_worker``, which loads the model once and
answers ``suggest`` and ``score`` calls, one JSON line each way, until :meth:`close` (or EOF).
With process isolation every site forks the test process (:mod:`.sandbox`): forking one
that holds torch and transformers (about 400 MiB) takes some 30 ms, a plain pytest process
about 1 ms. The worker's errors come back as the library's own exception types.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pytest_kdassert.core import errors
from pytest_kdassert.core.errors import KdassertError

STDERR_TAIL = 2000
"""Characters of the worker's stderr quoted when it dies."""


class WorkerSuggester:
    """A :class:`~.suggester.ModelSuggester` running in a child interpreter."""

    def __init__(self, model_spec: str, num_beams: int = 5, batch_size: int = 16,
                 threads: int = 0):
        from pytest_kdassert.core.loading import resolve_model_path

        self.path = str(resolve_model_path(model_spec))  # fails fast, in this process
        self.settings = {"model_spec": self.path, "num_beams": num_beams,
                         "batch_size": batch_size, "threads": threads}
        self._process: subprocess.Popen | None = None
        self._stderr = None

    def suggest(self, requests: Sequence) -> list[list]:
        if not requests:
            return []
        return [[tuple(pair) for pair in site] for site in self._call("suggest", requests)]

    def score(self, requests: Sequence, texts: Sequence[Sequence[str]]) -> list[list[float]]:
        return self._call("score", requests, [list(t) for t in texts])

    def close(self) -> None:
        """End the worker. It holds nothing worth a clean exit, and an interpreter with torch
        takes seconds to shut down: it is killed."""
        process, self._process = self._process, None
        if process is None:
            return
        process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout, self._stderr):
            stream.close()

    def _call(self, op: str, requests: Sequence, texts=None):
        process = self._start()
        message = {"op": op, "requests": [dataclasses.asdict(r) for r in requests],
                   "texts": texts}
        try:
            process.stdin.write(json.dumps(message) + "\n")
            process.stdin.flush()
            line = process.stdout.readline()
        except OSError:
            line = ""
        if not line:
            raise KdassertError(f"the model worker stopped: {self._stderr_tail()}")
        answer = json.loads(line)
        if "error" in answer:
            kind = getattr(errors, answer["kind"], KdassertError)
            raise (kind if isinstance(kind, type) and issubclass(kind, KdassertError)
                   else KdassertError)(answer["error"])
        return answer["result"]

    def _start(self) -> subprocess.Popen:
        if self._process is None:
            package_root = str(Path(__file__).resolve().parent.parent)
            path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
            self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in close()
            self._process = subprocess.Popen(
                [sys.executable, "-m", "pytest_kdassert.model_worker",
                 json.dumps(self.settings)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self._stderr, text=True, env={**os.environ, "PYTHONPATH": path})
        return self._process

    def _stderr_tail(self) -> str:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        self._process = None
        self._stderr.seek(0)
        tail = self._stderr.read()[-STDERR_TAIL:].strip()
        return tail.splitlines()[-1] if tail else "no message"


def serve(settings: dict, stdin, stdout) -> None:
    """The worker's loop: one JSON request per line in, one JSON answer per line out."""
    from pytest_kdassert.suggester import ModelSuggester, SuggestRequest, as_raw_candidates

    model = None
    for line in stdin:
        message = json.loads(line)
        try:
            if model is None:
                model = ModelSuggester(**settings)
            requests = [SuggestRequest(**{**r, "exemplars": tuple(
                tuple(pair) for pair in r.get("exemplars", ()))}) for r in message["requests"]]
            if message["op"] == "suggest":
                result = [[[c.text, c.score] for c in as_raw_candidates(site)]
                          for site in model.suggest(requests)]
            else:
                result = model.score(requests, message["texts"])
            answer = {"result": result}
        except KdassertError as exc:
            answer = {"error": str(exc), "kind": type(exc).__name__}
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()


def main() -> None:
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever the libraries print goes to stderr, not into the protocol
    sys.stdout = sys.stderr
    serve(json.loads(sys.argv[1]), sys.stdin, protocol)


if __name__ == "__main__":
    main()
