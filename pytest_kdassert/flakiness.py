"""The flakiness guard: is a grounded value the same when the test body runs again?

With isolation, :class:`RerunGuard` forks a child just before the test call, when the
fixtures are set up and the body has not run yet, and the child waits. After the call, if a
grounded value appeared, the child runs the test body once more from that pristine state
(fresh random seeds, under the sandbox's audit guard: no writes, deletes, processes or
sockets), grounds the same candidates and sends back the values it saw; otherwise it is
dismissed. The test's own process runs the body once, and fixture side effects of the first
run can't make the second differ. A re-run that the guard had to refuse something in, that
hung or that crashed gives no verdict (the values stand as observed once); one that failed
voids the site's grounded values, as a differing value marks them unstable
(:func:`~.sites.drop_unstable`).

Without isolation the body runs a second time in the test's process, as it always did.
"""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Callable

from pytest_kdassert.observed import RERUN_KEY, adopt, rerun_payload
from pytest_kdassert.sandbox import Failure, Standby, monotonic

logger = logging.getLogger(__name__)


class RerunGuard:
    """One test call's re-run: forked before the call (isolated) or run after it (not)."""

    def __init__(self, session, nodeid: str, run_again: Callable[[], None], isolated: bool):
        self.session = session
        self.nodeid = nodeid
        self.run_again = run_again
        self._standby = Standby(self._job, reaper=session.runner.reaper) if isolated else None
        self._started = monotonic()

    def finish(self, grounded_now: bool) -> None:
        """After a call that passed: re-run when a value was grounded, else end the child."""
        if not grounded_now:
            self.dismiss()
            return
        states = self.session.by_test[self.nodeid][1]
        if self._standby is None:
            self._rerun_in_process(states)
            return
        wanted = {str(pos): sorted(i for i, seen in state.ground_seen.items()
                                   if any(text is not None for text in seen))
                  for pos, state in enumerate(states)}
        limit = self.session.settings.timeout + 2 * (monotonic() - self._started)
        answer = self._standby.go({**wanted, **rerun_payload(states, wanted)}, limit)
        self._standby = None
        self._merge(states, answer)

    def dismiss(self) -> None:
        if self._standby is not None:
            self._standby.dismiss()
            self._standby = None

    def _merge(self, states, answer) -> None:
        if isinstance(answer, Failure) or answer.get("refused"):
            why = answer.detail if isinstance(answer, Failure) else \
                f"the sandbox refused {', '.join(answer['refused'])}"
            logger.info("kdassert: no stability check for %s: re-run %s", self.nodeid, why)
            _mark(states, "no verdict")
            return
        if answer["failed"]:
            for state in states:
                state.rerun_failed = True
            _mark(states, "failed")
            return
        _mark(states, "done")
        for pos, seen in answer["seen"].items():
            state = states[int(pos)]
            for index, texts in seen.items():
                state.ground_seen.setdefault(int(index), set()).update(texts)

    def _job(self, wanted: dict, guard) -> dict:
        """In the child: run the body again, grounding only the candidates in ``wanted``."""
        _reseed()
        states = self.session.by_test[self.nodeid][1]
        adopt(states, wanted.pop(RERUN_KEY, {}))  # templates found at the site after the fork
        only = {int(pos): set(indices) for pos, indices in wanted.items()}
        for pos, state in enumerate(states):
            for index in only.get(pos, ()):
                state.ground_seen.pop(index, None)
        failed = not self._observe(only)
        seen = {str(pos): {str(i): sorted(states[pos].ground_seen.get(i, ()),
                                          key=lambda t: (t is None, t or ""))
                           for i in indices}
                for pos, indices in only.items()}
        return {"failed": failed, "refused": sorted(set(guard.refused)), "seen": seen}

    def _observe(self, only: dict | None) -> bool:
        """Run the body under an observing trap; False when it raised."""
        trap = self.session.trap_for(self.nodeid, observing=True, only=only)
        try:
            with trap:
                self.run_again()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a failing re-run voids the values
            logger.info("kdassert: re-run of %s raised %s", self.nodeid, type(exc).__name__)
            return False
        return True

    def _rerun_in_process(self, states) -> None:
        if not self._observe(None):
            for state in states:
                state.rerun_failed = True
            _mark(states, "failed")
            return
        _mark(states, "done")


def _mark(states, outcome: str) -> None:
    """Record the re-run's outcome at the sites it checked (those that grounded a value)."""
    for state in states:
        if any(any(text is not None for text in seen) for seen in state.ground_seen.values()):
            state.rerun = outcome


def _reseed() -> None:
    """Fresh seeds in the child: a fork copies the parent's random state, and a test that
    draws random values would draw the same ones again."""
    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "seed"):
        torch.seed()
