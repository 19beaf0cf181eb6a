"""A Jepsen-style queue test for Strom: workload, nemesis and checker.

    from jepsen import run, check, summary     # under pytest (tests/ is on sys.path)
    python -m tests.jepsen --duration 60 --seed 7   # from the repository root

See docs/jepsen.md.
"""

import sys
from pathlib import Path

# conftest.py and netns.py live in tests/, which pytest puts on sys.path; so does this.
_TESTS = str(Path(__file__).resolve().parent.parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from .checker import FAILURES, check, summary  # noqa: E402
from .workload import ALL_FAULTS, DEFAULTS, Run, make_schedule, run  # noqa: E402

__all__ = ["run", "Run", "check", "summary", "make_schedule", "DEFAULTS", "ALL_FAULTS", "FAILURES"]
