"""What a person sees while the pipeline runs: one line per component started and finished,
training epochs, a heartbeat for long components and the seconds of each at the end; the rest
(TFX's and Beam's logs, TensorFlow's C++ messages, library warnings) goes to a log file in the
workspace.

``RunConsole`` points file descriptors 1 and 2 at the log file for the length of the run (so
output of C code and subprocesses is caught too) and writes its own lines to the terminal
through a copy of the original stderr. It learns that a component starts and ends by wrapping
TFX's ``Launcher.launch`` (which LocalDagRunner calls for each node) for the length of the run:
TFX's own ``Component X is running.`` log lines cannot be relied on, because libraries a trainer
loads turn absl's INFO logging off. Trainers log each epoch to the ``fashion.progress`` logger.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from typing import Optional

PROGRESS_LOGGER = "fashion.progress"
_SKIPPED = re.compile(r"^Skipping execution for (\S+)")


class _Progress(logging.Handler):
    def __init__(self, console: "RunConsole"):
        super().__init__(logging.INFO)
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 (a malformed record is not worth a crash)
            return
        if record.name == PROGRESS_LOGGER:
            self._console.say(f"  {self._console.current or 'training'}: {message}")
        elif match := _SKIPPED.match(message):
            self._console.skipped(match.group(1).strip("."))


class RunConsole:
    """Context manager: the run's console lines on the terminal, everything else in
    ``log_path``. ``component_seconds`` holds each finished component's seconds."""

    # A component is announced once it has run this long (most take well under a second),
    # and listed as done when it took at least this long.
    ANNOUNCE_AFTER = 3.0
    QUIET_BELOW = 0.5

    def __init__(self, log_path: str, heartbeat_seconds: float = 60.0):
        self.log_path = log_path
        self.heartbeat_seconds = heartbeat_seconds
        self.component_seconds: dict = {}
        self._skipped: list = []
        self.current: Optional[str] = None
        self._current_since = 0.0
        self._announced = False
        self._start = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._terminal = None
        self._saved: list = []
        self._handler = _Progress(self)
        self._launch = None

    def __enter__(self) -> "RunConsole":
        import sys
        os.makedirs(os.path.dirname(self.log_path) or ".", exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._saved = [os.dup(1), os.dup(2)]
        self._terminal = os.fdopen(os.dup(self._saved[1]), "w", buffering=1)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        for name in ("absl", PROGRESS_LOGGER):
            logger = logging.getLogger(name)
            logger.addHandler(self._handler)
            if logger.level == logging.NOTSET or logger.level > logging.INFO:
                logger.setLevel(logging.INFO)
        self._wrap_launcher()
        threading.Thread(target=self._heartbeat, name="run-console", daemon=True).start()
        return self

    def _wrap_launcher(self) -> None:
        from tfx.orchestration.portable import launcher
        original = self._launch = launcher.Launcher.launch
        console = self

        def launch(launcher_self, *args, **kwargs):
            console.started(launcher_self._pipeline_node.node_info.id)
            result = original(launcher_self, *args, **kwargs)
            console.finished(launcher_self._pipeline_node.node_info.id)
            return result
        launcher.Launcher.launch = launch

    def __exit__(self, kind, error, traceback) -> None:
        import sys
        self._stop.set()
        if self._launch is not None:
            from tfx.orchestration.portable import launcher
            launcher.Launcher.launch = self._launch
        for name in ("absl", PROGRESS_LOGGER):
            logging.getLogger(name).removeHandler(self._handler)
        if kind is not None and self.current:
            if not self._announced:
                self.say(f"{self.current} running ...")
            self.say(f"{self.current} FAILED after {self._elapsed(self._current_since)}")
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        for descriptor in self._saved:
            os.close(descriptor)
        self._terminal.close()

    def _elapsed(self, since: float) -> str:
        seconds = time.monotonic() - since
        return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)}m{seconds % 60:02.0f}s"

    def say(self, message: str) -> None:
        """One line on the terminal, with the time since the run started."""
        seconds = int(time.monotonic() - self._start)
        with self._lock:
            self._terminal.write(f"[{seconds // 60:3d}:{seconds % 60:02d}] {message}\n")

    def started(self, component: str) -> None:
        self.current, self._current_since, self._announced = component, time.monotonic(), False

    def finished(self, component: str) -> None:
        seconds = time.monotonic() - self._current_since
        self.component_seconds[component] = round(seconds, 1)
        if component in self._skipped:
            self.component_seconds[component] = 0.0
        elif seconds >= self.QUIET_BELOW or self._announced:
            self.say(f"{component} done ({self._elapsed(self._current_since)})")
        self.current = None

    def skipped(self, component: str) -> None:
        self._skipped.append(component)
        self.say(f"{component} skipped (its inputs were not produced, e.g. an unblessed model)")

    def _heartbeat(self) -> None:
        last = time.monotonic()
        absl_logger = logging.getLogger("absl")
        while not self._stop.wait(0.5):
            if absl_logger.level > logging.INFO:  # a library turned TFX's INFO lines off:
                absl_logger.setLevel(logging.INFO)  # the log file should keep them
            current, since, now = self.current, self._current_since, time.monotonic()
            if not current:
                continue
            if not self._announced and now - since >= self.ANNOUNCE_AFTER:
                self._announced, last = True, now
                self.say(f"{current} running ...")
            elif self._announced and now - last >= self.heartbeat_seconds:
                last = now
                self.say(f"{current} still running ({self._elapsed(since)})")

    def table(self, top: int = 0) -> str:
        """Each component's seconds, slowest first (``top`` > 0: only that many)."""
        rows = sorted(self.component_seconds.items(), key=lambda item: -item[1])
        rows = rows[:top] if top else rows
        width = max((len(name) for name, _ in rows), default=0)
        return "\n".join(f"  {name:<{width}} {seconds:8.1f} s" for name, seconds in rows)
