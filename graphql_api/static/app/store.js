// The storefront: products with live stock, holds with a countdown, checkout, history.
import { currentUser, mountAuth } from "./auth.js";
import { $, clearMessage, liveCounters, say } from "./page.js";
import { RoomPanel } from "./room.js";
import {
  Live,
  describe,
  el,
  formatClock,
  formatDateTime,
  formatDuration,
  formatMoney,
  formatTime,
  gql,
  randomKey,
  settled,
  useCurrency,
} from "./graphql.js";

const PRODUCT = "id name description price available reserved sold maxPerCustomer holdSeconds saleStartsAt saleEndsAt waitingRoom { opensBeforeSeconds admissionSeconds }";
const HOLD = "id productId quantity status createdAt expiresAt endedAt product { name }";
const ORDER = "id reservationId productId quantity total createdAt product { name }";
const PAGE = 24;

const state = { user: null, products: new Map(), holds: new Map(), orders: [], cursor: null };
const live = new Live();
const cards = new Map(); // product id -> its card's live parts
let stopStock = () => {};
let stopHolds = () => {};
let connectedBefore = false;

/** Says what went wrong; `what` names what was refused ("Not reserved: Phone X"). */
function failed(error, what = null) {
  say(what ? `${what}. ${describe(error)}` : describe(error), "error");
  if (error.code === "UNAUTHENTICATED") auth.signOut();
}

// -- products -------------------------------------------------------------------------

function saleState(product, now = Date.now()) {
  if (product.saleStartsAt && now < Date.parse(product.saleStartsAt)) {
    const left = formatClock(Date.parse(product.saleStartsAt) - now);
    return { open: false, text: `Starts in ${left} (${formatDateTime(product.saleStartsAt)})`, soon: true };
  }
  if (product.saleEndsAt && now >= Date.parse(product.saleEndsAt)) {
    return { open: false, text: "Sale ended" };
  }
  if (product.available > 0) return { open: true, text: "On sale" };
  if (product.reserved > 0) return { open: false, text: "All held: some may come back" };
  return { open: false, text: "Sold out" };
}

function card(product) {
  const qtyId = `qty-${product.id}`;
  const parts = {
    available: el("strong", { class: "available" }),
    reserved: el("span", { class: "reserved" }),
    sold: el("span", { class: "sold" }),
    state: el("p", { class: "sale-state" }),
    quantity: el("input", { id: qtyId, type: "number", min: "1", max: String(product.maxPerCustomer), value: "1", inputmode: "numeric" }),
    button: el("button", { type: "submit", "aria-describedby": `limit-${product.id}` }, "Reserve"),
    limit: el("p", { class: "limit", id: `limit-${product.id}`, hidden: true }),
  };
  const form = el(
    "form",
    { class: "reserve", onsubmit: (event) => (event.preventDefault(), reserve(product.id, parts)) },
    el("label", { for: qtyId }, "Quantity"),
    parts.quantity,
    parts.button,
  );
  parts.node = el(
    "li",
    { class: "product", "data-id": product.id, "aria-label": product.name },
    el("h3", {}, product.name),
    el("p", { class: "description" }, product.description),
    el("p", { class: "price" }, formatMoney(product.price)),
    el("p", { class: "stock" }, parts.available, " left · ", parts.reserved, " held · ", parts.sold, " sold"),
    parts.state,
    form,
    parts.limit,
    el("p", { class: "hint" }, `Up to ${product.maxPerCustomer} per customer · held ${formatDuration(product.holdSeconds)}`),
  );
  if (product.waitingRoom) {
    parts.room = new RoomPanel(product, { live, failed, onChange: () => paint(state.products.get(product.id)) });
    form.before(parts.room.node);
    parts.room.follow(state.user);
  }
  cards.set(product.id, parts);
  return parts.node;
}

function paint(product) {
  const parts = cards.get(product.id);
  if (!parts) return;
  parts.available.textContent = product.available;
  parts.reserved.textContent = product.reserved;
  parts.sold.textContent = product.sold;
  const sale = saleState(product);
  parts.state.textContent = sale.text;
  parts.node.classList.toggle("closed", !sale.open);
  parts.node.classList.toggle("soon", sale.soon === true);
  const mine = state.user ? unitsMine(product) : 0;
  const allowed = product.maxPerCustomer - mine;
  const limited = state.user !== null && allowed <= 0;
  parts.limit.hidden = !limited;
  parts.limit.textContent = limited
    ? `You hold or bought ${mine} of the ${product.maxPerCustomer} one customer may have.`
    : "";
  parts.quantity.max = String(Math.max(1, allowed));
  parts.room?.paint();
  const waiting = parts.room !== undefined && !parts.room.admitted; // the room decides whose turn it is
  parts.button.disabled = !state.user || limited || !sale.open || waiting || parts.busy === true;
  parts.button.textContent = !state.user ? "Sign in to reserve" : limited ? "Limit reached" : waiting && sale.open ? "Wait for your turn" : "Reserve";
}

/** The units of `product` the server counts against the per-customer limit: held now or
 * bought (as far as this page knows; a refusal from the server says the rest). */
function unitsMine(product) {
  let units = 0;
  const counted = new Set();
  for (const hold of state.holds.values()) {
    if (hold.productId !== product.id || !["ACTIVE", "COMPLETED"].includes(hold.status)) continue;
    units += hold.quantity;
    counted.add(hold.id);
  }
  for (const order of state.orders) {
    if (order.productId === product.id && !counted.has(order.reservationId)) units += order.quantity;
  }
  return product.limitReached ? Math.max(units, product.maxPerCustomer) : units;
}

function showProducts(products, append) {
  const list = $("products");
  if (!append) {
    // A reload updates the cards in place: what the shopper typed or focused stays.
    const listed = new Set(products.map((product) => product.id));
    for (const [id, parts] of cards) {
      if (listed.has(id)) continue;
      parts.node.remove();
      cards.delete(id);
      state.products.delete(id);
    }
  }
  for (const product of products) {
    state.products.set(product.id, product);
    if (!cards.has(product.id)) list.append(card(product));
    paint(product);
  }
  list.setAttribute("aria-busy", "false");
  watchStock();
}

let watched = "";

function watchStock() {
  const ids = [...state.products.keys()].join();
  if (ids === watched) return; // a reload with the same products keeps its subscription
  watched = ids;
  stopStock();
  stopStock = liveCounters(live, state.products, paint, failed);
}

async function moreProducts() {
  try {
    const data = await gql(
      `query More($after: String) { products(first: ${PAGE}, after: $after) { edges { node { ${PRODUCT} } } pageInfo { hasNextPage endCursor } } }`,
      { after: state.cursor },
    );
    showPage(data.products, true);
    clearMessage();
  } catch (error) {
    failed(error);
  }
}

function showPage(connection, append) {
  showProducts(connection.edges.map((edge) => edge.node), append);
  state.cursor = connection.pageInfo.endCursor;
  $("more-products").hidden = !connection.pageInfo.hasNextPage;
}

// -- holds ----------------------------------------------------------------------------

async function reserve(productId, parts) {
  const product = state.products.get(productId);
  const quantity = Number(parts.quantity.value);
  if (!parts.quantity.reportValidity()) return;
  parts.busy = true;
  paint(product);
  try {
    const data = await gql(
      `mutation Reserve($p: ID!, $q: Int!, $k: String) { reserve(productId: $p, quantity: $q, idempotencyKey: $k) { reservation { ${HOLD} } errors { code message field available } } }`,
      { p: productId, q: quantity, k: randomKey() },
    );
    const { reservation } = settled(data.reserve);
    remember(reservation);
    say(`Held ${quantity} × ${product.name} until ${formatTime(reservation.expiresAt)}. Check out before the countdown ends.`, "success");
  } catch (error) {
    if (error.code === "LIMIT_PER_CUSTOMER") product.limitReached = true; // holds this page never saw
    failed(error, `Not reserved: ${product.name}`);
  } finally {
    parts.busy = false;
    paint(product);
  }
}

async function checkout(hold) {
  try {
    const data = await gql(
      `mutation Checkout($r: ID!) { checkout(reservationId: $r) { order { ${ORDER} } reservation { ${HOLD} } errors { code message } } }`,
      { r: hold.id },
    );
    const { order, reservation } = settled(data.checkout);
    remember(reservation);
    state.orders = [order, ...state.orders.filter((known) => known.id !== order.id)];
    showOrders();
    say(`Bought ${order.quantity} × ${order.product?.name ?? "product"} for ${formatMoney(order.total)}. Thank you!`, "success");
  } catch (error) {
    if (error.code === "RESERVATION_EXPIRED") remember({ ...hold, status: "EXPIRED" });
    failed(error, `Not bought: ${hold.product?.name ?? "product"}`);
  }
}

async function cancel(hold) {
  try {
    const data = await gql(
      `mutation Cancel($r: ID!) { cancelReservation(reservationId: $r) { reservation { ${HOLD} } errors { code message } } }`,
      { r: hold.id },
    );
    remember(settled(data.cancelReservation).reservation);
    say(`Cancelled: ${hold.quantity} × ${hold.product?.name ?? "product"} went back on sale.`, "info");
  } catch (error) {
    failed(error, `Not cancelled: ${hold.product?.name ?? "product"}`);
  }
}

function remember(hold) {
  const known = state.holds.get(hold.id);
  state.holds.set(hold.id, { ...known, ...hold });
  const product = state.products.get(hold.productId);
  if (product && ["CANCELLED", "EXPIRED"].includes(hold.status)) product.limitReached = false; // room again
  showHolds();
  if (product) paint(product);
}

function onHoldEvent({ myReservationEvents: event }) {
  const known = state.holds.get(event.reservationId);
  const name = known?.product?.name ?? state.products.get(event.productId)?.name ?? "a product";
  if (known?.status === "ACTIVE" && event.status === "EXPIRED") {
    say(`Your hold on ${name} expired: its stock went back on sale.`, "warning");
  }
  remember({
    id: event.reservationId,
    productId: event.productId,
    quantity: event.quantity,
    status: event.status,
    expiresAt: event.expiresAt,
    createdAt: known?.createdAt ?? event.at,
    endedAt: event.status === "ACTIVE" ? null : event.at,
    product: { name },
  });
}

function countdown(hold) {
  return formatClock(Date.parse(hold.expiresAt) - Date.now());
}

function activeHolds() {
  return [...state.holds.values()]
    .filter((hold) => hold.status === "ACTIVE")
    .sort((a, b) => Date.parse(a.expiresAt) - Date.parse(b.expiresAt));
}

// The hold that ends first, with its countdown and Check out, pinned in the sticky dock:
// the list of holds is above the products, out of sight once the shopper scrolls.
let barHold = null;

function showHoldBar(active) {
  const bar = $("hold-bar");
  const [next] = active;
  bar.hidden = !next;
  if (!next) {
    barHold = null;
    bar.replaceChildren();
    return;
  }
  if (barHold !== next.id || bar.dataset.count !== String(active.length)) {
    barHold = next.id;
    bar.dataset.count = String(active.length);
    bar.dataset.id = next.id;
    const more = active.length - 1;
    bar.replaceChildren(
      el("span", { class: "what" }, `${next.quantity} × ${next.product?.name ?? "product"}`),
      el(
        "span",
        { class: "deadline" },
        el("span", { class: "countdown", role: "timer", "aria-label": "time left" }, countdown(next)),
        " left",
      ),
      el("button", { type: "button", onclick: () => checkout(next) }, "Check out"),
      ...(more ? [el("a", { href: "#holds-title" }, `+${more} more hold${more === 1 ? "" : "s"}`)] : []),
    );
  }
  bar.querySelector(".countdown").textContent = countdown(next);
}

function showHolds() {
  const active = activeHolds();
  $("holds").replaceChildren(
    ...active.map((hold) =>
      el(
        "li",
        { class: "hold", "data-id": hold.id },
        el("span", { class: "what" }, `${hold.quantity} × ${hold.product?.name ?? "product"}`),
        el(
          "span",
          { class: "deadline" },
          "until ",
          el("time", { class: "expires-at", datetime: hold.expiresAt }, formatTime(hold.expiresAt)),
          " · ",
          el("span", { class: "countdown", role: "timer", "aria-label": "time left" }, countdown(hold)),
          " left",
        ),
        el("button", { type: "button", onclick: () => checkout(hold) }, "Check out"),
        el("button", { type: "button", class: "secondary", onclick: () => cancel(hold) }, "Cancel"),
      ),
    ),
  );
  $("no-holds").hidden = active.length > 0;
  showHoldBar(active);
  showReservations();
}

function tick() {
  for (const node of document.querySelectorAll("#holds .hold")) {
    const hold = state.holds.get(node.dataset.id);
    if (!hold) continue;
    node.querySelector(".countdown").textContent = countdown(hold);
    // The server's event ends the hold; if none came (connection lost), ask once.
    if (Date.parse(hold.expiresAt) < Date.now() - 3000 && !hold.asked) {
      hold.asked = true;
      gql(`query Hold($id: ID!) { reservation(id: $id) { ${HOLD} } }`, { id: hold.id })
        .then((data) => data.reservation && remember(data.reservation))
        .catch(() => {});
    }
  }
  if (barHold) showHoldBar(activeHolds());
  for (const product of state.products.values()) paint(product);
}

// -- history --------------------------------------------------------------------------

function cells(...values) {
  return el("tr", {}, ...values.map((value) => el("td", {}, value)));
}

function showOrders() {
  $("orders").replaceChildren(
    ...state.orders.map((order) =>
      cells(order.product?.name ?? "(deleted)", String(order.quantity), formatMoney(order.total), formatDateTime(order.createdAt)),
    ),
  );
}

function showReservations() {
  const all = [...state.holds.values()].sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt));
  $("reservations").replaceChildren(
    ...all.slice(0, 20).map((hold) =>
      cells(hold.product?.name ?? "(deleted)", String(hold.quantity), hold.status.toLowerCase(), formatDateTime(hold.createdAt)),
    ),
  );
}

// -- loading --------------------------------------------------------------------------

async function load() {
  const signedIn = Boolean(state.user);
  const data = await gql(
    `query Store($signedIn: Boolean!) {
      shop { currency }
      products(first: ${PAGE}) { edges { node { ${PRODUCT} } } pageInfo { hasNextPage endCursor } }
      active: myReservations(status: ACTIVE, first: 20) @include(if: $signedIn) { ${HOLD} }
      recent: myReservations(first: 20) @include(if: $signedIn) { ${HOLD} }
      myOrders(first: 20) @include(if: $signedIn) { ${ORDER} }
    }`,
    { signedIn },
  );
  useCurrency(data.shop.currency);
  showPage(data.products, false);
  state.holds.clear();
  for (const hold of [...(data.recent ?? []), ...(data.active ?? [])]) state.holds.set(hold.id, hold);
  state.orders = data.myOrders ?? [];
  $("holds-section").hidden = !signedIn;
  $("history-section").hidden = !signedIn;
  showHolds();
  showOrders();
}

/** A product an admin just created joins the list on every open storefront. */
function onProductCreated({ productCreated: product }) {
  if (!state.products.has(product.id)) showProducts([product], true);
}

function watchHolds() {
  stopHolds();
  stopHolds = () => {};
  if (!state.user) return;
  stopHolds = live.subscribe(
    "subscription Holds { myReservationEvents { reservationId productId status quantity expiresAt at } }",
    {},
    onHoldEvent,
    failed,
  );
}

async function signedInAs(user) {
  state.user = user;
  connectedBefore = false; // this reconnection is ours, not a lost connection
  for (const parts of cards.values()) parts.room?.follow(user); // this shopper's tickets
  live.restart(); // the token goes in connection_init
  watchHolds();
  try {
    await load();
  } catch (error) {
    failed(error);
  }
}

const auth = mountAuth($("auth"), { onChange: signedInAs, say });

live.onConnected = () => {
  $("live-status").textContent = "Live: stock updates as it changes.";
  $("live-status").dataset.kind = "live";
  if (connectedBefore) load().catch(failed); // events may have been missed meanwhile
  connectedBefore = true;
};
live.onDisconnected = () => {
  $("live-status").textContent = "Live updates lost; reconnecting…";
  $("live-status").dataset.kind = "down";
};
live.onRefused = () => auth.signOut();
$("more-products").addEventListener("click", moreProducts);

async function start() {
  try {
    state.user = await currentUser();
    auth.render(state.user);
    live.subscribe(`subscription Created { productCreated { ${PRODUCT} } }`, {}, onProductCreated, failed);
    watchHolds();
    await load();
  } catch (error) {
    failed(error);
  }
  setInterval(tick, 250);
}

start();
