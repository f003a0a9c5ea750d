"""The CISI collection: its file format, the slice asked, passages through the app's chunker,
and `eval retrieval --dataset cisi` judged by document, on a tiny sample and on the real data."""

import json
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from core.components import get_chunker
from evaluation.cisi import (
    CisiFormatError,
    CisiMissing,
    cisi_chunks,
    cisi_load,
    cisi_select,
)
from evaluation.models import EvalRun
from tests.evaluation.conftest import CISI_ALL, write_cisi
from tests.evaluation.test_eval_command import METRICS, MODES, run_eval


def test_the_sample_is_read_field_by_field(cisi_sample):
    collection = cisi_load(cisi_sample)
    assert [d.id for d in collection.documents] == ["1", "2", "3", "4"]
    first = collection.documents[0]
    assert first.title == "A History of the Dewey Decimal Classification"
    # lines joined, CRLF gone, authors and cross-references left out
    assert first.abstract == (
        "The eighteen editions of the Dewey Decimal Classification, from 1876 to 1971."
    )
    assert collection.documents[1].title == "Automatic Indexing"  # ".T " with a trailing space
    assert [q.id for q in collection.queries] == ["1", "2", "3", "4"]
    assert collection.queries[0].text == "What is the history of the Dewey Decimal Classification?"
    # a query's text is its .W, not the title, authors or source some queries carry
    assert collection.queries[2].text == "citation analysis of scientific journals"
    # judgements about documents not in the collection are dropped; query 4 has none
    assert collection.relevant == {
        "1": frozenset({"1"}),
        "2": frozenset({"2"}),
        "3": frozenset({"3", "4"}),
    }
    assert [q.id for q in collection.judged] == ["1", "2", "3"]


def test_the_digest_follows_the_files(tmp_path):
    one = cisi_load(write_cisi(tmp_path / "one")).digest
    assert cisi_load(write_cisi(tmp_path / "same")).digest == one
    changed = CISI_ALL.replace("Leeds", "York")
    assert cisi_load(write_cisi(tmp_path / "other", documents=changed)).digest != one


def test_missing_files_name_the_folder_and_the_setting(tmp_path):
    (tmp_path / "CISI.ALL").write_text(".I 1\n.W\ntext\n")
    with pytest.raises(CisiMissing) as error:
        cisi_load(tmp_path)
    message = str(error.value)
    assert "CISI.QRY, CISI.REL missing" in message and str(tmp_path) in message
    assert "CISI_DIR" in message


@pytest.mark.parametrize(
    "documents, expected",
    [
        ("some text\n.I 1\n.W\nx\n", "CISI.ALL, line 1: text outside a field"),
        (".W\nx\n", "CISI.ALL, line 1: a field before the first '.I'"),
        (".I one\n.W\nx\n", "CISI.ALL, line 1: '.I' without a numeric id"),
        ("", "CISI.ALL: no records"),
    ],
)
def test_a_malformed_file_names_the_line(tmp_path, documents, expected):
    with pytest.raises(CisiFormatError, match=expected):
        cisi_load(write_cisi(tmp_path, documents=documents))


def test_a_malformed_judgement_names_the_line(tmp_path):
    folder = write_cisi(tmp_path)
    (folder / "CISI.REL").write_text("1 1 0 0.0\nnot a judgement\n")
    with pytest.raises(CisiFormatError, match="CISI.REL, line 2"):
        cisi_load(folder)


def test_the_slice_keeps_relevant_documents_and_fills_with_others(cisi_sample):
    collection = cisi_load(cisi_sample)
    queries, corpus = cisi_select(collection, limit=None, passages=None)
    assert [q.id for q in queries] == ["1", "2", "3"]  # the judged ones
    assert [d.id for d in corpus] == ["1", "2", "3", "4"]
    queries, corpus = cisi_select(collection, limit=1, passages=2)
    assert [q.id for q in queries] == ["1"]
    assert [d.id for d in corpus] == ["1", "2"]  # its relevant document, then one distractor
    queries, corpus = cisi_select(collection, limit=3, passages=1)  # never fewer than needed
    assert [d.id for d in corpus] == ["1", "2", "3", "4"]
    assert cisi_select(collection, limit=2, passages=10)[1] == list(collection.documents)


def test_a_long_abstract_becomes_passages_under_its_title(cisi_sample):
    long = cisi_load(cisi_sample).documents[1]
    chunks = cisi_chunks(long, chunker=get_chunker())
    assert len(chunks) >= 2  # the app's chunker split it (256 tokens)
    assert {c.doc_id for c in chunks} == {"2"}
    assert all(c.heading_path == ("Automatic Indexing",) for c in chunks)
    assert all(c.embedding_text.startswith("Automatic Indexing\n") for c in chunks)
    assert chunks[0].text.startswith("Automatic indexing experiment 1 ")
    assert len({c.id for c in chunks}) == len(chunks)


def test_equal_records_still_get_their_own_passages(cisi_sample):
    from dataclasses import replace

    one = cisi_load(cisi_sample).documents[0]
    twin = replace(one, id="77")
    ids = {c.id for c in cisi_chunks(one, chunker=get_chunker())}
    assert ids.isdisjoint(c.id for c in cisi_chunks(twin, chunker=get_chunker()))


@pytest.mark.django_db
def test_eval_retrieval_on_the_sample_is_judged_by_document(cisi_sample, store):
    code, out, log = run_eval("retrieval", "--dataset", "cisi", "--json")
    assert code == 0, log
    document = json.loads(out)
    assert document["dataset"] == "cisi"
    assert document["questions"] == 3
    assert document["parameters"]["passages"] == 4
    assert document["parameters"]["chunks"] >= 5  # document 2 is several passages
    # Every query's relevant document is found first, in every mode (query 3 has two relevant
    # documents, so its recall@1 is 1/2). Chunk ids would never match the CISI ids: these are
    # only reachable when a hit counts for its document.
    for mode in MODES:
        values = document["modes"][mode]
        assert set(values) == METRICS
        assert values["recall@1"] == pytest.approx((1 + 1 + 0.5) / 3, abs=1e-4), mode
        assert values["mrr@10"] == 1.0, mode
    assert "4 of 4 abstracts" in document["corpus"]["description"]
    store.ensure_collection()
    assert store.count() == 0  # a temporary store, never the app's
    assert EvalRun.objects.get(pk=document["run_id"]).dataset == "cisi"


@pytest.mark.django_db
def test_a_missing_collection_exits_2_naming_the_setting(settings, tmp_path):
    settings.CISI_DIR = tmp_path / "nowhere"
    code, out, message = run_eval("retrieval", "--dataset", "cisi")
    assert (code, out) == (2, "")
    assert "CISI_DIR" in message and "nowhere" in message
    assert not EvalRun.objects.exists()


@pytest.mark.django_db
def test_cisi_has_no_reference_answers(cisi_sample):
    code, out, message = run_eval("answers", "--dataset", "cisi")
    assert (code, out) == (2, "")
    assert "no reference answers" in message


REAL = Path(django_settings.CISI_DIR)


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.skipif(not (REAL / "CISI.ALL").is_file(), reason=f"no CISI collection at {REAL}")
def test_the_real_collection_end_to_end_on_a_slice(settings, store):
    settings.CISI_DIR = REAL
    collection = cisi_load(REAL)
    assert (len(collection.documents), len(collection.queries)) == (1460, 111)
    assert len(collection.judged) == 76  # as its README says
    code, out, log = run_eval(
        "retrieval", "--dataset", "cisi", "--limit", "2", "--passages", "80", "--json"
    )
    assert code == 0, log
    document = json.loads(out)
    assert document["questions"] == 2
    needed = collection.relevant["1"] | collection.relevant["2"]  # 72 documents
    assert document["parameters"]["passages"] == max(80, len(needed))
    for mode in MODES:
        values = document["modes"][mode]
        assert all(0 <= v <= 1 for v in values.values())
        assert values["recall@1"] <= values["recall@5"] <= values["recall@10"]
    # most of this small corpus is relevant to one of the two queries: the first hit is
    assert document["modes"]["hybrid"]["mrr@10"] > 0.3
    store.ensure_collection()
    assert store.count() == 0
