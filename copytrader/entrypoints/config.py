"""Configuration: a TOML file plus ``COPYTRADER_*`` environment variables,
validated on load into typed settings. Every error names the field and the
bad value in one line.

Environment variables override the file: ``COPYTRADER_<SECTION>__<KEY>``
(e.g. ``COPYTRADER_RISK__MAX_TRADE_USDC=50``), ``COPYTRADER_PROFILE``, and
``COPYTRADER_LEADERS`` (comma-separated addresses). The private key is only
ever read from ``COPYTRADER_PRIVATE_KEY`` or a 0600 key file.
"""
from __future__ import annotations

import difflib
import json
import os
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import attrs

from ..application.service import EngineSettings
from ..domain.model import OrderType, exact_decimal
from ..domain.risk import RiskLimits
from ..domain.sizing import FollowerSettings, LeaderSettings, SizingMode, SizingPolicy

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENV_PREFIX = "COPYTRADER_"
PROFILES = ("paper", "dry-run", "live", "test")  # test: in-memory fakes, for tests and embedding
LIVE_PROFILES = ("dry-run", "live")
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SAMPLE_ACTIVITY = SAMPLES / "activity.jsonl"
SAMPLE_MARKETS = SAMPLES / "markets.json"


class ConfigError(ValueError):
    """Bad configuration; the message is one line naming the field (or the
    environment variable) and, in ``detail``, what was wrong with it."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail or message


class Secret:
    """A value that never shows itself in reprs, logs or printed config."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


# -- value parsers --------------------------------------------------------
Parser = Callable[[str, Any], Any]


def _fail(field: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"config {field}: expected {expected}, got {value!r}", f"expected {expected}, got {value!r}")


def dec(minimum: Optional[Decimal] = Decimal(0), maximum: Optional[Decimal] = None,
        exclusive_min: bool = False, optional: bool = False) -> Parser:
    def parse(field: str, value: Any) -> Optional[Decimal]:
        if optional and (value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "off"))):
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
            raise _fail(field, value, "a number")
        try:
            out = Decimal(str(value).strip())
        except InvalidOperation:
            raise _fail(field, value, "a number") from None
        if not out.is_finite():
            raise _fail(field, value, "a finite number")
        if minimum is not None and (out < minimum or (exclusive_min and out == minimum)):
            raise _fail(field, value, f"a number {'>' if exclusive_min else '>='} {minimum}")
        if maximum is not None and out > maximum:
            raise _fail(field, value, f"a number <= {maximum}")
        return out
    return parse


def integer(minimum: int = 0, optional: bool = False) -> Parser:
    def parse(field: str, value: Any) -> Optional[int]:
        if optional and (value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "off"))):
            return None
        try:
            if isinstance(value, bool) or isinstance(value, float):
                raise ValueError
            out = int(str(value).strip())
        except ValueError:
            raise _fail(field, value, "a whole number") from None
        if out < minimum:
            raise _fail(field, value, f"a whole number >= {minimum}")
        return out
    return parse


def choice(*options: str, upper: bool = False) -> Parser:
    """One of ``options`` (lower case), in any case; ``upper``: given back in upper case."""
    def parse(field: str, value: Any) -> str:
        text = str(value).strip().lower() if isinstance(value, str) else value
        if text not in options:
            raise _fail(field, value, f"one of {', '.join(o.upper() if upper else o for o in options)}")
        return text.upper() if upper else text
    return parse


def boolean(field: str, value: Any) -> bool:
    """true or false (TOML), or the same as text (environment): true/false, yes/no, on/off, 1/0."""
    words = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in words:
        return words[value.strip().lower()]
    raise _fail(field, value, "true or false")


def text(field: str, value: Any) -> str:
    if not isinstance(value, str) or "\x00" in value:
        raise _fail(field, value, "text")
    return value.strip()


def str_list(field: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise _fail(field, value, "a list of text")
    return tuple(v.strip() for v in value)


SCHEMA: dict[str, dict[str, tuple[Parser, Any]]] = {
    "": {
        "profile": (choice(*PROFILES), "paper"),
        "log_level": (choice("debug", "info", "warning", "error"), "info"),
    },
    "store": {
        "kind": (choice("sqlite", "memory", "postgres"), "sqlite"),  # a store.url makes it postgres
        "path": (text, "copytrader-data/copytrader.db"),
        "url": (text, ""),  # postgresql://user:password@host:5432/db (a secret: shown redacted)
        "schema": (text, "copytrader"),  # PostgreSQL schema of the (single) follower
        # SQLite group commit of rows that send nothing: every N such trades or T ms, whichever first (1: off)
        "group_commit_rows": (integer(1), 256),
        "group_commit_ms": (integer(1), 100),
    },
    "feed": {
        "kind": (choice("replay", "data_api", "onchain", "both", "fast", "none"), "none"),
        "path": (text, ""),
        "latency_s": (integer(0), 0),
        "url": (text, "https://data-api.polymarket.com"),
        "poll_interval_s": (dec(Decimal("0.1")), Decimal(5)),
        "overlap_s": (integer(0), 300),  # re-read this far back: the Data API delivers rows late
        "lookback_s": (integer(0), 0),  # a newly followed leader: copy this much recent history
        "rate_per_s": (dec(Decimal("0.1"), Decimal(100)), Decimal(20)),  # documented limit: 100/s
        "burst": (integer(1), 20),
        "timeout_s": (dec(Decimal("0.1")), Decimal(10)),
        "rpc_url": (text, ""),  # on-chain: a Polygon JSON-RPC URL (default: live.rpc_url)
        "ws_url": (text, ""),  # on-chain: a WebSocket JSON-RPC URL: fills pushed (eth_subscribe); "": polled
        "confirmations": (integer(0), 3),
        "max_range": (integer(1), 500),
        "start_block": (integer(0, optional=True), None),  # on-chain: first block (default: the head)
        # fast: Polymarket's activity socket in front of the chain (a hint the chain confirms)
        "rtds_url": (text, "wss://ws-live-data.polymarket.com"),
        "rtds_stale_s": (dec(Decimal(1)), Decimal(30)),  # no data frame for this long: reconnect
        "rtds_confirm_s": (dec(Decimal(1)), Decimal(60)),  # a hint the chain has not confirmed by then is counted
    },
    "market": {
        "kind": (choice("auto", "static", "clob"), "auto"),  # auto: static for paper/test, clob otherwise
        "path": (text, ""),
        "rules_ttl_s": (dec(Decimal(0)), Decimal(60)),
        "book_ttl_s": (dec(Decimal(0)), Decimal(1)),
        # the book mirror (CLOB market channel) for dry-run and live; "" or "off": GET /book per trade
        "ws_url": (text, "wss://ws-subscriptions-clob.polymarket.com/ws/market"),
        "ws_stale_s": (dec(Decimal("0.1")), Decimal(60)),  # a mirrored book older than this: GET /book
    },
    "live": {
        "host": (text, "https://clob.polymarket.com"),
        "gamma_host": (text, "https://gamma-api.polymarket.com"),  # market versions (v1 CTF / v2 positions)
        "chain_id": (integer(1), 137),
        "signature_type": (choice("eoa", "poly_proxy", "gnosis_safe", "deposit_wallet"), "eoa"),
        "funder": (text, ""),
        "key_file": (text, ""),
        "timeout_s": (dec(Decimal("0.05")), Decimal(10)),
        "rpc_url": (text, ""),
        "gtd_expiration_s": (integer(61), 300),
        # Polymarket's relayer: `approve` sends a proxy, safe or deposit wallet's approvals through it
        "relayer_url": (text, "https://relayer-v2.polymarket.com"),
        "relayer_key_file": (text, ""),  # 0600: RELAYER_API_KEY=..., or the three BUILDER_* lines
        "relayer_key_address": (text, ""),  # the address owning the relayer API key (default: the key's)
        "relayer_poll_ms": (integer(1), 2000),  # the SDK's pace and bound waiting for a relayed transaction
        "relayer_max_polls": (integer(1), 100),
        # the live profile redeems resolved markets' winnings by itself (needs rpc_url; a relayer key
        # for a proxy, safe or deposit wallet); false: by `copytrader redeem --live --yes` only
        "auto_redeem": (boolean, True),
        # the CLOB user channel (live): our trades' settlement pushed; "" or "off": GET /data/trades polling
        "ws_user_url": (text, "wss://ws-subscriptions-clob.polymarket.com/ws/user"),
    },
    "audit": {
        "max_core_dependencies": (integer(1), 8),  # distributions a plain `pip install copytrader` brings
        "max_live_dependencies": (integer(1), 56),  # with the live extra: 51 (polymarket-client 0.14, web3 7) + room
        "max_error_rate": (dec(Decimal(0), Decimal(1)), Decimal("0.05")),  # faulted orders / orders sent
    },
    "paper": {
        "fee_rate": (dec(Decimal(0), Decimal(1)), Decimal(0)),
    },
    "scout": {  # `copytrader scout` and `backtest --delay-s` (adapters.market.delayed)
        "delay_s": (dec(Decimal(0), Decimal(3600), optional=True), None),  # off: the chosen feed's typical delay
        "window_s": (integer(0), 60),  # a copy takes the market's trades printed this long after the delay
        "cache": (text, ""),  # the scout's SQLite cache (default: scout-cache.db next to store.path)
    },
    "service": {  # `copytrader serve`: followers in threads, /healthz and /metrics
        "metrics_host": (text, "127.0.0.1"),
        "metrics_port": (integer(0), 9464),  # 0: any free port (printed at start)
        "lease_retry_s": (dec(Decimal("0.01")), Decimal(5)),  # a follower another worker holds: retry after
        "restart_backoff_s": (dec(Decimal("0.01")), Decimal(10)),  # a failed follower worker: restart after
        "stale_poll_s": (integer(1), 120),  # /healthz is 503 when a feed has not polled for this long
        "reconcile_interval_s": (integer(0), 600),  # live: book vs chain every this many seconds (0: off)
    },
    "dashboard": {  # the dashboard and its JSON API in `serve` and `copytrader dashboard` (the dashboard extra)
        "host": (text, ""),  # default service.metrics_host (127.0.0.1): a public address needs TLS in front
        "port": (integer(0, optional=True), 8765),  # "off": serve runs without it; 0: any free port
        "token_env": (text, ""),  # the environment variable holding the control token ("": read-only)
        "refresh_s": (dec(Decimal("0.05")), Decimal(1)),  # how often the page's stream looks for news
        "stats_ttl_s": (dec(Decimal(0)), Decimal(5)),  # statistics and equity recomputed at most this often
    },
    "follower": {
        "id": (text, "default"),
        "bankroll": (dec(exclusive_min=True), Decimal("1000")),
        "max_slippage": (dec(Decimal(0), Decimal("0.5")), Decimal("0.02")),
        "order_type": (choice("fok", "fak", "gtc", "gtd", upper=True), "FOK"),
        "max_trade_age_s": (integer(1), 300),
    },
    "sizing": {
        "mode": (choice(*(m.value for m in SizingMode)), "fixed"),
        "fixed_usdc": (dec(exclusive_min=True), Decimal("10")),
        "multiplier": (dec(exclusive_min=True), Decimal("0.1")),
        "bankroll_pct": (dec(exclusive_min=True, maximum=Decimal(1)), Decimal("0.01")),
    },
    "risk": {
        "max_trade_usdc": (dec(exclusive_min=True, optional=True), Decimal("100")),
        "max_market_usdc": (dec(exclusive_min=True, optional=True), Decimal("250")),
        "max_total_exposure_usdc": (dec(exclusive_min=True, optional=True), Decimal("1000")),
        "max_open_positions": (integer(1, optional=True), 20),
        "daily_loss_limit_usdc": (dec(exclusive_min=True, optional=True), Decimal("100")),
        "max_buy_price": (dec(Decimal(0), Decimal(1), exclusive_min=True), Decimal("0.97")),
        "min_sell_price": (dec(Decimal(0), Decimal(1)), Decimal(0)),
        "max_slippage": (dec(Decimal(0), Decimal(1)), Decimal("0.05")),
        "allow_markets": (str_list, ()),
        "deny_markets": (str_list, ()),
        "max_orders_per_window": (integer(1, optional=True), 30),
        "window_s": (integer(1), 60),
        "max_consecutive_faults": (integer(1), 5),
    },
}
LEADER_SCHEMA: dict[str, tuple[Parser, Any]] = {
    "address": (text, None),
    "name": (text, ""),
    "multiplier": (dec(exclusive_min=True), Decimal(1)),
    "budget_usdc": (dec(exclusive_min=True, optional=True), None),
    # leader health (application.leader_health): pause this leader past a copy drawdown, or a losing streak
    "pause_drawdown_usdc": (dec(exclusive_min=True, optional=True), None),
    "pause_loss_streak": (integer(1, optional=True), None),
}
SECRET_ENV = ("PRIVATE_KEY",)
# The relayer's credentials (secrets, never config values): a Relayer API key, or a builder key's three parts.
RELAYER_ENV = ("RELAYER_API_KEY", "BUILDER_API_KEY", "BUILDER_SECRET", "BUILDER_PASSPHRASE")
# the last four: for the test suite (.ci/run; COPYTRADER_SCREENSHOT refreshes README's screenshots)
NON_CONFIG_ENV = ("CONFIG", "REQUIRE_PG", "TEST_PG_URL", "REQUIRE_BROWSER", "SCREENSHOT")


@attrs.frozen
class Config:
    profile: str
    log_level: str
    store_kind: str
    store_path: str
    feed_kind: str
    feed_path: str
    feed_latency_s: int
    market_kind: str
    market_path: str
    fee_rate: Decimal
    engine: EngineSettings
    live: Any = None  # LiveSettings
    private_key: Optional[Secret] = attrs.field(default=None, repr=False)
    relayer_key: Optional[Mapping[str, Secret]] = attrs.field(default=None, repr=False)  # RELAYER_ENV names
    source: str = "defaults"
    values: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict, repr=False)

    def effective(self) -> dict[str, Any]:
        """The effective configuration as plain data, secrets redacted."""
        out: dict[str, Any] = {"source": self.source}
        for section, values in self.values.items():
            rendered = {k: _plain(v) for k, v in values.items()}
            if section:
                out[section] = rendered
            else:
                out.update(rendered)
        out["leaders"] = [
            {"address": l.address, "name": l.name, "multiplier": str(l.multiplier),
             "budget_usdc": None if l.budget_usdc is None else str(l.budget_usdc),
             "pause_drawdown_usdc": None if l.pause_drawdown_usdc is None else str(l.pause_drawdown_usdc),
             "pause_loss_streak": l.pause_loss_streak,
             **({"sizing": l.sizing.mode.value} if l.sizing else {})}
            for l in self.engine.leaders.values()]
        out["private_key"] = "***redacted***" if self.private_key else None
        out["relayer_key"] = "***redacted***" if self.relayer_key else None
        if out.get("store", {}).get("url"):
            from ..adapters.storage.postgres import redact_url

            out["store"]["url"] = redact_url(out["store"]["url"])
        return out

    def to_toml(self, followers: Optional[Mapping[str, Mapping[str, Any]]] = None) -> str:
        """The effective configuration as the TOML that would give it (secrets
        redacted, shown as comments; a cap that is off as ``"off"``), with the
        ``[[followers]]`` of ``describe_followers`` as comments under their names."""
        lines = [f"# source: {self.source}"]
        for section, values in self.values.items():
            if section:
                lines += ["", f"[{'follower.sizing' if section == 'sizing' else section}]"]
            for key, value in values.items():
                if section == "store" and key == "url" and value:
                    from ..adapters.storage.postgres import redact_url

                    value = redact_url(value)
                lines.append(f"{key} = {_toml_value(value)}")
            if section == "live":
                lines.append(f"# private key: {'***redacted***' if self.private_key else 'none'} "
                             "(COPYTRADER_PRIVATE_KEY or live.key_file)")
                lines.append(f"# relayer key: {'***redacted***' if self.relayer_key else 'none'} "
                             "(COPYTRADER_RELAYER_API_KEY, COPYTRADER_BUILDER_*, or live.relayer_key_file)")
        for leader in self.engine.leaders.values():
            lines += ["", "[[leaders]]", f"address = {_toml_value(leader.address)}",
                      f"name = {_toml_value(leader.name)}", f"multiplier = {_toml_value(leader.multiplier)}",
                      f"budget_usdc = {_toml_value(leader.budget_usdc)}",
                      f"pause_drawdown_usdc = {_toml_value(leader.pause_drawdown_usdc)}",
                      f"pause_loss_streak = {_toml_value(leader.pause_loss_streak)}"]
            if leader.sizing is not None:
                p = leader.sizing
                lines += ["[leaders.sizing]", f"mode = {_toml_value(p.mode.value)}",
                          *(f"{k} = {_toml_value(getattr(p, k))}"
                            for k in ("fixed_usdc", "multiplier", "bankroll_pct"))]
        for name, shown in (followers or {}).items():
            lines += ["", "[[followers]]", f"name = {_toml_value(name)}"]
            lines += [f"# {key}: {', '.join(map(str, value)) if isinstance(value, list) else value}"
                      if value else f"# {key}: none" for key, value in shown.items()]
        return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if value is None:  # an optional setting that is not set: a cap that is off
        return '"off"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_toml_value, value)) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def read_key_file(path: str) -> str:
    """The private key from a file that only its owner can read (0600)."""
    return _read_secret_file("live.key_file", path).strip()


def _read_secret_file(setting: str, path: str) -> str:
    p = Path(path).expanduser()
    try:
        mode = p.stat().st_mode & 0o777
    except OSError as exc:
        raise ConfigError(f"config {setting}: cannot read {p}: {exc.strerror}") from None
    if mode & 0o077:
        raise ConfigError(f"config {setting}: {p} has mode {mode:04o}; it must be 0600 (chmod 600 {p})")
    return p.read_text(encoding="utf-8")


def check_key(key: str) -> None:
    """Reject a malformed key without ever echoing it."""
    body = key[2:] if key.startswith("0x") else key
    if len(body) != 64 or any(c not in "0123456789abcdefABCDEF" for c in body):
        raise ConfigError("private key: expected 64 hex digits (from COPYTRADER_PRIVATE_KEY or live.key_file); "
                          "the value is not shown")


def relayer_key(environ: Mapping[str, str], key_file: str) -> Optional[dict[str, Secret]]:
    """The relayer's credentials: COPYTRADER_RELAYER_API_KEY, or COPYTRADER_BUILDER_API_KEY,
    _SECRET and _PASSPHRASE; else live.relayer_key_file (0600, NAME=value lines of the same
    names). None when none is given. Values are never echoed."""
    found = {n: environ[ENV_PREFIX + n] for n in RELAYER_ENV if environ.get(ENV_PREFIX + n)}
    where = "environment " + ", ".join(ENV_PREFIX + n for n in found)
    if not found and key_file:
        where = f"live.relayer_key_file {key_file}"
        for number, line in enumerate(_read_secret_file("live.relayer_key_file", key_file).splitlines(), 1):
            name, sep, value = line.strip().partition("=")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name = name.strip().upper().removeprefix(ENV_PREFIX)
            if not sep or name not in RELAYER_ENV or not value.strip():
                raise ConfigError(f"config live.relayer_key_file: line {number} is not NAME=value with NAME one of "
                                  f"{', '.join(RELAYER_ENV)} (the value is not shown)")
            found[name] = value.strip()
    if not found:
        return None
    builder = [n for n in RELAYER_ENV[1:] if n in found]
    if "RELAYER_API_KEY" in found and builder:
        raise ConfigError(f"{where}: give a Relayer API key (RELAYER_API_KEY) or a builder key (BUILDER_API_KEY, "
                          "BUILDER_SECRET, BUILDER_PASSPHRASE), not both")
    if builder and len(builder) != 3:
        missing = ", ".join(ENV_PREFIX + n for n in RELAYER_ENV[1:] if n not in found)
        raise ConfigError(f"{where}: a builder key needs all three parts; missing {missing}")
    return {n: Secret(v) for n, v in found.items()}


def _live(values: Mapping[str, Any], fee_rate: Decimal) -> Any:
    from ..adapters.execution.polymarket.settings import LiveSettings, SignatureType

    funder = values["funder"]
    for name in ("funder", "relayer_key_address"):
        if values[name] and (len(values[name]) != 42 or not values[name].startswith("0x")):
            raise _fail(f"live.{name}", values[name], "an address (0x and 40 hex digits)")
    try:
        return LiveSettings(host=values["host"], chain_id=values["chain_id"],
                            signature_type=SignatureType[values["signature_type"].upper()],
                            funder=funder or None, timeout_s=float(values["timeout_s"]),
                            rpc_url=values["rpc_url"], gtd_expiration_s=values["gtd_expiration_s"],
                            fee_rate=fee_rate, relayer_url=values["relayer_url"],
                            relayer_key_address=values["relayer_key_address"] or None,
                            relayer_poll_ms=values["relayer_poll_ms"], relayer_max_polls=values["relayer_max_polls"],
                            auto_redeem=values["auto_redeem"], ws_user_url=values["ws_user_url"])
    except ValueError as exc:
        raise ConfigError(f"config live.funder: {exc}") from None


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _check_keys(field: str, given: Mapping[str, Any], known: Mapping[str, Any]) -> None:
    for key in given:
        if key not in known:
            hint = difflib.get_close_matches(key, list(known), n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"config {field + '.' if field else ''}{key}: unknown setting{extra}",
                              f"unknown setting{extra}")


def _from_variable(exc: ConfigError, variable: Optional[str]) -> ConfigError:
    """``exc`` told about the environment variable the bad value came from (if it did)."""
    return exc if variable is None else ConfigError(f"environment {variable}: {exc.detail}", exc.detail)


def _section(name: str, given: Mapping[str, Any], variables: Mapping[tuple[str, str], str]) -> dict[str, Any]:
    """The section's settings, parsed; ``variables``: (section, key) -> the variable that set it."""
    schema = SCHEMA[name]
    for key in given:
        try:
            _check_keys(name, {key: None}, schema)
        except ConfigError as exc:
            raise _from_variable(exc, variables.get((name, key))) from None
    out = {}
    for key, (parser, default) in schema.items():
        try:
            out[key] = parser(f"{name}.{key}" if name else key, given[key]) if key in given else default
        except ConfigError as exc:
            raise _from_variable(exc, variables.get((name, key))) from None
    return out


def _leader(index: int, given: Any, defaults: dict[str, Any]) -> LeaderSettings:
    field = f"leaders[{index}]"
    if isinstance(given, str):
        given = {"address": given}
    if not isinstance(given, dict):
        raise _fail(field, given, "a table with an address")
    sizing_raw = given.get("sizing")
    _check_keys(field, {k: v for k, v in given.items() if k != "sizing"}, LEADER_SCHEMA)
    if "address" not in given:
        raise ConfigError(f"config {field}.address: missing")
    values = {k: p(f"{field}.{k}", given[k]) if k in given else d for k, (p, d) in LEADER_SCHEMA.items()}
    sizing = None
    if sizing_raw is not None:
        if not isinstance(sizing_raw, dict):
            raise _fail(f"{field}.sizing", sizing_raw, "a table")
        _check_keys(f"{field}.sizing", sizing_raw, SCHEMA["sizing"])
        merged = {k: SCHEMA["sizing"][k][0](f"{field}.sizing.{k}", v) for k, v in sizing_raw.items()}
        sizing = _policy({**defaults, **merged})
    try:
        return LeaderSettings(sizing=sizing, **values)
    except ValueError as exc:
        raise ConfigError(f"config {field}.address: {exc}", str(exc)) from None


def _policy(values: Mapping[str, Any]) -> SizingPolicy:
    return SizingPolicy(mode=SizingMode(values["mode"]), fixed_usdc=values["fixed_usdc"],
                        multiplier=values["multiplier"], bankroll_pct=values["bankroll_pct"])


def _from_env(environ: Mapping[str, str]) -> tuple[dict[str, dict[str, str]], dict[tuple[str, str], str],
                                                   Optional[str], Optional[str]]:
    """Overrides from ``COPYTRADER_*`` variables: (sections, the variable of each
    (section, key), leaders, private key). ``[follower.sizing]`` is
    ``COPYTRADER_FOLLOWER__SIZING__<KEY>`` (or ``COPYTRADER_SIZING__<KEY>``)."""
    sections: dict[str, dict[str, str]] = {}
    variables: dict[tuple[str, str], str] = {}
    leaders = key = None
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX):].lower()
        if rest.upper() in NON_CONFIG_ENV or rest.upper() in RELAYER_ENV:  # relayer_key() reads these
            continue
        if rest.upper() in SECRET_ENV:
            key = value
            continue
        if rest == "leaders":
            leaders = value
            continue
        section, _, field = rest.rpartition("__")
        section = "sizing" if section == "follower__sizing" else section
        if section not in SCHEMA:
            raise ConfigError(f"environment {name}: unknown setting (expected {ENV_PREFIX}<SECTION>__<KEY>)")
        sections.setdefault(section, {})[field] = value
        variables[(section, field)] = name
    return sections, variables, leaders, key


def _store_kind(store: Mapping[str, Any]) -> str:
    """``store.url`` (postgresql://...) selects PostgreSQL unless the kind is memory."""
    import re

    url, kind = store["url"], store["kind"]
    if kind == "memory":
        return kind
    if url:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError("config store.url: expected a postgresql:// URL (the value is not shown)")
        kind = "postgres"
    elif kind == "postgres":
        raise ConfigError("config store.kind: postgres needs store.url (postgresql://...)")
    if kind == "postgres" and not re.match(r"^[a-z_][a-z0-9_]{0,62}$", store["schema"]):
        raise _fail("store.schema", store["schema"], "lower-case letters, digits and _ (a PostgreSQL schema)")
    return kind


def load_config(path: Optional[str | Path] = None, environ: Optional[Mapping[str, str]] = None,
                overrides: Optional[Mapping[str, Mapping[str, Any]]] = None) -> Config:
    """Read the TOML file (if any), apply the environment, then ``overrides``
    (``{"section": {"key": value}}``, "" for top-level keys), and validate."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"), parse_float=exact_decimal)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {p}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from None
        except ValueError as exc:  # not TOML, not UTF-8, a number out of range
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
        source = str(p)
    top = {k: v for k, v in data.items() if not isinstance(v, (dict, list))}
    tables = {k: v for k, v in data.items() if isinstance(v, (dict, list))}
    _check_keys("", {**top, **tables}, {**SCHEMA[""], **{k: 1 for k in SCHEMA if k not in ("", "sizing")}, "leaders": 1,
                                        "followers": 1, "alerts": 1})  # the last two: read by .fleet
    follower_raw = dict(tables.get("follower", {}))
    if not isinstance(tables.get("follower", {}), dict):
        raise _fail("follower", tables["follower"], "a table")
    raw: dict[str, dict[str, Any]] = {"": top, "sizing": follower_raw.pop("sizing", {})}
    raw["follower"] = follower_raw
    for name in SCHEMA:
        if name and name not in raw:
            section = tables.get(name, {})
            if not isinstance(section, dict):
                raise _fail(name, section, "a table")
            raw[name] = dict(section)
    env_sections, variables, env_leaders, env_key = _from_env(environ)
    for layer in (env_sections, overrides or {}):
        for name, values in layer.items():
            if name not in SCHEMA:
                raise ConfigError(f"config {name}: unknown section")
            raw.setdefault(name, {}).update(values)
    for name, values in (overrides or {}).items():  # an override replaces the variable's value
        for key in values:
            variables.pop((name, key), None)
    values = {name: _section(name, raw.get(name, {}), variables) for name in SCHEMA}

    leaders_raw: Any = tables.get("leaders", [])
    if env_leaders is not None:
        leaders_raw = [a for a in (s.strip() for s in env_leaders.split(",")) if a]
    if not isinstance(leaders_raw, list):
        raise _fail("leaders", leaders_raw, "a list of [[leaders]] tables")
    leaders: dict[str, LeaderSettings] = {}
    try:
        for i, entry in enumerate(leaders_raw):
            leader = _leader(i, entry, values["sizing"])
            if leader.address in leaders:
                raise ConfigError(f"config leaders[{i}].address: {leader.address} is listed twice",
                                  f"{leader.address} is listed twice")
            leaders[leader.address] = leader
    except ConfigError as exc:
        raise _from_variable(exc, f"{ENV_PREFIX}LEADERS" if env_leaders is not None else None) from None

    f, r = values["follower"], values["risk"]
    engine = EngineSettings(
        follower=FollowerSettings(
            id=f["id"] or "default", sizing=_policy(values["sizing"]), bankroll=f["bankroll"],
            max_slippage=f["max_slippage"], order_type=OrderType(f["order_type"].upper()),
            max_trade_age_s=f["max_trade_age_s"]),
        leaders=leaders,
        limits=RiskLimits(**{k: v for k, v in r.items() if k != "max_consecutive_faults"}),
        max_consecutive_faults=r["max_consecutive_faults"],
    )
    top_v = values[""]
    live = values["live"]
    market_kind = values["market"]["kind"]
    if market_kind == "auto":
        market_kind = "clob" if top_v["profile"] in LIVE_PROFILES else "static"
    key = env_key or (read_key_file(live["key_file"]) if live["key_file"] else None)
    if key is not None:
        check_key(key)
    store_kind = _store_kind(values["store"])
    return Config(
        profile=top_v["profile"], log_level=top_v["log_level"],
        store_kind=store_kind, store_path=values["store"]["path"],
        feed_kind=values["feed"]["kind"], feed_path=values["feed"]["path"],
        feed_latency_s=values["feed"]["latency_s"],
        market_kind=market_kind, market_path=values["market"]["path"], live=_live(live, values["paper"]["fee_rate"]),
        fee_rate=values["paper"]["fee_rate"], engine=engine,
        private_key=Secret(key) if key else None, relayer_key=relayer_key(environ, live["relayer_key_file"]),
        source=source, values=values,
    )
