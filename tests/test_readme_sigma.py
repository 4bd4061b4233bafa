"""The README's sigma-cli example works on the province's rules (issue 19.7).

``sigma convert -t lucene -p ztsoc detections/rules/`` stopped on the correlation rules, which
the Lucene backend cannot express; the README now pipes ``soc rules export --base`` into it.
This runs the README's own line, as a shell would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from detections.sigma.loader import load_rules, rule_documents

ROOT = Path(__file__).resolve().parents[1]


def _readme_sigma_lines() -> list[str]:
    lines = [ln.split("  #")[0].strip() for ln in (ROOT / "README.md").read_text().splitlines()]
    return [ln for ln in lines if "sigma convert" in ln and ln.startswith(("soc ", "sigma "))]


def test_the_readme_sigma_cli_line_converts_every_base_rule() -> None:
    [line] = _readme_sigma_lines()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    queries = [q for q in proc.stdout.split("\n\n") if q.strip()]
    base = [r for r in load_rules().rules if not r.is_correlation]
    assert len(queries) == len(base) > 5
    assert any(q.startswith("event.dataset:network.flow") for q in queries)


def test_export_keeps_every_document_and_base_drops_only_correlations() -> None:
    everything = rule_documents()
    base = rule_documents(base_only=True)
    rules = load_rules().rules
    assert len(everything) == len(rules)
    assert len(base) == sum(1 for r in rules if not r.is_correlation)
    assert all("correlation" not in d for d in base)
    assert {d["name"] for d in base} <= {d["name"] for d in everything}


def test_export_of_a_hostile_rule_file_is_plain_ascii(tmp_path: Path) -> None:
    import yaml

    mine = tmp_path / "mine"
    mine.mkdir()
    title = "evil \x1b[31mred\x1b[0m \u202egnp.exe"
    (mine / "evil.yml").write_text(yaml.safe_dump({
        "title": title, "id": "6a0b2c1d-0000-4000-8000-0000000000bb", "logsource": {"product": "linux"},
        "detection": {"sel": {"user.name": "root"}, "condition": "sel"}}, allow_unicode=True), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "soc_cli.main", "rules", "export", "--no-shipped", "--rules", str(mine)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.isascii() and "\x1b" not in proc.stdout
    [doc] = list(yaml.safe_load_all(proc.stdout))
    assert doc["title"] == title
