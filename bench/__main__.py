"""``python -m bench [NAME ...] [-- ARGS]``: run every ``bench/*.py`` module's ``main`` in turn.

Modules are found on disk, not listed here, so a new benchmark is one new file. ARGS after
``--`` go to each module (e.g. ``python -m bench ingest -- --events 200000``). The exit code
is 1 if any benchmark missed its target or failed.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent


def modules() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_"))


def run(name: str, argv: Sequence[str]) -> int:
    # Loaded by path with bench/ on sys.path, exactly as `python bench/NAME.py` runs it.
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    if spec is None or spec.loader is None:
        print(f"bench: cannot load {name}", file=sys.stderr)
        return 1
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    main = getattr(module, "main", None)
    if main is None:
        print(f"bench: {name}.py has no main(): a helper module, skipped")
        return 0
    if inspect.signature(main).parameters:
        return int(main(list(argv)) or 0)
    # A main() that reads sys.argv itself (argparse with no argv parameter).
    saved = sys.argv
    sys.argv = [str(HERE / f"{name}.py"), *argv]
    try:
        return int(main() or 0)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, extra = args[:cut], args[cut + 1:]
    known = modules()
    unknown = [a for a in args if a not in known]
    if unknown:
        print(f"bench: no benchmark named {', '.join(unknown)} (have: {', '.join(known)})", file=sys.stderr)
        return 2
    failed: list[str] = []
    for name in args or known:
        print(f"== bench/{name}.py", flush=True)
        try:
            if run(name, extra) != 0:
                failed.append(name)
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(flush=True)
    if failed:
        print(f"bench: missed or failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
