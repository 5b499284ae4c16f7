"""The dev server's state in one SQLite file (`gateway dev conductor --data FILE`).

Write-through: after every request and every sweep, the records that changed since the last
write (workflows with their tasks, definitions, the queues) are captured on the event loop and
written in one transaction by one worker thread, so the loop never waits on the disk and
commits keep their order. A response is sent only after the write that holds its changes has
committed, so what a client was told survives a `kill -9` (WAL, synchronous=NORMAL: durable
against the process dying, not against the machine losing power).

Finding what changed must not cost a serialisation of every workflow per request: each
workflow has cheap marks (statuses, counts and update times of it and its tasks); it is
serialised and compared byte for byte only when its marks moved, when it was updated in the
millisecond of the last capture or since (a change in the same millisecond need not move a
mark), or when its turn comes: each capture compares one in PASS_SLICES of the unfinished
workflows regardless, so a change that moves no mark is written within PASS_SLICES captures
(the sweeper alone captures every 0.1 s: 5 s), without one long pause over all of them.
Definitions are replaced, never edited, by the metadata: they are compared by identity, and
their JSON is cached.

Records are JSON, never pickles: a task's place in the definition tree (`TaskRecord.node`) is
stored as its path and rebuilt from the stored definition. The file is held with SQLite's
exclusive locking mode, so a second server on the same file is refused, not let in to
overwrite it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from gateway.devserver.models import TaskDef, WorkflowDef, WorkflowTask
from gateway.devserver.state import TaskRecord, WorkflowRecord
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.devserver.engine import Engine
    from gateway.devserver.tasks.tree import Node, Tree

SCHEMA_VERSION = 1
PASS_SLICES = 50
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS task_defs (name TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS workflow_defs (
    name TEXT NOT NULL, version INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS workflows (workflow_id TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS archived (workflow_id TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS engine (key TEXT PRIMARY KEY, body BLOB NOT NULL);
"""
_UPSERT_TASK_DEF = (
    "INSERT INTO task_defs VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET body = excluded.body"
)
_UPSERT_WORKFLOW_DEF = (
    "INSERT INTO workflow_defs VALUES (?, ?, ?) "
    "ON CONFLICT (name, version) DO UPDATE SET body = excluded.body"
)
_UPSERT_WORKFLOW = (
    "INSERT INTO workflows VALUES (?, ?) "
    "ON CONFLICT (workflow_id) DO UPDATE SET body = excluded.body"
)
_UPSERT_ARCHIVED = (
    "INSERT INTO archived VALUES (?, ?) "
    "ON CONFLICT (workflow_id) DO UPDATE SET body = excluded.body"
)
_UPSERT_ENGINE = (
    "INSERT INTO engine VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET body = excluded.body"
)
_TASK_OBJECTS = frozenset({"node", "workflow_task", "task_def"})
_WORKFLOW_OBJECTS = frozenset({"definition", "tasks", "tree"})
_TASK_FIELDS = [f.name for f in fields(TaskRecord) if f.name not in _TASK_OBJECTS]
_WORKFLOW_FIELDS = [f.name for f in fields(WorkflowRecord) if f.name not in _WORKFLOW_OBJECTS]


@dataclass
class Batch:
    """The rows one write replaces or deletes."""

    task_defs: list[tuple[str, bytes]] = field(default_factory=list)
    workflow_defs: list[tuple[str, int, bytes]] = field(default_factory=list)
    workflows: list[tuple[str, bytes]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    archived: list[tuple[str, bytes]] = field(default_factory=list)
    engine: bytes | None = None

    def __bool__(self) -> bool:
        return bool(
            self.task_defs
            or self.workflow_defs
            or self.workflows
            or self.removed
            or self.archived
            or self.engine is not None
        )


class Persistence:
    """One dev server's SQLite file: `open` (lock, schema, load), `flush`, `close`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="devserver-persistence")
        self._last_write: asyncio.Future[None] | None = None
        self._joined: asyncio.Future[None] | None = None  # the capture the next flush joins
        # What the file holds, to find what changed: definitions by identity (the metadata
        # replaces a definition, never edits it), workflows by their stored bytes (running)
        # or a cheap fingerprint (ended ones change only through retry/rerun/restart).
        self._defs: dict[tuple[Any, ...], TaskDef | WorkflowDef] = {}
        self._workflows: dict[str, tuple[Any, bytes | None]] = {}
        self._engine: bytes | None = None
        self._archived: set[str] = set()
        self._captured_at = 0  # engine time (ms) of the last capture
        self._slice = 0  # the slice of unfinished workflows this capture compares in full
        self._wires = WireCache()

    # --- open and load -------------------------------------------------------------------

    def open(self, engine: Engine) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, timeout=0, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error(f"cannot open it ({exc})", "check the path") from None
        try:
            self._lock(db)
            self._check_schema(db)
            self._db = db
            try:
                self._load(engine)
            except (KeyError, TypeError, ValueError) as exc:  # JSON and pydantic errors too
                raise self._error(
                    f"cannot read its records ({type(exc).__name__}: {exc})",
                    "it is damaged or from an incompatible gateway: give another file",
                ) from exc
        except BaseException:
            db.close()
            self._db = None
            raise

    def _lock(self, db: sqlite3.Connection) -> None:
        try:
            db.execute("PRAGMA locking_mode = EXCLUSIVE")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("BEGIN EXCLUSIVE")  # held until the connection closes
            db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                raise self._error(
                    "it is in use by another program (another dev server?)",
                    "stop it, or give this server another file",
                ) from None
            raise self._error(f"cannot use it ({exc})", "give another file") from None
        except sqlite3.DatabaseError as exc:
            problem = f"it is not a dev server data file ({exc})"
            raise self._error(problem, "give another file") from None

    def _check_schema(self, db: sqlite3.Connection) -> None:
        with db:
            db.executescript(_SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                return
        version = int(row[0])
        if version > SCHEMA_VERSION:
            raise self._error(
                f"it was written by a newer gateway (schema version {version}; this one reads "
                f"up to {SCHEMA_VERSION})",
                "upgrade gateway, or give this one another file",
            )

    def _error(self, problem: str, fix: str) -> ConfigError:
        return ConfigError(f"--data {self.path}: {problem}; {fix}")

    def _load(self, engine: Engine) -> None:
        assert self._db is not None
        db, store = self._db, engine.store
        task_defs = [TaskDef.model_validate(orjson.loads(b)) for (b,) in db.execute(
            "SELECT body FROM task_defs ORDER BY rowid")]  # fmt: skip
        workflow_defs = [WorkflowDef.model_validate(orjson.loads(b)) for (b,) in db.execute(
            "SELECT body FROM workflow_defs ORDER BY rowid")]  # fmt: skip
        engine.metadata.restore(task_defs, workflow_defs)
        self._defs = dict(_definitions(engine))
        for workflow_id, body in db.execute(
            "SELECT workflow_id, body FROM workflows ORDER BY rowid"
        ):
            wf = load_workflow(orjson.loads(body))
            store.workflows[workflow_id] = wf
            store.tasks.update((t.task_id, t) for t in wf.tasks)
            self._workflows[workflow_id] = (marks(wf)[0], body)
        for workflow_id, body in db.execute(
            "SELECT workflow_id, body FROM archived ORDER BY rowid"
        ):
            engine.archived[workflow_id] = load_workflow(orjson.loads(body))
            self._archived.add(workflow_id)
        row = db.execute("SELECT body FROM engine WHERE key = 'queues'").fetchone()
        if row is not None:
            self._engine = row[0]
            _restore_queues(engine, orjson.loads(row[0]))

    # --- write-through -------------------------------------------------------------------

    def capture(self, engine: Engine) -> Batch:
        """What changed since the last capture (on the event loop: a consistent state)."""
        batch = Batch()
        self._capture_definitions(engine, batch)
        self._capture_workflows(engine, batch)
        queues = orjson.dumps(_dump_queues(engine))
        if queues != self._engine:
            batch.engine = self._engine = queues
        return batch

    def _capture_definitions(self, engine: Engine, batch: Batch) -> None:
        defs = dict(_definitions(engine))
        for key, definition in defs.items():
            if self._defs.get(key) is not definition:
                body = orjson.dumps(definition.wire())
                if key[0] == "task":
                    batch.task_defs.append((key[1], body))
                else:
                    batch.workflow_defs.append((key[1], key[2], body))
        self._defs = defs

    def _capture_workflows(self, engine: Engine, batch: Batch) -> None:
        self._slice = turn = (self._slice + 1) % PASS_SLICES
        since, self._captured_at = self._captured_at - 1, engine.now()
        workflows = engine.store.workflows
        for workflow_id, wf in workflows.items():
            known = self._workflows.get(workflow_id)
            if known is not None and wf.terminal and known[0][:3] == ended_marks(wf):
                continue  # an ended workflow changes only by retry, rerun, restart: all touch it
            mark, latest = marks(wf)
            in_turn = hash(workflow_id) % PASS_SLICES == turn
            if known is not None and known[0] == mark and latest < since and not in_turn:
                continue
            body = orjson.dumps(dump_workflow(wf, self._wires))
            if known is None or known[1] != body:
                batch.workflows.append((workflow_id, body))
            self._workflows[workflow_id] = (mark, body)
        batch.removed = [i for i in self._workflows if i not in workflows]
        for workflow_id in batch.removed:
            del self._workflows[workflow_id]
        for workflow_id, wf in engine.archived.items():  # kept as they were archived
            if workflow_id not in self._archived:
                batch.archived.append((workflow_id, orjson.dumps(dump_workflow(wf, self._wires))))
                self._archived.add(workflow_id)

    async def flush(self, engine: Engine) -> None:
        """Write what changed; return once it, and every earlier write, is committed.
        Requests that end in the same turn of the event loop share one capture and one
        transaction (a group commit)."""
        if self._joined is None:
            loop = asyncio.get_running_loop()
            self._joined = loop.create_future()
            loop.call_soon(self._capture_and_write, engine, self._joined)
        await asyncio.shield(self._joined)

    def _capture_and_write(self, engine: Engine, done: asyncio.Future[None]) -> None:
        self._joined = None
        try:
            batch = self.capture(engine)
        except Exception as exc:
            done.set_exception(exc)
            return
        if batch:
            loop = asyncio.get_running_loop()
            self._last_write = loop.run_in_executor(self._writer, self._write, batch)
        if self._last_write is None:
            done.set_result(None)
            return
        self._last_write.add_done_callback(lambda write: self._written(write, done))

    def _written(self, write: asyncio.Future[None], done: asyncio.Future[None]) -> None:
        failure = write.exception()
        if failure is not None:
            # What the file holds is unknown now: the next capture writes everything again.
            self._defs, self._workflows, self._engine, self._archived = {}, {}, None, set()
        if not done.done():
            if failure is not None:
                done.set_exception(failure)
            else:
                done.set_result(None)

    def _write(self, batch: Batch) -> None:
        assert self._db is not None
        with self._db as db:  # one transaction; upserts keep each row's place (rowid)
            db.executemany(_UPSERT_TASK_DEF, batch.task_defs)
            db.executemany(_UPSERT_WORKFLOW_DEF, batch.workflow_defs)
            db.executemany(_UPSERT_WORKFLOW, batch.workflows)
            removed = [(workflow_id,) for workflow_id in batch.removed]
            db.executemany("DELETE FROM workflows WHERE workflow_id = ?", removed)
            db.executemany(_UPSERT_ARCHIVED, batch.archived)
            if batch.engine is not None:
                db.execute(_UPSERT_ENGINE, ("queues", batch.engine))

    async def close(self, engine: Engine) -> None:
        try:
            if self._db is not None:
                await self.flush(engine)
        finally:
            self._writer.shutdown(wait=True)
            if self._db is not None:
                self._db.close()
                self._db = None


# --- records as JSON ---------------------------------------------------------------------


def _definitions(engine: Engine) -> Iterator[tuple[tuple[Any, ...], TaskDef | WorkflowDef]]:
    for task_def in engine.metadata.task_defs():
        yield ("task", task_def.name), task_def
    for definition in engine.metadata.workflow_defs():
        yield ("workflow", definition.name, definition.version), definition


class WireCache:
    """Definitions' JSON by identity: they are replaced, never edited, once in use."""

    LIMIT = 10_000

    def __init__(self) -> None:
        self._cache: dict[int, tuple[object, orjson.Fragment]] = {}

    def wire(self, model: TaskDef | WorkflowDef | WorkflowTask) -> orjson.Fragment:
        found = self._cache.get(id(model))
        if found is not None and found[0] is model:
            return found[1]
        if len(self._cache) >= self.LIMIT:
            self._cache.clear()
        fragment = orjson.Fragment(orjson.dumps(model.wire()))
        self._cache[id(model)] = (model, fragment)  # the model kept alive: its id stays its own
        return fragment


def marks(wf: WorkflowRecord) -> tuple[tuple[Any, ...], int]:
    """What most changes move, and the latest update time of the workflow and its tasks."""
    tasks = tuple(
        (t.status, t.update_time, t.poll_count, t.retry_count, len(t.output_data), t.available_at)
        for t in wf.tasks
    )
    latest = max([wf.update_time, *(t.update_time for t in wf.tasks)])
    mark = (*ended_marks(wf), wf.end_time, len(wf.variables), len(wf.output), tasks)
    return mark, latest


def ended_marks(wf: WorkflowRecord) -> tuple[str, int, int]:
    return wf.status, wf.update_time, len(wf.tasks)


def dump_workflow(wf: WorkflowRecord, wires: WireCache) -> dict[str, Any]:
    data = {name: getattr(wf, name) for name in _WORKFLOW_FIELDS}
    data["definition"] = wires.wire(wf.definition)
    data["tasks"] = [dump_task(t, wires) for t in wf.tasks]
    return data


def dump_task(task: TaskRecord, wires: WireCache) -> dict[str, Any]:
    data = {name: getattr(task, name) for name in _TASK_FIELDS}
    data["node"] = task.node.path
    data["workflow_task"] = wires.wire(task.workflow_task)
    data["task_def"] = wires.wire(task.task_def)
    return data


def load_workflow(data: dict[str, Any]) -> WorkflowRecord:
    from gateway.devserver.tasks import HANDLERS
    from gateway.devserver.tasks.tree import Tree

    known = {k: v for k, v in data.items() if k in _WORKFLOW_FIELDS}
    definition = WorkflowDef.model_validate(data["definition"])
    wf = WorkflowRecord(definition=definition, **known)
    wf.tree = Tree(definition, HANDLERS)
    nodes = {node.path: node for node in wf.tree.nodes.values()}
    wf.tasks = [_load_task(t, wf.tree, nodes) for t in data["tasks"]]
    return wf


def _load_task(data: dict[str, Any], tree: Tree, nodes: dict[str, Node]) -> TaskRecord:
    workflow_task = WorkflowTask.model_validate(data["workflow_task"])
    node = _node(data["node"], workflow_task, tree, nodes)
    if node.task.wire() == data["workflow_task"]:
        workflow_task = node.task  # the definition's own object, as when it was scheduled
    known = {k: v for k, v in data.items() if k in _TASK_FIELDS}
    task_def = TaskDef.model_validate(data["task_def"])
    return TaskRecord(node=node, workflow_task=workflow_task, task_def=task_def, **known)


def _node(path: str, wt: WorkflowTask, tree: Tree, nodes: dict[str, Node]) -> Node:
    """The task's place in the rebuilt tree; a dynamic fork's task gets a new run-time node
    under its fork, as when it was scheduled."""
    if path in nodes:
        return nodes[path]
    parent = nodes.get(path.removesuffix(".dynamic"))
    if path.endswith(".dynamic") and parent is not None:
        return tree.branch_node(parent, wt)
    found = tree.nodes.get(wt.task_reference_name)
    if found is None:
        raise ValueError(f"task {wt.task_reference_name!r} at {path} is not in its definition")
    return found


def _dump_queues(engine: Engine) -> dict[str, Any]:
    store = engine.store
    return {
        "queues": {name: list(queue) for name, queue in store.queues.items() if queue},
        "running": list(store.running),
        "timed": sorted(store.timed),
        "unsettled": sorted(store.unsettled),
        "idempotency": [[n, k, i] for (n, k), i in engine.idempotency.items()],
    }


def _restore_queues(engine: Engine, data: dict[str, Any]) -> None:
    store = engine.store
    for name, ids in data.get("queues", {}).items():
        store.queues[name] = {i: store.tasks[i] for i in ids if i in store.tasks}
    store.running.update((i, store.tasks[i]) for i in data.get("running", []) if i in store.tasks)
    store.timed.update(data.get("timed", []))
    store.unsettled.update(data.get("unsettled", []))
    for name, key, workflow_id in data.get("idempotency", []):
        engine.idempotency[(name, key)] = workflow_id
