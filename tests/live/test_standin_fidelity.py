"""The stand-in speaks the real wire format: the official unified SDK
(polymarket-client) derives its credentials there and posts its own signed
orders (its signing path, its JSON, its HMAC), for the CTF exchange and for
ExchangeV3 (a Protocol V2 position, domain "3")."""
from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("polymarket")

from copytrader.testing import TOKEN  # noqa: E402

from .conftest import ADDRESS, KEY  # noqa: E402
from .test_signing import EXCHANGES  # noqa: E402


def _sdk_client(clob):
    from polymarket import SecureClient
    from polymarket._internal.environment import PRODUCTION_CONFIG, create_environment

    here = {f: clob.url for f in ("clob_url", "relayer_url", "rpc_url", "gamma_url", "data_url")}
    env = create_environment(name="stand-in", config=dataclasses.replace(PRODUCTION_CONFIG, **here))
    return SecureClient.create(private_key=KEY, wallet=ADDRESS, environment=env)


@pytest.mark.parametrize("token, exchange", [(TOKEN, EXCHANGES["ctf"][3]), (EXCHANGES["exchange-v3"][2],
                                                                             EXCHANGES["exchange-v3"][3])])
def test_the_official_sdk_signs_and_posts_to_the_stand_in(clob, token, exchange):
    from polymarket._internal.actions.orders.types import OrderDraft

    clob.set_book(token, bids=[("0.49", "500")], asks=[("0.50", "30")], market="0x" + "ab" * 32)
    client = _sdk_client(clob)
    try:
        draft = OrderDraft(chain_id=137, exchange_address=exchange, expiration=0, funder_address=ADDRESS,
                           offered_amount=5_000_000, order_type="FOK", side="BUY", signer=ADDRESS,
                           requested_amount=10_000_000, asset_id=token)
        answer = client.post_order(client._sign_order(draft, post_only=False))
    finally:
        client.close()
    assert clob.rejections == [] and len(clob.posts) == 1
    assert answer.ok and answer.status == "matched" and clob.posts[0]["order"]["signer"] == ADDRESS
    assert clob.orders[answer.order_id]["size_matched"] == 10


def test_derive_refuses_a_forged_l1_signature(clob):
    import httpx
    headers = {"POLY_ADDRESS": ADDRESS, "POLY_SIGNATURE": "0x" + "11" * 65, "POLY_TIMESTAMP": "1", "POLY_NONCE": "0"}
    assert httpx.post(f"{clob.url}/auth/api-key", headers=headers).status_code == 401
