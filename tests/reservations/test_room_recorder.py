"""The waiting room's record in MongoDB (the room recorder) and the funnel salesStats reads
from it, with a controlled clock."""

from datetime import timedelta

from bson import ObjectId

from analytics.waiting_room import room_funnel
from models import RoomTicket
from reservations import ReservationEngine, TicketState
from reservations.keys import ProductKeys
from reservations.room_recorder import RoomRecorder
from reservations.values import to_datetime
from services import Services
from tests.reservations.conftest import Clock
from tests.reservations.test_waiting_room import room_product, step


async def test_tickets_are_recorded_once_with_each_step_and_counted_in_the_funnel(
    services: Services, engine: ReservationEngine, clock: Clock
) -> None:
    """Three join 10 s before the start of a 2-unit sale with 30 s turns: at the start two
    are admitted; one buys 4 s later, the other lets the turn lapse, which admits the third
    (44 s after the start, at the step after the deadline)."""
    database = services.mongo[services.settings.mongodb_db]
    recorder = RoomRecorder(services.redis, database, consumer="test")
    start = clock.now
    product = await room_product(
        database, clock, start_in_ms=10_000, total_stock=2, room_admission_seconds=30
    )
    ann, bob, cid = ObjectId(), ObjectId(), ObjectId()
    for customer in (ann, bob, cid):
        await engine.join_waiting_room(customer, product)
    await engine.join_waiting_room(ann, product)  # again: no second ticket
    clock.advance(10)  # the start
    assert (await step(engine, product)).admitted == 2
    states = {c: await engine.waiting_room_ticket(c, product) for c in (ann, bob, cid)}
    admitted = [c for c, t in states.items() if t is not None and t.state is TicketState.ADMITTED]
    buyer, idler = admitted
    clock.advance(4)
    hold = await engine.reserve(buyer, product, 1)
    await engine.checkout(hold.id, buyer)
    clock.advance(30)  # the idler's turn lapses; the last one is admitted 44 s in
    assert (await step(engine, product)).admitted == 1

    recorded = await recorder.run_once([product])
    assert recorded == 3 + 2 + 1 + 1 + 1  # joins, admissions, a reserve, a lapse, an admission
    assert await recorder.run_once([product]) == 0  # acknowledged and deleted
    assert await services.redis.xlen(ProductKeys(product).room_log) == 0
    tickets: dict[ObjectId, RoomTicket] = {
        t.customer_id: t
        for t in await RoomTicket.find_all(services.database, {"product_id": product})
    }
    assert set(tickets) == {ann, bob, cid}
    assert tickets[buyer].reservation_id == hold.id.hold_id
    assert tickets[buyer].reserved_at == to_datetime(start + 14_000)
    assert tickets[idler].lapsed_at == to_datetime(start + 44_000)
    assert tickets[idler].reserved_at is None

    funnel = await room_funnel(
        database, to_datetime(start) - timedelta(days=1), to_datetime(start) + timedelta(days=1)
    )
    assert (funnel.joined, funnel.admitted, funnel.reserved, funnel.bought, funnel.abandoned) == (
        3,
        3,
        1,
        1,
        1,
    )
    assert funnel.median_wait_seconds == 0.0  # waits 0, 0 (at the start) and 44 s
