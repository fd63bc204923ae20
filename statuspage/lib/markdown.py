"""Markdown to HTML that is safe to put on the page, in feeds and in API bodies."""
from __future__ import annotations

import markdown as _markdown
import nh3

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h3", "h4", "hr", "i", "li",
    "ol", "p", "pre", "s", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}, "td": {"align"}, "th": {"align"}}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


def sanitize_html(html: str) -> str:
    """Strip scripts, event handlers and javascript: URLs; keep the harmless formatting tags."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="nofollow noopener noreferrer",
        strip_comments=True,
    )


def render_markdown(text: str) -> str:
    html = _markdown.markdown(text or "", extensions=["sane_lists", "tables", "nl2br"], output_format="html")
    return sanitize_html(html)


def plain_body(text: str) -> str:
    """The update body as API clients expect it: the author's text, made inert if it holds HTML.

    Statuspage bodies are plain text with a little HTML; clients such as the status widget put
    them into the DOM, so any markup must first pass the sanitiser. Text without '<' has no tags
    and is returned unchanged, so ampersands and quotes stay as written.
    """
    text = text or ""
    return sanitize_html(text) if "<" in text else text
