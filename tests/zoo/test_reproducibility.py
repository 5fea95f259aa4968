"""Training from scratch here reproduces: a small config reaches its stated held-out loss."""

import pytest

from zoo import meets
from zoo.evaluate import heldout_loss
from zoo.train import QUICK_CHECK, train


@pytest.mark.slow
def test_quick_config_trains_to_its_stated_loss():
    model = train(QUICK_CHECK)
    loss = heldout_loss(model)
    assert meets(loss, QUICK_CHECK.requirements["heldout_loss"]), loss
