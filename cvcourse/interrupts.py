"""Ctrl+C that lets the current training step finish, so that the checkpoint written after it is exact.

Pressing *Interrupt* in Jupyter (or Ctrl+C in a terminal) sends SIGINT. Inside :func:`finish_step_first` the first
one only sets a flag, which the training loop reads after each step; a second one stops at once, as usual. Outside
the main thread, where a signal handler cannot be installed, SIGINT keeps its usual meaning.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def finish_step_first() -> Iterator[Callable[[], bool]]:
    """A context in which Ctrl+C is deferred; it yields a function that tells whether Ctrl+C was pressed."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    pressed: list[bool] = []

    def handler(signum: int, frame: object) -> None:
        if pressed:
            raise KeyboardInterrupt
        pressed.append(True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(pressed)
    finally:
        signal.signal(signal.SIGINT, previous)
