"""The `trtbuild` command: one module per verb, each thin over `trtbuild.api`."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType
from typing import cast

from trtbuild import __version__
from trtbuild.cli.console import error_console
from trtbuild.cli.terminal import escape, terminal_width
from trtbuild.errors import EXIT_FAILED, EXIT_USAGE, ConfigError, TrtbuildError, printable

# The verbs' modules under trtbuild.cli, in `--help` order. Only the chosen verb's module is
# imported: importing them all (the API, the report, triage, rich's tables) was half of a fully
# cached run's start-up.
VERBS = ("run", "plan", "report", "schema", "debug", "gc", "graph", "verify", "fsck")


# Libraries that log progress at INFO (and routine notes at WARNING) from inside tasks, and reset
# their own loggers' levels when called: filtered at the handler, unless TRTBUILD_LOG asks for them.
CHATTY_LIBRARIES = ("modelopt", "onnxscript", "onnx_ir", "polygraphy")


class _QuietLibraries(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not record.name.startswith(CHATTY_LIBRARIES)


class _OnlyOurDebug(logging.Filter):
    """TRTBUILD_LOG=debug is trtbuild's debug log (the builder's included), not every library's:
    matplotlib alone logs thousands of font lookups at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        return (
            record.levelno >= logging.INFO or record.name == "trtbuild" or record.name.startswith("trtbuild.")
        )


class _PrintableFormatter(logging.Formatter):
    """Log records carry configs' names and values too: escaped as everything else printed."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def configure_logging(level: str) -> None:
    # Other libraries' loggers inherit the root's level, at most as chatty as INFO: they do not even
    # make their debug records. trtbuild's own logger takes the level asked for.
    libraries_level = max(logging.getLevelName(level), logging.INFO)
    logging.basicConfig(level=libraries_level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("trtbuild").setLevel(level)
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)  # a library that lowers its own logger's level still stops here
        handler.setFormatter(_PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
        handler.addFilter(_OnlyOurDebug())
        if logging.getLevelName(level) in (logging.WARNING, logging.ERROR, logging.CRITICAL):
            handler.addFilter(_QuietLibraries())


def verb_modules(argv: Sequence[str] | None = None) -> list[ModuleType]:
    """The modules whose parsers the command line needs: the chosen verb's alone, or every verb's
    when none is chosen yet (`--help`, a misspelt verb: argparse lists them all)."""
    words = sys.argv[1:] if argv is None else argv
    chosen = next((word for word in words if not word.startswith("-")), None)
    names = [chosen] if chosen in VERBS else VERBS
    return [importlib.import_module(f"trtbuild.cli.{name}") for name in names]


class _Parser(argparse.ArgumentParser):
    """argparse's formatter asks shutil for the width on every add_argument, importing shutil, bz2
    and lzma into every run; the same width ($COLUMNS, else the terminal's) without them. The verbs'
    parsers are made by this class too (add_subparsers uses the parent's)."""

    def _get_formatter(self) -> argparse.HelpFormatter:
        # Every formatter class argparse has takes a width; its protocol type does not say so.
        formatter = cast("type[argparse.HelpFormatter]", self.formatter_class)
        return formatter(prog=self.prog, width=terminal_width(sys.stdout) - 2)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="trtbuild",
        description="Declarative, cached builds of TensorRT engines from PyTorch models.",
    )
    parser.add_argument("--version", action="version", version=f"trtbuild {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb in verb_modules(argv):
        verb.add_parser(verbs)
    return parser


EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process ended by SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    level = os.environ.get("TRTBUILD_LOG", "WARNING").upper()
    if not isinstance(logging.getLevelName(level), int):
        error_console().print(
            f"[bold red]error:[/] TRTBUILD_LOG={level.lower()} is not a log level: "
            "use debug, info, warning or error",
            highlight=False,
        )
        return EXIT_USAGE
    configure_logging(level)
    args = build_parser(argv).parse_args(argv)
    try:
        status: int = args.handler(args)
        return status
    except ConfigError as error:
        console = error_console()
        console.print(f"[bold red]error:[/] {len(error.problems)} problem(s) in the config", highlight=False)
        for problem in error.problems:
            console.print(problem.render(), markup=False, highlight=False)
        return EXIT_USAGE
    except TrtbuildError as error:
        error_console().print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
        return error.exit_status
    except KeyboardInterrupt:
        error_console().print("interrupted: finished tasks are cached; rerun to continue")
        return 130
    except BrokenPipeError:
        # The reader went away (`trtbuild run CONFIG | head`): stop quietly, as `cat` would. Tasks
        # that finished are cached. stdout goes to /dev/null so the interpreter's own flush at exit
        # does not fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as error:
        if os.environ.get("TRTBUILD_DEBUG"):
            traceback.print_exc()
        error_console().print(
            f"[bold red]internal error:[/] {type(error).__name__}: {escape(str(error))}\n"
            "  This is a bug in trtbuild; rerun with TRTBUILD_DEBUG=1 for the traceback and report it.",
            highlight=False,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
