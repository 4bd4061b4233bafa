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
- ``Text(...)`` of anything but a literal is ``safe(...)`` instead (``Text`` keeps ESC as it is);
- what ``print`` is given is a literal, a checked f-string, a builder that makes it safe (``safe``,
  ``esc``, ``table``, ...), ``_()`` of a literal, or a variable assigned only such things or a
  Rich container (``Table``, ``Panel``...) whose cells the rules above check: never a value
  (``json.dumps(...)``, ``str(...)``, a parameter) that Rich would render as markup;
- the other ways out exist once, in ``soc_cli.output``, and nowhere else: a prompt
  (``typer.confirm``/``prompt``, ``click.*``, Rich's ``Confirm``/``Prompt``; use ``output.confirm``),
  Markdown (``output.safe_markdown``), a progress display (``Progress``/``TextColumn``/``track``;
  use ``output.progress`` / ``output.text_column``), a traceback (``traceback.print_*``; use
  ``output.print_traceback``), CSV (``csv.writer``/``DictWriter``; use ``output.emit_csv``) and a
  log handler (``logging.basicConfig``/``StreamHandler``; ``output.install_log_handler``).
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
#: calls whose arguments are printed: each must be literal or built safe (``_printable``)
PRINT_CALLS = {"print", "log"}
#: calls that return something safe to print (a Text, a markup-escaped str, a renderable of safe cells)
PRINTABLE_BUILDERS = {"safe", "esc", "_t", "table", "emit_table", "_alert_table", "details_renderable", "safe_markdown"}
#: Rich containers: what they hold is checked where it is added (cells, titles)
CONTAINERS = {"Table", "Panel", "Group", "Columns", "Tree"}
#: ways out that exist once, in soc_cli.output: dotted call or imported name -> what to use instead
ONLY_IN_OUTPUT = {
    "typer.confirm": "output.confirm", "typer.prompt": "output.confirm", "typer.echo": "output.line",
    "typer.secho": "output.line", "click.confirm": "output.confirm", "click.prompt": "output.confirm",
    "click.echo": "output.line", "click.secho": "output.line", "Confirm.ask": "output.confirm",
    "Prompt.ask": "output.confirm", "IntPrompt.ask": "output.confirm",
    "Markdown": "output.safe_markdown", "Progress": "output.progress", "TextColumn": "output.text_column",
    "track": "output.progress",
    "traceback.print_exc": "output.print_traceback", "traceback.print_exception": "output.print_traceback",
    "traceback.print_tb": "output.print_traceback", "traceback.print_stack": "output.print_traceback",
    "traceback.print_last": "output.print_traceback",
    "csv.writer": "output.emit_csv", "csv.DictWriter": "output.emit_csv",
    "logging.basicConfig": "output.install_log_handler", "logging.StreamHandler": "output.install_log_handler",
}
#: the modules whose names, imported bare (``from csv import writer``), are the same ways out
_MODULES = {"typer", "click", "traceback", "csv", "logging", "rich.progress", "rich.markdown", "rich.prompt"}


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


def _assignments(tree: ast.AST) -> dict[int, dict[str, list[ast.expr | None]]]:
    """For each function (by node id) and the module (id of the tree): name -> the values assigned
    to it there (``None`` for a loop target, a parameter, ``with ... as``: values not known)."""
    scopes: dict[int, dict[str, list[ast.expr | None]]] = {}
    for scope in [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))]:
        names: dict[str, list[ast.expr | None]] = {}
        if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef):
            for arg in [*scope.args.args, *scope.args.kwonlyargs, *scope.args.posonlyargs]:
                names.setdefault(arg.arg, []).append(None)
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        names.setdefault(target.id, []).append(node.value)
            elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and isinstance(node.target, ast.Name):
                names.setdefault(node.target.id, []).append(node.value)
            elif isinstance(node, ast.For | ast.comprehension | ast.withitem):
                bound = node.optional_vars if isinstance(node, ast.withitem) else node.target
                for name in ast.walk(bound) if bound is not None else ():
                    if isinstance(name, ast.Name):
                        names.setdefault(name.id, []).append(None)
        scopes[id(scope)] = names
    return scopes


def _unprintable(node: ast.expr, scope: dict[str, list[ast.expr | None]], depth: int = 0) -> str | None:
    """Why ``node``, given to ``print``, could put data on the terminal as it is (None when it cannot)."""
    if isinstance(node, ast.Constant):
        return None
    if isinstance(node, ast.JoinedStr | ast.BinOp | ast.IfExp):
        inner = _unsafe_string(node)
        if inner is not None or isinstance(node, ast.JoinedStr):
            return inner
        if isinstance(node, ast.IfExp):
            return _unprintable(node.body, scope, depth) or _unprintable(node.orelse, scope, depth)
        return f"{ast.unparse(node)!r} is printed as it is: build it with safe()"
    if isinstance(node, ast.Call):
        name = _name(node.func)
        if name in PRINTABLE_BUILDERS or name in CONTAINERS:
            return None
        if name in {"_", "N_"} and node.args and isinstance(node.args[0], ast.Constant):
            return None  # a message of ours, translated
        if _dotted(node.func) == "Text.assemble":
            for part in node.args:
                piece = part.elts[0] if isinstance(part, ast.Tuple) and part.elts else part
                if isinstance(piece, ast.Call) and _name(piece.func) == "visible":
                    continue
                why = _unprintable(piece, scope, depth)
                if why:
                    return why
            return None
        return f"{ast.unparse(node)[:60]!r} is printed as it is: build it with safe()"
    if isinstance(node, ast.Name):
        values = scope.get(node.id)
        if not values or depth > 3:
            return f"{node.id!r} is printed, but not built by safe() or a Rich container here"
        for value in values:
            why = (f"{node.id!r} is printed, but not built by safe() or a Rich container here" if value is None
                   else _unprintable(value, scope, depth + 1))
            if why:
                return why
        return None
    return f"{ast.unparse(node)[:60]!r} is printed as it is: build it with safe()"


def _enclosing_scopes(tree: ast.AST) -> dict[int, int]:
    """Call node id -> id of the innermost function holding it (the tree's id at module level)."""
    owner: dict[int, int] = {}

    def visit(node: ast.AST, scope: int) -> None:
        for child in ast.iter_child_nodes(node):
            inner = id(child) if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else scope
            if isinstance(child, ast.Call):
                owner[id(child)] = scope
            visit(child, inner)
    visit(tree, id(tree))
    return owner


def problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    scopes, owner = _assignments(tree), _enclosing_scopes(tree)
    if path.name not in OUTPUT_MODULES:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in _MODULES:
                for alias in node.names:
                    dotted = f"{node.module.rsplit('.', 1)[-1]}.{alias.name}"
                    use = ONLY_IN_OUTPUT.get(dotted) or ONLY_IN_OUTPUT.get(alias.name)
                    if use:
                        found.append(f"{path.relative_to(SOC_CLI.parent)}:{node.lineno}: {alias.name} imported from "
                                     f"{node.module}: use {use}")
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
            use = ONLY_IN_OUTPUT.get(dotted) or ONLY_IN_OUTPUT.get(name if isinstance(node.func, ast.Name) else "")
            if use is None and isinstance(node.func, ast.Attribute):  # rich.progress.Progress(...), a.b.Markdown(...)
                use = ONLY_IN_OUTPUT.get(name) if name in {"Markdown", "Progress", "TextColumn"} else None
            if use:
                found.append(f"{where}: {dotted}() writes around the sanitiser: use {use}")
        if name in PRINT_CALLS and dotted != "print":  # the builtin is refused above
            scope = scopes.get(owner.get(id(node), id(tree)), {})
            markup_off = any(k.arg == "markup" and isinstance(k.value, ast.Constant) and k.value.value is False
                             for k in node.keywords)
            for arg in node.args:
                if isinstance(arg, ast.JoinedStr | ast.BinOp) and not markup_off:
                    continue  # a markup template: checked as one below
                if markup_off and isinstance(arg, ast.JoinedStr):  # shown as it is: esc() would not help
                    values = [v for v in arg.values if isinstance(v, ast.FormattedValue) and not _safe_value(v)]
                    why = f"f-string with markup=False interpolates {ast.unparse(values[0].value)!r}: use safe()" \
                        if values else None
                else:
                    why = _unprintable(arg, {**scopes[id(tree)], **scope})
                if why:
                    found.append(f"{where}: {name}(): {why}")
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
                   "    sys.stderr.isatty() and sys.stdout.flush()\n"
                   "def g(console, entity, doc, path):\n"
                   "    import csv, json, logging, traceback, typer\n"
                   "    from csv import DictWriter\n"
                   "    from rich.markdown import Markdown\n"
                   "    from rich.progress import BarColumn, Progress, TextColumn\n"
                   "    typer.confirm(f'{entity}?')\n"
                   "    click.prompt(entity)\n"
                   "    console.print(Markdown(doc))\n"
                   "    Progress(TextColumn('[bold]{task.description}'), BarColumn())\n"
                   "    traceback.print_exc()\n"
                   "    csv.writer(path)\n"
                   "    logging.basicConfig()\n"
                   "    console.print(json.dumps(doc))\n"
                   "    console.print(entity)\n"
                   "    console.print(f'  {entity}', markup=False)\n"
                   "    shown = safe(entity)\n"
                   "    grid = Table()\n"
                   "    console.print(shown, grid, _('done'), safe_markdown(doc), Text.assemble((visible(entity), 'red')))\n"
                   "    for line in doc:\n"
                   "        console.print(line)\n")
    try:
        found = problems(bad)
    finally:
        bad.unlink()
    assert [f.split(": ", 1)[1] for f in found] == [
        "DictWriter imported from csv: use output.emit_csv",
        "Markdown imported from rich.markdown: use output.safe_markdown",
        "Progress imported from rich.progress: use output.progress",
        "TextColumn imported from rich.progress: use output.text_column",
        "sys.stdout used directly (write through soc_cli.output)",
        "print() bypasses soc_cli.output (use output.line / emit_json / console)",
        "sys.stdout.write() bypasses soc_cli.output (use output.line / emit_json / console)",
        "print(): f-string interpolates 'user' without esc()",
        "print(): string built with + or %",
        "Text(user) keeps control characters: use safe()",
        "add_row(): cell 'user' is rendered as markup: use safe()",
        "add_row(): cells 'str(v)' are rendered as markup: use safe()",
        "typer.confirm() writes around the sanitiser: use output.confirm",
        "click.prompt() writes around the sanitiser: use output.confirm",
        "print(): 'Markdown(doc)' is printed as it is: build it with safe()",
        "Progress() writes around the sanitiser: use output.progress",
        "traceback.print_exc() writes around the sanitiser: use output.print_traceback",
        "csv.writer() writes around the sanitiser: use output.emit_csv",
        "logging.basicConfig() writes around the sanitiser: use output.install_log_handler",
        "print(): 'json.dumps(doc)' is printed as it is: build it with safe()",
        "print(): 'entity' is printed, but not built by safe() or a Rich container here",
        "print(): f-string with markup=False interpolates 'entity': use safe()",
        "Markdown() writes around the sanitiser: use output.safe_markdown",
        "TextColumn() writes around the sanitiser: use output.text_column",
        "print(): 'line' is printed, but not built by safe() or a Rich container here",
    ]


@pytest.mark.parametrize("path", sorted(SOC_CLI.rglob("*.py")), ids=lambda p: str(p.relative_to(SOC_CLI)))
def test_soc_cli_writes_data_only_through_the_sanitiser(path: Path) -> None:
    assert problems(path) == []
