"""Gradio components with the app's own input handling."""

import gradio as gr

from gradio.events import Dependency

class PhotoInput(gr.Image):
    """``gr.Image`` that hands the uploaded file's path over unopened.

    Stock ``gr.Image`` opens the upload while preprocessing, so a non-image or a 20000x20000
    image would fail there with a generic error. Here :func:`pose2id.demo.inputs.open_photo`
    checks it and the tab shows a specific message instead. (No ``__init__`` override: Gradio
    reads the component's settings from the signature of ``gr.Image.__init__``.)
    """

    def preprocess(self, payload):
        if payload is None:
            return None
        if payload.path is None:
            raise gr.Error("The photo upload arrived without a file; upload it again.")
        return str(payload.path)

    # The browser side is stock gr.Image: same block name, same frontend code.
    def get_block_name(self):
        return "image"

    @classmethod
    def get_component_class_id(cls):
        return gr.Image.get_component_class_id()
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component