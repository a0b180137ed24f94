"""Redemptions of resolved markets through the Polymarket SDK (polymarket-client).

The calls are the SDK's own call builders, as ``SecureClient.redeem_positions``
makes them: a CTF market's ``redeemPositions(pUSD, 0x0, condition, [1, 2])`` on
``CtfCollateralAdapter`` (``NegRiskCtfCollateralAdapter`` for a neg-risk market),
which pays pUSD; a Protocol V2 position's ``redeem(condition31, outcome, amount)``
on the Router, one per outcome the wallet holds. ``redeem_positions`` itself
reads the market from Gamma and sends at once, without giving the calls first;
we know the market and must commit the record (with the calls) before sending,
so the calls go out with ``SecureClient.execute_transaction``, which dispatches
exactly as ``redeem_positions`` does: an EOA broadcasts its own transaction over
live.rpc_url (it needs POL for gas), a proxy, safe or deposit wallet sends one
gasless transaction through the relayer (a relayer or builder API key). The
SDK clients are approvals.py's (``EoaSender`` / ``RelayerSender``): the same
wiring, not a twin.
"""
from __future__ import annotations

from typing import Any, Optional

from ....domain.redemption import EOA, RELAYER, Call
from ....domain.positions import V2, version_of
from ....ports import RedeemError, RedeemUnknown
from ...streams import redact_url
from .approvals import EoaSender, RelayerSender, classify, first_line, relayer_api_key, sdk_config
from .settings import LiveSettings


TRANSFER = bytes.fromhex("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef")  # Transfer(address,address,uint256)
RELAYER_KEY_MISSING = ("the relayer needs an API key: set COPYTRADER_RELAYER_API_KEY, or COPYTRADER_BUILDER_API_KEY, "
                       "COPYTRADER_BUILDER_SECRET and COPYTRADER_BUILDER_PASSPHRASE, or live.relayer_key_file "
                       "(mode 0600)")


def make_redeemer(live: LiveSettings, private_key: str, relayer_key: Any, sending: bool = True) -> "PolymarketRedeemer":
    """The redeemer of the wallet ``private_key`` trades from (the SDK's
    classification, checked against live.signature_type). ``relayer_key``: the
    configured relayer credentials (config.RELAYER_ENV names -> secrets) or None,
    which only a dry plan may do without for a relayed wallet. RedeemError (one
    sentence) when the wallet or its keys do not fit."""
    try:  # ValueError: no funder to derive (a deposit wallet without live.funder or live.rpc_url)
        wallet = classify(live, private_key)
    except ValueError as exc:
        raise RedeemError(str(exc)) from None
    matches, text = wallet.check(live.signature_type)
    if not matches:
        raise RedeemError(text)
    relayed = wallet.kind.name != "EOA"
    if relayed and relayer_key is None and sending:
        raise RedeemError(RELAYER_KEY_MISSING)
    api_key = relayer_api_key(relayer_key, wallet.signer, live.relayer_key_address) \
        if relayed and relayer_key is not None else None
    return PolymarketRedeemer(live, private_key, wallet.funder, relayed, api_key)


class PolymarketRedeemer:
    def __init__(self, live: LiveSettings, private_key: str, wallet: str, relayed: bool,
                 api_key: Any = None) -> None:
        from .chain import PolygonChain

        if not live.rpc_url:
            raise RedeemError("set live.rpc_url (a Polygon JSON-RPC URL) to redeem on chain")
        self.live, self.wallet = live, wallet
        self.route = RELAYER if relayed else EOA
        self.config = sdk_config(live)
        self.chain = PolygonChain(live.rpc_url, live.timeout_s)
        self._sender: Any = RelayerSender(live, private_key, wallet, api_key) if relayed \
            else EoaSender(live, private_key)
        self._handle: Any = None

    # -- reads -------------------------------------------------------------------
    def ledger(self, token_id: str, neg_risk: bool) -> str:
        if version_of(token_id) == V2:
            return self.config.position_manager
        return self.config.neg_risk_adapter if neg_risk else self.config.conditional_tokens

    def balances(self, ledger: str, token_ids: list[str]) -> list[int]:
        return self.chain.erc1155_balances(ledger, self.wallet, token_ids)

    def credited(self, tx_hash: str) -> Optional[int]:
        """The pUSD ``tx_hash`` credited to the wallet: the collateral's Transfer logs to
        it in the transaction's receipt (None: no receipt to read)."""
        try:
            receipt = self.chain.w3.eth.get_transaction_receipt(tx_hash)
        except Exception as exc:
            if type(exc).__name__ == "TransactionNotFound":
                return None
            raise
        wallet, collateral = bytes.fromhex(self.wallet[2:].lower()), self.config.collateral_token.lower()
        total = 0
        for log in receipt["logs"]:
            topics = log["topics"]
            if str(log["address"]).lower() == collateral and len(topics) == 3 and bytes(topics[0]) == TRANSFER \
                    and bytes(topics[2])[-20:] == wallet:
                total += int.from_bytes(bytes(log["data"]), "big")
        return total

    def nonce(self) -> int:
        """An EOA's transaction count (pending included); a relayed wallet's nonce at
        the relayer, which moves when it accepts a transaction of the wallet."""
        if self.route == EOA:
            return int(self.chain.w3.eth.get_transaction_count(self.chain._checksum(self.wallet), "pending"))
        from polymarket._internal.actions.relayer.nonce import fetch_execute_params_sync, fetch_relay_payload_sync
        from polymarket.models.clob.relayer import RelayerTransactionType as Kind

        ctx = self._sender._secure()._ctx
        kind = {"POLY_PROXY": Kind.PROXY, "GNOSIS_SAFE": Kind.SAFE, "DEPOSIT_WALLET": Kind.WALLET}[ctx.wallet_type]
        fetch = fetch_relay_payload_sync if kind is Kind.PROXY else fetch_execute_params_sync
        return int(fetch(ctx.relayer, address=ctx.signer.address, type=kind).nonce)

    # -- calls -------------------------------------------------------------------
    def calls(self, condition_id: str, token_ids: list[str], amounts: list[int], neg_risk: bool) -> list[Call]:
        from polymarket._internal.actions.relayer.calls import ctf_redeem_positions_call, redeem_v2_call
        from polymarket._internal.protocol import decode_v2_outcome_position_id

        if version_of(token_ids[0]) == V2:
            out = []
            for token_id, amount in zip(token_ids, amounts):
                if amount <= 0:
                    continue
                decoded = decode_v2_outcome_position_id(token_id)
                call = redeem_v2_call(router=self.config.protocol_v2_router, condition_id=decoded.condition_id,
                                      outcome_index=decoded.outcome_index, amount=amount)
                out.append(Call(str(call.to), "redeem", ("0x" + str(decoded.condition_id)[-62:],
                                                         decoded.outcome_index, amount), str(call.data)))
            return out
        adapter = self.config.neg_risk_collateral_adapter if neg_risk else self.config.collateral_adapter
        call = ctf_redeem_positions_call(ctf=adapter, collateral=self.config.collateral_token,
                                         condition_id=condition_id)
        return [Call(str(call.to), "redeemPositions",
                     (self.config.collateral_token, "0x" + "00" * 32, condition_id, "[1, 2]"), str(call.data))]

    def simulate(self, calls: list[Call]) -> Optional[int]:
        total, answered = 0, False
        for call in calls:
            try:
                out = bytes(self.chain.w3.eth.call({"from": self.chain._checksum(self.wallet),
                                                    "to": self.chain._checksum(call.to), "data": call.data}))
            except Exception as exc:
                raise RedeemError(f"the simulation of {call.function} on {call.to} fails: {first_line(exc)}") from None
            if len(out) == 32:
                total, answered = total + int.from_bytes(out, "big"), True
        return total if answered else None

    # -- sending -----------------------------------------------------------------
    def send(self, calls: list[Call]) -> tuple[str, str]:
        from polymarket._internal.actions.relayer.calls import TransactionCall
        from polymarket.errors import RequestRejectedError, SigningError, UserInputError

        sdk_calls = [TransactionCall(to=c.to, data=c.data) for c in calls]
        try:
            client = self._sender._secure()  # creating it sends nothing on chain
        except Exception as exc:
            raise RedeemError(self._explain(exc)) from None
        try:
            handle = client.execute_transaction(calls=sdk_calls, metadata="copytrader: redeem")
        except (RequestRejectedError, SigningError, UserInputError) as exc:
            raise RedeemError(self._explain(exc)) from None
        except Exception as exc:
            raise RedeemUnknown(self._explain(exc)) from None
        self._handle = handle
        if self.route == RELAYER:
            return str(handle.transaction_hash or ""), str(handle.transaction_id)
        return str(handle.transaction_hash), ""

    def wait(self, tx_hash: str, relayer_id: str) -> tuple[str, str, str]:
        from polymarket.errors import TransactionFailedError

        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                outcome = handle.wait()
                return "mined", str(outcome.transaction_hash or tx_hash), ""
            except TransactionFailedError as exc:
                return "failed", tx_hash, first_line(exc)
            except Exception as exc:
                return "pending", tx_hash, self._explain(exc)
        return self._lookup(tx_hash, relayer_id)

    def _lookup(self, tx_hash: str, relayer_id: str) -> tuple[str, str, str]:
        """Where a transaction sent before stands, read once."""
        try:
            if relayer_id:
                from polymarket._internal.actions.relayer.poll import fetch_gasless_transaction_sync

                tx = fetch_gasless_transaction_sync(self._sender._secure()._ctx.relayer, transaction_id=relayer_id)
                state = str(tx.state.value)
                tx_hash = str(tx.transaction_hash or tx_hash)
                if state in ("STATE_MINED", "STATE_CONFIRMED"):
                    return "mined", tx_hash, ""
                if state in ("STATE_FAILED", "STATE_INVALID"):
                    return "failed", tx_hash, f"the relayer says {state}"
                return "pending", tx_hash, f"the relayer says {state}"
            receipt = self.chain.w3.eth.get_transaction_receipt(tx_hash)
        except Exception as exc:
            if type(exc).__name__ == "TransactionNotFound":
                return "pending", tx_hash, f"no receipt for {tx_hash} yet"
            return "pending", tx_hash, first_line(exc)
        if int(receipt["status"]) == 1:
            return "mined", tx_hash, ""
        return "failed", tx_hash, f"transaction {tx_hash} reverted"

    def _explain(self, exc: BaseException) -> str:
        if isinstance(self._sender, RelayerSender):
            return self._sender._explain(exc)
        return f"live.rpc_url {redact_url(self.live.rpc_url)}: {first_line(exc)}"

    def close(self) -> None:
        self._sender.close()
