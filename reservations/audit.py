"""Checks the invariants of docs/invariants.md for products, in Redis and MongoDB, and that
the daily sales rollups agree with the records. Used by the tests, the benchmark and
operators. Run it at rest (after the persister has drained the logs: its backlog is 0)."""

from collections.abc import Iterable
from dataclasses import dataclass, field

from bson import ObjectId

from analytics import rollups
from models import Order, Product, Reservation, ReservationStatus
from reservations.service import ReservationEngine


@dataclass
class AuditReport:
    products: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def audit(engine: ReservationEngine, product_ids: Iterable[ObjectId]) -> AuditReport:
    report = AuditReport()
    database = engine.database
    products, orders = Product.collection(database), Order.collection(database)
    reservations = Reservation.collection(database)
    for product_id in product_ids:
        report.products += 1
        live = (await engine.store.counters([product_id])).get(product_id)
        product = await products.find_one({"_id": product_id})
        if product is None or live is None:
            report.problems.append(f"{product_id}: missing (mongo={product is not None})")
            continue
        total, sold, reserved = live.total, live.sold, live.reserved
        where = f"product {product_id}"
        if sold + reserved > total:
            report.problems.append(f"{where}: OVERSOLD sold {sold} + reserved {reserved} > {total}")
        if min(sold, reserved) < 0:
            report.problems.append(f"{where}: negative counter sold {sold} reserved {reserved}")
        holds = await engine.store.product_holds(product_id)
        held = sum(h.quantity for h in holds if h.status is ReservationStatus.ACTIVE)
        if held != reserved:
            report.problems.append(f"{where}: reserved {reserved} != active holds in Redis {held}")
        if product["sold"] != sold or product["total_stock"] != total:
            report.problems.append(
                f"{where}: Redis total/sold {total}/{sold} != MongoDB "
                f"{product['total_stock']}/{product['sold']}"
            )
        ordered = 0
        counted = await engine.store.sold_record(product_id)
        if sum(counted.values()) != sold:
            report.problems.append(
                f"{where}: Redis sold {sold} != its sold record {sum(counted.values())}"
            )
        order_holds = set()
        async for order in orders.find({"product_id": product_id}):
            ordered += order["quantity"]
            order_holds.add(str(order["reservation_id"]))
            reservation = await reservations.find_one({"_id": order["reservation_id"]})
            if reservation is None or reservation["status"] != ReservationStatus.COMPLETED.value:
                report.problems.append(f"{where}: order {order['_id']} without a COMPLETED hold")
        if order_holds != set(counted):
            report.problems.append(
                f"{where}: Redis counted {len(counted)} sales, MongoDB has {len(order_holds)} "
                f"orders ({len(order_holds ^ set(counted))} differ)"
            )
        if ordered != product["sold"]:
            report.problems.append(
                f"{where}: orders add up to {ordered}, sold is {product['sold']}"
            )
        active = 0
        async for document in reservations.find(
            {"product_id": product_id, "status": ReservationStatus.ACTIVE.value}
        ):
            active += document["quantity"]
        if active != reserved:
            report.problems.append(
                f"{where}: ACTIVE reservations in MongoDB {active} != reserved in Redis {reserved}"
            )
    report.problems += await rollups.check(database)  # all products: the funnel is per day
    return report
