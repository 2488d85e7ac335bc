"""The SQLite catalog of sessions (stdlib sqlite3, in data_dir()): listing, search, athletes, tags, models.

The session folders are the source of truth; the catalog is an index over them that `rebuild()` can
recreate from the folders at any time. Every change is one SQLite transaction (atomic).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from pathlib import Path
from typing import Iterator

from mvcapture.paths import data_dir
from mvcapture.session.layout import SESSION_FILE, sessions_root

log = logging.getLogger(__name__)

CATALOG_FILE = "catalog.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS athletes (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    created TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    n_views INTEGER NOT NULL,
    duration_s REAL,
    athlete_id INTEGER REFERENCES athletes(id)
);
CREATE TABLE IF NOT EXISTS tags (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (session_id, tag)
);
CREATE TABLE IF NOT EXISTS session_models (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    stage TEXT NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    used_at TEXT NOT NULL,
    PRIMARY KEY (session_id, stage, model, version)
);
"""


class Catalog:
    """Index of all sessions. Rows come back as dicts: id, name, path, created, kind, state, n_views,
    duration_s, athlete, tags (list)."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path is not None else data_dir() / CATALOG_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=10)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        try:
            with conn:  # one transaction: committed on success, rolled back on error
                yield conn
        finally:
            conn.close()

    @staticmethod
    def _athlete_id(conn: sqlite3.Connection, name: str | None) -> int | None:
        if not name:
            return None
        conn.execute("INSERT OR IGNORE INTO athletes(name) VALUES (?)", (name,))
        return conn.execute("SELECT id FROM athletes WHERE name = ?", (name,)).fetchone()["id"]

    def upsert(self, meta: dict, path: Path | str) -> None:
        """Add or update one session from its session.json content (`Session.meta`) and folder."""
        views = meta.get("views", [])
        durations = [v.get("probe", {}).get("duration_s") for v in views]
        durations = [d for d in durations if d is not None]
        with self._connect() as conn:
            athlete_id = self._athlete_id(conn, meta.get("athlete"))
            conn.execute(
                "INSERT INTO sessions(id, name, path, created, kind, state, n_views, duration_s, athlete_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET name=excluded.name, "
                "path=excluded.path, kind=excluded.kind, state=excluded.state, n_views=excluded.n_views, "
                "duration_s=excluded.duration_s, athlete_id=excluded.athlete_id",
                (meta["id"], meta.get("name") or meta["id"], str(Path(path).resolve()), meta.get("created", ""),
                 meta.get("kind", "unknown"), meta.get("state", "unknown"), len(views),
                 max(durations) if durations else None, athlete_id))
            conn.execute("DELETE FROM tags WHERE session_id = ?", (meta["id"],))
            conn.executemany("INSERT OR IGNORE INTO tags(session_id, tag) VALUES (?, ?)",
                             [(meta["id"], t) for t in meta.get("tags", [])])
            for m in meta.get("models", []):
                conn.execute("INSERT OR IGNORE INTO session_models VALUES (?, ?, ?, ?, ?)",
                             (meta["id"], m["stage"], m["model"], m["version"], m.get("used_at", "")))

    def _rows(self, where: str = "", params: tuple = ()) -> list[dict]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT s.*, a.name AS athlete, (SELECT group_concat(tag, char(31)) FROM tags t "
                "WHERE t.session_id = s.id) AS tag_list FROM sessions s LEFT JOIN athletes a ON a.id = s.athlete_id "
                f"{where} ORDER BY s.created DESC, s.id DESC", params).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d.pop("athlete_id", None)
            tags = d.pop("tag_list")
            d["tags"] = sorted(tags.split("\x1f")) if tags else []
            out.append(d)
        return out

    def list(self, athlete: str | None = None, tag: str | None = None) -> list[dict]:
        """All sessions, newest first, optionally only one athlete's or those with a tag."""
        clauses, params = [], []
        if athlete:
            clauses.append("a.name = ?")
            params.append(athlete)
        if tag:
            clauses.append("EXISTS (SELECT 1 FROM tags t WHERE t.session_id = s.id AND t.tag = ?)")
            params.append(tag)
        return self._rows(("WHERE " + " AND ".join(clauses)) if clauses else "", tuple(params))

    def search(self, text: str) -> list[dict]:
        """Sessions whose id, name, athlete or a tag contains `text` (case-insensitive)."""
        like = f"%{text}%"
        return self._rows(
            "WHERE s.id LIKE ? OR s.name LIKE ? OR a.name LIKE ? OR EXISTS (SELECT 1 FROM tags t "
            "WHERE t.session_id = s.id AND t.tag LIKE ?)", (like, like, like, like))

    def get(self, key: str) -> dict | None:
        """The session with this id, or else the newest one with this exact name."""
        rows = self._rows("WHERE s.id = ?", (key,)) or self._rows("WHERE s.name = ?", (key,))
        return rows[0] if rows else None

    def tag(self, session_id: str, *tags: str) -> None:
        """Add tags to a session in the catalog (Session.tag also stores them in the session folder)."""
        with self._connect() as conn:
            conn.executemany("INSERT OR IGNORE INTO tags(session_id, tag) VALUES (?, ?)",
                             [(session_id, t) for t in tags])

    def untag(self, session_id: str, *tags: str) -> None:
        with self._connect() as conn:
            conn.executemany("DELETE FROM tags WHERE session_id = ? AND tag = ?", [(session_id, t) for t in tags])

    def athletes(self) -> list[str]:
        with self._connect() as conn:
            return [r["name"] for r in conn.execute("SELECT name FROM athletes ORDER BY name")]

    def models(self, session_id: str) -> list[dict]:
        """Model versions used on a session: dicts with stage, model, version, used_at."""
        with self._connect() as conn:
            rows = conn.execute("SELECT stage, model, version, used_at FROM session_models WHERE session_id = ? "
                                "ORDER BY used_at", (session_id,)).fetchall()
        return [dict(r) for r in rows]

    def sessions_using(self, model: str, version: str | None = None) -> list[str]:
        """Ids of sessions processed with a model (any version, or one)."""
        sql = "SELECT DISTINCT session_id FROM session_models WHERE model = ?"
        params: tuple = (model,)
        if version is not None:
            sql += " AND version = ?"
            params += (version,)
        with self._connect() as conn:
            return [r["session_id"] for r in conn.execute(sql, params)]

    def remove(self, session_id: str) -> None:
        """Forget a session (its folder is left alone)."""
        with self._connect() as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def rebuild(self, root: Path | str | None = None) -> int:
        """Re-index every session folder under `root` (default data_dir()/sessions); returns how many."""
        root = Path(root) if root is not None else sessions_root()
        n = 0
        for meta_path in sorted(root.glob(f"*/{SESSION_FILE}")):
            try:
                meta = json.loads(meta_path.read_text())
                self.upsert(meta, meta_path.parent)
                n += 1
            except (OSError, ValueError, KeyError) as exc:
                log.warning("not indexing %s: %s", meta_path, exc)
        return n
