"""Versioned API: ``GET /v1/styles`` and ``POST /v1/stylize``."""
# No `from __future__ import annotations`: FastAPI must evaluate the parameter annotations, and
# some of them close over the settings passed to build_router.

import asyncio
import time
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from impasto.core.tiling import MAX_STROKE_SCALE
from impasto.serving.batching import Overloaded
from impasto.serving.http_errors import ApiError, error_responses
from impasto.serving.pipeline import StylizeOptions
from impasto.serving.settings import Settings

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
_BINARY = {"schema": {"type": "string", "format": "binary"}}
# The body is read by hand (to enforce the size limit while streaming), so it is described here.
REQUEST_BODY = {
    "required": True,
    "description": "The image (PNG, JPEG or WebP): a multipart upload in field `image`, or the raw body.",
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                           "properties": {"image": {"type": "string", "format": "binary"}}}},
        **{t: _BINARY for t in IMAGE_TYPES},
        "application/octet-stream": _BINARY,
    },
}


class StyleEntry(BaseModel):
    name: str
    id: str
    model: str
    blendable: bool
    identity: bool
    info: dict


class ModelEntry(BaseModel):
    name: str
    styles: list[str]
    blendable: bool
    identity_style: str | None


class StylesResponse(BaseModel):
    styles: list[StyleEntry]
    models: list[ModelEntry]


def raw_body_type(content_type: str) -> bool:
    return content_type.startswith("image/") or content_type == "application/octet-stream"


async def _limited(stream, limit: int):
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"request body is over the limit of {limit} bytes")
        yield chunk


async def read_image(request: Request, limit: int) -> bytes:
    """The uploaded image bytes, refusing bodies over ``limit`` without buffering them whole."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"request body of {declared} bytes is over the limit of {limit} bytes")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data" and not raw_body_type(content_type):
        # Only types a browser cannot send cross-origin without a CORS preflight (besides
        # multipart, which the origin check covers): no page can make a browser spend our compute.
        raise ApiError(415, "unsupported_media_type",
                       f"content type {content_type[:100] or '(none)'!r} not accepted: send multipart/form-data "
                       "with field 'image', or the raw image as image/* or application/octet-stream")
    stream = _limited(request.stream(), limit)
    if content_type == "multipart/form-data":
        try:
            form = await MultiPartParser(request.headers, stream, max_files=4, max_fields=16,
                                         max_part_size=limit).parse()
        except MultiPartException as err:
            raise ApiError(400, "bad_request", f"malformed multipart body: {err.message}") from None
        except ValueError as err:  # python-multipart's own parse errors
            raise ApiError(400, "bad_request", f"malformed multipart body: {err}") from None
        field = form.get("image")
        if not isinstance(field, UploadFile):
            raise ApiError(400, "bad_request", "multipart body has no file field named 'image'")
        data = await field.read()
        await form.close()
    else:
        data = b"".join([chunk async for chunk in stream])
    if not data:
        raise ApiError(400, "empty_body", "no image: send it as multipart field 'image' or as the raw request body")
    return data


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["stylization"])

    @router.get("/styles", response_model=StylesResponse, summary="List every style of every loaded model")
    async def list_styles(request: Request) -> StylesResponse:
        catalog = request.app.state.service.catalog
        return StylesResponse(
            styles=catalog.styles(),
            models=[ModelEntry(name=m.name, styles=m.style_names, blendable=m.blendable,
                               identity_style=m.identity_style) for m in catalog.models.values()])

    @router.post(
        "/stylize", summary="Stylize one image", response_class=Response,
        openapi_extra={"requestBody": REQUEST_BODY},
        responses={200: {"description": "the stylized image; timing in X-Process-Time-Ms, X-Inference-Time-Ms, "
                                        "X-Batch-Size", "content": {t: _BINARY for t in IMAGE_TYPES}},
                   **error_responses(400, 403, 413, 415, 422, 503, 504)})
    async def stylize(
        request: Request,
        style: Annotated[str | None, Query(max_length=2000, description=(
            "a style name, `MODEL/NAME`, or a blend inside one model: `name:w,name:w` "
            "(weights >= 0, normalised); default: the first style of the first model"))] = None,
        model: Annotated[str | None, Query(max_length=200, description="model to take the style from "
                                                                       "(needed when a name is in several)")] = None,
        strength: Annotated[float, Query(ge=0.0, le=1.0, description=(
            "0 = the original, 1 = fully stylized; uses the model's identity style when it has one, "
            "else a pixel blend"))] = 1.0,
        max_size: Annotated[int | None, Query(ge=16, le=settings.max_size_limit, description=(
            f"downscale so the longer side is at most this (default {settings.default_max_size})"))] = None,
        preserve_color: Annotated[bool, Query(description="keep the original colours, restyle luminance")] = False,
        format: Annotated[Literal["png", "jpeg", "webp"], Query(description="output format")] = "png",
        stroke_scale: Annotated[float, Query(ge=1.0, le=MAX_STROKE_SCALE, description=(
            "strokes this many times larger at the same output size (the image is stylised smaller, "
            "up-sampled, and the photo's edges restored with a guided filter)"))] = 1.0,
    ) -> Response:
        start = time.perf_counter()
        service = request.app.state.service
        options = StylizeOptions(style, model, strength, max_size, preserve_color, format, stroke_scale)
        try:
            async with asyncio.timeout(settings.request_timeout_s):
                data = await read_image(request, settings.max_upload_bytes)
                result = await service.stylizer.stylize(data, options)
        except TimeoutError:
            raise ApiError(504, "timeout", f"not done within {settings.request_timeout_s:g} s") from None
        except Overloaded as err:  # a full queue, the decode budget, memory
            service.metrics.rejected.labels(err.model).inc()
            raise ApiError(503, "overloaded", f"{err}; retry later",
                           headers={"Retry-After": str(settings.retry_after_s)}) from None
        sel = result.selection
        headers = {
            "X-Process-Time-Ms": f"{(time.perf_counter() - start) * 1000.0:.1f}",
            "X-Inference-Time-Ms": f"{result.inference_ms:.1f}",
            "X-Batch-Size": str(result.batch_size),
            "X-Model": sel.model.name,
            "X-Style": quote(sel.spec, safe=":,/."),  # header values must be ASCII
            "X-Strength-Mode": result.strength_mode,
            "X-Image-Size": f"{result.width}x{result.height}",
            "Content-Disposition": f'inline; filename="stylized.{format}"',
        }
        if result.replica:  # the Ray engine: which model replica ran it
            headers["X-Replica"] = result.replica
        return Response(result.body, media_type=result.content_type, headers=headers)

    return router
