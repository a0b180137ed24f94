"""The stand-in speaks the real wire format: the official SDK trades against it."""
from __future__ import annotations

from py_clob_client_v2 import ClobClient, OrderArgsV2, OrderType, TradeParams

from copytrader.testing import CONDITION, TOKEN

from .conftest import ADDRESS, KEY


def test_the_official_sdk_trades_against_the_stand_in(clob):
    client = ClobClient(clob.url, 137, key=KEY)
    client.set_api_creds(client.create_or_derive_api_key())
    assert client.get_version() == 2
    assert str(client.get_tick_size(TOKEN)) == "0.01" and client.get_neg_risk(TOKEN) is False
    assert client.get_order_book(TOKEN)["asks"][0] == {"price": "0.50", "size": "30"}
    assert client.get_market(CONDITION)["tokens"][0]["token_id"] == TOKEN
    answer = client.create_and_post_order(OrderArgsV2(token_id=TOKEN, price=0.5, size=10, side="BUY"),
                                          order_type=OrderType.FOK)
    assert answer["success"] and answer["status"] == "matched" and clob.rejections == []
    # as the exchange does, a fully matched order is no longer shown: its trade is the record
    assert not client.get_order(answer["orderID"])
    [trade] = client.get_trades(TradeParams(asset_id=TOKEN))
    assert (trade["taker_order_id"], trade["size"], trade["price"], trade["side"]) == (answer["orderID"], "10", "0.5", "BUY")
    assert trade["maker_orders"][0]["matched_amount"] == "10"
    assert clob.posts[0]["order"]["signer"] == ADDRESS


def test_derive_refuses_a_forged_l1_signature(clob):
    import httpx
    headers = {"POLY_ADDRESS": ADDRESS, "POLY_SIGNATURE": "0x" + "11" * 65, "POLY_TIMESTAMP": "1", "POLY_NONCE": "0"}
    assert httpx.post(f"{clob.url}/auth/api-key", headers=headers).status_code == 401
