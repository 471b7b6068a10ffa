"""Live camera streams: ``/api/stream``, a WebSocket carrying frames in and stylised frames out.

Protocol (every text message is one JSON object with a ``type``, except the client's controls):

- On connecting, the server sends ``{"type": "hello", "max_side", "max_frame_bytes", "queue_frames",
  "model", "style", "strength", "preserve_color"}``: the limits and the controls in force.
- **Client -> server, binary**: one frame, an encoded image (JPEG; PNG and WebP are accepted too)
  whose longer side is at most ``max_side`` (setting ``stream_max_side``).
- **Client -> server, text**: controls, ``{"style": ..., "model": ..., "strength": ...,
  "preserve_color": ...}``, any subset (keys left out keep their value); ``style`` as in
  ``POST /v1/stylize`` (a name, ``MODEL/name`` or a blend ``a:0.7,b:0.3``). Acknowledged with
  ``{"type": "controls", ...}`` (all four, resolved); frames whose processing starts after it use them.
- **Server -> client**: every frame is answered once, in the order received: either
  ``{"type": "frame", "seq", "width", "height", "ms", "inference_ms", "batch", "model", "style"}``
  immediately followed by a binary message, the stylised frame as JPEG at the frame's size; or
  ``{"type": "dropped", "seq", "reason"}`` (``stale``: a newer frame replaced it while it waited;
  ``overloaded``: the model's queue or the decode budget is full; ``timeout``). ``seq`` numbers the
  client's frames from 1. A client keeping one frame in flight sends the next one on either answer.

Frames of every connection go through the same per-model batchers as ``POST /v1/stylize`` (frames
of one size from several clients share an inference call). Each connection works on one frame at
a time and keeps at most ``stream_queue_frames`` more waiting: a newer frame drops the oldest
waiting one (answered ``dropped``, ``stale``) instead of letting latency grow.

Errors close the connection, after a ``{"type": "error", "code", "error", "detail"}`` message,
with a close code and the reason (cut to the 123 bytes a close frame holds); other connections and
HTTP requests are not affected:

- 1003 (unsupported data): a binary message that is not an image in an accepted format, or whose
  header fails the upload checks (pixel limit, aspect ratio, too small for its declared size);
- 1007 (invalid payload): a text message that is not a JSON object; a frame whose pixel data does
  not decode;
- 1008 (policy violation): controls with an unknown key, a value of the wrong type or range, an
  unknown style or model;
- 1009 (too big): a message over ``stream_max_frame_bytes`` (uvicorn refuses larger ones itself),
  a frame over ``stream_max_side``, a text message over 4096 characters;
- 1011 (internal error): inference failed;
- 1013 (try again later): ``max_streams`` connections are open already, or the models are not ready.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass

from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.websockets import WebSocketDisconnect

from impasto.core import imageio
from impasto.core.errors import ImageError, ImpastoError
from impasto.serving.batching import Overloaded
from impasto.serving.pipeline import StylizeOptions
from impasto.serving.settings import Settings

log = logging.getLogger(__name__)

ROUTE = "/api/stream"
UNSUPPORTED, INVALID, POLICY, TOO_BIG, INTERNAL, TRY_LATER = 1003, 1007, 1008, 1009, 1011, 1013
MAX_CONTROL_CHARS = 4096
MAX_REASON_BYTES = 123  # a close frame's payload is at most 125 bytes, 2 of them the code


class StreamClosed(Exception):
    """Ends a stream with a close ``code``; ``error`` is the code name also used in HTTP answers."""

    def __init__(self, code: int, error: str, detail: str):
        super().__init__(detail)
        self.code, self.error, self.detail = code, error, detail


class Controls(BaseModel):
    # strict: "0.5" is not a strength and 1 is not a boolean; extra keys are a client's mistake.
    model_config = ConfigDict(extra="forbid", strict=True)

    style: str | None = Field(None, max_length=2000)
    model: str | None = Field(None, max_length=200)
    strength: float = Field(1.0, ge=0.0, le=1.0, allow_inf_nan=False)
    preserve_color: bool = False


@dataclass
class Frame:
    seq: int
    data: bytes
    received: float


def close_reason(detail: str) -> str:
    """``detail`` cut to what a close frame holds, on a character boundary."""
    return detail.encode()[:MAX_REASON_BYTES].decode(errors="ignore")


class StreamSession:
    """One connection: a receiving loop (frames in, controls) and a working loop (frames out)."""

    def __init__(self, websocket: WebSocket, settings: Settings):
        self.ws, self.settings = websocket, settings
        self.service = websocket.app.state.service
        self.metrics = self.service.metrics
        self.pending: deque[Frame] = deque()
        self.wake = asyncio.Event()
        self.send_lock = asyncio.Lock()  # a frame's stats and image go out back to back
        self.seq = 0
        self.controls = Controls.model_validate({})
        self.options = self._resolve(self.controls)

    def _resolve(self, controls: Controls) -> StylizeOptions:
        """The request options of ``controls``; an unknown style or model is a :class:`StreamClosed`."""
        try:
            selection = self.service.stylizer.catalog.select(controls.style, controls.model)
        except ImpastoError as err:
            raise StreamClosed(POLICY, "invalid_style", str(err)) from None
        return StylizeOptions(style=selection.spec, model=selection.model.name, strength=controls.strength,
                              max_size=self.settings.stream_max_side, preserve_color=controls.preserve_color,
                              format="jpeg")

    def _state(self) -> dict:
        o = self.options
        return {"model": o.model, "style": o.style, "strength": o.strength, "preserve_color": o.preserve_color}

    async def send_json(self, message: dict) -> None:
        async with self.send_lock:
            await self.ws.send_text(json.dumps(message))

    async def run(self) -> None:
        s = self.settings
        await self.send_json({"type": "hello", "max_side": s.stream_max_side, "max_frame_bytes": s.stream_max_frame_bytes,
                              "queue_frames": s.stream_queue_frames, **self._state()})
        tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._work())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if (err := task.exception()) is not None:
                raise err

    async def _receive(self) -> None:
        """Until the client disconnects: frames into the queue, controls applied."""
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await self._frame(message["bytes"])
            elif message.get("text") is not None:
                await self._control(message["text"])

    async def _frame(self, data: bytes) -> None:
        self.seq += 1
        s = self.settings
        if len(data) > s.stream_max_frame_bytes:
            raise StreamClosed(TOO_BIG, "payload_too_large",
                               f"frame of {len(data)} bytes is over the limit of {s.stream_max_frame_bytes} bytes")
        # The header only (microseconds): a frame is refused before it takes a place in the queue.
        try:
            img = imageio.open_header(data, max_pixels=s.max_pixels, formats=tuple(s.input_formats),
                                      max_aspect_ratio=s.max_aspect_ratio, name=f"frame {self.seq}")
        except ImageError as err:
            raise StreamClosed(UNSUPPORTED, "invalid_image", str(err)) from None
        if max(img.size) > s.stream_max_side:
            raise StreamClosed(TOO_BIG, "frame_too_large", f"frame {self.seq} is {img.size[0]}x{img.size[1]}; "
                               f"the longer side may be at most {s.stream_max_side}")
        if len(self.pending) >= s.stream_queue_frames:
            await self._dropped(self.pending.popleft(), "stale")
        self.pending.append(Frame(self.seq, data, time.perf_counter()))
        self.wake.set()

    async def _control(self, text: str) -> None:
        if len(text) > MAX_CONTROL_CHARS:
            raise StreamClosed(TOO_BIG, "payload_too_large",
                               f"text message of {len(text)} characters is over the limit of {MAX_CONTROL_CHARS}")
        try:
            given = json.loads(text)
        except ValueError as err:
            raise StreamClosed(INVALID, "invalid_json", f"text message is not JSON: {err}") from None
        if not isinstance(given, dict):
            raise StreamClosed(INVALID, "invalid_json", "a text message must be a JSON object of controls")
        try:
            controls = Controls.model_validate({**self.controls.model_dump(), **given})
        except ValidationError as err:
            detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'controls'}: {e['msg']}" for e in err.errors())
            raise StreamClosed(POLICY, "invalid_controls", detail) from None
        self.options = self._resolve(controls)
        self.controls = controls
        await self.send_json({"type": "controls", **self._state()})

    async def _dropped(self, frame: Frame, reason: str) -> None:
        self.metrics.stream_drops.labels(reason).inc()
        await self.send_json({"type": "dropped", "seq": frame.seq, "reason": reason})

    async def _work(self) -> None:
        stylizer = self.service.stylizer
        while True:
            while not self.pending:
                self.wake.clear()
                await self.wake.wait()
            frame = self.pending.popleft()
            options = self.options
            try:
                async with asyncio.timeout(self.settings.request_timeout_s):
                    result = await stylizer.stylize(frame.data, options)
            except TimeoutError:
                await self._dropped(frame, "timeout")
                continue
            except Overloaded as err:  # a full queue, the decode budget, memory: the next frame may pass
                self.metrics.rejected.labels(err.model).inc()
                await self._dropped(frame, "overloaded")
                continue
            except ImageError as err:
                raise StreamClosed(INVALID, "invalid_image", str(err)) from None
            seconds = time.perf_counter() - frame.received
            self.metrics.stream_frames.labels(options.model).inc()
            self.metrics.stream_latency.labels(options.model).observe(seconds)
            stats = {"type": "frame", "seq": frame.seq, "width": result.width, "height": result.height,
                     "ms": round(seconds * 1000.0, 1), "inference_ms": round(result.inference_ms, 1),
                     "batch": result.batch_size, "model": options.model, "style": options.style}
            async with self.send_lock:
                await self.ws.send_text(json.dumps(stats))
                await self.ws.send_bytes(result.body)


class StreamGate:
    """The open streams of one app, bounded by ``max_streams``."""

    def __init__(self, settings: Settings):
        self.settings, self.open = settings, 0

    def refusal(self, service) -> str | None:
        if not service.ready:
            return f"not ready: {service.warmup_error or 'models are warming up'}; retry later"
        if self.open >= self.settings.max_streams:
            return f"{self.open} streams open, the service's limit; retry later"
        return None


async def close(websocket: WebSocket, metrics, code: int, error: str, detail: str) -> None:
    """Say why in a message, then close with ``code``; a client already gone is not an error."""
    metrics.count_error(websocket.scope, error)
    try:
        await websocket.send_text(json.dumps({"type": "error", "code": code, "error": error, "detail": detail}))
        await websocket.close(code, close_reason(detail))
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter()
    gate = StreamGate(settings)

    @router.websocket(ROUTE)
    async def stream(websocket: WebSocket) -> None:
        service = websocket.app.state.service
        metrics = service.metrics
        await websocket.accept()
        # Refused after accepting: a browser sees a close code and reason, never an HTTP status.
        if (reason := gate.refusal(service)) is not None:
            return await close(websocket, metrics, TRY_LATER, "unavailable", reason)
        gate.open += 1
        metrics.streams_open.labels(ROUTE).set(gate.open)
        try:
            await StreamSession(websocket, settings).run()
        except StreamClosed as err:
            await close(websocket, metrics, err.code, err.error, err.detail)
        except WebSocketDisconnect:  # gone while we were sending
            pass
        except Exception:  # inference failed: this stream ends, the service goes on
            log.exception("stream failed")
            await close(websocket, metrics, INTERNAL, "internal_error", "internal server error")
        finally:
            gate.open -= 1
            metrics.streams_open.labels(ROUTE).set(gate.open)

    return router
