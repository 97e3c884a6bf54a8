"""Pure helpers of the config models (include/settings/), pinned exactly for mutation testing."""

from __future__ import annotations

from pathlib import Path

import pytest

from include.settings.privacy import PrivacyConfig


def test_privacy_paths_resolve_against_the_config_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECOM_TEST_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = PrivacyConfig(
        exports_dir=Path("exp"),
        archive_dir=Path("$ECOM_TEST_DIR/arch"),
        backup_dir=Path("~/bk"),
        pg_bin_dir=Path("/opt/pg/bin"),
    ).resolved(tmp_path / "base")
    assert cfg.exports_dir == (tmp_path / "base" / "exp").resolve()
    assert cfg.archive_dir == tmp_path / "env" / "arch"
    assert cfg.backup_dir == tmp_path / "home" / "bk"
    assert cfg.pg_bin_dir == Path("/opt/pg/bin")


def test_privacy_unset_optional_paths_stay_unset(tmp_path: Path) -> None:
    cfg = PrivacyConfig().resolved(tmp_path)
    assert cfg.archive_dir is None
    assert cfg.pg_bin_dir is None
    assert cfg.exports_dir == (tmp_path / ".local" / "exports").resolve()
    assert cfg.backup_dir == (tmp_path / ".local" / "backups").resolve()


def test_relative_pg_bin_dir_resolves_against_the_config_directory(tmp_path: Path) -> None:
    cfg = PrivacyConfig(pg_bin_dir=Path("pgbin")).resolved(tmp_path)
    assert cfg.pg_bin_dir == (tmp_path / "pgbin").resolve()


def test_thresholds_fill_unwritten_levels_from_the_metric_default() -> None:
    from include.settings.monitoring import Limits, Thresholds

    # system.memory_percent defaults to warn 90, critical 98: a level left out keeps the one above it
    t = Thresholds({"system.memory_percent": {"warn": 80, "subjects": {"db": {"critical": 99}}}})
    assert t.for_("system.memory_percent") == Limits(80, 98)
    assert t.for_("system.memory_percent", "db") == Limits(80, 99)
    assert t.for_("system.memory_percent", "other") == Limits(80, 98)
    assert t.for_("system.disk_used_percent", "db") == Limits(90, 98)


def test_dotted_key_skips_only_pydantic_labels_and_union_tags() -> None:
    from include.settings.base import dotted

    tags = frozenset({"row_count"})
    # a tag right after a list index is the union member's label; elsewhere it is a real key
    assert dotted(("quality", "checks", 0, "row_count", "min"), tags) == "quality.checks[0].min"
    assert dotted(("quality", "row_count", "min"), tags) == "quality.row_count.min"
    # pydantic's validator labels: "function-…" and anything with brackets
    assert dotted(("a", "function-after", "b")) == "a.b"
    assert dotted(("a", "list[int]", "b")) == "a.b"
    assert dotted(("a", "function-after[_check()]", "b")) == "a.b"
    assert dotted(("functional", "b")) == "functional.b"


def test_custom_errors_carry_their_message() -> None:
    from include.settings.base import key_error, unknown_key_error

    assert key_error("min", "must be >= 5, got 2").message() == "must be >= 5, got 2"
    assert unknown_key_error("colour", ["color"], "metric").message() == "unknown metric colour"
    assert unknown_key_error("colour", ["color"]).message() == "unknown key colour"


def test_key_error_lines_join_key_and_sub_key() -> None:
    from include.settings.base import _one_error

    def line(sub: str, prefix: str, loc: tuple[str | int, ...] = ()) -> str:
        err = {"loc": loc, "type": "key_error", "ctx": {"sub": sub, "message": "is wrong"}, "input": None}
        return _one_error(err, prefix, frozenset())

    assert line("", "") == "is wrong"  # the file as a whole: the message alone
    assert line("", "etl") == "'etl' is wrong"
    assert line("[2]", "etl", ("sources",)) == "'etl.sources[2]' is wrong"
    assert line("min", "etl", ("sources",)) == "'etl.sources.min' is wrong"
    assert line("min", "") == "'min' is wrong"
    assert line("[2]", "") == "'[2]' is wrong"


def test_union_tag_error_names_the_tags_and_suggests_only_a_close_one() -> None:
    from include.settings.base import _one_error

    def line(tag: str, expected: str) -> str:
        err = {
            "loc": ("checks", 0),
            "type": "union_tag_invalid",
            "ctx": {"tag": tag, "expected_tags": expected},
            "input": {},
        }
        return _one_error(err, "quality", frozenset())

    assert line("row_cont", "'row_count', 'null_rate'") == (
        "'quality.checks[0].check' must be one of row_count, null_rate, got 'row_cont' — did you mean 'row_count'?"
    )
    assert line("zzz", "'row_count', 'null_rate'") == (
        "'quality.checks[0].check' must be one of row_count, null_rate, got 'zzz'"
    )
    # tag names are shown as pydantic gives them, only the quotes and spaces around them removed
    assert line("zzz", "'MAX', 'XL'") == "'quality.checks[0].check' must be one of MAX, XL, got 'zzz'"


def _line(kind: str, ctx: dict[str, object] | None, value: object, prefix: str = "etl", msg: str = "") -> str:
    from include.settings.base import _one_error

    err = {"loc": ("k",), "type": kind, "ctx": ctx, "input": value, "msg": msg}
    return _one_error(err, prefix, frozenset())


def test_comparison_errors_name_the_operator_and_the_limit() -> None:
    assert _line("greater_than", {"gt": 0}, -1) == "'etl.k' must be > 0, got -1"
    assert _line("greater_than_equal", {"ge": 5.0}, 2) == "'etl.k' must be >= 5, got 2"
    assert _line("less_than", {"lt": 0.5}, 7) == "'etl.k' must be < 0.5, got 7"
    assert _line("less_than_equal", {"le": 1}, 2) == "'etl.k' must be <= 1, got 2"


def test_length_and_type_errors() -> None:
    assert _line("too_long", {"max_length": 3}, [1, 2, 3, 4]) == "'etl.k' must have at most 3 items"
    assert _line("string_too_long", {"max_length": 9}, "x" * 10) == "'etl.k' must have at most 9 characters"
    # a mapping or list is named by its type, never printed (it may hold secrets)
    assert _line("int_type", None, {"password": "p"}) == "'etl.k' must be an integer, got 'dict'"
    assert _line("int_type", None, [1]) == "'etl.k' must be an integer, got 'list'"
    assert _line("int_type", None, "7") == "'etl.k' must be an integer, got '7'"


def test_value_errors_show_the_value_except_mappings_and_recipients() -> None:
    from include.settings.base import _one_error

    whole_file = {"loc": (), "type": "value_error", "ctx": None, "input": {}, "msg": "Value error, no sources"}
    assert _one_error(whole_file, "", frozenset()) == "no sources"
    assert _one_error(whole_file, "etl", frozenset()) == "'etl' no sources"
    assert _line("value_error", None, "x", msg="Value error, is odd") == "'etl.k' is odd, got 'x'"
    assert _line("value_error", None, {"a": 1}, msg="Value error, is odd") == "'etl.k' is odd"
    # recipients' addresses stay out of messages
    recipients = {"loc": ("to",), "type": "value_error", "ctx": None, "input": ["a@b.c"], "msg": "Value error, bad"}
    assert _one_error(recipients, "alerting.email", frozenset()) == "'alerting.email.to' bad"
    assert _line("url_parsing", None, "x", msg="Input should be a valid URL") == "'etl.k' Input should be a valid URL"


def test_format_error_counts_the_errors_after_the_first() -> None:
    from pydantic import ValidationError

    from include.settings.base import StrictModel, format_error

    class Pair(StrictModel):
        a: int
        b: int = 0
        c: int = 0

    def first_line(data: dict[str, object]) -> str:
        with pytest.raises(ValidationError) as err:
            Pair.model_validate(data)
        return format_error(err.value, "p")

    assert first_line({"a": "x"}) == "'p.a' must be an integer, got 'x'"
    assert first_line({"a": "x", "b": "y"}) == "'p.a' must be an integer, got 'x' (and 1 more error(s))"
    assert first_line({"a": "x", "b": "y", "c": "z"}) == "'p.a' must be an integer, got 'x' (and 2 more error(s))"
