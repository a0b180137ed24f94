"""HTTP to the CLOB with explicit timeouts and honest error classes.

An order must never be posted twice blindly: the SDK's ``place_*`` reposts
the same order after an automatic approval, and its transport cannot tell a
request that never reached the venue from one that got no answer (both are
its ``TransportError``), so posting and lookups go through here. The request
signatures (L1 ClobAuth EIP-712, L2 HMAC) are the SDK's
(``polymarket._internal.l1_auth``, ``hmac``, ``actions.auth``), with the
headers its ``SecureClient`` sends.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Optional

import httpx


class ClobError(Exception):
    """``sent`` tells whether the venue may have acted on the request."""

    def __init__(self, message: str, *, status: Optional[int] = None, sent: bool = False,
                 retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.status = status
        self.sent = sent
        self.retry_after = retry_after


def _error_text(resp: httpx.Response) -> Optional[str]:
    """The error text of an answer (``{"error": "..."}``, as the CLOB documents),
    or None when there is none to read: an empty or non-JSON body, or an
    ``error`` that is not text."""
    try:
        body = resp.json()
    except ValueError:
        return None
    if isinstance(body, dict):
        body = body.get("error") if "error" in body else body.get("errorMsg")
    return body.strip()[:300] if isinstance(body, str) and body.strip() else None


def _message(resp: httpx.Response) -> str:
    return _error_text(resp) or resp.text[:200].strip() or resp.reason_phrase


class ClobTransport:
    def __init__(self, host: str, timeout_s: float) -> None:
        self.host = host.rstrip("/")
        self._http = httpx.Client(base_url=self.host, timeout=httpx.Timeout(timeout_s),
                                  headers={"User-Agent": "copytrader", "Accept": "application/json"})

    def request(self, method: str, path: str, *, params: Optional[dict] = None, headers: Optional[dict] = None,
                body: Optional[str] = None) -> Any:
        try:
            resp = self._http.request(method, path, params=params, headers={
                **(headers or {}), **({"Content-Type": "application/json"} if body is not None else {})},
                content=body.encode() if body is not None else None)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # never reached the venue
            raise ClobError(f"{method} {self.host}{path}: cannot connect ({exc.__class__.__name__})") from None
        except httpx.TransportError as exc:  # sent, no answer: it may have acted
            raise ClobError(f"{method} {self.host}{path}: no answer ({exc.__class__.__name__})", sent=True) from None
        if resp.status_code == 429:
            ra = resp.headers.get("Retry-After")
            raise ClobError(f"{method} {path}: rate limited (429)", status=429,
                            retry_after=float(ra) if ra and ra.replace(".", "", 1).isdigit() else None)
        if resp.status_code == 403:
            raise ClobError(f"{method} {path}: forbidden (403): {_message(resp)} — trading from this region "
                            "may be geo-blocked", status=403)
        if resp.status_code >= 500:
            raise ClobError(f"{method} {path}: server error {resp.status_code}", status=resp.status_code, sent=True)
        if resp.status_code >= 400:
            text = _error_text(resp)
            if text is None:  # nothing says it was refused: it may have acted
                raise ClobError(f"{method} {path}: {resp.status_code} with an unreadable answer",
                                status=resp.status_code, sent=True)
            raise ClobError(f"{method} {path}: {resp.status_code} {text}", status=resp.status_code)
        try:
            return resp.json()
        except ValueError:
            raise ClobError(f"{method} {path}: malformed JSON in the answer", status=resp.status_code,
                            sent=True) from None

    def close(self) -> None:
        self._http.close()


class AuthenticatedClob:
    """L1 (key) and L2 (API credentials) requests, headers made by the SDK."""

    def __init__(self, transport: ClobTransport, signer: Any, chain_id: int = 137) -> None:
        """``signer``: the key's eth_account ``LocalAccount``, as the SDK's."""
        self.transport = transport
        self.signer = signer
        self.chain_id = chain_id
        self._creds: Any = None
        self._creds_lock = threading.Lock()  # the user channel's thread asks too: one derivation

    def _l1(self) -> dict:
        from polymarket._internal.actions.auth import build_l1_auth_headers
        from polymarket._internal.l1_auth import sign_api_key_auth

        return build_l1_auth_headers(sign_api_key_auth(self.signer, chain_id=self.chain_id,
                                                       timestamp=int(time.time()), nonce=0))

    def credentials(self) -> Any:
        """Derive the API credentials of the key, creating them if none exist
        (the SDK tries to create first; we derive first and create only when there is none)."""
        with self._creds_lock:
            return self._credentials()

    def _credentials(self) -> Any:
        if self._creds is None:
            from polymarket.models.clob import ApiKeyCreds

            try:
                raw = self.transport.request("GET", "/auth/derive-api-key", headers=self._l1())
            except ClobError as exc:
                if exc.status not in (400, 404):
                    raise
                raw = self.transport.request("POST", "/auth/api-key", headers=self._l1())
            try:
                self._creds = ApiKeyCreds.model_validate(raw)
            except ValueError:  # pydantic's ValidationError is a ValueError
                raise ClobError("API credentials answer has no apiKey/secret/passphrase") from None
        return self._creds

    def l2(self, method: str, path: str, payload: Any = None, params: Optional[dict] = None) -> Any:
        """An authenticated request; the HMAC covers the path without its query (as the SDK signs)."""
        from polymarket._internal.hmac import build_hmac_signature

        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False) if payload is not None else None
        creds, timestamp = self.credentials(), int(time.time())
        headers = {"POLY_ADDRESS": self.signer.address, "POLY_API_KEY": creds.key, "POLY_PASSPHRASE": creds.passphrase,
                   "POLY_SIGNATURE": build_hmac_signature(secret=creds.secret, timestamp=timestamp, method=method,
                                                          path=path, body=body),
                   "POLY_TIMESTAMP": str(timestamp)}
        return self.transport.request(method, path, params=params, headers=headers, body=body)

    def __repr__(self) -> str:
        return f"AuthenticatedClob({self.transport.host})"
