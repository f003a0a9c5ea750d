"""Model output and document text become HTML only through here: Markdown, then a whitelist
sanitiser (nh3), then citation chips. A `<script>` or an `onerror=` in an answer or a document
is inert by construction, not by escaping in the right places."""

from __future__ import annotations

import re

import markdown
import nh3

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "b", "i", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "a", "del",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}}
_MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
_SPLIT = re.compile(r"(<[^>]*>)")


def render_answer(text: str, *, verdicts: dict[int, str | list[str]] | None = None) -> str:
    """Markdown -> sanitised HTML with each ``[n]`` turned into a citation chip.

    ``verdicts`` adds a class so unsupported citations are marked: per marker either one verdict
    for every chip, or a list consumed in order of appearance (the verifier checks citations in
    text order, so the k-th ``[n]`` gets the k-th verdict of marker n, and a correct sentence is
    not marked for a wrong one citing the same source).
    """
    html = markdown.markdown(text or "", extensions=["fenced_code", "tables", "sane_lists"])
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return _chips(clean, verdicts or {})


def _chips(html: str, verdicts: dict[int, str | list[str]]) -> str:
    """Replace markers in text only: never inside a tag, a code span or a code block."""
    seen: dict[int, int] = {}
    out: list[str] = []
    in_code = 0
    for part in _SPLIT.split(html):
        if part.startswith("<"):
            name = part.strip("</>").split()[0].lower() if part.strip("</>") else ""
            if name in ("code", "pre"):
                in_code += -1 if part.startswith("</") else 1
            out.append(part)
        elif in_code:
            out.append(part)
        else:
            out.append(_MARKER.sub(lambda m: _chip_group(m, verdicts, seen), part))
    return "".join(out)


def _verdict_of(number: int, verdicts: dict, seen: dict[int, int]) -> str:
    given = verdicts.get(number, "none")
    if isinstance(given, str):
        return given
    index = seen.get(number, 0)
    seen[number] = index + 1
    return given[index] if index < len(given) else (given[-1] if given else "none")


# What a chip's tooltip says. "quoted" is no verdict on a claim: the sentence is the passage's
# own words (an extractive answer), so it is told apart from "supported", never counted as it.
_CHIP_TITLES = {
    "supported": "supported",
    "partial": "partly supported",
    "unsupported": "not supported",
    "quoted": "quoted word for word from this passage",
    "none": "not checked",
}


def _chip_group(match: re.Match, verdicts: dict, seen: dict[int, int]) -> str:
    chips = []
    for raw in match.group(1).split(","):
        number = int(raw)
        verdict = _verdict_of(number, verdicts, seen)
        mark = " ⚠" if verdict == "unsupported" else ""
        title = _CHIP_TITLES.get(verdict, verdict)
        chips.append(
            f'<button type="button" class="cite cite-{verdict}" data-marker="{number}" '
            f'title="Source {number}: {title}">{number}{mark}</button>'
        )
    return "".join(chips)
