"""``soc`` registers a command's module when that command is asked for (``soc_cli.main.COMMANDS``).

The registry must name every top-level command each module makes, or the command would be
unreachable (or reachable only after ``soc --help`` loaded everything); and running one command
must not import the others' modules, which is what the registry is for.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import typer

from soc_cli.main import COMMAND_MODULES, COMMANDS


def test_the_registry_names_what_each_module_registers() -> None:
    for module in COMMAND_MODULES:
        sub = typer.Typer()
        importlib.import_module(module).register(sub)
        made = {c.name for c in sub.registered_commands} | {g.name for g in sub.registered_groups}
        assert made == {name for name, modules in COMMANDS.items() if modules[0] == module}, module


def test_one_command_imports_its_own_module_only() -> None:
    code = ("import sys; from soc_cli.main import main; sys.argv = ['soc', 'scan', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(__import__('json').dumps(sorted(m for m in sys.modules if m.startswith('soc_cli.commands.'))),"
            " file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stderr.strip().splitlines()[-1]) == ["soc_cli.commands.scan"]


def test_help_lists_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "soc_cli.main", "--help"], capture_output=True, text=True,
                         check=True, env={"COLUMNS": "200", "SOC_LANG": "en", "PATH": "/usr/bin:/bin"})
    listed = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("│ ") and len(line.split()) > 2
              and not line.split()[1].startswith("-")]
    assert set(COMMANDS) <= set(listed)
