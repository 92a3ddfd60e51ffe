"""Review: a swept whole-number setting given as a text of more digits than Python converts
(sys.get_int_max_str_digits()) is refused on the sweep field, launching nothing, rather than
failing the page with a server error."""

import pytest

from tests.webapp.experiments.test_sweeps import new_url, parse, sweep_data
from webapp.experiments.errors import RunError
from webapp.experiments.models import Run

pytestmark = pytest.mark.django_db

LONG = "9" * 5000


@pytest.mark.parametrize("grid", [{"train.total_steps": [LONG, "3"]}, {"train.total_steps": f"{LONG}, 3"}])
def test_a_whole_number_too_long_to_convert_is_refused_naming_the_setting(grid):
    with pytest.raises(RunError) as refused:
        parse(grid)
    assert refused.value.field == "sweep" and "train.total_steps" in refused.value.message


def test_the_page_says_so_and_launches_nothing(client, project, sent):
    response = client.post(new_url(project), sweep_data(project, {"train.total_steps": [LONG, "3"]}))
    assert response.status_code == 400
    assert response.context["form"].errors["sweep"]
    assert not Run.objects.exists() and sent == []
