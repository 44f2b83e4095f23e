"""Users' own layer pairs: a custom PyTorch module and a custom Keras layer that compute the same thing."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from bnport.core import kinds


def register_pair(
    kind: str,
    torch_class: type,
    keras_class: type,
    *,
    to_keras: Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]],
    to_torch: Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]],
    channels: bool = True,
    reduction_length: int = 1,
) -> kinds.CustomPair:
    """Teach bnport a pair of your own layer classes, so that ``plan``, ``port``, ``convert`` and ``verify`` treat
    them like a built-in kind (paired by structure, checked before anything is written, compared layer by layer).

    Args:
        kind: a name for the pair (letters, digits, ``_ . -``), shown in reports; not one of bnport's own kinds.
            Registering the same name again replaces the pair.
        torch_class: the ``torch.nn.Module`` subclass (instances of subclasses match too).
        keras_class: the ``keras.layers.Layer`` subclass.
        to_keras: maps the module's own parameters and buffers, by name, as numpy arrays
            (``{"scale": array}``), to the Keras layer's variables, by their names (``{"gamma": array}``).
        to_torch: the inverse: the Keras layer's variables by name to the module's parameters and buffers by name.
            Both functions must give every variable of the destination, in its shape and dtype; bnport checks and
            refuses with the layer's name otherwise.
        channels: the layer's output has a channel axis (PyTorch dim 1, Keras last axis), so verify moves it
            before comparing; False for outputs laid out the same in both (a Dense-like layer).
        reduction_length: how many products one output element sums (1 for an elementwise layer; K for a dot
            product of length K): the layer's share of the float32 tolerance.

    Returns the registered pair. Remove it with :func:`unregister_pair`.
    """
    from bnport.adapters.kinds import definitions

    definitions()  # the built-in kinds declared, so that a user's pair cannot take one's name
    return kinds.register(kinds.CustomPair(kind, torch_class, keras_class, to_keras, to_torch, channels,
                                           reduction_length))


def unregister_pair(kind: str) -> None:
    """Forget the pair registered under ``kind`` (nothing happens if there is none)."""
    kinds.unregister(kind)
