"""The serving package must run where only onnxruntime is installed: it never imports torch."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_app_and_a_request_do_not_import_torch(model_dir):
    script = textwrap.dedent(f"""
        import io, sys
        from fastapi.testclient import TestClient
        from PIL import Image
        import impasto.serving.server, benchmarks.load
        from impasto.serving.app import create_app
        from impasto.serving.settings import Settings

        buf = io.BytesIO()
        Image.new("RGB", (40, 30), "orange").save(buf, "PNG")
        with TestClient(create_app(Settings(models={str(model_dir)!r})), base_url="http://localhost") as client:
            r = client.post("/v1/stylize?style=ink:1,wave:1", content=buf.getvalue(),
                            headers={{"content-type": "image/png"}})
            assert r.status_code == 200, r.text
            assert client.get("/v1/styles").status_code == 200
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "torchvision")))
        print("TORCH:", loaded)
        sys.exit(1 if loaded else 0)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "TORCH: []" in result.stdout
