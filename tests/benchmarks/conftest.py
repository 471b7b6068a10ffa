"""Fixtures of the benchmark smoke tests."""
from __future__ import annotations

import pytest


@pytest.fixture()
def restore_torch_threads():
    """A benchmark's ``--threads`` sets torch's process-wide thread count; put it back afterwards."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
