"""rich's Console, except that a reader who leaves (`launch ... | head`) silences it.

rich answers a broken pipe with `SystemExit(1)`, which would end a coordinator with trials
running; here the console goes quiet, its file descriptor points at /dev/null (so the
interpreter's last flush is quiet too), and the program carries on.
"""

from __future__ import annotations

import contextlib
import os

from rich.console import Console as _RichConsole


class Console(_RichConsole):
    def on_broken_pipe(self) -> None:
        self.quiet = True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.file.fileno())
            os.close(devnull)
