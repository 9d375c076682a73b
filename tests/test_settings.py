"""Settings come from STREAMFOLD_* variables; CLI flags override them; partition sets parse strictly."""

from __future__ import annotations

import pytest

from api.cli import _settings, build_parser
from ingest.log import encoded_size, entry_fields
from ingest.schema import encode_events
from ingest.settings import InvalidSetting, Settings, env_name, parse_partition_set
from projections.fold.applier import chunk_entries

from .factories import make_events


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


def test_compressed_entries_weigh_what_they_hold_not_their_compressed_bytes():
    events = make_events(500, seed=9)
    packed = entry_fields("ws_z", events)
    assert packed[b"v"] == b"2" and len(packed[b"d"]) * 3 < len(encode_events(events))
    assert encoded_size(packed) == len(encode_events(events))
    chunks = chunk_entries([(f"{i}-0".encode(), packed) for i in range(4)], 2 * len(encode_events(events)))
    assert [len(c) for c in chunks] == [2, 2]


def test_every_serve_option_is_an_environment_variable():
    s = Settings.from_env(
        {
            "STREAMFOLD_NO_FOLD": "1",
            "STREAMFOLD_WORKERS": "3",
            "STREAMFOLD_DEMO": "yes",
            "STREAMFOLD_HOST": "0.0.0.0",
            "STREAMFOLD_PORT": "9000",
            "STREAMFOLD_LOG_LEVEL": "debug",
            "STREAMFOLD_LOG_FORMAT": "json",
            "STREAMFOLD_ACCESS_LOG": "on",
            "STREAMFOLD_READY_MAX_LAG_SECONDS": "2.5",
        }
    )
    assert (s.no_fold, s.workers, s.demo, s.host, s.port) == (True, 3, True, "0.0.0.0", 9000)
    assert (s.log_level, s.log_format, s.access_log, s.ready_max_lag_seconds) == ("debug", "json", True, 2.5)


def test_serve_flags_override_their_variables(monkeypatch):
    for name, value in {"DEMO": "1", "ACCESS_LOG": "1", "LOG_FORMAT": "json", "WORKERS": "4"}.items():
        monkeypatch.setenv(f"STREAMFOLD_{name}", value)
    args = build_parser().parse_args(
        ["serve", "--no-demo", "--no-access-log", "--log-format", "text", "--workers", "2", "--no-fold"]
    )
    s = _settings(args)
    assert (s.demo, s.access_log, s.log_format, s.workers, s.no_fold) == (False, False, "text", 2, True)
    unset = _settings(build_parser().parse_args(["serve"]))
    assert (unset.demo, unset.access_log, unset.log_format, unset.workers) == (True, True, "json", 4)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("NO_FOLD", "perhaps", "true or false"),
        ("WORKERS", "0", "at least 1"),
        ("LOG_LEVEL", "loud", "debug"),
        ("LOG_FORMAT", "xml", "text, json"),
        ("PARTITIONS", "abc", "whole number"),
        ("READY_MAX_LAG_SECONDS", "-1", "negative"),
        ("BODY_TIMEOUT_SECONDS", "0", "more than 0"),
        ("KEY_PREFIX", "a{b}", "braces"),
        ("FOLD_PARTITIONS", "0-99", "outside 0..15"),
    ],
)
def test_a_bad_value_is_named_by_its_variable(name, value, says):
    with pytest.raises(InvalidSetting) as caught:
        Settings.from_env({f"STREAMFOLD_{name}": value})
    assert caught.value.message.startswith(f"STREAMFOLD_{name}={value}: ")
    assert says in caught.value.message


def test_a_bad_flag_value_is_named_by_its_flag():
    with pytest.raises(InvalidSetting, match=r"^--fold-partitions 9: .*outside 0\.\.3"):
        Settings.from_env({"STREAMFOLD_PARTITIONS": "4"}, fold_partitions="9")


def test_the_readme_documents_every_environment_variable():
    from dataclasses import fields
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    missing = [env_name(f.name) for f in fields(Settings) if env_name(f.name) not in readme]
    assert missing == []


def test_children_get_the_settings_back_from_their_environment():
    from api.cli import settings_env

    s = Settings(
        redis_url="redis://h:1/0", no_fold=True, access_log=True, ready_max_lag_seconds=1.5, workers=2
    )
    assert Settings.from_env(settings_env(s)) == s
