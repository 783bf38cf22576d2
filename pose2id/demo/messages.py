"""Status messages shown inline in the app (and returned to API clients as a string)."""

import html

import gradio as gr

# A word, not an emoji: offline machines often have no emoji font.
_PREFIX = {"info": "", "ok": "", "warning": "Note: ", "error": "Error: "}


def status(text, kind="info"):
    """Markdown-safe HTML for the inline status box of a tab.

    Parameters
    ----------
    text : the message; plain text, escaped here.
    kind : "info", "ok", "warning" or "error" (sets the colour).
    """
    if kind not in _PREFIX:
        raise ValueError(f"kind must be one of {sorted(_PREFIX)}, got {kind!r}")
    body = html.escape(str(text)).replace("\n", "<br>")
    return f'<div class="p2-status p2-{kind}" role="status">{_PREFIX[kind]}{body}</div>'


# The toast only points at the status box, which keeps the message: a short one, so a few bad
# inputs in a row do not pile up over the page.
TOAST_SECONDS = 5


def warn(text):
    """Show ``text`` as a toast and return it as an error status box: bad input never raises,
    so the other outputs (the user's pose, their upload) stay as they are."""
    gr.Warning(str(text), duration=TOAST_SECONDS)
    return status(text, "error")
