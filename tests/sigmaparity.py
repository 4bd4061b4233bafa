"""Rule files through libyaml and through pySigma's own loader, compared.

The harness of ``tests/test_sigma_yaml_parity.py`` (shipped rules and crafted YAML), and the
check of every SigmaHQ YAML file under ``../shared/data/sigma`` (all folders: rules, emerging
threats, threat hunting, placeholders, deprecated, unsupported, regression data)::

    .venv/bin/python -m tests.sigmaparity [--data ../shared/data]

which prints the counts and every difference, and exits 1 if there is any.
``SigmaCollection.from_yaml`` parses with ``yaml.safe_load_all`` (pure Python); the loader
parses with libyaml (:func:`detections.sigma.loader.yaml_documents`). For one file,
:func:`differences` lists what is not the same: the documents (compared with their types,
so ``True`` is not ``1`` and a ``date`` is not a string), the error when the file is refused,
and what :func:`~detections.sigma.loader.load_file` makes of it (each rule's ``to_dict()``
and each problem). One difference is by design: a document naming a key twice is refused
(pySigma keeps the last value); such documents are listed apart as ``refused:``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import yaml

from detections.sigma.loader import load_file, yaml_documents
from eventstore.yamlfile import DuplicateKeyError


def pysigma_documents(text: str) -> list[Any]:
    """What ``SigmaCollection.from_yaml`` hands to ``from_dicts``."""
    return list(yaml.safe_load_all(text))


def typed(value: Any) -> Any:
    """The value with every scalar tagged by its type, so equality is strict."""
    if isinstance(value, dict):
        return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list | tuple | set):
        return (type(value).__name__, [typed(v) for v in value])
    return (type(value).__name__, value)


def _parse(parse: Any, text: str) -> list[Any] | tuple[str, str, str]:
    try:
        return list(parse(text))
    except yaml.YAMLError as exc:
        return ("error", type(exc).__name__, str(exc))


def _loaded(path: Path, documents: Any) -> tuple[list[Any], list[Any]]:
    rules, problems = load_file(path, documents=documents)
    return [typed(r.to_dict()) for r in rules], [p.as_dict() for p in problems]


def refused(path: Path) -> list[str]:
    """The documents of this file the loader refuses for naming a key twice (pySigma keeps the last)."""
    docs = _parse(yaml_documents, path.read_text(encoding="utf-8"))
    return [f"{path}: {exc.problem_mark.line + 1}:{exc.problem_mark.column + 1}: {exc.problem}"
            for exc in docs if isinstance(exc, DuplicateKeyError) and exc.problem_mark is not None] \
        if isinstance(docs, list) else []


def differences(path: Path) -> list[str]:
    """What differs between the two loaders for this file (empty: identical).

    A document the loader refuses for a duplicate key is the one difference by design: pySigma's
    document at that place is taken as refused too, and everything else must still be the same.
    """
    text = path.read_text(encoding="utf-8")
    out = []
    new, old = _parse(yaml_documents, text), _parse(pysigma_documents, text)
    if isinstance(new, list) and isinstance(old, list) and len(new) == len(old):
        old = [n if isinstance(n, DuplicateKeyError) else o for n, o in zip(new, old, strict=True)]
    if typed(new) != typed(old):
        out.append(f"{path}: documents differ: libyaml {str(typed(new))[:300]} / pySigma {str(typed(old))[:300]}")
    theirs = old if isinstance(old, list) else pysigma_documents
    (rules_new, probs_new) = _loaded(path, None)
    (rules_old, probs_old) = _loaded(path, (lambda _text: theirs) if isinstance(theirs, list) else theirs)
    if rules_new != rules_old:
        out.append(f"{path}: rules differ")
    if probs_new != probs_old:
        out.append(f"{path}: problems differ: {probs_new} / {probs_old}")
    return out


DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def main() -> int:
    ap = argparse.ArgumentParser(description="SigmaHQ's YAML through libyaml and through pySigma's loader")
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args()
    files = sorted(p for p in (args.data / "sigma").rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
    t0 = time.process_time()
    found: list[str] = []
    duplicates: list[str] = []
    rules = problems = 0
    for path in files:
        found += differences(path)
        duplicates += refused(path)
        loaded, probs = load_file(path)
        rules, problems = rules + len(loaded), problems + len(probs)
    print(f"{len(files)} YAML files under {args.data / 'sigma'}: {rules} rules, {problems} load problems; "
          f"{len(files) - len({d.split(': ')[0] for d in found})} files identical through both loaders, "
          f"{len(found)} differences, {len(duplicates)} documents refused for a duplicate key "
          f"({time.process_time() - t0:.1f} CPU s)")
    for line in found:
        print(line)
    for line in duplicates:
        print("refused:", line)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
