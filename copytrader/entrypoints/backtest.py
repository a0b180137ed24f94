"""`copytrader backtest`: replay files of leader activity through the same
engine, sizing, risk kernel and paper executor as a paper run, into a
database of its own.

The database is written afresh on every run and marked as a backtest's (a
telemetry row ``backtest``); a database without that mark is overwritten only
when asked (``--overwrite``), and a database another process holds (its
single-writer lock, taken first) is never touched. Input files are streamed
(see ``adapters.feeds.files``). A progress bar (tqdm, the ``report`` extra) is
drawn on a terminal only.

Independent backtests (a config and its ``--compare-config``s, or each input
file on its own: ``--each-file``) run in parallel worker processes
(``workers``, also the scout's): each is the same replay as alone, into its
own database, so the results are those of the runs one after the other.
"""
from __future__ import annotations

import multiprocessing
import os
import sqlite3
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import attrs
from .di import providers

from ..adapters.alerts.log import NullAlerter
from ..adapters.feeds.files import FilesFeed, count_rows
from ..adapters.market.delayed import DelayedFillMarket, Tape
from ..adapters.storage.memory import MemoryStore
from ..adapters.storage.sqlite import SqliteStore, StoreError, connect_read_only, writer_lock
from ..application.report import Analysis, analyse, run_events
from ..application.runner import run
from .config import Config, ConfigError
from .container import build_container

MARK = "backtest"
# Rows per commit. A backtest's paper orders never leave the process: a crash
# loses at most this many rows of progress, read again on resume with the same
# outcome, and a commit (WAL frames, a checkpoint now and then) is most of a
# trade's cost on SQLite.
COMMIT_EVERY = 1000


@attrs.frozen
class BacktestResult:
    db: Optional[str]  # None: run in memory
    label: str
    summary: dict
    elapsed_s: float
    analysis: Optional[Analysis] = None  # of a run in memory (no database to report on)


def _is_new(path: Path) -> bool:
    """No database at ``path``: no file, or an empty one with nothing in a WAL either."""
    wal = Path(f"{path}-wal")
    return not path.exists() or (path.stat().st_size == 0 and not (wal.exists() and wal.stat().st_size > 0))


def _prepare_db(path: Path, overwrite: bool = False) -> None:
    """Remove the database at ``path`` if a backtest wrote it (or ``overwrite``);
    refuse any other. The caller holds the database's single-writer lock."""
    if not (overwrite or _is_new(path)):
        try:
            db = connect_read_only(path)  # creates nothing next to it
            try:
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                marked = "telemetry" in tables and db.execute(
                    "SELECT 1 FROM telemetry WHERE key = ? LIMIT 1", (MARK,)).fetchone() is not None
            finally:
                db.close()
        except (sqlite3.DatabaseError, StoreError) as exc:
            raise ConfigError(f"--db {path} is not a database ({exc}): choose another path, or pass --overwrite "
                              "to replace the file") from None
        if not marked:
            raise ConfigError(f"--db {path} holds a database that backtest did not write (a paper or live run, "
                              "leaders, a halt): refusing to overwrite it; choose another path, or pass --overwrite "
                              "to replace it")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def open_db(path: Path, overwrite: bool = False) -> SqliteStore:
    """The backtest database at ``path``, made afresh. The single-writer lock
    is taken before anything is touched: a database another process writes
    (a backtest, a run) is refused as it is, never deleted under it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = writer_lock(path)
    try:
        _prepare_db(path, overwrite)
    except BaseException:
        if lock[1]:  # the lock file made for this refused backtest goes, removed while still held
            Path(f"{path}.lock").unlink(missing_ok=True)
        os.close(lock[0])
        raise
    return SqliteStore(path, held_lock=lock)


def terminal_bar(total: Optional[int], unit: str, desc: str, initial: int = 0, scale: bool = True) -> Any:
    """A tqdm bar on stderr sized to the terminal (``scale``: counts as 1.2k), or None without tqdm."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    import shutil

    size = shutil.get_terminal_size((100, 24))  # a pty without a size says 0 x 0: tqdm would draw nothing
    tqdm.monitor_interval = 0  # no monitor thread: a backtest's workers may then be forks of this process
    return tqdm(total=total, initial=initial, unit=unit, unit_scale=scale, file=sys.stderr,
                ncols=min(size.columns or 100, 120), nrows=size.lines or 24,
                desc=desc, mininterval=0.25, smoothing=0.1)


def progress_bar(paths: Sequence[Path], show: bool, desc: str = "backtest",
              done_rows: int = 0) -> tuple[Callable[[Any], None], Callable[[], None]]:
    """A progress bar over the rows of ``paths`` (``done_rows`` of them read
    before): (call per outcome, call at the end). Nothing unless ``show`` and
    tqdm is installed; while it is drawn, log lines are printed above it.
    Also `copytrader run --replay`'s."""
    if not show:
        return (lambda outcome: None), (lambda: None)
    counts = [count_rows(p) for p in paths]
    total = None if any(c is None for c in counts) else sum(counts)  # type: ignore[arg-type]
    bar = terminal_bar(total, " rows", desc, done_rows)
    if bar is None:
        return (lambda outcome: None), (lambda: None)
    from tqdm.contrib.logging import logging_redirect_tqdm

    logs = logging_redirect_tqdm()
    logs.__enter__()

    def done() -> None:
        logs.__exit__(None, None, None)
        bar.close()
    return (lambda outcome: bar.update(1)), done


def run_backtest(cfg: Config, inputs: Sequence[str], db: Optional[str], markets: Optional[str] = None,
                 label: str = "", progress: bool = False, overwrite: bool = False,
                 delay_s: Optional[float] = None, trades: Sequence[str] = (),
                 tape: Optional[Tape] = None) -> BacktestResult:
    """``db`` None: the run is kept in memory (a store nothing else reads: a scout's candidate), and the
    result carries its report's analysis instead, the same as that of its database;
    ``delay_s``: price each copy from the market trades in ``trades`` (files of
    Data API ``/trades`` rows) that printed ``delay_s`` seconds after the
    leader's fill (``adapters.market.delayed``), instead of a book file;
    ``tape``: those files' rows when the caller holds them already (a scout's
    worker, which just wrote them), not read again."""
    paths = [Path(p) for p in inputs]
    for p in [*paths, *map(Path, trades)]:
        if not p.is_file():
            raise ConfigError(f"input file not found: {p}")
    if markets and not Path(markets).is_file():
        raise ConfigError(f"market file not found: {markets}")
    if delay_s is not None and markets:
        raise ConfigError("--delay-s prices copies from the market's trades (--trades), --markets from books: "
                          "give one of them")
    if delay_s is not None and not trades:
        raise ConfigError("--delay-s needs the market trades to price the copies: give --trades FILE "
                          "(Data API /trades rows; `copytrader scout` writes them)")
    label = label or (Path(db).stem if db else "backtest")
    # without --markets the container wires the leaders' prices as the books, as for a paper `run --replay`
    cfg = attrs.evolve(cfg, profile="paper", store_kind="sqlite" if db else "memory", store_path=db or "",
                       feed_kind="replay", feed_path=str(paths[0]), market_kind="static", market_path=markets or "")
    container = build_container(cfg)
    clock = container.clock()
    container.alerter.override(providers.Object(NullAlerter()))
    store = open_db(Path(db), overwrite) if db else MemoryStore()
    container.store.override(providers.Object(store))
    observe, latency = container.observe(), cfg.feed_latency_s
    if delay_s is not None:  # the same engine and paper executor, on a market made of the later trades
        market = DelayedFillMarket(tape if tape is not None else Tape.from_files(trades), delay_s, cfg.values["scout"]["window_s"])
        container.market.override(providers.Object(market))
        observe, latency = market.observe, delay_s  # the copy is decided delay_s after the leader's fill
    feed = FilesFeed(paths, clock=clock, latency_s=latency, observe=observe)
    tick, done = progress_bar(paths, progress)
    service = container.service()
    peak = [Decimal(0)]
    outcomes: list[Any] = []  # in memory only: the report's events (``run_events``)

    def on_outcome(outcome: Any) -> None:  # the capital the copies used: their peak open exposure
        peak[0] = max(peak[0], service.portfolio.total_exposure)
        if not db:
            outcomes.append(outcome)
        tick(outcome)
    started = time.perf_counter()
    try:
        with store.transaction():
            store.put_telemetry(MARK, clock.now(), {
                "label": label, "config": cfg.source, "inputs": [str(p.resolve()) for p in paths],
                "markets": str(Path(markets).resolve()) if markets else (
                    f"market trades {delay_s} s after the leader's" if delay_s is not None
                    else "leader prices (no book history)"),
                **({"delay_s": delay_s, "trades": [str(Path(t).resolve()) for t in trades]}
                   if delay_s is not None else {}),
                "pid": os.getpid()})
        summary = run(service, feed, on_outcome=on_outcome, commit_every=COMMIT_EVERY)
        analysis = None if db else analyse(run_events(store, outcomes), store.positions(include_closed=True),
                                           label=label)
    finally:
        done()
        store.close()
    elapsed = time.perf_counter() - started
    data = summary.to_dict()
    data["rows_per_s"] = round(summary.seen / elapsed, 1) if elapsed > 0 else None
    data["peak_exposure_usdc"] = str(peak[0])
    return BacktestResult(db, label, data, elapsed, analysis)


_WORKER: list[Callable[[Any], Any]] = []  # a worker process's job, made once by its initializer


def _start_worker(make: Callable[..., Callable[[Any], Any]], setup: tuple) -> None:
    _WORKER.append(make(*setup))


def _work(item: Any) -> Any:
    return _WORKER[0](item)


@contextmanager
def workers(make: Callable[..., Callable[[Any], Any]], setup: tuple, jobs: int,
            fork: bool = False) -> Iterator[Callable[[Iterable[Any]], Iterator[Any]]]:
    """A map over items, results in order, of the job ``make(*setup)`` (made once a process, so its
    connections and imports are paid once): in this process with ``jobs`` 1 (the job's ``close``, if any,
    called at the end), else in ``jobs`` processes. With ``fork`` (a caller whose process has no database
    open that a worker opens too: SQLite's locks do not survive a fork), forks of this process while it
    runs one thread (its imports made: a worker starts at once); else forks of a forkserver that preloaded
    ``make``'s module (a clean process: ~0.4 s of imports first), or spawned where there is none (Windows)."""
    if jobs <= 1:
        local = make(*setup)
        try:
            yield lambda items: map(local, items)
        finally:
            getattr(local, "close", lambda: None)()
        return
    methods = multiprocessing.get_all_start_methods()
    if fork and "fork" in methods and threading.active_count() == 1:  # never a fork of threads
        context = multiprocessing.get_context("fork")
    elif "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([make.__module__])
    else:
        context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_start_worker,
                             initargs=(make, setup)) as pool:
        yield lambda items: pool.map(_work, items)


@attrs.frozen
class Job:
    """One backtest of a batch: ``run_backtest(cfg, inputs, db, **options)``."""
    cfg: Config
    inputs: tuple[str, ...]
    db: str
    options: dict = attrs.field(factory=dict)


class Backtesting:
    """A worker's job: one backtest, and its report's analysis when ``analyse`` (a summary table's row;
    leaders named by ``names``)."""

    def __init__(self, analyse: bool, names: Optional[dict[str, str]] = None) -> None:
        self.analyse, self.names = analyse, names

    def __call__(self, job: Job) -> tuple[BacktestResult, Optional[dict]]:
        result = run_backtest(job.cfg, job.inputs, job.db, **job.options)
        if not self.analyse:
            return result, None
        from .report import analyse_db

        return result, analyse_db(result.db, result.label, names=self.names).summary


def run_backtests(jobs: Sequence[Job], processes: int, analyse: bool = False, names: Optional[dict[str, str]] = None,
                  progress: bool = False) -> list[tuple[BacktestResult, Optional[dict]]]:
    """Each job's (result, analysis summary or None), in order, run by ``processes`` workers (at most one a
    job; 1: here, one after the other). Several jobs: a progress bar over the runs on a terminal."""
    bar = terminal_bar(len(jobs), " runs", "backtest", scale=False) if progress and len(jobs) > 1 else None
    done = []
    try:
        # (this process holds no database: each backtest opens its own, in its worker)
        with workers(Backtesting, (analyse, names), min(processes, len(jobs)), fork=True) as backtest:
            for outcome in backtest(jobs):
                done.append(outcome)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return done
