"""``soc tail``: growing files, half-written lines, rotation (rename and copytruncate), restart."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from collectors.pipeline import ingest
from collectors.syslog import SyslogReader
from collectors.tail import Tailer
from eventstore import Store, open_store


def lines(start: int, n: int) -> str:
    return "".join(f"Nov 25 11:{(i // 60) % 60:02d}:{i % 60:02d} h sshd[{i}]: Invalid user u{i} from 10.9.{i // 250}.{i % 250}\n"
                   for i in range(start, start + n))


def users(store: Store) -> list[str]:
    return sorted(d["user.name"] for d in store.scan("*", fields=["user.name"]))


def expected(n: int) -> list[str]:
    return sorted(f"u{i}" for i in range(n))


def test_growing_file_with_half_written_lines(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    tailer = Tailer(store, SyslogReader(tz="UTC"), [log], retire_after=0)
    assert tailer.poll() == 0  # not there yet
    text = lines(0, 30)
    with log.open("w") as fh:
        for cut in (0, 100, 101, 900, 1500, len(text)):
            fh.write(text[fh.tell():cut] if cut else "")
            fh.flush()
            tailer.poll()
    tailer.close()
    assert tailer.report.events == 30 and tailer.report.duplicates == 0
    assert users(store) == expected(30)


def test_rename_rotation_reads_the_old_file_to_its_end(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text(lines(0, 10))
    tailer = Tailer(store, SyslogReader(tz="UTC"), [log], retire_after=0.2)
    tailer.poll()
    log.rename(tmp_path / "auth.log.1")
    with (tmp_path / "auth.log.1").open("a") as fh:  # the daemon still writes to its open file
        fh.write(lines(10, 5))
    log.write_text(lines(15, 5))
    tailer.poll()
    with (tmp_path / "auth.log.1").open("a") as fh:
        fh.write(lines(20, 2).rstrip("\n"))  # last words, without a newline
    tailer.poll()  # sees it grow: still retired, the half line held back
    assert tailer.watches[0].retired
    time.sleep(0.25)
    tailer.poll()  # quiet for retire_after: read to the end, closed
    assert not tailer.watches[0].retired  # the rotated file was let go
    with log.open("a") as fh:
        fh.write(lines(22, 3))
    tailer.poll()
    tailer.close()
    assert users(store) == expected(25) and tailer.report.duplicates == 0


def test_copytruncate_and_deleted_file(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text(lines(0, 12))
    tailer = Tailer(store, SyslogReader(tz="UTC"), [log], retire_after=0)
    tailer.poll()
    shutil.copy(log, tmp_path / "auth.log.1")
    with log.open("r+") as fh:
        fh.truncate(0)
    tailer.poll()
    with log.open("a") as fh:
        fh.write(lines(12, 4))
    tailer.poll()
    log.unlink()
    tailer.poll()
    log.write_text(lines(16, 2))
    tailer.poll()
    tailer.close()
    assert users(store) == expected(18)
    # the copy is the same content as what was read: ingesting it stores nothing new
    assert ingest(store, SyslogReader(tz="UTC"), [tmp_path / "auth.log.1"]).written == 0


def test_restart_resumes_and_from_end(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text(lines(0, 5))
    first = Tailer(store, SyslogReader(tz="UTC"), [log])
    first.poll()
    first.close()
    with log.open("a") as fh:
        fh.write(lines(5, 5))
    second = Tailer(store, SyslogReader(tz="UTC"), [log])
    second.poll()
    second.close()
    assert second.report.events == 5 and users(store) == expected(10)
    other = tmp_path / "other.log"
    other.write_text(lines(100, 7))
    late = Tailer(store, SyslogReader(tz="UTC"), [other], from_end=True)
    late.poll()
    with other.open("a") as fh:
        fh.write(lines(107, 1))
    late.poll()
    late.close()
    assert late.report.events == 1 and "u107" in users(store) and "u100" not in users(store)


def test_soc_tail_command(tmp_path: Path) -> None:
    db, log = tmp_path / "soc.db", tmp_path / "auth.log"
    log.write_text(lines(0, 3))
    proc = subprocess.Popen([sys.executable, "-m", "soc_cli.main", "--store", f"sqlite:///{db}", "tail", str(log),
                             "--tz", "UTC", "--interval", "0.05"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=Path(__file__).parents[1])
    try:
        time.sleep(1.0)
        with log.open("a") as fh:
            fh.write(lines(3, 4))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if db.exists():
                s = open_store(f"sqlite:///{db}")
                try:
                    if s.count() >= 7:
                        break
                finally:
                    s.close()
            time.sleep(0.1)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    printed = out.splitlines()
    assert len(printed) == 7 and "ssh_invalid_user" in printed[0] and "user.name=u0" in printed[0]
    assert "7 events read, 7 new" in err
