"""What a training run logs, and how a person watches it: the history, a live plot, periodic callbacks."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cvcourse.train import Trainer


class History:
    """Values logged during training: ``history.series("loss") -> (steps, values)``."""

    def __init__(self) -> None:
        self._series: dict[str, tuple[list[int], list[float]]] = {}

    def log(self, step: int, **values: float) -> None:
        for name, value in values.items():
            steps, logged = self._series.setdefault(name, ([], []))
            steps.append(int(step))
            logged.append(float(value))

    def names(self) -> list[str]:
        return list(self._series)

    def series(self, name: str) -> tuple[list[int], list[float]]:
        if name not in self._series:
            raise KeyError(f"Nothing logged as {name!r}; logged: {', '.join(self._series) or 'nothing yet'}.")
        return self._series[name]

    def last(self, name: str) -> float:
        return self.series(name)[1][-1]

    def mean(self, name: str, last: int | None = None) -> float:
        values = self.series(name)[1][-last:] if last else self.series(name)[1]
        return sum(values) / len(values)

    def state_dict(self) -> dict[str, Any]:
        return {name: (list(steps), list(values)) for name, (steps, values) in self._series.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._series = {name: (list(steps), list(values)) for name, (steps, values) in state.items()}

    def __repr__(self) -> str:
        latest = ", ".join(f"{name}={values[-1]:.4g}" for name, (_, values) in self._series.items())
        return f"History({latest or 'empty'})"


class Every:
    """A callback that runs ``fn(trainer)`` every ``n`` steps (an evaluation, a sample gallery ...)."""

    def __init__(self, n: int, fn: Callable[[Trainer], None]) -> None:
        if n < 1:
            raise ValueError(f"Every(n, fn) needs n >= 1, got {n}.")
        self.n, self.fn = n, fn

    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.step % self.n == 0:
            self.fn(trainer)


class LivePlot:
    """Redraws the loss curves in the notebook output every ``every`` steps."""

    def __init__(self, every: int = 25, names: list[str] | None = None) -> None:
        self.every, self.names, self._handle = every, names, None

    def _draw(self, trainer: Trainer) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        from cvcourse.viz import plot_history

        figure = plot_history(trainer.history, names=self.names)
        if self._handle is None:
            self._handle = display(figure, display_id=True)
        else:
            self._handle.update(figure)
        plt.close(figure)

    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.step % self.every == 0:
            self._draw(trainer)

    def on_fit_end(self, trainer: Trainer) -> None:
        if trainer.history.names():
            self._draw(trainer)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a live plot can be shown)."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return type(shell).__name__ == "ZMQInteractiveShell"


