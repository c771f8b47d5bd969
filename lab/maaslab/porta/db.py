"""Storage of the porta emulator: one SQLite file, a small document store plus usage counters.

Porta keeps relational tables; the emulator only needs ids, a kind and a JSON document per object,
so every object lives in one table `obj` (ids are unique across kinds, always integers, like
porta's). Usage counters (backend listener) live in `usage`, keyed by application, metric id,
period and period start. One connection guarded by an RLock: the lab is small and the lock makes
every request atomic, which keeps the emulator simple and thread-safe.
"""
from __future__ import annotations

import calendar
import datetime
import json
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable

PERIODS = ("minute", "hour", "day", "week", "month", "year", "eternity")

# Fields looked up by value, each with an index on (kind, field), as porta's db/schema.rb indexes them:
# cinstances (applications and, in the same table, service contracts) on user_account_id, plan_id,
# (type, service_id, ...), user_key and application_id; users on account_id, email and username;
# metrics on (owner_type, owner_id) and parent_id; backend_api_configs on service_id and
# (backend_api_id, service_id); proxy_configs on proxy_id; system_name in porta's unique
# (scope, system_name) indexes. Without them every lookup decoded a whole kind: at 1,000 accounts an
# application create scanned every contract twice and every application once.
INDEXED = ("account_id", "service_id", "plan_id", "user_key", "application_id", "username", "email",
           "owner_id", "parent_id", "backend_id", "system_name")
_FIELD = re.compile(r"[a-z_][a-z0-9_]*")

SCHEMA = """
CREATE TABLE IF NOT EXISTS obj (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS obj_kind ON obj(kind);
%s
CREATE TABLE IF NOT EXISTS usage (app_id INTEGER, metric_id INTEGER, period TEXT, start TEXT, value INTEGER,
                                  PRIMARY KEY (app_id, metric_id, period, start));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
""" % "\n".join(
    [f"CREATE INDEX IF NOT EXISTS obj_{field} ON obj(kind, json_extract(data, '$.{field}'));" for field in INDEXED]
    # an account's contract/application on one service (porta: cinstances by user_account_id, then service);
    # without it SQLite, which has no statistics, may pick the service_id index and read every subscriber
    + ["CREATE INDEX IF NOT EXISTS obj_account_service ON obj(kind, json_extract(data, '$.account_id'), "
       "json_extract(data, '$.service_id'));"])


class Store:
    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.RLock()
        self.decoded = 0  # documents read and decoded so far: what a request costs (tests/lab/test_porta_scale.py)
        self.conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)

    # -- transactions: every request runs inside one (see Porta handler) --
    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def close(self) -> None:
        with self.lock:
            self.rollback()
            self.conn.close()

    # -- meta --
    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # -- objects --
    def insert(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        cur = self.conn.execute("INSERT INTO obj(kind, data) VALUES (?, ?)", (kind, json.dumps(data)))
        return dict(data, id=cur.lastrowid)

    def get(self, kind: str, oid: Any) -> dict[str, Any] | None:
        try:
            oid = int(oid)
        except (TypeError, ValueError):
            return None
        row = self.conn.execute("SELECT id, data FROM obj WHERE kind=? AND id=?", (kind, oid)).fetchone()
        if row is None:
            return None
        self.decoded += 1
        return dict(json.loads(row[1]), id=row[0])

    def save(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in data.items() if k != "id"}
        self.conn.execute("UPDATE obj SET data=? WHERE kind=? AND id=?", (json.dumps(body), kind, data["id"]))
        return data

    def delete(self, kind: str, oid: int) -> None:
        self.conn.execute("DELETE FROM obj WHERE kind=? AND id=?", (kind, int(oid)))
        if kind == "application":
            self.conn.execute("DELETE FROM usage WHERE app_id=?", (int(oid),))

    @staticmethod
    def _where(kind: str, match: dict[str, Any]) -> tuple[str, list[Any], dict[str, Any]]:
        """SQL conditions for the scalar `match` values (json_extract with a literal path, so that the
        (kind, field) indexes apply), and the rest (lists, dicts) for Python to compare."""
        sql, args, rest = ["kind=?"], [kind], {}
        for k, v in match.items():
            if k == "id":  # the row id, not a field of the document
                sql.append("id IS ?")
                args.append(v)
            elif not _FIELD.fullmatch(k) or isinstance(v, (list, dict)):
                rest[k] = v
            elif v is None:  # a missing field or a JSON null, as d.get(k) == None
                sql.append(f"json_extract(data, '$.{k}') IS NULL")
            else:  # JSON true/false come out of json_extract as 1/0, as Python's True == 1
                sql.append(f"json_extract(data, '$.{k}') = ?")
                args.append(v)
        return " AND ".join(sql), args, rest

    def _rows(self, rows: Iterable[tuple[int, str]], rest: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for oid, raw in rows:
            self.decoded += 1
            d = json.loads(raw)
            if all(d.get(k) == v for k, v in rest.items()):
                d["id"] = oid
                out.append(d)
        return out

    def all(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        """Objects of a kind (ordered by id) whose fields equal every `match` value."""
        where, args, rest = self._where(kind, match)
        return self._rows(self.conn.execute(f"SELECT id, data FROM obj WHERE {where} ORDER BY id", args), rest)

    def first(self, kind: str, **match: Any) -> dict[str, Any] | None:
        where, args, rest = self._where(kind, match)
        if rest:
            found = self._rows(self.conn.execute(f"SELECT id, data FROM obj WHERE {where} ORDER BY id", args), rest)
            return found[0] if found else None
        row = self.conn.execute(f"SELECT id, data FROM obj WHERE {where} ORDER BY id LIMIT 1", args).fetchall()
        return next(iter(self._rows(row, {})), None)

    def count(self, kind: str, **match: Any) -> int:
        where, args, rest = self._where(kind, match)
        if rest:
            return len(self.all(kind, **match))
        return self.conn.execute(f"SELECT COUNT(*) FROM obj WHERE {where}", args).fetchone()[0]

    def page(self, kind: str, offset: int, limit: int, **match: Any) -> tuple[list[dict[str, Any]], int]:
        """One page of ``all(kind, **match)`` read from the database (LIMIT/OFFSET), and the total."""
        where, args, rest = self._where(kind, match)
        if rest:
            found = self.all(kind, **match)
            return found[offset:offset + limit], len(found)
        total = self.conn.execute(f"SELECT COUNT(*) FROM obj WHERE {where}", args).fetchone()[0]
        rows = self.conn.execute(f"SELECT id, data FROM obj WHERE {where} ORDER BY id LIMIT ? OFFSET ?",
                                 [*args, limit, offset])
        return self._rows(rows, {}), total

    def _where_in(self, kind: str, column: str, values: list[Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i in range(0, len(values), 500):  # SQLite's bound-parameter limit
            chunk = values[i:i + 500]
            out += self._rows(self.conn.execute(
                f"SELECT id, data FROM obj WHERE kind=? AND {column} IN ({','.join('?' * len(chunk))})",
                [kind, *chunk]), {})
        return sorted(out, key=lambda d: d["id"])

    def all_in_ids(self, kind: str, ids: Iterable[Any]) -> list[dict[str, Any]]:
        """Objects of a kind by row id (ordered by id); unknown ids are left out."""
        return self._where_in(kind, "id", [i for i in dict.fromkeys(ids) if isinstance(i, int)])

    def all_in(self, kind: str, field: str, values: Iterable[Any]) -> list[dict[str, Any]]:
        """Objects of a kind whose `field` is one of `values` (ordered by id): what porta's eager loading
        (includes) reads for one page of a list."""
        if not _FIELD.fullmatch(field):
            raise ValueError(field)
        return self._where_in(kind, f"json_extract(data, '$.{field}')", list(dict.fromkeys(values)))

    def bulk_insert(self, kind: str, items: Iterable[dict[str, Any]]) -> None:
        self.conn.executemany("INSERT INTO obj(kind, data) VALUES (?, ?)", ((kind, json.dumps(d)) for d in items))

    # -- usage counters --
    def usage(self, app_id: int, metric_id: int, period: str, start: str) -> int:
        row = self.conn.execute("SELECT value FROM usage WHERE app_id=? AND metric_id=? AND period=? AND start=?",
                                (app_id, metric_id, period, start)).fetchone()
        return row[0] if row else 0

    def hourly_usage(self, app_ids: list[int], metric_id: int, since: str, until: str) -> dict[str, int]:
        """Hourly counts summed over `app_ids`, by hour start (ISO, UTC) within [since, until]."""
        if not app_ids:
            return {}
        marks = ",".join("?" * len(app_ids))
        rows = self.conn.execute(
            f"SELECT start, SUM(value) FROM usage WHERE period='hour' AND metric_id=? AND app_id IN ({marks}) "
            "AND start >= ? AND start <= ? GROUP BY start", (metric_id, *app_ids, since, until)).fetchall()
        return {start: int(total) for start, total in rows}

    def add_usage(self, app_id: int, metric_id: int, period: str, start: str, delta: int) -> None:
        self.conn.execute(
            "INSERT INTO usage(app_id, metric_id, period, start, value) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(app_id, metric_id, period, start) DO UPDATE SET value = value + excluded.value",
            (app_id, metric_id, period, start, delta))


def iso(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def period_bounds(period: str, now: datetime.datetime) -> tuple[datetime.datetime, datetime.datetime]:
    """[start, end) of the calendar period containing `now` (UTC), as 3scale backend counts them."""
    if period == "minute":
        start = now.replace(second=0, microsecond=0)
        return start, start + datetime.timedelta(minutes=1)
    if period == "hour":
        start = now.replace(minute=0, second=0, microsecond=0)
        return start, start + datetime.timedelta(hours=1)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + datetime.timedelta(days=1)
    if period == "week":  # weeks start on Monday
        start = day - datetime.timedelta(days=day.weekday())
        return start, start + datetime.timedelta(days=7)
    if period == "month":
        start = day.replace(day=1)
        ndays = calendar.monthrange(start.year, start.month)[1]
        return start, start + datetime.timedelta(days=ndays)
    if period == "year":
        start = day.replace(month=1, day=1)
        return start, start.replace(year=start.year + 1)
    # eternity
    utc = datetime.timezone.utc
    return datetime.datetime(1970, 1, 1, tzinfo=utc), datetime.datetime(9999, 1, 1, tzinfo=utc)
