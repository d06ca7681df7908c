"""Issue 13, defect 10: a config key holding `\\e[2J` cleared the screen when echoed in an error.
Everything the CLI prints now goes through one escaping function (errors.printable)."""

from __future__ import annotations

import io

import pytest

from tests.conftest import TINY_CONFIG, Project
from trtbuild.cli.terminal import Table, Terminal

CLEAR = "\x1b[2J"

# (where the escape sequence is, the config): YAML spells ESC "\e" inside double quotes.
INJECTED = [
    ("key", '"x\\e[2J": 1\n' + TINY_CONFIG),
    ("value", TINY_CONFIG.replace("opset: 17", 'opset: "\\e[2J"')),
    ("model name", TINY_CONFIG.replace("name: tiny", 'name: "tiny\\e[2J"')),
]


@pytest.mark.parametrize(("where", "text"), INJECTED, ids=[i[0] for i in INJECTED])
def test_control_characters_from_a_config_are_escaped_in_errors(
    tiny_project: Project, where: str, text: str
) -> None:
    tiny_project.config.write_text(text)
    completed = tiny_project.trtbuild("plan", str(tiny_project.config))
    assert completed.returncode == 2, (where, completed.stderr)
    assert "\x1b" not in completed.stderr, (where, completed.stderr)
    assert "\\x1b[2J" in completed.stderr, (where, completed.stderr)


def test_the_terminal_escapes_text_and_table_cells_but_keeps_its_own_colours() -> None:
    stream = io.StringIO()
    terminal = Terminal(stream)
    terminal.colour = True
    terminal.print(f"[bold red]error:[/] key {CLEAR} and \u202egnp.exe")
    table = Table(title=f"t{CLEAR}", caption=f"c{CLEAR}")
    table.add_column(f"h{CLEAR}")
    table.add_row(f"[green]{CLEAR}cell[/]")
    terminal.print(table)
    terminal.print(f"plain {CLEAR}", markup=False)
    output = stream.getvalue()
    assert CLEAR not in output and "\u202e" not in output, output
    assert output.count("\\x1b[2J") == 6 and "\\u202e" in output, output
    assert "\x1b[1;31merror:\x1b[0m" in output  # trtbuild's own styles still colour


def test_a_rich_table_of_another_verb_is_escaped_too() -> None:
    from rich.table import Table as RichTable

    stream = io.StringIO()
    terminal = Terminal(stream)
    table = RichTable(title=f"verify {CLEAR}")
    table.add_column("artifact")
    table.add_row(f"tiny/{CLEAR}/model.engine")
    terminal.print(table)
    assert CLEAR not in stream.getvalue() and "tiny/\\x1b[2J/model.engine" in stream.getvalue(), (
        stream.getvalue()
    )
