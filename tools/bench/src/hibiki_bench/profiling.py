"""Profiles of service processes: run a service module under cProfile and summarise where time went.

cProfile writes its file when the profiled program returns, which a service does after SIGTERM (graceful
shutdown), so stopping the stack normally is enough. It profiles the event-loop thread, where the hot
paths run; time spent in worker threads (e.g. synthesis) shows up as waiting there.
"""

from __future__ import annotations

import io
import pstats
from dataclasses import replace
from pathlib import Path

from hibiki_devstack.stack import ServiceSpec


def profiled(spec: ServiceSpec, output: Path) -> ServiceSpec:
    """The same service started as `python -m cProfile -o <output> -m <module>`."""
    return replace(spec, module="cProfile", args=["-o", str(output), "-m", spec.module, *spec.args])


def summarise(profile: Path, limit: int = 25) -> str:
    """The `limit` functions with the most own time, then with the most cumulative time, as text."""
    out = io.StringIO()
    stats = pstats.Stats(str(profile), stream=out)
    stats.strip_dirs()
    out.write(f"# {profile.name}: top {limit} by own time (tottime)\n")
    stats.sort_stats(pstats.SortKey.TIME).print_stats(limit)
    out.write(f"# {profile.name}: top {limit} by cumulative time\n")
    stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(limit)
    return out.getvalue()
