import pytest

# A long abstract: about 400 tokens, more than one chunk of 256, so document 2 is indexed as
# several passages and a hit on any of them must count for document 2.
LONG_ABSTRACT = "\r\n".join(
    f"Automatic indexing experiment {n} assigned subject terms to documents by computer, "
    "weighting each word by its frequency."
    for n in range(1, 25)
)

CISI_ALL = (
    ".I 1\r\n.T\r\nA History of the Dewey Decimal Classification\r\n.A\r\nComaromi, J.P.\r\n"
    ".W\r\nThe eighteen editions of the Dewey Decimal\r\nClassification, from 1876 to 1971.\r\n"
    ".X\r\n1\t5\t1\r\n92\t1\t1\r\n"
    ".I 2\r\n.T \r\nAutomatic Indexing\r\n.A \r\nSalton, G.\r\n.W\r\n"
    + LONG_ABSTRACT
    + "\r\n.I 3\r\n.T\r\nCitation Analysis of Scientific Journals\r\n.W\r\n"
    "Counting the citations between scientific journals ranks them by influence.\r\n"
    ".I 4\r\n.T\r\nSurveys of Public Library Users\r\n.W\r\n"
    "Questionnaires returned by borrowers of a public library in Leeds.\r\n"
)
CISI_QRY = (
    ".I 1\r\n.W\r\nWhat is the history of the Dewey Decimal\r\nClassification?\r\n"
    ".I 2\r\n.W\r\nautomatic indexing of documents by computer\r\n"
    ".I 3\r\n.T\r\nA paper's title\r\n.A\r\nSomeone, A.\r\n.W\r\n"
    "citation analysis of scientific journals\r\n.B\r\n(JASIS, 1975)\r\n"
    ".I 4\r\n.W\r\nA query nobody judged\r\n"
)
# query 3 has two relevant documents; the judgement about document 99 names no document
CISI_REL = (
    "     1      1\t0\t0.000000\r\n     2      2\t0\t0.000000\r\n"
    "     3      3\t0\t0.000000\r\n     3      4\t0\t0.000000\r\n     3     99\t0\t0.000000\r\n"
)


def write_cisi(folder, *, documents: str = CISI_ALL):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("CISI.ALL", documents), ("CISI.QRY", CISI_QRY), ("CISI.REL", CISI_REL)):
        (folder / name).write_bytes(text.encode())
    return folder


@pytest.fixture
def cisi_sample(settings, tmp_path):
    """A four-document CISI collection in the real file format, where CISI_DIR points."""
    settings.CISI_DIR = write_cisi(tmp_path / "cisi")
    return settings.CISI_DIR
