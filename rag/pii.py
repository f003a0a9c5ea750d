"""PII redaction before a prompt leaves for an external model.

``redact(text)`` swaps each e-mail address, phone number, payment card, IBAN, IPv4 address and
US social security number for a placeholder such as ``[EMAIL_1]``; the same value gets the same
placeholder everywhere in one call, so the model can still tell two people apart and refer to
them. ``Redaction.restore`` maps placeholders in the model's answer back to the originals for
the user. ``Finding`` carries the kind, the offsets in the original text and a SHA-256 digest of
the normalised value, never the value: an audit record can show what kind was removed and
prove which value it was without storing it. Internal models get the original text; the
caller decides which models are external.

Detection is deterministic and offline, precision first (a false positive mangles a question):

- phone numbers: ``phonenumbers`` (Google's libphonenumber metadata), ``Leniency.VALID``,
  international numbers anywhere plus national formats of ``phone_regions``; a bare digit run
  counts only after a phone word ("tel", "call", …), and a number labelled as a reference
  ("Order", "Invoice no.", "PO", …) does not count;
- cards: 13–19 digits, optionally grouped by one kind of separator, a known issuer prefix and a
  valid Luhn check digit (``stdnum.luhn``);
- IBANs: country format and mod-97 check (``stdnum.iban``), spaced or compact;
- SSNs: ``ddd-dd-dddd`` with the SSA's rules (``stdnum.us.ssn``);
- e-mail and IPv4: patterns, without file names like ``logo@2x.png`` or version numbers.

Digests of low-entropy values (a phone number, an SSN) can be reversed by trying every value;
pass ``digest_key`` (a server secret) to get keyed HMAC-SHA256 digests instead.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.us import ssn as stdnum_ssn

from .types import Message

EMAIL, PHONE, CARD, IBAN, IP, SSN = "email", "phone", "card", "iban", "ip", "ssn"
KINDS = frozenset({EMAIL, PHONE, CARD, IBAN, IP, SSN})
LABELS = {EMAIL: "EMAIL", PHONE: "PHONE", CARD: "CARD", IBAN: "IBAN", IP: "IP", SSN: "SSN"}
# Overlaps go to the more specific kind: an IBAN's digits can look like a phone number.
_PRIORITY = {EMAIL: 0, IBAN: 1, CARD: 2, SSN: 3, IP: 4, PHONE: 5}

# National formats recognised without a "+": each region costs one matcher pass per text.
DEFAULT_PHONE_REGIONS = ("US", "GB", "DE", "FR", "ES")

_PLACEHOLDER_RE = re.compile(r"\[(" + "|".join(LABELS.values()) + r")_(\d+)\]")


@dataclass(frozen=True, slots=True)
class Finding:
    """One redacted value: ``original[start:end]`` became ``placeholder``."""

    kind: str
    start: int
    end: int
    placeholder: str
    digest: str  # sha256 (or HMAC-SHA256 with a key) of "kind:normalised value", hex
    message: int = 0  # index of the message, for redact_messages

    def as_audit(self) -> dict:
        """What an audit record may keep: no value, only its kind, place and digest."""
        return {
            "kind": self.kind,
            "message": self.message,
            "start": self.start,
            "end": self.end,
            "placeholder": self.placeholder,
            "digest": self.digest,
        }


def _restore(text: str, originals: Mapping[str, str]) -> str:
    return _PLACEHOLDER_RE.sub(lambda m: originals.get(m.group(0), m.group(0)), text)


@dataclass(frozen=True, slots=True)
class Redaction:
    """A redacted text. ``originals`` (placeholder -> value) stays in memory: never log it."""

    text: str
    findings: tuple[Finding, ...]
    originals: Mapping[str, str] = field(default_factory=dict, repr=False)

    def restore(self, text: str) -> str:
        """Put the original values back for the placeholders this redaction made."""
        return _restore(text, self.originals)

    def audit(self) -> list[dict]:
        return [finding.as_audit() for finding in self.findings]


@dataclass(frozen=True, slots=True)
class MessagesRedaction:
    """One mapping shared by all messages of a prompt (``Finding.message`` says which)."""

    findings: tuple[Finding, ...]
    originals: Mapping[str, str] = field(default_factory=dict, repr=False)

    def restore(self, text: str) -> str:
        return _restore(text, self.originals)

    def audit(self) -> list[dict]:
        return [finding.as_audit() for finding in self.findings]


@dataclass(frozen=True, slots=True)
class _Match:
    kind: str
    start: int
    end: int
    value: str  # normalised: what the digest and the "same value" test use


# ---------------------------------------------------------------------------------------------
# Detectors
# ---------------------------------------------------------------------------------------------

_EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]*[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+([A-Za-z]{2,24})(?![\w-])"
)
# "icon@2x.png" is a file name, not an address.
_FILE_TLDS = frozenset("png jpg jpeg gif svg webp pdf js css ts py json txt zip".split())


def _emails(text: str) -> Iterable[_Match]:
    for m in _EMAIL_RE.finditer(text):
        if m.group(1).lower() not in _FILE_TLDS:
            yield _Match(EMAIL, m.start(), m.end(), m.group(0).lower())


# Digit groups joined by single spaces or dashes; the group check below decides.
_CARD_RE = re.compile(r"(?<![\w-])\d+(?:[ -]\d+)*(?![\w-]|[.,]\d)")
# Issuer prefixes: Visa, Mastercard (51-55, 2221-2720), Amex, Diners, JCB, Discover/UnionPay
# and Maestro. A Luhn-valid number starting 0, 1, 7, 8 or 9 is a reference, not a card.
_CARD_PREFIX_RE = re.compile(r"(?:4|5[0-8]|2[2-7]|3[0-9]|6)")


_IBAN_HEAD_RE = re.compile(r"\b[A-Z]{2}\d{2}[ -]$")


def _cards(text: str) -> Iterable[_Match]:
    for m in _CARD_RE.finditer(text):
        if _IBAN_HEAD_RE.search(text, 0, m.start()):
            continue  # the tail of an IBAN-shaped code ("DE89 3704 0044 …" that fails mod-97)
        groups = re.split(r"[ -]", m.group(0))
        # A card can be followed by more digits ("… 1111 12/27"): try dropping trailing groups.
        for count in range(len(groups), 0, -1):
            card = _card_from_groups(m.group(0), groups[:count])
            if card is not None:
                length = sum(len(g) for g in groups[:count]) + count - 1
                yield _Match(CARD, m.start(), m.start() + length, card)
                break


def _card_from_groups(raw: str, groups: list[str]) -> str | None:
    digits = "".join(groups)
    if not 13 <= len(digits) <= 19 or not _CARD_PREFIX_RE.match(digits):
        return None
    if len(groups) > 1:
        length = sum(len(g) for g in groups) + len(groups) - 1
        if len(set(re.findall(r"[ -]", raw[:length]))) != 1:
            return None  # "4111 1111-1111 1111": mixed separators
        if len(groups[0]) != 4 or any(not 4 <= len(g) <= 6 for g in groups[1:-1]):
            return None
        if len(groups[-1]) > 6:
            return None
    if not luhn.is_valid(digits):
        return None
    return digits


_IBAN_RE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]){10,32}")


def _ibans(text: str) -> Iterable[_Match]:
    for m in _IBAN_RE.finditer(text):
        # The pattern may run into the next word ("… 0130 00 AND"): try each word end, longest
        # first, and keep the first that is a valid IBAN.
        raw = m.group(0)
        ends = [i for i in range(len(raw), 14, -1) if i == len(raw) or raw[i] in " -"]
        for end in ends:
            compact = re.sub(r"[ -]", "", raw[:end])
            if stdnum_iban.is_valid(compact):
                yield _Match(IBAN, m.start(), m.start() + end, compact)
                break


_SSN_RE = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")


def _ssns(text: str) -> Iterable[_Match]:
    for m in _SSN_RE.finditer(text):
        if stdnum_ssn.is_valid(m.group(0)):
            yield _Match(SSN, m.start(), m.end(), m.group(0).replace("-", ""))


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# Not followed by "/24": CIDR notation names a network, not somebody's address.
_IP_RE = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d|/\d)")
# A dotted quad after these words is a version or a section number.
_NOT_IP_BEFORE_RE = re.compile(
    r"\b(?:v|ver|version|versions|release|build|firmware|kernel|rev|revision|edition|section|"
    r"sections|chapter|clause|article|paragraph|para|step|item|table|figure|fig|§)\W{0,3}$",
    re.IGNORECASE,
)


def _ips(text: str) -> Iterable[_Match]:
    for m in _IP_RE.finditer(text):
        if not _NOT_IP_BEFORE_RE.search(text[max(0, m.start() - 20) : m.start()]):
            yield _Match(IP, m.start(), m.end(), m.group(0))


_PHONE_WORD_RE = re.compile(
    r"\b(?:tel|tél|telephone|téléphone|telefon|teléfono|telefono|phone|phones|mobile|mob|"
    r"cell|cellphone|fax|call|calls|ring|dial|reach|contact|line|landline|hotline|whatsapp|"
    r"sms|text|number is|handy|portable|llame|llamar|appeler|appelez|anrufen|rufen)\b",
    re.IGNORECASE,
)
# A number labelled as a reference is not a phone number, however it is grouped.
_REFERENCE_BEFORE_RE = re.compile(
    r"\b(?:order|invoice|inv|ref|reference|ticket|case|account|acct|po|id|sku|isbn|serial|"
    r"lot|badge|vendor|customer|client|meeting|receipt|tracking|routing|pin|code|employee|"
    r"contract|policy|claim|quote|report|rechnung|facture|commande|pedido|factura|bestellung|"
    r"kundennummer|auftrag)\b\W{0,3}(?:no|nr|n°|number|num|#|id)?\.?\W{0,3}$",
    re.IGNORECASE,
)
_PHONE_CONTEXT_CHARS = 40
_DIGIT_RUN_RE = re.compile(r"\d(?:[\s().\-/]*\d){5}")  # six digits: nothing shorter is a phone


def _phones(text: str, regions: Sequence[str]) -> Iterable[_Match]:
    if not _DIGIT_RUN_RE.search(text):
        return
    found: dict[tuple[int, int], phonenumbers.PhoneNumberMatch] = {}
    for region in regions:
        for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=_LENIENCY):
            found.setdefault((m.start, m.end), m)
    # libphonenumber rejects a whole run when more digits follow the number ("+44 20 7946 0958
    # 24 hours", "… 0199 24/7"): retry such runs without their trailing groups.
    for run in _PHONE_RUN_RE.finditer(text):
        if any(start < run.end() and run.start() < end for start, end in found):
            continue
        match = _trimmed_phone(run.group(0), regions)
        if match is not None:
            found[(run.start() + match.start, run.start() + match.end)] = match
    for (start, end), m in sorted(found.items()):
        if _is_phone_in_context(text, start, end, m.raw_string):
            e164 = phonenumbers.format_number(m.number, phonenumbers.PhoneNumberFormat.E164)
            yield _Match(PHONE, start, end, e164)


_LENIENCY = phonenumbers.Leniency.VALID
_PHONE_RUN_RE = re.compile(r"(?:\+|\b)\(?\d[\d \t().\-/]{4,30}\d")


def _trimmed_phone(run: str, regions: Sequence[str]) -> phonenumbers.PhoneNumberMatch | None:
    cuts = [m.start() for m in re.finditer(r"[ \t/]", run)]
    for cut in reversed(cuts):
        head = run[:cut].rstrip(" \t-./(")
        if sum(c.isdigit() for c in head) < 6:
            break
        for region in regions:
            for m in phonenumbers.PhoneNumberMatcher(head, region, leniency=_LENIENCY):
                if m.start == 0 and m.end == len(head):
                    return m
    return None


# Dates in any order and separator ("03.04.2024", "2024-03-15", "12/05/23"): never phones.
_DATE_RE = re.compile(r"\d{1,4}([./-])\d{1,2}\1\d{2,4}")


def _is_phone_in_context(text: str, start: int, end: int, raw: str) -> bool:
    if _DATE_RE.fullmatch(raw.strip()):
        return False
    before = text[:start]
    if before[-1:] and (before[-1].isalnum() or before[-1] in "-/#_.@"):
        return False  # part of a code: "INV-2023-004512", "#40213377812"
    after = text[end : end + 2]
    if after[:1].isalnum() or (after[:1] in "-/" and after[1:2].isdigit()):
        return False
    window = before[-_PHONE_CONTEXT_CHARS:].rsplit("\n", 1)[-1]
    has_phone_word = _PHONE_WORD_RE.search(window) is not None
    if _REFERENCE_BEFORE_RE.search(window) and not has_phone_word:
        return False
    if raw.isdigit() and not has_phone_word:
        return False  # a bare digit run is a phone number only where the text says so
    return True


# ---------------------------------------------------------------------------------------------
# Redaction
# ---------------------------------------------------------------------------------------------


class PiiRedactor:
    """Redaction settings, checked once; ``redact``/``redact_messages`` are pure per call."""

    def __init__(
        self,
        *,
        kinds: Collection[str] | None = None,
        phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS,
        digest_key: bytes | None = None,
    ) -> None:
        chosen = frozenset(KINDS if kinds is None else kinds)
        unknown = chosen - KINDS
        if unknown:
            raise ValueError(f"unknown PII kinds {sorted(unknown)}; known: {sorted(KINDS)}")
        supported = phonenumbers.SUPPORTED_REGIONS
        bad = [region for region in phone_regions if region not in supported]
        if bad:
            raise ValueError(f"unknown phone regions {bad}")
        self.kinds = chosen
        self.phone_regions = tuple(phone_regions)
        self._digest_key = digest_key

    def find(self, text: str) -> list[_Match]:
        """Non-overlapping matches in text order; on overlap the more specific kind wins."""
        candidates: list[_Match] = []
        if EMAIL in self.kinds:
            candidates += _emails(text)
        if IBAN in self.kinds:
            candidates += _ibans(text)
        if CARD in self.kinds:
            candidates += _cards(text)
        if SSN in self.kinds:
            candidates += _ssns(text)
        if IP in self.kinds:
            candidates += _ips(text)
        if PHONE in self.kinds:
            candidates += _phones(text, self.phone_regions)
        chosen: list[_Match] = []
        for match in sorted(candidates, key=lambda m: (_PRIORITY[m.kind], m.start - m.end)):
            if all(match.end <= c.start or match.start >= c.end for c in chosen):
                chosen.append(match)
        return sorted(chosen, key=lambda m: m.start)

    def redact(self, text: str) -> Redaction:
        state = _State(self, reserved=_placeholders_in([text]))
        redacted, findings = state.apply(text, message=0)
        return Redaction(redacted, tuple(findings), MappingProxyType(dict(state.originals)))

    def redact_messages(
        self, messages: Sequence[Message]
    ) -> tuple[tuple[Message, ...], MessagesRedaction]:
        state = _State(self, reserved=_placeholders_in(m.content for m in messages))
        out: list[Message] = []
        findings: list[Finding] = []
        for index, message in enumerate(messages):
            content, found = state.apply(message.content, message=index)
            out.append(Message(message.role, content) if found else message)
            findings += found
        mapping = MessagesRedaction(tuple(findings), MappingProxyType(dict(state.originals)))
        return tuple(out), mapping

    def digest(self, kind: str, value: str) -> str:
        data = f"{kind}:{value}".encode()
        if self._digest_key is not None:
            return hmac.new(self._digest_key, data, hashlib.sha256).hexdigest()
        return hashlib.sha256(data).hexdigest()


def _placeholders_in(texts: Iterable[str]) -> set[str]:
    return {m.group(0) for text in texts for m in _PLACEHOLDER_RE.finditer(text)}


class _State:
    """Placeholder numbering shared across the texts of one call."""

    def __init__(self, redactor: PiiRedactor, reserved: set[str]) -> None:
        self.redactor = redactor
        # Placeholder-looking text already in the input is left alone and never reused, so
        # restore() cannot turn a literal "[EMAIL_1]" in a document into someone's address.
        self.reserved = reserved
        self.by_value: dict[tuple[str, str], str] = {}
        self.counters: dict[str, int] = {}
        self.originals: dict[str, str] = {}

    def apply(self, text: str, *, message: int) -> tuple[str, list[Finding]]:
        parts: list[str] = []
        findings: list[Finding] = []
        last = 0
        for match in self.redactor.find(text):
            placeholder = self._placeholder(match, text[match.start : match.end])
            parts += [text[last : match.start], placeholder]
            last = match.end
            digest = self.redactor.digest(match.kind, match.value)
            findings.append(
                Finding(match.kind, match.start, match.end, placeholder, digest, message)
            )
        parts.append(text[last:])
        return "".join(parts), findings

    def _placeholder(self, match: _Match, original: str) -> str:
        key = (match.kind, match.value)
        if key not in self.by_value:
            label = LABELS[match.kind]
            while True:
                self.counters[label] = self.counters.get(label, 0) + 1
                placeholder = f"[{label}_{self.counters[label]}]"
                if placeholder not in self.reserved:
                    break
            self.by_value[key] = placeholder
            self.originals[placeholder] = original  # the first spelling seen is restored
        return self.by_value[key]


_DEFAULT = PiiRedactor()


def redact(text: str, *, kinds: Collection[str] | None = None) -> Redaction:
    """Replace PII in ``text`` with placeholders (all kinds unless ``kinds`` narrows them)."""
    return (_DEFAULT if kinds is None else PiiRedactor(kinds=kinds)).redact(text)


def redact_messages(
    messages: Sequence[Message], *, kinds: Collection[str] | None = None
) -> tuple[tuple[Message, ...], MessagesRedaction]:
    """Redact every message of a prompt with one mapping: a value is ``[EMAIL_1]`` throughout."""
    return (_DEFAULT if kinds is None else PiiRedactor(kinds=kinds)).redact_messages(messages)
