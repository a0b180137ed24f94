"""The command line: ``copytrader run | serve | positions | history | halt | resume | config check``.

Exit codes: 0 ok, 1 runtime failure, 2 bad input (arguments, config, files, a
store path, a missing extra), 3 `audit` INCONCLUSIVE (no evidence for some
criterion), 4 `run` ended with trading HALTED by the circuit breaker; ``run``:
130 after Ctrl-C (SIGINT), 143 after SIGTERM, with the partial summary.
Errors print one line, no traceback (``--debug`` shows it); ``_guard`` maps
error classes to codes. Heavy imports
happen inside the commands so ``--help`` stays fast.
"""
from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
from typing import Any, Callable, Iterator, Optional

import click

BAD_INPUT, FAILURE, INCONCLUSIVE = 2, 1, 3  # 3: `audit` found no evidence for some criterion
HALTED_BY_BREAKER = 4  # `run` ended with trading HALTED by the circuit breaker


class DecimalParam(click.ParamType):
    """A positive decimal amount, read as text (never through float)."""

    name = "amount"

    def __init__(self, below: Optional[str] = None, at_most: Optional[str] = None) -> None:
        self.below, self.at_most = below, at_most

    def convert(self, value, param, ctx):
        from decimal import Decimal, InvalidOperation

        try:
            out = Decimal(str(value).strip())
        except InvalidOperation:
            self.fail(f"{value!r} is not a number", param, ctx)
        if (not out.is_finite() or out <= 0 or (self.below is not None and out >= Decimal(self.below))
                or (self.at_most is not None and out > Decimal(self.at_most))):
            bound = f" and below {self.below}" if self.below is not None else f" and at most {self.at_most}"
            self.fail(f"{value!r} must be above 0{bound}", param, ctx)
        return out


class OneLineErrors(click.Group):
    """Usage errors in one line: click spreads some (a missing choice option
    lists its choices) over several."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise _one_line(exc) from None


def _one_line(exc: click.UsageError) -> click.UsageError:
    return click.UsageError(" ".join(exc.format_message().split()), exc.ctx)


FILE, FOLDER = click.Path(dir_okay=False), click.Path(file_okay=False)  # shared: each costs a gettext lookup
AMOUNT = DecimalParam(at_most="1000000000")  # shares, USDC, multipliers: a billion is past any sane order
PRICE = DecimalParam(below="1")


class BadInput(click.ClickException):
    exit_code = BAD_INPUT


class Failure(click.ClickException):
    exit_code = FAILURE


# The optional extras (setup.cfg) and the modules copytrader imports from each,
# direct or brought by one (eth_abi comes with web3): a missing one is named
# with its extra. A command's own extra wins when several bring the module.
EXTRAS = {
    "live": ("polymarket", "web3", "eth_account", "eth_abi", "eth_utils", "pydantic", "coincurve", "httpx",
             "websockets"),
    "service": ("prometheus_client", "httpx", "psycopg"),
    "postgres": ("psycopg",),
    "alerts": ("httpx",),
    "report": ("matplotlib", "tqdm"),
    "dashboard": ("starlette", "uvicorn", "anyio"),
}
COMMAND_EXTRA = {"serve": "service", "backtest": "report", "report": "report", "dashboard": "dashboard",
                 "scout": "report"}
# errors of a path the user gave (exit 2); other OS errors are runtime failures
_PATH_ERRNOS = frozenset({errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.EROFS,
                          errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP})


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn known errors into one-line messages with the right exit code."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..adapters.feeds.errors import FeedError, FeedUnavailable
        from ..adapters.market.static import MarketDataError
        from ..adapters.storage.sqlite import BadStoreError, StoreError, StoreMissingError  # stdlib only: cheap
        from ..application.control import ControlError
        from .config import ConfigError

        ctx = click.get_current_context()
        try:
            result = fn(*args, **kwargs)
            sys.stdout.flush()  # a reader that has gone (`| head`) shows here, not at exit
            return result
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except FeedUnavailable as exc:
            raise Failure(str(exc)) from None
        except (ConfigError, MarketDataError, FeedError, ControlError) as exc:
            raise BadInput(str(exc)) from None
        except StoreMissingError as exc:
            create = any(p.name == "create" for p in ctx.command.params)
            raise BadInput(f"{exc}: check --db or store.path" +
                           (", or pass --create to make a new one" if create else "")) from None
        except BadStoreError as exc:
            raise BadInput(str(exc)) from None
        except StoreError as exc:
            raise Failure(str(exc)) from None
        except BrokenPipeError as exc:
            if not _stdout_gone():  # not ours to hide: a connection, say
                raise _unexpected(ctx, exc) from None
            _silence_stdout()  # the reader stopped reading: stop too, quietly, as `cat` does
            raise click.exceptions.Exit(0) from None
        except OSError as exc:
            if exc.filename is None:
                raise _unexpected(ctx, exc) from None
            error = BadInput if exc.errno in _PATH_ERRNOS else Failure
            raise error(f"cannot use {exc.filename}: {exc.strerror}") from None
        except ModuleNotFoundError as exc:
            module = (exc.name or "").split(".")[0]
            extra = _extra_for(module, ctx.command.name)
            if extra is None:
                raise _unexpected(ctx, exc) from None
            raise BadInput(f"{module} is not installed: this needs the {extra} extra "
                           f"(pip install 'copytrader[{extra}]')") from None
        except Exception as exc:
            raise _unexpected(ctx, exc) from None
    return wrapper


def _unexpected(ctx: click.Context, exc: Exception) -> Failure:
    if ctx.find_root().params.get("debug"):
        raise exc
    return Failure(f"{type(exc).__name__}: {exc}")


def _extra_for(module: str, command: Optional[str]) -> Optional[str]:
    extras = [name for name, modules in EXTRAS.items() if module in modules]
    own = COMMAND_EXTRA.get(command or "")
    return own if own in extras else (extras[0] if extras else None)


def _stdout_gone() -> bool:
    """Whether stdout is a pipe (or socket) whose reader has gone."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # not a file (a test's capture): not a pipe either
        return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so what is still buffered is not written (and
    failed) again at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


CREATED = "copytrader.create"
CREATE = click.option(
    "--create", is_flag=True, expose_value=False, callback=lambda ctx, _, value: ctx.meta.update({CREATED: value}),
    help="Create the database (or PostgreSQL follower schema) if it does not exist; without it a missing one "
         "is refused, so a mistyped --db cannot act on a store no engine uses.")


def _layered(ctx: click.Context, **overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    params = ctx.find_root().params
    layered: dict[str, dict[str, Any]] = {}
    if params.get("profile"):
        layered[""] = {"profile": params["profile"]}
    if params.get("db"):
        layered["store"] = {"path": params["db"], "kind": "sqlite", "url": ""}
    for section, values in overrides.items():
        layered.setdefault(section, {}).update(values)
    return layered


def _config(ctx: click.Context, **overrides: dict[str, Any]):
    from .config import load_config

    params = ctx.find_root().params
    cfg = load_config(params.get("config"), overrides=_layered(ctx, **overrides))
    if params.get("follower"):
        from .fleet import follower_config

        cfg = follower_config(params.get("config"), params["follower"], overrides=_layered(ctx, **overrides))
    level = params.get("log_level") or cfg.log_level
    import logging  # here, not at import: `--help` stays fast

    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s", force=True)
    return cfg


def _app(cfg, access: str = "write"):
    """The engine for a command; "control" commands (halt, resume, leaders add/remove)
    create no database unless given --create (halt and leaders add offer it)."""
    from .api import App
    from .container import build_container

    create = access != "control" or bool(click.get_current_context().meta.get(CREATED))
    return App(build_container(cfg, access, create=create))


def confirm_live(cfg, live_flag: bool, yes: bool) -> None:
    """Live trading needs --live on the command line, and --yes (or a typed
    confirmation at a terminal)."""
    if cfg.profile != "live":
        return
    if not live_flag:
        raise BadInput("profile live sends real orders: add --live to the command to confirm")
    if yes:
        return
    if not sys.stdin.isatty():
        raise BadInput("live trading needs --yes when not run from a terminal")
    if click.prompt("This sends REAL orders with real money. Type 'live' to continue", default="") != "live":
        raise BadInput("live trading not confirmed")


def _emit(data: Any) -> None:
    import json

    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _help_width() -> int:
    """The width click gives help text (the terminal's, at most 78), read as
    shutil.get_terminal_size reads it but without importing shutil and its
    compression modules (about 2 ms of a 45 ms `--help`)."""
    import os

    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 80
    return max(min(columns, 80) - 2, 50)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"],
                                                  "terminal_width": _help_width()})
@click.option("-c", "--config", type=FILE, envvar="COPYTRADER_CONFIG",
              help="TOML config file (default: built-in defaults; env COPYTRADER_CONFIG).")
@click.option("--profile", type=click.Choice(["paper", "dry-run", "live", "test"]), default=None,
              help="paper (default): simulated fills; dry-run: real market data and signed orders, nothing "
                   "sent; live: real orders (needs --live); test: in-memory fakes, nothing kept (for tests).")
@click.option("--db", type=FILE, help="SQLite database path (overrides store.path).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
              default=None, help="Log level for stderr, any case (default from config: info).")
@click.option("--debug", is_flag=True, help="Show tracebacks on unexpected errors.")
@click.option("--follower", default=None, help="Act on this follower of [[followers]] (its store, state, limits).")
@click.version_option(package_name="copytrader")
def main(config: Optional[str], profile: Optional[str], db: Optional[str], log_level: Optional[str],
         debug: bool, follower: Optional[str]) -> None:
    """Copy the trades of chosen Polymarket wallets into your account, safely.

    Paper trading is the default: orders are simulated against the order book
    and nothing is sent to the exchange.
    """


@main.command()
@click.option("--replay", type=FILE, help="Read leader activity from a file of Data API /activity rows (JSON array or JSONL).")
@click.option("--markets", type=FILE, help="Static market data (books, tick sizes) as JSON.")
@click.option("--sample", is_flag=True, help="Replay the bundled sample of leader activity with its books.")
@click.option("--feed", "feed_kind", type=click.Choice(["replay", "data_api", "onchain", "both", "fast"]),
              help="Leader feed (default from the config): a replay file, the Data API, on-chain fills, or both.")
@click.option("--max-items", type=click.IntRange(min=1), help="Stop after this many feed rows.")
@click.option("--once", is_flag=True, help="Poll a live feed once and stop (for cron and tests).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--live", "live", is_flag=True, help="Trade for real (profile live). Never the default.")
@click.option("--yes", is_flag=True, help="Confirm live trading without a prompt (required when not interactive).")
@click.pass_context
@_guard
def run(ctx: click.Context, replay: Optional[str], markets: Optional[str], sample: bool, feed_kind: Optional[str],
        max_items: Optional[int], once: bool, as_json: bool, live: bool, yes: bool) -> None:
    """Follow the leaders: read the feed, copy each trade through the risk kernel."""
    from .config import SAMPLE_ACTIVITY, SAMPLE_MARKETS

    _refuse_conflicts(ctx, sample=sample, replay=replay, feed_kind=feed_kind, once=once, live=live)
    overrides: dict[str, dict[str, Any]] = {}
    if sample:
        replay, markets = str(SAMPLE_ACTIVITY), markets or str(SAMPLE_MARKETS)
    if replay:
        overrides["feed"] = {"kind": "replay", "path": replay}
    elif feed_kind:
        overrides["feed"] = {"kind": feed_kind}
    if markets:
        overrides["market"] = {"path": markets}
    if live:
        overrides[""] = {"profile": "live"}
    cfg = _config(ctx, **overrides)
    _refuse_once_on_a_replay(once, cfg)
    confirm_live(cfg, live, yes)
    if cfg.feed_kind == "none":
        raise BadInput("no leader feed: pass --replay FILE or --sample, or set feed.kind in the config")
    with _app(cfg) as app, _stop_on_signals() as stop:
        feed = app.feed()
        if once and hasattr(feed, "max_polls"):
            feed.max_polls = 1
        on_outcome, done = _run_progress(app, cfg, feed, show=not as_json and sys.stderr.isatty())
        try:
            summary = app.run(feed, max_items=max_items, stop=stop, on_outcome=on_outcome)
        except KeyboardInterrupt:  # a second Ctrl-C: at once, as a crash would be
            raise Interrupted("interrupted twice: stopped at once; the next run reconciles the trade in hand") \
                from None
        finally:
            done()
        report = _report(app, summary.to_dict())
    if stop.signum:
        import signal

        report["stopped_by"] = signal.Signals(stop.signum).name
    if as_json:
        _emit(report)
    else:
        _print_report(report, cfg)
    if stop.signum:
        if not as_json:
            click.echo(f"stopped by {report['stopped_by']} after {report['seen']} feed rows: run it again to "
                       "continue from the feed cursor")
        ctx.exit(128 + stop.signum)  # 130 SIGINT, 143 SIGTERM
    if report["halted_by_circuit_breaker"]:
        click.echo(f"trading is HALTED by the circuit breaker ({report['state_reason']}): fix the cause, then "
                   "`copytrader resume`", err=True)
        ctx.exit(HALTED_BY_BREAKER)


class Interrupted(click.ClickException):
    exit_code = 130


class _SignalStop(threading.Event):
    """Set by the first SIGINT or SIGTERM (``signum``)."""

    signum = 0


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[_SignalStop]:
    """While in the block, the first SIGINT/SIGTERM sets the event: the run
    ends after the trade in hand. A second one acts as it would without us
    (stops at once). Only the main thread can take signals."""
    import signal

    stop = _SignalStop()
    previous: dict[int, Any] = {}

    def on_signal(signum: int, frame: Any) -> None:
        stop.signum = signum
        stop.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_progress(app, cfg, feed, show: bool) -> tuple[Callable[[Any], None], Callable[[], None]]:
    """The backtest's progress bar for a replay, started at the feed cursor."""
    if not (show and cfg.feed_kind == "replay"):
        return (lambda outcome: None), (lambda: None)
    from pathlib import Path

    from .backtest import progress_bar

    return progress_bar([Path(cfg.feed_path)], True, desc="run",
                        done_rows=int(app.container.store().get_cursor(feed.name) or 0))


def _refuse_conflicts(ctx: click.Context, replay: Optional[str], feed_kind: Optional[str], once: bool,
                      sample: bool = False, live: bool = False) -> None:
    """Options that contradict each other are refused (exit 2), never silently ignored."""
    source = "--sample" if sample else "--replay" if replay else None
    if sample and replay:
        raise BadInput("--sample and --replay are exclusive: pick one")
    if source and feed_kind not in (None, "replay"):
        raise BadInput(f"{source} replays a file but --feed {feed_kind} asks for a live feed: pick one")
    if once and (source or feed_kind == "replay"):
        raise BadInput(f"--once polls a live feed once, but {source or '--feed replay'} replays a file "
                       "(use --max-items N to stop early)")
    profile = ctx.find_root().params.get("profile")
    if live and profile not in (None, "live"):
        raise BadInput(f"--live trades for real but --profile {profile} says otherwise: drop one of them")


def _refuse_once_on_a_replay(once: bool, cfg) -> None:
    if once and cfg.feed_kind == "replay":
        raise BadInput("--once polls a live feed once, but the config's feed is a replay file "
                       "(use --max-items N to stop early)")


def _report(app, summary: dict[str, Any]) -> dict[str, Any]:
    """The run summary plus what the database holds, marked as `report` marks it."""
    from ..application.report import marked_pnl

    positions = app.positions(include_closed=True)
    marks = app.marks({p.token_id for p in positions if p.is_open})
    return {
        **summary,
        "state": app.state().state.value,
        "market": app.container.config.market.kind(),  # leader_price, static or clob (container.market_kind)
        "positions": _positions(app, [p for p in positions if p.is_open or p.is_pending], marks),
        "pnl": marked_pnl(positions, marks),
    }


def _positions(app, positions, marks=None) -> list[dict[str, Any]]:
    """Rows of ``positions``, each marked by ``application.report.MARKING``."""
    from ..application.report import mark_of

    marks = app.marks({p.token_id for p in positions if p.is_open}) if marks is None else marks
    names, outcomes = _leader_names(app), app.container.store().token_outcomes({p.token_id for p in positions})
    return [_position(p, mark_of(p, marks), outcomes.get(p.token_id, ""), names.get(p.leader, "")) for p in positions]


def _leader_names(app) -> dict[str, str]:
    """Leader address -> name: the config's [[leaders]], then those of `leaders add` (the config wins)."""
    added = {l.address: l.name for l in app.container.store().leaders() if l.name}
    return {**added, **{a: l.name for a, l in app.container.config.engine().leaders.items() if l.name}}


def _position(p, mark, outcome: str = "", name: str = "") -> dict[str, Any]:
    from ..application.dashboard import position_row

    return position_row(p, mark, outcome, name)


def _print_report(r: dict[str, Any], cfg) -> None:
    o = r["outcomes"]
    where = {"sqlite": cfg.store_path, "postgres": cfg.effective().get("store", {}).get("url")}.get(cfg.store_kind)
    fills = " · fills at the leaders' prices (no --markets: no slippage, no depth)" \
        if r["market"] == "leader_price" else ""
    click.echo(f"profile {cfg.profile} · store {where or 'memory'}{fills}")
    click.echo(f"feed rows read: {r['seen']}  (duplicates {o.get('duplicate', 0)}, quarantined "
               f"{o.get('quarantined', 0)}, non-trade {o.get('observed', 0)})")
    click.echo(f"copied: {r['copied']}  (filled {o.get('filled', 0)}, partial {o.get('partial', 0)})  "
               f"not filled: {o.get('unfilled', 0)}  unknown: {o.get('unknown', 0)}  "
               f"rejected: {o.get('rejected', 0)}")
    for reason, n in sorted(r["rejected_by_reason"].items(), key=lambda kv: (-kv[1], kv[0])):
        click.echo(f"  {reason:<22} {n}")
    if r["market"] == "static" and r["rejected_by_reason"].get("unknown_market"):
        if not cfg.market_path:
            click.echo("hint: unknown_market: no market data; pass --markets FILE (books as JSON) or set "
                       "market.kind = \"clob\" for the exchange's public books")
        else:
            leader = ", or run without --markets to fill at the leaders' prices" if cfg.feed_kind == "replay" else ""
            click.echo(f"hint: unknown_market: --markets {cfg.market_path} has no book for those tokens; add them"
                       f"{leader}")
    if r["reduced_by_limit"]:
        click.echo("copied smaller because of: " + ", ".join(f"{k} {v}" for k, v in sorted(r["reduced_by_limit"].items())))
    click.echo(f"trading state: {r['state']}")
    _print_positions(r["positions"])
    p = r["pnl"]
    click.echo(f"PnL: realised {p['realised']} {p['unit']}  unrealised {p['unrealised']} {p['unit']}  "
               f"total {p['total']} {p['unit']} ({p['marking']})")
    click.echo(f"open exposure: {p['exposure']} {p['unit']}")
    click.echo(_resolved_line(p["resolutions"]))


def _resolved_line(r: dict[str, Any]) -> str:
    """Resolved markets in one line: redeemed, pending payout and lost."""
    return (f"resolved: redeemed {r['redeemed']['positions']} (realised {_num(r['redeemed']['realised'], USDC_PLACES)}"
            f" {r['unit']}), pending payout {r['pending']['positions']} ({_num(r['pending_usdc'], USDC_PLACES)} "
            f"{r['unit']} to redeem), lost {r['lost']['positions']} (realised {_num(r['lost']['realised'], USDC_PLACES)}"
            f" {r['unit']})")


# Numbers for people: prices to 4 places, shares and USDC to 2 (JSON keeps every digit).
PRICE_PLACES, SIZE_PLACES, USDC_PLACES = 4, 2, 2


def _num(value: Any, places: int) -> str:
    if value is None:
        return "-"
    from decimal import Decimal

    text = f"{Decimal(value):.{places}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # never "-0.00"


def _leader_label(address: str, name: str) -> str:
    return name or f"{address[:10]}…"


def _table(columns: list[tuple[str, str]], rows: list[list[str]]) -> list[str]:
    """Columns ("<" left, ">" right aligned) as wide as their content; the last
    one (text) wrapped to the terminal (at least 24 characters), never cut."""
    import shutil
    import textwrap

    widths = [max([len(name)] + [len(r[i]) for r in rows]) for i, (name, _) in enumerate(columns[:-1])]

    def fixed(cells: list[str]) -> str:
        return "  " + "  ".join(f"{c:{align}{w}}" for c, (_, align), w in zip(cells, columns, widths))

    indent = len(fixed([name for name, _ in columns[:-1]])) + 2
    width = max(24, shutil.get_terminal_size((120, 24)).columns - indent)
    out = [(fixed([name for name, _ in columns[:-1]]) + "  " + columns[-1][0]).rstrip()]
    for r in rows:
        parts = textwrap.wrap(r[-1], width) or [""]
        out.append((fixed(r[:-1]) + "  " + parts[0]).rstrip())
        out += [" " * indent + part for part in parts[1:]]
    return out


def _print_positions(rows: list[dict[str, Any]]) -> None:
    every = any(p["status"] != "open" for p in rows)
    click.echo(f"positions (open, pending payout, paid, lost, closed): {len(rows)}, "
               f"open {sum(p['status'] == 'open' for p in rows)}, "
               f"pending payout {sum(p['status'] == 'pending payout' for p in rows)}"
               if every else f"open positions: {len(rows)}")
    if not rows:
        return
    columns = [("status", "<")] if every else []
    columns += [("leader", "<"), ("outcome", "<"), ("size", ">"), ("avg", ">"), ("mark", ">"), ("unrealised", ">"),
                ("realised", ">"), ("market", "<")]
    table = [([p["status"]] if every else []) + [
        _leader_label(p["leader"], p["leader_name"]), p["outcome"] or "-", _num(p["size"], SIZE_PLACES),
        _num(p["avg_cost"], PRICE_PLACES), _num(p["mark"], PRICE_PLACES), _num(p["unrealised"], USDC_PLACES),
        _num(p["realised"], USDC_PLACES), p["title"] or p["token_id"]] for p in rows]
    for line in _table(columns, table):
        click.echo(line)


@main.command()
@click.option("--all", "include_closed", is_flag=True, help="Include closed, paid and lost positions.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def positions(ctx: click.Context, include_closed: bool, as_json: bool) -> None:
    """Positions: leader, outcome, size, average cost, mark, unrealised and
    realised PnL, market, and a status: open, pending payout (resolved, tokens
    not redeemed yet), paid, lost (--all: closed, paid and lost ones too)."""
    with _app(_config(ctx), "read") as app:  # pending positions hold tokens: listed without --all
        rows = _positions(app, [p for p in app.positions(True) if include_closed or p.is_open or p.is_pending])
    if as_json:
        _emit(rows)
    else:
        _print_positions(rows)


@main.command()
@click.option("--limit", type=click.IntRange(min=1, max=100_000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(min=0, max=2**62), default=0)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def history(ctx: click.Context, limit: int, offset: int, as_json: bool) -> None:
    """Leader trades and what we decided, newest first, with reasons, and the
    control actions (halt, resume, pausing a leader: who, from where) between them."""
    import attrs

    from ..application.dashboard import history_page
    from ..ports import ControlAction

    with _app(_config(ctx), "read") as app:
        entries = history_page(app.container.store(), limit, offset)
        names = _leader_names(app)
    if as_json:
        _emit([{"kind": "control", **attrs.asdict(e)} if isinstance(e, ControlAction) else
               {"kind": "decision", **attrs.asdict(e)}
               for e in entries])
        return
    rows = []
    for r in entries:
        if isinstance(r, ControlAction):
            target = f" {_leader_label(r.target, names.get(r.target, ''))}" if r.target else ""
            rows.append([f"{r.at:%Y-%m-%d %H:%M:%S}", f"control: {r.source}", f"{r.action}{target}", "", "", "",
                         f"{r.follower} · {r.reason}"])
            continue
        order = f"{r.side} {_num(r.size, SIZE_PLACES)} limit {_num(r.limit_price, PRICE_PLACES)}" if r.size \
            else f"{r.side} -"
        result = "not copied" if r.decision == "rejected" else r.status.value + (
            " (reduced)" if r.decision == "reduced" else "")
        fill = f"{_num(r.filled_size, SIZE_PLACES)} @ {_num(r.avg_price, PRICE_PLACES)}" if r.filled_size else ""
        slip = f"{r.slippage_bps:+.1f} bps" if r.slippage_bps is not None else ""
        why = f"{r.reason}{': ' + r.detail if r.detail else ''}" if r.reason else r.error
        rows.append([f"{r.created_at:%Y-%m-%d %H:%M:%S}", _leader_label(r.leader, names.get(r.leader, "")), order,
                     result, fill, slip, " · ".join(t for t in (r.title or r.token_id, why) if t)])
    columns = [("time (UTC)", "<"), ("leader", "<"), ("order", "<"), ("result", "<"), ("filled", ">"),
               ("slippage", ">"), ("market · reason", "<")]
    for line in _table(columns, rows) if rows else []:
        click.echo(line)


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def status(ctx: click.Context, as_json: bool) -> None:
    """Trading state, open positions and exposure, PnL today and in total, the
    latest feed activity and orders not settled yet. Read-only: works next to a
    running engine."""
    from datetime import datetime, timezone

    from ..application.status import follower_status

    cfg = _config(ctx)
    with _app(cfg, "read") as app:  # a database that does not exist is refused by the store, as for positions
        data = follower_status(app.container.store(), datetime.now(timezone.utc))
    if as_json:
        _emit(data)
        return
    s, p, pnl, feed = data["state"], data["positions"], data["pnl"], data["feed"]
    click.echo(f"trading state: {s['state']}" + (f" ({s['reason']})" if s["reason"] else "")
               + (f" since {s['since']}" if s["since"] else ""))
    paused = data["paused_leaders"]
    click.echo(f"paused leaders (buys not copied, sells still copied): {len(paused)}" + "".join(
        f"\n  {l['address']}  since {l['since']}  {l['reason']}" for l in paused))
    click.echo(f"open positions: {p['open']}  exposure {_num(p['exposure_usdc'], USDC_PLACES)} USDC")
    click.echo(_resolved_line(data["resolutions"]))
    click.echo(f"PnL today ({pnl['today']['day']} UTC): realised {_num(pnl['today']['realised'], USDC_PLACES)} USDC")
    click.echo(f"PnL in total: realised {_num(pnl['realised_total'], USDC_PLACES)} USDC, unrealised "
               f"{_num(pnl['unrealised'], USDC_PLACES)} USDC, total {_num(pnl['total'], USDC_PLACES)} USDC "
               f"(unrealised: {pnl['marking']})")
    click.echo(f"feed: newest leader trade {feed['newest_leader_trade'] or 'none yet'}, last decision "
               f"{feed['last_decision'] or 'none yet'}, {len(feed['cursors'])} cursor(s)"
               + "".join(f"\n  {k}: {v if len(v) <= 60 else v[:59] + '…'}" for k, v in feed["cursors"].items()))
    provisional, reversed_ = data["provisional_fills"], data["reversed_fills"]
    click.echo(f"provisional fills (matched, not confirmed on chain; counted in positions and limits): "
               f"{len(provisional)}" + "".join(
                   f"\n  {f['side']} {_num(f['filled_size'], SIZE_PLACES)} @ {_num(f['avg_price'], PRICE_PLACES)}  "
                   f"age {f['age_s']:.0f} s  {f['title'] or f['token_id']}  order {f['execution_id']}"
                   for f in provisional))
    click.echo(f"reversed fills (trades FAILED on chain, taken back): {len(reversed_)}" + "".join(
        f"\n  {f['at']}  {f['side']} {f['title'] or f['token_id']}  order {f['execution_id']}  ({f['error']})"
        for f in reversed_[-5:]))
    redemptions = data["redemptions"]
    states = {state: sum(r["state"] == state for r in redemptions) for state in ("paid", "failed")}
    click.echo(f"redemptions: {states['paid']} paid, {len(redemptions) - sum(states.values())} under way, "
               f"{states['failed']} failed" + "".join(
                   f"\n  {r['at']}  {r['state']:<9} {r['condition_id']}  "
                   + (f"paid {_num(r['paid_usdc'], USDC_PLACES)} pUSD" if r["state"] == "paid"
                      else f"payout {_num(r['expected_usdc'], USDC_PLACES)} pUSD")
                   + f"  via {r['route']}" + (f"  ({r['reason']})" if r["reason"] else "")
                   for r in redemptions if r["state"] != "paid" or r is redemptions[-1]))
    orders = data["open_orders"]
    click.echo(f"orders not settled (pending or unknown): {len(orders)}"
               + ("" if not orders else "  (reconciled with the exchange at the next start)"))
    for o in orders:
        click.echo(f"  {o['status']:<8} {o['intent_id']}  {o['side']} {_num(o['size'], SIZE_PLACES)} limit "
                   f"{_num(o['limit_price'], PRICE_PLACES)}  age {o['age_s']:.0f} s  {o['title'] or o['token_id']}"
                   + (f"  order {o['execution_id']}" if o["execution_id"] else "")
                   + (f"  ({o['error']})" if o["error"] else ""))


@main.command()
@click.option("--reason", default="manual halt", show_default=True)
@click.option("--reduce-only", is_flag=True, help="Allow sells only (REDUCING) instead of stopping everything.")
@CREATE
@click.pass_context
@_guard
def halt(ctx: click.Context, reason: str, reduce_only: bool) -> None:
    """Stop trading (kill switch). Persists across restarts until `resume`."""
    control, name = _control(ctx)
    act = (control.reduce_only if reduce_only else control.halt)(name, reason, "cli")[0]
    click.echo(f"trading state: {'REDUCING' if reduce_only else 'HALTED'} ({act.reason})")


@main.command()
@click.pass_context
@_guard
def resume(ctx: click.Context) -> None:
    """Return to ACTIVE trading."""
    control, name = _control(ctx)
    control.resume(name, "cli")
    click.echo("trading state: ACTIVE")


def _control(ctx: click.Context):
    """The control use case over this command's follower (the config's, or --follower's),
    writing next to a running engine as it does from the dashboard (source "cli")."""
    from .dashboard import control_for

    cfg = _config(ctx)
    name = cfg.engine.follower.id
    return control_for({name: cfg}, create=bool(click.get_current_context().meta.get(CREATED))), name


@main.command("trade-once")
@click.option("--token-id", required=True, help="Outcome token id (decimal).")
@click.option("--side", type=click.Choice(["BUY", "SELL"], case_sensitive=False), required=True)
@click.option("--usdc", type=AMOUNT, help="Collateral to spend (sized up to the market minimum).")
@click.option("--size", type=AMOUNT, help="Shares (at least the market minimum).")
@click.option("--max-price", type=PRICE, help="Limit price (default: the best price in the book).")
@click.option("--order-type", type=click.Choice(["FOK", "FAK", "GTC", "GTD"]), default="FOK", show_default=True)
@click.option("--telemetry-out", type=FILE, help="Where to write the telemetry JSON.")
@click.option("--json", "as_json", is_flag=True, help="Print the signed order and the telemetry as JSON.")
@click.option("--live", is_flag=True, help="Send it for real. Without it: dry-run (signed, never sent).")
@click.option("--yes", is_flag=True, help="Confirm live trading without a prompt.")
@click.pass_context
@_guard
def trade_once(ctx: click.Context, token_id: str, side: str, usdc, size, max_price, order_type: str, telemetry_out: Optional[str], as_json: bool,
               live: bool, yes: bool) -> None:
    """One minimal order with full telemetry: dry-run by default, live with --live --yes."""
    from ..application.manual import OrderRefused, place_manual
    from ..domain.model import OrderType, Side
    from .telemetry import trade_once_telemetry, write_json

    _refuse_conflicts(ctx, replay=None, feed_kind=None, once=False, live=live)
    if (usdc is None) == (size is None):
        raise BadInput("give exactly one of --usdc and --size")
    if not token_id.isdigit():
        raise BadInput(f"--token-id must be a decimal token id, got {token_id!r}")
    root_profile = ctx.find_root().params.get("profile")
    cfg = _config(ctx, **{"": {"profile": "live" if live else (root_profile or "dry-run")}})
    confirm_live(cfg, live, yes)
    with _app(cfg) as app:
        try:
            placed = place_manual(app.service, token_id, Side(side.upper()), size=size, usdc=usdc,
                                  max_price=max_price, order_type=OrderType(order_type))
        except OrderRefused as exc:
            raise BadInput(f"order refused: {exc}") from None
        executor = app.container.executor()
        data = trade_once_telemetry(placed, cfg.profile, getattr(executor, "last_timings", {}),
                                    getattr(executor, "last_io", {}))
        app.container.store().put_telemetry("trade-once", placed.record.created_at, data)
    path = write_json(data, telemetry_out or _telemetry_path(cfg, placed.order.order_id))
    if as_json:
        _emit({**data, "telemetry_file": str(path)})
        return
    r = placed.record
    click.echo(f"{cfg.profile}: {r.side} {r.size} @ ≤{r.limit_price} on {token_id[:16]}… → {r.status.value}"
               + (f", filled {r.filled_size} @ {r.avg_price}" if r.filled_size else "")
               + (f" ({r.error})" if r.error else ""))
    click.echo(f"order hash {placed.order.order_id}")
    click.echo("timings ms: " + ", ".join(f"{k[:-3]} {v:.2f}" for k, v in data["timings_ms"].items()))
    click.echo(f"telemetry: {path}")


def _telemetry_path(cfg, order_id: str):
    from pathlib import Path

    base = Path(cfg.store_path).parent if cfg.store_kind == "sqlite" else Path(".")
    return base / "telemetry" / f"trade-once-{order_id[:18]}.json"


@main.command()
@click.option("--out", type=FOLDER, help="Directory for audit.md and audit.json "
              "(default: next to the database).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def audit(ctx: click.Context, out: Optional[str], as_json: bool) -> None:
    """Go/no-go: the six kill criteria judged from evidence. Exit 0 GO, 1 NO-GO,
    3 INCONCLUSIVE (some criterion has no evidence, e.g. a database without fills)."""
    from pathlib import Path

    import attrs

    from ..adapters.storage.sql import StoreMissingError
    from ..application.audit import GO, NO_GO, verdict
    from .audit import render_markdown, run_audit
    from .telemetry import write_json

    cfg = _config(ctx)
    where = f"database {cfg.store_path}" if cfg.store_kind == "sqlite" else "the store"
    try:
        store = _app(cfg, "read").container.store()
    except StoreMissingError:  # no evidence, not an error: the verdict says what is missing
        store, where = None, f"{where} (it does not exist)"
    try:
        criteria = run_audit(cfg, store, where)
    finally:
        if store is not None:
            store.close()
    result = verdict(criteria)
    folder = Path(out) if out else (Path(cfg.store_path).parent if cfg.store_kind == "sqlite" else Path(".")) / "audit"
    report = {"verdict": result, "criteria": [{**attrs.asdict(c), "result": c.result} for c in criteria]}
    write_json(report, folder / "audit.json")
    (folder / "audit.md").write_text(render_markdown(criteria, result))
    if as_json:
        _emit(report)
    else:
        for c in criteria:
            click.echo(f"{c.result:<11} {c.name:<22} {c.evidence}")
        click.echo(f"verdict: {result}  (report: {folder / 'audit.md'})")
    if result != GO:
        ctx.exit(FAILURE if result == NO_GO else INCONCLUSIVE)


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check the live setup: the wallet type of key and funder, API credentials,
    pUSD balance, every approval trading needs (web3) and the CLOB's cached
    balance/allowance, clock skew and geo-blocking. Exit 0 when all pass."""
    import attrs

    from ..adapters.execution.polymarket.doctor import run_doctor, summary
    from ..application import approvals

    def judge(required: list, values: list, cached: dict, balance: int) -> list:
        return approvals.findings(approvals.readings(required, values), cached, balance)

    cfg = _config(ctx)
    checks = run_doctor(cfg.live, cfg.private_key, judge=judge)
    if as_json:
        _emit([attrs.asdict(c) for c in checks])
    else:
        for c in checks:
            click.echo(f"{'ok' if c.ok else 'FAIL':<5} {c.name:<46} {c.message}")
        click.echo(summary(checks))
    if not all(c.ok for c in checks):
        ctx.exit(FAILURE)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the drifts and the summary as JSON.")
@click.pass_context
@_guard
def reconcile(ctx: click.Context, as_json: bool) -> None:
    """Compare our positions (per token, summed over leaders) with the funder
    wallet's balances on chain (Conditional Tokens, PositionManager) and the
    CLOB's, and report every drift with its likely cause. Never trades nor
    changes the book. Needs live.rpc_url and the key. Exit 0 no drift, 1 a
    drift (or a failed read), 2 bad input."""
    from ..adapters.execution.polymarket.balances import BalanceReadError
    from ..application.chain_reconcile import describe
    from .chain_reads import reconciliation, wallet_balances
    from .container import _clob_market

    cfg = _config(ctx)
    balances = wallet_balances(cfg)
    v = cfg.values
    market = _clob_market(cfg.live, v["market"]["rules_ttl_s"], v["market"]["book_ttl_s"], v["live"]["gamma_host"],
                          v["feed"]["url"])
    try:
        with _app(cfg, "read") as app:
            result = reconciliation(app.container.store(), balances, market)()
    except BalanceReadError as exc:
        raise Failure(str(exc)) from None
    finally:
        balances.close()
        market.close()
    if as_json:
        _emit({"funder": balances.funder, **result.to_dict()})
    else:
        for drift in result.drifts:
            click.echo(describe(drift))
        clob = f"; the CLOB did not answer for {result.clob_errors}" if result.clob_errors else ""
        click.echo(f"{len(result.drifts) or 'no'} drift(s) in {result.checked} token(s) of wallet {balances.funder} "
                   f"(our book against the chain and the CLOB{clob})")
    if result.drifts:
        ctx.exit(FAILURE)


def _private_key(cfg) -> str:
    if cfg.private_key is None:
        raise BadInput("no private key: set COPYTRADER_PRIVATE_KEY or live.key_file (mode 0600)")
    return cfg.private_key.reveal()


def _checked_wallet(cfg) -> tuple[str, Any]:
    """The private key and the wallet it trades from (the SDK's classification),
    checked against live.signature_type: one sentence and exit 2 otherwise."""
    from ..adapters.execution.polymarket import approvals as venue

    key = _private_key(cfg)
    try:  # ValueError: no funder to derive (a deposit wallet without live.funder or live.rpc_url)
        wallet = venue.classify(cfg.live, key)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    matches, text = wallet.check(cfg.live.signature_type)
    if not matches:
        raise BadInput(text)
    return key, wallet


@main.command()
@click.option("--live", is_flag=True, help="Send the transactions for real. Without it: show them, send nothing.")
@click.option("--yes", is_flag=True, help="Confirm sending without a prompt (required when not interactive).")
@click.pass_context
@_guard
def approve(ctx: click.Context, live: bool, yes: bool) -> None:
    """Set the on-chain approvals trading needs (pUSD allowances, outcome-token
    operators on CTF and PositionManager): shows the transactions for those
    missing; sends them only with --live --yes (an EOA's own transactions; a
    proxy, safe or deposit wallet's through Polymarket's relayer, which needs a
    relayer API key), then refreshes the CLOB's cached balance/allowance.
    Records what it sent in approvals.jsonl next to the database."""
    import time
    from pathlib import Path

    from ..adapters.execution.polymarket import approvals as venue
    from ..application import approvals

    cfg = _config(ctx)
    key, wallet = _checked_wallet(cfg)
    try:
        required = venue.required_approvals(cfg.live)
        _, values = venue.ChainApprovals(cfg.live).read(wallet.funder, required)
    except venue.ApprovalsError as exc:
        raise Failure(str(exc)) from None
    todo = approvals.missing(approvals.readings(required, values))
    if not todo:
        click.echo(f"nothing to approve: every approval trading needs is set for {wallet.funder}")
        if live and yes:  # the CLOB may still hold an older reading of them (doctor says so)
            _refresh_clob_cache(cfg.live, key, list(approvals.ASSET_TYPES))
        return
    click.echo(f"{len(todo)} approval(s) missing for {wallet.funder} ({wallet.kind.name}):")
    for a in todo:
        click.echo(f"  {a.label}\n    to {a.token}  {a.function}({', '.join(map(str, a.arguments))})\n"
                   f"    calldata {venue.calldata(a)}")
    relayed = wallet.kind.name != "EOA"
    if relayed:
        click.echo(f"a {wallet.kind.name} wallet sends them through Polymarket's relayer ({cfg.live.relayer_url}) "
                   "as one gasless transaction signed by the key"
                   + (" (an undeployed deposit wallet is deployed first, also gasless)"
                      if wallet.kind.name == "DEPOSIT_WALLET" else ""))
    if relayed and cfg.relayer_key is None:
        need = ("the relayer needs an API key: set COPYTRADER_RELAYER_API_KEY (a Relayer API key from "
                "polymarket.com Settings > API Keys; live.relayer_key_address if another address owns it), or "
                "COPYTRADER_BUILDER_API_KEY, COPYTRADER_BUILDER_SECRET and COPYTRADER_BUILDER_PASSPHRASE, "
                "or live.relayer_key_file (mode 0600)")
        if live:
            raise BadInput(f"nothing sent: {need}")
        click.echo(f"note: {need}")
    if not live:
        click.echo("dry run: nothing sent; `copytrader approve --live --yes` sends these transactions")
        return
    count = "1 relayed transaction" if relayed else f"{len(todo)} transaction(s)"
    if not yes:
        if not sys.stdin.isatty():
            raise BadInput(f"nothing sent: add --yes to send these {count}")
        if click.prompt(f"This sends {count} from {wallet.funder}"
                        + ("" if relayed else ", paying gas") + ". Type 'approve' to continue", default="") != "approve":
            raise BadInput("nothing sent: not confirmed")
    journal = (Path(cfg.store_path).parent if cfg.store_kind == "sqlite" else Path(".")) / "approvals.jsonl"
    record = lambda row: venue.append_record(journal, row)  # noqa: E731
    if relayed:
        api_key = venue.relayer_api_key(cfg.relayer_key, wallet.signer, cfg.live.relayer_key_address)
        sender = venue.RelayerSender(cfg.live, key, wallet.funder, api_key)
        send = lambda: approvals.send_relayed(todo, sender, record, wallet.funder, time.time)  # noqa: E731
    else:
        sender = venue.EoaSender(cfg.live, key)
        send = lambda: approvals.send_missing(todo, sender, record, wallet.funder, time.time)  # noqa: E731
    try:
        try:
            sent = send()
        except approvals.ApprovalFailed as exc:
            for s in exc.sent:
                click.echo(_sent_line(s))
            raise Failure(f"{exc} (record: {journal})") from None
        for s in sent:
            click.echo(f"{_sent_line(s)}  confirmed")
        click.echo(f"record: {journal}")
    finally:
        sender.close()
    _refresh_clob_cache(cfg.live, key, approvals.asset_types(todo))


@main.command()
@click.option("--condition", "condition_id", help="Redeem this market (its condition id) only.")
@click.option("--all", "all_", is_flag=True, help="Every market with positions whose payout is pending (the default).")
@click.option("--json", "as_json", is_flag=True)
@click.option("--live", is_flag=True, help="Send the redemptions for real. Without it: show them, send nothing.")
@click.option("--yes", is_flag=True, help="Confirm sending without a prompt (required when not interactive).")
@click.option("--burn-losers", is_flag=True,
              help="Also burn losing tokens still in the wallet (a transaction each, paying nothing; without it "
                   "they are only cleared in the book).")
@click.pass_context
@_guard
def redeem(ctx: click.Context, condition_id: Optional[str], all_: bool, as_json: bool, live: bool, yes: bool,
           burn_losers: bool) -> None:
    """Redeem resolved markets' winning tokens for pUSD: shows each call, the simulated
    payout (eth_call) and the wallet route (an EOA's own transaction, paying gas in POL;
    a proxy, safe or deposit wallet's gasless one through Polymarket's relayer, which
    needs a relayer API key); sends only with --live --yes. Each redemption is recorded
    before it is sent and booked once, when the balances show the payout."""
    from ..adapters.execution.polymarket import approvals as wallet_venue
    from ..adapters.execution.polymarket import redeem as venue
    from ..adapters.streams import redact_url
    from ..application.redemption import Redemptions, summary
    from ..domain.redemption import RELAYER

    if condition_id and all_:
        raise BadInput("give --condition ID or --all, not both")
    cfg = _config(ctx)
    if live and not yes:
        raise BadInput("nothing sent: add --yes to send the redemptions")
    try:
        redeemer = venue.make_redeemer(cfg.live, _private_key(cfg), cfg.relayer_key, sending=live)
    except venue.RedeemError as exc:
        raise BadInput(f"nothing sent: {exc}" if live else str(exc)) from None
    relayed = redeemer.route == RELAYER
    with _app(cfg) as app:
        service = app.service
        use_case = Redemptions(service.store, service.portfolio, redeemer, service.market, service.clock)
        try:
            records = use_case.run([condition_id] if condition_id else None, send=live, retry=live,
                                   burn=burn_losers)
        except Exception as exc:
            raise Failure(f"redemption stopped: {wallet_venue.first_line(exc)} (live.rpc_url {redact_url(cfg.live.rpc_url)}); "
                          "run `copytrader redeem` again: nothing is sent twice") from None
        finally:
            redeemer.close()
    rows = [summary(r) for r in records]
    if as_json:
        _emit(rows)
    else:
        route = "Polymarket's relayer (gasless)" if relayed else "the EOA's own transaction (gas in POL)"
        if not rows:
            click.echo("nothing to redeem: no resolved position with a payout pending"
                       + (" and no losing tokens left in the wallet" if burn_losers else ""))
        for r in rows:
            click.echo(f"{r['condition_id']}  {r['state']}  "
                       + ("burn of losing tokens (pays nothing)" if r["burn"] else f"payout {r['expected_usdc']} pUSD")
                       + (f", paid {r['paid_usdc']}" if r["state"] == "paid" and not r["burn"] else "")
                       + f"  via {route}" + (f"  ({r['reason']})" if r["reason"] else ""))
            for c in r["calls"]:
                click.echo(f"    to {c['to']}  {c['function']}({', '.join(c['arguments'])})\n"
                           f"    calldata {c['calldata']}")
        if not live and rows:
            click.echo("dry run: nothing sent; `copytrader redeem --live --yes` sends these redemptions")
    if any(r["state"] == "failed" for r in rows):
        ctx.exit(FAILURE)


def _sent_line(s) -> str:
    relayed = f"  (relayer transaction {s.transaction_id})" if s.transaction_id else ""
    return f"sent {s.tx_hash or '(no transaction hash yet)'}  {s.approval.label}{relayed}"


def _refresh_clob_cache(live, key: str, asset_types: list) -> None:
    """GET /balance-allowance/update for each asset type: the CLOB re-reads the chain."""
    from ..adapters.execution.polymarket.approvals import ClobBalanceCache, first_line

    cache = ClobBalanceCache.for_key(live, key)
    try:
        for asset_type in asset_types:
            cache.refresh(asset_type)
    except Exception as exc:
        raise Failure(f"the CLOB's balance/allowance refresh failed ({first_line(exc)}): run "
                      "`copytrader approve --live --yes` again") from None
    click.echo(f"CLOB balance/allowance refreshed: {', '.join(asset_types)}")


@main.group(cls=OneLineErrors)
def leaders() -> None:
    """Followed wallets: the config's [[leaders]] plus those added here."""


@leaders.command("add")
@click.argument("address")
@click.option("--name", help="A name for the leader (shown by positions and history).")
@click.option("--multiplier", type=AMOUNT, help="Size multiplier for this leader's copies (new leader: 1).")
@click.option("--budget", "budget", type=AMOUNT, help="Max exposure in USDC (new leader: none).")
@CREATE
@click.pass_context
@_guard
def leaders_add(ctx: click.Context, address: str, name: Optional[str], multiplier, budget) -> None:
    """Follow ADDRESS, or change the options given of a followed one (stored in
    the database; applies at the next start)."""
    import attrs

    from ..domain.sizing import LeaderSettings

    try:
        leader = LeaderSettings(address)
    except ValueError as exc:
        raise BadInput(f"ADDRESS: {exc}") from None
    cfg = _config(ctx)
    if leader.address in cfg.engine.leaders:
        raise BadInput(f"{leader.address} is followed by the config ([[leaders]] or COPYTRADER_LEADERS), whose "
                       "settings win: change it there")
    given = {k: v for k, v in (("name", name), ("multiplier", multiplier), ("budget_usdc", budget)) if v is not None}
    with _app(cfg, "control") as app:
        store = app.container.store()
        with store.transaction():
            known = next((l for l in store.leaders() if l.address == leader.address), None)
            leader = attrs.evolve(known or leader, **given)
            store.put_leader(leader)
    budget_text = "no budget" if leader.budget_usdc is None else f"budget {leader.budget_usdc} USDC"
    click.echo(f"{'updated' if known else 'following'} {leader.address}  name {leader.name or '-'}  "
               f"x{leader.multiplier}  {budget_text}")


@leaders.command("remove")
@click.argument("address")
@click.pass_context
@_guard
def leaders_remove(ctx: click.Context, address: str) -> None:
    """Stop following ADDRESS (one added with `leaders add`)."""
    cfg = _config(ctx)
    with _app(cfg, "control") as app:
        removed = app.container.store().remove_leader(address.strip())
    if not removed:
        where = "it is in the config file: remove it there" if address.strip().lower() in cfg.engine.leaders \
            else "it is not followed"
        raise BadInput(f"{address}: not removed, {where}")
    click.echo(f"no longer following {address.strip().lower()}")


@leaders.command("resume")
@click.argument("address")
@click.pass_context
@_guard
def leaders_resume(ctx: click.Context, address: str) -> None:
    """Copy ADDRESS's buys again after a pause (by a person or by leader health:
    see `status`); its drawdown and losing streak start again."""
    control, name = _control(ctx)
    act = control.resume_leader(name, address, "cli")[0]
    click.echo(f"leader {act.target} resumed: its buys are copied again")


@leaders.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def leaders_list(ctx: click.Context, as_json: bool) -> None:
    """Followed leaders and where each comes from."""
    from pathlib import Path

    cfg = _config(ctx)
    added = []
    if cfg.store_kind == "sqlite" and Path(cfg.store_path).exists():
        with _app(cfg, "read") as app:
            added = app.container.store().leaders()
    rows = [{"address": l.address, "name": l.name, "multiplier": str(l.multiplier),
             "budget_usdc": None if l.budget_usdc is None else str(l.budget_usdc), "source": source}
            for source, group in (("config", cfg.engine.leaders.values()), ("added", added)) for l in group
            if source == "config" or l.address not in cfg.engine.leaders]
    if as_json:
        _emit(rows)
        return
    if not rows:
        click.echo("no leaders: every wallet in a replay is followed; live feeds need leaders")
    for r in rows:
        click.echo(f"{r['address']}  {r['source']:<6} x{r['multiplier']:<5} budget {r['budget_usdc'] or '-':<8} {r['name']}")


@main.command()
@click.option("--feed", "feed_kind", type=click.Choice(["data_api", "onchain", "both", "fast", "replay"]),
              help="Which feed to watch (default from the config).")
@click.option("--replay", type=FILE, help="Watch a replay file instead.")
@click.option("--max-items", type=click.IntRange(min=1), help="Stop after this many rows.")
@click.option("--once", is_flag=True, help="Poll once and stop.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per detected fill.")
@click.pass_context
@_guard
def watch(ctx: click.Context, feed_kind: Optional[str], replay: Optional[str], max_items: Optional[int],
          once: bool, as_json: bool) -> None:
    """Print leader fills as they are detected, with the detection delay (on a
    replay: against the replay clock), each fill once. Never trades."""
    from collections import OrderedDict

    from ..ports import Quarantined

    _refuse_conflicts(ctx, replay=replay, feed_kind=feed_kind, once=once)
    overrides = {"feed": {"kind": "replay", "path": replay}} if replay else \
        ({"feed": {"kind": feed_kind}} if feed_kind else {})
    cfg = _config(ctx, **overrides, store={"kind": "memory"})
    _refuse_once_on_a_replay(once, cfg)
    if cfg.feed_kind == "none":
        raise BadInput("no leader feed: pass --feed, --replay FILE or set feed.kind in the config")
    container = _app(cfg).container
    feed, clock = container.feed(), container.clock()  # a replay moves its clock to each row's time
    if once and hasattr(feed, "max_polls"):
        feed.max_polls = 1
    seen, cursors = 0, {}
    shown: OrderedDict[str, None] = OrderedDict()  # ids of the fills printed lately (feeds re-deliver)
    for item in feed.read(cursors.get):
        cursors[item.key or "feed"] = item.cursor
        trade = item.payload
        if trade is None:
            continue
        seen += 1
        if isinstance(trade, Quarantined):
            click.echo(f"quarantined {trade.source}: {trade.reason}", err=True)
        elif trade.id not in shown:
            shown[trade.id] = None
            if len(shown) > 100_000:
                shown.popitem(last=False)
            delay = (clock.now() - trade.time).total_seconds()
            if as_json:
                click.echo(__import__("json").dumps({"leader": trade.leader, "kind": trade.kind, "side": trade.side,
                                       "size": str(trade.size), "price": str(trade.price), "token_id": trade.token_id,
                                       "title": trade.title, "tx_hash": trade.tx_hash, "timestamp": trade.timestamp,
                                       "delay_s": round(delay, 3)}))
            else:
                click.echo(f"{trade.time:%Y-%m-%d %H:%M:%S} {trade.leader[:10]}… {trade.kind:<6} {trade.side:<4} "
                           f"{trade.size} @ {trade.price}  {(trade.title or trade.token_id)[:40]}  "
                           f"detected after {delay:.1f} s")
        if max_items is not None and seen >= max_items:
            break


@main.command()
@click.option("--host", help="Address for /healthz and /metrics (default service.metrics_host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port for /healthz and /metrics (default "
              "service.metrics_port; 0: any free port).")
@click.option("--live", "live", is_flag=True, help="Trade for real (profile live). Never the default.")
@click.option("--yes", is_flag=True, help="Confirm live trading without a prompt (required when not interactive).")
@click.pass_context
@_guard
def serve(ctx: click.Context, host: Optional[str], port: Optional[int], live: bool, yes: bool) -> None:
    """Run every follower ([[followers]]) as a service, with /healthz and /metrics, until SIGTERM/SIGINT."""
    import attrs

    from .fleet import load_fleet
    from .serve import serve as run_service

    _refuse_conflicts(ctx, replay=None, feed_kind=None, once=False, live=live)
    overrides: dict[str, dict[str, Any]] = {"service": {}}
    if host:
        overrides["service"]["metrics_host"] = host
    if port is not None:
        overrides["service"]["metrics_port"] = port
    if live:
        overrides[""] = {"profile": "live"}
    cfg = _config(ctx, **overrides)
    confirm_live(cfg, live, yes)
    if cfg.feed_kind == "none":
        raise BadInput("no leader feed: set feed.kind in the config (data_api, onchain, both or replay)")
    spec = load_fleet(ctx.find_root().params.get("config"), overrides=_layered(ctx, **overrides))
    if ctx.find_root().params.get("follower"):  # this host runs one follower only
        spec = attrs.evolve(spec, followers=tuple(f for f in spec.followers if f.name == cfg.engine.follower.id))
    try:
        code = run_service(spec, echo=lambda line: click.echo(line, err=True))
    except OSError as exc:
        raise BadInput(str(exc)) from None
    if code:
        raise Failure("some followers did not stop in time")


@main.command()
@click.option("--db", "db_path", type=FILE, help="The database to show (default: --db, or store.path / store.url).")
@click.option("--host", help="Address to listen on (default dashboard.host, else service.metrics_host: 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default dashboard.port, 8765; 0: any free port).")
@click.pass_context
@_guard
def dashboard(ctx: click.Context, db_path: Optional[str], host: Optional[str], port: Optional[int]) -> None:
    """Serve the dashboard and its JSON API (/api/v1/...) for one database, next to
    the engine writing it (or none), until SIGTERM/SIGINT. Control (halt, resume,
    pausing a leader) needs the token named by dashboard.token_env; without it the
    dashboard is read-only."""
    import importlib

    from .dashboard import serving, web_server

    for module in EXTRAS["dashboard"][:2]:
        importlib.import_module(module)  # missing: one sentence naming the extra (_guard)
    overrides: dict[str, dict[str, Any]] = {"dashboard": {}}
    if db_path:
        overrides["store"] = {"path": db_path, "kind": "sqlite", "url": ""}
    if host:
        overrides["dashboard"]["host"] = host
    if port is not None:
        overrides["dashboard"]["port"] = port
    cfg = _config(ctx, **overrides)
    settings = cfg.values["dashboard"]
    if settings["port"] is None:
        raise BadInput("dashboard.port is off: pass --port or set dashboard.port")
    with _app(cfg, "read"):  # the database must exist and be copytrader's (one sentence otherwise)
        pass
    name = cfg.engine.follower.id
    with _stop_on_signals() as stop, serving(web_server({name: cfg}, settings, cfg.values["service"]["metrics_host"])
                                             ) as server:
        click.echo(f"dashboard {server.url}/ · follower {name}"
                   + (" · read-only (no dashboard.token_env)" if server.read_only else ""), err=True)
        while not stop.is_set():
            stop.wait(0.5)


@main.group("config", cls=OneLineErrors)
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("check")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def config_check(ctx: click.Context, as_json: bool) -> None:
    """Validate the config and print the effective values as TOML (secrets redacted)."""
    from .fleet import describe_followers

    cfg = _config(ctx)
    followers = describe_followers(ctx.find_root().params.get("config"), _layered(ctx))
    if as_json:
        _emit({**cfg.effective(), **followers})
        return
    click.echo("config OK")
    click.echo(cfg.to_toml(followers.get("followers")))


# -- backtest and report (issue 8) --------------------------------------------
def _db_option(ctx: click.Context, db: Optional[str], default: str) -> str:
    return db or ctx.find_root().params.get("db") or default


@main.command()
@click.argument("inputs", nargs=-1, type=FILE)
@click.option("--sample", is_flag=True, help="Backtest the bundled sample of leader activity with its books.")
@click.option("--markets", type=FILE,
              help="Books and market rules (with optional book history) as JSON. Without it: fills at the "
                   "leaders' prices.")
@click.option("--db", "db", type=FILE,
              help="Backtest database, written afresh (default: copytrader-data/backtest.db).")
@click.option("--compare-config", "compare_configs", multiple=True, type=FILE,
              help="Also backtest with this config (into DB.compare.db, then DB.compare2.db, …) and report the "
                   "runs side by side; repeatable.")
@click.option("--each-file", is_flag=True,
              help="Backtest each input file on its own, into its own database (FILE's name .db, next to --db or "
                   "in --out), with one summary table over them.")
@click.option("--jobs", type=click.IntRange(1, 256), default=None,
              help="Runs at a time, in parallel processes (default: the CPU count, at most the number of runs).")
@click.option("--out", type=FOLDER, help="Report folder (default: next to the database).")
@click.option("--no-report", is_flag=True, help="Only fill the database.")
@click.option("--overwrite", is_flag=True,
              help="Replace a database at --db that a backtest did not write (a paper or live run, leaders, a halt).")
@click.option("--delay-s", type=click.FloatRange(0, 3600), default=None,
              help="Price each copy from the market trades printed S seconds after the leader's fill (needs --trades).")
@click.option("--trades", "trades", multiple=True, type=FILE,
              help="Data API /trades rows of the markets traded (JSONL or JSON array), for --delay-s; repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (no progress bar).")
@click.pass_context
@_guard
def backtest(ctx: click.Context, inputs: tuple[str, ...], sample: bool, markets: Optional[str], db: Optional[str],
             compare_configs: tuple[str, ...], each_file: bool, jobs: Optional[int], out: Optional[str],
             no_report: bool, overwrite: bool, delay_s: Optional[float], trades: tuple[str, ...],
             as_json: bool) -> None:
    """Replay files of Data API /activity rows (JSONL or JSON arrays) through the
    engine with the config's sizing and risk, then write the report."""
    from pathlib import Path

    from .backtest import Job, run_backtests
    from .config import SAMPLE_ACTIVITY, SAMPLE_MARKETS

    if sample:
        inputs, markets = (*inputs, str(SAMPLE_ACTIVITY)), markets or str(SAMPLE_MARKETS)
    if not inputs:
        raise BadInput("no input: give one or more activity files, or --sample")
    if each_file and compare_configs:
        raise BadInput("--each-file backtests each file with this config, --compare-config the files together "
                       "with other configs: give one of them")
    params = ctx.find_root().params
    # a backtest logs warnings only (one line per copied trade would drown the terminal)
    cfg = _config(ctx, store={"kind": "sqlite"}, **({} if params.get("log_level") else {"": {"log_level": "warning"}}))
    db_path = Path(db or params.get("db") or Path(cfg.store_path).parent / "backtest.db")
    if db_path.resolve() == Path(cfg.store_path).resolve() and not (db or params.get("db")):
        raise BadInput("the backtest database would be the engine's own store: choose --db PATH")
    progress = not as_json and sys.stderr.isatty()
    if trades and delay_s is None:
        raise BadInput("--trades prices copies for --delay-s: give --delay-s S too")
    one_run = len(inputs) == 1 if each_file else not compare_configs  # its progress bar counts the rows
    options: dict[str, Any] = {"markets": markets, "overwrite": overwrite, "delay_s": delay_s, "trades": trades,
                               "progress": progress and one_run}
    label = Path(cfg.source).stem if cfg.source != "defaults" else "backtest"
    if each_file:
        folder = Path(out) if out else db_path.parent
        named: dict[Path, str] = {}
        for f in inputs:
            each = folder / f"{Path(f).stem}.db"
            if each in named:
                raise BadInput(f"--each-file: {named[each]} and {f} would both write {each}: rename one")
            named[each] = f
        batch = [Job(cfg, (f,), str(each), {**options, "label": Path(f).stem}) for each, f in named.items()]
    else:
        from .config import load_config

        batch = [Job(cfg, inputs, str(db_path), {**options, "label": label})]
        for i, path in enumerate(compare_configs):
            other = load_config(path, overrides={"store": {"kind": "sqlite"}})
            suffix = ".compare.db" if i == 0 else f".compare{i + 1}.db"
            batch.append(Job(other, inputs, str(db_path.with_suffix(suffix)), {**options, "label": Path(path).stem}))
    runs = run_backtests(batch, jobs or os.cpu_count() or 1, analyse=each_file and not no_report,
                         names=_config_leader_names(cfg), progress=progress)
    result: dict[str, Any] = {"runs": [{"db": r.db, "label": r.label, "elapsed_s": round(r.elapsed_s, 3), **r.summary}
                                       for r, _ in runs]}
    written = None
    if each_file and not no_report:
        import json

        folder = Path(out) if out else db_path.parent / f"{db_path.stem}-report"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "summary.json").write_text(json.dumps({"runs": [a for _, a in runs]}, indent=2, sort_keys=True))
        result["report"] = {"json": str(folder / "summary.json")}
    elif not no_report:
        from .report import write_report

        folder = Path(out) if out else db_path.parent / f"{db_path.stem}-report"
        written = write_report([r.db for r, _ in runs], folder, [r.label for r, _ in runs],
                               names=_config_leader_names(cfg))
        result["report"] = {k: written[k] for k in ("html", "json", "charts")}
    if as_json:
        _emit(result)
        return
    if each_file:
        _print_each_file(result["runs"], [a for _, a in runs])
        if "report" in result:
            click.echo(f"summary: {result['report']['json']}")
        return
    for r in result["runs"]:
        o = r["outcomes"]
        click.echo(f"{r['label']}: {r['seen']} rows in {r['elapsed_s']:.2f} s ({r['rows_per_s']} rows/s) → {r['db']}")
        click.echo(f"  copied {r['copied']}  rejected {o.get('rejected', 0)}  not filled {o.get('unfilled', 0)}  "
                   f"duplicates {o.get('duplicate', 0)}  quarantined {o.get('quarantined', 0)}")
        for reason, n in sorted(r["rejected_by_reason"].items(), key=lambda kv: (-kv[1], kv[0])):
            click.echo(f"  {reason:<22} {n}")
    if written is not None:
        _print_analyses(written)


def _print_each_file(runs: list[dict], analyses: list[Optional[dict]]) -> None:
    """`backtest --each-file`'s table: a line a file (with its PnL and drawdown when reported)."""
    click.echo(f"{'file':<24} {'rows':>7} {'copied':>7} {'rejected':>8} {'not filled':>10} {'PnL (USDC)':>12} "
               f"{'max DD (USDC)':>13}  database")
    for r, a in zip(runs, analyses):
        o = r["outcomes"]
        pnl, dd = (a["pnl"]["total"], a["equity"]["max_drawdown"]) if a else ("-", "-")
        click.echo(f"{r['label'][:24]:<24} {r['seen']:>7} {r['copied']:>7} {o.get('rejected', 0):>8} "
                   f"{o.get('unfilled', 0):>10} {pnl:>12} {dd:>13}  {r['db']}")


# -- scout (issue 19) -----------------------------------------------------------
@main.command()
@click.option("--category", default="OVERALL", show_default=True, help="Leaderboard category (OVERALL, POLITICS, "
              "SPORTS, CRYPTO, …).")
@click.option("--period", type=click.Choice(["DAY", "WEEK", "MONTH", "ALL"], case_sensitive=False), default="MONTH",
              show_default=True, help="Leaderboard period, and the history window (ALL: the last year).")
@click.option("--order-by", "order", type=click.Choice(["PNL", "VOL"], case_sensitive=False), default="PNL",
              show_default=True)
@click.option("--top", type=click.IntRange(0, 1000), default=None,
              help="Candidates from the leaderboard (default 10; 0 with --address: only those).")
@click.option("--address", "addresses", multiple=True, help="A candidate wallet; repeatable.")
@click.option("--addresses-file", type=FILE, help="A file of candidate wallets, one a line.")
@click.option("--delay-s", type=click.FloatRange(0, 3600), default=None,
              help="Copies priced this many seconds after each leader fill (default: scout.delay_s, else the "
                   "feed's typical delay).")
@click.option("--until", type=click.IntRange(0), default=None, help="Window end, Unix seconds (default: now).")
@click.option("--jobs", type=click.IntRange(1, 256), default=None, help="Parallel replays (default: CPU count).")
@click.option("--out", type=FOLDER, default=None, help="Folder for scout.html, scout.json, PNGs and each "
              "candidate's rows (default: scout next to the store).")
@click.option("--follow", "follow", default=None, metavar="ADDRESS",
              help="Follow ADDRESS (from the last scout in --out) with its suggested multiplier, as `leaders add`.")
@CREATE
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (no progress bar).")
@click.pass_context
@_guard
def scout(ctx: click.Context, category: str, period: str, order: str, top: Optional[int], addresses: tuple[str, ...],
          addresses_file: Optional[str], delay_s: Optional[float], until: Optional[int], jobs: Optional[int],
          out: Optional[str], follow: Optional[str], as_json: bool) -> None:
    """Rank leaders by what copying them would have earned us: each candidate's
    history replayed through the engine with this config, copies priced from the
    market's trades after the delay."""
    import json
    from pathlib import Path

    params = ctx.find_root().params
    cfg = _config(ctx, **({} if params.get("log_level") else {"": {"log_level": "warning"}}))
    folder = Path(out) if out else Path(cfg.store_path).parent / "scout"
    if follow:
        found = folder / "scout.json"
        if not found.is_file():
            raise BadInput(f"--follow: no scout result in {folder} (scout.json): run `copytrader scout` first, "
                           "or give its --out")
        rows = {r["address"]: r for r in json.loads(found.read_text())["candidates"]}
        row = rows.get(follow.strip().lower())
        if row is None:
            raise BadInput(f"--follow {follow}: not a candidate of the scout in {found}")
        from decimal import Decimal

        click.echo(f"suggested multiplier x{row['suggested_multiplier']} (keeps its simulated peak exposure "
                   f"{row['capital_used']} USDC within the total exposure cap)")
        ctx.invoke(leaders_add, address=row["address"], name=row["name"] or None,
                   multiplier=Decimal(row["suggested_multiplier"]), budget=None)
        return
    from .scout import run_scout

    wanted = list(addresses)
    if addresses_file:
        wanted += [l.strip() for l in Path(addresses_file).read_text().splitlines() if l.strip() and not l.startswith("#")]
    result = run_scout(cfg, category=category.upper(), period=period.upper(), order=order.upper(),
                       top=(0 if wanted else 10) if top is None else top, addresses=wanted, delay_s=delay_s,
                       jobs=jobs or os.cpu_count() or 1, out=folder, until=until,
                       progress=not as_json and sys.stderr.isatty())
    if as_json:
        _emit(result)
        return
    click.echo(f"scout: {len(result['candidates'])} candidates, {result['window']['period']} window, copies "
               f"{result['delay_s']} s late; {result['requests']} requests (cache {result['cache']})")
    click.echo(f"{'#':>3} {'candidate':<12} {'score':>9} {'copy PnL':>10} {'ROI':>9} {'max DD':>9} "
               f"{'copied':>6} {'not':>5} {'slip':>8} {'p90':>8} {'/day':>7} {'top mkt':>7} {'leader PnL':>12} {'x':>5}")
    for r in result["candidates"]:
        click.echo(f"{r['rank']:>3} {r['address'][:12]:<12} {r['score']:>9.9} {r['copy_pnl']:>10.10} "
                   f"{(r['roi'] or '-'):>9.9} {r['max_drawdown']:>9.9} {r['copied']:>6} {r['not_copied']:>5} "
                   f"{(r['slippage_mean_bps'] or '-'):>8.8} {(r['slippage_p90_bps'] or '-'):>8.8} "
                   f"{r['trades_per_day']:>7.7} {(r['largest_market_share'] or '-'):>7.7} "
                   f"{(r['leader_pnl'] or '-'):>12.12} {r['suggested_multiplier']:>5}")
    click.echo(f"score: {result['score']}")
    click.echo(f"scout: {folder / 'scout.html'}")


@main.command()
@click.option("--db", "db", help="Database to report on (paper, live or backtest): a SQLite file or a "
              "postgresql:// URL (default: the config's store).")
@click.option("--schema", help="PostgreSQL: the follower schema (default: the config's store.schema).")
@click.option("--compare", help="A second database (file or URL), shown side by side.")
@click.option("--compare-schema", help="PostgreSQL: the second database's schema (default: --schema).")
@click.option("--out", type=FOLDER, help="Folder for report.html, summary.json and the PNGs "
              "(default: DB-report next to the database).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary JSON.")
@click.pass_context
@_guard
def report(ctx: click.Context, db: Optional[str], schema: Optional[str], compare: Optional[str],
           compare_schema: Optional[str], out: Optional[str], as_json: bool) -> None:
    """Equity and drawdown, PnL per leader and market, rejections, slippage and
    tracking error, as HTML + PNG + JSON."""
    from pathlib import Path

    from ..adapters.storage.report_rows import is_postgres_url
    from .report import write_report

    target = _db_option(ctx, db, "")
    cfg = _config(ctx)
    if not target or not schema:
        store = cfg.values["store"]
        target = target or (store["url"] if cfg.store_kind == "postgres" else cfg.store_path)
        schema = schema or store["schema"]
    targets = [target, *([compare] if compare else [])]
    if out:
        folder = Path(out)
    elif is_postgres_url(target):
        folder = Path("copytrader-data") / f"{schema}-report"
    else:
        folder = Path(target).parent / f"{Path(target).stem}-report"
    written = write_report(targets, folder, schemas=[schema, compare_schema or schema], names=_config_leader_names(cfg))
    if as_json:
        _emit(__import__("json").loads(Path(written["json"]).read_text()))
        return
    _print_analyses(written)


def _config_leader_names(cfg) -> dict[str, str]:
    """The config's [[leaders]] names (the report adds those of `leaders add` from its database)."""
    return {address: leader.name for address, leader in cfg.engine.leaders.items() if leader.name}


def _print_analyses(written: dict[str, Any]) -> None:
    """What `report` prints, and `backtest` after it: the report's numbers, with their units."""
    for r in written["runs"]:
        c, p, e, sl = r["counts"], r["pnl"], r["equity"], r["slippage"]
        u = p["unit"]
        click.echo(f"{r['label']}: {c['leader_trades']} leader trades, copied {c['copied']}, rejected {c['rejected']}, "
                   f"not filled {c['not_filled']}")
        click.echo(f"  PnL realised {p['realised']} {u}, total {p['total']} {u} ({p['marking']}); "
                   f"open exposure {p['exposure']} {u}")
        click.echo(f"  {_resolved_line(p['resolutions'])}")
        slip = f"{sl['mean_bps']} bps" if sl["mean_bps"] is not None else "-"
        click.echo(f"  max drawdown {e['max_drawdown']} {e['unit']}; slippage mean {slip}; "
                   f"tracking error {r['tracking']['tracking_error'] or '-'}")
    click.echo(f"report: {written['html']}" + ("" if written["charts"] else
               "  (no charts: pip install 'copytrader[report]')"))


if __name__ == "__main__":  # pragma: no cover
    main()
