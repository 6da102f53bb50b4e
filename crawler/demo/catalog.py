"""The demo shop's catalog: 1,000 products in 8 categories, generated from a fixed seed.

Tests and crawls assert exact counts against it, so generation depends on nothing but
``random.Random(2024)``; the constants below name the products that behave specially.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, replace
from decimal import Decimal

PRODUCT_COUNT = 1000
CATEGORY_COUNT = 8
PAGE_SIZE = 24
DISCONTINUED = ("discontinued-1", "discontinued-2", "discontinued-3")
PRICE_ON_REQUEST_IDS = (500, 777)
FEATURED_IDS = (3, 14, 15, 92, 65)
LEGACY_ID = 7
MESSY_ID = 13
SLOW_ID = 42
REDIRECTED_ID = 99


@dataclass(frozen=True)
class Category:
    slug: str
    name: str


@dataclass(frozen=True)
class Product:
    id: int
    sku: str
    name: str
    category: Category
    price: Decimal | None  # None: the page shows "Price on request"
    currency: str
    in_stock: bool
    rating: float
    description: str
    image_count: int
    related_ids: tuple[int, ...]


@dataclass(frozen=True)
class Catalog:
    categories: tuple[Category, ...]
    products: tuple[Product, ...]  # products[i].id == i + 1

    def in_category(self, slug: str) -> tuple[Product, ...]:
        """The category's products in id order (the order of its listing pages)."""
        return tuple(p for p in self.products if p.category.slug == slug)


# slug, name, currency, nouns: products are assigned round-robin, so product n is in
# category (n - 1) % 8; the LEGACY (7) and MESSY (13) products land in Coffee and Dining.
_CATEGORIES = (
    ("lighting", "Lighting", "USD", ("Desk Lamp", "Floor Lamp", "Pendant Light", "Wall Sconce")),
    ("furniture", "Furniture", "USD", ("Side Table", "Bookshelf", "Armchair", "Bench", "Stool")),
    ("home-office", "Home Office", "USD", ("Desk Organizer", "Monitor Stand", "Pen Cup")),
    ("outdoor", "Outdoor", "USD", ("Planter", "Garden Chair", "Bird Feeder", "Lantern")),
    ("dining", "Dining", "GBP", ("Serving Bowl", "Dinner Plate", "Carafe", "Cutting Board")),
    ("bath", "Bath", "GBP", ("Soap Dish", "Towel Rack", "Bath Mat", "Toothbrush Holder")),
    ("coffee", "Coffee", "EUR", ("Pour-Over Stand", "Coffee Grinder", "Espresso Cup", "Kettle")),
    ("textiles", "Textiles", "USD", ("Throw Blanket", "Cushion Cover", "Table Runner", "Rug")),
)
_ADJECTIVES = (
    "Classic", "Modern", "Rustic", "Compact", "Nordic", "Vintage", "Minimal", "Handmade",
    "Slim", "Sturdy", "Everyday", "Studio",
)  # fmt: skip
_MATERIALS = (
    "Walnut", "Oak", "Bamboo", "Brass", "Copper", "Ceramic", "Linen", "Wool", "Marble",
    "Steel", "Glass", "Cotton", "Teak", "Stoneware",
)  # fmt: skip
_OPENINGS = (
    "The {name} is built to last and easy to care for.",
    "The {name} is a customer favourite for everyday use.",
    "The {name} pairs clean lines with honest materials.",
    "The {name} was designed and tested in our own studio.",
    "Meet the {name}, a quiet upgrade for any room.",
)
_DETAILS = (
    "Each piece is made from {material} and finished by hand.",
    "Its {material} surface develops a gentle patina over time.",
    "We chose {material} for its warmth and durability.",
)
_NAMED = {
    LEGACY_ID: (
        "Café Crème – Deluxe Grinder",
        "The Café Crème – Deluxe Grinder grinds beans for espresso and filter alike. "
        "Its conical burrs keep the grind even. Ships within 2 business days.",
    ),
    MESSY_ID: (
        "Salt & Pepper Mill",
        "A classic Salt & Pepper Mill with a ceramic grinder. "
        "It’s easy to refill and adjusts from fine to coarse. Hand-finished beech wood.",
    ),
}


def _price(rng: random.Random) -> Decimal:
    # About one in six products costs 1,000 or more, so thousands separators appear.
    cents = rng.randint(100_000, 499_999) if rng.random() < 0.16 else rng.randint(100, 99_999)
    return Decimal(cents).scaleb(-2)


def _product(
    rng: random.Random, pid: int, category: Category, currency: str, name: str, material: str
) -> Product:
    description = " ".join(
        [
            rng.choice(_OPENINGS).format(name=name),
            rng.choice(_DETAILS).format(material=material.lower()),
            f"Ships within {rng.randint(1, 5)} business days.",
        ]
    )
    others = [i for i in rng.sample(range(1, PRODUCT_COUNT + 1), 5) if i != pid][:4]
    price = _price(rng)
    return Product(
        id=pid,
        sku=f"DS-{pid:05d}",
        name=name,
        category=category,
        price=None if pid in PRICE_ON_REQUEST_IDS else price,
        currency=currency,
        in_stock=rng.random() < 0.85,
        rating=rng.randint(2, 10) / 2,
        description=description,
        image_count=rng.randint(1, 4),
        related_ids=tuple(others),
    )


@functools.cache
def build_catalog() -> Catalog:
    """The catalog; the same on every call and in every process."""
    rng = random.Random(2024)
    categories = tuple(Category(slug, name) for slug, name, _, _ in _CATEGORIES)
    products: list[Product] = []
    names: set[str] = set()
    for pid in range(1, PRODUCT_COUNT + 1):
        index = (pid - 1) % CATEGORY_COUNT
        _, _, currency, nouns = _CATEGORIES[index]
        name, material = "", ""
        while not name or name in names:
            adjective, material = rng.choice(_ADJECTIVES), rng.choice(_MATERIALS)
            noun = rng.choice(nouns)
            name = f"{material} {noun}" if rng.random() < 0.3 else f"{adjective} {material} {noun}"
        product = _product(rng, pid, categories[index], currency, name, material)
        if pid in _NAMED:
            name, description = _NAMED[pid]
            product = replace(product, name=name, description=description)
        names.add(product.name)
        products.append(product)
    return Catalog(categories, tuple(products))


def format_price(product: Product) -> str:
    """The price as the shop prints it: ``$1,234.56``, ``£1,234.56``, ``1.234,56 €``."""
    if product.price is None:
        return "Price on request"
    text = f"{product.price:,.2f}"
    if product.currency == "EUR":
        return text.replace(",", " ").replace(".", ",").replace(" ", ".") + " €"
    return {"USD": "$", "GBP": "£"}[product.currency] + text
