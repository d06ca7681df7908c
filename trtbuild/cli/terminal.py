"""Plain terminal output: rich's markup subset and tables, without importing rich.

`trtbuild run` and `plan` print through this: importing rich's console and tables was a sixth of a
fully cached run. It reads the same markup the verbs always wrote (`[bold red]error:[/]`, text passed
through `escape`), escapes control characters (errors.printable), colours only on a terminal (and
never with NO_COLOR set), never wraps a plain line (paths stay whole), and fits tables to the
terminal's width (150 columns when not a terminal, as before) by wrapping cells at spaces. Anything
else handed to `print` (a rich renderable of another verb) is rendered by rich itself, imported then.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO, cast

from trtbuild.errors import printable

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType
    from rich.segment import Segment

# rich's markup syntax (rich/markup.py): a tag is `[` then a letter, `#`, `/` or `@`; a backslash
# before it makes it literal text.
_TAG = re.compile(r"(\\*)\[([a-z#/@][^[]*?)]")
_ESCAPE = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")
_SGR = {"bold": "1", "dim": "2", "italic": "3", "red": "31", "green": "32", "yellow": "33", "default": "39"}
Paint = Callable[[str, str], str]
PIPED_WIDTH = 150  # logs have no width limit: tables of task ids and reasons get room
Styled = list[tuple[str, str]]  # (text, style) runs


def escape(text: str) -> str:
    """Make `text` print as written, whatever brackets it holds (rich.markup.escape's rule)."""
    escaped = _ESCAPE.sub(r"\1\1\\\2", text)
    return escaped + "\\" if escaped.endswith("\\") and not escaped.endswith("\\\\") else escaped


def parse(markup: str) -> Styled:
    """Markup -> (text, style) runs; a style is the open tags' names joined by spaces."""
    if "[" not in markup:  # most cells of a plan's table: nothing to look for
        return [(markup, "")] if markup else []
    runs: Styled = []
    stack: list[str] = []
    position = 0
    for match in _TAG.finditer(markup):
        backslashes, tag = match.groups()
        text = markup[position : match.start()] + "\\" * (len(backslashes) // 2)
        position = match.end()
        if len(backslashes) % 2:  # escaped: the tag is text
            runs.append((f"{text}[{tag}]", " ".join(stack)))
            continue
        runs.append((text, " ".join(stack)))
        if not tag.startswith("/"):
            stack.append(tag)
        elif stack:
            stack.pop()
    runs.append((markup[position:], " ".join(stack)))
    return [(text, style) for text, style in runs if text]


@dataclass
class Column:
    header: str
    no_wrap: bool = False


@dataclass
class Table:
    """A table as rich drew ours: a left-aligned title, bold headers, a rule under them when
    `rule`, two spaces between columns, cells wrapped at spaces to fit, then the caption."""

    title: str = ""
    title_style: str = ""
    caption: str = ""
    rule: bool = True
    columns: list[Column] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)

    def add_column(self, header: str, *, no_wrap: bool = False) -> None:
        self.columns.append(Column(header, no_wrap))

    def add_row(self, *cells: str) -> None:
        self.rows.append(list(cells))


class Terminal:
    """`print(markup)` and `print(table)` on one stream; the interface the verbs used of rich's Console."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        tty = stream.isatty()
        self.colour = tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        self.width = terminal_width(stream) if tty else PIPED_WIDTH

    def print(self, content: object = "", *, markup: bool = True, highlight: bool = False) -> None:
        if isinstance(content, Table):
            lines = render_table(content, self.width, self.colour)
        elif isinstance(content, str):
            lines = [self.styled(parse(content) if markup else [(content, "")])]
        else:
            self._print_rich(content)
            return
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()

    def styled(self, runs: Styled) -> str:
        return "".join(_sgr(text, style) if self.colour else text for text, style in _printable(runs))

    def _print_rich(self, renderable: object) -> None:
        from rich.console import Console

        console = Console(file=self.stream, soft_wrap=True, width=self.width, no_color=not self.colour)
        console.print(_PrintableRich(renderable))


class _PrintableRich:
    """A rich renderable as rich lays it out, its text escaped as the rest is (errors.printable);
    the control codes of rich's own styling are left alone."""

    def __init__(self, renderable: object) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        from rich.segment import Segment

        for segment in console.render(cast("RenderableType", self.renderable), options):
            yield segment if segment.control else Segment(printable(segment.text), segment.style)


def terminal_width(stream: TextIO) -> int:
    """$COLUMNS, else the terminal's own width (os's call: shutil's would import it and lzma)."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        return 80


def _sgr(text: str, style: str) -> str:
    codes = [_SGR[word] for word in style.split() if word in _SGR]
    return f"\x1b[{';'.join(codes)}m{text}\x1b[0m" if codes else text


def render_table(table: Table, width: int, colour: bool) -> list[str]:
    cells = [[_printable(parse(cell)) for cell in row] for row in table.rows]
    headers: list[Styled] = [[(printable(column.header), "bold")] for column in table.columns]
    widths = _fit(table.columns, [headers, *cells], width)
    paint: Paint = _sgr if colour else (lambda text, style: text)
    lines = [paint(printable(table.title), table.title_style or "italic")] if table.title else []
    for index, row in enumerate([headers, *cells]):
        lines += _row_lines(row, widths, paint)
        if index == 0 and table.rule:
            lines.append("─" * (sum(widths) + 2 * (len(widths) - 1)))
    lines += [paint(line, "dim") for line in printable(table.caption).splitlines()]
    return lines


def _printable(runs: Styled) -> Styled:
    """The runs' text with control characters escaped (errors.printable); the styles, which only
    trtbuild writes, become escape sequences after this."""
    return [(printable(text), style) for text, style in runs]


def _plain(runs: Styled) -> str:
    return "".join(text for text, _ in runs)


def _fit(columns: Sequence[Column], rows: Sequence[Sequence[Styled]], width: int) -> list[int]:
    """Each column's natural width (its longest line); the widest wrappable ones narrowed, down to
    their longest word, then below it (long words are folded), until the table fits."""
    natural = [
        max((len(line) for row in rows for line in _plain(row[i]).split("\n")), default=0)
        for i in range(len(columns))
    ]
    words = [
        natural[i]
        if column.no_wrap
        else max((len(word) for row in rows for word in _plain(row[i]).split()), default=1)
        for i, column in enumerate(columns)
    ]
    widths = list(natural)
    room = width - 2 * (len(columns) - 1)
    for floor in (words, [min(w, 8) if not c.no_wrap else w for w, c in zip(words, columns, strict=True)]):
        while sum(widths) > room:
            candidates = [i for i in range(len(widths)) if widths[i] > floor[i]]
            if not candidates:
                break
            widest = max(candidates, key=lambda i: widths[i])
            widths[widest] -= 1
    return widths


def _row_lines(row: Sequence[Styled], widths: Sequence[int], paint: Paint) -> list[str]:
    wrapped = [_wrap(cell, width) for cell, width in zip(row, widths, strict=True)]
    height = max(len(lines) for lines in wrapped)
    out = []
    for index in range(height):
        parts = []
        for lines, width in zip(wrapped, widths, strict=True):
            runs = lines[index] if index < len(lines) else []
            text = "".join(paint(t, s) for t, s in runs)
            parts.append(text + " " * (width - len(_plain(runs))))
        out.append("  ".join(parts).rstrip())
    return out


def _wrap(cell: Styled, width: int) -> list[Styled]:
    """The cell's lines at most `width` wide: broken at its newlines, then at spaces, folding a
    word longer than a line; each character keeps its style."""
    if len(cell) <= 1:  # one style throughout (most cells): wrap the string itself
        style = cell[0][1] if cell else ""
        return [[(line, style)] if line else [] for line in _wrap_text(_plain(cell), width)]
    chars = [(char, style) for text, style in cell for char in text]
    lines: list[Styled] = []
    for line in _split(chars, "\n"):
        current: list[tuple[str, str]] = []
        for word in _split(line, " "):
            while len(word) > width:
                if current:
                    lines.append(_runs(current))
                    current = []
                lines.append(_runs(word[:width]))
                word = word[width:]
            if current and len(current) + 1 + len(word) > width:
                lines.append(_runs(current))
                current = []
            current = [*current, (" ", current[-1][1]), *word] if current else list(word)
        lines.append(_runs(current))
    return lines


def _wrap_text(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for word in paragraph.split(" "):
            while len(word) > width:
                if current:
                    lines.append(current)
                    current = ""
                lines.append(word[:width])
                word = word[width:]
            if current and len(current) + 1 + len(word) > width:
                lines.append(current)
                current = ""
            current = f"{current} {word}" if current else word
        lines.append(current)
    return lines


def _split(chars: list[tuple[str, str]], separator: str) -> list[list[tuple[str, str]]]:
    parts: list[list[tuple[str, str]]] = [[]]
    for char in chars:
        if char[0] == separator:
            parts.append([])
        else:
            parts[-1].append(char)
    return parts


def _runs(chars: Sequence[tuple[str, str]]) -> Styled:
    runs: Styled = []
    for char, style in chars:
        if runs and runs[-1][1] == style:
            runs[-1] = (runs[-1][0] + char, style)
        else:
            runs.append((char, style))
    return runs
