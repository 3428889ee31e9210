"""The LocalStack plugin's CloudWatch metrics store: connections skip the fsync, nothing else changes."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "localstack" / "plugin"))
from driftstack_localstack.cloudwatch_metrics_db import NoSyncSqlite  # noqa: E402


def test_connections_commit_without_fsync_or_journal_file(tmp_path):
    db = tmp_path / "metrics.db"
    with NoSyncSqlite().connect(db) as conn:
        assert conn.execute("PRAGMA synchronous").fetchone() == (0,)  # OFF
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("memory",)
        conn.execute("CREATE TABLE t (v REAL)")
        conn.executemany("INSERT INTO t VALUES (?)", [(1.5,), (2.5,)])
    read_only = NoSyncSqlite().connect(f"file:{db}?mode=ro", uri=True)  # as the helper reads
    assert read_only.execute("SELECT sum(v) FROM t").fetchone() == (4.0,)


def test_the_rest_of_the_module_is_sqlite3():
    import sqlite3

    assert NoSyncSqlite().Row is sqlite3.Row
    assert NoSyncSqlite().OperationalError is sqlite3.OperationalError
