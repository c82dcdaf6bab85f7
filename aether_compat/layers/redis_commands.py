"""Running commands and Lua scripts on a redis-py client: one round trip per batch,
and scripts reloaded transparently when a restarted server forgot them."""

from typing import Any

from redis.exceptions import NoScriptError

from .redis_scripts import Script

Command = tuple[Any, ...]
"""`(Script, keys, args)` for a script, or `(None, "COMMAND", arg, ...)`."""


def script(lua: Script, keys: list[str], args: list[Any]) -> Command:
    return (lua, keys, args)


def command(*words: Any) -> Command:
    return (None, *words)


async def run_batch(client: Any, commands: list[Command]) -> list[Any]:
    """Run commands in one round trip (a pipeline without MULTI) and return their
    results; scripts missing from the server (it restarted) are loaded and re-run
    alone, so nothing else in the batch runs twice. The first error raises."""
    if len(commands) == 1:
        return [await _run_one(client, commands[0])]
    pipe = client.pipeline(transaction=False)
    for item in commands:
        _queue(pipe, item)
    results = await pipe.execute(raise_on_error=False)
    for index, result in enumerate(results):
        if isinstance(result, NoScriptError):
            results[index] = await _run_one(client, commands[index])
        elif isinstance(result, Exception):
            raise result
    return results


async def _run_one(client: Any, item: Command) -> Any:
    if item[0] is None:
        return await client.execute_command(*item[1:])
    lua, keys, args = item
    try:
        return await client.evalsha(lua.sha, len(keys), *keys, *args)
    except NoScriptError:
        await client.script_load(lua.source)
        return await client.evalsha(lua.sha, len(keys), *keys, *args)


def _queue(pipe: Any, item: Command) -> None:
    if item[0] is None:
        pipe.execute_command(*item[1:])
    else:
        lua, keys, args = item  # not pipe.evalsha: Cluster pipelines refuse that name
        pipe.execute_command("EVALSHA", lua.sha, len(keys), *keys, *args)
