"""Before spending device time: would the GPU route's inputs reach the machine, and is the pack sound?

The GPU machine gets the working tree (tracked files and untracked ones git does not ignore)
plus the ignored paths named in ``carry``, at most 64 MiB together, and a command of at most
2,000 characters. This script measures all three on this side, opens the pack as the route
will (sizes and sha256s), and prints the ``run`` tool's arguments::

    python benchmarks/gpu_route_check.py            # exit 1 when something would not fit
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "bash benchmarks/gpu_route.sh"
DRY_RUN = "bash benchmarks/gpu_route.sh --dry-run"
CARRY = ("data/gpu-pack",)
TIMEOUT_S = 600
LIMIT_BYTES = 64 * 2**20
COMMAND_LIMIT = 2000


def tree_files(root: Path) -> list[Path]:
    """What the working tree copy holds: tracked files and untracked files git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=root, capture_output=True, check=True).stdout.decode()
    return [root / name for name in listed.split("\0") if name and (root / name).is_file()]


def carry_files(root: Path, carry: tuple[str, ...]) -> list[Path]:
    files = []
    for name in carry:
        path = root / name
        files.extend([path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()))
    return files


def check(root: Path = ROOT, carry: tuple[str, ...] = CARRY) -> tuple[dict, list[str]]:
    """Sizes of the tree and the carry, and every reason the route would not start."""
    problems = [f"{name} does not exist: run `kdassert pack` first" for name in carry
                if not (root / name).exists()]
    tree = sum(p.stat().st_size for p in tree_files(root))
    carried = sum(p.stat().st_size for p in carry_files(root, carry))
    if tree + carried > LIMIT_BYTES:
        problems.append(f"tree {tree} + carry {carried} bytes is over {LIMIT_BYTES}")
    if len(COMMAND) > COMMAND_LIMIT:
        problems.append(f"the command has {len(COMMAND)} characters, over {COMMAND_LIMIT}")
    report = {"tree_bytes": tree, "carry_bytes": carried, "total_bytes": tree + carried,
              "limit_bytes": LIMIT_BYTES}
    return report, problems


def check_pack(root: Path = ROOT) -> list[str]:
    sys.path.insert(0, str(root))
    from distillation.pack import open_pack
    from pytest_kdassert.core.errors import KdassertError

    try:
        open_pack(root / CARRY[0])
    except KdassertError as exc:
        return [str(exc)]
    return []


def main() -> int:
    report, problems = check()
    if not problems:
        problems = check_pack()
    print(json.dumps(report, indent=2))
    print(json.dumps({"command": COMMAND, "carry": list(CARRY), "timeout_s": TIMEOUT_S}))
    print(f"dry run: {json.dumps({'command': DRY_RUN, 'carry': list(CARRY), 'timeout_s': 300})}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
