"""`repeat`: the loop behind ServiceRuntime.every (maintenance, heartbeats, retention)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from hibiki_runtime.service import repeat


async def test_a_failed_run_is_logged_and_the_next_one_still_comes(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []

    async def job() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise ConnectionError("database unreachable")

    with caplog.at_level(logging.ERROR):
        task = asyncio.create_task(repeat("nightly job", 0.01, job))
        for _ in range(200):
            if len(runs) >= 3:
                break
            await asyncio.sleep(0.01)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(runs) >= 3
    assert "nightly job failed" in caplog.text and "database unreachable" in caplog.text


async def test_the_first_run_waits_one_interval_when_asked() -> None:
    runs: list[float] = []

    async def job() -> None:
        runs.append(asyncio.get_running_loop().time())

    started = asyncio.get_running_loop().time()
    task = asyncio.create_task(repeat("heartbeat", 0.2, job, first_now=False))
    await asyncio.sleep(0.1)
    assert runs == []
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(runs) == 1 and runs[0] - started >= 0.2
