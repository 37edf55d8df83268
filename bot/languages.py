"""Language codes the workflow speaks, with names for the autocomplete."""

from __future__ import annotations

NAMES = {
    "en": "English", "ja": "Japanese", "zh": "Chinese", "de": "German", "hi": "Hindi",
    "fr": "French", "ko": "Korean", "pt": "Portuguese", "it": "Italian", "es": "Spanish",
    "id": "Indonesian", "nl": "Dutch", "tr": "Turkish", "fil": "Filipino", "pl": "Polish",
    "sv": "Swedish", "bg": "Bulgarian", "ro": "Romanian", "ar": "Arabic", "cs": "Czech",
    "el": "Greek", "fi": "Finnish", "hr": "Croatian", "ms": "Malay", "sk": "Slovak",
    "da": "Danish", "ta": "Tamil", "uk": "Ukrainian", "ru": "Russian", "hu": "Hungarian",
    "no": "Norwegian", "vi": "Vietnamese",
}  # fmt: skip

MAX_CHOICES = 25  # Discord's limit for autocomplete answers
# Longest language a member may type: a code (at most 10 characters, see
# SUPPORTED_LANGUAGES) or a label such as "Indonesian (id)" (15), with room to spare.
MAX_INPUT_CHARS = 40


def label(code: str) -> str:
    name = NAMES.get(code)
    return f"{name} ({code})" if name else code


def resolve(value: str | None, supported: tuple[str, ...]) -> str | None:
    """The supported code a user meant ("hi", "HI", "Hindi", "Hindi (hi)"), or None."""
    if value is None or not value.strip():
        return "en" if "en" in supported else supported[0]
    if len(value) > MAX_INPUT_CHARS:
        return None
    text = value.strip().lower()
    if text.endswith(")") and "(" in text:
        text = text[text.rindex("(") + 1 : -1].strip()
    if text in supported:
        return text
    for code in supported:
        if NAMES.get(code, "").lower() == text:
            return code
    return None


def suggest(current: str, supported: tuple[str, ...]) -> list[tuple[str, str]]:
    """(label, code) pairs for the autocomplete: prefix matches first, then substrings."""
    query = current.strip().lower()
    if not query:
        return [(label(c), c) for c in supported[:MAX_CHOICES]]
    prefix: list[str] = []
    inner: list[str] = []
    for code in supported:
        name = NAMES.get(code, code).lower()
        if code.startswith(query) or name.startswith(query):
            prefix.append(code)
        elif query in name or query in label(code).lower():
            inner.append(code)
    return [(label(c), c) for c in (prefix + inner)[:MAX_CHOICES]]
