"""`impasto quickstart` (the README's main command) with the bundled model: every style plus one
blend of a bundled photo, and a contact sheet."""
import subprocess
import sys

from PIL import Image

from impasto.core.model import default_model_path


def quickstart(*args):
    return subprocess.run([sys.executable, "-m", "impasto.core.cli", "quickstart", *map(str, args)],
                          capture_output=True, text=True, timeout=180)


def test_quickstart_writes_every_style_a_blend_and_a_contact_sheet(tmp_path):
    result = quickstart("--output-dir", tmp_path, "--max-size", "160")
    assert result.returncode == 0, result.stderr
    assert f"contact sheet: {tmp_path / 'contact_sheet.png'}" in result.stdout
    from impasto.core.model import StyleModel

    styles = StyleModel(default_model_path(), device="cpu").style_names
    written = sorted(p.name for p in tmp_path.glob("photo_*.png"))
    assert written == sorted([*(f"photo_{name}.png" for name in styles), "photo_blend.png"])
    assert Image.open(tmp_path / "photo_blend.png").size == Image.open(tmp_path / "photo.png").size == (160, 160)
    # original + every style + the blend, four to a row, each tile 320 px + gaps and labels
    sheet = Image.open(tmp_path / "contact_sheet.png")
    rows = -(-(len(styles) + 2) // 4)
    assert sheet.width > 4 * 320 and rows * 320 < sheet.height < rows * 400


def test_quickstart_rejects_bad_input_in_one_line(tmp_path):
    missing = quickstart("--photo", tmp_path / "nope.jpg", "--output-dir", tmp_path / "out")
    assert missing.returncode == 2 and "nope.jpg" in missing.stderr and "Traceback" not in missing.stderr
    unknown = quickstart("--blend", "starry_night:1,sunflowers:1", "--output-dir", tmp_path / "out")
    assert unknown.returncode == 2 and "sunflowers" in unknown.stderr and "Traceback" not in unknown.stderr
    stray = quickstart("trainer.max_steps=5")
    assert stray.returncode == 2 and "--train" in stray.stderr
    assert not (tmp_path / "out").exists()


def test_quickstart_train_trains_exports_and_uses_its_own_model(tmp_path):
    from tests.conftest import TINY

    result = quickstart("--train", *TINY, "trainer.max_steps=2", "trainer.val_check_interval=2",
                        "--output-dir", tmp_path, "--max-size", "96")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "model.onnx").is_file() and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in tmp_path.glob("photo_*.png")) == ["photo_ihc.png"]  # one style, no blend
    assert f"-m {tmp_path / 'model.onnx'}" in result.stdout
