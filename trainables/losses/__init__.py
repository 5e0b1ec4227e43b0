"""Losses of the ELM paper behind one registry: ``create_loss(name, class_counts, **hparams)``.

Importing this package registers every loss (one module per family).
"""
from trainables.losses import eqlv2, ib, logit_adjust, margin, softmax  # noqa: F401 (registers)
from trainables.losses.registry import (LOSSES, LossSpec, create_loss, describe_loss,
                                        list_losses, losses_taking, register_loss,
                                        takes_hparam)
from trainables.losses.weights import (class_balanced_weights, class_margins, drw_weights,
                                       ib_weights)

__all__ = ["LOSSES", "LossSpec", "create_loss", "describe_loss", "list_losses",
           "register_loss", "takes_hparam", "losses_taking", "class_margins",
           "class_balanced_weights", "drw_weights", "ib_weights"]
