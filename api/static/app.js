// The chat page: POSTs /chat, reads its server-sent events with a stream reader (EventSource cannot POST),
// and renders answers with clickable citations. All server data reaches the DOM as text nodes, never HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const ui = {
  chat: $("chat"), intro: $("intro"), log: $("log"), form: $("ask-form"), question: $("question"),
  send: $("send"), newChat: $("new-chat"), panel: $("doc-panel"), docTitle: $("doc-title"),
  docMeta: $("doc-meta"), docStatus: $("doc-status"), docText: $("doc-text"), docClose: $("doc-close"),
};
const state = { conversationId: null, controller: null, docs: new Map(), panelRequest: 0, opener: null };

/** Build an element; attributes are set as attributes, string children become text nodes. */
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === "") continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function formatDate(published) {
  if (!published) return null;
  const date = new Date(`${published}T00:00:00Z`);
  if (Number.isNaN(date.getTime())) return published;
  return date.toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
}

function metaLine(item) {
  const parts = [item.source, formatDate(item.published)].filter(Boolean);
  return parts.length ? parts.join(" · ") : "Unknown source";
}

// ---- server-sent events over fetch -------------------------------------------------------------------

function parseFrame(frame) {
  let event = "message";
  const data = [];
  for (const line of frame.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { event, data: JSON.parse(data.join("\n")) } : null;
}

async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value, { stream: !done });
    buffer = buffer.replace(/\r\n|\r(?!$)/g, "\n"); // a lone trailing \r may be half of \r\n
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = parseFrame(buffer.slice(0, cut));
      buffer = buffer.slice(cut + 2);
      if (event) yield event;
    }
    if (done) break;
  }
  const last = buffer.trim() ? parseFrame(buffer) : null;
  if (last) yield last;
}

async function errorMessage(response) {
  let detail = response.statusText || "request failed";
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") detail = body.error;
  } catch { /* not JSON: keep the status text */ }
  return `The server could not answer (HTTP ${response.status}): ${detail}`;
}

// ---- one question and its answer ---------------------------------------------------------------------

function citeButton(citation) {
  const button = h("button", {
    type: "button", class: "cite", "data-n": citation.n, "data-doc-id": citation.doc_id,
    "aria-label": `Source ${citation.n}: ${citation.title || citation.doc_id}`,
  }, `[${citation.n}]`);
  button.addEventListener("click", () => openDocument(citation, button));
  return button;
}

/** The final answer text with every [n] that has a citation turned into a marker button. */
function answerNodes(answer, citations) {
  const byN = new Map(citations.map((c) => [c.n, c]));
  const nodes = [];
  const marker = /\[(\d+)\]/g;
  let last = 0;
  for (let m = marker.exec(answer); m; m = marker.exec(answer)) {
    const citation = byN.get(Number(m[1]));
    if (!citation) continue;
    nodes.push(document.createTextNode(answer.slice(last, m.index)), citeButton(citation));
    last = marker.lastIndex;
  }
  nodes.push(document.createTextNode(answer.slice(last)));
  return nodes;
}

function sourceItem(ref, label) {
  const button = h("button", { type: "button", class: "source", "data-doc-id": ref.doc_id },
    h("span", { class: "source-title" }, `${label}${ref.title || ref.doc_id}`),
    h("span", { class: "source-meta" }, metaLine(ref)));
  const excerpt = (ref.quote && ref.quote.text) || ref.text || "";
  const snippet = excerpt.length > 240 ? `${excerpt.slice(0, 240)}…` : excerpt;
  button.addEventListener("click", () => openDocument(ref, button));
  return h("li", {}, button, snippet ? h("blockquote", {}, snippet) : null, alsoReportedBy(ref.also_at));
}

/** "Also reported by" under a citation: the outlets that ran the same story (links only for http(s) URLs). */
function alsoReportedBy(copies) {
  if (!copies || !copies.length) return null;
  const items = [];
  copies.forEach((copy, i) => {
    if (i) items.push(", ");
    const label = copy.source || copy.url;
    const href = safeUrl(copy.url);
    items.push(href ? h("a", { href, rel: "noopener noreferrer nofollow", target: "_blank" }, label) : label);
  });
  return h("p", { class: "also-at" }, "also reported by ", ...items);
}

/** The "as of" line (dates of the cited sources) and the values the cited sources disagree on. */
function timeAndDisagreementNodes(result) {
  const nodes = [];
  if (result.as_of && result.as_of.text) nodes.push(h("p", { class: "as-of" }, result.as_of.text));
  for (const found of result.disagreements || []) {
    const sides = (found.values || []).map((v) => h("li", {},
      `[${v.n}] ${v.value} — ${[v.source, formatDate(v.published)].filter(Boolean).join(", ") || "unknown source"}`));
    nodes.push(h("div", { class: "disagreement", role: "note" },
      h("p", { class: "disagreement-label" }, `Sources disagree: ${found.about}`), h("ul", {}, ...sides)));
  }
  return nodes;
}

function addTurn(question) {
  const text = h("p", { class: "answer-text" });
  const status = h("p", { class: "answer-status" }, "Searching the articles…");
  const answer = h("article", { class: "answer", "data-state": "streaming", "aria-busy": "true" }, status, text);
  const turn = h("li", { class: "turn" }, h("p", { class: "question" }, question), answer);
  ui.log.append(turn);
  ui.intro.hidden = true;
  turn.scrollIntoView({ block: "end" });

  // Keep the newest text in view while it grows, unless the reader has scrolled up to read something else.
  const follow = (grow) => {
    const atBottom = window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 48;
    grow();
    if (atBottom) turn.scrollIntoView({ block: "end" });
  };
  const streamed = document.createTextNode("");
  text.append(streamed);
  const settle = (stateName) => {
    answer.dataset.state = stateName;
    answer.setAttribute("aria-busy", "false");
    status.remove();
  };
  return {
    searched(count) { status.textContent = `Reading ${count} passage${count === 1 ? "" : "s"}…`; },
    token(chunk) { follow(() => streamed.appendData(chunk)); },
    finish(result) { follow(() => this.render(result)); },
    render(result) {
      const citations = result.citations || [];
      const passages = result.passages || [];
      text.replaceChildren(...answerNodes(result.answer || "", citations));
      if (result.refused) {
        answer.prepend(h("p", { class: "refusal-label" }, "Not found in the articles"));
        if (passages.length) {
          answer.append(h("details", { class: "sources nearest" },
            h("summary", {}, `Nearest passages (${passages.length})`),
            h("ol", {}, ...passages.map((p) => sourceItem(p, "")))));
        }
      } else if (citations.length) {
        answer.append(h("details", { class: "sources", open: "" },
          h("summary", {}, `Sources (${citations.length})`),
          h("ol", {}, ...citations.map((c) => sourceItem(c, `[${c.n}] `)))));
      }
      if (result.notice) answer.append(h("p", { class: "notice" }, result.notice));
      answer.append(...timeAndDisagreementNodes(result));
      settle(result.refused ? "refused" : "done");
    },
    fail(message) { follow(() => this.showError(message)); },
    showError(message) {
      answer.setAttribute("role", "alert");
      answer.prepend(h("p", { class: "error-label" }, "Something went wrong"));
      text.after(h("p", { class: "error-message" }, message));
      if (!streamed.length) text.remove();
      settle("error");
    },
  };
}

function setConversation(id) {
  state.conversationId = id || null;
  ui.chat.dataset.conversationId = state.conversationId || "";
}

function setBusy(busy) {
  ui.send.disabled = busy;
  ui.chat.toggleAttribute("data-busy", busy);
}

async function ask(question) {
  const turn = addTurn(question);
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  const body = { question };
  if (state.conversationId) body.conversation_id = state.conversationId;
  try {
    let response;
    try {
      response = await fetch("/chat", {
        method: "POST", signal: controller.signal, body: JSON.stringify(body),
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      });
    } catch (error) {
      if (controller.signal.aborted) throw error;
      throw new Error("Could not reach the server. Check the connection and try again.");
    }
    if (!response.ok) throw new Error(await errorMessage(response));
    let finished = false;
    for await (const { event, data } of sseEvents(response)) {
      if (event === "sources") {
        setConversation(data.conversation_id);
        turn.searched((data.passages || []).length);
      } else if (event === "token") {
        turn.token(String(data.text ?? ""));
      } else if (event === "done") {
        setConversation(data.conversation_id);
        turn.finish(data);
        finished = true;
      } else if (event === "error") {
        throw new Error(`The server failed while answering: ${data.error || "unknown error"}`);
      }
    }
    if (!finished) throw new Error("The answer stopped before it was complete. Try again.");
  } catch (error) {
    if (controller.signal.aborted) return; // "New chat" cancelled this turn
    turn.fail(error instanceof SyntaxError ? "The server sent a malformed reply." : error.message);
  } finally {
    if (state.controller === controller) {
      state.controller = null;
      setBusy(false);
    }
  }
}

// ---- the article panel -------------------------------------------------------------------------------

/** Python counts code points, JavaScript strings count UTF-16 units: convert an offset. */
function toUnits(text, codePoints) {
  if (!/[\ud800-\udfff]/.test(text)) return codePoints;
  let units = 0;
  for (let i = 0; i < codePoints && units < text.length; i += 1) {
    const code = text.charCodeAt(units);
    units += code >= 0xd800 && code <= 0xdbff ? 2 : 1;
  }
  return units;
}

/** [start, end) of a span in the article: the given offsets if they hold the expected text, else a search. */
function locate(text, start, end, expected) {
  if (Number.isInteger(start) && Number.isInteger(end)) {
    const range = [toUnits(text, start), toUnits(text, end)];
    if (typeof expected !== "string" || text.slice(...range) === expected) return range;
  }
  if (typeof expected !== "string" || !expected) return null;
  const at = text.indexOf(expected);
  return at >= 0 ? [at, at + expected.length] : null;
}

/** The article with the passage in a tinted span and the quoted words (or the whole passage) in <mark>. */
function highlighted(text, ref) {
  const passage = locate(text, ref.start, ref.end, ref.text);
  const quote = ref.quote ? locate(text, ref.quote.start, ref.quote.end, ref.quote.text) : null;
  const marked = quote || passage;
  if (!marked) return { nodes: [document.createTextNode(text)], mark: null };
  const outer = passage && passage[0] <= marked[0] && marked[1] <= passage[1] ? passage : marked;
  const mark = h("mark", {}, text.slice(marked[0], marked[1]));
  const inner = [text.slice(outer[0], marked[0]), mark, text.slice(marked[1], outer[1])];
  const middle = outer === marked ? mark : h("span", { class: "passage" }, ...inner);
  const nodes = [document.createTextNode(text.slice(0, outer[0])), middle, document.createTextNode(text.slice(outer[1]))];
  return { nodes, mark };
}

async function fetchDocument(docId) {
  if (state.docs.has(docId)) return state.docs.get(docId);
  const response = await fetch(`/documents/${encodeURIComponent(docId)}`, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(await errorMessage(response));
  const doc = await response.json();
  state.docs.set(docId, doc);
  return doc;
}

function safeUrl(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

async function openDocument(ref, opener) {
  const request = ++state.panelRequest;
  state.opener = opener;
  ui.panel.hidden = false;
  ui.panel.dataset.state = "loading";
  ui.panel.setAttribute("aria-busy", "true");
  document.body.classList.add("panel-open");
  ui.docTitle.textContent = ref.title || ref.doc_id;
  ui.docMeta.textContent = metaLine(ref);
  ui.docStatus.textContent = "Loading the article…";
  ui.docText.replaceChildren();
  ui.panel.focus({ preventScroll: true });
  let doc;
  try {
    doc = await fetchDocument(ref.doc_id);
  } catch (error) {
    if (request !== state.panelRequest) return;
    ui.docStatus.textContent = error instanceof TypeError ? "Could not reach the server." : error.message;
    ui.panel.dataset.state = "error";
    ui.panel.setAttribute("aria-busy", "false");
    return;
  }
  if (request !== state.panelRequest) return; // a newer citation was opened meanwhile
  ui.docTitle.textContent = doc.title || doc.doc_id;
  ui.docMeta.replaceChildren(metaLine(doc));
  const href = doc.url && safeUrl(doc.url);
  if (href) {
    ui.docMeta.append(" · ", h("a", { href, target: "_blank", rel: "noopener noreferrer" }, "original"));
  }
  const { nodes, mark } = highlighted(String(doc.text || ""), ref);
  ui.docText.replaceChildren(...nodes);
  ui.docStatus.textContent = mark ? "" : "The cited passage is no longer in this article.";
  ui.panel.dataset.state = "ready";
  ui.panel.setAttribute("aria-busy", "false");
  if (mark) mark.scrollIntoView({ block: "center" });
}

function closePanel() {
  state.panelRequest += 1;
  ui.panel.hidden = true;
  delete ui.panel.dataset.state;
  document.body.classList.remove("panel-open");
  if (state.opener && state.opener.isConnected) state.opener.focus();
  state.opener = null;
}

// ---- wiring ------------------------------------------------------------------------------------------

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const question = ui.question.value.trim();
  if (!question || state.controller) return;
  ui.question.value = "";
  ask(question);
});

ui.question.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.form.requestSubmit();
  }
});

ui.newChat.addEventListener("click", () => {
  if (state.controller) state.controller.abort();
  state.controller = null;
  setBusy(false);
  setConversation(null);
  state.docs.clear();
  ui.log.replaceChildren();
  ui.intro.hidden = false;
  closePanel();
  ui.question.focus();
});

ui.docClose.addEventListener("click", closePanel);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !ui.panel.hidden) closePanel();
});
