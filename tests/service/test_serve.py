"""`copytrader serve` as a process: two followers on a live (stand-in) feed,
/healthz and /metrics over loopback, a graceful stop on SIGTERM."""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

import httpx
from click.testing import CliRunner

from copytrader.adapters.storage.sqlite import SqliteStore
from copytrader.entrypoints.cli import main
from copytrader.entrypoints.config import SAMPLE_MARKETS
from tests.standins.data_api import DataApiStandIn, activity_row

LEADER = "0x" + "ab" * 20


def _config(tmp_path, api_url: str, port: int = 0) -> str:
    path = tmp_path / "serve.toml"
    path.write_text(f"""
profile = "paper"
leaders = ["{LEADER}"]
[store]
path = "{tmp_path / 'data' / 'ct.db'}"
[feed]
kind = "data_api"
url = "{api_url}"
poll_interval_s = 0.1
lookback_s = 600
[market]
path = "{SAMPLE_MARKETS}"
[service]
metrics_port = {port}
[[followers]]
name = "alice"
[[followers]]
name = "bob"
[followers.risk]
max_trade_usdc = 1
""")
    return str(path)


def _line(proc, deadline: float) -> str:
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if ready:
            line = proc.stderr.readline()
            if not line:
                break
            if "health http://" in line:
                return line
    raise AssertionError("serve did not print its address in time")


def test_serve_runs_followers_scrapes_and_stops_gracefully(tmp_path):
    with DataApiStandIn() as api:
        now = int(time.time())
        api.add(*(activity_row(LEADER, now - 60 + n, n) for n in range(3)))
        path = _config(tmp_path, api.url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("COPYTRADER_")}
        proc = subprocess.Popen([sys.executable, "-m", "copytrader.entrypoints.cli", "--config", path, "serve"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            line = _line(proc, time.monotonic() + 60)
            base = line.split("health ")[1].split("/healthz")[0]
            assert base.startswith("http://127.0.0.1:")
            with httpx.Client(timeout=5) as http:
                deadline = time.monotonic() + 30
                while True:  # the followers poll a few times, then the counters show the three trades
                    text = http.get(base + "/metrics").text
                    if ('copytrader_trades_seen_total{follower="alice"} 3.0' in text
                            and 'copytrader_trades_seen_total{follower="bob"} 3.0' in text):
                        break
                    assert time.monotonic() < deadline, text[-2000:]
                    time.sleep(0.1)
                health = http.get(base + "/healthz")
            assert health.status_code == 200, health.text
            body = health.json()
            assert {n: f["worker"] for n, f in body["followers"].items()} == {"alice": "running", "bob": "running"}
            assert all(f["last_poll_age_s"] < 30 for f in body["followers"].values())
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert proc.returncode == 0, err
    assert "stopped (alice: stopped, bob: stopped)" in err
    for name in ("alice", "bob"):  # leases released: another worker could open them now
        with SqliteStore(tmp_path / "data" / f"ct-{name}.db") as s:
            assert len(s.history()) == 3


def test_serve_with_a_bad_config_is_one_line_exit_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('profile = "paper"\n[feed]\nkind = "data_api"\n[[followers]]\nname = "Bad Name"\n')
    res = CliRunner().invoke(main, ["--config", str(path), "serve"], env={"COPYTRADER_CONFIG": None})
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    assert "followers[0].name" in res.output


def _two_followers(tmp_path):
    """Paper followers alice and bob replaying the sample, a SQLite file each."""
    from copytrader.entrypoints.config import SAMPLE_ACTIVITY

    path = tmp_path / "two.toml"
    path.write_text(f"""
profile = "paper"
[store]
path = "{tmp_path / 'data' / 'ct.db'}"
[feed]
kind = "replay"
path = "{SAMPLE_ACTIVITY}"
[market]
path = "{SAMPLE_MARKETS}"
[[followers]]
name = "alice"
[[followers]]
name = "bob"
""")
    return path


def test_follower_option_halts_and_reports_one_follower(tmp_path):
    path = _two_followers(tmp_path)
    runner = CliRunner()

    def cli(*args):
        return runner.invoke(main, ["--config", str(path), *args], env={"COPYTRADER_CONFIG": None})

    assert cli("--follower", "bob", "halt", "--create", "--reason", "bob only").exit_code == 0
    res = cli("serve", "--port", "0")
    assert res.exit_code == 0, res.output
    alice = json.loads(cli("--follower", "alice", "history", "--json", "--limit", "500").stdout)
    bob = json.loads(cli("--follower", "bob", "history", "--json", "--limit", "500").stdout)
    assert sum(r.get("status") == "filled" for r in alice) > 50 and not any(r.get("status") == "filled" for r in bob)
    assert [(r["kind"], r["action"], r["source"]) for r in bob if r["kind"] == "control"] == [("control", "halt", "cli")]
    missing = cli("--follower", "carol", "positions")
    assert missing.exit_code == 2 and "no such follower" in missing.output and "alice, bob" in missing.output


def test_readme_service_example_is_a_valid_config(tmp_path):
    from pathlib import Path

    from copytrader.entrypoints.fleet import load_fleet

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Running as a service", 1)[1].split("\n## ", 1)[0]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    key_file = tmp_path / "bob.key"
    key_file.write_text("0x" + "cd" * 32)
    key_file.chmod(0o600)
    path = tmp_path / "copytrader.toml"
    path.write_text(example.replace("/etc/copytrader/bob.key", str(key_file)))
    env = {"ALICE_PRIVATE_KEY": "0x" + "ab" * 32, "ALICE_TELEGRAM_TOKEN": "1:tok",
           "BOB_DISCORD_WEBHOOK": "https://discord.example/api/webhooks/1/x",
           "OPS_SLACK_WEBHOOK": "https://hooks.slack.example/services/T/B/x"}
    spec = load_fleet(str(path), environ=env)
    assert [f.name for f in spec.followers] == ["alice", "bob"]
    assert spec.base.store_kind == "postgres"
    assert [a.kind for a in spec.followers[1].alerts] == ["discord", "slack"]
    assert "[Service]" in section and "serve --live --yes" in section


def test_serve_one_follower_with_the_follower_option(tmp_path):
    path = _two_followers(tmp_path)
    res = CliRunner().invoke(main, ["--config", str(path), "--follower", "bob", "serve", "--port", "0"],
                             env={"COPYTRADER_CONFIG": None})
    assert res.exit_code == 0, res.output
    assert "[bob]" in res.output and "stopped (bob: finished)" in res.output
    assert (tmp_path / "data" / "ct-bob.db").exists() and not (tmp_path / "data" / "ct-alice.db").exists()


def test_serve_on_a_taken_port_is_one_line_exit_2(tmp_path):
    import socket

    from copytrader.entrypoints.config import SAMPLE_ACTIVITY

    path = tmp_path / "one.toml"
    path.write_text(f'profile = "paper"\n[store]\npath = "{tmp_path / "ct.db"}"\n'
                    f'[feed]\nkind = "replay"\npath = "{SAMPLE_ACTIVITY}"\n[market]\npath = "{SAMPLE_MARKETS}"\n')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        res = CliRunner().invoke(main, ["--config", str(path), "serve", "--port", str(port)],
                                 env={"COPYTRADER_CONFIG": None})
    assert res.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in res.output
    assert len(res.output.strip().splitlines()) == 1
