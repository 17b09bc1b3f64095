"""What srin changed, per image, without real photos to score against: numbers a pipeline can flag images by,
and a page a person reviews (``harmonize --report``, ``compose --report``).

Per image, over the foreground (mask > 0.5, the metrics' foreground; mask > 0 when nothing is above 0.5):

* ``delta_e``: the mean CIELAB colour difference (Delta E 1976, L* 0-100) between composite and harmonized:
  how strongly srin corrected;
* ``chroma_change``: the harmonized foreground's mean chroma minus the composite's, in the units and with the
  measure of ``--max-chroma-loss`` (:func:`srin_cli.harmonizer.foreground_chroma`): below 0 srin took colour
  away (with ``--max-chroma-loss U`` it stays at or above -U, up to the limit's bisection);
* ``lightness_change``: mean L* of the harmonized foreground minus the composite's (below 0: darker).

The page shows composite | harmonized pairs (and the mask: what was recoloured), the images srin changed most
(largest Delta E) first, with these numbers; pictures for the first :data:`PICTURES`, the numbers of all.
"""
from __future__ import annotations

import base64
import heapq
import html
from pathlib import Path

import cv2
import numpy as np

from .data.io import shrink_to

NUMBERS = ("delta_e", "chroma_change", "lightness_change")
PICTURES = 100  # pairs shown as pictures (about 5 MB of page); the table lists every image
THUMB = 256  # longest side of a picture on the page
SAMPLES = 256 * 256  # foreground pixels measured per image, at most about (the metrics' scoring size)


def change_numbers(composite: np.ndarray, harmonized: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """:data:`NUMBERS` for one image (0.0 each when the mask is empty). Exact up to :data:`SAMPLES` foreground
    pixels; a larger foreground is measured on a regular grid of about that many of its pixels (every k-th row
    and column): about 30 ms per image on one core, whatever its size; the means move by a few hundredths.

    Shape: composite, harmonized H x W x 3 uint8 RGB; mask H x W float in [0, 1]."""
    from .harmonizer import foreground_chroma

    if composite.shape != harmonized.shape or mask.shape != composite.shape[:2]:
        raise ValueError(f"composite {composite.shape}, harmonized {harmonized.shape} and mask {mask.shape} must be "
                         "HxWx3, HxWx3, HxW")
    fg = mask > 0.5
    if not fg.any():
        fg = mask > 0
    count = int(np.count_nonzero(fg))
    if count == 0:
        return dict.fromkeys(NUMBERS, 0.0)
    step = max(1, int(np.ceil(np.sqrt(count / SAMPLES))))
    grid = (slice(None, None, step), slice(None, None, step))
    pick = fg[grid]
    # the picked pixels as a 1 x N image: the same colour conversions as on the photo, pixel by pixel
    before, after = (x[grid][pick][None] for x in (composite, harmonized))
    lab_before, lab_after = (cv2.cvtColor(x.astype(np.float32) / np.float32(255), cv2.COLOR_RGB2Lab)[0]
                             for x in (before, after))
    weight = np.ones(before.shape[:2], np.float32)
    return {"delta_e": float(np.sqrt(((lab_after - lab_before) ** 2).sum(axis=1)).mean()),
            "chroma_change": foreground_chroma(after, weight) - foreground_chroma(before, weight),
            "lightness_change": float((lab_after[:, 0] - lab_before[:, 0]).mean())}


class Review:
    """The rows of a batch (the caller's fields + :data:`NUMBERS`), in the order measured, and with
    ``pictures`` the composite | harmonized | mask thumbnails of the ``keep`` most changed ones (JPEG data URIs:
    a batch of any length holds a bounded few MB)."""

    def __init__(self, pictures: bool = False, keep: int = PICTURES):
        self.rows: list[dict] = []
        self.pictures = pictures
        self.keep = keep
        self._top: list[tuple[float, int, tuple[str, str]]] = []  # a min-heap on delta_e

    def add(self, fields: dict, composite: np.ndarray, harmonized: np.ndarray, mask: np.ndarray) -> dict:
        """Measure one image; returns its row (``fields`` + the numbers)."""
        row = {**fields, **change_numbers(composite, harmonized, mask)}
        self.rows.append(row)
        if self.pictures:
            entry = (row["delta_e"], len(self.rows) - 1)
            if len(self._top) < self.keep or entry > self._top[0][:2]:
                grey = np.clip(mask * 255 + 0.5, 0, 255).astype(np.uint8)
                uris = tuple(_data_uri(x) for x in (composite, harmonized, cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)))
                (heapq.heappush if len(self._top) < self.keep else heapq.heapreplace)(self._top, (*entry, uris))
        return row

    def thumbnails(self) -> dict[int, tuple[str, str, str]]:
        """Row index -> (composite, harmonized, mask) data URIs, for the rows kept."""
        return {i: uris for _, i, uris in self._top}


def _data_uri(image: np.ndarray) -> str:
    small = shrink_to(image, THUMB)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode()


_CSS = """body{font-family:sans-serif;margin:1em 2em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 6px;text-align:right}td.name{text-align:left;word-break:break-all}
#about td,#about th,#failed td,#failed th{text-align:left}#about,#failed{margin-bottom:1em}
#images{width:100%}#images th{text-align:center}#images td.pic{width:28%}#images td.mask{width:12%}#images td.name{width:12%}#images img{display:block;width:100%;height:auto}
td.none{color:#888;text-align:center}p.how{max-width:60em}"""


def write_review(path: Path, review: Review, title: str, about: list[tuple[str, str]],
                 failures: list[tuple[str, str]] = ()) -> None:
    """One self-contained page at ``path``: what made it (``about``: label, text), the items that failed, then
    every image, most changed first (pictures for the first :data:`PICTURES`)."""
    from .files import atomic_write

    esc = html.escape
    pictures = review.thumbnails()
    order = sorted(range(len(review.rows)), key=lambda i: -review.rows[i]["delta_e"])
    parts = [f"<h1>{esc(title)}</h1>",
             '<table id="about">' + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in about if v)
             + "</table>",
             '<p class="how">Over each foreground: <b>&Delta;E</b>, the mean CIELAB colour difference between the '
             "composite and srin's result (how strongly srin corrected; most changed first); <b>chroma</b>, the "
             "change of mean chroma (below 0: srin took colour away, the measure of --max-chroma-loss); "
             "<b>lightness</b>, the change of mean L* (below 0: darker).</p>"]
    if failures:
        lines = "".join(f'<tr><td class="name">{esc(n)}</td><td>{esc(why)}</td></tr>' for n, why in failures)
        parts.append(f'<h2>Failed ({len(failures)})</h2><table id="failed"><tr><th>item</th><th>why</th></tr>{lines}</table>')
    body = []
    for rank, i in enumerate(order, 1):
        r = review.rows[i]
        if i in pictures:
            cells = "".join(f'<td class="{kind}"><img src="{uri}" alt="{what}"></td>' for uri, what, kind in
                            zip(pictures[i], ("composite", "harmonized", "mask"), ("pic", "pic", "mask")))
        else:
            cells = '<td class="none" colspan="3">(not shown)</td>'
        body.append(f'<tr><td>{rank}</td><td class="name">{esc(str(r["name"]))}</td>{cells}<td>{r["delta_e"]:.2f}</td>'
                    f'<td>{r["chroma_change"]:+.2f}</td><td>{r["lightness_change"]:+.2f}</td></tr>')
    shown = (f", pictures for the {len(pictures)} most changed" if len(pictures) < len(order) else "")
    parts.append(f"<h2>Per image, most changed first ({len(order)}{shown})</h2>"
                 '<table id="images"><tr><th>#</th><th>name</th><th>composite</th><th>harmonized</th>'
                 f'<th>mask</th><th>&Delta;E</th><th>chroma</th><th>lightness</th></tr>{"".join(body)}</table>')
    page = (f'<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")
    atomic_write(path, page)
