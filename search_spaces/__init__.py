"""Named, declarative study spaces: ``get_space(name, epochs=, seeds=, overrides=, **options)``."""
from search_spaces import ablations, demo, optuna_spaces, paper  # noqa: F401  (registration)
from search_spaces.base import (SPACES, StudySpace, expand_grid, get_space, grid, list_spaces,
                                register_space)

__all__ = ["SPACES", "StudySpace", "expand_grid", "get_space", "grid", "list_spaces",
           "register_space"]
