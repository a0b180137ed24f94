"""`copytrader report`: an HTML page, PNG charts and a JSON summary of one
database, or of two side by side (``--compare``).

matplotlib (the ``report`` extra) is imported only here, only when charts
are drawn, with the Agg backend; without it the HTML and JSON are still
written and the page says how to get the charts.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Optional, Sequence

from ..adapters.storage.report_rows import is_postgres_url, open_report_source
from ..application.report import Analysis, analyse

# a run each (backtest --compare-config may add several); more runs than colours reuse them
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
CHARTS = ("equity", "drawdown", "pnl_leader", "pnl_market", "rejections", "slippage", "tracking")


def analyse_db(path: str | Path, label: Optional[str] = None, schema: str = "copytrader",
               names: Optional[dict[str, str]] = None) -> Analysis:
    """Analyse a SQLite file, or a PostgreSQL URL's follower ``schema``.
    Leaders are named by ``names`` (the config's [[leaders]]), else by the
    names stored with `copytrader leaders add`."""
    with open_report_source(path, schema) as src:
        meta = src.meta()
        name = label or meta.get("label") or (schema if is_postgres_url(path) else Path(path).stem)
        known = {**src.leader_names(), **{a.lower(): n for a, n in (names or {}).items() if n}}
        result = analyse(src.events(), src.positions(), src.orphan_intents(), label=name,
                         meta={**meta, "database": src.name}, names=known)
    return result


def _labels(runs: Sequence[Analysis]) -> None:
    if len(runs) == 2 and runs[0].label == runs[1].label:
        runs[1].label += " (compare)"
        runs[1].summary["label"] = runs[1].label


def _empty(run: Analysis) -> bool:
    c = run.summary["counts"]
    return not (c["leader_trades"] or c["non_trade_rows"] or c["manual_orders"])


def charts(runs: Sequence[Analysis], out: Path) -> list[Path]:
    """Draw the PNGs into ``out``; [] when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return []
    drawn = figures(runs)  # sets the Agg backend before pyplot is used here
    import matplotlib.pyplot as plt

    written: list[Path] = []
    for name, fig in drawn.items():
        path = out / f"{name}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")  # "tight": legends beside the axes are kept
        plt.close(fig)
        written.append(path)
    return written


def figures(runs: Sequence[Analysis]) -> dict[str, Any]:
    """The charts as matplotlib figures (Agg backend), by name (see ``CHARTS``)."""
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    matplotlib.use("Agg", force=True)
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from datetime import datetime, timezone
    from matplotlib.ticker import MaxNLocator

    out: dict[str, Any] = {}

    def finish(name: str, fig: Any, ax: Any, drawn: bool, nothing: str) -> None:
        """A legend beside the axes (it never hides data), or a notice on empty axes."""
        if drawn:
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        else:
            ax.cla()
            ax.set_xticks([])
            ax.set_yticks([])
            ax.text(0.5, 0.5, f"no data: {nothing}", transform=ax.transAxes, ha="center", va="center",
                    fontsize=10, color="#666")
            ax.set_title(title_of[name], fontsize=10)
        fig.tight_layout()
        out[name] = fig

    title_of = {
        "equity": "Equity (PnL in USDC, marked to the leaders' last traded price)",
        "drawdown": "Drawdown from the running peak (USDC)",
        "pnl_leader": "PnL per leader (USDC, marked)",
        "pnl_market": "PnL per market (USDC, marked)",
        "rejections": "Leader trades not copied, by reason",
        "slippage": "Slippage of each copy vs the leader's price (bps, > 0 worse for us)",
        "tracking": "Tracking: our return vs the leader's",
    }
    empty = "the database holds no leader trades yet" if all(_empty(r) for r in runs) else ""

    for name, series in (("equity", "equity"), ("drawdown", "drawdown")):
        fig, ax = plt.subplots(figsize=(8, 3.2))
        drawn = False
        for i, run in enumerate(runs):
            if len(run.times):
                ax.step([datetime.fromtimestamp(t, tz=timezone.utc) for t in run.times], getattr(run, series),
                        where="post", color=COLORS[i % len(COLORS)], label=run.label, lw=1.4)
                drawn = True
        ax.axhline(0, color="#888", lw=0.6)
        ax.set_title(title_of[name], fontsize=10)
        ax.set_ylabel("USDC", fontsize=8)
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        finish(name, fig, ax, drawn, empty or "no leader trades recorded")

    def barh(name: str, keys: list[str], labels: list[str], values_of: Any, unit: str, nothing: str) -> None:
        fig, ax = plt.subplots(figsize=(8, 0.9 + 0.32 * max(len(keys), 1)))
        height = 0.8 / len(runs)
        for i, run in enumerate(runs):
            values = values_of(run)
            ax.barh([k + i * height for k in range(len(keys))], [values.get(k, 0) for k in keys],
                    height=height, color=COLORS[i % len(COLORS)], label=run.label)
        ax.set_yticks([k + (len(runs) - 1) * height / 2 for k in range(len(keys))])
        ax.set_yticklabels(labels, fontsize=7 if unit == "USDC" else 8)
        ax.invert_yaxis()
        ax.axvline(0, color="#888", lw=0.6)
        ax.set_xlabel(unit, fontsize=8)
        if unit != "USDC":  # a count
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title_of[name], fontsize=10)
        finish(name, fig, ax, bool(keys), empty or nothing)

    def pnl_bars(name: str, key: str, id_of: str, label_of: Any, nothing: str, top: int = 15) -> None:
        keys: list[str] = []
        labels: dict[str, str] = {}
        for run in runs:
            for row in run.summary[key]:
                labels.setdefault(row[id_of], label_of(row)[:40])
            for row in run.summary[key][:top]:
                if row[id_of] not in keys:
                    keys.append(row[id_of])
        keys = keys[:top]
        barh(name, keys, [labels[k] for k in keys],
             lambda run: {r[id_of]: float(r["total"]) for r in run.summary[key]}, "USDC", nothing)

    pnl_bars("pnl_leader", "pnl_by_leader", "leader", lambda r: r.get("name") or r["leader"][:12] + "…",
             "no positions")
    pnl_bars("pnl_market", "pnl_by_market", "condition_id", lambda r: r["title"] or r["condition_id"][:14],
             "no positions")

    def not_copied(run: Analysis) -> dict[str, int]:
        return {**run.summary["rejections"], **{f"not filled: {k}": v for k, v in run.summary["not_filled"].items()}}

    reasons: list[str] = []
    for run in runs:
        reasons += [k for k in not_copied(run) if k not in reasons]
    barh("rejections", reasons, reasons, not_copied, "leader trades", "every leader trade was copied")

    fig, ax = plt.subplots(figsize=(8, 3.2))
    for i, run in enumerate(runs):
        if len(run.slippage):
            ax.hist(list(run.slippage), bins=min(40, max(5, len(run.slippage) // 3)), alpha=0.55,
                    color=COLORS[i % len(COLORS)],
                    label=f"{run.label} (n={len(run.slippage)})")
    ax.axvline(0, color="#888", lw=0.6)
    ax.set_title(title_of["slippage"], fontsize=10)
    ax.set_xlabel("bps of the leader's price", fontsize=8)
    ax.set_ylabel("copies", fontsize=8)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    finish("slippage", fig, ax, any(len(r.slippage) for r in runs), empty or "no copy was filled")

    fig, ax = plt.subplots(figsize=(5, 5))
    lo, hi = 0.0, 0.0
    for i, run in enumerate(runs):
        if run.tracking:
            xs, ys = zip(*run.tracking)
            lo, hi = min(lo, *xs, *ys), max(hi, *xs, *ys)
            ax.scatter(xs, ys, s=9, alpha=0.6, color=COLORS[i % len(COLORS)], label=run.label)
    ax.plot([lo, hi], [lo, hi], color="#888", lw=0.6)
    ax.set_xlabel("leader's return on the trade", fontsize=8)
    ax.set_ylabel("our return on the copy", fontsize=8)
    ax.set_title(title_of["tracking"], fontsize=10)
    finish("tracking", fig, ax, any(r.tracking for r in runs), empty or "no copied trade with a mark")
    return out


def _headline(run: Analysis) -> list[tuple[str, Any]]:
    s = run.summary
    c, p, e, sl, t = s["counts"], s["pnl"], s["equity"], s["slippage"], s["tracking"]
    u = p["unit"]
    return [
        ("period", f"{s['period']['first'] or '-'} → {s['period']['last'] or '-'}"),
        ("leader trades", c["leader_trades"]), ("copied", c["copied"]), ("rejected", c["rejected"]),
        ("not filled", c["not_filled"]), (f"realised PnL ({u})", p["realised"]),
        (f"unrealised PnL ({u}, marked)", p["unrealised"]), (f"total PnL ({u}, {p['marking']})", p["total"]),
        (f"fees ({u})", p["fees"]), (f"open exposure ({u})", p["exposure"]),
        ("redeemed (positions / realised)", f"{p['resolutions']['redeemed']['positions']} / "
                                            f"{p['resolutions']['redeemed']['realised']}"),
        (f"pending payout (positions / {u} to redeem)", f"{p['resolutions']['pending']['positions']} / "
                                                        f"{p['resolutions']['pending_usdc']}"),
        ("lost (positions / realised)", f"{p['resolutions']['lost']['positions']} / "
                                        f"{p['resolutions']['lost']['realised']}"),
        (f"max drawdown ({e['unit']})", e["max_drawdown"]), ("slippage mean (bps)", sl["mean_bps"]),
        ("slippage p50 / p90 (bps)", f"{sl['p50_bps'] or '-'} / {sl['p90_bps'] or '-'}"),
        ("our return on copies", t["return_ours"]), ("leader's return", t["return_leader"]),
        ("tracking difference (mean)", t["mean_difference"]), ("tracking error", t["tracking_error"]),
    ]


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    e = lambda v: html.escape("-" if v is None else str(v))
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(runs: Sequence[Analysis], pngs: Sequence[Path]) -> str:
    heads = [_headline(r) for r in runs]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>copytrader report</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
        "font-size:13px;text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}"
        "img{max-width:100%;margin:.3em 0}</style></head><body>",
        f"<h1>copytrader report: {html.escape(' vs '.join(r.label for r in runs))}</h1>",
        *(f"<p><b>No data</b>: {html.escape(r.label)} holds no leader trades yet (nothing was read from a "
          "feed into this database).</p>" for r in runs if _empty(r)),
        _table(["", *[r.label for r in runs]], [[name, *[h[i][1] for h in heads]]
                                                for i, (name, _) in enumerate(heads[0])]),
    ]
    if pngs:
        parts += [f"<img src='{html.escape(p.name)}' alt='{html.escape(p.stem)}'>" for p in pngs]
    else:
        parts.append("<p><b>No charts</b>: matplotlib is not installed (<code>pip install 'copytrader[report]'</code>).</p>")
    for run in runs:
        s = run.summary
        parts.append(f"<h2>{html.escape(run.label)}</h2>")
        parts.append("<h3>PnL per leader (USDC, marked)</h3>" + _table(
            ["leader", "name", "realised", "unrealised", "total", "fees", "exposure", "fills", "volume"],
            [[r["leader"], r["name"], r["realised"], r["unrealised"], r["total"], r["fees"], r["exposure"],
              r["fills"], r["volume"]] for r in s["pnl_by_leader"]]))
        parts.append("<h3>PnL per market (USDC, marked)</h3>" + _table(
            ["market", "realised", "unrealised", "total", "exposure", "fills", "volume"],
            [[r["title"] or r["condition_id"], r["realised"], r["unrealised"], r["total"], r["exposure"],
              r["fills"], r["volume"]] for r in s["pnl_by_market"][:50]]))
        parts.append("<h3>Not copied</h3>" + _table(
            ["reason", "trades"], [*s["rejections"].items(), *((f"not filled: {k}", v) for k, v in s["not_filled"].items())]))
        sl = s["slippage"]
        parts.append("<h3>Slippage vs the leader's price (bps of the leader's price, > 0 worse for us)</h3>" + _table(
            ["copies", "mean (bps)", "min (bps)", "p50 (bps)", "p90 (bps)", "p99 (bps)", "max (bps)", "worse",
             "better"],
            [[sl["count"], sl["mean_bps"], sl["min_bps"], sl["p50_bps"], sl["p90_bps"], sl["p99_bps"], sl["max_bps"],
              sl["worse_than_leader"], sl["better_than_leader"]]]))
    parts.append("<p>Numbers in <code>summary.json</code>; method in the module docstring of "
                 "<code>copytrader.application.report</code>.</p></body></html>")
    return "\n".join(parts)


def write_report(dbs: Sequence[str | Path], out: str | Path, labels: Sequence[Optional[str]] = (),
                 schemas: Sequence[str] = (), names: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """Analyse each database (PostgreSQL: with the schema at the same place in
    ``schemas``; leaders named by ``names`` or the database), write
    summary.json, the PNGs and report.html into ``out``."""
    runs = [analyse_db(db, labels[i] if i < len(labels) else None, schemas[i] if i < len(schemas) else "copytrader",
                       names) for i, db in enumerate(dbs)]
    _labels(runs)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    pngs = charts(runs, folder)
    summary = {"runs": [r.summary for r in runs], "charts": [p.name for p in pngs]}
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    (folder / "report.html").write_text(render_html(runs, pngs), encoding="utf-8")
    return {"out": str(folder), "html": str(folder / "report.html"), "json": str(folder / "summary.json"),
            "charts": [str(p) for p in pngs], "runs": summary["runs"]}
