"""Typed models of config.yaml (pydantic v2, unknown keys rejected): load them with `include.config_loader`.

``base`` (strict base model, field types, one-line errors), ``models`` (the file and its pipeline
sections), ``monitoring`` and ``alerting`` (their sections); the quality section lives with its checks
in ``include/quality/config.py``. Nothing is imported here, so a section module can be imported alone.
"""
