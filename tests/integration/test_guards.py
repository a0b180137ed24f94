"""Guards on the architecture: no live SDK or service extra on the paper path, layers respected."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import copytrader

PACKAGE = Path(copytrader.__file__).resolve().parent
# the live SDKs (the unified SDK and what it brings), and the service extras (PostgreSQL,
# metrics, the HTTP client of webhooks), the dashboard extra (uvicorn, starlette, our web adapter),
# and what dependency-injector probes for when it loads (pydantic, starlette and anyio, FastAPI,
# Werkzeug: copytrader.entrypoints.di hides them from it, ~90 ms of start-up).
LIVE = ("polymarket", "web3", "eth_account", "eth_abi", "eth_utils", "eth_keys", "coincurve", "websockets",
        "httpx", "psycopg", "prometheus_client", "uvicorn", "pydantic", "pydantic_core", "pydantic_settings",
        "starlette", "anyio", "fastapi", "fast_depends", "werkzeug")
WEB = ("copytrader.adapters.web.app", "copytrader.adapters.web.server")

PROBE = """
import sys, json
LIVE, WEB = {live!r}, {web!r}
{body}
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in LIVE or m in WEB)))
"""


def _loaded_after(body: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(live=LIVE, web=WEB, body=body)],
                         capture_output=True, text=True, timeout=120, check=True)
    return __import__("json").loads(out.stdout.strip().splitlines()[-1])


def test_paper_app_handling_trades_never_imports_live_sdks():
    body = """
from copytrader.testing import make_app, make_trade, book
app, fakes = make_app()
fakes.market.put(*book(asks=[("0.51", "500")], bids=[("0.49", "500")]))
assert app.process(make_trade(seq=1)).status == "filled"
assert app.process(make_trade(side="SELL", seq=2)).status == "filled"
"""
    assert _loaded_after(body) == []


def test_cli_help_and_paper_replay_never_import_live_sdks(tmp_path):
    body = f"""
from click.testing import CliRunner
from copytrader.entrypoints.cli import main
r = CliRunner().invoke(main, ["--help"])
assert r.exit_code == 0, r.output
r = CliRunner().invoke(main, ["--db", {str(tmp_path / 'g.db')!r}, "run", "--sample"])
assert r.exit_code == 0, r.output
for args in (["halt"], ["resume"], ["history"], ["dashboard", "--help"]):  # control goes through Control
    r = CliRunner().invoke(main, ["--db", {str(tmp_path / 'g.db')!r}, *args])
    assert r.exit_code == 0, r.output
"""
    assert _loaded_after(body) == []


def test_probe_detects_a_live_module_when_one_is_loaded():
    # The guard above would be worthless if the probe could not see a load.
    body = "import types; sys.modules['web3'] = types.ModuleType('web3')"
    assert _loaded_after(body) == ["web3"]


def test_import_linter_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(exe), str(PACKAGE.parent / "setup.cfg")], capture_output=True,
                         text=True, timeout=300, cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 3 kept, 0 broken" in out.stdout


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_domain_imports_only_stdlib_and_attrs():
    allowed = set(sys.stdlib_module_names) | {"attrs", "__future__"}
    banned_stdlib = {"logging", "os", "socket", "sqlite3", "random", "time", "subprocess", "threading"}
    for path in sorted((PACKAGE / "domain").glob("*.py")):
        found = _imports(path)
        assert found <= allowed, f"{path.name} imports {sorted(found - allowed)}"
        assert not found & banned_stdlib, f"{path.name} does I/O or randomness: {sorted(found & banned_stdlib)}"


def test_probe_sees_what_dependency_injector_imports_when_loaded_plainly():
    # The guard's pydantic and starlette entries mean something only if dependency-injector, imported
    # without copytrader.entrypoints.di, loads them here (they come with the test extras).
    import importlib.util

    probed = {name for name in ("pydantic", "starlette.requests") if importlib.util.find_spec(name.split(".")[0])}
    assert "starlette.requests" in probed  # the test extra's
    assert probed <= set(_loaded_after("import dependency_injector.containers"))
