"""Print the mutation score of a finished `mutmut run` and list the mutants the tests let through.

Reads `mutmut results --all true` on stdin. Score = killed / (generated - equivalent), where the
equivalent mutants are listed with a reason in tests/mutation/equivalent.txt (one per line:
`<mutant name>  <why no test can tell it from the original>`). A timeout or a segfault counts as killed (the
mutant made the tests hang or crash, which the tests notice); everything else the tests did not kill,
including "no tests", counts against the score. Exit status 1 when the score, or any module's, is under --min.

Functions that need PostgreSQL or Airflow callbacks (the quality checks' SQL `run`, the alert incident
store and notifiers) are listed in tests/mutation/out_of_scope.txt (`<glob over mutant names>  <why>`):
mutmut still generates their mutants (its `do_not_mutate_patterns` skip single lines, not functions), the
fast tests cannot reach them, and their tests live in tests/quality and tests/alerting. They are counted
and shown apart, never silently dropped.
"""

from __future__ import annotations

import argparse
import fnmatch
import logging
import sys
from collections import Counter
from pathlib import Path

log = logging.getLogger("mutation_score")

# A segfault is the test process dying under the mutant: the tests did not pass, so it was detected.
KILLED = {"killed", "timeout", "segfault", "caught by type check"}


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


def read_out_of_scope(path: Path) -> list[tuple[str, str]]:
    """(glob, reason) pairs; same line format as the equivalent list."""
    return list(read_equivalent(path).items())


def module_of(name: str) -> str:
    """`include.settings.base.x_dotted__mutmut_3` -> `include.settings.base` (the file the mutant is in)."""
    return name.split(".x", 1)[0]


def per_module(counted: dict[str, str]) -> dict[str, tuple[int, int]]:
    """Module -> (killed, counted) over the mutants that count towards the score."""
    out: dict[str, tuple[int, int]] = {}
    for name, status in counted.items():
        killed, total = out.get(module_of(name), (0, 0))
        out[module_of(name)] = (killed + (status in KILLED), total + 1)
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the score and the surviving mutants; return 1 below the minimum."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("equivalent", type=Path)
    parser.add_argument("--out-of-scope", type=Path, help="globs of mutant names outside the fast tests' reach")
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
    # A listed mutant the tests kill is not equivalent: usually the numbers shifted after a code change, and the line
    # now names another mutant (the one it meant has a new number and shows up as not killed).
    for name in sorted(n for n in equivalent.keys() & results.keys() if results[n] in KILLED):
        log.warning("listed as equivalent but %s (renumbered? re-check %s): %s", results[name], args.equivalent, name)

    scopes = read_out_of_scope(args.out_of_scope) if args.out_of_scope else []
    outside = {n for n in results if any(fnmatch.fnmatchcase(n, glob) for glob, _ in scopes)}
    for glob, reason in scopes:
        hits = sum(1 for n in outside if fnmatch.fnmatchcase(n, glob))
        log.info("out of scope: %d mutants of %s (%s)", hits, glob, reason)
    not_checked = sum(1 for n, st in results.items() if st == "not checked" and n not in outside)
    if not_checked:
        log.warning("%d mutants were not checked (run interrupted?): they count as not killed", not_checked)
    counted = {name: status for name, status in results.items() if name not in equivalent and name not in outside}
    killed = sum(1 for status in counted.values() if status in KILLED)
    alive = sorted((name, status) for name, status in counted.items() if status not in KILLED)
    by_status = Counter(results.values())

    for name, status in alive:
        log.info("not killed (%s): %s   -> .venv/bin/mutmut show %s", status, name, name)
    below = []
    for module, (module_killed, module_counted) in sorted(per_module(counted).items()):
        module_score = 100.0 * module_killed / module_counted
        log.info("  %-40s %5.1f %% (%d / %d)", module, module_score, module_killed, module_counted)
        if module_score < args.min:
            below.append(f"{module} {module_score:.1f} %")
    score = 100.0 * killed / len(counted) if counted else 0.0
    log.info(
        "mutants: %d generated, %d out of scope, %d equivalent (%s), %d killed; by status: %s",
        len(results),
        len(outside),
        len(equivalent.keys() & results.keys() - outside),
        args.equivalent,
        killed,
        dict(sorted(by_status.items())),
    )
    log.info(
        "mutation score: %.1f %% (%d / %d); target %.0f %% overall and per module",
        score,
        killed,
        len(counted),
        args.min,
    )
    if below:
        log.error("under %.0f %%: %s", args.min, ", ".join(below))
    return 0 if score >= args.min and not below else 1


if __name__ == "__main__":
    sys.exit(main())
