"""The `streamfold` command as operators meet it: misuse and unreachable dependencies are one line `error: …` on
stderr with exit 2 (what was asked is wrong) or 1 (doing it failed); common flags go before or after the
command; every flag has help; keys are listed by hash, never shown; a disabled workspace's keys are refused."""

from __future__ import annotations

import argparse
import asyncio
import json
from importlib.metadata import version

import httpx
import pytest

from api.cli import _settings, build_parser
from api.embedded import free_port
from ingest.workspaces import WorkspaceRegistry

from .cli_helpers import clean_env, common_flags, streamfold

UNREACHABLE = f"redis://127.0.0.1:{free_port()}/0"


def assert_one_error_line(result, code: int, *needles: str) -> None:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert result.returncode == code, (result.returncode, result.stderr)
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "env", "code", "needles"),
    [
        (["workspace", "list"], {"STREAMFOLD_PARTITIONS": "abc"}, 2, ["STREAMFOLD_PARTITIONS=abc"]),
        (["serve"], {"STREAMFOLD_WORKERS": "many"}, 2, ["STREAMFOLD_WORKERS=many"]),
        (["serve"], {"STREAMFOLD_NO_FOLD": "perhaps"}, 2, ["STREAMFOLD_NO_FOLD=perhaps"]),
        (["digest"], {"STREAMFOLD_LOG_FORMAT": "xml"}, 2, ["STREAMFOLD_LOG_FORMAT=xml", "text, json"]),
        (["fold", "--fold-partitions", "0-99"], {}, 2, ["--fold-partitions 0-99", "outside 0..15"]),
        (["serve", "--port", "eighty"], {}, 2, ["--port", "eighty"]),
        (["serve", "--port", "70000"], {}, 2, ["--port 70000"]),
        (["--log-level", "loud", "digest"], {}, 2, ["--log-level", "loud"]),
        (["bogus"], {}, 2, ["bogus"]),
        ([], {}, 2, ["COMMAND"]),
        (["key", "create", "acme"], {}, 2, ["--scope"]),
        (["workspace", "list", "--redis-url", UNREACHABLE], {}, 1, ["cannot reach Redis", UNREACHABLE]),
        (["fold", "--redis-url", UNREACHABLE], {}, 1, ["cannot reach Redis"]),
        (["workspace", "list", "--redis-url", "http://x"], {}, 2, ["--redis-url http://x"]),
    ],
)
def test_misuse_is_one_line_and_an_exit_code(tmp_path, args, env, code, needles):
    result = streamfold(*args, "--data-dir", str(tmp_path), env=clean_env(**env))
    assert_one_error_line(result, code, *needles)


def test_without_redis_or_a_running_serve_commands_say_what_to_do(tmp_path):
    result = streamfold("workspace", "list", "--data-dir", str(tmp_path))
    assert_one_error_line(result, 2, "--redis-url", "streamfold serve")


def test_serve_refuses_to_report_running_when_redis_is_unreachable(tmp_path):
    result = streamfold("serve", "--redis-url", UNREACHABLE, "--port", str(free_port()), cwd=tmp_path)
    assert_one_error_line(result, 1, "cannot reach Redis")
    assert "Streamfold is running" not in result.stdout


def test_serve_refuses_a_port_in_use(tmp_path, settings):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = streamfold("serve", *common_flags(settings), "--port", str(port), cwd=tmp_path)
    assert_one_error_line(result, 1, f"127.0.0.1:{port}")
    assert "Streamfold is running" not in result.stdout


def test_an_unknown_workspace_or_key_is_a_usage_error(settings, redis):
    for args in (
        ["workspace", "disable", "nope"],
        ["key", "list", "nope"],
        ["key", "create", "nope", "--scope", "write"],
        ["workspace", "settings", "nope"],
        ["key", "revoke", "rk_not_a_key"],
    ):
        assert_one_error_line(streamfold(*args, *common_flags(settings)), 2)


def test_version_is_the_installed_one():
    result = streamfold("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"streamfold {version('streamfold')}"


def test_common_flags_go_before_or_after_the_command():
    url = "redis://h:1/0"
    spellings = [
        ["--redis-url", url, "--partitions", "8", "--log-format", "json", "workspace", "list"],
        ["workspace", "list", "--redis-url", url, "--partitions", "8", "--log-format", "json"],
        ["workspace", "--redis-url", url, "list", "--partitions", "8", "--log-format", "json"],
        ["--redis-url", url, "workspace", "--partitions", "8", "list", "--log-format", "json"],
    ]
    for argv in spellings:
        s = _settings(build_parser().parse_args(argv))
        assert (s.redis_url, s.partitions, s.log_format) == (url, 8, "json"), argv


def test_a_flag_after_the_command_wins_over_one_before():
    args = build_parser().parse_args(["--partitions", "4", "digest", "--partitions", "8"])
    assert _settings(args).partitions == 8


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_flag_and_argument_has_help():
    missing = [
        f"{p.prog}: {a.option_strings or a.dest}"
        for p in _parsers(build_parser())
        for a in p._actions
        if not isinstance(a, argparse._SubParsersAction) and not a.help
    ]
    assert missing == []


def test_key_list_shows_hash_prefixes_and_scopes_never_keys(settings, redis):
    created = streamfold("workspace", "create", "acme", "--json", *common_flags(settings))
    assert created.returncode == 0, created.stderr
    keys = json.loads(created.stdout)["keys"]
    added = streamfold("key", "create", "acme", "--scope", "admin", *common_flags(settings))
    keys.append({"key": added.stdout.split()[0], "scopes": ["admin"]})

    listed = streamfold("key", "list", "acme", *common_flags(settings))
    assert listed.returncode == 0, listed.stderr
    for k in keys:
        assert k["key"] not in listed.stdout
    lines = listed.stdout.splitlines()
    assert len(lines) == 3
    assert all(line.startswith("sha256:") for line in lines)
    assert sorted(line.split("scopes: ")[1] for line in lines) == sorted(" ".join(k["scopes"]) for k in keys)

    as_json = json.loads(streamfold("key", "list", "acme", "--json", *common_flags(settings)).stdout)
    assert len(as_json["keys"]) == 3 and as_json["workspace"].startswith("ws_")


async def test_a_disabled_workspace_is_refused_until_enabled(live_server, settings, redis, workspace):
    async with httpx.AsyncClient(base_url=live_server.url) as http:

        async def statuses() -> tuple[int, int]:
            ingest = await http.post(
                "/v1/track", json={"userId": "u", "event": "e"}, auth=(workspace.write_key, "")
            )
            read = await http.get("/v1/events", headers={"X-API-Key": workspace.read_key})
            return ingest.status_code, read.status_code

        assert await statuses() == (200, 200)
        off = await asyncio.to_thread(
            streamfold, "workspace", "disable", workspace.id, *common_flags(settings)
        )
        assert off.returncode == 0 and "disabled" in off.stdout, off.stderr
        assert await statuses() == (403, 403)  # the test settings cache keys for 0 s
        listed = await asyncio.to_thread(streamfold, "workspace", "list", *common_flags(settings))
        assert "(disabled)" in listed.stdout
        on = await asyncio.to_thread(streamfold, "workspace", "enable", workspace.id, *common_flags(settings))
        assert on.returncode == 0, on.stderr
        assert await statuses() == (200, 200)
        assert not (await WorkspaceRegistry(redis, settings).get_workspace(workspace.id)).disabled
