"""HTTP to the CLOB with explicit timeouts and honest error classes.

The SDK's own transport retries a POST once on transient errors and polls
trades for up to 30 s after a match; an order must never be posted twice
blindly, so posting goes through here. Signing of requests (L1 EIP-712,
L2 HMAC) uses the SDK's header builders.
"""
from __future__ import annotations

import json
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

    def __init__(self, transport: ClobTransport, signer: Any) -> None:
        self.transport = transport
        self.signer = signer
        self._creds: Any = None

    def _l1(self) -> dict:
        from py_clob_client_v2.headers.headers import create_level_1_headers

        return create_level_1_headers(self.signer, nonce=0, timestamp=int(time.time()))

    def credentials(self) -> Any:
        """Derive the API credentials of the key, creating them if none exist."""
        if self._creds is None:
            from py_clob_client_v2.clob_types import ApiCreds

            try:
                raw = self.transport.request("GET", "/auth/derive-api-key", headers=self._l1())
            except ClobError as exc:
                if exc.status not in (400, 404):
                    raise
                raw = self.transport.request("POST", "/auth/api-key", headers=self._l1())
            try:
                self._creds = ApiCreds(raw["apiKey"], raw["secret"], raw["passphrase"])
            except (KeyError, TypeError):
                raise ClobError("API credentials answer has no apiKey/secret/passphrase") from None
        return self._creds

    def l2(self, method: str, path: str, payload: Any = None, params: Optional[dict] = None) -> Any:
        """An authenticated request; the HMAC covers the path without its query (as the SDK signs)."""
        from py_clob_client_v2.clob_types import RequestArgs
        from py_clob_client_v2.headers.headers import create_level_2_headers

        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False) if payload is not None else None
        headers = create_level_2_headers(self.signer, self.credentials(),
                                         RequestArgs(method, path, payload, body), timestamp=int(time.time()))
        return self.transport.request(method, path, params=params, headers=headers, body=body)

    def __repr__(self) -> str:
        return f"AuthenticatedClob({self.transport.host})"
