"""Settings for the extract's tests on real files: the project's defaults, raw inputs under tmp_path/raw."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from include.config_loader import DEFAULT_CONFIG, Settings, load_config


def extract_settings(
    tmp_path: Path,
    *,
    sources: Mapping[str, Mapping[str, Any]] | None = None,
    url: str | None = None,
    **changes: Any,
) -> Settings:
    """Defaults with raw inputs in tmp_path/raw and staging in tmp_path/staging.

    Args:
        sources: `{name: {field: value}}` replaces those fields of those sources.
        url: the products API (None: products come from the file); never retried.
        changes: other Settings fields (chunk_size, max_field_chars, on_mixed_encoding…).
    """
    raw = tmp_path / "raw"
    raw.mkdir(exist_ok=True)
    base = load_config(DEFAULT_CONFIG)
    cfgs = {**base.sources, **{n: dataclasses.replace(base.sources[n], **kw) for n, kw in (sources or {}).items()}}
    api = dataclasses.replace(base.products_api, url=url, max_retries=0)
    return dataclasses.replace(
        base, raw_data_dir=raw, staging_dir=tmp_path / "staging", sources=cfgs, products_api=api, **changes
    )
