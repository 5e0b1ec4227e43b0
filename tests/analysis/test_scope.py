"""A study shorter than the recipe says in words what it can and cannot show (issue 37)."""
import pandas as pd

from analysis.summary import scope_note


def frame(epochs, recipe=200, seeds=(0, 1, 2)):
    return pd.DataFrame([{"method": m, "seed": s, "epochs": epochs, "recipe_epochs": recipe}
                         for m in ("CE", "LDAM + DRW") for s in seeds])


def test_a_short_study_says_its_length_the_recipes_and_its_seeds():
    note = scope_note(frame(10))
    assert note.startswith("Scope: 6 of 6 trials ran 10 epochs of the recipe's 200")
    assert "With 3 seeds per method" in note and "not evidence of equality" in note
    assert "With 2 seeds per method" in scope_note(frame(10, seeds=(0, 1)))


def test_a_study_at_the_recipes_length_has_no_scope_note():
    assert scope_note(frame(200)) is None
    assert scope_note(frame(90, recipe=90)) is None
    assert scope_note(pd.DataFrame()) is None


def test_only_the_short_trials_are_counted():
    df = pd.concat([frame(200), frame(20).assign(method="ELM")])
    assert scope_note(df).startswith("Scope: 6 of 12 trials ran 20 epochs of the recipe's 200")
