"""The dashboard's ASGI app (Starlette): the JSON API under ``/api/v1``, a
server-sent events stream of the overview, and the page (``static/``).

Reads go to ``dashboard`` (the read model); control goes to ``control`` (the
control use case), both given by the composition root, so this adapter
imports neither. Control endpoints are POST only and need the bearer token:
none configured, they answer 403 (read-only); a missing or wrong one, 401
(compared with ``hmac.compare_digest``). Nothing here can place an order."""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
from datetime import datetime, timezone
from importlib import resources
from typing import Any, Callable, Optional

log = logging.getLogger("copytrader.dashboard")

API = "/api/v1"
# The page loads only its own files: no CDN, no inline script, nothing framed.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                               "form-action 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/app.css": ("app.css", "text/css; charset=utf-8")}
NO_TOKEN = ("control is off (read-only dashboard): set dashboard.token_env to the name of an environment "
            "variable holding a token, and start again")


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def create_app(dashboard: Any, control: Any, token: Optional[str], bad_input: tuple[type[BaseException], ...] = (),
               not_found: tuple[type[BaseException], ...] = (),
               unavailable: tuple[type[BaseException], ...] = (), refresh_s: float = 1.0,
               stopping: Optional[threading.Event] = None) -> Any:
    """``bad_input``: exceptions whose message is a 400 answer (bad filters, unknown
    leader); ``not_found``: a 404 one (unknown follower); ``unavailable``: a 503 one (a store
    that cannot be read yet, such as a follower's database before its engine made it). ``refresh_s``: how often the
    stream looks for a new overview. ``stopping``: set, open streams end."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    stopping = stopping or threading.Event()
    files = {path: (_static(name), ctype) for path, (name, ctype) in STATIC.items()}

    def answer(data: Any, status: int = 200, **headers: str) -> Response:
        body = json.dumps(data, sort_keys=True, default=str).encode()
        return Response(body, status, media_type="application/json", headers={**HEADERS, **headers})

    def error(status: int, sentence: str, **headers: str) -> Response:
        return answer({"error": sentence}, status, **headers)

    def guarded(fn: Callable[[Request], Any]) -> Callable[[Request], Any]:
        def run(request: Request) -> Response:
            try:
                return answer(fn(request))
            except not_found as exc:
                return error(404, str(exc))
            except unavailable as exc:
                return error(503, str(exc))
            except bad_input as exc:
                return error(400, str(exc))
            except ValueError as exc:  # a query parameter that does not parse
                return error(400, str(exc))
            except Exception:  # noqa: BLE001 - the API answers; the log has the traceback
                log.exception("dashboard request %s failed", request.url.path)
                return error(500, "internal error: see the service log")
        return run

    def page(request: Request) -> Response:
        raw, ctype = files[request.url.path]
        return Response(raw, media_type=ctype, headers=HEADERS)

    def name_of(request: Request) -> str:
        return request.path_params["name"]

    def decisions(request: Request) -> Any:
        from ...ports import DecisionFilter

        q = request.query_params
        before = q.get("before")
        where = DecisionFilter(leader=q.get("leader", "").strip(), market=q.get("market", "").strip(),
                               outcome=q.get("outcome", "").strip(), since=_time(q, "since"),
                               until=_time(q, "until"), before=dashboard.parse_before(before) if before else None)
        return dashboard.decisions(name_of(request), where, _int(q, "limit", 100))

    async def authorised(request: Request) -> Optional[Response]:
        if not token:
            return error(403, NO_TOKEN)
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            return error(401, "control needs the dashboard token: send it as 'Authorization: Bearer <token>'",
                         **{"WWW-Authenticate": "Bearer"})
        return None

    def controlled(act: Callable[[Request, dict[str, Any], str], Any]) -> Callable[[Request], Any]:
        async def run(request: Request) -> Response:
            refused = await authorised(request)
            if refused is not None:
                return refused
            try:
                body = await request.json() if await request.body() else {}
            except ValueError:
                return error(400, "the request body must be JSON (or empty)")
            if not isinstance(body, dict):
                return error(400, "the request body must be a JSON object")
            source = "dashboard" if request.headers.get("x-copytrader-client") == "dashboard" else "api"
            call = guarded(lambda r: {"actions": [_action(a) for a in act(r, body, source)]})
            return await run_in_threadpool(call, request)
        return run

    def reason(body: dict[str, Any]) -> str:
        given = body.get("reason", "")
        if not isinstance(given, str) or len(given) > 300:
            raise ValueError("reason: expected text of at most 300 characters")
        return given.strip()

    async def stream(request: Request) -> Response:
        async def events():
            last, idle = None, 0.0
            yield "retry: 2000\n\n"
            while not stopping.is_set() and not await request.is_disconnected():
                try:
                    data = await run_in_threadpool(dashboard.overview)
                    text = json.dumps(data, sort_keys=True, default=str)
                except unavailable as exc:  # not there yet (a database being made): the next round
                    log.debug("dashboard stream: %s", exc)
                    text = None
                except Exception:  # noqa: BLE001 - the stream goes on; the log says why
                    log.exception("dashboard stream failed")
                    text = None
                if text is not None and text != last:
                    last, idle = text, 0.0
                    yield f"event: overview\ndata: {text}\n\n"
                elif idle >= 15:
                    idle = 0.0
                    yield ": keep-alive\n\n"
                await asyncio.sleep(refresh_s)
                idle += refresh_s
        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={**HEADERS, "X-Accel-Buffering": "no"})

    routes = [Route(path, page) for path in files] + [
        Route(f"{API}/followers", guarded(lambda r: dashboard.followers())),
        Route(f"{API}/overview", guarded(lambda r: dashboard.overview())),
        Route(f"{API}/health", guarded(lambda r: dashboard.health())),
        Route(f"{API}/stream", stream),
        Route(f"{API}/controls", guarded(lambda r: [
            _action(a) for a in control.actions(r.query_params.get("follower") or None,
                                                _int(r.query_params, "limit", 100))])),
        Route(f"{API}/followers/{{name}}/positions", guarded(lambda r: dashboard.positions(
            name_of(r), include_closed=r.query_params.get("all", "") in ("1", "true")))),
        Route(f"{API}/followers/{{name}}/decisions", guarded(decisions)),
        Route(f"{API}/followers/{{name}}/leaders", guarded(lambda r: dashboard.leaders(name_of(r)))),
        Route(f"{API}/followers/{{name}}/stats", guarded(lambda r: dashboard.stats(name_of(r)))),
        Route(f"{API}/followers/{{name}}/equity", guarded(lambda r: dashboard.equity(name_of(r)))),
        Route(f"{API}/followers/{{name}}/halt", controlled(
            lambda r, b, s: control.halt(name_of(r), reason(b) or "halted from the dashboard", s)), methods=["POST"]),
        Route(f"{API}/followers/{{name}}/reduce_only", controlled(
            lambda r, b, s: control.reduce_only(name_of(r), reason(b) or "reduce-only from the dashboard", s)),
            methods=["POST"]),
        Route(f"{API}/followers/{{name}}/resume", controlled(
            lambda r, b, s: control.resume(name_of(r), s)), methods=["POST"]),
        Route(f"{API}/followers/{{name}}/leaders/{{address}}/pause", controlled(
            lambda r, b, s: control.pause_leader(name_of(r), r.path_params["address"], s)), methods=["POST"]),
        Route(f"{API}/followers/{{name}}/leaders/{{address}}/resume", controlled(
            lambda r, b, s: control.resume_leader(name_of(r), r.path_params["address"], s)), methods=["POST"]),
    ]

    async def missing(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        sentence = "method not allowed: read endpoints take GET, control endpoints POST" if status == 405 else \
            f"not found: {request.url.path} (the API is under {API}/, see README)"
        return error(status, sentence)

    return Starlette(routes=routes, exception_handlers={404: missing, 405: missing})


def _action(a: Any) -> dict[str, Any]:
    return {"at": a.at.astimezone(timezone.utc).isoformat(timespec="seconds"), "follower": a.follower,
            "action": a.action, "target": a.target, "reason": a.reason, "source": a.source}


def _int(q: Any, key: str, default: int) -> int:
    given = q.get(key)
    if given is None or given == "":
        return default
    try:
        return int(given)
    except ValueError:
        raise ValueError(f"{key}: expected a whole number, got {given!r}") from None


def _time(q: Any, key: str) -> Optional[datetime]:
    given = q.get(key)
    if not given:
        return None
    try:
        when = datetime.fromisoformat(given.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{key}: expected an ISO 8601 time such as 2026-11-01T12:00:00Z, got {given!r}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


__all__ = ["API", "NO_TOKEN", "create_app"]
