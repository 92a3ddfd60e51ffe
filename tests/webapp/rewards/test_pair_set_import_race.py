"""Importing a set of preference pairs under a name another import takes at the same time."""

import pytest

from tests.factories import make_project
from webapp.rewards.errors import RewardModelError
from webapp.rewards.models import PreferencePairSet
from webapp.rewards.services import pair_set_import

pytestmark = pytest.mark.django_db


def test_a_pair_import_racing_another_for_the_name_is_refused_naming_it(monkeypatch):
    """Both imports pass the name checks before either saves; the second's save hit the unique
    constraint as an IntegrityError (a 500) instead of the import error."""
    project = make_project()
    content = '{"prompt": "p", "chosen": "a", "rejected": "b"}'
    pair_set_import(project=project, name="seed", content=content)
    monkeypatch.setattr(PreferencePairSet.objects, "filter", lambda **kwargs: PreferencePairSet.objects.none())
    monkeypatch.setattr(PreferencePairSet, "full_clean", lambda self: None)  # the racing import's checks passed
    with pytest.raises(RewardModelError, match="a set of pairs named 'seed' already exists") as refused:
        pair_set_import(project=project, name="seed", content=content)
    assert refused.value.field == "name"
    assert PreferencePairSet.objects.count() == 1
