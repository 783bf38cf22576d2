"""Everything the Gradio app (``app.py``) calls, testable without a browser.

- :mod:`pose2id.demo.inputs` reads uploads safely (size limits, image modes, archives).
- :mod:`pose2id.demo.messages` turns errors into the visible status messages.
- :mod:`pose2id.demo.editor` is the skeleton editor (a ``gr.HTML`` component) and its actions.
- :mod:`pose2id.demo.generate` runs IPG (or the SynthPed oracle) with streamed previews.
- :mod:`pose2id.demo.retrieve` ranks galleries with Base / +NFC / +IPG / +NFC+IPG.
- :mod:`pose2id.demo.feature_space` plots ID² and t-SNE before and after centralization.

Nothing here imports torch or diffusers at import time, so the app starts quickly.
"""
