"""Polygon reads through web3 (v7+): balances and approvals for `doctor` and `approve`.

Polygon is a proof-of-authority chain whose block ``extraData`` is longer
than 32 bytes; web3 v7+ removed ``geth_poa_middleware`` and needs
``ExtraDataToPOAMiddleware`` injected at layer 0 to read blocks at all.
"""
from __future__ import annotations

from decimal import Decimal

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
]
CONDITIONAL_TOKENS = "0x4D97DCd97eC945f40cF65F87097ACe5EA0476045"


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
        return Decimal(self.erc20_raw(token, "balanceOf", owner)) / Decimal(10**6)

    def approved_for_all(self, owner: str, operator: str, token: str = CONDITIONAL_TOKENS) -> bool:
        return bool(self.w3.eth.contract(self._checksum(token), abi=ERC1155_ABI).functions.isApprovedForAll(
            self._checksum(owner), self._checksum(operator)).call())

    # STAND-IN of i16-reconcile's read (that branch owns it): drop at merge
    def erc1155_balances(self, ledger: str, owner: str, token_ids: list[str]) -> list[int]:
        """``balanceOfBatch`` of ``owner`` for each of ``token_ids`` on the ERC-1155 ``ledger`` (micro units)."""
        abi = [{"name": "balanceOfBatch", "type": "function", "stateMutability": "view",
                "inputs": [{"name": "accounts", "type": "address[]"}, {"name": "ids", "type": "uint256[]"}],
                "outputs": [{"name": "", "type": "uint256[]"}]}]
        fn = self.w3.eth.contract(self._checksum(ledger), abi=abi).functions.balanceOfBatch
        return [int(v) for v in fn([self._checksum(owner)] * len(token_ids), [int(t) for t in token_ids]).call()]
