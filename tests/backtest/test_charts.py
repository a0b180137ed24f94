"""The report's charts, drawn from real databases and inspected as figures:
whole-number ticks on count axes, legends beside the data, leader names,
and a "no data" notice on an empty database."""
from __future__ import annotations

import json

import pytest

from .conftest import invoke

pytest.importorskip("matplotlib")

from copytrader.entrypoints.report import analyse_db, figures  # noqa: E402

WHALE = "0x7c3db723f1d4d8cb9c550095203b686cb11e5c6b"
SWING = "0x1f2e3d4c5b6a79880716253443526170f1e2d3c4"


@pytest.fixture(scope="module")
def dbs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("charts")
    paper, empty = tmp / "paper.db", tmp / "empty.db"
    assert invoke("--db", str(paper), "run", "--sample").exit_code == 0  # every wallet in the replay is copied
    assert invoke("--db", str(paper), "leaders", "add", WHALE, "--name", "whale").exit_code == 0
    assert invoke("--db", str(empty), "leaders", "add", "--create", WHALE).exit_code == 0
    return tmp, paper, empty


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _whole(ticks) -> bool:
    return len(ticks) > 0 and all(float(t).is_integer() for t in ticks)


def test_count_axes_have_whole_number_ticks(dbs):
    _tmp, paper, _empty = dbs
    figs = figures([analyse_db(paper)])
    for name, axis in (("rejections", "x"), ("slippage", "y")):
        ax = figs[name].axes[0]
        figs[name].canvas.draw()
        assert _whole(getattr(ax, f"get_{axis}ticks")()), (name, getattr(ax, f"get_{axis}ticks")())
    assert "bps" in figs["slippage"].axes[0].get_xlabel() + figs["slippage"].axes[0].get_title()


def test_legends_sit_beside_the_data(dbs):
    tmp, paper, _empty = dbs
    other = tmp / "other.db"
    assert invoke("backtest", "--sample", "--db", str(other), "--no-report").exit_code == 0
    figs = figures([analyse_db(paper), analyse_db(other)])
    assert set(figs) == {"equity", "drawdown", "pnl_leader", "pnl_market", "rejections", "slippage", "tracking"}
    for name, fig in figs.items():
        fig.canvas.draw()
        ax = fig.axes[0]
        legend = ax.get_legend()
        assert legend is not None, name
        assert not legend.get_window_extent().overlaps(ax.get_window_extent()), name


def test_leaders_are_named_where_known(dbs):
    _tmp, paper, _empty = dbs
    # a name stored by `leaders add` (in the database), and one from the config's [[leaders]]
    run = analyse_db(paper, names={SWING: "swing"})
    figs = figures([run])
    labels = [t.get_text() for t in figs["pnl_leader"].axes[0].get_yticklabels()]
    assert "whale" in labels and "swing" in labels
    assert any(label.startswith("0x9a8b7c6d") for label in labels)  # no name known: the address, shortened
    rows = {r["leader"]: r["name"] for r in run.summary["pnl_by_leader"]}
    assert rows[WHALE] == "whale" and rows[SWING] == "swing"


def test_report_command_takes_leader_names_from_the_config(dbs):
    tmp, paper, _empty = dbs
    cfg = tmp / "names.toml"
    cfg.write_text(f'[[leaders]]\naddress = "{SWING}"\nname = "swing"\n')
    res = invoke("--config", str(cfg), "report", "--db", str(paper), "--out", str(tmp / "named"), "--json")
    assert res.exit_code == 0, res.output
    rows = {r["leader"]: r["name"] for r in json.loads(res.stdout)["runs"][0]["pnl_by_leader"]}
    assert rows[SWING] == "swing" and rows[WHALE] == "whale"
    assert "swing" in (tmp / "named" / "report.html").read_text()


def test_an_empty_database_says_no_data(dbs):
    tmp, _paper, empty = dbs
    figs = figures([analyse_db(empty)])
    for name, fig in figs.items():
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        assert any("no data" in t for t in texts), name
    res = invoke("report", "--db", str(empty), "--out", str(tmp / "empty-report"))
    assert res.exit_code == 0, res.output
    html = (tmp / "empty-report" / "report.html").read_text()
    assert "No data" in html and "no leader trades" in html
    assert all((tmp / "empty-report" / f"{n}.png").stat().st_size > 1000 for n in figs)
