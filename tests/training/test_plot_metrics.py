"""Loss-curve PNGs from a run's CSV log."""
from PIL import Image

from impasto.training.plot_metrics import main, read_metrics, running_mean


def write_log(path):
    rows = ["epoch,step,train/content,train/style,val/content,val/style"]
    rows += [f"0,{s},{10 / s},{100 / s},," for s in range(1, 41)]
    rows += ["0,20,,,0.6,6.0", "0,40,,,0.3,3.0"]
    path.write_text("\n".join(rows) + "\n")


def test_reads_sparse_columns_and_plots_one_panel_per_term(tmp_path):
    log = tmp_path / "metrics.csv"
    write_log(log)
    metrics = read_metrics(log)
    assert list(metrics["val/style"][0]) == [20, 40] and len(metrics["train/content"][0]) == 40
    assert running_mean(metrics["train/style"][1], 5)[-1] < metrics["train/style"][1][-5]
    assert main([str(log), "-o", str(tmp_path / "loss.png")]) == 0
    width, height = Image.open(tmp_path / "loss.png").size
    assert width > 1.5 * height  # two panels side by side


def test_missing_or_empty_log_is_a_one_line_error(tmp_path, capsys):
    assert main([str(tmp_path / "nope.csv")]) == 2
    empty = tmp_path / "empty.csv"
    empty.write_text("epoch,step,lr\n0,1,0.1\n")
    assert main([str(empty)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 2


def test_plotting_leaves_the_matplotlib_setup_alone(tmp_path, monkeypatch):
    """No backend switch and no pyplot: a notebook or tool that plots keeps its own matplotlib state."""
    import sys

    import matplotlib

    def refuse(*args, **kwargs):
        raise AssertionError("plot_metrics switched the matplotlib backend")

    monkeypatch.setattr(matplotlib, "use", refuse)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # importing pyplot now fails
    log = tmp_path / "metrics.csv"
    write_log(log)
    assert main([str(log), "-o", str(tmp_path / "loss.png")]) == 0
    assert Image.open(tmp_path / "loss.png").size[0] > 0


def test_per_style_validation_figures_share_one_panel_each(tmp_path):
    log = tmp_path / "metrics.csv"
    styles = ["a", "b", "c", "d"]
    header = ["epoch", "step", "train/style", "val/style"] + [f"val/{f}/{s}" for f in ("S", "C") for s in styles]
    rows = [",".join(header), "0,1,5.0,,,,,,,,,", "0,2,,4.0," + ",".join(["0.5"] * 8)]
    log.write_text("\n".join(rows) + "\n")
    assert main([str(log), "-o", str(tmp_path / "loss.png")]) == 0
    width, height = Image.open(tmp_path / "loss.png").size
    assert 2.5 * height < width < 3.5 * 1.2 * height  # style, S, C: three panels, not eleven
