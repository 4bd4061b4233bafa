"""The ``soc`` command: noun then verb, thin commands over the packages below.

Each command group lives in ``soc_cli/commands/<name>.py`` and exposes
``register(app)``; ``COMMANDS`` is the registry (top-level name -> the modules that make it).
A command's modules are imported and registered when that command is asked for, so
``soc scan`` does not pay for importing and registering the seventeen others; help, a
mistyped name and shell completion see them all. Command modules import heavy libraries
(scapy, scikit-learn, pySigma) inside the functions that need them, so ``soc --help`` stays
fast too.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from typing import Any

import typer
from typer.core import TyperGroup
from typer.main import get_group_from_info
from typer.models import TyperInfo

from eventstore.errors import QuerySyntaxError, StoreError
from locales import _
from soc_cli import i18n
from soc_cli.context import STATE, STORE_HELP
from soc_cli.errors import error_text, raised_text
from soc_cli.output import err_console, esc, install_log_handler, print_traceback, safe, visible

#: top-level command -> the modules that register it, in the order help lists them (one line per
#: command; add yours when the module exists). ``evidence`` adds ``soc alerts evidence``.
COMMANDS: dict[str, tuple[str, ...]] = {
    "policy": ("soc_cli.commands.policy",),
    "store": ("soc_cli.commands.store",),
    "hunt": ("soc_cli.commands.hunt",),
    "events": ("soc_cli.commands.hunt",),
    "demo": ("soc_cli.commands.demo",),
    "dashboard": ("soc_cli.commands.dashboard",),
    "playbook": ("soc_cli.commands.playbook",),
    "respond": ("soc_cli.commands.respond",),
    "ingest": ("soc_cli.commands.ingest",),
    "capture": ("soc_cli.commands.capture",),
    "tail": ("soc_cli.commands.tail",),
    "alerts": ("soc_cli.commands.alerts", "soc_cli.commands.evidence"),
    "pivot": ("soc_cli.commands.pivot",),
    "triage": ("soc_cli.commands.triage",),
    "detect": ("soc_cli.commands.detect",),
    "rules": ("soc_cli.commands.rules",),
    "scan": ("soc_cli.commands.scan",),
    "ml": ("soc_cli.commands.ml",),
}
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(m for modules in COMMANDS.values() for m in modules))

# The language (SOC_LANG, else LANGUAGE / LC_ALL / LANG) must be in force before the command
# modules register: Typer evaluates every help string then.
i18n.apply()

#: modules registered so far (each once a process), on a Typer of their own: module -> that Typer
_REGISTERED: dict[str, typer.Typer] = {}


def _registered(module: str) -> typer.Typer:
    """The Typer that ``module`` registered its commands on (imported, registered and its help
    translated the first time it is asked for)."""
    sub = _REGISTERED.get(module)
    if sub is None:
        sub = typer.Typer()
        importlib.import_module(module).register(sub)
        i18n.translate_help(sub)
        _REGISTERED[module] = sub
    return sub


def _merged(modules: Iterable[str], tree: typer.Typer) -> typer.Typer:
    """``tree`` with the commands and groups of ``modules`` (every module imported first: one
    may add commands to another's group)."""
    modules = tuple(modules)
    for module in modules:
        importlib.import_module(module)
    for module in modules:
        sub = _registered(module)
        tree.registered_commands += sub.registered_commands
        tree.registered_groups += sub.registered_groups
    return tree


class LazyCommands(TyperGroup):
    """``soc`` itself: a command's module is imported when the command is asked for.

    Typer builds this group (``cls``) from ``app`` on every call, with no commands; each name is
    resolved on demand from ``COMMANDS``. Listing (help, completion) and a name not in the
    registry (a typo: Typer's "did you mean" draws on the commands loaded) load them all.
    """

    def _load(self, names: Iterable[str]) -> None:
        for name in names:
            if name in self.commands:
                continue
            tree = _merged(COMMANDS[name], typer.Typer())
            group = get_group_from_info(TyperInfo(tree), pretty_exceptions_short=app.pretty_exceptions_short,
                                        rich_markup_mode=app.rich_markup_mode, suggest_commands=app.suggest_commands)
            for command_name, command in group.commands.items():
                self.commands.setdefault(command_name, command)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands:
            self._load([cmd_name] if cmd_name in COMMANDS else COMMANDS)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: Any) -> list[str]:
        """Commands, then groups, each in registry order: as Typer lists a tree registered at once."""
        self._load(COMMANDS)
        order = {name: n for n, name in enumerate(COMMANDS)}
        return sorted(self.commands, key=lambda name: (isinstance(self.commands[name], TyperGroup),
                                                       order.get(name, len(order))))


class LazyTyper(typer.Typer):
    """The root Typer; ``command_tree`` is the whole tree registered (what the catalog extracts)."""

    def command_tree(self) -> typer.Typer:
        tree = typer.Typer(name=self.info.name, help=self.info.help)
        tree.registered_callback = self.registered_callback
        return _merged(COMMAND_MODULES, tree)


app = LazyTyper(
    name="soc",
    help=_("ztsoc: zero-trust security operations from the command line."),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=LazyCommands,
)


@app.callback()
def _global(
    store: str = typer.Option(None, "--store", help=STORE_HELP),
    debug: bool = typer.Option(False, "--debug", help=_("Show tracebacks.")),
) -> None:
    STATE.store_url = store
    STATE.debug = debug


def _translate_root() -> None:
    """The global options' help in the interface language (each command module's, as it registers)."""
    root = typer.Typer()
    root.registered_callback = app.registered_callback
    i18n.translate_help(root)


_translate_root()



def error_label() -> str:
    """The word before every one-line error, in the interface language."""
    return _("error:")


def _classes(*names: str) -> tuple[type[BaseException], ...]:
    """Typer (0.26 on) raises its own copy of click's exceptions (``typer._click``); click's are kept for
    anything that still raises those. Asked when an exception arrives, from the modules already
    imported: an exception of a module nobody imported cannot be raised, and importing click for
    nothing was ~0.01 s of every command."""
    found = []
    for dotted in names:
        module, _dot, name = dotted.rpartition(".")
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


USAGE_ERRORS = ("typer._click.exceptions.ClickException", "click.exceptions.ClickException")
ABORTS = ("typer.exceptions.Abort", "click.exceptions.Abort")
EXITS = ("typer.exceptions.Exit", "click.exceptions.Exit")


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
    install_log_handler()
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
            print_traceback()
        # The message may quote the node ("[query_string]") or stored data: literal text, on one line.
        err_console.print(f"[red]{esc(error_label())}[/] {esc(error_text(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except SystemExit:
        raise
    except Exception as exc:  # click's usage errors and aborts carry their own exit codes
        if isinstance(exc, _classes(*USAGE_ERRORS)):
            show_usage_error(exc)
            sys.exit(getattr(exc, "exit_code", 2))
        if isinstance(exc, _classes(*ABORTS)):
            err_console.print(_("aborted"))
            sys.exit(1)
        if isinstance(exc, _classes(*EXITS)):
            sys.exit(getattr(exc, "exit_code", 0))
        if debug:
            print_traceback()
        err_console.print(f"[red]{esc(error_label())}[/] {esc(type(exc).__name__)}: {esc(error_text(exc))}", highlight=False)
        sys.exit(2)
    finally:
        STATE.close()


if __name__ == "__main__":
    main()
