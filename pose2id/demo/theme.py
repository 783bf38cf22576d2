"""Look of the app: a theme with system fonts only (no remote requests) and the app's CSS."""

import gradio as gr

SYSTEM_FONTS = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]

# The page must never fetch anything from the internet (offline laptops, lecture halls).
# ``?presenter`` in the address: large type and high contrast for a projector (the p2-presenter
# class on <html>, styled in CSS below), set before the page is drawn.
HEAD = ('<meta name="referrer" content="no-referrer">'
        '<script>if (new URLSearchParams(location.search).has("presenter"))'
        ' document.documentElement.classList.add("p2-presenter");</script>')


def theme():
    # Secondary text (hints, "- or -", the t-SNE note) one step darker than Soft's slate-400, which
    # is 2.6:1 on white: slate-600 is 7.6:1, readable on a projector too (WCAG AA asks 4.5:1).
    return gr.themes.Soft(primary_hue="blue", neutral_hue="slate", font=SYSTEM_FONTS, font_mono=MONO_FONTS).set(
        body_text_color_subdued="*neutral_600", body_text_color_subdued_dark="*neutral_300")


CSS = """
/* centred on screens wider than 1800 px; the width keeps auto margins from shrinking it to its content */
.gradio-container { max-width: 1800px !important; width: 100% !important; margin-left: auto !important;
                    margin-right: auto !important; }
/* the photo boxes' label badge sits over the image's top edge: start the image below it */
#photo .image-frame, #query-photo .image-frame { padding-top: 2.1rem; box-sizing: border-box; }
.p2-header h1 { margin: 0 0 2px 0; font-size: 1.7em; }
.p2-header p { margin: 0 0 6px 0; opacity: 0.8; }
.p2-status { padding: 8px 12px; border-radius: 8px; border: 1px solid; border-left-width: 5px; font-size: 0.95em; }
.p2-status.p2-info { background: #eff6ff; border-color: #bfdbfe; color: #1e3a8a; }
.p2-status.p2-ok { background: #f0fdf4; border-color: #bbf7d0; color: #14532d; }
.p2-status.p2-warning { background: #fffbeb; border-color: #fde68a; color: #78350f; }
.p2-status.p2-error { background: #fef2f2; border-color: #fca5a5; color: #7f1d1d; font-weight: 600; }
/* the Retrieve status also shows a gallery's opening progress: room for its text and bar */
#retrieve-status { min-height: 64px; }
/* the query beside the four lists; on a phone the lists wrap below it instead of overflowing */
.p2-rankings { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; }
/* one width for a query ("id 1, cam 4") and an uploaded photo ("identity unknown" wraps): the four
   lists get the same room, so they fit one row in both */
.p2-query { flex: 0 0 78px; width: 78px; text-align: center; }
.p2-query .p2-hit figcaption { white-space: normal; }
.p2-rank-cols { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(260px, 100%), 1fr)); gap: 10px;
                flex: 1 1 260px; min-width: 0; }
.p2-rank-col { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 6px 8px; }
.p2-rank-col h4, .p2-query h4 { margin: 0 0 6px 0; font-size: 1em; }
.p2-hits { font-weight: normal; opacity: 0.85; font-size: 0.9em; margin-left: 6px; }
.p2-hits-row { display: flex; flex-wrap: wrap; gap: 4px 6px; }
.p2-hit { margin: 0; text-align: center; }
.p2-hit img { height: 96px; width: 48px; object-fit: cover; border: 3px solid #94a3b8; border-radius: 4px; display: block;
              margin: 0 auto; }
.p2-query .p2-hit img { height: 128px; width: 64px; border-color: #2563eb; }
.p2-hit.p2-ok img { border-color: #16a34a; }
.p2-hit.p2-bad img { border-color: #dc2626; }
/* rank and distance under each thumbnail: 12.6 px on a laptop, 15.4 px on a projector */
.p2-hit figcaption { font-size: 0.9em; line-height: 1.25; font-variant-numeric: tabular-nums; white-space: nowrap; }
.p2-note { font-size: 0.95em; margin: 6px 0 0 0; color: var(--body-text-color-subdued); }
/* projector: bigger thumbnails and text, readable from the back of a room */
@media (min-width: 1800px) {
  .p2-hit img { height: 128px; width: 64px; }
  .p2-hit figcaption { font-size: 1.1em; }
  .gradio-container { font-size: 1.08em; }
}
/* the t-SNE explanation is read, not glanced at: body size */
#tsne-plot .p2-tsne .p2-tsne-note { font-size: 1em; color: var(--body-text-color-subdued); }
/* on a phone the Play button, Base, the slider and the method's name wrap instead of cutting it off */
#tsne-plot .p2-tsne .p2-tsne-controls { flex-wrap: wrap; }
#tsne-plot .p2-tsne .p2-tsne-range { min-width: 0; flex: 1 1 220px; white-space: normal; }

/* Labels that float over their component: keep the content below them. */
/* galleries: the label takes its own line (however many lines it wraps to), the corner button sits
   beside it, the thumbnails start below both */
#examples, #queries { display: flex; flex-direction: column; }
#examples > label.float, #queries > label.float { position: static; align-self: flex-start;
  margin: var(--block-label-margin) 40px 0 var(--block-label-margin); }
#examples .gallery-container, #queries .gallery-container { height: auto; flex: 1 1 auto; min-height: 0; position: static; }
#examples .grid-wrap, #queries .grid-wrap { position: static; }
/* the example thumbnails shrink to fit the column instead of overflowing it */
#examples .grid-container { grid-template-columns: repeat(5, minmax(0, 1fr)) !important; padding-top: 0 !important; }
#examples .thumbnail-item { min-width: 0 !important; width: 100% !important; }
/* small drop zones (.zip, your photo): text only, under the label, not the big centred icon behind it */
#gallery-zip .upload-container .wrap, #query-photo .upload-container .wrap { min-height: 0; padding-top: 30px; }
#gallery-zip .upload-container .icon-wrap, #query-photo .upload-container .icon-wrap { display: none; }

/* skeleton editor: the hidden-joint list takes the room, "Add joint" stays on one line */
#pose-editor .p2-editor .p2-add-row { flex-wrap: wrap; }
#pose-editor .p2-editor .p2-add-row select { flex: 1 1 auto; min-width: 0; }
#pose-editor .p2-editor .p2-add { white-space: nowrap; }

/* the SynthPed identity's description ends before the dropdown's arrow, with an ellipsis */
#identity input { padding-right: 2.2em !important; text-overflow: ellipsis; }
/* the query strip: rows of one height, exactly two whole rows in view (the rest scrolls, no row cut in
   half): 8px padding + 76px row + 8px gap + 76px row + 8px padding */
#queries .grid-container { grid-auto-rows: 76px !important; }
#queries .thumbnail-item { height: 76px !important; }
#queries { height: auto !important; }
#queries .gallery-container { flex: 0 0 auto !important; }
#queries .grid-wrap { height: 176px !important; max-height: 176px !important; }
/* wide screens: two lists a row, so the 8 ranked thumbnails of each stay on one line */
@media (min-width: 1800px) {
  .p2-rank-cols { grid-template-columns: repeat(2, minmax(0, 1fr)); }
}

/* presenter view (?presenter): larger type, black text, stronger borders and status colours; !important
   because Gradio scopes the app's own rules under .gradio-container, which would outrank these */
html.p2-presenter { --body-text-color: #000; --body-text-color-subdued: #1f2937; --block-label-text-color: #000;
                    --border-color-primary: #475569; --text-sm: 16px; --text-md: 19px; --text-lg: 22px;
                    --block-label-text-size: 17px; --block-title-text-size: 18px; --input-text-size: 19px; }
html.p2-presenter .gradio-container { font-size: 1.25em !important; }
html.p2-presenter .p2-header h1 { font-size: 2.2em !important; }
html.p2-presenter .p2-header p { opacity: 1 !important; }
html.p2-presenter .p2-status { font-size: 1.1em !important; border-width: 2px !important; border-left-width: 8px !important; }
html.p2-presenter .p2-status.p2-info { background: #dbeafe !important; border-color: #1d4ed8 !important; color: #000 !important; }
html.p2-presenter .p2-status.p2-ok { background: #dcfce7 !important; border-color: #15803d !important; color: #000 !important; }
html.p2-presenter .p2-status.p2-warning { background: #fef3c7 !important; border-color: #b45309 !important; color: #000 !important; }
html.p2-presenter .p2-status.p2-error { background: #fee2e2 !important; border-color: #b91c1c !important; color: #000 !important; }
html.p2-presenter .p2-hit figcaption { font-size: 1.1em !important; }
html.p2-presenter .p2-hit img { border-width: 4px !important; }
html.p2-presenter .p2-note, html.p2-presenter #tsne-plot .p2-tsne .p2-tsne-note { color: #111827 !important; }
html.p2-presenter .p2-tsne-panel circle { stroke: #000 !important; stroke-width: 0.9 !important; }

/* toasts repeat the status box: bottom right, out of the way of the controls at the top */
.toast-wrap { top: auto !important; bottom: var(--size-4); }

/* phones */
@media (max-width: 640px) {
  /* the 8 standard poses at their own size, scrolled sideways, so "pose 1".."pose 8" stay readable */
  #pose-strip .image-frame { overflow-x: auto; justify-content: flex-start; }
  #pose-strip .image-frame img { width: auto; max-width: none; height: 100%; }
  /* the ID² plot: no toolbar over its label (zooming is for bigger screens), and no one-line title cut off
     at the edge: its numbers are in the legend and the status box above */
  #id2-plot .modebar-container, #id2-plot .g-gtitle { display: none; }
}
"""
