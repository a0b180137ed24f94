"""Our one-pass EIP-712 digest and coincurve signature equal the SDK's, byte for byte."""
from __future__ import annotations

import pytest

pytest.importorskip("py_clob_client_v2")
pytest.importorskip("coincurve")

from py_clob_client_v2.order_utils import ExchangeOrderBuilderV2, Side  # noqa: E402
from py_clob_client_v2.order_utils.model.order_data_v2 import OrderDataV2  # noqa: E402
from py_clob_client_v2.signer import Signer  # noqa: E402

from copytrader.adapters.execution.polymarket.fastsign import FastOrderSigner  # noqa: E402
from copytrader.adapters.execution.polymarket.settings import V2_EXCHANGE, V2_NEG_RISK_EXCHANGE  # noqa: E402

KEYS = ["0x" + "4c" * 32, "0x" + "0123456789abcdef" * 4]
FUNDER = "0x" + "9f" * 20


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("exchange", [V2_EXCHANGE, V2_NEG_RISK_EXCHANGE])
@pytest.mark.parametrize("side,sig_type,maker", [(Side.BUY, 0, None), (Side.SELL, 1, FUNDER), (Side.BUY, 2, FUNDER)])
def test_digest_and_signature_match_the_sdk(key, exchange, side, sig_type, maker):
    signer = Signer(key, 137)
    sdk = ExchangeOrderBuilderV2(exchange, 137, signer, generate_salt=lambda: "123456789012345")
    fast = FastOrderSigner(key, exchange, 137)
    for n in range(5):
        data = OrderDataV2(maker=maker or signer.address(), tokenId=str(10**75 + n), makerAmount=str(5_100_000 + n),
                           takerAmount=str(10_000_000 + 7 * n), side=side, signer=signer.address(),
                           signatureType=sig_type, timestamp=str(1_793_491_200_000 + n), metadata="0x" + "00" * 32,
                           builder="0x" + "00" * 32, expiration="0")
        signed = sdk.build_signed_order(data)
        order = sdk.build_order(data)
        digest = fast.digest(order)
        assert "0x" + digest.hex() == sdk.build_order_hash(sdk.build_order_typed_data(signed))
        assert fast.sign(digest) == signed.signature
    assert "4c4c" not in repr(fast)
