"""Wallet type and trading approvals through the Polymarket SDK (polymarket-client).

The SDK is pointed at our hosts by copying its production environment config
with ``dataclasses.replace`` (CLOB host, JSON-RPC URL, chain id, the two
exchanges of ``live``) and wrapping it with ``polymarket.environments.
_create_environment``: the SDK has no public constructor for an environment.
The approval list is the SDK's own (``_required_trading_approvals``, what
``SecureClient.setup_trading_approvals`` sets), the calldata its call builders'
and the wallet classification its ``try_classify_wallet_type``. Chain reads go
through web3 (``chain.PolygonChain``); an EOA sends its own transactions through
``SecureClient.approve_erc20`` / ``approve_erc1155_for_all`` (JSON-RPC: nonce,
gas price, gas estimate, signed legacy transaction, receipt). Proxy, safe and
deposit wallets send through Polymarket's relayer (``RelayerSender``): the SDK's
``SecureClient`` created with the relayer credentials (``api_key=``: a
``RelayerApiKey`` or a ``BuilderApiKey``), ``execute_transaction`` with every
missing approval's call (one gasless transaction: the SDK fetches the wallet's
nonce, signs the batch for the wallet type and POSTs /submit), and its handle's
``wait()``, which polls the transaction every ``live.relayer_poll_ms`` until
STATE_CONFIRMED, STATE_FAILED / STATE_INVALID, or ``live.relayer_max_polls`` polls.
The SDK retries a submit only when the relayer refuses it (429, a busy wallet,
a stale nonce), never after it was accepted.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Optional

import attrs

from ...streams import redact_url
from .settings import LiveSettings, SignatureType


class ApprovalsError(Exception):
    """One clear sentence: what failed and where."""


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else exc.__class__.__name__)[:240]


def sdk_config(live: LiveSettings) -> Any:
    from polymarket._internal.environment import PRODUCTION_CONFIG

    return dataclasses.replace(PRODUCTION_CONFIG, chain_id=live.chain_id, clob_url=live.host,
                               rpc_url=live.rpc_url or PRODUCTION_CONFIG.rpc_url,
                               standard_exchange=live.exchange, neg_risk_exchange=live.neg_risk_exchange,
                               relayer_url=live.relayer_url, relayer_poll_frequency_ms=live.relayer_poll_ms,
                               relayer_max_polls=live.relayer_max_polls)


def sdk_environment(live: LiveSettings) -> Any:
    from polymarket.environments import _create_environment

    return _create_environment(name="copytrader", config=sdk_config(live))


@attrs.frozen
class WalletReport:
    signer: str
    funder: str
    kind: Optional[SignatureType]  # what the funder is for this key (None: none of its wallets)
    wallets: dict  # the key's own wallets: {"POLY_PROXY": address, "GNOSIS_SAFE": ..., "DEPOSIT_WALLET": ...}

    def check(self, configured: SignatureType) -> tuple[bool, str]:
        """(matches, one line) comparing the funder with ``live.signature_type``."""
        head = f"key {self.signer}, funder {self.funder}"
        if self.kind is None:
            mine = ", ".join(f"{k.lower()} {v}" for k, v in self.wallets.items())
            return False, (f"{head} is none of this key's wallets (EOA {self.signer}, {mine}): set live.funder to "
                           "the wallet that holds your pUSD, or use the key of that wallet")
        if self.kind is not configured:
            return False, (f"{head} is the key's {self.kind.name} wallet but live.signature_type is "
                           f"\"{configured.name.lower()}\": set live.signature_type = \"{self.kind.name.lower()}\""
                           + ("" if self.kind is not SignatureType.EOA else " (or leave live.funder unset)"))
        return True, f"{head}: {self.kind.name} (live.signature_type \"{configured.name.lower()}\" matches)"


def classify(live: LiveSettings, private_key: str, funder: Optional[str] = None) -> WalletReport:
    """The key's address, its proxy / safe / deposit wallets (the SDK's
    derivations) and which of them the funder is (``live.funder``, or the one
    derived for the signature type: ``wallet.resolve_funder``)."""
    from eth_account import Account
    from polymarket._internal.wallet import (
        derive_beacon_deposit_wallet_address, derive_proxy_wallet_address, derive_safe_wallet_address,
    )

    from .wallet import resolve_funder, wallet_type_of

    derivation = sdk_config(live).wallet_derivation
    signer = Account.from_key(private_key).address
    funder = funder or resolve_funder(live, signer)
    wallets = {"POLY_PROXY": derive_proxy_wallet_address(signer, derivation),
               "GNOSIS_SAFE": derive_safe_wallet_address(signer, derivation),
               "DEPOSIT_WALLET": derive_beacon_deposit_wallet_address(signer, derivation)}
    return WalletReport(signer, funder, wallet_type_of(signer, funder), wallets)


def required_approvals(live: LiveSettings) -> list[dict]:
    """The SDK's trading approvals as plain fields (standard, token, token_role,
    spender, spender_role, amount); roles are the SDK config's field names."""
    from polymarket._internal.actions.relayer.approvals import _required_trading_approvals

    config = sdk_config(live)
    roles: dict[str, str] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
            roles.setdefault(value.lower(), f.name)
    erc20, erc1155 = _required_trading_approvals(config)
    out = [{"standard": "ERC20", "token": str(a.token_address), "token_role": roles[str(a.token_address).lower()],
            "spender": str(a.spender), "spender_role": roles[str(a.spender).lower()], "amount": int(a.amount)}
           for a in erc20]
    out += [{"standard": "ERC1155", "token": str(a.token_address),
             "token_role": roles[str(a.token_address).lower()], "spender": str(a.operator),
             "spender_role": roles[str(a.operator).lower()], "amount": 0} for a in erc1155]
    return out


def _call(approval: Any) -> Any:
    """The SDK's call (to, data) for an approval (its call builders)."""
    from polymarket._internal.actions.relayer.calls import (
        erc20_approval_call, erc1155_set_approval_for_all_call,
    )

    if approval.standard == "ERC20":
        return erc20_approval_call(token_address=approval.token, spender=approval.spender, amount=approval.amount)
    return erc1155_set_approval_for_all_call(token_address=approval.token, operator=approval.spender)


def calldata(approval: Any) -> str:
    """The transaction data the SDK sends for an approval."""
    return str(_call(approval).data)


class ChainApprovals:
    """Reads of the wallet's pUSD balance and approvals (web3, POA-aware)."""

    def __init__(self, live: LiveSettings) -> None:
        if not live.rpc_url:
            raise ApprovalsError("set live.rpc_url (a Polygon JSON-RPC URL) to read approvals on chain")
        self.live = live

    def _chain(self) -> Any:
        from .chain import PolygonChain

        chain = PolygonChain(self.live.rpc_url, self.live.timeout_s)
        chain_id = chain.chain_id()
        if chain_id != self.live.chain_id:
            raise ApprovalsError(f"live.rpc_url {redact_url(self.live.rpc_url)} is on chain {chain_id}, "
                                 f"expected {self.live.chain_id}")
        return chain

    def read(self, wallet: str, approvals: list[dict]) -> tuple[int, list[int]]:
        """(pUSD balance in micro units, one value per approval of ``required_approvals``:
        the allowance, or 1/0 for an operator)."""
        try:
            chain = self._chain()
            collateral = sdk_config(self.live).collateral_token
            balance = chain.erc20_raw(collateral, "balanceOf", wallet)
            values = [chain.erc20_raw(a["token"], "allowance", wallet, a["spender"]) if a["standard"] == "ERC20"
                      else int(chain.approved_for_all(wallet, a["spender"], a["token"])) for a in approvals]
        except ApprovalsError:
            raise
        except Exception as exc:
            raise ApprovalsError(f"cannot read approvals from live.rpc_url {redact_url(self.live.rpc_url)}: "
                                 f"{first_line(exc)}") from None
        return balance, values


class ClobBalanceCache:
    """The CLOB's cached balance/allowance (GET /balance-allowance) and its refresh
    (GET /balance-allowance/update), L2-authenticated for the key."""

    def __init__(self, live: LiveSettings, clob: Any) -> None:
        self.signature_type = int(live.signature_type)
        self.clob = clob  # an AuthenticatedClob

    @classmethod
    def for_key(cls, live: LiveSettings, private_key: str) -> "ClobBalanceCache":
        from eth_account import Account

        from .transport import AuthenticatedClob, ClobTransport

        return cls(live, AuthenticatedClob(ClobTransport(live.host, live.timeout_s), Account.from_key(private_key),
                                           live.chain_id))

    def cached(self, asset_type: str, token_id: Optional[str] = None) -> dict:
        """The answer for ``asset_type``; for CONDITIONAL / CONDITIONAL-V2 with
        ``token_id``, the CLOB's balance of that outcome token (micro-units)."""
        params: dict = {"asset_type": asset_type, "signature_type": self.signature_type}
        if token_id is not None:
            params["token_id"] = token_id
        answer = self.clob.l2("GET", "/balance-allowance", params=params)
        if not isinstance(answer, dict) or "balance" not in answer:
            raise ApprovalsError(f"GET /balance-allowance ({asset_type}) answered without a balance")
        return answer

    def refresh(self, asset_type: str) -> None:
        self.clob.l2("GET", "/balance-allowance/update",
                     params={"asset_type": asset_type, "signature_type": self.signature_type})


class EoaSender:
    """Sends approvals from an EOA through the SDK (``SecureClient``), which signs
    and broadcasts its own transactions over live.rpc_url."""

    def __init__(self, live: LiveSettings, private_key: str) -> None:
        self._live, self._key = live, private_key
        self._client: Any = None
        self._handles: dict[str, Any] = {}

    def _secure(self) -> Any:
        if self._client is None:
            from eth_account import Account
            from polymarket import SecureClient

            self._client = SecureClient.create(private_key=self._key, wallet=Account.from_key(self._key).address,
                                               environment=sdk_environment(self._live))
        return self._client

    def submit(self, approval: Any) -> str:
        client = self._secure()
        if approval.standard == "ERC20":
            handle = client.approve_erc20(token_address=approval.token, spender_address=approval.spender,
                                          amount=approval.amount)
        else:
            handle = client.approve_erc1155_for_all(token_address=approval.token, operator_address=approval.spender)
        tx_hash = str(handle.transaction_hash)
        self._handles[tx_hash] = handle
        return tx_hash

    def confirm(self, tx_hash: str) -> None:
        self._handles.pop(tx_hash).wait()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def relayer_api_key(credentials: Any, signer: str, owner: Optional[str] = None) -> Any:
    """The SDK's ApiKey from the configured credentials (names of config.RELAYER_ENV ->
    secrets): a RelayerApiKey owned by ``owner`` (live.relayer_key_address, default the
    signer), or a BuilderApiKey. Both redact themselves in their reprs."""
    from polymarket.auth import BuilderApiKey, RelayerApiKey

    if "RELAYER_API_KEY" in credentials:
        return RelayerApiKey(key=credentials["RELAYER_API_KEY"].reveal(), address=owner or signer)
    return BuilderApiKey(key=credentials["BUILDER_API_KEY"].reveal(), secret=credentials["BUILDER_SECRET"].reveal(),
                         passphrase=credentials["BUILDER_PASSPHRASE"].reveal())


class RelayerSender:
    """Sends a proxy, safe or deposit wallet's approvals through Polymarket's relayer
    with the SDK, as one gasless transaction (``submit_batch``), and waits for it (``wait``)."""

    def __init__(self, live: LiveSettings, private_key: str, wallet: str, api_key: Any) -> None:
        self._live, self._key, self._wallet, self._api_key = live, private_key, wallet, api_key
        self._client: Any = None
        self._handle: Any = None

    def _secure(self) -> Any:
        if self._client is None:
            from polymarket import SecureClient

            # create() asks the relayer whether the wallet is deployed (GET /deployed) and
            # deploys a deposit wallet that is not (WALLET-CREATE); a proxy or safe must exist
            self._client = SecureClient.create(private_key=self._key, wallet=self._wallet,
                                               environment=sdk_environment(self._live), api_key=self._api_key)
        return self._client

    def _explain(self, exc: BaseException) -> str:
        from polymarket.errors import RateLimitError, RequestRejectedError, TimeoutError, TransportError

        if isinstance(exc, RequestRejectedError):
            return f"the relayer at {self._live.relayer_url} answered HTTP {exc.status}: {first_line(exc)}"
        if isinstance(exc, RateLimitError):
            return f"the relayer at {self._live.relayer_url} kept answering 429 (rate limited)"
        if isinstance(exc, TransportError):
            return f"cannot reach the relayer at {self._live.relayer_url} (live.relayer_url): {first_line(exc)}"
        if isinstance(exc, TimeoutError):
            return (f"not confirmed after {self._live.relayer_max_polls} polls every {self._live.relayer_poll_ms} ms "
                    "(live.relayer_max_polls, live.relayer_poll_ms)")
        return first_line(exc)

    def submit_batch(self, approvals: list) -> tuple[str, Optional[str]]:
        """POST /submit of one transaction calling every approval: (relayer transaction id,
        its hash if the relayer gave one)."""
        try:
            handle = self._secure().execute_transaction(calls=[_call(a) for a in approvals],
                                                        metadata="copytrader: trading approvals")
        except Exception as exc:
            raise ApprovalsError(self._explain(exc)) from None
        self._handle = handle
        return str(handle.transaction_id), handle.transaction_hash or None

    def wait(self, transaction_id: str) -> tuple[str, Optional[str], str]:
        """(terminal state, transaction hash, the relayer's reason for a failure); raises
        ApprovalsError when the outcome is not known (not confirmed in time, HTTP error)."""
        from polymarket.errors import TransactionFailedError

        try:
            outcome = self._handle.wait()
        except TransactionFailedError as exc:
            state, tx_hash = self._final_state(transaction_id)
            return state, tx_hash, first_line(exc)
        except Exception as exc:
            raise ApprovalsError(self._explain(exc)) from None
        return "STATE_CONFIRMED", str(outcome.transaction_hash), ""

    def _final_state(self, transaction_id: str) -> tuple[str, Optional[str]]:
        """The failed transaction's state (STATE_FAILED or STATE_INVALID) and hash as the
        relayer gives them: the SDK's wait() raises without them. One GET through the
        client's relayer transport; "STATE_FAILED" and the submit's hash if it fails."""
        from polymarket._internal.actions.relayer.poll import fetch_gasless_transaction_sync

        try:
            tx = fetch_gasless_transaction_sync(self._client._ctx.relayer, transaction_id=transaction_id)
            return str(tx.state.value), tx.transaction_hash or self._handle.transaction_hash
        except Exception:
            return "STATE_FAILED", self._handle.transaction_hash

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def append_record(path: Path, row: dict) -> None:
    """One JSON line per event (sent / confirmed / unconfirmed); no secrets in it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    with os.fdopen(fd, "a") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")
