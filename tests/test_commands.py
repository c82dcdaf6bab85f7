"""`manage.py broadcast` and `manage.py group_members`: through call_command against a
configured layer, and as real subprocesses against the demo project's settings."""

import asyncio
import json
import subprocess
import sys
import uuid
from io import StringIO
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer as StockMemoryLayer
from django.core.management import CommandError, call_command
from django.test import override_settings

from aether_compat import Channels
from testing_support.asgi_server import project_env
from tests.support.facade import receive
from tests.support.layers import REDIS_URL

ROOT = Path(__file__).resolve().parent.parent
IN_PROCESS_NOTE = "lives inside one process"
RULE = "Group name must be a valid unicode string"


def run(*args):
    """call_command, returning (stdout, stderr)."""
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_failing(*args):
    """call_command that must fail: (stdout, stderr, the CommandError)."""
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as failure:
        call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue(), failure.value


def joined(layer, group, count):
    channels = [async_to_sync(layer.new_channel)() for _ in range(count)]
    for channel in channels:
        Channels.sync.group_add(group, channel)
    return channels


# call_command


def test_broadcast_prints_counts_and_each_error(make_layer, backend):
    layer = make_layer(capacity=1)
    Channels.configure(layer)
    *others, full = joined(layer, "room:cmd", 3)
    assert Channels.sync.send(full, "fills it") is True
    out, err, failure = run_failing("broadcast", "room:cmd", "hi", "--sender", "ops")
    assert "1 of 3 members of 'room:cmd' did not get the message" in str(failure)
    first, error = out.splitlines()
    assert first == "Broadcast to 'room:cmd': sent=2 failed=1"
    assert error.startswith("error: ChannelFull: ")
    assert full in error
    assert (IN_PROCESS_NOTE in err) is (backend == "memory")
    for member in others:
        event = async_to_sync(receive)(layer, member)
        assert (event["text"], event["sender"]) == ("hi", "ops")


def test_broadcast_allow_partial_accepts_a_partial_delivery(make_layer):
    layer = make_layer(capacity=1)
    Channels.configure(layer)
    *_, full = joined(layer, "room:part", 2)
    assert Channels.sync.send(full, "fills it") is True
    out, _ = run("broadcast", "room:part", "hi", "--allow-partial")
    assert out.splitlines()[0] == "Broadcast to 'room:part': sent=1 failed=1"


def test_broadcast_allow_partial_still_fails_when_nobody_got_it(make_layer):
    layer = make_layer(capacity=1)
    Channels.configure(layer)
    (full,) = joined(layer, "room:none", 1)
    assert Channels.sync.send(full, "fills it") is True
    run_failing("broadcast", "room:none", "hi", "--allow-partial")


def test_broadcast_json_for_scripts(make_layer):
    layer = make_layer(capacity=1)
    Channels.configure(layer)
    _, full = joined(layer, "room:json", 2)
    assert Channels.sync.send(full, "fills it") is True
    out, _, _ = run_failing("broadcast", "room:json", "hi", "--json")
    report = json.loads(out)
    assert (report["group"], report["sent"], report["failed"]) == ("room:json", 1, 1)
    (error,) = report["errors"]
    assert (error["type"], error["channel"]) == ("ChannelFull", full)


def test_group_members_json_for_scripts(make_layer):
    layer = make_layer()
    Channels.configure(layer)
    members = joined(layer, "room:list", 2)
    out, _ = run("group_members", "room:list", "--json")
    assert json.loads(out) == {"group": "room:list", "members": sorted(members)}


@pytest.mark.redis
def test_unreachable_redis_is_a_one_line_error_and_a_failure():
    """Redis down: broadcast reports the failure and exits non-zero; both commands
    say what failed in one line instead of a traceback."""
    from aether_compat.layers import RedisChannelLayer
    from testing_support.redis_process import free_port

    down = RedisChannelLayer(hosts=[f"redis://127.0.0.1:{free_port()}"])
    Channels.configure(down)
    out, _, failure = run_failing("broadcast", "room:down", "hi")
    assert "sent=0 failed=1" in out
    assert str(failure).startswith("cannot broadcast to 'room:down': Redis at ")
    _, _, failure = run_failing("group_members", "room:down")
    assert str(failure).startswith("cannot list 'room:down': Redis at ")
    assert "\n" not in str(failure)
    out, _, _ = run_failing("group_members", "room:down", "--json")
    assert json.loads(out)["error"].startswith("Redis at ")


def test_broadcast_binary_sends_the_files_bytes(make_layer, tmp_path):
    layer = make_layer()
    Channels.configure(layer)
    (member,) = joined(layer, "room:bin", 1)
    picture = tmp_path / "pic.bin"
    picture.write_bytes(b"\x89PNG\r\n\x00")
    out, _ = run("broadcast", "room:bin", "--binary", str(picture))
    assert out.strip() == "Broadcast to 'room:bin': sent=1 failed=0"
    assert async_to_sync(receive)(layer, member)["bytes"] == b"\x89PNG\r\n\x00"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        pytest.param(("broadcast", "room lobby", "hi"), RULE, id="bad-name"),
        pytest.param(("broadcast", "room:x"), "exactly one", id="no-message"),
        pytest.param(
            ("broadcast", "room:x", "hi", "--binary", "f"), "exactly one", id="both"
        ),
        pytest.param(
            ("broadcast", "room:x", "--binary", "/nonexistent/f"),
            "No such file",
            id="missing-file",
        ),
        pytest.param(("group_members", "room/x"), RULE, id="members-bad-name"),
    ],
)
def test_bad_input_is_a_command_error_with_the_reason(args, match):
    with pytest.raises(CommandError, match=match):
        run(*args)


def test_group_members_lists_one_a_line_and_counts(make_layer, backend):
    layer = make_layer()
    Channels.configure(layer)
    members = joined(layer, "room:who", 2)
    out, err = run("group_members", "room:who")
    assert out.splitlines() == [*sorted(members), "2 members in 'room:who'"]
    assert (IN_PROCESS_NOTE in err) is (backend == "memory")
    out, _ = run("group_members", "room:nobody")
    assert out.splitlines() == ["0 members in 'room:nobody'"]


def test_stock_layer_says_what_it_cannot_tell():
    Channels.configure(StockMemoryLayer())
    out, err = run("broadcast", "room:stock", "hi")
    assert out.strip() == "Broadcast to 'room:stock': sent=0 failed=0"
    assert "does not count deliveries" in err
    with pytest.raises(CommandError, match="cannot list group members"):
        run("group_members", "room:stock")


def test_no_layer_configured_is_a_command_error():
    with (
        override_settings(CHANNEL_LAYERS={}),
        pytest.raises(CommandError, match="CHANNEL_LAYERS"),
    ):
        run("broadcast", "room:x", "hi")


# Real subprocesses: `python manage.py ...`


def manage(*args, env=None):
    """Run manage.py against the demo settings (in-memory unless `env` says else)."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=project_env(None, **(env or {})),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_subprocess_broadcast_is_honest_about_its_reach():
    done = manage("broadcast", "room:lobby", "hi")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Broadcast to 'room:lobby': sent=0 failed=0"
    assert IN_PROCESS_NOTE in done.stderr
    assert "never the clients of a running server" in done.stderr


def test_subprocess_group_members_is_honest_about_its_reach():
    done = manage("group_members", "room:lobby")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0 members in 'room:lobby'"
    assert IN_PROCESS_NOTE in done.stderr


@pytest.mark.parametrize("command", ["broadcast", "group_members"])
def test_subprocess_bad_name_exits_non_zero_with_the_rule(command):
    args = [command, "room lobby"] + (["hi"] if command == "broadcast" else [])
    done = manage(*args)
    assert done.returncode != 0
    assert f"CommandError: {RULE}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.redis
@pytest.mark.parametrize(
    ("args", "error"),
    [
        pytest.param(
            ("broadcast", "room:lobby", "hi"), "cannot broadcast to", id="broadcast"
        ),
        pytest.param(
            ("broadcast", "room:lobby", "hi", "--json"),
            "cannot broadcast to",
            id="broadcast-json",
        ),
        pytest.param(("group_members", "room:lobby"), "cannot list", id="members"),
        pytest.param(
            ("group_members", "room:lobby", "--json"), "cannot list", id="members-json"
        ),
    ],
)
def test_subprocess_with_redis_down_exits_1_with_one_line(args, error):
    """A layer pointed at a closed port: exit status 1 and exactly one line on
    stderr naming the Redis that failed (no traceback, no log lines)."""
    from testing_support.redis_process import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    done = manage(*args, env={"AETHER_REDIS_URL": url})
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"CommandError: {error} 'room:lobby': Redis at "), line
    assert f"127.0.0.1:{url.split(':')[2]}" in line
    if "--json" in args:
        report = json.loads(done.stdout)
        assert report["group"] == "room:lobby"
        assert report.get("failed", 1) == 1


async def manage_async(*args, env):
    return await asyncio.to_thread(manage, *args, env=env)


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
async def test_subprocess_reaches_members_of_another_process_over_redis(make_layer):
    """With the Redis layer the command's process reaches this process's members."""
    prefix = f"test-cmd-{uuid.uuid4().hex[:8]}"
    layer = make_layer(prefix=prefix)
    members = [await layer.new_channel() for _ in range(2)]
    for member in members:
        await layer.group_add("room:lobby", member)
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.settings_facade_redis",
        "AETHER_TEST_REDIS_URL": REDIS_URL,
        "AETHER_TEST_LAYER_PREFIX": prefix,
    }
    done = await manage_async("broadcast", "room:lobby", "hi", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Broadcast to 'room:lobby': sent=2 failed=0"
    assert IN_PROCESS_NOTE not in done.stderr
    for member in members:
        assert (await receive(layer, member))["text"] == "hi"
    done = await manage_async("group_members", "room:lobby", env=env)
    assert done.stdout.splitlines() == [*sorted(members), "2 members in 'room:lobby'"]


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
async def test_subprocess_partial_failure_exit_codes(make_layer):
    """One member of two is full: exit status 1 with the count, 0 with
    --allow-partial, and --json names the full member."""
    prefix = f"test-cmd-{uuid.uuid4().hex[:8]}"
    layer = make_layer(prefix=prefix)
    reader, full = [await layer.new_channel() for _ in range(2)]
    for member in (reader, full):
        await layer.group_add("room:part", member)
    for number in range(100):  # the default capacity
        await layer.send(full, {"type": "filler", "n": number})
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.settings_facade_redis",
        "AETHER_TEST_REDIS_URL": REDIS_URL,
        "AETHER_TEST_LAYER_PREFIX": prefix,
    }
    done = await manage_async("broadcast", "room:part", "hi", env=env)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == "Broadcast to 'room:part': sent=1 failed=1"
    assert done.stderr.splitlines() == [
        "CommandError: 1 of 2 members of 'room:part' did not get the message"
    ]
    done = await manage_async(
        "broadcast", "room:part", "hi", "--allow-partial", env=env
    )
    assert done.returncode == 0, done.stderr
    done = await manage_async("broadcast", "room:part", "hi", "--json", env=env)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert (report["sent"], report["failed"]) == (1, 1)
    assert [(e["type"], e["channel"]) for e in report["errors"]] == [
        ("ChannelFull", full)
    ]
