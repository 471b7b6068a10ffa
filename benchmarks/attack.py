"""Small uploads, large costs: decompression-style uploads against a real ``impasto serve``.

    python -m benchmarks.attack

Sends, all at once, ``--bombs`` JPEGs of about 600 bytes whose header declares 7000x7000,
``--strips`` complete PNGs of 25,000,000x2 (about 150 KB) and ``--flats`` complete black PNGs of
7000x7000 (about 150 KB, genuinely 49 megapixels), together with ``--normal`` ordinary 256x256
requests, to a server on 127.0.0.1 with default settings (the bundled model unless ``--models``).
Prints the answers by status, the longest answer, the server's peak resident memory (VmHWM) and
the ordinary requests' latency, then checks them against the bounds (exit status 1 if one fails):
every attack answer a 4xx or 503 (a 200 for a declared-huge upload is a blank image, so it fails)
or, for the complete 7000x7000 PNGs only, a 200 holding the 1024x1024 result,
peak RSS under ``--max-rss-mib``, ordinary requests answered 200 within ``--normal-within-s``.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import struct
import sys
import time
import zlib
from argparse import Namespace
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from benchmarks.load import HOST, BenchmarkError, _free_port, peak_rss_mib, running_server, sample_images, wait_ready
from benchmarks.tables import text_table
from impasto.core.model import BUNDLED_MODELS

DEFAULT_MAX_RSS_MIB = 1536


def jpeg_declaring(width: int, height: int) -> bytes:
    """A complete 16x16 JPEG whose frame header declares ``width`` x ``height``: libjpeg decodes it
    to that size and fills what is missing with grey."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, "JPEG", quality=50)
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")  # marker(2) length(2) precision(1) height(2) width(2)
    data[sof + 5: sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_strip(width: int, height: int) -> bytes:
    """A complete, valid black RGB PNG (deflate turns the zero rows into a small file)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    deflate = zlib.compressobj(9)
    row = bytes(1 + 3 * width)  # filter byte 0, then black pixels
    idat = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@dataclass
class Answer:
    kind: str  # "bomb", "strip", "flat" or "normal"
    status: str  # HTTP status, or the transport error's name
    seconds: float
    ok: bool  # what the bounds accept for this kind


@dataclass
class Report:
    bomb: bytes
    strip: bytes
    flat: bytes
    answers: list[Answer] = field(default_factory=list)
    baseline_mib: float = 0.0
    peak_mib: float = 0.0

    def by_status(self) -> list[list[str]]:
        counts: dict[tuple[str, str], int] = {}
        for a in self.answers:
            counts[(a.kind, a.status)] = counts.get((a.kind, a.status), 0) + 1
        return [[kind, status, str(n)] for (kind, status), n in sorted(counts.items())]


RESULT_SIZES = {"normal": (256, 256), "flat": (1024, 1024)}  # what a correct 200 holds


def _judge(kind: str, response) -> bool:
    if response.status_code == 200:
        # A 200 for an upload declaring far more pixels than it holds is a blank image.
        return kind in RESULT_SIZES and Image.open(io.BytesIO(response.content)).size == RESULT_SIZES[kind]
    if kind == "normal":
        return False
    # A refusal must be quick and in the service's JSON error shape.
    if response.status_code == 503 or 400 <= response.status_code < 500:
        return set(response.json()) == {"error", "detail"}
    return False


async def attack(base: str, server, args, report: Report) -> list[Answer]:
    import httpx

    uploads = ([("bomb", report.bomb, "image/jpeg")] * args.bombs + [("strip", report.strip, "image/png")] * args.strips
               + [("flat", report.flat, "image/png")] * args.flats)
    normal = sample_images(256, 1)[0]
    async with httpx.AsyncClient(base_url=base, timeout=args.request_timeout) as client:
        await wait_ready(client, server)

        async def send(kind: str, body: bytes, content_type: str, delay: float = 0.0) -> Answer:
            await asyncio.sleep(delay)
            start = time.perf_counter()
            try:
                r = await client.post("/v1/stylize", content=body, headers={"content-type": content_type})
                status, ok = str(r.status_code), _judge(kind, r)
            except httpx.HTTPError as err:
                status, ok = type(err).__name__, False
            return Answer(kind, status, time.perf_counter() - start, ok)

        # The ordinary requests go out while the attack's uploads are arriving.
        return await asyncio.gather(*(send(kind, body, ctype) for kind, body, ctype in uploads),
                                    *(send("normal", normal, "image/png", 0.01 * i) for i in range(args.normal)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.attack", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=str(BUNDLED_MODELS), help="directory of .onnx models (default: bundled)")
    p.add_argument("--bombs", type=int, default=16, help="~600-byte JPEGs declaring 7000x7000 (default %(default)s)")
    p.add_argument("--strips", type=int, default=4, help="25,000,000x2 PNGs (default %(default)s)")
    p.add_argument("--flats", type=int, default=4, help="complete black 7000x7000 PNGs (default %(default)s)")
    p.add_argument("--normal", type=int, default=1, help="ordinary 256x256 requests sent meanwhile (default %(default)s)")
    p.add_argument("--max-rss-mib", type=float, default=DEFAULT_MAX_RSS_MIB,
                   help="bound on the server's peak RSS (default %(default)s)")
    p.add_argument("--normal-within-s", type=float, default=1.0,
                   help="bound on an ordinary request's latency (default %(default)s)")
    p.add_argument("--request-timeout", type=float, default=30.0,
                   help="the server's default request timeout; answers must come within it (default %(default)s)")
    args = p.parse_args(argv)
    if min(args.bombs, args.strips, args.flats) < 0 or args.normal < 1 or args.request_timeout <= 0:
        p.error("need --bombs, --strips, --flats >= 0, --normal >= 1, --request-timeout > 0")
    try:
        report = _run(args)
    except BenchmarkError as err:
        print(f"benchmarks.attack: {err}", file=sys.stderr)
        return 2
    return _print(report, args)


def _run(args) -> Report:
    models = Path(args.models).expanduser()
    if not (models.is_dir() and any(models.glob("*.onnx"))):
        raise BenchmarkError(f"no .onnx models in {models}")
    port = _free_port()
    report = Report(bomb=jpeg_declaring(7000, 7000), strip=png_strip(25_000_000, 2),
                    flat=png_strip(7000, 7000) if args.flats else b"")
    # The load benchmark's server with its defaults: one image per batch call is not the point here.
    server_args = Namespace(max_batch_size=8, max_batch_wait_ms=5.0, clients=1, threads=None)
    with running_server(models, port, True, server_args) as server:
        async def go() -> list[Answer]:
            import httpx

            async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}") as probe:
                await wait_ready(probe, server)
            report.baseline_mib = peak_rss_mib(server.proc.pid, "VmRSS")
            return await attack(f"http://{HOST}:{port}", server, args, report)

        report.answers = asyncio.run(go())
        report.peak_mib = peak_rss_mib(server.proc.pid)
    return report


def _print(report: Report, args) -> int:
    attack_answers = [a for a in report.answers if a.kind != "normal"]
    normal = [a for a in report.answers if a.kind == "normal"]
    longest = max((a.seconds for a in attack_answers), default=0.0)
    normal_s = max(a.seconds for a in normal)
    print(f"attack: {args.bombs} JPEGs declaring 7000x7000 ({len(report.bomb)} bytes each), "
          f"{args.strips} PNGs of 25000000x2 ({len(report.strip) // 1024} KiB each), {args.flats} black PNGs "
          f"of 7000x7000 ({len(report.flat) // 1024} KiB each), "
          f"{args.normal} ordinary 256x256 request(s) meanwhile; server with default settings")
    print()
    print(text_table(["upload", "status", "answers"], report.by_status()))
    print()
    refused = sum(a.ok for a in attack_answers)
    checks = [
        ("attack answers 4xx/503/right 200", f"{refused}/{len(attack_answers)}", "all", refused == len(attack_answers)),
        ("max attack latency s", f"{longest:.3f}", f"< {args.request_timeout:g}", longest < args.request_timeout),
        ("server RSS before MiB", f"{report.baseline_mib:.0f}", "", True),
        ("server peak RSS MiB", f"{report.peak_mib:.0f}", f"< {args.max_rss_mib:g}", report.peak_mib < args.max_rss_mib),
        ("normal request latency s", f"{normal_s:.3f}", f"< {args.normal_within_s:g}, 200",
         all(a.ok for a in normal) and normal_s < args.normal_within_s),
    ]
    print(text_table(["figure", "value", "bound", "held"], [[name, value, bound, "yes" if held else "NO"]
                                                             for name, value, bound, held in checks]))
    return 0 if all(held for *_, held in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
