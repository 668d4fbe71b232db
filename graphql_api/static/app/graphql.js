// The pages' one way to the API: queries and mutations over fetch, subscriptions over one
// graphql-transport-ws connection. Nothing here knows about products or holds.

const TOKEN_KEY = "flashsale.token";

export const session = {
  get token() {
    return localStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) localStorage.setItem(TOKEN_KEY, value);
    else localStorage.removeItem(TOKEN_KEY);
  },
};

/** A refusal, from the transport, a GraphQL error or a payload's `errors` (a Problem). */
export class ApiError extends Error {
  constructor(code, message, details = {}) {
    super(message);
    this.code = code;
    this.details = details;
  }
}

/** Runs one operation; returns `data`, or throws an ApiError for the first error. */
export async function gql(query, variables = {}) {
  const headers = {
    "content-type": "application/json",
    accept: "application/graphql-response+json, application/json",
  };
  if (session.token) headers.authorization = `Bearer ${session.token}`;
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers,
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError("NETWORK", "The server cannot be reached. Try again in a moment.");
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`HTTP_${response.status}`, `The server answered ${response.status}.`);
  }
  if (body.errors?.length) {
    const [first] = body.errors;
    const extensions = first.extensions ?? {};
    throw new ApiError(extensions.code ?? "ERROR", first.message, extensions);
  }
  return body.data;
}

/** The payload of a mutation, or its first Problem thrown as an ApiError. */
export function settled(payload) {
  const [problem] = payload.errors ?? [];
  if (problem) throw new ApiError(problem.code, problem.message, problem);
  return payload;
}

/** A sentence a shopper or an admin can act on, for any ApiError. */
export function describe(error) {
  const d = error.details ?? {};
  switch (error.code) {
    case "OUT_OF_STOCK":
      return d.available ? `Only ${d.available} left: ask for fewer.` : "Sold out: nothing is left to hold.";
    case "LIMIT_PER_CUSTOMER":
      return "You already hold or bought as many of this product as one customer may.";
    case "RATE_LIMITED":
      return `Too many tries at once. Wait ${d.retryAfter ?? "a few"} s, then try again.`;
    case "RESERVATION_EXPIRED":
      return "This hold has expired and its stock went back on sale. Reserve again if any is left.";
    case "RESERVATION_NOT_ACTIVE":
      return "This hold has already ended.";
    case "SALE_NOT_ACTIVE":
      return "This product is not on sale right now.";
    case "CHECKOUT_IN_PROGRESS":
      return "A checkout of this hold is already under way.";
    case "SERVICE_UNAVAILABLE":
      return "The shop cannot take this right now. Nothing was changed; try again shortly.";
    case "INVALID_CREDENTIALS":
      return "That e-mail and password do not match an account.";
    case "EMAIL_TAKEN":
      return "An account with that e-mail already exists: sign in instead.";
    case "UNAUTHENTICATED":
      return "Please sign in first.";
    case "FORBIDDEN":
      return "This needs an admin account.";
    default:
      return error.message;
  }
}

/** Subscriptions over one WebSocket, reconnecting with backoff and resubscribing. */
export class Live {
  constructor() {
    this.subscriptions = new Map();
    this.nextId = 1;
    this.socket = null;
    this.ready = false;
    this.backoffMs = 500;
    this.onConnected = () => {};
    this.onDisconnected = () => {};
    this.onRefused = () => {};
  }

  /** Starts a subscription; returns a function that stops it. */
  subscribe(query, variables, onData, onError = () => {}) {
    const id = String(this.nextId++);
    this.subscriptions.set(id, { query, variables, onData, onError });
    if (this.ready) this.#start(id);
    else this.#connect();
    return () => {
      if (this.subscriptions.delete(id) && this.ready) {
        this.socket.send(JSON.stringify({ id, type: "complete" }));
      }
    };
  }

  /** Reconnects, e.g. after signing in or out: the token goes in connection_init. */
  restart() {
    const old = this.socket;
    this.socket = null;
    this.ready = false;
    if (old) old.close(1000, "restart");
    if (this.subscriptions.size) this.#connect();
  }

  #start(id) {
    const { query, variables } = this.subscriptions.get(id);
    this.socket.send(JSON.stringify({ id, type: "subscribe", payload: { query, variables } }));
  }

  #connect() {
    if (this.socket) return;
    const url = new URL("/graphql", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(url, "graphql-transport-ws");
    this.socket = socket;
    socket.onopen = () => {
      const payload = session.token ? { Authorization: `Bearer ${session.token}` } : {};
      socket.send(JSON.stringify({ type: "connection_init", payload }));
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      const subscription = this.subscriptions.get(message.id);
      switch (message.type) {
        case "connection_ack":
          this.ready = true;
          this.backoffMs = 500;
          for (const id of this.subscriptions.keys()) this.#start(id);
          this.onConnected();
          break;
        case "next":
          if (!subscription) break;
          if (message.payload.errors?.length) {
            const [first] = message.payload.errors;
            subscription.onError(new ApiError(first.extensions?.code ?? "ERROR", first.message));
          } else {
            subscription.onData(message.payload.data);
          }
          break;
        case "error":
          this.subscriptions.delete(message.id);
          subscription?.onError(
            new ApiError(message.payload?.[0]?.extensions?.code ?? "ERROR", message.payload?.[0]?.message),
          );
          break;
        case "complete":
          this.subscriptions.delete(message.id);
          break;
        case "ping":
          socket.send(JSON.stringify({ type: "pong" }));
          break;
        default:
          break;
      }
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return; // replaced by restart()
      this.socket = null;
      this.ready = false;
      this.onDisconnected();
      if (event.code === 4403) this.onRefused(); // the token was refused
      if (this.subscriptions.size) {
        setTimeout(() => this.#connect(), this.backoffMs);
        this.backoffMs = Math.min(this.backoffMs * 2, 10_000);
      }
    };
  }
}

/** A random idempotency key (works on plain-HTTP origins too, unlike randomUUID). */
export function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Creates an element: el("button", {type: "button", class: "x"}, "text", child...). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

export function formatTime(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function formatDateTime(iso) {
  return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

/** A length of time as it is: "5 s", "1 min 30 s", "10 min", "2 h". */
export function formatDuration(seconds) {
  const whole = Math.max(0, Math.round(seconds));
  const parts = [];
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  if (hours) parts.push(`${hours} h`);
  if (minutes) parts.push(`${minutes} min`);
  if (whole % 60 || !parts.length) parts.push(`${whole % 60} s`);
  return parts.join(" ");
}

/** Time left on a clock face: "4:05", "1:02:03"; past a day, "2 d 3 h". */
export function formatClock(milliseconds) {
  const seconds = Math.max(0, Math.ceil(milliseconds / 1000));
  const days = Math.floor(seconds / 86_400);
  const hours = Math.floor((seconds % 86_400) / 3600);
  if (days) return `${days} d ${hours} h`;
  const minutes = Math.floor((seconds % 3600) / 60);
  const secs = String(seconds % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}

let money = null;

/** Amounts are shown in this ISO 4217 currency from now on (the API's `shop { currency }`). */
export function useCurrency(code) {
  try {
    money = new Intl.NumberFormat(undefined, { style: "currency", currency: code });
  } catch {
    money = null; // an unknown code: amounts stay plain decimals rather than wrong
  }
}

/** A Money amount (a decimal string) with its currency, e.g. "$799.00". Intl formats the
 * string itself, as an exact decimal: no float on the way. */
export function formatMoney(amount) {
  return money ? money.format(amount) : amount;
}
