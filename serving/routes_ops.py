"""Operational endpoints: liveness, readiness and Prometheus metrics (not versioned)."""
from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from impasto.serving.http_errors import error_response, error_responses

router = APIRouter(tags=["operations"])


# HEAD too, for probes that use it; kept out of the schema (a HEAD answer has no body to describe).
@router.get("/healthz", summary="Liveness: the process answers")
@router.head("/healthz", include_in_schema=False)
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: models loaded and warmed up (Ray engine: a model replica is running)",
            responses=error_responses(503))
@router.head("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    service = request.app.state.service
    if reason := await service.unready_reason():
        return error_response(503, "not_ready", reason)
    return JSONResponse({"status": "ready", "models": list(service.catalog.models)})


@router.get("/metrics", summary="Prometheus metrics (text exposition format)",
            response_class=Response, responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics(request: Request) -> Response:
    body, content_type = request.app.state.service.metrics.render()
    return Response(body, media_type=content_type)
