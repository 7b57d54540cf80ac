// dtrace-tree serve: what both pages use (loaded before each page's own script). Everything
// from the host is put in a page as text (textContent), never as markup: el() only appends
// strings as text nodes.
"use strict";

const TOKEN = document.querySelector('meta[name="dtrace-token"]').content;

function api(path) {
  return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN);
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}
