"""The ``soc`` command: noun then verb, thin commands over the packages below.

Each command group lives in ``soc_cli/commands/<name>.py`` and exposes
``register(app)``; ``COMMAND_MODULES`` is the registry. Command modules import heavy
libraries (scapy, scikit-learn, pySigma) inside the functions that need them, so
``soc --help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys
import traceback

import typer

from eventstore.errors import QuerySyntaxError, StoreError
from locales import _
from soc_cli import i18n
from soc_cli.context import STATE, STORE_HELP
from soc_cli.errors import error_text, raised_text
from soc_cli.output import err_console, esc, safe, visible

COMMAND_MODULES: tuple[str, ...] = (
    # one line per command module; add yours when the module exists
    "soc_cli.commands.policy",
    "soc_cli.commands.store",
    "soc_cli.commands.hunt",
    "soc_cli.commands.demo",
    "soc_cli.commands.dashboard",
    "soc_cli.commands.playbook",
    "soc_cli.commands.respond",
    "soc_cli.commands.ingest",
    "soc_cli.commands.capture",
    "soc_cli.commands.tail",
    "soc_cli.commands.alerts",
    "soc_cli.commands.evidence",
    "soc_cli.commands.pivot",
    "soc_cli.commands.triage",
    "soc_cli.commands.detect",
    "soc_cli.commands.rules",
    "soc_cli.commands.scan",
    "soc_cli.commands.ml",
)

# The language (SOC_LANG, else LANGUAGE / LC_ALL / LANG) must be in force before the command
# modules register: Typer evaluates every help string then.
i18n.apply()

app = typer.Typer(
    name="soc",
    help=_("ztsoc: zero-trust security operations from the command line."),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _global(
    store: str = typer.Option(None, "--store", help=STORE_HELP),
    debug: bool = typer.Option(False, "--debug", help=_("Show tracebacks.")),
) -> None:
    STATE.store_url = store
    STATE.debug = debug


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)
i18n.translate_help(app)


def error_label() -> str:
    """The word before every one-line error, in the interface language."""
    return _("error:")


def _classes(*names: str) -> tuple[type[BaseException], ...]:
    """Typer 0.29 raises its own copy of click's exceptions (``typer._click``); click's are kept for
    anything that still raises those."""
    found = []
    for dotted in names:
        module, _dot, name = dotted.rpartition(".")
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


USAGE_ERRORS = _classes("typer._click.exceptions.ClickException", "click.exceptions.ClickException")
ABORTS = _classes("typer.exceptions.Abort", "click.exceptions.Abort")
EXITS = _classes("typer.exceptions.Exit", "click.exceptions.Exit")


def show_usage_error(exc: Exception) -> None:
    """A usage error as click shows it (usage line, where to get help, the error), in the interface language."""
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        err_console.print(safe(ctx.get_usage()), highlight=False)
        if ctx.command.get_help_option(ctx) is not None:
            err_console.print(safe(_(i18n.TRY_HELP).format(command=ctx.command_path, option=ctx.help_option_names[0])),
                              highlight=False)
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    err_console.print(f"[red]{esc(error_label())}[/] {esc(raised_text(message))}", highlight=False, soft_wrap=True)


def main() -> None:
    debug = "--debug" in sys.argv
    try:
        # Without standalone mode click returns (not raises) the code of typer.Exit.
        code = app(standalone_mode=False, prog_name="soc")  # help and usage say what a person types
        if isinstance(code, int) and code:
            sys.exit(code)
    except QuerySyntaxError as exc:
        err_console.print(f"[red]{esc(error_label())}[/] {esc(error_text(exc))}", highlight=False, soft_wrap=True)
        if err_console.is_terminal:  # scripts get one line; a person also sees where
            err_console.print(safe(exc.query), highlight=False)
            if exc.position is not None:  # the caret under the fault, counted in the text as shown
                err_console.print(safe(" " * len(visible(exc.query[:exc.position])) + "^"), highlight=False)
        sys.exit(2)
    except (StoreError, ValueError, OSError) as exc:
        if debug:
            traceback.print_exc()
        # The message may quote the node ("[query_string]") or stored data: literal text, on one line.
        err_console.print(f"[red]{esc(error_label())}[/] {esc(error_text(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except SystemExit:
        raise
    except Exception as exc:  # click's usage errors and aborts carry their own exit codes
        if isinstance(exc, USAGE_ERRORS):
            show_usage_error(exc)
            sys.exit(getattr(exc, "exit_code", 2))
        if isinstance(exc, ABORTS):
            err_console.print(_("aborted"))
            sys.exit(1)
        if isinstance(exc, EXITS):
            sys.exit(getattr(exc, "exit_code", 0))
        if debug:
            traceback.print_exc()
        err_console.print(f"[red]{esc(error_label())}[/] {esc(type(exc).__name__)}: {esc(error_text(exc))}", highlight=False)
        sys.exit(2)
    finally:
        STATE.close()


if __name__ == "__main__":
    main()
