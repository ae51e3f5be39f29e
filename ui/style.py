"""How the page looks: theme, CSS and the Content-Security-Policy.

Colours are chosen for WCAG AA: every text colour is at least 4.5:1 against its
background (checked in the browser tests by computing the ratio of every visible text
node). Gradio's Soft theme greys (slate-400, 2.5:1) and its primary button (indigo-500,
4.47:1) are replaced by slate-600 (7.6:1) and indigo-600 (6.3:1).
"""

from __future__ import annotations

SYSTEM_FONTS = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Noto Sans",
                "Arial", "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"]

# The page may load from its own origin only. Images: own origin, data: and blob: (gradio's
# icons and uploads), so a URL a document chose is never fetched; connections likewise.
# Inline scripts and eval are what gradio's bundle needs.
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; media-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
       "frame-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; "
       "frame-ancestors 'self'")

LOGO_SVG = ('<svg viewBox="0 0 24 24" width="26" height="26" fill="none" stroke="currentColor" stroke-width="1.8" '
            'stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">'
            '<path d="M4 5.5A2.5 2.5 0 0 1 6.5 3H19v15H6.5A2.5 2.5 0 0 0 4 20.5z"/><path d="M4 20.5A2.5 2.5 0 0 0 6.5 23H19v-5"/>'
            '<circle cx="11.5" cy="10" r="3"/><path d="m13.7 12.2 2.3 2.3"/></svg>')

CSS = """
.gradio-container { max-width: 1320px !important; margin: 0 auto !important; }
#rag-header { display: flex; gap: 14px; align-items: center; padding: 6px 2px 2px 2px; }
#rag-header .logo { width: 46px; height: 46px; border-radius: 12px; display: flex; align-items: center;
  justify-content: center; background: #4338ca; color: white; flex: none; }
#rag-header h1 { margin: 0; font-size: 1.55rem; font-weight: 700; letter-spacing: -0.01em; }
#rag-header p { margin: 2px 0 0 0; color: var(--body-text-color-subdued); font-size: .95rem; }
.rag-card { border: 1px solid var(--border-color-primary); border-radius: 12px; padding: 12px 14px;
  background: var(--block-background-fill); }
.rag-card-title { display: flex; justify-content: space-between; align-items: baseline; margin-bottom: 8px; gap: 8px; }
.rag-card-title h2 { font-weight: 650; font-size: .95rem; margin: 0; }
.rag-card-title .sub { font-weight: 400; font-size: .8rem; color: var(--body-text-color-subdued);
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap; max-width: 65%; }
.rag-muted { color: var(--body-text-color-subdued); font-size: .88rem; line-height: 1.45; }
.rag-src { border-top: 1px solid var(--border-color-primary); padding: 9px 0 7px 0; }
.rag-src:first-of-type { border-top: none; padding-top: 2px; }
.rag-src-head { display: flex; align-items: center; gap: 8px; font-size: .88rem; }
.rag-src-n { flex: none; min-width: 22px; height: 22px; border-radius: 6px; background: #e0e7ff;
  color: #3730a3; font-weight: 700; font-size: .78rem; display: inline-flex; align-items: center;
  justify-content: center; padding: 0 4px; }
.rag-uncited .rag-src-n { background: var(--background-fill-secondary); color: var(--body-text-color-subdued);
  border: 1px dashed var(--border-color-primary); }
.rag-src-file { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.rag-src-flag { flex: none; font-size: .75rem; color: var(--body-text-color-subdued); }
.rag-sr { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden;
  clip: rect(0, 0, 0, 0); white-space: nowrap; border: 0; }
.rag-src-page { flex: none; font-size: .78rem; padding: 1px 7px; border-radius: 999px;
  background: var(--background-fill-secondary); border: 1px solid var(--border-color-primary); }
.rag-src-score { margin-left: auto; flex: none; font-size: .75rem; color: var(--body-text-color-subdued);
  font-variant-numeric: tabular-nums; }
.rag-src-snip { margin-top: 5px; font-size: .84rem; line-height: 1.45; color: var(--body-text-color);
  white-space: normal; word-break: break-word; }
.rag-uncited .rag-src-snip { color: var(--body-text-color-subdued); }
.rag-src-snip details summary { cursor: pointer; color: #4338ca; font-size: .78rem; margin-top: 3px; }
mark.rag-quote { background: #fef08a; color: #1f2937; border-radius: 3px; padding: 0 2px; }
a.rag-open { display: inline-block; margin-top: 5px; font-size: .8rem; color: #3730a3; text-decoration: underline; }
.rag-stats { display: grid; grid-template-columns: repeat(3, 1fr); gap: 8px; margin-bottom: 8px; }
.rag-stat { background: var(--background-fill-secondary); border-radius: 10px; padding: 8px 10px; }
.rag-stat .num { display: block; font-size: 1.25rem; font-weight: 700; font-variant-numeric: tabular-nums; }
.rag-stat .lbl { font-size: .75rem; color: var(--body-text-color-subdued); text-transform: uppercase;
  letter-spacing: .04em; }
.rag-meta { font-size: .82rem; color: var(--body-text-color-subdued); line-height: 1.6; word-break: break-all; }
.rag-meta b { color: var(--body-text-color); font-weight: 600; }
.rag-docs summary { cursor: pointer; font-size: .82rem; margin-top: 4px; }
.rag-docs ul { margin: 4px 0 0 0; padding-left: 18px; font-size: .82rem; }
.rag-empty { text-align: center; padding: 14px 6px; }
.rag-notice { border-radius: 10px; padding: 10px 12px; font-size: .92rem; line-height: 1.5; }
.rag-refusal { background: #fff7ed; border: 1px solid #fdba74; color: #7c2d12; }
.rag-error { background: #fef2f2; border: 1px solid #fca5a5; color: #7f1d1d; }
.rag-notice .hint { display: block; margin-top: 4px; font-size: .8rem; word-break: break-word; }
.dark .rag-refusal { background: #431407; border-color: #9a3412; color: #fed7aa; }
.dark .rag-error { background: #450a0a; border-color: #991b1b; color: #fecaca; }
.rag-user-text, .rag-answer { white-space: pre-wrap; word-break: break-word; }
.rag-unsupported { text-decoration: underline wavy #b45309; text-underline-offset: 3px; }
.rag-caution { font-size: .85rem; color: #78350f; background: #fffbeb; border-left: 3px solid #d97706;
  border-radius: 4px; padding: 4px 8px; margin-bottom: 6px; }
.rag-unsupported-tag { font-size: .75rem; color: #92400e; background: #fffbeb; border-radius: 4px; padding: 0 4px; }
.rag-stage { display: flex; align-items: center; gap: 8px; color: var(--body-text-color); }
.rag-stage .rag-elapsed { color: var(--body-text-color-subdued); font-variant-numeric: tabular-nums; }
.rag-spinner { width: 12px; height: 12px; border-radius: 50%; border: 2px solid #c7d2fe; border-top-color: #4338ca;
  animation: rag-spin .8s linear infinite; flex: none; }
@keyframes rag-spin { to { transform: rotate(360deg); } }
@media (prefers-reduced-motion: reduce) { .rag-spinner { animation: none; } }
.rag-stopped { margin-top: 6px; font-size: .8rem; color: #7f1d1d; }
.rag-cites { margin-top: 8px; display: flex; flex-wrap: wrap; gap: 6px; font-size: .78rem; }
.rag-cite { padding: 1px 8px; border-radius: 999px; background: #eef2ff; border: 1px solid #c7d2fe; color: #3730a3; }
.rag-upload-report ul { list-style: none; margin: 6px 0 0 0; padding: 0; font-size: .86rem; }
.rag-upload-report li { padding: 3px 0; line-height: 1.4; word-break: break-word; }
.rag-upload-report li.bad { color: #b91c1c; }
.dark .rag-upload-report li.bad { color: #fca5a5; }
.rag-upload-report li.ok { color: var(--body-text-color); }
.rag-upload-report .mark { display: inline-block; width: 1.2em; font-weight: 700; }
.rag-upload-report li.ok .mark, .rag-upload-report li.same .mark { color: #15803d; }
.rag-formats { font-size: .8rem; padding: 0 4px; }
#rag-question textarea { font-size: 1rem; }
#rag-box-note:empty { display: none; }
.rag-box-note { color: #7f1d1d; background: #fef2f2; border: 1px solid #fca5a5; border-radius: 8px;
  padding: 6px 10px; font-size: .88rem; }
.rag-placeholder { text-align: center; color: var(--body-text-color-subdued); line-height: 1.6; font-size: .95rem; }
.rag-placeholder b { display: block; font-size: 1.15rem; color: var(--body-text-color); margin-bottom: 4px; }
.rag-why { font-size: .85rem; color: var(--body-text-color-subdued); padding: 2px 4px; }
#rag-chatbot { border-radius: 12px; }
"""


def make_theme():
    """Soft, indigo, system fonts only (nothing from a font CDN), AA contrast throughout."""
    import gradio as gr

    return gr.themes.Soft(
        primary_hue="indigo", secondary_hue="cyan", neutral_hue="slate", radius_size="md",
        font=SYSTEM_FONTS, font_mono=MONO_FONTS,
    ).set(
        body_text_color_subdued="*neutral_600",
        body_text_color_subdued_dark="*neutral_300",
        input_placeholder_color="*neutral_600",
        input_placeholder_color_dark="*neutral_300",
        button_primary_background_fill="*primary_600",
        button_primary_background_fill_hover="*primary_700",
        button_primary_background_fill_dark="*primary_600",
        block_label_text_color="*primary_700",
        block_title_text_color="*primary_700",
        color_accent="*primary_600",
    )


__all__ = ["CSS", "CSP", "LOGO_SVG", "SYSTEM_FONTS", "MONO_FONTS", "make_theme"]
