"""The stores' part of control and the dashboard (memory, SQLite, PostgreSQL):
filtered decision pages by cursor, control actions by time, paused leaders."""
from __future__ import annotations

from datetime import timedelta

from copytrader.domain.model import IntentStatus
from copytrader.ports import ControlAction, DecisionFilter
from copytrader.testing import CONDITION, LEADER, T0
from tests.contract.test_stores import record, store  # noqa: F401 - the store fixture

OTHER = "0x" + "ef" * 20


def test_decision_pages_filter_and_follow_the_cursor(store):  # noqa: F811
    for i in range(12):
        status = (IntentStatus.FILLED, IntentStatus.SKIPPED, IntentStatus.REJECTED, IntentStatus.PENDING)[i % 4]
        store.put_intent(record(i, status, at=T0 + timedelta(minutes=i // 2), leader=LEADER if i % 3 else OTHER,
                                condition_id=CONDITION if i < 6 else "0x" + "ab" * 32))
    every = [r.intent_id for r in store.history(100)]
    pages, before = [], None
    while True:
        page = store.decisions(DecisionFilter(before=before), 5)
        pages += [r.intent_id for _, r in page]
        if len(page) < 5:
            break
        before = (page[-1][1].created_at, page[-1][0])
    assert pages == every
    only = lambda **kw: [r.intent_id for _, r in store.decisions(DecisionFilter(**kw), 100)]
    assert only(leader=OTHER.upper().replace("0X", "0x")) == [i for i in every if int(i.split("-")[1]) % 3 == 0]
    assert only(market=CONDITION) == [i for i in every if int(i.split("-")[1]) < 6]
    assert only(outcome="rejected") == [i for i in every if int(i.split("-")[1]) % 4 == 1]
    assert only(outcome="open") == [i for i in every if int(i.split("-")[1]) % 4 == 3]
    assert only(since=T0 + timedelta(minutes=4), until=T0 + timedelta(minutes=5)) == ["intent-9", "intent-8"]


def test_control_actions_and_paused_leaders_round_trip(store):  # noqa: F811
    acts = [ControlAction(T0 + timedelta(seconds=s), "default", a, t, "why", src)
            for s, a, t, src in ((1, "halt", "", "cli"), (2, "pause_leader", LEADER, "api"), (3, "resume", "", "dashboard"))]
    with store.transaction():
        for a in acts:
            store.put_control(a)
        store.pause_leader(LEADER.upper().replace("0X", "0x"), T0, "paused from api")
    assert store.controls() == acts[::-1]
    assert store.controls(since=T0 + timedelta(seconds=2), until=T0 + timedelta(seconds=3)) == [acts[1]]
    assert store.controls(limit=1) == [acts[2]]
    assert store.leader_paused(LEADER) and not store.leader_paused(OTHER)
    assert store.paused_leaders() == {LEADER: (T0, "paused from api")}
    assert store.resume_leader(LEADER) and not store.resume_leader(LEADER) and store.paused_leaders() == {}
