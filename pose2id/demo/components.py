"""Gradio components with the app's own input handling."""

import math

import gradio as gr


def stock_frontend(base):
    """Class decorator: the component's browser side is stock ``base``'s (same block name, same
    frontend code); only its server-side preprocessing differs."""
    def decorate(cls):
        cls.get_block_name = lambda self: base.__name__.lower()
        cls.get_component_class_id = classmethod(lambda _cls: base.get_component_class_id())
        return cls
    return decorate


@stock_frontend(gr.Image)
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


@stock_frontend(gr.Slider)
class ClampedSlider(gr.Slider):
    """``gr.Slider`` that takes a typed value outside its range as the nearest end of the range.

    The slider's number box accepts any number and fires ``input`` at once. Stock ``gr.Slider``
    then fails while preprocessing ("Value 0 is less than minimum value 1."): the event stops,
    every output shows an error badge and the tab's status is not updated. The browser clamps
    the box to the range when it loses focus, so clamping here as well makes the server use the
    value the box ends up showing. An emptied box counts as the slider's default; a value that is
    no number (a word, NaN, Infinity from an API client) raises ``gr.Error`` naming the slider. A value between steps (2.7 typed into a slider of step 1) is taken to the
    nearest step, halves up, as the browser moves the handle. (No ``__init__`` override; see
    :class:`PhotoInput`.)
    """

    def preprocess(self, payload):
        if payload is None or (isinstance(payload, str) and not payload.strip()):
            value = float(self.value)
        else:
            try:
                value = float(payload) if not isinstance(payload, bool) else float("nan")
            except (TypeError, ValueError):
                value = float("nan")
            if not math.isfinite(value):
                raise gr.Error(f"{self.label or 'A slider'}: {payload!r} is not a number; give one from "
                               f"{self.minimum:g} to {self.maximum:g}.")
        value = min(max(value, self.minimum), self.maximum)
        if self.step:
            steps = math.floor((value - self.minimum) / self.step + 0.5)
            value = round(min(self.minimum + steps * self.step, self.maximum), 10)  # 2.4, not 2.4000000000000004
        return gr.Number.round_to_precision(value, self.precision)


@stock_frontend(gr.Checkbox)
class StrictCheckbox(gr.Checkbox):
    """``gr.Checkbox`` that takes only true or false: stock ``gr.Checkbox`` turns any value an
    API client sends into a bool, so ``"false"`` would tick it. Anything else raises
    ``gr.Error`` naming the checkbox. (No ``__init__`` override; see :class:`PhotoInput`.)"""

    def preprocess(self, payload):
        if isinstance(payload, bool):
            return payload
        raise gr.Error(f"{self.label or 'A checkbox'}: {payload!r} is not true or false.")


@stock_frontend(gr.Radio)
class GeneratorRadio(gr.Radio):
    """``gr.Radio`` of the generator choice that hands any value on to
    :meth:`pose2id.demo.generate.Generate.generate`, which refuses one not in its ``GENERATORS``
    naming the parameter and the allowed values (stock ``gr.Radio`` refuses it while
    preprocessing, in its own words). (No ``__init__`` override; see :class:`PhotoInput`.)"""

    def preprocess(self, payload):
        return payload


@stock_frontend(gr.Number)
class LenientNumber(gr.Number):
    """``gr.Number`` that hands a value it cannot read as a number (``"seven"``, ``"Infinity"``)
    on to the event, which refuses it in the app's own words, naming the field (stock
    ``gr.Number`` fails while preprocessing, in Gradio's words). (No ``__init__`` override.)"""

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except (TypeError, ValueError, OverflowError):
            return payload


class SeedNumber(LenientNumber):
    """The seed's :class:`LenientNumber`: :func:`pose2id.demo.seeds.resolve_seed` refuses a
    value that is no number, naming the seed."""
