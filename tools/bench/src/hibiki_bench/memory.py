"""Peak resident memory of service processes, sampled in a background thread while they run."""

from __future__ import annotations

import threading
from types import TracebackType

import psutil


class PeakRssSampler:
    """Samples the RSS of watched processes (children included) every `interval` s; keeps each peak."""

    def __init__(self, interval: float = 0.1) -> None:
        self._interval = interval
        self._processes: dict[str, psutil.Process] = {}
        self._peaks: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)

    def watch(self, name: str, pid: int) -> None:
        """Start sampling process `pid` under `name` (a later pid under the same name keeps the peak)."""
        with self._lock:
            self._processes[name] = psutil.Process(pid)
        self.sample()

    def peaks(self) -> dict[str, int]:
        """Peak RSS in bytes per watched name, so far."""
        with self._lock:
            return dict(self._peaks)

    def sample(self) -> None:
        """Take one sample of every watched process that is still alive."""
        with self._lock:
            for name, process in self._processes.items():
                try:
                    rss = _tree_rss(process)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                self._peaks[name] = max(rss, self._peaks.get(name, 0))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def __enter__(self) -> PeakRssSampler:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()


def _tree_rss(process: psutil.Process) -> int:
    """Resident memory of a service: its RSS, or with worker processes the PSS of the whole tree.

    Forked workers share pages with their parent; adding their RSS would count those pages twice, while
    proportional set sizes add up to what the processes really occupy (what a container limit sees).
    """
    children = process.children(recursive=True)
    if not children:
        return int(process.memory_info().rss)
    total = int(process.memory_full_info().pss)
    for child in children:
        try:
            total += int(child.memory_full_info().pss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total
