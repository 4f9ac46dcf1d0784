"""A dependency-free progress bar: done/total, rate in images/s, and running figures.

On a terminal it redraws one line; in a log file (not a tty) it writes a line every
`LOG_EVERY` of the way, so `nohup ... > log` stays readable.
"""

import sys
import time

LOG_EVERY = 0.25
WIDTH = 24


class Progress:
    def __init__(self, total, label, stream=None, enabled=True):
        self.total, self.label = max(int(total), 1), label
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done, self.start = 0, time.perf_counter()
        self.next_log = LOG_EVERY

    @property
    def rate(self):
        """Images (items) per second so far."""
        return self.done / max(time.perf_counter() - self.start, 1e-9)

    def update(self, n, **figures):
        self.done += n
        if not self.enabled:
            return
        fraction = min(self.done / self.total, 1.0)
        if not self.tty and fraction < self.next_log and self.done < self.total:
            return
        while self.next_log <= fraction:
            self.next_log += LOG_EVERY
        filled = int(WIDTH * fraction)
        shown = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items())
        line = (f"{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {self.done}/{self.total} "
                f"{self.rate:,.0f} img/s {shown}")
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self):
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
