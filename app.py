"""The pose2id demo. Run `python app.py` and open http://127.0.0.1:7860."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

with gr.Blocks(title="Pose2ID") as demo:
    gr.Markdown("# Pose2ID: training-free person re-identification via feature centralization")

if __name__ == "__main__":
    demo.launch()
