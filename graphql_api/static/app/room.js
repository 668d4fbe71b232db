// A product's waiting room on its card: join, your place and the estimate, then your turn.
import { el, formatClock, formatDuration, formatTime, gql, settled } from "./graphql.js";

const TICKET = "state position peopleAhead waiting estimatedWaitSeconds admissionExpiresAt drawsAt";

export class RoomPanel {
  /** `onChange` runs when the ticket changes (the card's Reserve button depends on it). */
  constructor(product, { live, failed, onChange }) {
    this.product = product;
    this.live = live;
    this.failed = failed;
    this.onChange = onChange;
    this.user = null;
    this.ticket = null;
    this.stop = () => {};
    this.text = el("p", { class: "room-state", role: "status" });
    this.button = el("button", { type: "button", class: "secondary", onclick: () => this.join() }, "Join the waiting room");
    this.node = el("div", { class: "room" }, this.text, this.button);
  }

  /** Signed in: this shopper's ticket, live (the first message says where it stands). */
  follow(user) {
    this.stop();
    this.stop = () => {};
    this.user = user;
    this.ticket = null;
    if (user) {
      this.stop = this.live.subscribe(
        `subscription Room($p: ID!) { waitingRoom(productId: $p) { ${TICKET} } }`,
        { p: this.product.id },
        (data) => this.show(data.waitingRoom),
        this.failed,
      );
    }
    this.paint();
  }

  show(ticket) {
    this.ticket = ticket;
    this.paint();
    this.onChange();
  }

  async join() {
    try {
      const data = await gql(
        `mutation Join($p: ID!) { joinWaitingRoom(productId: $p) { ticket { ${TICKET} } errors { code message } } }`,
        { p: this.product.id },
      );
      this.show(settled(data.joinWaitingRoom).ticket);
    } catch (error) {
      this.failed(error, `Not joined: ${this.product.name}`);
    }
  }

  /** Whether this shopper may reserve now (an admission of their own, not lapsed). */
  get admitted() {
    return this.ticket?.state === "ADMITTED" && Date.parse(this.ticket.admissionExpiresAt) > Date.now();
  }

  paint(now = Date.now()) {
    const { text, button } = this;
    const ticket = this.ticket;
    const room = this.product.waitingRoom;
    const starts = this.product.saleStartsAt ? Date.parse(this.product.saleStartsAt) : null;
    const opens = starts === null ? null : starts - room.opensBeforeSeconds * 1000;
    let words;
    let joinable = false;
    this.node.dataset.state = ticket?.state ?? "NONE";
    if (!this.user) {
      words = "This sale has a waiting room: sign in to join it.";
    } else if (!ticket) {
      joinable = opens === null || now >= opens;
      words = joinable
        ? "This sale has a waiting room. Join it to get your place."
        : `This sale has a waiting room: it opens at ${formatTime(new Date(opens).toISOString())}.`;
    } else if (ticket.state === "WAITING" && ticket.position === null) {
      const draw = ticket.drawsAt ? formatClock(Date.parse(ticket.drawsAt) - now) : "the start";
      words = `You're in. Places are drawn at random when the sale starts (in ${draw}) among the ${ticket.waiting} who joined: joining early or late makes no difference.`;
    } else if (ticket.state === "WAITING") {
      const ahead = ticket.peopleAhead === 0 ? "you're next" : ticket.peopleAhead === 1 ? "1 person ahead of you" : `${ticket.peopleAhead} people ahead of you`;
      const wait = ticket.estimatedWaitSeconds === null ? "estimating your wait…" : `about ${formatDuration(ticket.estimatedWaitSeconds)}`;
      words = `Your place: ${ticket.position} · ${ahead} · ${wait}`;
    } else if (ticket.state === "ADMITTED") {
      const left = Date.parse(ticket.admissionExpiresAt) - now;
      words = left > 0 ? `Your turn: reserve within ${formatClock(left)}` : "Your turn has passed.";
    } else if (ticket.state === "RESERVED") {
      words = "You reserved with your turn. Join again for another go.";
      joinable = true;
    } else if (ticket.state === "EXPIRED") {
      words = "Your turn passed. Join again to queue at the back.";
      joinable = true;
    } else {
      words = "Sold out: the waiting room has closed.";
    }
    if (text.textContent !== words) text.textContent = words;
    button.hidden = !joinable;
    button.textContent = ticket ? "Join again" : "Join the waiting room";
  }
}
