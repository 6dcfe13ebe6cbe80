"""The blocks' two layouts in any tree that mirrors the model's parameters (the parameters themselves,
optimizer moments, abstract trees): which one a tree holds, and the same values in the other one.

Unrolled trees hold `blocks/<i>/REST` for each layer i; scanned trees hold `blocks/REST` with layer i at
index i of a leading axis. Converting stacks or unstacks those leaves and copies every other one, so a
checkpoint of either layout restores into a model of either.
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp

Layers = Literal["scanned", "unrolled"]
BLOCKS = "blocks"


def _names(path: tuple[Any, ...]) -> tuple[str, ...]:
    """Every step of a leaf's path as text (dict keys, sequence indices, attribute names)."""
    return tuple(str(getattr(p, "key", getattr(p, "idx", getattr(p, "name", p)))) for p in path)


def layers_of(tree: Any) -> Layers:
    """`scanned` when the tree's block leaves sit directly under `blocks` (no layer index), else `unrolled`
    (a tree without blocks has nothing to stack)."""
    for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
        names = _names(path)
        if BLOCKS in names[:-1]:
            return "unrolled" if names[names.index(BLOCKS) + 1].isdigit() else "scanned"
    return "unrolled"


def relayout(tree: Any, target: Any) -> Any:
    """`tree`'s values in the structure of `target` (the same model's tree in either layout, e.g. abstract
    leaves): block leaves stacked or unstacked as the target's paths ask, every other leaf as it is."""
    source = {_names(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}
    paths, treedef = jax.tree_util.tree_flatten_with_path(target)
    leaves = [_leaf(source, _names(path), leaf.shape) for path, leaf in paths]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _leaf(source: dict[tuple[str, ...], Any], names: tuple[str, ...], shape: tuple[int, ...]) -> Any:
    if names in source:
        return source[names]
    at = names.index(BLOCKS) + 1
    if names[at].isdigit():  # an unrolled layer's leaf, from the stacked one
        return source[names[:at] + names[at + 1 :]][int(names[at])]
    return jnp.stack([source[(*names[:at], str(i), *names[at:])] for i in range(shape[0])])
