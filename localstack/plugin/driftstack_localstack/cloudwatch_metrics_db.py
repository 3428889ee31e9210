"""CloudWatch metric datapoints are stored without an fsync per PutMetricData.

LocalStack's CloudWatch provider keeps datapoints in SQLite (``cloudwatch_database_helper``): each
PutMetricData opens a connection and commits under one process-wide lock, and SQLite's defaults
(``synchronous=FULL``, a journal file) fsync and create and delete a file on every commit. Every
prediction through API Gateway causes three (the EMF line, ``AWS/Lambda`` Invocations, ``AWS/SQS``
NumberOfMessagesSent of its request log): on this machine's ext4 disk 1.3-2.7 ms per commit when
idle, far more while Spark writes, all serialised by that lock; 0.15 ms without. The database lives
no longer than the LocalStack process (no persistence), so a commit need not survive a power cut:
``synchronous=OFF`` and ``journal_mode=MEMORY`` on its connections; reads and writes are unchanged.
DRIFTSTACK_CLOUDWATCH_NO_FSYNC=0 leaves it out.
"""

from __future__ import annotations

import sqlite3


class NoSyncSqlite:
    """The sqlite3 module as the helper uses it, except that its connections skip the fsync."""

    def __getattr__(self, name: str):
        return getattr(sqlite3, name)

    @staticmethod
    def connect(*args, **kwargs) -> sqlite3.Connection:
        connection = sqlite3.connect(*args, **kwargs)
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA journal_mode=MEMORY")
        return connection


def install() -> None:
    from localstack.services.cloudwatch import cloudwatch_database_helper

    cloudwatch_database_helper.sqlite3 = NoSyncSqlite()
