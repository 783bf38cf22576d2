"""Look of the app: a theme with system fonts only (no remote requests) and the app's CSS."""

import gradio as gr

SYSTEM_FONTS = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]

# The page must never fetch anything from the internet (offline laptops, lecture halls).
HEAD = '<meta name="referrer" content="no-referrer">'


def theme():
    return gr.themes.Soft(primary_hue="blue", neutral_hue="slate", font=SYSTEM_FONTS, font_mono=MONO_FONTS)


CSS = """
.gradio-container { max-width: 1800px !important; }
.p2-header h1 { margin: 0 0 2px 0; font-size: 1.7em; }
.p2-header p { margin: 0 0 6px 0; opacity: 0.8; }
.p2-status { padding: 8px 12px; border-radius: 8px; border: 1px solid; border-left-width: 5px; font-size: 0.95em; }
.p2-status.p2-info { background: #eff6ff; border-color: #bfdbfe; color: #1e3a8a; }
.p2-status.p2-ok { background: #f0fdf4; border-color: #bbf7d0; color: #14532d; }
.p2-status.p2-warning { background: #fffbeb; border-color: #fde68a; color: #78350f; }
.p2-status.p2-error { background: #fef2f2; border-color: #fca5a5; color: #7f1d1d; font-weight: 600; }
.p2-rankings { display: flex; gap: 14px; align-items: flex-start; }
.p2-query { flex: 0 0 auto; text-align: center; }
.p2-rank-cols { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 10px; flex: 1; }
.p2-rank-col { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 6px 8px; }
.p2-rank-col h4, .p2-query h4 { margin: 0 0 6px 0; font-size: 1em; }
.p2-hits { font-weight: normal; opacity: 0.75; font-size: 0.9em; margin-left: 6px; }
.p2-hits-row { display: flex; flex-wrap: wrap; gap: 4px; }
.p2-hit { margin: 0; text-align: center; }
.p2-hit img { height: 96px; width: 48px; object-fit: cover; border: 3px solid #94a3b8; border-radius: 4px; display: block; }
.p2-query .p2-hit img { height: 128px; width: 64px; border-color: #2563eb; }
.p2-hit.p2-ok img { border-color: #16a34a; }
.p2-hit.p2-bad img { border-color: #dc2626; }
.p2-hit figcaption { font-size: 0.72em; line-height: 1.2; font-variant-numeric: tabular-nums; }
.p2-note { font-size: 0.85em; opacity: 0.8; margin: 6px 0 0 0; }
/* projector: bigger thumbnails and text, readable from the back of a room */
@media (min-width: 1800px) {
  .p2-hit img { height: 128px; width: 64px; }
  .gradio-container { font-size: 1.08em; }
}
/* the example thumbnails shrink to fit the column instead of overflowing it */
#examples .grid-container { grid-template-columns: repeat(5, minmax(0, 1fr)) !important; }
#examples .thumbnail-item { min-width: 0 !important; width: 100% !important; }
"""
