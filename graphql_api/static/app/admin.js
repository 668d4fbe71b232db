// The admin dashboard: sales charts refreshed live, new products, restocking.
import { currentUser, mountAuth } from "./auth.js";
import { $, clearMessage, liveCounters, say } from "./page.js";
import { bars, columns } from "./charts.js";
import { Live, describe, el, formatMoney, formatTime, gql, randomKey, settled, useCurrency } from "./graphql.js";

const PRODUCT = "id name price totalStock available reserved sold waitingRoom { admissionSeconds oversubscription }";
const PAGE = 50;
const REFRESH_AFTER_MS = 1500; // gathers a burst of sales into one salesStats call

const state = { user: null, products: new Map(), cursor: null };
const rows = new Map(); // product id -> its row's live cells
const live = new Live();
let stopStock = () => {};
let refreshTimer = null;
let shownStats = null; // drawn again when the width changes: the charts fit their width

/** Amounts in the shop's currency, and the price field says which it is. */
function currency(shop) {
  useCurrency(shop.currency);
  $("p-price-currency").textContent = `(${shop.currency})`;
}

function failed(error) {
  say(describe(error), "error");
  if (error.code === "UNAUTHENTICATED") auth.signOut();
}

// -- sales ----------------------------------------------------------------------------

function range() {
  const days = Number($("days").value);
  const now = new Date();
  const tomorrow = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
  return { from: new Date(tomorrow - days * 86_400_000).toISOString(), to: new Date(tomorrow).toISOString() };
}

async function loadStats({ asked = false } = {}) {
  try {
    const data = await gql(
      `query Stats($from: DateTime!, $to: DateTime!) { shop { currency } salesStats(from: $from, to: $to, top: 5) {
        totals { revenue units orders averageOrderValue }
        topProducts { productId name revenue units }
        byDay { day revenue units orders }
        funnel { created active completed expired cancelled conversionRate } } }`,
      range(),
    );
    currency(data.shop);
    showStats(data.salesStats);
    if (asked) clearMessage();
    $("stats-updated").textContent = `updated ${formatTime(new Date().toISOString())}`;
  } catch (error) {
    failed(error);
  }
}

function showStats(stats) {
  shownStats = stats;
  const { totals, topProducts, byDay, funnel } = stats;
  const tiles = [
    ["Revenue", formatMoney(totals.revenue)],
    ["Orders", totals.orders],
    ["Units sold", totals.units],
    ["Average order", formatMoney(totals.averageOrderValue)],
    ["Holds that became orders", `${(funnel.conversionRate * 100).toFixed(1)}%`],
  ];
  $("totals").replaceChildren(
    ...tiles.map(([name, value]) => el("div", { class: "tile" }, el("dt", {}, name), el("dd", {}, String(value)))),
  );
  columns(
    $("chart-days"),
    "Revenue by day (UTC)",
    byDay.map((day) => ({ label: day.day.slice(5), value: Number(day.revenue), shown: `${formatMoney(day.revenue)} (${day.orders} ${day.orders === 1 ? "order" : "orders"})` })),
  );
  bars(
    $("chart-top"),
    "Top products by revenue",
    topProducts.map((p) => ({ label: p.name ?? "(deleted)", value: Number(p.revenue), shown: `${formatMoney(p.revenue)} · ${p.units} unit${p.units === 1 ? "" : "s"}` })),
  );
  bars(
    $("chart-funnel"),
    "Reservation funnel",
    [
      ["Holds made", funnel.created],
      ["Checked out", funnel.completed],
      ["Expired", funnel.expired],
      ["Cancelled", funnel.cancelled],
      ["Still held", funnel.active],
    ].map(([label, value]) => ({ label, value, shown: String(value) })),
  );
}

function refreshSoon() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    loadStats();
  }, REFRESH_AFTER_MS);
}

// -- products -------------------------------------------------------------------------

function row(product) {
  const inputId = `restock-${product.id}`;
  // data-label: on a phone each row is a card, and each cell says what it is.
  const cells = {
    price: el("td", { "data-label": "Price" }),
    total: el("td", { class: "total", "data-label": "Total" }),
    available: el("td", { class: "available", "data-label": "Available" }),
    reserved: el("td", { class: "reserved", "data-label": "Held" }),
    sold: el("td", { class: "sold", "data-label": "Sold" }),
  };
  const amount = el("input", { id: inputId, type: "number", min: "1", value: "5", required: true });
  const restock = el(
    "form",
    { class: "inline", onsubmit: (event) => (event.preventDefault(), restockProduct(product.id, amount)) },
    el("label", { for: inputId, class: "visually-hidden" }, `Units to add to ${product.name}`),
    amount,
    el("button", { type: "submit", class: "secondary" }, "Add"),
  );
  cells.node = el(
    "tr",
    { "data-id": product.id },
    el("th", { scope: "row" }, product.name),
    cells.price,
    cells.total,
    cells.available,
    cells.reserved,
    cells.sold,
    el("td", { class: "restock", "data-label": "Restock" }, restock),
  );
  rows.set(product.id, cells);
  return cells.node;
}

function paint(product) {
  const cells = rows.get(product.id);
  cells.price.textContent = formatMoney(product.price);
  cells.total.textContent = product.totalStock;
  cells.available.textContent = product.available;
  cells.reserved.textContent = product.reserved;
  cells.sold.textContent = product.sold;
}

function showProducts(products, { append = false, first = false } = {}) {
  const body = $("catalog-rows");
  if (!append) {
    body.replaceChildren();
    rows.clear();
    state.products.clear();
  }
  for (const product of products) {
    state.products.set(product.id, product);
    if (first) body.prepend(row(product));
    else body.append(row(product));
    paint(product);
  }
  watchStock();
}

function watchStock() {
  stopStock();
  stopStock = liveCounters(
    live,
    state.products,
    (product, moved) => {
      product.totalStock = product.available + product.reserved + product.sold;
      paint(product);
      if (moved) refreshSoon(); // a hold or a sale: the figures changed
    },
    failed,
  );
}

async function loadProducts(after = null) {
  const data = await gql(
    `query Catalog($after: String) { shop { currency } products(first: ${PAGE}, after: $after) { edges { node { ${PRODUCT} } } pageInfo { hasNextPage endCursor } } }`,
    { after },
  );
  currency(data.shop);
  showProducts(data.products.edges.map((edge) => edge.node), { append: after !== null });
  state.cursor = data.products.pageInfo.endCursor;
  $("more-products").hidden = !data.products.pageInfo.hasNextPage;
}

// One idempotency key per change the admin means: trying the same change again (after an
// error, or an answer that never came) sends the same key, so the server makes it once;
// any other change, or the same one after it succeeded, gets a new key.
const pendingKeys = new Map();

function keyFor(action, request) {
  const what = JSON.stringify(request);
  const pending = pendingKeys.get(action);
  if (pending && pending.what === what) return pending.key;
  const key = randomKey();
  pendingKeys.set(action, { what, key });
  return key;
}

async function restockProduct(id, amount) {
  if (!amount.reportValidity()) return;
  const q = Number(amount.value);
  const action = `restock:${id}`;
  try {
    const data = await gql(
      `mutation Restock($id: ID!, $q: Int!, $k: String) { restock(id: $id, quantity: $q, idempotencyKey: $k) { product { ${PRODUCT} } errors { code message field } } }`,
      { id, q, k: keyFor(action, q) },
    );
    const { product } = settled(data.restock);
    pendingKeys.delete(action);
    Object.assign(state.products.get(id), product);
    paint(state.products.get(id));
    say(`${product.name}: ${amount.value} more units, ${product.available} available now.`, "success");
  } catch (error) {
    failed(error);
  }
}

function optionalNumber(value) {
  return value === "" ? null : Number(value);
}

function optionalTime(value) {
  return value === "" ? null : new Date(value).toISOString(); // datetime-local is local time
}

async function createProduct(event) {
  event.preventDefault();
  const form = event.target;
  const values = Object.fromEntries(new FormData(form));
  const input = {
    name: values.name,
    description: values.description,
    price: values.price,
    totalStock: Number(values.totalStock),
    maxPerCustomer: optionalNumber(values.maxPerCustomer),
    holdSeconds: optionalNumber(values.holdSeconds),
    saleStartsAt: optionalTime(values.saleStartsAt),
    saleEndsAt: optionalTime(values.saleEndsAt),
    waitingRoom:
      values.waitingRoom === "on"
        ? {
            enabled: true,
            opensBeforeSeconds: Number(values.opensBeforeMinutes) * 60,
            admissionSeconds: Number(values.admissionSeconds),
            oversubscription: Number(values.oversubscription),
          }
        : null,
  };
  try {
    const data = await gql(
      `mutation Create($input: ProductInput!, $k: String) { createProduct(input: $input, idempotencyKey: $k) { product { ${PRODUCT} } errors { code message field } } }`,
      { input, k: keyFor("create", input) },
    );
    const { product } = settled(data.createProduct);
    pendingKeys.delete("create");
    showProducts([product], { append: true, first: true });
    const room = product.waitingRoom
      ? `, behind a waiting room (turns of ${product.waitingRoom.admissionSeconds} s, ${product.waitingRoom.oversubscription} admitted per unit free)`
      : "";
    say(`Created ${product.name} with ${product.totalStock} units${room}. It is in the store now.`, "success");
    form.reset();
  } catch (error) {
    failed(error);
  }
}

// -- signing in -----------------------------------------------------------------------

async function show(user) {
  state.user = user;
  const admin = user?.role === "ADMIN";
  $("admin").hidden = !admin;
  $("signed-out-hint").hidden = admin;
  stopStock();
  if (user && !admin) say("This account is not an admin: sign in with an admin account.", "error");
  if (!admin) return;
  live.restart();
  try {
    await Promise.all([loadProducts(), loadStats()]);
  } catch (error) {
    failed(error);
  }
}

const auth = mountAuth($("auth"), { onChange: show, say, allowRegister: false });
live.onRefused = () => auth.signOut();
$("create").addEventListener("submit", createProduct);
$("days").addEventListener("change", () => loadStats({ asked: true }));
$("more-products").addEventListener("click", () =>
  loadProducts(state.cursor)
    .then(clearMessage)
    .catch(failed),
);
let resizing = null;
let drawnWidth = document.documentElement.clientWidth;
window.addEventListener("resize", () => {
  cancelAnimationFrame(resizing);
  resizing = requestAnimationFrame(() => {
    const width = document.documentElement.clientWidth;
    if (width === drawnWidth || !shownStats) return; // a phone's bar sliding away is no reason
    drawnWidth = width;
    showStats(shownStats);
  });
});

currentUser()
  .then((user) => {
    auth.render(user);
    return show(user);
  })
  .catch(failed);
