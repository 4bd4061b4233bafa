"""The language of ``soc``'s own help: our strings through ``_()``, Typer's words through our catalog.

Typer evaluates every ``help=`` when a command registers, so ``soc_cli.main`` calls
``apply()`` before it imports the command modules; the language itself comes from the
environment (``locales.chosen_language``). Typer (0.26-0.28, with its own copy of click) says
"Options", "Commands", "[default: 7]" with gettext's global domain, which has no
Vietnamese; ``apply()`` points those words at our catalog. The usage line ("Usage: soc
[OPTIONS] COMMAND") is a syntax line and stays as Typer writes it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from locales import N_, SOURCE_LANGUAGE, _, current_language

#: Typer's rich_utils constants -> their English text (marked for extraction here).
TYPER_WORDS: dict[str, str] = {
    "ARGUMENTS_PANEL_TITLE": N_("Arguments"),
    "OPTIONS_PANEL_TITLE": N_("Options"),
    "COMMANDS_PANEL_TITLE": N_("Commands"),
    "ERRORS_PANEL_TITLE": N_("Error"),
    "ABORTED_TEXT": N_("Aborted."),
    "DEFAULT_STRING": N_("[default: {}]"),
    "ENVVAR_STRING": N_("[env var: {}]"),
    "REQUIRED_LONG_STRING": N_("[required]"),
    "DEPRECATED_STRING": N_("(deprecated) "),
    "RICH_HELP": N_("Try [blue]'{command_path} {help_option}'[/] for help."),
}
HELP_OPTION_TEXT = N_("Show this message and exit.")
USAGE_PREFIX = N_("Usage: ")
TRY_HELP = N_("Try '{command} {option}' for help.")

#: Typer's usage errors, as its own copy of click writes them (in English, with no gettext):
#: templates matched at the boundary like the messages raised below the CLI (``locales.raised``).
USAGE_ERRORS: tuple[str, ...] = (
    "Missing argument {param}.", "Missing option {param}.", "Missing parameter {param}.", "Missing parameter: {param}",
    "Missing argument {param}. {detail}", "Missing option {param}. {detail}",
    "No such option: {option}", "No such option: {option} (Possible options: {options})",
    "No such command {name}.", "No such command {name}. Did you mean {suggestions}?", "Missing command.",
    "Got unexpected extra argument(s) ({args})", "Option {option} does not take a value.",
    "Option {option} requires an argument.", "Option {option} requires {n} arguments.",
    "Argument {name} takes {n} values.", "Invalid value for {param}: {message}", "Invalid value: {message}",
    "{value} is not one of {choices}.", "{value} is not a valid integer.", "{value} is not a valid float.",
    "{value} is not a valid boolean.", "File {path} does not exist.", "Directory {path} does not exist.",
    "Path {path} does not exist.", "File {path} is a directory.", "Directory {path} is a file.",
    # Typer 0.26-0.28's copy of click words these its own way
    "{value} is not a valid int.", "{value} is not a valid float.", "{value} is not a valid int range.",
    "{value} is not a valid float range.", "{value} is not a valid boolean. Recognized values: {states}",
    "{value} is not in the range {range}.", "{value} does not match the formats {formats}.",
    # Typer 0.29 (kept out by pyproject.toml: pydantic on every run) checks option types with
    # pydantic, whose words these are: kept so an install that has it still speaks Vietnamese
    "Input should be a valid integer, unable to parse string as an integer",
    "Input should be a valid number, unable to parse string as a number",
    "Input should be a valid boolean, unable to interpret input",
    "Input should be greater than or equal to {n}", "Input should be less than or equal to {n}",
    "Input should be greater than {n}", "Input should be less than {n}",
)

#: a policy decision's reasons and ``soc policy explain``'s near misses as ``policy.engine`` and
#: ``policy.admin.explain`` write them (f-strings, not raised: listed here; ``tests/test_raised.py``
#: checks each is still written there, so a changed wording is noticed)
DECISION_REASONS: tuple[str, ...] = (
    "denied by {id} ({where})", "denied by {id} ({where}), failing closed: {result}", "{id} not applied: {result}",
    "no allow rule matched (default deny)", "dry-run rule {id} would allow", "allowed by {id}",
    "dry-run rule {w} would deny", "a token was presented but no trusted issuers are configured",
    "an asserted principal is not trusted here: present a token", "{rule} ({where}) failed on {failed}",
)

#: policy schema errors as ``policy.schema_messages`` puts them together from parts (the location
#: before them is kept as it is); ``tests/test_raised.py`` lints bad policies and checks that no
#: English is left, so a changed wording there is noticed
SCHEMA_MESSAGES: tuple[str, ...] = (
    "unknown key {key}", "unknown key {key} (did you mean {word}?)", "unknown key {key} (allowed here: {allowed})",
    "unknown key {key} (did you mean {word}?) (allowed here: {allowed})",
    "{value} is not allowed here: use one of {options}",
    "{value} is not allowed here (did you mean {word}?): use one of {options}",
    "use HH:MM, 24-hour (e.g. 09:00)", "use HH:MM, 24-hour (e.g. 17:30; 24:00 for midnight)",
    "use lower-case letters, digits, '.', '_' and '-' (up to 128, starting with a letter or digit)",
    "a path starts with '/' (or is '*')", "it does not have the expected form", "missing {keys}",
    "{value} should be a list", "{value} should be a mapping (key: value)", "{value} should be text",
    "{value} should be a whole number", "{value} should be a number", "{value} should be true or false",
    "{value} should be {types}", "needs at least {n} entry", "needs at least {n} entries",
    "is empty: give at least one of {allowed}", "is empty: give a value", "{key} needs {values} too",
    "{value} is too small: at least {n}",
    # where in the policy (the location before the message)
    "rule {name}", "rule #{n}", "(top)",
    # the same hints where another message takes them as its tail (``{label}: unknown key '{k}'{hint}``)
    " (did you mean {word}?)", " (allowed here: {allowed})", " (did you mean {word}?) (allowed here: {allowed})",
)

#: the operating system's words inside our messages (``cannot read: [Errno 2] No such file or directory: 'x'``):
#: Python writes them in English whatever the locale
OS_ERRORS: tuple[str, ...] = (
    "[Errno 2] No such file or directory: {path}", "[Errno 2] No such file or directory",
    "[Errno 13] Permission denied: {path}", "[Errno 13] Permission denied",
    "[Errno 21] Is a directory: {path}", "[Errno 20] Not a directory: {path}",
    "[Errno 17] File exists: {path}", "[Errno 28] No space left on device",
    "[Errno 111] Connection refused", "[Errno 98] Address already in use",
)


def apply() -> None:
    """Typer's words in the interface language (English: left exactly as Typer has them)."""
    from typer import core

    for cls in (core.TyperCommand, core.TyperGroup):
        _translate_help_option(cls)
    if current_language() == SOURCE_LANGUAGE:
        return  # Typer's words are these already: its help module (~0.05 s to import) stays unloaded
    from typer import rich_utils

    for name, english in TYPER_WORDS.items():
        if hasattr(rich_utils, name):
            setattr(rich_utils, name, _(english))
    _translate_usage_prefix()


def _translate_usage_prefix() -> None:
    """"Usage: soc policy lint [OPTIONS] PATHS..." in help and usage errors: the word only, the syntax stays."""
    from typer import rich_utils
    from typer._click.formatting import HelpFormatter  # Typer's own click: no public name for it

    original = HelpFormatter.write_usage
    if getattr(original, "_ztsoc_translated", False):
        return

    def write_usage(self: Any, prog: str, args: str = "", prefix: str | None = None) -> None:
        original(self, prog, args, _(USAGE_PREFIX) if prefix is None else prefix)

    write_usage._ztsoc_translated = True  # type: ignore[attr-defined]
    HelpFormatter.write_usage = write_usage  # type: ignore[method-assign]
    # the help page styles the word as it styles "Usage: "
    prefix = re.escape(_(USAGE_PREFIX))
    rich_utils.OptionHighlighter.highlights.append(f"(?P<usage>{prefix})")


def _translate_help_option(cls: Any) -> None:
    """``--help``'s own help text, set once on the option Typer creates for each command."""
    original = cls.get_help_option
    if getattr(original, "_ztsoc_translated", False):
        return

    def get_help_option(self: Any, ctx: Any) -> Any:
        option = original(self, ctx)
        if option is not None:
            option.help = _(HELP_OPTION_TEXT)
        return option

    get_help_option._ztsoc_translated = True  # type: ignore[attr-defined]
    cls.get_help_option = get_help_option


@dataclass
class HelpText:
    """One help text of the command tree: where it shows (``soc alerts close --reason``) and its holder."""

    where: str
    text: str
    holder: Any
    attribute: str


def help_texts(app: Any, path: str = "soc") -> Iterator[HelpText]:
    """Every help text of ``app``'s registered tree, in English as the code has it.

    This is what ``make i18n`` adds to the catalog (``python -m soc_cli.i18n POT``) and what
    ``translate_help`` translates, so help built at run time (reader summaries, the list of
    readers) is extracted like a literal. Typer's own precedence decides a group's text.
    """
    from typer.main import solve_typer_info_help
    from typer.models import DefaultPlaceholder

    tree = getattr(app, "command_tree", None)
    if callable(tree):  # ``soc`` registers its commands on demand: the whole tree
        app = tree()
    if isinstance(app.info.help, str):
        yield HelpText(path, app.info.help, app.info, "help")
    if app.registered_callback is not None:
        yield from _param_texts(app.registered_callback.callback, path)
    for cmd in app.registered_commands:
        name = cmd.name or (cmd.callback.__name__.replace("_", "-") if cmd.callback else "")
        text = cmd.help if isinstance(cmd.help, str) else inspect.getdoc(cmd.callback)
        if text:
            yield HelpText(f"{path} {name}", inspect.cleandoc(text), cmd, "help")
        yield from _param_texts(cmd.callback, f"{path} {name}")
    for group in app.registered_groups:
        name = group.name if not isinstance(group.name, DefaultPlaceholder) else group.typer_instance.info.name
        text = solve_typer_info_help(group)
        if text:
            yield HelpText(f"{path} {name}", text, group, "help")
        sub = group.typer_instance  # its own help is its group's, above
        yield from (item for item in help_texts(sub, f"{path} {name}") if item.holder is not sub.info)


def _param_texts(callback: Any, path: str) -> Iterator[HelpText]:
    from typer.models import ParameterInfo

    if callback is None:
        return
    for param in inspect.signature(callback).parameters.values():
        info = param.default
        if isinstance(info, ParameterInfo) and isinstance(info.help, str) and info.help:
            flag = next((d for d in info.param_decls if d.startswith("-")), param.name) if info.param_decls else param.name
            yield HelpText(f"{path} {flag}", inspect.cleandoc(info.help), info, "help")


def translate_help(app: Any) -> None:
    """Every help text of the tree in the interface language; run after the commands register.

    An option object shared by several commands (``--store``) is translated once; in
    English nothing is touched.
    """
    if current_language() == SOURCE_LANGUAGE:
        return
    done: set[int] = set()
    for item in list(help_texts(app)):
        if id(item.holder) in done:
            continue
        done.add(id(item.holder))
        setattr(item.holder, item.attribute, _(item.text))


def raised_messages(root: Path) -> dict[str, str]:
    """Template -> where: every message raised below the CLI, Typer's usage errors and the operating
    system's usual words (context ``raised``)."""
    from locales.raised import source_messages

    found = {message: "typer usage error" for message in USAGE_ERRORS}
    found.update({message: "operating system error" for message in OS_ERRORS})
    found.update({message: "policy decision reason" for message in DECISION_REASONS})
    found.update({message: "policy schema message" for message in SCHEMA_MESSAGES})
    for item in source_messages(root):
        found.setdefault(item.template, item.where)
    return found


def add_to_pot(app: Any, pot: Path) -> int:
    """Add the tree's help texts and the raised messages to the template ``pybabel extract`` wrote;
    returns how many are new."""
    from babel.messages.pofile import read_po, write_po

    from locales.raised import CONTEXT

    with pot.open("rb") as fh:
        catalog = read_po(fh)
    before = len(catalog)
    for item in help_texts(app):
        if item.text not in catalog:
            catalog.add(item.text, auto_comments=[f"help of: {item.where}"])
    for template, where in raised_messages(Path(__file__).resolve().parent.parent).items():
        if catalog.get(template, context=CONTEXT) is None:  # the file only: a line number would churn the .po
            catalog.add(template, context=CONTEXT, auto_comments=[f"raised in: {where.split(':')[0]}"])
    with pot.open("wb") as fh:
        write_po(fh, catalog, omit_header=False, sort_output=True, no_location=True)
    return len(catalog) - before


if __name__ == "__main__":  # make i18n: python -m soc_cli.i18n locales/ztsoc.pot
    import sys

    from locales import set_language
    from soc_cli.main import app as soc_app

    set_language("en")
    from soc_cli.output import line

    line(f"{add_to_pot(soc_app, Path(sys.argv[1]))} help texts and raised messages added to {sys.argv[1]}")
