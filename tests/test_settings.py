"""Settings come from STREAMFOLD_* variables; CLI flags override them; partition sets parse strictly."""

from __future__ import annotations

import pytest

from api.cli import _settings, build_parser
from ingest.settings import InvalidSetting, Settings, parse_partition_set
from projections.fold.applier import chunk_entries


def test_environment_variables_fill_settings():
    s = Settings.from_env(
        {"STREAMFOLD_PARTITIONS": "8", "STREAMFOLD_REDIS_URL": "redis://x:1/0", "STREAMFOLD_PORT": "9"}
    )
    assert (s.partitions, s.redis_url, s.port) == (8, "redis://x:1/0", 9)


def test_a_bad_number_names_the_variable():
    with pytest.raises(InvalidSetting, match="STREAMFOLD_PORT=eighty"):
        Settings.from_env({"STREAMFOLD_PORT": "eighty"})


def test_cli_flags_override_the_environment(monkeypatch):
    monkeypatch.setenv("STREAMFOLD_MAX_EVENT_BYTES", "1000")
    monkeypatch.setenv("STREAMFOLD_PORT", "7000")
    args = build_parser().parse_args(["serve", "--port", "7100", "--redis-url", "redis://h:2/0"])
    s = _settings(args)
    assert (s.port, s.redis_url, s.max_event_bytes) == (7100, "redis://h:2/0", 1000)


def test_partition_sets():
    assert parse_partition_set("all", 4) == [0, 1, 2, 3]
    assert parse_partition_set("none", 4) == []
    assert parse_partition_set("0-1,3", 4) == [0, 1, 3]
    with pytest.raises(ValueError, match="outside"):
        parse_partition_set("2-5", 4)


def test_transactions_are_bounded_by_encoded_size_but_keep_log_order():
    entries = [(f"{i}-0".encode(), {b"d": b"x" * 400}) for i in range(10)]
    chunks = chunk_entries(entries, 1000)
    assert [len(c) for c in chunks] == [2, 2, 2, 2, 2]
    assert [e for c in chunks for e in c] == entries
    assert chunk_entries([(b"1-0", {b"d": b"x" * 5000})], 1000) == [[(b"1-0", {b"d": b"x" * 5000})]]
