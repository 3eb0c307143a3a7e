import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small networks train far faster on one thread than on two contended ones; restore afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
