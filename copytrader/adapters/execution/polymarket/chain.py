"""Polygon reads through web3 (v7+): balances and approvals for `doctor`, `approve`
and `reconcile` (outcome-token balances on both ledgers: Conditional Tokens for
CTF ids, PositionManager for Protocol V2 position ids).

Polygon is a proof-of-authority chain whose block ``extraData`` is longer
than 32 bytes; web3 v7+ removed ``geth_poa_middleware`` and needs
``ExtraDataToPOAMiddleware`` injected at layer 0 to read blocks at all.
"""
from __future__ import annotations

from decimal import Decimal

from ....domain.model import MICRO_UNITS

ERC20_ABI = [
    {"name": "balanceOf", "type": "function", "stateMutability": "view",
     "inputs": [{"name": "owner", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]},
    {"name": "allowance", "type": "function", "stateMutability": "view",
     "inputs": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}],
     "outputs": [{"name": "", "type": "uint256"}]},
]
ERC1155_ABI = [
    {"name": "isApprovedForAll", "type": "function", "stateMutability": "view",
     "inputs": [{"name": "owner", "type": "address"}, {"name": "operator", "type": "address"}],
     "outputs": [{"name": "", "type": "bool"}]},
    {"name": "balanceOfBatch", "type": "function", "stateMutability": "view",
     "inputs": [{"name": "accounts", "type": "address[]"}, {"name": "ids", "type": "uint256[]"}],
     "outputs": [{"name": "", "type": "uint256[]"}]},
]
CONDITIONAL_TOKENS = "0x4D97DCd97eC945f40cF65F87097ACe5EA0476045"
BATCH = 200  # ids per balanceOfBatch call: well below what public nodes accept in one eth_call


def ledger_of(token_id: str) -> str:
    """The ERC-1155 contract that holds ``token_id``: PositionManager for a
    Protocol V2 position id, Conditional Tokens for a CTF id."""
    from ....domain.positions import V2, version_of
    from .settings import POSITION_MANAGER

    return POSITION_MANAGER if version_of(token_id) == V2 else CONDITIONAL_TOKENS


class PolygonChain:
    def __init__(self, rpc_url: str, timeout_s: float = 10.0) -> None:
        from web3 import HTTPProvider, Web3
        from web3.middleware import ExtraDataToPOAMiddleware

        self.w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))
        self.w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        self._checksum = Web3.to_checksum_address

    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    def latest_block(self) -> int:
        return int(self.w3.eth.get_block("latest")["number"])

    def erc20_raw(self, token: str, function: str, *addresses: str) -> int:
        """``balanceOf(owner)`` or ``allowance(owner, spender)`` of an ERC-20, in base units."""
        fn = getattr(self.w3.eth.contract(self._checksum(token), abi=ERC20_ABI).functions, function)
        return int(fn(*(self._checksum(a) for a in addresses)).call())

    def erc20_balance(self, token: str, owner: str) -> Decimal:
        return Decimal(self.erc20_raw(token, "balanceOf", owner)) / MICRO_UNITS

    def approved_for_all(self, owner: str, operator: str, token: str = CONDITIONAL_TOKENS) -> bool:
        return bool(self.w3.eth.contract(self._checksum(token), abi=ERC1155_ABI).functions.isApprovedForAll(
            self._checksum(owner), self._checksum(operator)).call())

    def erc1155_balances(self, ledger: str, owner: str, token_ids: list[str]) -> list[int]:
        """``owner``'s balance of each of ``token_ids`` (decimal text) on the ERC-1155
        ``ledger`` (Conditional Tokens or PositionManager), in micro-units (6 decimals),
        in order; through ``balanceOfBatch``, at most ``BATCH`` ids a call."""
        fn = self.w3.eth.contract(self._checksum(ledger), abi=ERC1155_ABI).functions.balanceOfBatch
        account = self._checksum(owner)
        out: list[int] = []
        for start in range(0, len(token_ids), BATCH):
            ids = [int(t) for t in token_ids[start:start + BATCH]]
            values = fn([account] * len(ids), ids).call()
            if len(values) != len(ids):
                raise ValueError(f"balanceOfBatch on {ledger} answered {len(values)} balances for {len(ids)} ids")
            out += [int(v) for v in values]
        return out
