"""The funder wallet's outcome-token balances, on chain and as the CLOB sees
them, for ``copytrader reconcile`` (and ``serve``'s periodic check).

On chain: ``balanceOfBatch`` on Conditional Tokens (CTF ids) and on
PositionManager (Protocol V2 position ids), through web3 (``chain``). The
CLOB: ``GET /balance-allowance?asset_type=CONDITIONAL|CONDITIONAL-V2&token_id=``
(L2-authenticated for the key), its cached reading of the same balance."""
from __future__ import annotations

from typing import Any, Optional

from ....domain.positions import V2, version_of
from ...streams import redact_url
from .approvals import ApprovalsError, ChainApprovals, ClobBalanceCache, first_line
from .chain import ledger_of
from .settings import LiveSettings


class BalanceReadError(Exception):
    """One sentence: which read failed, where."""


class WalletBalances:
    def __init__(self, live: LiveSettings, private_key: str, funder: Optional[str] = None,
                 clob: Optional[ClobBalanceCache] = None) -> None:
        from eth_account import Account

        from .wallet import resolve_funder

        self.live = live
        self.funder = funder or resolve_funder(live, Account.from_key(private_key).address)
        self._chain: Any = None
        self._clob = clob or ClobBalanceCache.for_key(live, private_key)

    def chain_balances(self, token_ids: list[str]) -> dict[str, int]:
        """Each token's balance in micro-units, one batch per ledger."""
        try:
            if self._chain is None:
                self._chain = ChainApprovals(self.live)._chain()  # checks the chain id
            by_ledger: dict[str, list[str]] = {}
            for token in token_ids:
                by_ledger.setdefault(ledger_of(token), []).append(token)
            out: dict[str, int] = {}
            for ledger, tokens in by_ledger.items():
                out.update(zip(tokens, self._chain.erc1155_balances(ledger, self.funder, tokens)))
            return out
        except ApprovalsError as exc:
            raise BalanceReadError(str(exc)) from None
        except Exception as exc:
            raise BalanceReadError(f"cannot read the wallet's token balances from live.rpc_url "
                                   f"{redact_url(self.live.rpc_url)}: {first_line(exc)}") from None

    def clob_balance(self, token_id: str) -> int:
        asset_type = "CONDITIONAL-V2" if version_of(token_id) == V2 else "CONDITIONAL"
        answer = self._clob.cached(asset_type, token_id)
        return int(str(answer["balance"]))

    def close(self) -> None:
        self._clob.clob.transport.close()
