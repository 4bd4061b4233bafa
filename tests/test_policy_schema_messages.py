"""Policy schema errors in an admin's words: where (the rule's name), what is wrong, what to write."""

from __future__ import annotations

from pathlib import Path

from policy.admin.lint import lint

HEAD = "apiVersion: ztsoc/v1\nkind: Policy\nname: t\nrules:\n"


def _messages(tmp_path: Path, body: str) -> list[tuple[int, str]]:
    (tmp_path / "p.yaml").write_text(HEAD + body)
    return [(i.line, i.message) for i in lint([tmp_path]) if i.severity == "error"]


def test_a_time_that_is_not_hh_mm_says_how_to_write_it(tmp_path: Path) -> None:
    msgs = _messages(tmp_path, "  - name: office\n    effect: allow\n    destination: {services: [s]}\n"
                               "    when: {time: {from: 9am, to: '17:00'}}\n")
    assert msgs == [(8, "rule 'office': when.time.from: '9am': use HH:MM, 24-hour (e.g. 09:00)")]


def test_misspelt_keys_and_values_get_a_suggestion(tmp_path: Path) -> None:
    msgs = [m for _, m in _messages(tmp_path, "  - name: a\n    efect: allow\n    destination: {services: [s], methods: [GETT]}\n")]
    text = " | ".join(msgs)
    assert "unknown key 'efect' (did you mean 'effect'?)" in text
    assert "'GETT' is not allowed here (did you mean 'GET'?): use one of GET" in text
    assert "rule 'a': missing 'effect'" in text
    assert "Additional properties" not in text and "is not one of" not in text  # no JSON Schema jargon


def test_shapes_and_pairs_in_words(tmp_path: Path) -> None:
    msgs = [m for _, m in _messages(tmp_path, "  - name: Bad\n    effect: allow\n    destination: {services: s}\n"
                                              "    when: {time: {from: '09:00'}, claims: {}}\n")]
    assert "rule 'Bad': destination.services: 's' should be a list" in msgs
    assert "rule 'Bad': when.time: 'from' needs 'to' too" in msgs
    assert "rule 'Bad': when.claims: is empty: give at least one of groups, roles, scopes" in msgs
    assert any(m.startswith("rule 'Bad': name: 'Bad': use lower-case letters") for m in msgs)
    assert all("\n" not in m for m in msgs)
