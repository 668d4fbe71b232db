// Small charts drawn as SVG and plain HTML: no library, readable by screen readers (each
// chart has a label and its figures in a table beside it).
import { el } from "./graphql.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

function table(caption, headings, rows) {
  return el(
    "details",
    { class: "chart-table" },
    el("summary", {}, "Show the figures"),
    el(
      "table",
      { class: "list" },
      el("caption", {}, caption),
      el("thead", {}, el("tr", {}, ...headings.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...rows.map((row) => el("tr", {}, ...row.map((cell) => el("td", {}, String(cell)))))),
    ),
  );
}

const LABEL_PX = 56; // room one axis label needs, at the size it is drawn

/** Vertical bars, one per item: [{label, value, shown}] (value a number, shown its text).
 * Drawn at the container's own width, so its text stays at its CSS size on a phone too
 * (a fixed 720-unit drawing shrunk to 340 px made 11 px labels 5 px); draw again on resize. */
export function columns(container, caption, items) {
  const width = Math.max(240, Math.round(container.clientWidth) || 720);
  const height = width < 480 ? 180 : 220;
  const bottom = 24;
  const top = 16;
  const max = Math.max(1, ...items.map((item) => item.value));
  const step = width / Math.max(1, items.length);
  const every = Math.ceil(items.length / Math.max(2, Math.floor(width / LABEL_PX))); // labels that fit
  const chart = svg(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": caption, class: "columns" },
    svg("line", { x1: 0, x2: width, y1: height - bottom, y2: height - bottom, class: "axis" }),
    svg("text", { x: 2, y: 12, class: "scale" }, `max ${items.find((i) => i.value === max)?.shown ?? max}`),
  );
  items.forEach((item, index) => {
    const barHeight = ((height - bottom - top) * item.value) / max;
    const x = index * step + step * 0.15;
    chart.append(
      svg(
        "rect",
        { x, y: height - bottom - barHeight, width: step * 0.7, height: barHeight, class: "bar" },
        svg("title", {}, `${item.label}: ${item.shown}`),
      ),
    );
    if (index % every === 0) {
      const x = Math.min(Math.max(index * step + step / 2, 18), width - 18); // not cut off
      chart.append(svg("text", { x, y: height - 6, class: "label" }, item.label));
    }
  });
  const figures = table(caption, ["", "value"], items.map((item) => [item.label, item.shown]));
  figures.open = container.querySelector("details.chart-table")?.open ?? false; // a redraw keeps it open
  container.replaceChildren(chart, figures);
}

function fill(percent) {
  const node = el("span", { class: "bar-fill" });
  node.style.width = `${percent}%`; // through the CSSOM: the pages' CSP allows no inline style
  return node;
}

/** Horizontal bars: [{label, value, shown}]. */
export function bars(container, caption, items) {
  const max = Math.max(1, ...items.map((item) => item.value));
  const list = el(
    "ul",
    { class: "bars", "aria-label": caption },
    ...items.map((item) =>
      el(
        "li",
        {},
        el("span", { class: "bar-label" }, item.label),
        el("span", { class: "bar-track", "aria-hidden": "true" }, fill((100 * item.value) / max)),
        el("span", { class: "bar-value" }, item.shown),
      ),
    ),
  );
  if (!items.length) list.append(el("li", { class: "hint" }, "Nothing in this range yet."));
  container.replaceChildren(list);
}
