"""Service configuration: command-line flags or ``IMPASTO_*`` environment variables.

Environment variables use the field name in upper case, e.g. ``IMPASTO_MODELS=/srv/models``,
``IMPASTO_MAX_BATCH_SIZE=16``, ``IMPASTO_BATCHING=false``. Flags given to ``impasto serve`` win.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from impasto.core.errors import ModelError
from impasto.core.model import BUNDLED_MODELS, find_models


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMPASTO_", extra="ignore")

    models: Path | None = Field(None, description="directory of .onnx models (default: the bundled ones)")
    host: str = Field("127.0.0.1", description="address to bind; use 0.0.0.0 to listen on every interface")
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, description="uvicorn worker processes (each loads its own sessions)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, ge=1, description="onnxruntime intra-op threads per model")
    log_level: str = "info"

    # Engine: one process (uvicorn, the default) or Ray Serve (impasto.serving.ray_app, the `ray` extra).
    engine: Literal["local", "ray"] = "local"
    replicas: int = Field(1, ge=1, description="Ray engine: model replicas (fixed count)")
    autoscale: Annotated[tuple[int, int] | None, NoDecode] = Field(None, description=(
        "Ray engine: MIN:MAX model replicas, scaled on requests in flight per replica (overrides replicas)"))

    # Cross-request batching (per model; only images of the same size share a batch).
    batching: bool = True
    max_batch_size: int = Field(8, ge=1, le=256)
    max_batch_wait_ms: float = Field(5.0, ge=0, le=10_000)
    max_queue: int = Field(64, ge=1, description="requests waiting per model before 503 + Retry-After")
    retry_after_s: int = Field(1, ge=0)
    request_timeout_s: float = Field(30.0, gt=0)

    # Hard limits on input.
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1)
    # A capability limit, not a memory one: images over the thumbnail size are tiled (impasto.core.tiling),
    # so a request's memory is its uint8 input and output, whatever its size; 8K UHD (33.2 MP) fits.
    max_pixels: int = Field(50_000_000, ge=1, description="decoded pixel limit (checked on the header)")
    default_max_size: int = Field(1024, ge=16, description="longer side images are scaled to by default")
    max_size_limit: int = Field(8192, ge=16, description="largest max_size a request may ask for (8K; larger "
                                                         "images are tiled with thumbnail statistics)")
    input_formats: tuple[str, ...] = ("PNG", "JPEG", "WEBP")
    max_aspect_ratio: float = Field(100.0, ge=1, description="longest side / shortest side an upload may have "
                                                              "(thinner ones are refused before decoding)")
    decode_budget_pixels: int = Field(64_000_000, ge=1, description=(
        "decoded pixels all requests may hold at once (reserved from the header before decoding, "
        "kept until the answer is encoded); over it: 503 + Retry-After"))

    # Live camera streams (WebSocket /api/stream, see impasto.serving.routes_stream).
    max_streams: int = Field(16, ge=0, description="stream connections open at once; more are closed with 1013")
    stream_max_side: int = Field(640, ge=16, le=1024, description=(
        "longest side a stream frame may have (larger: closed, 1009); at most 1024, so frames are never tiled"))
    stream_max_frame_bytes: int = Field(1024 * 1024, ge=1024, description="largest stream message (larger: closed, 1009)")
    stream_queue_frames: int = Field(1, ge=1, le=4, description=(
        "frames a stream keeps waiting behind the one in progress; a newer one drops the oldest"))

    # Connections: uvicorn's idle time between requests, and the time a request's headers may take.
    keep_alive_timeout_s: float = Field(5.0, gt=0, description="close a connection idle this long after an answer")
    header_timeout_s: float = Field(10.0, gt=0, description="close a connection whose request headers "
                                                             "are not complete this long after its first byte")
    # Browsers (see impasto.serving.guard). Comma-separated in flags and IMPASTO_* variables.
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Host header names answered, '*' for any (default: localhost, 127.0.0.1, ::1, --host)")
    allowed_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="other origins whose pages may POST here, e.g. https://app.example.com; '*' for any")

    @field_validator("autoscale", mode="before")
    @classmethod
    def _min_max(cls, value):
        if isinstance(value, str) and value.strip().startswith("["):
            return json.loads(value)  # as export_environment writes it
        if isinstance(value, str):
            low, sep, high = value.partition(":")
            if not sep or not low.strip().isdigit() or not high.strip().isdigit():
                raise ValueError(f"autoscale takes MIN:MAX, e.g. 1:4, not {value!r}")
            return int(low), int(high)
        return value

    @field_validator("autoscale")
    @classmethod
    def _min_max_order(cls, value):
        if value is not None and not (0 <= value[0] <= value[1] and value[1] >= 1):
            raise ValueError(f"autoscale needs 0 <= MIN <= MAX and MAX >= 1, got {value[0]}:{value[1]}")
        return value

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _split_list(cls, value):
        if isinstance(value, str):
            text = value.strip()
            return tuple(json.loads(text)) if text.startswith("[") else tuple(v.strip() for v in text.split(",") if v.strip())
        return value

    def served_hosts(self) -> tuple[str, ...]:
        """The Host names answered: the configured ones, else the local names and the bound address."""
        return self.allowed_hosts or ("localhost", "127.0.0.1", "::1", self.host)

    def model_paths(self) -> list[Path]:
        """The .onnx files to serve; a :class:`ModelError` explains what to pass when there are none."""
        if self.models is None:
            paths = find_models(BUNDLED_MODELS) if BUNDLED_MODELS.is_dir() else []
            if not paths:
                raise ModelError("no bundled models in this installation; pass --models DIR "
                                 "(or set IMPASTO_MODELS) to a directory of .onnx files from `impasto export`")
            return paths
        paths = find_models(self.models)
        if not paths:
            raise ModelError(f"no .onnx models in {self.models}; export one with `impasto export`")
        return paths
