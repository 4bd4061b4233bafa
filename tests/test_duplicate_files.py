"""A byte-identical copy of a stored file is reported as a copy of it, not as "resumed, 0 events"."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from collectors.pipeline import ingest
from collectors.syslog import SyslogReader

LINES = "".join(f"Nov 20 08:00:{i:02d} web01 sshd[{100 + i}]: Failed password for root from 192.0.2.7 port "
                f"{40000 + i} ssh2\n" for i in range(12))


def test_copy_is_named_as_a_duplicate(sqlite_store, tmp_path: Path) -> None:
    first = tmp_path / "auth.log"
    first.write_text(LINES)
    copy = tmp_path / "evidence" / "auth.log.copy"
    copy.parent.mkdir()
    shutil.copy(first, copy)
    a = ingest(sqlite_store, SyslogReader(), [first])
    assert a.written == 12 and a.files[0].duplicate_of is None
    b = ingest(sqlite_store, SyslogReader(), [copy])
    assert b.written == 0 and b.files[0].duplicate_of == str(first)
    # the same file again is not "a copy of itself", and a grown file is resumed, not a copy
    assert ingest(sqlite_store, SyslogReader(), [first]).files[0].duplicate_of is None
    with first.open("a") as fh:
        fh.write("Nov 20 08:01:00 web01 sshd[300]: Accepted password for root from 192.0.2.7 port 41000 ssh2\n")
    grown = ingest(sqlite_store, SyslogReader(), [first])
    assert grown.written == 1 and grown.files[0].duplicate_of is None and grown.files[0].resumed


def test_cli_says_which_file_it_copies(tmp_path: Path) -> None:
    first = tmp_path / "auth.log"
    first.write_text(LINES)
    copy = tmp_path / "auth-copy.log"
    shutil.copy(first, copy)
    url = f"sqlite:///{tmp_path / 'soc.db'}"
    soc = [sys.executable, "-m", "soc_cli.main", "--store", url, "ingest", "syslog"]
    assert subprocess.run([*soc, str(first)], capture_output=True, timeout=300).returncode == 0
    out = subprocess.run([*soc, str(copy)], capture_output=True, text=True, timeout=300,
                         env={"COLUMNS": "300", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert f"a copy of {first}, already stored" in out.stdout.replace("\n", "")
    data = json.loads(subprocess.run([*soc, str(copy), "--json"], capture_output=True, text=True,
                                     timeout=300).stdout)
    assert data["files"][0]["duplicate_of"] == str(first)
