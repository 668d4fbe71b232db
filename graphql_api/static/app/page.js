// What both pages do with their own markup: find an element, show a message.

export const $ = (id) => document.getElementById(id);

/** Shows one message in #messages (announced: role="status"); kind styles it. The message
 * stays in view (the dock is sticky) until the next one, a dismissal, or `clearMessage`. */
export function say(text, kind = "info") {
  const box = $("messages");
  box.textContent = text ?? "";
  box.dataset.kind = kind;
  $("dismiss-message").hidden = !text;
}

/** The next action succeeded: whatever the last one said (an error most of all) is stale. */
export function clearMessage() {
  say("");
}

$("dismiss-message").addEventListener("click", clearMessage);

const STOCK_CHANGED =
  "subscription Stock($ids: [ID!]!) { stockChanged(productIds: $ids) { productId available reserved sold } }";

/**
 * Keeps the counters of `products` (id -> product) live over `live`; after each change,
 * `changed(product, moved)` runs (moved: its holds or sales changed, not only its stock).
 * Returns the function that stops it.
 */
export function liveCounters(live, products, changed, onError) {
  const ids = [...products.keys()];
  if (!ids.length) return () => {};
  return live.subscribe(
    STOCK_CHANGED,
    { ids },
    ({ stockChanged: change }) => {
      const product = products.get(change.productId);
      if (!product) return;
      const moved = product.sold !== change.sold || product.reserved !== change.reserved;
      Object.assign(product, { available: change.available, reserved: change.reserved, sold: change.sold });
      changed(product, moved);
    },
    onError,
  );
}
