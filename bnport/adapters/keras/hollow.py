"""Keras models built with shapes but no values, for a conversion that gives every variable its value.

Building a model draws an initial value for every variable, most of the build's time and memory
(docs/performance.md), all overwritten by the conversion. Inside
``keras.StatelessScope(initialize_variables=False)`` Keras creates each variable with its shape, dtype and
initializer but no memory (it uses such variables for shape inference); :mod:`bnport.adapters.keras.files` then saves
the model with the ported values given to another stateless scope, so they never pass through the variables.

Keras keeps variables created this way in a per-thread list and initialises them when the next outermost
stateless scope exits (``keras.src.backend.common.variables.initialize_all_variables``); :func:`built` takes
its model's variables off that list when it is done, or a later ``stateless_call`` anywhere in the process
would draw all of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import keras

from bnport.adapters.keras.compat import keras as keras_compat

_PENDING = "uninitialized_variables"  # Keras's per-thread list of variables waiting for a value


@contextlib.contextmanager
def built(factory: Callable[[], object]) -> Iterator[object]:
    """The model ``factory`` builds, its variables without values, for the duration of the ``with`` block.

    A factory that assigns values while building (loads weights, sets some by hand) or that cannot build
    without them (a variable made from an array) is called again outside the scope, normally: its model then
    holds real values. Only variables a conversion writes may be saved from a hollow model; any other is saved
    with a fresh draw of its initializer, as a normal build would have given it.
    """
    before = {id(v) for v in _pending()}
    try:
        with keras.StatelessScope(initialize_variables=False) as scope:
            model = factory()
        assigned = bool(scope.state_mapping)
    except Exception:  # the normal build below raises the factory's own error, if it has one
        model, assigned = None, True
    created = [v for v in _pending() if id(v) not in before]
    try:
        if assigned:
            _forget(created)
            created, model = [], factory()
        yield model
    finally:
        _forget(created)


def _pending() -> list:
    return list(keras_compat.global_attribute(_PENDING) or [])


def _forget(variables: list) -> None:
    if not variables:
        return
    ours = {id(v) for v in variables}
    keras_compat.set_global_attribute(_PENDING, [v for v in _pending() if id(v) not in ours])
