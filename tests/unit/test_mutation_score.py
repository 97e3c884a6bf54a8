"""scripts/mutation_score.py: what counts, what is set apart, and when `make mutate` fails."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import pytest

from scripts import mutation_score

RESULTS = """
    include.a.x_f__mutmut_1: killed
    include.a.x_f__mutmut_2: timeout
    include.a.x_f__mutmut_3: segfault
    include.a.x_f__mutmut_4: survived
    include.a.x_f__mutmut_5: survived
    include.b.x_g__mutmut_1: killed
    include.b.x_g__mutmut_2: no tests
    include.b.xǁCǁrun__mutmut_1: no tests
"""


def _run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, *args: str
) -> tuple[int, str]:
    eq = tmp_path / "equivalent.txt"
    eq.write_text("# comment\ninclude.a.x_f__mutmut_5  same behaviour\ninclude.gone.x_h__mutmut_1  removed since\n")
    oos = tmp_path / "out_of_scope.txt"
    oos.write_text("include.b.xǁCǁrun__mutmut_*  needs PostgreSQL\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO(RESULTS))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mutation_score"):
        rc = mutation_score.main([str(eq), "--out-of-scope", str(oos), *args])
    return rc, "\n".join(r.getMessage() for r in caplog.records)


def test_score_counts_timeouts_and_segfaults_as_killed_and_sets_apart_the_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rc, out = _run(tmp_path, monkeypatch, caplog, "--min", "50")
    # counted: a1-a4 (a5 equivalent), b1-b2 (b.C.run out of scope): 4 killed of 6
    assert "mutation score: 66.7 % (4 / 6)" in out
    assert "include.a                                 75.0 % (3 / 4)" in out
    assert "include.b                                 50.0 % (1 / 2)" in out
    assert "not killed (survived): include.a.x_f__mutmut_4" in out
    assert "not killed (no tests): include.b.x_g__mutmut_2" in out
    assert "include.a.x_f__mutmut_5" not in out  # equivalent: neither counted nor listed
    assert "out of scope: 1 mutants of include.b.xǁCǁrun__mutmut_* (needs PostgreSQL)" in out
    assert "not generated any more" in out and "include.gone.x_h__mutmut_1" in out
    assert rc == 0


def test_a_module_under_the_minimum_fails_even_when_the_total_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # include.b scores exactly 50.0 %: at the minimum it passes, one step above the minimum it fails
    rc, out = _run(tmp_path, monkeypatch, caplog, "--min", "50")
    assert rc == 0 and "under 50 %" not in out
    rc, out = _run(tmp_path, monkeypatch, caplog, "--min", "50.1")
    assert rc == 1
    assert "under 50 %: include.b 50.0 %" in out  # the minimum is printed rounded, the module exactly


def test_an_equivalent_mutant_without_a_reason_is_an_error(tmp_path: Path) -> None:
    eq = tmp_path / "equivalent.txt"
    eq.write_text("include.a.x_f__mutmut_5\n")
    with pytest.raises(SystemExit, match="has no reason"):
        mutation_score.read_equivalent(eq)


def test_a_listed_mutant_the_tests_kill_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    eq = tmp_path / "equivalent.txt"
    eq.write_text("include.a.x_f__mutmut_2  listed before a code change renumbered it\ninclude.a.x_f__mutmut_5  same\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO(RESULTS))
    with caplog.at_level(logging.INFO, logger="mutation_score"):
        mutation_score.main([str(eq), "--min", "0"])
    out = "\n".join(r.getMessage() for r in caplog.records)
    assert f"listed as equivalent but timeout (renumbered? re-check {eq}): include.a.x_f__mutmut_2" in out
    assert "include.a.x_f__mutmut_5 " not in out and "but survived" not in out  # a survivor listed is as meant
