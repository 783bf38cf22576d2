"""The Generate tab's Stop: a cancelled generation interrupts the pipeline at its next step."""

import threading

import numpy as np
from PIL import Image

from pose2id.demo import ipg_runner as generate_module
from pose2id.ipg import IPGPipeline
from pose2id.poses import load_standard_poses


def test_closing_the_stream_interrupts_the_pipeline(monkeypatch):
    original, finished, closed, steps_done = IPGPipeline.__call__, threading.Event(), threading.Event(), []

    def recording(self, *args, **kwargs):
        callback = kwargs["callback_on_step_end"]

        def counting(pipe, i, t, callback_kwargs):
            steps_done.append(i)
            result = callback(pipe, i, t, callback_kwargs)
            if i == 0:
                closed.wait(600)  # the next step starts only after the stream was closed
            return result

        try:
            return original(self, *args, **{**kwargs, "callback_on_step_end": counting})
        finally:
            finished.set()

    monkeypatch.setattr(IPGPipeline, "__call__", recording)
    config = generate_module.GenerateConfig(test_pipeline=True)
    pipeline = generate_module.load_pipeline(config)
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 64, 3), dtype=np.uint8))
    stream = generate_module.run_ipg(config, photo, load_standard_poses()[:1], 30, 3.5, 7)
    first = next(stream)
    assert first[0] == "step" and first[1] == 0
    stream.close()  # what cancelling the Gradio event does to the generator
    closed.set()
    assert finished.wait(600), "the pipeline call did not end"
    assert pipeline.interrupt
    assert steps_done == [0, 1]  # step 1 saw the stop; the remaining 28 were skipped


def test_a_stream_read_to_the_end_is_not_interrupted(monkeypatch):
    config = generate_module.GenerateConfig(test_pipeline=True)
    pipeline = generate_module.load_pipeline(config)
    photo = Image.new("RGB", (64, 128), (120, 60, 30))
    items = list(generate_module.run_ipg(config, photo, load_standard_poses()[:1], 2, 3.5, 7))
    assert [kind for kind, *_ in items] == ["step", "step", "done"]
    assert not pipeline.interrupt and len(items[-1][1]) == 1
