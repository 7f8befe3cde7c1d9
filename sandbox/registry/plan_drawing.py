from __future__ import annotations

import random

from PIL import Image, ImageDraw

from sandbox.registry.drawing import font
from sandbox.registry.records import PlanVersion

__all__ = ["draw_plan"]

PAGE_SIZE_PX = (1650, 1275)
LINE_RGB = (20, 40, 120)
STREET_RGB = (225, 225, 215)


def _title_block(draw: ImageDraw.ImageDraw, plan: PlanVersion) -> None:
    x0, y0, x1, y1 = 1180, 900, 1610, 1235
    draw.rectangle((x0, y0, x1, y1), outline=LINE_RGB, width=3)
    lines = (
        ("PLAN CADASTRAL", font(26, bold=True)),
        (f"Circonscription foncière : {plan.circonscription}", font(17)),
        (f"Cadastre : {plan.cadastre}", font(17)),
        (f"Lot : {plan.lot}", font(20, bold=True)),
        (f"Date du plan : {plan.date}", font(17)),
        (f"Minute : {plan.numero}", font(17)),
        ("Échelle 1 : 1 000", font(17)),
        ("Arpenteur-géomètre : M. Lapointe, a.-g.", font(15)),
    )
    y = y0 + 15
    for text, face in lines:
        draw.text((x0 + 15, y), text, font=face, fill=LINE_RGB)
        y += getattr(face, "size", 16) + 14


def draw_plan(plan: PlanVersion, rng: random.Random) -> Image.Image:
    image = Image.new("RGB", PAGE_SIZE_PX, (250, 250, 245))
    draw = ImageDraw.Draw(image)
    draw.rectangle((30, 30, PAGE_SIZE_PX[0] - 30, PAGE_SIZE_PX[1] - 30), outline=LINE_RGB, width=4)
    # Two streets framing a row of five lots; the requested lot sits in the middle.
    draw.rectangle((80, 760, 1120, 860), fill=STREET_RGB, outline=LINE_RGB, width=2)
    draw.rectangle((1120, 80, 1150, 1200), fill=STREET_RGB)
    draw.text((420, 795), plan.streets[0], font=font(24), fill=LINE_RGB)
    street_label = Image.new("RGBA", (420, 40), (0, 0, 0, 0))
    ImageDraw.Draw(street_label).text((0, 0), plan.streets[1], font=font(22), fill=LINE_RGB)
    image.paste(
        street_label.rotate(90, expand=True), (1122, 300), street_label.rotate(90, expand=True)
    )
    labels = [*plan.neighbours[:2], plan.lot, *plan.neighbours[2:]]
    x = 100
    for i, label in enumerate(labels):
        width = rng.randrange(170, 220)
        depth = rng.randrange(430, 600)
        main = i == 2
        draw.rectangle((x, 760 - depth, x + width, 760), outline=LINE_RGB, width=5 if main else 2)
        face = font(26 if main else 20, bold=main)
        draw.text((x + 15, 760 - depth / 2), label, font=face, fill=LINE_RGB)
        draw.text(
            (x + 10, 765 - 30),
            f"{width * 0.12:.2f} m".replace(".", ","),
            font=font(14),
            fill=LINE_RGB,
        )
        draw.text(
            (x + 5, 760 - depth + 8),
            f"{depth * 0.12:.2f} m".replace(".", ","),
            font=font(14),
            fill=LINE_RGB,
        )
        x += width
    # North arrow and scale bar.
    draw.polygon(((1450, 90), (1430, 160), (1470, 160)), outline=LINE_RGB, fill=LINE_RGB)
    draw.text((1440, 165), "N", font=font(28, bold=True), fill=LINE_RGB)
    for k in range(5):
        fill = LINE_RGB if k % 2 == 0 else (250, 250, 245)
        draw.rectangle((100 + k * 80, 1150, 180 + k * 80, 1165), fill=fill, outline=LINE_RGB)
    draw.text(
        (100, 1175),
        "0        10        20        30        40        50 m",
        font=font(15),
        fill=LINE_RGB,
    )
    _title_block(draw, plan)
    return image
