"""The embedded store (reqprof.store): batches written and read back,
retention by age and by size, several processes writing one file, and
every kind of file it must refuse with one line naming the path."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from reqprof.store import APPLICATION_ID, KeptRequest, RouteWindow, Store, StoreError


def window(minute: int, route: str = "/items", count: int = 3) -> RouteWindow:
    return RouteWindow(window=minute * 60, method="GET", route=route, count=count, errors=1,
                       wall_s=0.3, cpu_s=0.1, max_ms=150.0, latency=b"\x05\x01",
                       profile_json=json.dumps({"route": route}).encode())


def kept(started: float, ms: float, route: str = "/items") -> KeptRequest:
    return KeptRequest(started=started, method="GET", route=route, path=route + "/1",
                       status=200, duration_ms=ms, kept_because="slow",
                       report_json=b'{"report": ' + str(ms).encode() + b"}")


def test_batches_are_read_back(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    store.write([window(100), window(101, "/other")], [kept(6000.5, 250.0), kept(6001, 900.0)])
    rows = list(store.route_windows(since=0, with_profiles=True))
    assert sorted(r[1] for r in rows) == ["/items", "/other"]
    assert all(json.loads(r[8])["route"] == r[1] for r in rows)
    assert [r for r in store.route_windows(since=101 * 60)][0][1] == "/other"
    requests = store.requests(min_ms=200)
    assert [r["duration_ms"] for r in requests] == [900.0, 250.0]      # slowest first
    assert requests[0]["host"] and requests[0]["pid"] == os.getpid()
    assert store.request_report(requests[0]["id"]) == b'{"report": 900.0}'
    assert store.request_report(10**9) is None
    reader = Store(str(tmp_path / "s.db"), readonly=True)
    assert len(reader.requests()) == 2
    with pytest.raises(StoreError, match="readonly"):
        reader.write([window(1)], [])


def test_retention_by_age_and_by_size(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    now = 1_000_000.0
    store.write([window(int(now // 60) - 60 * 24 * 10)], [kept(now - 86400 * 10, 100.0)])
    store.write([window(int(now // 60))], [kept(now, 100.0)])
    assert store.prune(max_bytes=1 << 30, days=7, now=now) == 2
    assert len(store.requests()) == 1
    # Size: 2,000 reports of ~10 KB, then a budget of 4 MB.
    blob = os.urandom(10_000).hex().encode()
    for i in range(20):
        store.write([], [KeptRequest(now + i * 100 + j, "GET", "/r", "/r", 200, 1.0, "slow", blob)
                         for j in range(100)])
    assert store.size_bytes() > 20 << 20
    store.prune(max_bytes=4 << 20, days=7, now=now + 3000)
    assert store.size_bytes() <= 4 << 20
    left = store.requests(limit=10_000)
    assert left and min(r["started"] for r in left) > now + 1000     # the oldest went first


def test_two_processes_write_one_file(tmp_path):
    path = tmp_path / "shared.db"
    Store(str(path))
    script = (
        "import sys; from reqprof.store import Store, KeptRequest\n"
        "s = Store(sys.argv[1])\n"
        "import sqlite3, time\n"
        "done = 0\n"
        "while done < 200:\n"
        "    try:\n"
        "        s.write([], [KeptRequest(time.time(), 'GET', '/w', '/w', 200, 1.0, 'slow', b'{}')])\n"
        "        done += 1\n"
        "    except sqlite3.OperationalError:\n"
        "        time.sleep(0.001)\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path)]) for _ in range(3)]
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    rows = Store(str(path), readonly=True).requests(limit=10_000)
    assert len(rows) == 600
    assert len({r["pid"] for r in rows}) == 3


@pytest.mark.parametrize("case", ["foreign", "newer", "corrupt", "no-directory",
                                  "read-only-directory", "not-sqlite", "missing-readonly"])
def test_unusable_files_are_refused_in_one_line(tmp_path, case, request):
    path = tmp_path / "store.db"
    readonly = False
    if case == "foreign":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE users (id INTEGER)")
        conn.close()
    elif case == "newer":
        Store(str(path)).close()
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA user_version = 99")
        conn.close()
    elif case == "corrupt":
        s = Store(str(path))
        s.write([window(i) for i in range(500)], [])
        s.close()
        data = bytearray(path.read_bytes())
        data[5000:9000] = os.urandom(4000)
        path.write_bytes(bytes(data))
    elif case == "no-directory":
        path = tmp_path / "missing" / "store.db"
    elif case == "read-only-directory":
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        if os.access(ro, os.W_OK):      # root writes anywhere: a read-only mount, then
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)],
                                  capture_output=True, text=True)
            assert done.returncode == 0, f"needs a read-only tmpfs (as root): {done.stderr}"
            request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(ro)]))
        path = ro / "store.db"
    elif case == "not-sqlite":
        path.write_text("hello, this is not a database\n" * 100)
    elif case == "missing-readonly":
        readonly = True
    with pytest.raises(StoreError) as err:
        Store(str(path), readonly=readonly).write([window(1)], [])
    message = str(err.value)
    assert str(path) in message and "\n" not in message and len(message) < 300, message


def test_a_new_store_is_marked_as_reqprof(tmp_path):
    path = tmp_path / "s.db"
    Store(str(path)).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
