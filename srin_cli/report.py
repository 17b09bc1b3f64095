"""Visual reports for srin evaluate: a self-contained HTML page and a PNG contact sheet, worst first."""
from __future__ import annotations

import base64
import html
from pathlib import Path

import cv2
import numpy as np

THUMB = 160


def thumbnail(image: np.ndarray, size: int = THUMB) -> np.ndarray:
    h, w = image.shape[:2]
    s = size / max(h, w)
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def thumbs_for(comp: np.ndarray, pred: np.ndarray, real: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    m = np.repeat((np.clip(mask, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)
    return [thumbnail(x) for x in (comp, pred, real, m)]


def _data_uri(image: np.ndarray) -> str:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode()


def write_html(path: Path, rows: list[dict], thumbs: dict[str, list[np.ndarray]], title: str, summary: list[dict]) -> None:
    order = sorted(rows, key=lambda r: -r["fmse"])
    head = "".join(f"<th>{h}</th>" for h in ("#", "name", "composite", "harmonized", "real", "mask", "MSE", "fMSE", "PSNR", "fg %"))
    body = []
    for i, r in enumerate(order, 1):
        cells = "".join(f'<td><img src="{_data_uri(t)}" alt=""></td>' for t in thumbs.get(r["name"], []))
        body.append(f"<tr><td>{i}</td><td>{html.escape(r['name'])}</td>{cells}<td>{r['mse']:.2f}</td><td>{r['fmse']:.2f}</td>"
                    f"<td>{r['psnr']:.2f}</td><td>{100 * r['fg_ratio']:.1f}</td></tr>")
    summ = "".join(f"<tr><td>{s['subset']}</td><td>{s['count']}</td><td>{s['mse']:.2f}</td><td>{s['fmse']:.2f}</td><td>{s['psnr']:.2f}</td></tr>" for s in summary)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px;text-align:right}}img{{display:block}}</style>
</head><body><h1>{html.escape(title)}</h1>
<table id="summary"><tr><th>subset</th><th>count</th><th>MSE</th><th>fMSE</th><th>PSNR</th></tr>{summ}</table>
<h2>Per image, worst fMSE first</h2><table id="images"><tr>{head}</tr>{''.join(body)}</table></body></html>"""
    from .files import atomic_write

    atomic_write(path, page)


def write_contact_sheet(path: Path, rows: list[dict], thumbs: dict[str, list[np.ndarray]], limit: int = 24) -> None:
    """One row per image (composite | harmonized | real | mask), worst fMSE first, with its metrics."""
    order = [r for r in sorted(rows, key=lambda r: -r["fmse"]) if r["name"] in thumbs][:limit]
    label_h, pad = 18, 4
    cell = THUMB + pad
    sheet = np.full((max(1, len(order)) * (cell + label_h) + pad, 4 * cell + pad, 3), 255, np.uint8)
    for i, r in enumerate(order):
        y = pad + i * (cell + label_h)
        text = f"{r['name'][:40]}  fMSE {r['fmse']:.1f}  PSNR {r['psnr']:.2f}"
        cv2.putText(sheet, text, (pad, y + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        for j, t in enumerate(thumbs[r["name"]]):
            sheet[y + label_h: y + label_h + t.shape[0], pad + j * cell: pad + j * cell + t.shape[1]] = t
    from .data.io import write_image

    write_image(path, sheet)
