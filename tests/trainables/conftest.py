"""Fixtures the trainables tests share."""
import pytest
import torch


@pytest.fixture(scope="module")
def float64():
    """float64 by default and one thread, for the module (the pack and validation-selection
    tests compare runs to 1e-10). One thread: the numbers do not depend on it, and on a
    shared machine OpenMP's spinning threads cost more than they give at this size."""
    old, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(old)
    torch.set_num_threads(threads)
