"""report.html: one self-contained page (CSS, figures as base64 data URIs, a few lines of
JavaScript to sort tables), so it opens offline and can be mailed as one file."""
from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1b;
 max-width:1200px;margin:2rem auto;padding:0 1.2rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.2rem;margin-top:2rem;
 border-bottom:1px solid #ddd;padding-bottom:.2rem}
p.meta{color:#555;margin-top:0}
table{border-collapse:collapse;font-size:13px;margin:.5rem 0 1rem;font-variant-numeric:
 tabular-nums} th,td{padding:.3rem .6rem;border-bottom:1px solid #e5e5e5;text-align:left;
 white-space:nowrap;vertical-align:top}
thead th{background:#f4f6f8;cursor:pointer;user-select:none;white-space:normal;
 vertical-align:bottom}
.scroll{overflow-x:auto}
thead th.sorted-asc::after{content:" ▲"} thead th.sorted-desc::after{content:" ▼"}
tr.incomplete td{background:#fff4e0} td.best{font-weight:700;background:#e3f1fb}
table.verdicts td:last-child{white-space:normal}
.flag{color:#a15c00;font-weight:600}
figure{margin:1.5rem 0;max-width:900px} figure img{max-width:100%;height:auto;
 border:1px solid #eee} figcaption{color:#333;font-size:14px;margin-top:.4rem}
.note{color:#555;font-size:13px}
"""

# Each figure says whether the browser decoded it (data-rendered), for the headless check.
# Click a header to sort by that column (numbers by value, "–" last); click again to reverse.
JS = """
window.addEventListener('load',function(){document.querySelectorAll('figure img').forEach(
 function(i){i.dataset.rendered=(i.complete&&i.naturalWidth>0)?'yes':'no'})});
document.querySelectorAll('table.sortable').forEach(function(t){
 t.querySelectorAll('thead th').forEach(function(th,i){th.addEventListener('click',function(){
  var asc=!th.classList.contains('sorted-asc'), body=t.tBodies[0];
  t.querySelectorAll('thead th').forEach(function(h){
   h.classList.remove('sorted-asc','sorted-desc')});
  th.classList.add(asc?'sorted-asc':'sorted-desc');
  var key=function(r){var s=r.cells[i].textContent.trim(),v=parseFloat(s);return isNaN(v)?s:v};
  Array.from(body.rows).sort(function(a,b){var x=key(a),y=key(b);
   if(typeof x!==typeof y){return typeof x==='number'?-1:1}
   return (x<y?-1:x>y?1:0)*(asc?1:-1)}).forEach(function(r){body.appendChild(r)});
 })})});
"""


def styled_table(shown: pd.DataFrame, *, best=None, incomplete=None, cls: str = "",
                 uid: str = "t") -> str:
    """A DataFrame of display strings -> HTML through pandas' Styler: best cells get class
    'best', incomplete rows class 'incomplete'; no index; sortable."""
    styler = shown.style.hide(axis="index").set_uuid(uid)
    styler = styler.set_table_attributes(f'class="sortable {cls}"')
    if best is not None:
        styler = styler.set_td_classes(best.replace({True: "best", False: ""}))
    html_text = styler.to_html()
    if incomplete is not None and incomplete.any():
        # Styler classes cells, not rows: mark the <tr> of incomplete rows for the row colour
        for i in [i for i, bad in enumerate(incomplete.to_numpy()) if bad]:
            html_text = html_text.replace(f'<tr>\n      <td id="T_{uid}_row{i}_col0"',
                                          f'<tr class="incomplete">\n      '
                                          f'<td id="T_{uid}_row{i}_col0"', 1)
    return f'<div class="scroll">{html_text}</div>'


def data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode()


def figure_html(title: str, png: Path, caption: str) -> str:
    return (f'<figure id="fig-{html.escape(png.stem)}"><img src="{data_uri(png)}" '
            f'alt="{html.escape(title)}"><figcaption><b>{html.escape(title)}.</b> '
            f"{html.escape(caption)} (<a href=\"{html.escape(png.with_suffix('.pdf').name)}\">"
            f"PDF</a>)</figcaption></figure>")


def page(title: str, meta: str, sections: list[tuple[str, str, str]]) -> str:
    """``meta``: text under the title (paragraphs split at blank lines); ``sections``:
    (id, heading, inner HTML)."""
    body = "".join(f'<section id="{sid}"><h2>{html.escape(h)}</h2>{inner}</section>'
                   for sid, h, inner in sections)
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>"
            + "".join(f'<p class="meta">{html.escape(para)}</p>' for para in meta.split("\n\n"))
            + f"{body}"
            f"<script>{JS}</script></body></html>")
