"""A trainee's run through the real ``soc`` process: drawn entities, hints per question, the scoreboard."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from playbooks.exercise import load_exercises


def _soc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "soc_cli.main", *args], capture_output=True, text=True,
                          timeout=600, env=env)


def test_score_reaches_the_main_scoreboard_with_the_exercise_store_exported(tmp_path: Path) -> None:
    main = f"sqlite:///{tmp_path / 'main.db'}"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "SOC_STORE": main, "SOC_TRAINEE": "lan.pham",
           "COLUMNS": "200"}
    start = _soc(env, "playbook", "start", "ssh-brute-force")
    assert start.returncode == 0, start.stderr
    played = load_exercises()["ssh-brute-force"].instance()
    assert played.params["host"] in start.stdout  # the story names the drawn jump host
    assert "203.0.113.77" not in start.stdout and "amina.okafor" not in start.stdout  # not the demo's
    exported = re.search(r"export SOC_STORE=(\S+)", start.stdout)
    assert exported
    env["SOC_STORE"] = exported.group(1)  # as the trainee is told to
    assert _soc(env, "playbook", "answer", "1", str(played.questions[0].answer["value"])).returncode == 0
    wrong = _soc(env, "playbook", "answer", "2", "root")
    assert wrong.returncode == 1
    hint = _soc(env, "playbook", "hint", "2")
    assert hint.returncode == 0 and "off question 2" in hint.stdout
    assert _soc(env, "playbook", "answer", "2", str(played.questions[1].answer["value"])).returncode == 0
    score = _soc(env, "playbook", "score")
    assert score.returncode == 0, score.stderr
    cost = played.hints_for(2)[0].cost
    total = played.questions[0].points + played.questions[1].points - cost
    assert f"{total}/{played.max_points}" in score.stdout
    board = _soc({**env, "SOC_STORE": main}, "playbook", "scoreboard", "--json")
    rows = json.loads(board.stdout)
    assert [(r["trainee"], r["exercise"], r["score"]) for r in rows] == [("lan.pham", "ssh-brute-force", total)]
