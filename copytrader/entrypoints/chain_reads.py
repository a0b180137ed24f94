"""Wiring of the reconciliation with the chain (``copytrader reconcile`` and
``serve``): the funder wallet's balances (web3 on ``live.rpc_url``, the CLOB's
``/balance-allowance``) and the market data that tells a resolved market's
winning token, given to the use case ``application.chain_reconcile``."""
from __future__ import annotations

import logging
from typing import Any, Callable

from ..application.chain_reconcile import Reconciliation, book_of, check
from ..ports import MarketData, Store
from .config import Config, ConfigError

log = logging.getLogger("copytrader")


def wallet_balances(cfg: Config) -> Any:
    """The funder's balances reader; a config that cannot give one is refused in one sentence."""
    if not cfg.live.rpc_url:
        raise ConfigError("reconciling with the chain needs live.rpc_url (a Polygon JSON-RPC URL) to read the "
                          "wallet's token balances")
    if cfg.private_key is None:
        raise ConfigError("reconciling with the chain needs the private key (to know the funder wallet and ask the "
                          "CLOB): set COPYTRADER_PRIVATE_KEY or live.key_file (mode 0600)")
    from ..adapters.execution.polymarket.balances import WalletBalances

    try:
        return WalletBalances(cfg.live, cfg.private_key.reveal())
    except ValueError as exc:  # a deposit wallet without live.funder that cannot be derived
        raise ConfigError(str(exc)) from None


def winning(market: MarketData) -> Callable[[str], bool]:
    """Whether a token is a resolved market's winning one, as the market data says (unknown: no)."""
    def won(token_id: str) -> bool:
        try:
            info = market.market(token_id)
        except Exception as exc:  # noqa: BLE001 - the cause is then told from the balances alone
            log.warning("market of %s for the reconciliation: %s", token_id[:16], exc)
            return False
        return info is not None and info.closed and info.payout is not None and info.payout > 0
    return won


def reconciliation(store: Store, balances: Any, market: MarketData) -> Callable[[], Reconciliation]:
    """One reconciliation of the book in ``store`` with the wallet, each time it is called."""
    return lambda: check(book_of(store), balances.chain_balances, balances.clob_balance, winning(market))
