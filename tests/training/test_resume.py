"""An interrupted `impasto train` (Ctrl-C, SIGTERM or SIGKILL) resumes with ``ckpt_path=`` to the very
losses of the uninterrupted run: data order, augmentation and random state all come back."""
import csv
import os
import signal
import subprocess
import sys
import time

import lightning as L
import pytest
import torch

from impasto.training.train import train
from tests.conftest import compose_train_config

# 6 photos in batches of 2: 3 steps an epoch, so the runs cross epochs and stop mid-epoch.
STEPS = 12
RESUMABLE = ["network=tiny", "data.image_size=32", "data.val_size=32", "style_size=48", "data.repeat=1",
             "data.batch_size=2", "callbacks.progress=null", "callbacks.samples=null", "logger.tensorboard=null",
             "trainer.enable_model_summary=false", "trainer.log_every_n_steps=1", "trainer.val_check_interval=100",
             "+logger.csv.flush_logs_every_n_steps=1", "callbacks.checkpoint.every_n_train_steps=1",
             f"trainer.max_steps={STEPS}"]


def losses_by_step(run_dir):
    """``{step: train/loss}`` over every metrics file of the run (a resume sets the earlier ones
    aside); a step logged twice (before a kill and again after the resume) must agree."""
    losses = {}
    for path in sorted((run_dir / "logs").glob("metrics*.csv")):
        with open(path) as f:
            for row in csv.DictReader(f):
                if row.get("train/loss"):
                    step, loss = int(row["step"]), float(row["train/loss"])
                    assert losses.setdefault(step, loss) == pytest.approx(loss, rel=0, abs=1e-6), (path, step)
    return losses


@pytest.fixture(autouse=True)
def one_thread():
    """Every run of these tests on one thread: the same arithmetic in the pytest process and in the
    commands, and many times faster than two threads on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def start_training(run_dir, *overrides):
    # A session of its own, so that a signal can go to the whole process group, as Ctrl-C does.
    return subprocess.Popen([sys.executable, "-m", "impasto.core.cli", "train", *RESUMABLE,
                             f"hydra.run.dir={run_dir}", *overrides],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def wait_for(path, process, timeout=120):
    """Until ``path`` exists (checkpoints are written atomically, so it is complete)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"no {path}"
        time.sleep(0.02)


def finish(process, timeout=180):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


class SignalAt(L.Callback):
    """Sends this process ``signum`` at the end of step ``step``: an interrupt at a known point."""

    def __init__(self, step: int, signum: int, times: int = 1):
        self.step, self.signum, self.times = step, signum, times

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            for _ in range(self.times):
                signal.raise_signal(self.signum)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """``{step: train/loss}`` of the uninterrupted run (on one thread, as the others)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
            losses = losses_by_step(train(compose_train_config(tmp_path_factory.mktemp("reference"), RESUMABLE))["run_dir"])
    finally:
        torch.set_num_threads(threads)
    assert sorted(losses) == list(range(STEPS))
    return losses


def resume(run_dir, *overrides):
    return train(compose_train_config(run_dir, [*RESUMABLE, f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
                                                *overrides]))


def test_the_train_command_stopped_by_ctrl_c_or_killed_resumes_exactly(tmp_path, reference):
    ckpts = {name: tmp_path / name / "checkpoints" for name in ("sigint", "sigkill")}
    # Ctrl-C to the whole group (a DataLoader worker too): the step finishes, last.ckpt, exit 130.
    interrupted = start_training(tmp_path / "sigint", "data.num_workers=1")
    killed = start_training(tmp_path / "sigkill")
    wait_for(ckpts["sigint"] / "step_000003.ckpt", interrupted)
    os.killpg(interrupted.pid, signal.SIGINT)
    wait_for(ckpts["sigkill"] / "step_000004.ckpt", killed)
    os.killpg(killed.pid, signal.SIGKILL)

    code, _, err = finish(interrupted)
    assert code == 128 + signal.SIGINT, err
    stopped = err.strip().splitlines()[-1]
    assert stopped.startswith("impasto train: stopped by SIGINT at step ") and "Traceback" not in err
    assert stopped.endswith(f"resume with ckpt_path={ckpts['sigint'] / 'last.ckpt'}")
    assert finish(killed)[0] == -signal.SIGKILL
    for name in ckpts:
        assert not (ckpts[name] / f"step_{STEPS:06d}.ckpt").exists()  # really stopped early

    assert resume(tmp_path / "sigint", "data.num_workers=1")["global_step"] == STEPS
    assert resume(tmp_path / "sigkill")["global_step"] == STEPS
    for name in ckpts:
        assert losses_by_step(tmp_path / name) == pytest.approx(reference, rel=0, abs=1e-6), name


def test_sigterm_stops_after_the_step_and_resumes_exactly(tmp_path, reference):
    """What a cluster scheduler sends before it kills a job; here at a known step: the last of an
    epoch, where Lightning's own bookkeeping of a resume is the most involved."""
    stopped = train(compose_train_config(tmp_path, [
        *RESUMABLE, f"+callbacks.signal._target_={__name__}.SignalAt", "+callbacks.signal.step=5",
        f"+callbacks.signal.signum={int(signal.SIGTERM)}"]))
    # The signal came after step 5 had been checked: step 6 finishes, then the run stops.
    assert (stopped["interrupted"], stopped["global_step"]) == ("SIGTERM", 6)
    assert torch.load(stopped["last_ckpt"], weights_only=True)["global_step"] == 6
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers put back
    assert resume(tmp_path)["global_step"] == STEPS
    assert losses_by_step(tmp_path) == pytest.approx(reference, rel=0, abs=1e-6)


def test_a_second_ctrl_c_stops_at_once_and_still_saves(tmp_path, reference):
    with pytest.raises(SystemExit) as exited:  # Lightning's way out of a KeyboardInterrupt
        train(compose_train_config(tmp_path, [
            *RESUMABLE, f"+callbacks.signal._target_={__name__}.SignalAt", "+callbacks.signal.step=2",
            f"+callbacks.signal.signum={int(signal.SIGINT)}", "+callbacks.signal.times=2"]))
    assert exited.value.code == 1
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert resume(tmp_path)["global_step"] == STEPS
    # The interrupt came before the logger wrote the last step's row; every other step is there.
    logged = losses_by_step(tmp_path)
    assert set(logged) >= set(range(2, STEPS))
    assert logged == pytest.approx({step: reference[step] for step in logged}, rel=0, abs=1e-6)


def test_last_ckpt_is_also_written_every_minute_of_training(tmp_path):
    """A killed run loses at most about a minute, whatever `every_n_train_steps` says."""
    from datetime import timedelta

    from lightning.pytorch.callbacks import ModelCheckpoint

    from impasto.training.train import instantiate_group

    callbacks = instantiate_group(compose_train_config(tmp_path, []).callbacks)
    timed = [cb for cb in callbacks if isinstance(cb, ModelCheckpoint) and cb._train_time_interval]
    assert len(timed) == 1 and timed[0]._train_time_interval == timedelta(minutes=1) and timed[0].save_last
    assert timed[0].dirpath == str(tmp_path / "checkpoints")


def test_the_global_random_state_comes_back_with_the_checkpoint(tmp_path):
    """For anything random that does not seed itself: saved as plain data (loads with
    weights_only), put back when training starts."""
    import random

    import numpy as np

    from impasto.training.callbacks import RandomState

    torch.manual_seed(1), random.seed(2), np.random.seed(3)
    torch.save(RandomState().state_dict(), tmp_path / "state.pt")
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(7), random.seed(8), np.random.seed(9)
    restored = RandomState()
    restored.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    restored.on_train_start(None, None)
    drawn = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(drawn[0], expected[0]) and drawn[1:] == expected[1:]
