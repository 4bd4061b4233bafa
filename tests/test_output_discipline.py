"""Every ``soc`` command writes through ``soc_cli.output`` / ``soc_cli.safe_text``: checked on the source.

The hostile-output tests (``tests/test_hostile_terminal.py``) prove the commands that exist;
this scan keeps a new command from forgetting. In ``soc_cli``:

- no builtin ``print`` and no ``sys.stdout`` / ``sys.stderr`` (but ``isatty``/``flush``) outside
  the output module (``output.line``, ``output.emit_json``, the consoles);
- no Rich ``Console`` made anywhere else (the two ``SafeConsole`` objects are the only ones);
- a string rendered as markup (``console.print``, ``Text.from_markup``, Table / Panel titles,
  table cells, Textual ``Label`` / ``Static`` / ``update`` / ``notify``) that is an f-string
  interpolates only ``esc(...)`` values or numbers formatted as numbers (``{n:d}``, ``{n:,}``);
  anything else is built with ``safe(...)``;
- ``Text(...)`` of anything but a literal is ``safe(...)`` instead (``Text`` keeps ESC as it is).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOC_CLI = Path(__file__).resolve().parent.parent / "soc_cli"
OUTPUT_MODULES = {"output.py", "safe_text.py"}
#: ``Text(...)`` of computed text is allowed only where the rule itself is written
#: calls whose string arguments Rich or Textual render as markup
MARKUP_CALLS = {"print", "log", "status", "update", "notify", "from_markup", "Table", "Panel", "add_row",
                "add_column", "Label", "Static", "Rule"}
#: calls whose positional arguments are table cells
CELL_CALLS = {"add_row"}
#: the builders that make a cell safe (``safe`` and the alert commands' ``_t`` wrapper of it)
SAFE_BUILDERS = {"safe", "_t"}
MARKUP_KEYWORDS = {"title", "subtitle", "caption"}
NUMERIC_SPEC = set("d,_nfeg%")


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _dotted(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return f"{_dotted(func.value)}.{func.attr}"
    return _name(func)


def _safe_value(node: ast.FormattedValue) -> bool:
    if isinstance(node.value, ast.Call) and _name(node.value.func) in {"esc", "len"}:
        return True
    if isinstance(node.value, ast.IfExp):  # {'[green]ok[/]' if passed else '[red]FAIL[/]'}: literal markup
        return all(isinstance(b, ast.Constant) or (isinstance(b, ast.JoinedStr) and _unsafe_string(b) is None)
                   for b in (node.value.body, node.value.orelse))
    spec = node.format_spec
    if isinstance(spec, ast.JoinedStr) and spec.values and isinstance(spec.values[-1], ast.Constant):
        text = str(spec.values[-1].value)
        return bool(text) and text[-1] in NUMERIC_SPEC
    return False


def _unsafe_string(node: ast.expr) -> str | None:
    """Why ``node``, rendered as markup, could carry data as markup (None when it cannot)."""
    if isinstance(node, ast.JoinedStr):
        for part in node.values:
            if isinstance(part, ast.FormattedValue) and not _safe_value(part):
                return f"f-string interpolates {ast.unparse(part.value)!r} without esc()"
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return _unsafe_string(node.left) or _unsafe_string(node.right) or (
            "string built with + or %" if not all(isinstance(n, ast.Constant | ast.JoinedStr)
                                                  for n in (node.left, node.right)) else None)
    if isinstance(node, ast.IfExp):
        return _unsafe_string(node.body) or _unsafe_string(node.orelse)
    return None


def _unsafe_cell(node: ast.expr) -> str | None:
    """A table cell given as a bare variable is a str rendered as markup: it must be built by ``safe``."""
    if isinstance(node, ast.Name | ast.Attribute | ast.Subscript):
        return f"cell {ast.unparse(node)!r} is rendered as markup: use safe()"
    if isinstance(node, ast.Starred) and isinstance(node.value, ast.GeneratorExp | ast.ListComp):
        elt = node.value.elt
        if not (isinstance(elt, ast.Call) and _name(elt.func) in SAFE_BUILDERS):
            return f"cells {ast.unparse(elt)!r} are rendered as markup: use safe()"
    if isinstance(node, ast.Call) and _name(node.func) in {"str", "cell", "format"}:
        return f"cell {ast.unparse(node)!r} is rendered as markup: use safe()"
    return None


def _stream_uses(tree: ast.AST) -> list[ast.Attribute]:
    """``sys.stdout`` / ``sys.stderr`` used for anything but ``isatty()``, ``flush()``, ``fileno()``
    (``out = sys.stdout; out.write(...)`` is the same bypass as ``sys.stdout.write``, which
    ``problems`` reports by name)."""
    exempt: set[int] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr in {"isatty", "flush", "fileno", "write"}
                and isinstance(node.value, ast.Attribute)):
            exempt.add(id(node.value))
    return [node for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr in {"stdout", "stderr"}
            and isinstance(node.value, ast.Name) and node.value.id == "sys" and id(node) not in exempt]


def problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    if path.name not in OUTPUT_MODULES:
        found += [f"{path.relative_to(SOC_CLI.parent)}:{n.lineno}: sys.{n.attr} used directly "
                  "(write through soc_cli.output)" for n in _stream_uses(tree)]
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        where = f"{path.relative_to(SOC_CLI.parent)}:{node.lineno}"
        name, dotted = _name(node.func), _dotted(node.func)
        if path.name not in OUTPUT_MODULES:
            if dotted == "print" or dotted in {"sys.stdout.write", "sys.stderr.write"}:
                found.append(f"{where}: {dotted}() bypasses soc_cli.output (use output.line / emit_json / console)")
            if name == "Console":
                found.append(f"{where}: a Rich Console outside soc_cli.output (use output.console)")
        if name == "Text" and path.name != "safe_text.py" and node.args and not isinstance(node.args[0], ast.Constant):
            found.append(f"{where}: Text({ast.unparse(node.args[0])}) keeps control characters: use safe()")
        if name in CELL_CALLS:
            for arg in node.args:
                why = _unsafe_cell(arg)
                if why:
                    found.append(f"{where}: {name}(): {why}")
        if name in MARKUP_CALLS:
            if any(isinstance(k.value, ast.Constant) and k.value.value is False and k.arg == "markup"
                   for k in node.keywords) and name != "notify":
                continue
            args = [*node.args, *(k.value for k in node.keywords if k.arg in MARKUP_KEYWORDS)]
            for arg in args:
                why = _unsafe_string(arg)
                if why:
                    found.append(f"{where}: {name}(): {why}")
    return found


def test_the_discipline_catches_what_it_should(tmp_path: Path) -> None:
    bad = SOC_CLI / "_discipline_probe.py"
    bad.write_text("import sys\nfrom rich.text import Text\n"
                   "def f(console, user, n, rows):\n"
                   "    print(user)\n"
                   "    sys.stdout.write(user)\n"
                   "    console.print(f'[bold]{user}[/]')\n"
                   "    console.print('x' + user)\n"
                   "    console.print(f'{n:,} rows, {esc(user)}, {len(rows)}')\n"
                   "    Text(user)\n"
                   "    table.add_row(user, *(str(v) for v in rows))\n"
                   "    out = sys.stdout\n"
                   "    sys.stderr.isatty() and sys.stdout.flush()\n")
    try:
        found = problems(bad)
    finally:
        bad.unlink()
    assert [f.split(": ", 1)[1] for f in found] == [
        "sys.stdout used directly (write through soc_cli.output)",
        "print() bypasses soc_cli.output (use output.line / emit_json / console)",
        "sys.stdout.write() bypasses soc_cli.output (use output.line / emit_json / console)",
        "print(): f-string interpolates 'user' without esc()",
        "print(): string built with + or %",
        "Text(user) keeps control characters: use safe()",
        "add_row(): cell 'user' is rendered as markup: use safe()",
        "add_row(): cells 'str(v)' are rendered as markup: use safe()",
    ]


@pytest.mark.parametrize("path", sorted(SOC_CLI.rglob("*.py")), ids=lambda p: str(p.relative_to(SOC_CLI)))
def test_soc_cli_writes_data_only_through_the_sanitiser(path: Path) -> None:
    assert problems(path) == []
