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

COLORS = ("#1f77b4", "#d62728")
CHARTS = ("equity", "drawdown", "pnl_leader", "pnl_market", "rejections", "slippage", "tracking")


def analyse_db(path: str | Path, label: Optional[str] = None, schema: str = "copytrader") -> Analysis:
    """Analyse a SQLite file, or a PostgreSQL URL's follower ``schema``."""
    with open_report_source(path, schema) as src:
        meta = src.meta()
        name = label or meta.get("label") or (schema if is_postgres_url(path) else Path(path).stem)
        result = analyse(src.events(), src.positions(), src.orphan_intents(), label=name,
                         meta={**meta, "database": src.name})
    return result


def _labels(runs: Sequence[Analysis]) -> None:
    if len(runs) == 2 and runs[0].label == runs[1].label:
        runs[1].label += " (compare)"
        runs[1].summary["label"] = runs[1].label


def charts(runs: Sequence[Analysis], out: Path) -> list[Path]:
    """Draw the PNGs; [] when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return []
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "no artists with labels" on an empty database
        return _charts(runs, out, matplotlib)


def _charts(runs: Sequence[Analysis], out: Path, matplotlib: Any) -> list[Path]:
    import logging

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    matplotlib.use("Agg", force=True)
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from datetime import datetime, timezone

    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        written.append(path)

    def dates(run: Analysis) -> list:
        return [datetime.fromtimestamp(t, tz=timezone.utc) for t in run.times]

    for name, series, title in (("equity", "equity", "Equity (PnL, USDC, marked to the leaders' last price)"),
                                ("drawdown", "drawdown", "Drawdown from the running peak (USDC)")):
        fig, ax = plt.subplots(figsize=(8, 3.2))
        for i, run in enumerate(runs):
            if len(run.times):
                ax.step(dates(run), getattr(run, series), where="post", color=COLORS[i], label=run.label, lw=1.4)
        ax.axhline(0, color="#888", lw=0.6)
        ax.set_title(title, fontsize=10)
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.legend(fontsize=8)
        save(fig, name)

    def bars(name: str, key: str, label_of: Any, title: str, top: int = 15) -> None:
        keys: list[str] = []
        for run in runs:
            for row in run.summary[key][:top]:
                if row[label_of[0]] not in keys:
                    keys.append(row[label_of[0]])
        keys = keys[:top]
        fig, ax = plt.subplots(figsize=(8, 0.9 + 0.32 * max(len(keys), 1)))
        height = 0.8 / len(runs)
        for i, run in enumerate(runs):
            totals = {r[label_of[0]]: float(r["total"]) for r in run.summary[key]}
            ax.barh([k + i * height for k in range(len(keys))], [totals.get(k, 0.0) for k in keys],
                    height=height, color=COLORS[i], label=run.label)
        names = {}
        for run in runs:
            for r in run.summary[key]:
                names[r[label_of[0]]] = label_of[1](r)
        ax.set_yticks([k + (len(runs) - 1) * height / 2 for k in range(len(keys))])
        ax.set_yticklabels([names[k][:40] for k in keys], fontsize=7)
        ax.invert_yaxis()
        ax.axvline(0, color="#888", lw=0.6)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
        save(fig, name)

    bars("pnl_leader", "pnl_by_leader", ("leader", lambda r: r["leader"][:12] + "…"), "PnL per leader (USDC, marked)")
    bars("pnl_market", "pnl_by_market", ("condition_id", lambda r: r["title"] or r["condition_id"][:14]),
         "PnL per market (USDC, marked)")

    reasons: list[str] = []
    for run in runs:
        for k in list(run.summary["rejections"]) + [f"not filled: {k}" for k in run.summary["not_filled"]]:
            if k not in reasons:
                reasons.append(k)
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.32 * max(len(reasons), 1)))
    height = 0.8 / len(runs)
    for i, run in enumerate(runs):
        counts = {**run.summary["rejections"], **{f"not filled: {k}": v for k, v in run.summary["not_filled"].items()}}
        ax.barh([k + i * height for k in range(len(reasons))], [counts.get(r, 0) for r in reasons], height=height,
                color=COLORS[i], label=run.label)
    ax.set_yticks([k + (len(runs) - 1) * height / 2 for k in range(len(reasons))])
    ax.set_yticklabels(reasons, fontsize=8)
    ax.invert_yaxis()
    ax.set_title("Leader trades not copied, by reason", fontsize=10)
    ax.legend(fontsize=8)
    save(fig, "rejections")

    fig, ax = plt.subplots(figsize=(8, 3.2))
    for i, run in enumerate(runs):
        if len(run.slippage):
            ax.hist(list(run.slippage), bins=min(40, max(5, len(run.slippage) // 3)), alpha=0.55, color=COLORS[i],
                    label=f"{run.label} (n={len(run.slippage)})")
    ax.axvline(0, color="#888", lw=0.6)
    ax.set_title("Slippage of each copy vs the leader's price (price units, > 0 worse)", fontsize=10)
    ax.legend(fontsize=8)
    save(fig, "slippage")

    fig, ax = plt.subplots(figsize=(5, 5))
    lo, hi = 0.0, 0.0
    for i, run in enumerate(runs):
        if run.tracking:
            xs, ys = zip(*run.tracking)
            lo, hi = min(lo, *xs, *ys), max(hi, *xs, *ys)
            ax.scatter(xs, ys, s=9, alpha=0.6, color=COLORS[i], label=run.label)
    ax.plot([lo, hi], [lo, hi], color="#888", lw=0.6)
    ax.set_xlabel("leader's return on the trade", fontsize=8)
    ax.set_ylabel("our return on the copy", fontsize=8)
    ax.set_title("Tracking: our return vs the leader's", fontsize=10)
    ax.legend(fontsize=8)
    save(fig, "tracking")
    return written


def _headline(run: Analysis) -> list[tuple[str, Any]]:
    s = run.summary
    c, p, e, sl, t = s["counts"], s["pnl"], s["equity"], s["slippage"], s["tracking"]
    return [
        ("period", f"{s['period']['first'] or '-'} → {s['period']['last'] or '-'}"),
        ("leader trades", c["leader_trades"]), ("copied", c["copied"]), ("rejected", c["rejected"]),
        ("not filled", c["not_filled"]), ("realised PnL", p["realised"]), ("unrealised (marked)", p["unrealised_marked"]),
        ("total PnL (marked)", p["total_marked"]), ("fees", p["fees"]), ("open exposure", p["exposure"]),
        ("max drawdown", e["max_drawdown"]), ("slippage mean (bps)", sl["mean_bps"]),
        ("slippage p50 / p90", f"{_f(sl['p50'])} / {_f(sl['p90'])}"),
        ("our return on copies", t["return_ours"]), ("leader's return", t["return_leader"]),
        ("tracking difference (mean)", t["mean_difference"]), ("tracking error", t["tracking_error"]),
    ]


def _f(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.4f}"


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
        parts.append("<h3>PnL per leader</h3>" + _table(
            ["leader", "realised", "unrealised", "total", "fees", "fills", "volume"],
            [[r["leader"], r["realised"], r["unrealised"], r["total"], r["fees"], r["fills"], r["volume"]]
             for r in s["pnl_by_leader"]]))
        parts.append("<h3>PnL per market</h3>" + _table(
            ["market", "realised", "unrealised", "total", "fills", "volume"],
            [[r["title"] or r["condition_id"], r["realised"], r["unrealised"], r["total"], r["fills"], r["volume"]]
             for r in s["pnl_by_market"][:50]]))
        parts.append("<h3>Not copied</h3>" + _table(
            ["reason", "trades"], [*s["rejections"].items(), *((f"not filled: {k}", v) for k, v in s["not_filled"].items())]))
        sl = s["slippage"]
        parts.append("<h3>Slippage vs the leader's price</h3>" + _table(
            ["copies", "mean", "mean bps", "min", "p50", "p90", "p99", "max", "worse", "better"],
            [[sl["count"], sl["mean"], sl["mean_bps"], sl["min"], _f(sl["p50"]), _f(sl["p90"]), _f(sl["p99"]),
              sl["max"], sl["worse_than_leader"], sl["better_than_leader"]]]))
    parts.append("<p>Numbers in <code>summary.json</code>; method in the module docstring of "
                 "<code>copytrader.application.report</code>.</p></body></html>")
    return "\n".join(parts)


def write_report(dbs: Sequence[str | Path], out: str | Path, labels: Sequence[Optional[str]] = (),
                 schemas: Sequence[str] = ()) -> dict[str, Any]:
    """Analyse each database (PostgreSQL: with the schema at the same place in
    ``schemas``), write summary.json, the PNGs and report.html into ``out``."""
    runs = [analyse_db(db, labels[i] if i < len(labels) else None, schemas[i] if i < len(schemas) else "copytrader")
            for i, db in enumerate(dbs)]
    _labels(runs)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    pngs = charts(runs, folder)
    summary = {"runs": [r.summary for r in runs], "charts": [p.name for p in pngs]}
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    (folder / "report.html").write_text(render_html(runs, pngs), encoding="utf-8")
    return {"out": str(folder), "html": str(folder / "report.html"), "json": str(folder / "summary.json"),
            "charts": [str(p) for p in pngs], "runs": summary["runs"]}
