"""The waiting room against real Redis and MongoDB-protocol servers, with a controlled clock
and, where the order matters, a seeded draw."""

import contextlib
import math
import random
from collections.abc import Callable
from typing import Any

import pytest
from bson import ObjectId

from models import Database, ReservationStatus, WaitingRoomRule
from reservations import ReservationEngine, TicketState
from reservations.errors import NotAdmitted, OutOfStock, ReservationError, WaitingRoomClosed
from reservations.keys import ProductKeys
from reservations.values import text, to_datetime
from reservations.waiting_room import AdmitStep
from services import Services
from tests.reservations.conftest import Clock, make_product

START_IN_MS = 60_000


def room(**fields: Any) -> dict[str, Any]:
    rule = {"enabled": True, "opens_before_seconds": 600, "admission_seconds": 90}
    rule.update(fields)
    return WaitingRoomRule(**rule).model_dump()


async def room_product(
    database: Database, clock: Clock, *, start_in_ms: int = START_IN_MS, **fields: Any
) -> ObjectId:
    """A product whose sale starts `start_in_ms` from now, with a waiting room (`room`
    fields given as room_*)."""
    rule = {k.removeprefix("room_"): v for k, v in fields.items() if k.startswith("room_")}
    product = {k: v for k, v in fields.items() if not k.startswith("room_")}
    return await make_product(
        database,
        sale_starts_at=to_datetime(clock.now + start_in_ms),
        waiting_room=room(**rule),
        **product,
    )


def seeded(services: Services, clock: Clock, draw: Callable[[], float]) -> ReservationEngine:
    return ReservationEngine(
        services.redis,
        services.mongo[services.settings.mongodb_db],
        default_hold_seconds=60,
        clock=clock,
        draw=draw,
    )


async def queue(services: Services, product: ObjectId) -> list[ObjectId]:
    return [
        ObjectId(text(raw))
        for raw in await services.redis.zrange(ProductKeys(product).room_queue, 0, -1)
    ]


async def step(engine: ReservationEngine, product: ObjectId) -> AdmitStep:
    (done,) = await engine.room.steps([product])
    return done


# -- joining ----------------------------------------------------------------------------


async def test_joining_twice_keeps_one_ticket_and_its_place(
    services: Services, engine: ReservationEngine, clock: Clock
) -> None:
    product = await room_product(services.database, clock)
    ann, bob = ObjectId(), ObjectId()
    first = await engine.join_waiting_room(ann, product)
    score = await services.redis.zscore(ProductKeys(product).room_queue, str(ann))
    await engine.join_waiting_room(bob, product)
    clock.advance(1)
    again = await engine.join_waiting_room(ann, product)

    assert first.state is again.state is TicketState.WAITING
    assert again.joined_at == first.joined_at
    assert first.position is None  # places are drawn at the start
    assert first.draws_at == to_datetime(clock.now - 1000 + START_IN_MS)
    assert await services.redis.zscore(ProductKeys(product).room_queue, str(ann)) == score
    assert await services.redis.hlen(ProductKeys(product).room_tickets) == 2
    assert again.waiting == 2


async def test_joining_is_refused_without_a_room_or_before_it_opens(
    services: Services, engine: ReservationEngine, clock: Clock
) -> None:
    plain = await make_product(services.database)
    with pytest.raises(WaitingRoomClosed, match="no waiting room"):
        await engine.join_waiting_room(ObjectId(), plain)
    later = await room_product(
        services.database, clock, start_in_ms=3_600_000, room_opens_before_seconds=600
    )
    with pytest.raises(WaitingRoomClosed, match="opens at"):
        await engine.join_waiting_room(ObjectId(), later)
    for product in (plain, later):
        assert await services.redis.exists(ProductKeys(product).room_tickets) == 0
    clock.advance(3000)  # 50 minutes: the room of `later` is open now
    assert (await engine.join_waiting_room(ObjectId(), later)).state is TicketState.WAITING


async def test_places_follow_the_draw_for_early_joiners_then_arrival(
    services: Services, clock: Clock
) -> None:
    draws = random.Random(11)
    expected = random.Random(11)
    engine = seeded(services, clock, draws.random)
    product = await room_product(services.database, clock, total_stock=0)
    early = [ObjectId() for _ in range(20)]
    for customer in early:
        await engine.join_waiting_room(customer, product)
    clock.advance(START_IN_MS / 1000)
    late = [ObjectId() for _ in range(5)]
    for customer in late:
        await engine.join_waiting_room(customer, product)

    by_draw = sorted(early, key=lambda _: expected.random())
    order = await queue(services, product)
    assert order == by_draw + late
    assert (await step(engine, product)).kind == "SOLD_OUT"  # nothing to sell: no admission
    places = [await engine.waiting_room_ticket(c, product) for c in order]
    assert [t.state for t in places if t] == [TicketState.SOLD_OUT] * 25


# -- admission ---------------------------------------------------------------------------


async def test_reserve_needs_an_admission_of_ones_own_and_uses_it_up(
    services: Services, engine: ReservationEngine, clock: Clock
) -> None:
    product = await room_product(
        services.database, clock, start_in_ms=0, total_stock=2, max_per_customer=2
    )
    shoppers = [ObjectId() for _ in range(5)]
    for customer in shoppers:
        await engine.join_waiting_room(customer, product)
    with pytest.raises(NotAdmitted) as refused:
        await engine.reserve(shoppers[3], product, 1)
    assert refused.value.position == 4

    done = await step(engine, product)
    assert (done.kind, done.admitted, done.unused) == ("OK", 2, 2)
    first, second, third = shoppers[:3]
    ticket = await engine.waiting_room_ticket(first, product)
    assert ticket is not None
    assert ticket.state is TicketState.ADMITTED
    assert ticket.admission_expires_at == to_datetime(clock.now + 90_000)
    assert (await engine.waiting_room_ticket(third, product)).position == 1  # type: ignore[union-attr]

    with pytest.raises(NotAdmitted):  # an admission is its customer's alone
        await engine.reserve(third, product, 1)
    hold = await engine.reserve(first, product, 1)
    assert hold.status is ReservationStatus.ACTIVE
    used = await engine.waiting_room_ticket(first, product)
    assert used is not None
    assert used.state is TicketState.RESERVED
    with pytest.raises(NotAdmitted):  # used up
        await engine.reserve(first, product, 1)
    assert (await engine.counters([product]))[product].reserved == 1
    assert await services.redis.zcard(ProductKeys(product).room_admitted) == 1


async def test_a_refused_reserve_keeps_the_admission(
    engine: ReservationEngine, clock: Clock
) -> None:
    product = await room_product(
        engine.database, clock, start_in_ms=0, total_stock=1, max_per_customer=5
    )
    ann = ObjectId()
    await engine.join_waiting_room(ann, product)
    await step(engine, product)
    with pytest.raises(OutOfStock):
        await engine.reserve(ann, product, 2)
    assert (await engine.waiting_room_ticket(ann, product)).state is TicketState.ADMITTED  # type: ignore[union-attr]
    await engine.reserve(ann, product, 1)


async def test_a_lapsed_admission_ends_and_rejoining_goes_to_the_back(
    services: Services, engine: ReservationEngine, clock: Clock
) -> None:
    product = await room_product(
        services.database, clock, start_in_ms=0, total_stock=1, room_admission_seconds=30
    )
    ann, bob, cid = ObjectId(), ObjectId(), ObjectId()
    for customer in (ann, bob, cid):
        await engine.join_waiting_room(customer, product)
    assert (await step(engine, product)).admitted == 1
    clock.advance(30)
    lapsed = await engine.waiting_room_ticket(ann, product)
    assert lapsed is not None
    assert lapsed.state is TicketState.EXPIRED
    with pytest.raises(NotAdmitted):
        await engine.reserve(ann, product, 1)

    done = await step(engine, product)
    assert (done.lapsed, done.admitted) == (1, 1)  # bob's turn
    rejoined = await engine.join_waiting_room(ann, product)
    assert rejoined.state is TicketState.WAITING
    assert await queue(services, product) == [cid, ann]


async def test_sold_out_for_good_is_told_to_everyone_waiting(
    engine: ReservationEngine, clock: Clock
) -> None:
    product = await room_product(engine.database, clock, start_in_ms=0, total_stock=1)
    ann, bob = ObjectId(), ObjectId()
    for customer in (ann, bob):
        await engine.join_waiting_room(customer, product)
    await step(engine, product)
    hold = await engine.reserve(ann, product, 1)
    assert (await step(engine, product)).kind == "OK"  # a hold can still come back
    assert (await engine.waiting_room_ticket(bob, product)).state is TicketState.WAITING  # type: ignore[union-attr]
    await engine.checkout(hold.id, ann)
    assert (await step(engine, product)).kind == "SOLD_OUT"
    assert (await engine.waiting_room_ticket(bob, product)).state is TicketState.SOLD_OUT  # type: ignore[union-attr]


async def test_admissions_never_outnumber_available_times_oversubscription(
    engine: ReservationEngine, clock: Clock
) -> None:
    """A seeded random walk of joins, admission steps, reserves, cancels, checkouts, holds
    expiring and admissions lapsing; after every admission step that admitted anyone, those
    admitted and not yet reserved are at most floor(available x 1.5), and every step admits
    as many as the rule allows (or everyone waiting)."""
    product = await room_product(
        engine.database,
        clock,
        start_in_ms=0,
        total_stock=20,
        max_per_customer=2,
        hold_seconds=20,
        room_admission_seconds=10,
        room_oversubscription_percent=150,
    )
    rng = random.Random(5)
    waiting: list[ObjectId] = []
    admitted: set[ObjectId] = set()
    holds = []
    steps = 0
    for _ in range(400):
        action = rng.random()
        if action < 0.3:
            customer = ObjectId()
            await engine.join_waiting_room(customer, product)
            waiting.append(customer)
        elif action < 0.6 and admitted:
            customer = rng.choice(sorted(admitted))
            admitted.discard(customer)
            try:
                holds.append(
                    (await engine.reserve(customer, product, rng.choice([1, 2])), customer)
                )
            except (NotAdmitted, OutOfStock):
                pass
        elif action < 0.7 and holds:
            hold, customer = holds.pop(rng.randrange(len(holds)))
            with contextlib.suppress(ReservationError):  # it may have expired
                if rng.random() < 0.5:
                    await engine.checkout(hold.id, customer)
                else:
                    await engine.cancel(hold.id, customer)
        elif action < 0.8:
            clock.advance(rng.choice([1, 5, 11]))
            await engine.expire_due([product])
        else:
            before = set(await queue_members(engine, product))
            done = await step(engine, product)
            steps += 1
            counters = (await engine.counters([product]))[product]
            allowed = counters.available * 3 // 2
            if done.admitted:
                assert done.unused <= allowed, (done, counters)
            if done.kind == "OK" and await queue_members(engine, product):
                assert done.unused >= allowed, (done, counters)  # filled up to the rule
            admitted |= {ObjectId(c) for c in before - set(await queue_members(engine, product))}
    assert steps > 50


async def queue_members(engine: ReservationEngine, product: ObjectId) -> list[str]:
    return [text(raw) for raw in await engine.redis.zrange(ProductKeys(product).room_queue, 0, -1)]


# -- uniformity of the draw --------------------------------------------------------------


def chi_square_sf(statistic: float, df: int) -> float:
    """P(X >= statistic) for X chi-square with `df` degrees of freedom: the regularized upper
    incomplete gamma function Q(df/2, statistic/2), by its series below the mean and its
    continued fraction above (Numerical Recipes' gser and gcf; exact to ~1e-14 here)."""
    a, x = df / 2, statistic / 2
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1 / a
        n = 1
        while term > 1e-17 * total:
            term *= x / (a + n)
            total += term
            n += 1
        return 1 - math.exp(log_front) * total
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        h *= d * c
        if abs(d * c - 1) < 1e-16:
            break
    return math.exp(log_front) * h


def place_table(orders: list[list[int]], size: int) -> float:
    """The chi-square statistic of place against join order: `orders` gives, per run, the
    join indexes in place order; under uniformity each (join index, place) cell expects
    runs / size."""
    counts = [[0] * size for _ in range(size)]
    for order in orders:
        for place, joined in enumerate(order):
            counts[joined][place] += 1
    expected = len(orders) / size
    return sum((c - expected) ** 2 / expected for row in counts for c in row)


ALPHA = 1e-4  # the test's false-alarm rate, were the seeds drawn afresh each run
SIZE, RUNS = 8, 400  # 50 expected per cell, 49 degrees of freedom


def test_the_chi_square_helper_agrees_with_known_quantiles() -> None:
    assert chi_square_sf(49, 49) == pytest.approx(0.4731, abs=1e-4)
    assert chi_square_sf(2, 2) == pytest.approx(math.exp(-1))  # df 2: exp(-x / 2)
    assert chi_square_sf(60, 2) == pytest.approx(math.exp(-30))
    assert chi_square_sf(94.5967, 49) == pytest.approx(1e-4, rel=1e-3)
    assert chi_square_sf(137.0747, 81) == pytest.approx(1e-4, rel=1e-3)


async def test_places_drawn_before_the_start_are_uniform_across_seeds(
    services: Services, clock: Clock
) -> None:
    """400 rooms of 8 early joiners, each with its own seed (fixed, so the outcome is
    fixed; were the seeds fresh, it would fail one run in 1 / ALPHA = 10,000): place is
    independent of join order (chi-square, 49 df). The same statistic rejects arrival order
    and an order that merely favours the last to join."""
    orders = []
    for seed in range(RUNS):
        engine = seeded(services, clock, random.Random(seed).random)
        product = await room_product(services.database, clock, total_stock=0)
        joined = [ObjectId() for _ in range(SIZE)]
        for customer in joined:
            await engine.join_waiting_room(customer, product)
        index = {customer: n for n, customer in enumerate(joined)}
        orders.append([index[c] for c in await queue(services, product)])

    assert all(sorted(order) == list(range(SIZE)) for order in orders)  # permutations
    assert chi_square_sf(place_table(orders, SIZE), (SIZE - 1) ** 2) > ALPHA
    arrival = [list(range(SIZE))] * RUNS
    assert chi_square_sf(place_table(arrival, SIZE), (SIZE - 1) ** 2) < ALPHA
    rng = random.Random(1)
    last_first_often = [
        [SIZE - 1, *range(SIZE - 1)] if rng.random() < 0.2 else order for order in orders
    ]
    assert chi_square_sf(place_table(last_first_often, SIZE), (SIZE - 1) ** 2) < ALPHA
