"""Print the mutation score of a finished `mutmut run` and list the mutants the tests let through.

Reads `mutmut results --all true` on stdin. Score = killed / (generated - equivalent), where the
equivalent mutants are listed with a reason in tests/mutation/equivalent.txt (one per line:
`<mutant name>  <why no test can tell it from the original>`). A timeout counts as killed (the
mutant made the tests hang, which the tests notice); everything else the tests did not kill,
including "no tests", counts against the score. Exit status 1 when the score is under --min.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

log = logging.getLogger("mutation_score")

KILLED = {"killed", "timeout", "caught by type check"}


def read_results(lines: list[str]) -> dict[str, str]:
    """Mutant name -> status from `mutmut results --all true` lines (`    name: status`)."""
    results: dict[str, str] = {}
    for line in lines:
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            results[name] = status.strip()
    return results


def read_equivalent(path: Path) -> dict[str, str]:
    """Mutant name -> reason; a line without a reason is an error (an equivalent mutant must say why)."""
    equivalent: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        if not reason.strip():
            raise SystemExit(f"{path}:{number}: equivalent mutant {name} has no reason")
        equivalent[name] = reason.strip()
    return equivalent


def main(argv: list[str] | None = None) -> int:
    """Print the score and the surviving mutants; return 1 below the minimum."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("equivalent", type=Path)
    parser.add_argument("--min", type=float, default=90.0, help="minimum score in percent")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    results = read_results(sys.stdin.read().splitlines())
    if not results:
        log.error("no mutants found: run `mutmut run` first")
        return 1
    equivalent = read_equivalent(args.equivalent)
    stale = sorted(set(equivalent) - set(results))
    for name in stale:
        log.warning("listed as equivalent but not generated any more (update %s): %s", args.equivalent, name)

    counted = {name: status for name, status in results.items() if name not in equivalent}
    killed = sum(1 for status in counted.values() if status in KILLED)
    alive = sorted((name, status) for name, status in counted.items() if status not in KILLED)
    by_status = Counter(results.values())

    for name, status in alive:
        log.info("not killed (%s): %s   -> .venv/bin/mutmut show %s", status, name, name)
    score = 100.0 * killed / len(counted) if counted else 0.0
    log.info(
        "mutants: %d generated, %d equivalent (%s), %d killed; by status: %s",
        len(results),
        len(results) - len(counted),
        args.equivalent,
        killed,
        dict(sorted(by_status.items())),
    )
    log.info("mutation score: %.1f %% (%d / %d); target %.0f %%", score, killed, len(counted), args.min)
    return 0 if score >= args.min else 1


if __name__ == "__main__":
    sys.exit(main())
