"""Downloading a set of preference pairs as JSONL, from the Reward models page and the API:
streamed in stored order, in TRL's format, loadable with ``datasets`` as it is."""

import json

import datasets
import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_project, make_user
from tests.webapp.api.conftest import api_user, token_client
from webapp.rewards import exports
from webapp.rewards.services import pair_set_import

pytestmark = pytest.mark.django_db

PLAIN = "".join(json.dumps({"prompt": f"{i}+{i}?", "chosen": str(2 * i), "rejected": str(2 * i + 1)}) + "\n"
                for i in range(7))
CHAT = json.dumps({"prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi ünï"}],
                   "chosen": [{"role": "assistant", "content": "hello"}], "rejected": "go away"}) + "\n"


def lines_of(response) -> list[dict]:
    body = b"".join(response.streaming_content)
    return [json.loads(line) for line in body.decode().splitlines()]


def load_with_datasets(rows: list[dict], tmp_path) -> datasets.Dataset:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return datasets.load_dataset("json", data_files=str(path), split="train")


def test_a_plain_text_set_downloads_in_order_a_chunk_at_a_time(client, tmp_path, monkeypatch):
    monkeypatch.setattr(exports, "CHUNK", 3)  # 7 pairs: three fetches from the server-side cursor
    user = make_user()
    project = make_project(researcher=user)
    pair_set = pair_set_import(project=project, name="Math <prefs>/\"v1\"", content=PLAIN)
    client.login(username=user.username, password=PASSWORD)
    response = client.get(reverse("rewards:download_pairs", args=[project.id, pair_set.id]))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/jsonl"
    assert response["Content-Disposition"] == f'attachment; filename="{project.slug}-math-prefsv1-pairs.jsonl"'
    rows = lines_of(response)
    assert rows == [{"prompt": f"{i}+{i}?", "chosen": str(2 * i), "rejected": str(2 * i + 1)} for i in range(7)]
    loaded = load_with_datasets(rows, tmp_path)
    assert loaded.column_names == ["prompt", "chosen", "rejected"] and loaded[6]["rejected"] == "13"
    page = client.get(reverse("rewards:list", args=[project.id])).content.decode()
    assert reverse("rewards:download_pairs", args=[project.id, pair_set.id]) in page


def test_a_set_with_any_chat_prompt_comes_out_conversational_throughout(tmp_path):
    user = api_user()
    project = make_project(owner=user)
    pair_set = pair_set_import(project=project, name="mixed", content=PLAIN[:PLAIN.index("\n") + 1] + CHAT)
    # with the Accept header a client generated from the schema sends (406 before)
    response = token_client(user).get(f"/api/v1/pair-sets/{pair_set.id}/pairs.jsonl",
                                      HTTP_ACCEPT="application/jsonl")
    assert response.status_code == 200
    rows = lines_of(response)
    assert rows == [
        {"prompt": [{"role": "user", "content": "0+0?"}], "chosen": [{"role": "assistant", "content": "0"}],
         "rejected": [{"role": "assistant", "content": "1"}]},
        {"prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi ünï"}],
         "chosen": [{"role": "assistant", "content": "hello"}],
         "rejected": [{"role": "assistant", "content": "go away"}]},
    ]
    loaded = load_with_datasets(rows, tmp_path)  # one feature type per column: message lists
    assert loaded[1]["prompt"][1] == {"role": "user", "content": "hi ünï"}
    # What the download gives imports back as the same pairs.
    again = pair_set_import(project=project, name="again", content="".join(json.dumps(r) + "\n" for r in rows))
    assert again.pairs[1] == pair_set.pairs[1]


def test_only_the_projects_researchers_may_download(client):
    owner, annotator, stranger = api_user(), api_user(), api_user()
    project = make_project(owner=owner, annotator=annotator)
    pair_set = pair_set_import(project=project, name="prefs", content=PLAIN)
    url = f"/api/v1/pair-sets/{pair_set.id}/pairs.jsonl"
    assert token_client(owner).get(url).status_code == 200
    assert token_client(annotator).get(url).status_code == 404
    assert token_client(stranger).get(url).status_code == 404
    assert token_client(owner).get(f"/api/v1/pair-sets/{pair_set.id + 1000}/pairs.jsonl").status_code == 404

    page_url = reverse("rewards:download_pairs", args=[project.id, pair_set.id])
    web_annotator, web_stranger = make_user(), make_user()
    make_project(researcher=web_stranger)
    project.memberships.create(user=web_annotator, role="annotator")
    client.login(username=web_annotator.username, password=PASSWORD)
    assert client.get(page_url).status_code == 403
    client.login(username=web_stranger.username, password=PASSWORD)
    assert client.get(page_url).status_code == 404
    other = make_project(researcher=web_stranger)  # the set through another project's URL: 404
    assert client.get(reverse("rewards:download_pairs", args=[other.id, pair_set.id])).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_download_streams_outside_a_transaction_too(client):
    """Requests run in autocommit: the server-side cursor must be held across its fetches."""
    user = make_user()
    project = make_project(researcher=user)
    pair_set = pair_set_import(project=project, name="prefs", content=PLAIN * 300)  # 2,100 pairs
    client.login(username=user.username, password=PASSWORD)
    rows = lines_of(client.get(reverse("rewards:download_pairs", args=[project.id, pair_set.id])))
    assert len(rows) == 2100 and rows[-1] == {"prompt": "6+6?", "chosen": "12", "rejected": "13"}


def test_a_download_reads_the_pairs_once(client):
    """Whether the set is conversational was found by a scan of every pair before the stream
    read them all again: PostgreSQL decompressed a large set twice."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    user = make_user()
    project = make_project(researcher=user)
    pair_set = pair_set_import(project=project, name="chat", content=PLAIN + CHAT)
    client.login(username=user.username, password=PASSWORD)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("rewards:download_pairs", args=[project.id, pair_set.id]))
        rows = lines_of(response)
    assert len(rows) == 8 and all(isinstance(row["prompt"], list) for row in rows)
    assert sum("jsonb_array_elements" in q["sql"] for q in queries.captured_queries) == 1
