"""Long commands: a tqdm bar on a terminal, plain lines otherwise (tokenhub.lib.progress)."""

from __future__ import annotations

import io

from tokenhub.lib.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_progress_is_plain_lines_with_the_total():
    out = io.StringIO()
    with Progress(out, "rows", total=3, every=0) as progress:
        for _ in range(3):
            progress.advance()
    lines = out.getvalue().splitlines()
    assert lines[-1] == "3/3 rows" and "\r" not in out.getvalue()


def test_on_a_terminal_progress_is_a_bar_redrawn_in_place():
    out = Terminal()
    with Progress(out, "models") as progress:
        progress.update(5, 10)
        progress.update(10, 10)
    assert "\r" in out.getvalue() and "10/10" in out.getvalue() and "100%" in out.getvalue()


def test_a_command_that_did_nothing_prints_no_progress():
    out = io.StringIO()
    Progress(out, "keys").close()
    assert out.getvalue() == ""
