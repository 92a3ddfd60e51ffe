"""labels.jsonl as ``datasets.load_dataset("json", ...)`` reads it.

Every line has the same keys, and each key one JSON type on every line, or null: numbers that
are floats (a criterion's weight, a score's value) are written as floats on every line, so no
column is int64 in one block and float64 in the next ("Float value ... was truncated"). What
varies is null (or empty) against a value: ``gold_ranking`` is null on a task that is not gold,
``strength`` on a label that gives none, ``rubric`` on a label without a rubric (whose
``scores`` is []). ``datasets`` types the columns from the file's first block (10 MB) and casts
every later block to them, so a file whose first block holds no gold task, strength or rubric
and whose later lines do fails ("Couldn't cast array of type list<...> to null"); writing []
in place of null would not help (a block of empty lists is typed list<null> and fails the same
way). labels.parquet holds the same rows with a schema fixed up front
(test_labels_parquet.py); the JSONL loads when given ``features=``. These tests write a mixed
export built by the factories, cut into blocks of a few lines as a large file's 10 MB blocks."""

import json
import uuid

import pytest

from tests.factories import make_project, make_rubric, make_task, make_user
from webapp.feedback import exports
from webapp.feedback.services import label_submit

datasets = pytest.importorskip("datasets", reason="datasets is not installed (requirements.txt lists it)")

pytestmark = pytest.mark.django_db

PLAIN = 6  # plain labels first: no gold task, strength or rubric


def submit(task, user, ranking, **kwargs):
    return label_submit(task=task, annotator=user, ranking=ranking, submission_key=uuid.uuid4().hex, **kwargs)


@pytest.fixture
def export(tmp_path):
    """labels.jsonl of a project whose first labels leave gold_ranking, strength and rubric null
    and whose last ones fill them, written to a file: (its path, its lines decoded)."""
    owner, annotator = make_user(), make_user()
    project = make_project(owner=owner, annotator=annotator)
    for i in range(PLAIN):
        submit(make_task(project, prompt=f"plain {i}", completions=["a", "b"]), annotator, [[1], [0]])
    gold = make_task(project, prompt="2+2?", completions=["4", "5"], gold_ranking=[[0], [1]])
    submit(gold, annotator, [[0], [1]], strength=3, time_spent_ms=1200)
    rubric = make_rubric(project, criteria=[{"name": "Correct", "scale": "binary", "weight": 2},
                                            {"name": "Clear", "scale": "likert5"}])
    scored = make_task(project, prompt="Say hi.", completions=["Hi", "Go away"], rubric=rubric)
    correct, clear = (rubric.latest_version().criteria.get(name=name) for name in ("Correct", "Clear"))
    submit(scored, annotator, [[0], [1]], strength=1, critique="rude",
           scores={0: {correct.pk: 1, clear.pk: 5}, 1: {correct.pk: 0, clear.pk: 2}})
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(exports.raw_labels_jsonl(project=project)), encoding="utf-8")
    return path, [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def json_type(value) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "list", dict: "object"}[type(value)]


def test_every_line_has_the_same_keys_and_each_key_one_json_type_or_null(export):
    _, rows = export
    assert len(rows) == PLAIN + 2
    assert all(list(row) == exports.LABEL_COLUMNS for row in rows)
    types = {key: {json_type(row[key]) for row in rows if row[key] is not None} for key in exports.LABEL_COLUMNS}
    assert all(len(kinds) == 1 for kinds in types.values()), types
    nulls = {key for key in exports.LABEL_COLUMNS if any(row[key] is None for row in rows)}
    # time_spent_ms: these labels are sent without a time and no assignment to take it from (all but gold's)
    assert nulls == {"gold_ranking", "strength", "rubric", "time_spent_ms"}
    assert [row["time_spent_ms"] for row in rows] == [None] * PLAIN + [1200, None]
    assert [row["scores"] == [] for row in rows] == [True] * (PLAIN + 1) + [False]
    scores = rows[-1]["scores"]
    assert {tuple(score) for score in scores} == {("candidate", "criterion", "criterion_id", "scale", "weight",
                                                    "value")}
    # given as integers (a weight of 2, a score of 5), written as floats on every line
    assert all(isinstance(s["weight"], float) and isinstance(s["value"], float) for s in scores)
    assert [(s["criterion"], s["weight"], s["value"]) for s in scores] == [
        ("Correct", 2.0, 1.0), ("Clear", 1.0, 5.0), ("Correct", 2.0, 0.0), ("Clear", 1.0, 2.0)]
    assert '"weight": 2.0' in export[0].read_text(encoding="utf-8")


def load(path, **kwargs):
    return datasets.load_dataset("json", data_files=str(path), split="train",
                                 cache_dir=str(path.parent / f"cache-{uuid.uuid4().hex}"), **kwargs)


def test_datasets_loads_the_file_in_one_block_with_its_values(export):
    path, rows = export
    loaded = load(path)
    assert loaded.column_names == exports.LABEL_COLUMNS and len(loaded) == len(rows)
    assert loaded[0]["gold_ranking"] is None and loaded[PLAIN]["gold_ranking"] == [[0], [1]]
    assert [row["strength"] for row in loaded] == [None] * PLAIN + [3, 1]
    assert loaded[-1]["rubric"]["version"] == 1 and [s["value"] for s in loaded[-1]["scores"]] == [1.0, 5.0, 0.0, 2.0]
    assert loaded.features["scores"].feature["weight"].dtype == "float64"


def test_a_first_block_without_gold_strength_or_rubric_fails_without_features_and_loads_with_them(export):
    """What docs/api.md says of labels.jsonl: datasets' limit, and the way round it."""
    path, rows = export
    lines = path.read_bytes().splitlines(keepends=True)
    block = sum(len(line) for line in lines[:PLAIN // 2])  # blocks of a few lines; the first: plain labels only
    with pytest.raises(datasets.exceptions.DatasetGenerationError) as failure:
        load(path, chunksize=block)
    assert "to null" in str(failure.value.__cause__)
    features = load(path).features  # the types of the whole file, e.g. from a sample of it
    loaded = load(path, chunksize=block, features=features)
    assert len(loaded) == len(rows) and loaded[PLAIN]["gold_ranking"] == [[0], [1]]
    assert [row["strength"] for row in loaded] == [None] * PLAIN + [3, 1]
