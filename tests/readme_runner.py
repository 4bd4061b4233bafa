"""Read the shell blocks of a Markdown document and compare a command's output with what it shows.

The README is executable (issue 16): ``tests/test_readme.py`` runs every command of its shell
blocks, in order, against a fresh demo store. This module holds the parts that do not run
anything: the block parser and the output matcher. Hand-written because what is read is our
own convention (fences, ``$`` prompts, ``<!-- readme-test: ... -->`` comments), not a format a
library knows.

Conventions the README follows:

- A fenced block of language ``sh`` is a script: each line is a command, a trailing
  ``  # comment`` is prose. A block of any language whose lines start with ``$ `` is a
  session: each ``$`` line is a command and the lines after it are the output it shows.
  Any other block (``nginx``, ``yaml``, ``text``, plain output) is not run.
- A comment on the line(s) right before a fence steers the test:
  ``<!-- readme-test: skip (reason) -->`` leaves the whole block out;
  ``<!-- readme-test: not-run "soc triage" "soc dashboard serve" (reason) -->`` leaves out the
  commands that start with those words (interactive screens, servers, endless followers).
  Both are reported by the test, with the reason.
- A command documented to fail says so in its comment: ``# ... exits 1``.
- Shown output is a template: ids, numbers, times and paths differ between runs, so they are
  dropped from both sides; every other word of a shown line must appear, in order, within a
  few consecutive lines of the real output (a shown word may be part of a real one: a table
  cell wraps at another width). ``...`` elides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DIRECTIVE = re.compile(r"<!--\s*readme-test:\s*(skip|not-run)\b(.*?)-->", re.S)
FENCE = re.compile(r"^```\s*([\w+-]*)\s*$")
EXIT = re.compile(r"\bexits? (\d+)\b")
#: box drawing of rich's tables and panels, and the ellipsis of a cut cell
BOX = re.compile(r"[\u2500-\u257f\u2026]+")
#: a word that differs between runs: numbers, counts, durations, dates, ids and their prefixes,
#: absolute paths and store URLs
VOLATILE = re.compile(
    r"^[(\[]?[-+~]?[\d.,:/%x]*\d[\d.,:/%x]*[a-zA-Z%]{0,3}[)\],:;.]*$"   # 41, 5.8, (5.8, 25/25, 36.9, 10.2us, 0.4s)
    r"|[0-9a-f]{8,}"                                                  # alert-3abbde..., event ids, decision ids
    r"|\d{4}-\d\d-\d\d"                                               # timestamps
    r"|^[\w+]*:?/{1,}(?:tmp|root|home|[A-Za-z]:)"                     # paths and URLs of one machine
    r"|^(?:sqlite|https?)://"
)
WINDOW = 3


@dataclass
class Command:
    line: str                 # what is typed, without the prompt or the trailing comment
    where: int                # README line number (1-based)
    shown: list[str] = field(default_factory=list)
    exit_code: int = 0


@dataclass
class Block:
    where: int                # line number of the opening fence
    lang: str
    commands: list[Command]
    skip: str | None = None           # reason the whole block is left out
    not_run: tuple[str, ...] = ()     # command prefixes left out
    not_run_reason: str = ""


def split_comment(line: str) -> tuple[str, str]:
    """The command and its trailing comment (two spaces then #, outside quotes)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] == " ") and line[:i].endswith("  "):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def _command(text: str, where: int) -> Command:
    line, comment = split_comment(text)
    m = EXIT.search(comment)
    return Command(line=line.strip(), where=where, exit_code=int(m.group(1)) if m else 0)


def parse(markdown: str) -> list[Block]:
    """Every fenced block, with its commands (empty for a block that is not a shell block)."""
    lines = markdown.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        body = lines[start + 1:j]
        block = Block(where=start + 1, lang=lang, commands=_commands(lang, body, start + 2))
        _steer(block, lines[:start])
        blocks.append(block)
        i = j + 1
    return blocks


def _commands(lang: str, body: list[str], first: int) -> list[Command]:
    if any(ln.startswith("$ ") for ln in body):
        out: list[Command] = []
        for n, ln in enumerate(body):
            if ln.startswith("$ "):
                out.append(_command(ln[2:], first + n))
            elif out:
                out[-1].shown.append(ln)
        return out
    if lang != "sh":
        return []
    return [_command(ln, first + n) for n, ln in enumerate(body) if ln.strip() and not ln.lstrip().startswith("#")]


def _steer(block: Block, before: list[str]) -> None:
    """Apply the readme-test comment that ends right before the fence (blank lines allowed)."""
    k = len(before)
    while k and not before[k - 1].strip():
        k -= 1
    if not k or not before[k - 1].rstrip().endswith("-->"):
        return
    start = k - 1
    while start and "<!--" not in before[start]:
        start -= 1
    m = DIRECTIVE.search("\n".join(before[start:k]))
    if not m:
        return
    kind, rest = m.group(1), m.group(2).strip()
    if kind == "skip":
        block.skip = rest.strip("() ") or "no reason given"
        return
    block.not_run = tuple(re.findall(r'"([^"]+)"', rest))
    block.not_run_reason = re.sub(r'"[^"]+"', "", rest).strip().strip("() ")


def words(line: str) -> list[str]:
    """The words of a line that should not differ between runs."""
    return [w for w in BOX.sub(" ", line).split() if not VOLATILE.search(w)]


def mismatches(shown: list[str], actual: str) -> list[str]:
    """Shown lines with no match in the actual output (empty: the output has the shape shown)."""
    real = [words(ln) for ln in actual.splitlines()]
    missing: list[str] = []
    for line in shown:
        head = line.split("...")[0]
        want = words(head)
        if not want:
            continue
        if not any(_subsequence(want, [w for row in real[i:i + WINDOW] for w in row]) for i in range(len(real))):
            missing.append(line.strip())
    return missing


def _subsequence(want: list[str], have: list[str]) -> bool:
    it = iter(have)
    return all(any(w in h for h in it) for w in want)
