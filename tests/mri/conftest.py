import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Small MRI problems run faster (and steadier on a shared machine) on one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
