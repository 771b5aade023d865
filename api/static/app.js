// The chat page: POSTs /chat, reads its server-sent events with a stream reader (EventSource cannot POST),
// and renders answers with clickable citations; keeps a list of the reader's conversations, a Documents dialog
// and per-answer actions (copy, retry, regenerate, feedback, suggested follow-ups); a kept question can be edited,
// the conversation then goes on from it. All server data reaches the DOM as text nodes, never HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const ui = {
  chat: $("chat"), intro: $("intro"), log: $("log"), form: $("ask-form"), question: $("question"),
  send: $("send"), stop: $("stop"), newChat: $("new-chat"), counter: $("counter"), askStatus: $("ask-status"),
  panel: $("doc-panel"), docTitle: $("doc-title"), docMeta: $("doc-meta"), docStatus: $("doc-status"),
  docText: $("doc-text"), docClose: $("doc-close"),
  history: $("history"), historyList: $("history-list"), historyEmpty: $("history-empty"),
  historyToggle: $("history-toggle"), corpus: $("corpus"), examples: $("examples"), exampleList: $("example-list"),
  filterChip: $("filter-chip"), filterText: $("filter-text"), filterClear: $("filter-clear"),
  documents: $("documents"), openDocuments: $("open-documents"), documentsClose: $("documents-close"),
  documentsRows: $("documents-rows"), documentsCaption: $("documents-caption"), documentsStatus: $("documents-status"),
  filterSource: $("filter-source"), filterFrom: $("filter-from"), filterTo: $("filter-to"), askThese: $("ask-these"),
  uploadForm: $("upload-form"), uploadFiles: $("upload-files"), uploadStatus: $("upload-status"),
  historySearch: $("history-search"), textSearch: $("filter-text-search"), sortDocuments: $("sort-documents"),
  pagePrev: $("page-prev"), pageNext: $("page-next"), pageInfo: $("page-info"),
};
// rows of the Documents table at a time: thousands of articles stay quick
const pageSize = () => Number(window.qaDocumentsPageSize) || 50;
const DATE_LOCALE = "en-GB"; // "11 Apr 2017": day before month, unambiguous
const HINT = "Enter to send, Shift+Enter for a new line.";
const CONVERSATION_KEY = "qa.conversation";
const API_KEY = "qa.apiKey"; // sessionStorage only: forgotten when the tab closes
// An answer whose stream sends nothing for this long is given up (a hung server), with Retry.
const answerTimeoutMs = () => Number(window.qaAnswerTimeoutMs) || 90_000;
const state = {
  conversationId: null, controller: null, stopped: false, timedOut: false, docs: new Map(), panelRequest: 0,
  opener: null, documents: [], maxChars: 2000, filters: null, keptTurns: 0, knownConversations: new Set(),
  askAfterDocuments: false, conversations: [], documentsPage: 0,
};

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

/** Drawn icons: emoji need a colour-emoji font, which many systems (and headless browsers) lack. */
const ICONS = {
  up: "M2 10h4v11H2zM8 21h9.5a2 2 0 0 0 2-1.7l1.2-7A2 2 0 0 0 18.7 10H14V5.5A2.5 2.5 0 0 0 11.5 3L8 10z",
  down: "M2 3h4v11H2zM8 3h9.5a2 2 0 0 1 2 1.7l1.2 7A2 2 0 0 1 18.7 14H14v4.5a2.5 2.5 0 0 1-2.5 2.5L8 14z",
  trash: "M9 3h6l1 2h4v2H4V5h4zM6 8h12l-1 13H7zm3 2v9h2v-9zm4 0v9h2v-9z",
};

function icon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", "icon");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", ICONS[name]);
  path.setAttribute("fill", "currentColor");
  path.setAttribute("fill-rule", "evenodd");
  svg.append(path);
  return svg;
}

function formatDate(published) {
  if (!published) return null;
  const date = new Date(`${published}T00:00:00Z`);
  if (Number.isNaN(date.getTime())) return published;
  return date.toLocaleDateString(DATE_LOCALE, { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
}

function metaLine(item) {
  const parts = [item.source, formatDate(item.published)].filter(Boolean);
  return parts.length ? parts.join(" · ") : "Unknown source";
}

// ---- talking to the server ---------------------------------------------------------------------------

/** What went wrong, in words a reader can act on (never a bare status code). */
function describeFailure(status, detail) {
  const said = detail ? `: ${detail}` : ".";
  if (status === 400 || status === 422) return `The question was not accepted${said}`;
  if (status === 401) return "This server needs its API key for that, and the key was missing or wrong.";
  if (status === 404) return `That is no longer on the server${said}`;
  if (status === 409) return `That clashes with what is indexed${said}`;
  if (status === 413) return "That is larger than the server accepts.";
  if (status === 503) {
    return `A service the answer needs is unavailable right now${detail ? ` (${detail})` : ""}. Try again in a moment.`;
  }
  if (status >= 500) return "The server had a problem answering. Try again in a moment.";
  return `The request failed${said}`;
}

async function errorMessage(response) {
  let detail = "";
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") detail = body.error;
  } catch { /* not JSON */ }
  return describeFailure(response.status, response.status >= 500 && response.status !== 503 ? "" : detail);
}

/** fetch + JSON; a network failure or an error status becomes an Error with a readable message. */
async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: { Accept: "application/json", ...(options.headers || {}) } });
  } catch {
    throw new Error("Could not reach the server. Check the connection and try again.");
  }
  if (!response.ok) {
    let body = null;
    try { body = await response.clone().json(); } catch { /* not JSON */ }
    const error = new Error(await errorMessage(response));
    error.status = response.status;
    if (body && Array.isArray(body.failed)) error.report = body; // an upload where no file could be used
    return Promise.reject(error);
  }
  return response.json();
}

/** A write to /documents: sends the API key kept for this tab; asks for it once when the server wants one. */
async function writeDocuments(path, options) {
  const send = () => {
    const key = sessionStorage.getItem(API_KEY);
    return api(path, { ...options, headers: key ? { Authorization: `Bearer ${key}` } : {} });
  };
  try {
    return await send();
  } catch (error) {
    if (error.status !== 401) throw error;
    const key = window.prompt("This server needs its API key to change documents. API key:");
    if (!key) throw new Error("Not changed: the server needs its API key.");
    sessionStorage.setItem(API_KEY, key.trim());
    try {
      return await send();
    } catch (again) {
      if (again.status === 401) sessionStorage.removeItem(API_KEY);
      throw again;
    }
  }
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

// ---- citations: one source per article -----------------------------------------------------------------

/** Citations grouped by article, numbered in order of first use: [{number, doc_id, title, ..., cites: [...]}].
 *  `numberOf` maps a citation's n to its article's number, so two passages of one article share a number. */
function groupCitations(citations) {
  const groups = new Map();
  const numberOf = new Map();
  for (const citation of [...citations].sort((a, b) => a.n - b.n)) {
    let group = groups.get(citation.doc_id);
    if (!group) {
      group = { ...citation, number: groups.size + 1, cites: [] };
      groups.set(citation.doc_id, group);
    }
    group.cites.push(citation);
    numberOf.set(citation.n, group.number);
  }
  return { groups: [...groups.values()], numberOf };
}

/** The sentence an [n] marker follows: the text since the previous marker, cut at the last sentence end. */
function sentenceBefore(answer, markerAt, previousEnd) {
  const before = answer.slice(previousEnd, markerAt).trim();
  const pieces = before.split(/(?<=[.!?…]["”’)]?)\s+(?=\S)/);
  let sentence = pieces[pieces.length - 1] || before;
  if (/^[.,;:!?)\]]*$/.test(sentence) && pieces.length > 1) sentence = pieces[pieces.length - 2];
  return sentence.replace(/^["“‘(]+/, "").replace(/[\s"”’]+$/, "");
}

function citeButton(citation, number, sentence) {
  const ref = { ...citation, sentence };
  const button = h("button", {
    type: "button", class: "cite", "data-n": citation.n, "data-doc-id": citation.doc_id,
    "aria-label": `Source ${number}: ${citation.title || citation.doc_id}`,
  }, `[${number}]`);
  button.addEventListener("click", () => openDocument(ref, button));
  return button;
}

/** The final answer text with every [n] that has a citation turned into a marker button showing its article's
 *  number; each marker remembers the sentence it follows, which is what it highlights. */
function answerNodes(answer, citations, numberOf) {
  const byN = new Map(citations.map((c) => [c.n, c]));
  const nodes = [];
  const marker = /\[(\d+)\]/g;
  let last = 0;
  let sentenceFrom = 0;
  for (let m = marker.exec(answer); m; m = marker.exec(answer)) {
    const citation = byN.get(Number(m[1]));
    if (!citation) continue;
    const sentence = sentenceBefore(answer, m.index, sentenceFrom);
    nodes.push(document.createTextNode(answer.slice(last, m.index)),
      citeButton(citation, numberOf.get(citation.n), sentence));
    last = marker.lastIndex;
    if (!/^\s*\[\d+\]/.test(answer.slice(last))) sentenceFrom = last; // "… text [1][2]": both mark one sentence
  }
  nodes.push(document.createTextNode(answer.slice(last)));
  return nodes;
}

/** The answer as plain text: markers renumbered per article, then the numbered sources. */
function plainText(result) {
  const { groups, numberOf } = groupCitations(result.citations || []);
  const text = String(result.answer || "").replace(/\[(\d+)\]/g, (all, n) => (
    numberOf.has(Number(n)) ? `[${numberOf.get(Number(n))}]` : all));
  if (!groups.length) return text;
  const lines = groups.map((g) => {
    const doc = state.documents.find((d) => d.doc_id === g.doc_id) || {};
    const parts = [g.title || g.doc_id, g.source, formatDate(g.published), doc.url].filter(Boolean);
    return `[${g.number}] ${parts.join(", ")}`;
  });
  return `${text}\n\nSources:\n${lines.join("\n")}`;
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

function quoteOf(cite) {
  return (cite.quote && cite.quote.text) || cite.text || "";
}

function sourceItem(group) {
  const button = h("button", { type: "button", class: "source", "data-doc-id": group.doc_id },
    h("span", { class: "source-title" }, `[${group.number}] ${group.title || group.doc_id}`),
    h("span", { class: "source-meta" }, metaLine(group)));
  button.addEventListener("click", () => openDocument(group.cites[0], button));
  const quotes = [...new Set(group.cites.map(quoteOf).filter(Boolean))];
  return h("li", {}, button, ...quotes.map((q) => h("blockquote", {}, q.length > 240 ? `${q.slice(0, 240)}…` : q)),
    alsoReportedBy(group.also_at));
}

function passageItem(passage) {
  const button = h("button", { type: "button", class: "source", "data-doc-id": passage.doc_id },
    h("span", { class: "source-title" }, passage.title || passage.doc_id),
    h("span", { class: "source-meta" }, metaLine(passage)));
  button.addEventListener("click", () => openDocument(passage, button));
  const text = passage.text || "";
  return h("li", {}, button, text ? h("blockquote", {}, text.length > 240 ? `${text.slice(0, 240)}…` : text) : null);
}

// ---- one question and its answer ---------------------------------------------------------------------

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = h("textarea", { class: "visually-hidden", "aria-hidden": "true" });
  area.value = text;
  document.body.append(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("copy refused");
}

/** Thumbs up/down, saved the moment one is pressed (POST /feedback); an optional note is sent after it and
 *  replaces that rating (the server keeps one per reader and answer). The thumbs and the status never move: the
 *  note field opens on its own line below them. */
function feedbackControls(question, result) {
  const note = h("input", { type: "text", maxlength: "2000", class: "feedback-note" });
  const noteId = `note-${Math.random().toString(36).slice(2)}`;
  note.id = noteId;
  const status = h("span", { class: "feedback-status", role: "status" });
  const send = h("button", { type: "button", class: "secondary small" }, "Send note");
  const form = h("div", { class: "feedback-form", hidden: "" },
    h("label", { for: noteId }, "Note (optional)"), note, send);
  let rating = null;
  const save = async (withNote) => {
    const cites = result.citations || [];
    const body = {
      rating, question, answer: String(result.answer || "").slice(0, 50_000), refused: Boolean(result.refused),
      note: withNote ? note.value.trim() || null : null, evidence: cites.map(quoteOf).filter(Boolean).slice(0, 50),
      doc_ids: [...new Set(cites.map((c) => c.doc_id))].slice(0, 50),
    };
    if (result.conversation_id) body.conversation_id = result.conversation_id;
    try {
      await api("/feedback", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body) });
      return true;
    } catch (error) {
      status.textContent = error.message;
      return false;
    }
  };
  const thumb = (value, label, glyph) => {
    const button = h("button", { type: "button", class: "secondary small thumb", "aria-label": label,
      "aria-pressed": "false", title: label }, glyph);
    button.addEventListener("click", async () => {
      rating = value;
      for (const b of box.querySelectorAll(".thumb")) b.setAttribute("aria-pressed", String(b === button));
      status.textContent = "Saving…";
      if (await save(Boolean(note.value.trim()))) {
        status.textContent = "Thanks, your feedback was saved.";
        form.hidden = false;
      }
    });
    return button;
  };
  send.addEventListener("click", async () => {
    send.disabled = true;
    if (await save(true)) {
      form.hidden = true;
      status.textContent = "Thanks, your feedback and note were saved.";
    }
    send.disabled = false;
  });
  const box = h("div", { class: "feedback" }, thumb("up", "Good answer", icon("up")),
    thumb("down", "Bad answer", icon("down")), status, form);
  return box;
}

/** The "as of" line (dates of the cited sources) and the values the cited sources disagree on, each with the
 * source number the page shows for its citation. */
function timeAndDisagreementNodes(result, numberOf) {
  const nodes = [];
  if (result.as_of && result.as_of.text) nodes.push(h("p", { class: "as-of" }, result.as_of.text));
  for (const found of result.disagreements || []) {
    const sides = (found.values || []).map((v) => h("li", {},
      `[${numberOf.get(v.n) || v.n}] ${v.value} — ` +
      ([v.source, formatDate(v.published)].filter(Boolean).join(", ") || "unknown source")));
    nodes.push(h("div", { class: "disagreement", role: "note" },
      h("p", { class: "disagreement-label" }, `Sources disagree: ${found.about}`), h("ul", {}, ...sides)));
  }
  return nodes;
}

/** Suggested next questions under an answer (made by the server from the cited articles): each asks itself. */
function followUpNodes(result) {
  const suggestions = (result.follow_ups || []).filter((q) => typeof q === "string" && q.trim());
  if (!suggestions.length || result.refused) return [];
  const id = `follow-${Math.random().toString(36).slice(2)}`;
  return [h("div", { class: "follow-ups" }, h("p", { class: "follow-ups-label", id }, "Ask next"),
    h("ul", { "aria-labelledby": id }, ...suggestions.map((q) => {
      const button = h("button", { type: "button", class: "follow-up" }, q);
      button.addEventListener("click", () => submitQuestion(q));
      return h("li", {}, button);
    })))];
}

/** The inline form that edits a kept question: Enter (or "Save and ask") asks it in place of the turn. */
function editForm(turnElement, questionText) {
  const id = `edit-${Math.random().toString(36).slice(2)}`;
  const area = h("textarea", { id, rows: "2", class: "edit-area" });
  area.value = questionText;
  const save = h("button", { type: "submit", class: "save-edit" }, "Save and ask");
  const cancel = h("button", { type: "button", class: "secondary small" }, "Cancel");
  const form = h("form", { class: "edit-form" }, h("label", { for: id }, "Edit your question"), area,
    h("div", { class: "edit-actions" }, save, cancel));
  const row = turnElement.querySelector(".question-row");
  const close = () => {
    form.remove();
    row.hidden = false;
    row.querySelector(".edit-question").focus();
  };
  cancel.addEventListener("click", close);
  area.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      close();
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const edited = area.value.trim();
    if (!edited) return;
    editTurn(Number(turnElement.dataset.index), edited);
  });
  row.hidden = true;
  row.after(form);
  area.focus({ preventScroll: true });
  form.scrollIntoView({ block: "center" }); // clear of the sticky question box, on a phone too
}

/** Edit on each kept question; Regenerate only on the last kept answer (what the conversation ends with). */
function refreshTurnControls() {
  const kept = [...ui.log.querySelectorAll("li.turn[data-index]")];
  kept.forEach((turn, i) => {
    const regenerate = turn.querySelector(".regenerate");
    if (regenerate) regenerate.hidden = i !== kept.length - 1;
  });
}

function addTurn(question, { retry, filters } = {}) {
  const text = h("p", { class: "answer-text" });
  const status = h("p", { class: "answer-status" }, "Searching the articles…");
  // said on the answer itself, so an answer from a restricted search is never read as one from all articles
  const note = filters ? h("p", { class: "filter-note" }, describeFilters(filters, "Searched only")) : null;
  const answer = h("article", { class: "answer", "data-state": "streaming", "aria-busy": "true" }, note, status,
    text);
  const edit = h("button", { type: "button", class: "secondary small edit-question", hidden: "",
    "aria-label": `Edit question: ${question.length > 60 ? `${question.slice(0, 60)}…` : question}` }, "Edit");
  const turn = h("li", { class: "turn" },
    h("div", { class: "question-row" }, edit, h("p", { class: "question" }, question)), answer);
  edit.addEventListener("click", () => {
    if (state.controller) {
      ui.askStatus.textContent = "An answer is still being written: wait for it, or press Stop.";
      return;
    }
    editForm(turn, question);
  });
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
  const actions = (result, canRetry) => {
    const bar = h("div", { class: "answer-actions" });
    if (result) {
      const copy = h("button", { type: "button", class: "secondary small" }, "Copy");
      const copied = h("span", { class: "copy-status", role: "status" });
      copy.addEventListener("click", async () => {
        try {
          await copyText(plainText(result));
          copied.textContent = "Copied the answer and its sources.";
        } catch {
          copied.textContent = "The browser did not allow copying.";
        }
      });
      bar.append(copy, copied);
    }
    if (canRetry) {
      const again = h("button", { type: "button", class: "secondary small" }, "Retry");
      again.addEventListener("click", () => {
        if (state.controller) return;
        if (answer.dataset.state !== "refused") turn.remove(); // nothing of a failed turn is kept
        ask(question, { filters });
      });
      bar.append(again);
    }
    if (result) {
      const regenerate = h("button", { type: "button", class: "secondary small regenerate", hidden: "" },
        "Regenerate");
      regenerate.addEventListener("click", () => editTurn(Number(turn.dataset.index), null, question));
      bar.append(regenerate, feedbackControls(question, result));
    }
    answer.append(bar);
  };
  return {
    element: turn,
    /** This turn is the server's kept turn number `index`: it can be edited (and regenerated when last). */
    kept(index) {
      turn.dataset.index = String(index);
      edit.hidden = false;
      refreshTurnControls();
    },
    searched(count) { status.textContent = `Reading ${count} passage${count === 1 ? "" : "s"}…`; },
    token(chunk) {
      // The tokens are the model's draft: each sentence is checked against the passages it cites when the
      // answer is complete, and `done` brings what survived, which replaces the draft.
      if (!streamed.length) status.textContent = "Writing a draft… each sentence is checked against its sources when it is done.";
      follow(() => streamed.appendData(chunk));
    },
    finish(result) { follow(() => this.render(result)); },
    render(result) {
      const citations = result.citations || [];
      const passages = result.passages || [];
      const { groups, numberOf } = groupCitations(citations);
      text.replaceChildren(...answerNodes(result.answer || "", citations, numberOf));
      if (result.refused) {
        answer.prepend(h("p", { class: "refusal-label" }, "Not found in the articles"));
        if (passages.length) {
          answer.append(h("details", { class: "sources nearest" },
            h("summary", {}, `Nearest passages (${passages.length})`),
            h("ol", {}, ...passages.map(passageItem))));
        }
      } else if (groups.length) {
        answer.append(h("details", { class: "sources", open: "" },
          h("summary", {}, `Sources (${groups.length})`),
          h("ol", {}, ...groups.map(sourceItem))));
      }
      if (result.notice) answer.append(h("p", { class: "notice" }, result.notice));
      answer.append(...timeAndDisagreementNodes(result, numberOf), ...followUpNodes(result));
      settle(result.refused ? "refused" : "done");
      actions(result, Boolean(result.refused) && retry !== false);
    },
    /** A kept turn whose answer object was not stored: its text alone. */
    renderText(answerText) {
      text.textContent = answerText;
      settle("done");
    },
    fail(message) { follow(() => this.showError(message)); },
    showError(message) {
      answer.setAttribute("role", "alert");
      answer.prepend(h("p", { class: "error-label" }, "Something went wrong"));
      text.after(h("p", { class: "error-message" }, message));
      text.remove(); // an unchecked draft is never left on the page
      settle("error");
      actions(null, true);
    },
    /** Stop came after the server had kept the whole answer (a slow link): show what was kept, say so. */
    keptAfterStop(kept) {
      streamed.data = "";
      if (kept.answer) this.render(kept.answer);
      else this.renderText(kept.answer_text);
      answer.append(h("p", { class: "notice kept-notice" },
        "The answer was already complete when you pressed Stop, so the server kept it."));
    },
    stopped() {
      answer.prepend(h("p", { class: "stopped-label" }, "Stopped"));
      text.after(h("p", { class: "notice" }, "You stopped this answer; it was not saved."));
      text.remove(); // an unchecked draft is never left on the page
      settle("stopped");
      actions(null, true);
    },
  };
}

function setConversation(id) {
  state.conversationId = id || null;
  ui.chat.dataset.conversationId = state.conversationId || "";
  if (state.conversationId) sessionStorage.setItem(CONVERSATION_KEY, state.conversationId);
  else sessionStorage.removeItem(CONVERSATION_KEY);
  for (const item of ui.historyList.querySelectorAll("[data-id]")) {
    const open = item.querySelector(".history-open");
    if (item.dataset.id === state.conversationId) open.setAttribute("aria-current", "true");
    else open.removeAttribute("aria-current");
  }
}

function setBusy(busy) {
  ui.send.hidden = busy;
  ui.stop.hidden = !busy;
  ui.chat.toggleAttribute("data-busy", busy);
  if (!busy) {
    ui.askStatus.textContent = HINT;
    updateCounter(); // a question typed while the answer streamed may be over the limit: keep saying so
  }
}

/** After Stop: did the server keep the turn anyway (its `done` was on the way)? The kept turn, or null. */
async function keptTurn(question, before) {
  try {
    let conversation = null;
    if (before.conversationId) {
      conversation = await api(`/conversations/${encodeURIComponent(before.conversationId)}`);
      if (conversation.turns.length <= before.turns) return null;
    } else {
      const { conversations } = await api("/conversations");
      const fresh = conversations.find((c) => !before.known.has(c.id));
      if (!fresh) return null;
      conversation = await api(`/conversations/${encodeURIComponent(fresh.id)}`);
    }
    const last = conversation.turns[conversation.turns.length - 1];
    return last && last.question.trim() === question.trim() ? { conversation, turn: last } : null;
  } catch {
    return null; // cannot tell: say what the page knows (stopped)
  }
}

/** Ask a kept turn again: the edited question (or, with none, the same one: Regenerate). The page drops that turn
 *  and the later ones, as the server does once the new answer is complete; a stopped or failed edit changes
 *  nothing on the server, and the page then shows the conversation as the server kept it. */
function editTurn(index, edited, shownQuestion) {
  if (state.controller) {
    ui.askStatus.textContent = "An answer is still being written: wait for it, or press Stop.";
    return;
  }
  if (!Number.isInteger(index) || !state.conversationId) return;
  const element = ui.log.querySelector(`li.turn[data-index="${index}"]`);
  if (!element) return;
  const question = edited ?? shownQuestion;
  if ([...question].length > state.maxChars) {
    ui.askStatus.textContent = `The question is ${[...question].length - state.maxChars} characters over the limit `
      + `of ${state.maxChars}: shorten it to send.`;
    return;
  }
  while (element.nextSibling) element.nextSibling.remove();
  element.remove();
  ask(question, { replace: index, send: edited });
}

/** After a stopped or failed edit: the conversation as the server kept it. */
async function showKeptConversation(message) {
  if (state.conversationId) await openConversation(state.conversationId);
  ui.askStatus.textContent = message;
}

async function ask(question, { filters = state.filters, replace = null, send } = {}) {
  const turn = addTurn(question, { filters });
  const controller = new AbortController();
  state.controller = controller;
  state.stopped = false;
  state.timedOut = false;
  const before = { conversationId: state.conversationId, turns: state.keptTurns, known: new Set(state.knownConversations) };
  setBusy(true);
  const editing = replace !== null;
  let editFailed = null;
  const body = editing ? {} : { question };
  if (editing && send) body.question = send;
  if (!editing && state.conversationId) body.conversation_id = state.conversationId;
  if (filters) body.filters = filters;
  const url = editing
    ? `/conversations/${encodeURIComponent(state.conversationId)}/turns/${replace}` : "/chat";
  let watchdog = 0;
  const waiting = () => {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => {
      state.timedOut = true;
      controller.abort();
    }, answerTimeoutMs());
  };
  waiting();
  try {
    let response;
    try {
      response = await fetch(url, {
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
      waiting();
      if (event === "sources") {
        turn.searched((data.passages || []).length);
      } else if (event === "token") {
        turn.token(String(data.text ?? ""));
      } else if (event === "done") {
        const isNew = data.conversation_id !== state.conversationId;
        if (isNew) state.keptTurns = 0;
        setConversation(data.conversation_id); // only a finished turn makes the conversation exist
        state.keptTurns = editing ? replace + 1 : state.keptTurns + 1; // an edit dropped the later turns
        turn.finish(data);
        turn.kept(state.keptTurns - 1);
        finished = true;
        if (isNew || (editing && replace === 0)) loadHistory(); // a new conversation, or a new title
      } else if (event === "error") {
        const status = Number(data.status) || 500;
        throw new Error(describeFailure(status, status === 503 ? data.error : ""));
      }
    }
    if (!finished) throw new Error("The answer stopped before it was complete. Try again.");
  } catch (error) {
    if (editing && !(controller.signal.aborted && !state.stopped && !state.timedOut)) {
      // the server changes a conversation only with `done`: show what it kept (the edit, if it was complete)
      const said = controller.signal.aborted && !state.timedOut ? "The edit was stopped."
        : (state.timedOut ? "The edit was given up: the server sent nothing." : error.message);
      editFailed = `${said} The conversation is shown as the server kept it.`;
      return;
    }
    if (controller.signal.aborted && state.timedOut) {
      turn.fail(`The server sent nothing for ${Math.round(answerTimeoutMs() / 1000)} seconds, so the answer was `
        + "given up. Try again.");
      if (!ui.question.value.trim()) ui.question.value = question;
      updateCounter();
    } else if (controller.signal.aborted) {
      if (state.stopped) { // the reader pressed Stop; "New chat" just drops the turn
        const kept = await keptTurn(question, before);
        if (kept) {
          setConversation(kept.conversation.id);
          state.keptTurns = kept.conversation.turns.length;
          turn.keptAfterStop(kept.turn);
          turn.kept(state.keptTurns - 1);
          loadHistory();
        } else {
          turn.stopped();
        }
      }
    } else {
      turn.fail(error instanceof SyntaxError ? "The server sent a malformed reply." : error.message);
      if (!ui.question.value.trim()) ui.question.value = question; // the question stays, to edit or resend
      updateCounter();
    }
  } finally {
    clearTimeout(watchdog);
    if (state.controller === controller) {
      state.controller = null;
      setBusy(false);
    }
    if (editFailed) await showKeptConversation(editFailed);
  }
}

function stopAnswer() {
  if (!state.controller) return;
  state.stopped = true;
  state.controller.abort();
  ui.question.focus();
}

// ---- the article panel (a modal dialog) --------------------------------------------------------------

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

/** Where the sentence a marker follows stands in the article: inside the cited passage first, else anywhere. */
function locateSentence(text, passage, sentence) {
  if (!sentence || sentence.length < 8) return null;
  const from = passage ? passage[0] : 0;
  let at = text.indexOf(sentence, from);
  if (at < 0 || (passage && at > passage[1])) at = text.indexOf(sentence);
  return at >= 0 ? [at, at + sentence.length] : null;
}

/** The article with the passage in a tinted span and the marked words in <mark>: the sentence the clicked
 *  marker follows when it is in the article, else the citation's quote, else the whole passage. */
function highlighted(text, ref) {
  const passage = locate(text, ref.start, ref.end, ref.text);
  const quote = ref.quote ? locate(text, ref.quote.start, ref.quote.end, ref.quote.text) : null;
  const quoteText = quote ? text.slice(...quote) : "";
  let sentence = locateSentence(text, passage, ref.sentence);
  if (sentence && quote && quoteText.includes(ref.sentence)) sentence = quote; // the quote is that sentence
  const marked = sentence || quote || passage;
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
  const doc = await api(`/documents/${encodeURIComponent(docId)}`);
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
  if (!ui.panel.open) ui.panel.showModal(); // modal: the rest of the page is inert, Tab stays inside
  ui.panel.dataset.state = "loading";
  ui.panel.setAttribute("aria-busy", "true");
  document.body.classList.add("panel-open");
  ui.docTitle.textContent = ref.title || ref.doc_id;
  ui.docMeta.textContent = metaLine(ref);
  ui.docStatus.textContent = "Loading the article…";
  ui.docText.replaceChildren();
  ui.docClose.focus({ preventScroll: true });
  let doc;
  try {
    doc = await fetchDocument(ref.doc_id);
  } catch (error) {
    if (request !== state.panelRequest) return;
    ui.docStatus.textContent = error.message;
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
  if (ui.panel.open) ui.panel.close();
}

/** Keep Tab inside a modal dialog: a native modal makes the page inert, but Tab can still leave the document. */
function trapFocus(dialog) {
  dialog.addEventListener("keydown", (event) => {
    if (event.key !== "Tab") return;
    const focusable = [...dialog.querySelectorAll("button, a[href], input, select, textarea, [tabindex='0']")]
      .filter((el) => !el.disabled && el.offsetParent !== null);
    if (!focusable.length) return;
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (event.shiftKey && (document.activeElement === first || !dialog.contains(document.activeElement))) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  });
}
trapFocus(ui.panel);
trapFocus(ui.documents);

ui.panel.addEventListener("close", () => {
  state.panelRequest += 1;
  delete ui.panel.dataset.state;
  document.body.classList.remove("panel-open");
  if (state.opener && state.opener.isConnected) state.opener.focus();
  state.opener = null;
});

// ---- conversations -----------------------------------------------------------------------------------

function clearChat() {
  state.docs.clear();
  ui.log.replaceChildren();
  ui.intro.hidden = false;
}

function historyItem(conversation) {
  const open = h("button", { type: "button", class: "history-open", title: conversation.title }, conversation.title);
  const rename = h("button", { type: "button", class: "secondary small", "aria-label": `Rename “${conversation.title}”`,
    title: "Rename" }, "✎");
  const remove = h("button", { type: "button", class: "secondary small", "aria-label": `Delete “${conversation.title}”`,
    title: "Delete" }, icon("trash"));
  open.addEventListener("click", () => openConversation(conversation.id));
  rename.addEventListener("click", async () => {
    const title = window.prompt("New name for this conversation:", conversation.title);
    if (title === null || !title.trim()) return;
    try {
      await api(`/conversations/${encodeURIComponent(conversation.id)}`, {
        method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ title }) });
      await loadHistory();
    } catch (error) {
      ui.askStatus.textContent = error.message;
    }
  });
  remove.addEventListener("click", async () => {
    if (!window.confirm(`Delete the conversation “${conversation.title}”?`)) return;
    try {
      await api(`/conversations/${encodeURIComponent(conversation.id)}`, { method: "DELETE" });
      if (state.conversationId === conversation.id) startNewChat();
      await loadHistory();
      ui.question.focus();
    } catch (error) {
      ui.askStatus.textContent = error.message;
    }
  });
  const item = h("li", { "data-id": conversation.id }, open, h("span", { class: "history-actions" }, rename, remove));
  if (conversation.id === state.conversationId) open.setAttribute("aria-current", "true");
  return item;
}

/** "Today", "Yesterday", or the date: the heading a conversation is listed under (the reader's time zone). */
function dayLabel(created) {
  const day = new Date(created);
  if (Number.isNaN(day.getTime())) return "Earlier";
  const key = (d) => d.toLocaleDateString(DATE_LOCALE);
  const today = new Date();
  const yesterday = new Date(today.getTime() - 86_400_000);
  if (key(day) === key(today)) return "Today";
  if (key(day) === key(yesterday)) return "Yesterday";
  return day.toLocaleDateString(DATE_LOCALE, { day: "numeric", month: "short", year: "numeric" });
}

/** The conversation list, newest first, under a heading per day; the search box keeps those whose title has
 *  all the words typed. */
function renderHistory() {
  const words = ui.historySearch.value.toLowerCase().split(/\s+/).filter(Boolean);
  const shown = state.conversations.filter((c) => words.every((w) => c.title.toLowerCase().includes(w)));
  const groups = new Map();
  for (const conversation of shown) {
    const label = dayLabel(conversation.created);
    if (!groups.has(label)) groups.set(label, []);
    groups.get(label).push(conversation);
  }
  ui.historyList.replaceChildren(...[...groups].map(([label, items]) => h("section", { "aria-label": label },
    h("h3", { class: "history-day" }, label), h("ul", {}, ...items.map(historyItem)))));
  ui.historyEmpty.hidden = shown.length > 0;
  ui.historyEmpty.textContent = state.conversations.length ? "No conversation matches the search."
    : "Your conversations appear here.";
}

async function loadHistory() {
  try {
    const { conversations } = await api("/conversations");
    state.knownConversations = new Set(conversations.map((c) => c.id));
    state.conversations = conversations;
    renderHistory();
  } catch (error) {
    ui.historyEmpty.hidden = false;
    ui.historyEmpty.textContent = `Could not load your conversations. ${error.message}`;
  }
}

async function openConversation(id) {
  if (state.controller) stopAnswer();
  let conversation;
  try {
    conversation = await api(`/conversations/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error.status === 404) {
      setConversation(null);
      loadHistory();
    }
    ui.askStatus.textContent = error.message;
    return;
  }
  closePanel();
  clearChat();
  setConversation(conversation.id);
  state.keptTurns = conversation.turns.length;
  conversation.turns.forEach((kept, index) => {
    const turn = addTurn(kept.question);
    if (kept.answer) turn.render(kept.answer);
    else turn.renderText(kept.answer_text);
    turn.kept(index);
  });
  setHistoryOpen(false);
  ui.question.focus();
}

function startNewChat() {
  if (state.controller) state.controller.abort();
  state.controller = null;
  setBusy(false);
  setConversation(null);
  state.keptTurns = 0;
  clearChat();
  closePanel();
  ui.question.focus();
}

function setHistoryOpen(open) {
  ui.historyToggle.setAttribute("aria-expanded", String(open));
  document.body.classList.toggle("history-shown", open); // not "history-open": that is the list buttons' class
}

// ---- what is indexed: the empty state and the Documents dialog ---------------------------------------

function dateRange(documents) {
  const dates = documents.map((d) => d.published).filter(Boolean).sort();
  if (!dates.length) return "";
  const short = (iso) => new Date(`${iso}T00:00:00Z`).toLocaleDateString(DATE_LOCALE,
    { day: "numeric", month: "short", timeZone: "UTC" });
  const year = dates[dates.length - 1].slice(0, 4);
  const first = dates[0].slice(0, 4) === year ? short(dates[0]) : formatDate(dates[0]);
  return dates.length > 1 && dates[0] !== dates[dates.length - 1]
    ? `${first} – ${short(dates[dates.length - 1])} ${year}` : formatDate(dates[0]);
}

function outlets(documents) {
  return [...new Set(documents.map((d) => d.source).filter(Boolean))].sort();
}

function corpusLine(documents) {
  if (!documents.length) return "No articles are indexed yet: add some with Documents.";
  const names = outlets(documents);
  const shown = names.length > 4 ? `${names.slice(0, 4).join(", ")}, …` : names.join(", ");
  const count = `${documents.length} article${documents.length === 1 ? "" : "s"}`;
  return [names.length ? `${count} from ${shown}` : count, dateRange(documents)].filter(Boolean).join(" · ");
}

/** A question about one article, from its title: the title itself when it is a question, else what its outlet
 *  reported about it. */
function titleQuestion(doc) {
  const title = doc.title.trim().replace(/[.!:;,]+$/, "");
  if (title.endsWith("?")) return title;
  return doc.source ? `What did ${doc.source} report about “${title}”?` : `What happened: “${title}”?`;
}

/** Example questions, one per article from different outlets, newest first; each is asked only of its own
 *  outlet and day, so its answer cites that article and not another that happens to share words. */
function exampleQuestions(documents) {
  const picked = [];
  const outletsSeen = new Set();
  const newest = documents.filter((d) => d.title).sort((a, b) => String(b.published || "").localeCompare(String(a.published || "")));
  for (const pass of [true, false]) {
    for (const doc of newest) {
      if (picked.length >= 4 || picked.includes(doc) || (pass && outletsSeen.has(doc.source))) continue;
      outletsSeen.add(doc.source);
      picked.push(doc);
    }
  }
  return picked.map((doc) => {
    const filters = {};
    if (doc.source) filters.source = doc.source;
    if (doc.published) filters.published_from = filters.published_to = doc.published;
    return { question: titleQuestion(doc), filters: Object.keys(filters).length ? filters : null };
  });
}

function renderCorpus() {
  const documents = state.documents;
  ui.corpus.textContent = corpusLine(documents);
  const examples = exampleQuestions(documents);
  ui.examples.hidden = examples.length === 0;
  ui.question.placeholder = examples.length ? `e.g. ${examples[0].question}` : "Add articles with Documents first";
  ui.exampleList.replaceChildren(...examples.map(({ question, filters }) => {
    const button = h("button", { type: "button", class: "example" }, question);
    button.addEventListener("click", () => submitQuestion(question, { filters }));
    return h("li", {}, button);
  }));
  const chosen = ui.filterSource.value;
  ui.filterSource.replaceChildren(h("option", { value: "" }, "All outlets"),
    ...outlets(documents).map((name) => h("option", { value: name }, name)));
  ui.filterSource.value = chosen;
  renderDocumentRows();
}

async function loadDocuments() {
  try {
    state.documents = (await api("/documents")).documents;
  } catch (error) {
    ui.corpus.textContent = `Could not list the indexed articles. ${error.message}`;
    return;
  }
  renderCorpus();
}

function chosenFilters() {
  const filters = {};
  if (ui.filterSource.value) filters.source = ui.filterSource.value;
  if (ui.filterFrom.value) filters.published_from = ui.filterFrom.value;
  if (ui.filterTo.value) filters.published_to = ui.filterTo.value;
  return Object.keys(filters).length ? filters : null;
}

function matches(doc, filters) {
  if (!filters) return true;
  if (filters.source && doc.source !== filters.source) return false;
  if (filters.published_from && !(doc.published && doc.published >= filters.published_from)) return false;
  if (filters.published_to && !(doc.published && doc.published <= filters.published_to)) return false;
  return true;
}

function size(chars) {
  return chars >= 1000 ? `${(chars / 1000).toFixed(1)}k characters` : `${chars} characters`;
}

const SORTS = {
  date: (a, b) => String(b.published || "").localeCompare(String(a.published || "")),
  outlet: (a, b) => String(a.source || "\uffff").localeCompare(String(b.source || "\uffff")) || SORTS.date(a, b),
  title: (a, b) => String(a.title || a.doc_id).localeCompare(String(b.title || b.doc_id)),
};

function renderDocumentRows() {
  const filters = chosenFilters();
  const words = ui.textSearch.value.toLowerCase().split(/\s+/).filter(Boolean);
  const found = state.documents.filter((d) => matches(d, filters)
    && words.every((w) => String(d.title || d.doc_id).toLowerCase().includes(w)))
    .sort(SORTS[ui.sortDocuments.value] || SORTS.date);
  const pages = Math.max(1, Math.ceil(found.length / pageSize()));
  state.documentsPage = Math.min(state.documentsPage, pages - 1);
  const first = state.documentsPage * pageSize();
  const shown = found.slice(first, first + pageSize());
  ui.documentsCaption.textContent = `${found.length} of ${state.documents.length} indexed articles`;
  ui.pageInfo.textContent = found.length
    ? `${first + 1}–${first + shown.length} of ${found.length} (page ${state.documentsPage + 1} of ${pages})` : "";
  ui.pagePrev.disabled = state.documentsPage === 0;
  ui.pageNext.disabled = state.documentsPage >= pages - 1;
  ui.pagePrev.parentElement.hidden = pages === 1;
  ui.documentsRows.replaceChildren(...shown.map((doc) => {
    const remove = h("button", { type: "button", class: "secondary small",
      "aria-label": `Delete ${doc.title || doc.doc_id}` }, "Delete");
    remove.addEventListener("click", () => deleteDocument(doc));
    const title = h("button", { type: "button", class: "source doc-open" },
      h("span", { class: "source-title" }, doc.title || doc.doc_id));
    title.addEventListener("click", () => openDocument(doc, title));
    return h("tr", { "data-doc-id": doc.doc_id }, h("td", {}, title), h("td", {}, doc.source || "—"),
      h("td", {}, formatDate(doc.published) || "—"), h("td", { class: "col-size" }, size(doc.chars || 0)),
      h("td", {}, remove));
  }));
}

async function deleteDocument(doc) {
  if (!window.confirm(`Delete “${doc.title || doc.doc_id}” from the index?`)) return;
  try {
    await writeDocuments(`/documents/${encodeURIComponent(doc.doc_id)}`, { method: "DELETE" });
    ui.documentsStatus.textContent = `Deleted “${doc.title || doc.doc_id}”.`;
    state.docs.delete(doc.doc_id);
  } catch (error) {
    ui.documentsStatus.textContent = error.message;
  }
  await loadDocuments();
  ui.uploadFiles.focus();
}

/** The document id the server gives a file name (qa.sources.cleaning.safe_doc_id), to report per file. */
function fileDocId(name) {
  let stem = name.replace(/\\/g, "/").split("/").pop().normalize("NFC");
  const suffix = [".txt", ".md", ".html", ".htm"].find((s) => stem.toLowerCase().endsWith(s));
  if (suffix) stem = stem.slice(0, -suffix.length);
  return stem.replace(/[^\p{L}\p{N}\p{M}_.-]+/gu, "-").replace(/^[-.]+|[-.]+$/g, "").slice(0, 128);
}

/** One line per file, next to the Upload button: added, replaced, unchanged, a copy of …, or why it failed. */
function uploadLines(files, report) {
  const outcome = new Map();
  for (const [key, words] of [["added", "added"], ["replaced", "replaced (it had changed)"],
    ["unchanged", "unchanged (already indexed)"]]) {
    for (const id of report[key] || []) outcome.set(id, words);
  }
  for (const copy of report.duplicate || []) outcome.set(copy.doc_id || copy.id || "", "a copy of an indexed article");
  const failed = new Map((report.failed || []).map((f) => [f.file, f.error]));
  return files.map((file) => {
    if (failed.has(file.name)) return h("li", { class: "upload-failed" }, `${file.name}: not added, ${failed.get(file.name)}`);
    const words = outcome.get(fileDocId(file.name));
    return h("li", {}, `${file.name}: ${words || "done"}`);
  });
}

async function upload(event, dropped) {
  if (event) event.preventDefault();
  const files = dropped || [...ui.uploadFiles.files];
  if (!files.length) {
    ui.uploadStatus.textContent = "Choose one or more files first.";
    return;
  }
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  ui.uploadStatus.textContent = `Uploading ${files.length} file${files.length === 1 ? "" : "s"}…`;
  try {
    const report = await writeDocuments("/documents", { method: "POST", body: form });
    const indexed = report.added.length + report.replaced.length;
    const summary = indexed ? `${indexed} article${indexed === 1 ? "" : "s"} indexed.`
      : (report.unchanged.length ? "Nothing new: already indexed, unchanged." : "Nothing was indexed.");
    ui.uploadStatus.replaceChildren(h("p", {}, summary), h("ul", {}, ...uploadLines(files, report)));
    ui.uploadForm.reset();
  } catch (error) {
    const failed = error.report ? uploadLines(files, error.report) : [];
    ui.uploadStatus.replaceChildren(h("p", { class: "upload-failed" }, error.message), h("ul", {}, ...failed));
  }
  await loadDocuments();
}

function describeFilters(filters, lead = "Asking only about") {
  const parts = [];
  if (filters.source) parts.push(filters.source);
  if (filters.published_from || filters.published_to) {
    parts.push(`${formatDate(filters.published_from) || "…"} – ${formatDate(filters.published_to) || "…"}`);
  }
  return `${lead}: ${parts.join(", ")}`;
}

function setFilters(filters) {
  state.filters = filters;
  ui.filterChip.hidden = !filters;
  ui.filterText.textContent = filters ? describeFilters(filters) : "";
}

// ---- the question box --------------------------------------------------------------------------------

function updateCounter() {
  const used = [...ui.question.value.trim()].length;
  ui.counter.textContent = `${used} / ${state.maxChars}`;
  ui.counter.classList.toggle("over", used > state.maxChars);
  if (used > state.maxChars) {
    ui.askStatus.textContent = `The question is ${used - state.maxChars} characters over the limit of ${state.maxChars}.`;
  } else if (!state.controller && ui.askStatus.textContent.includes("over the limit")) {
    ui.askStatus.textContent = HINT;
  }
}

function submitQuestion(question, options) {
  if (state.controller) {
    ui.askStatus.textContent = "An answer is still being written: wait for it, or press Stop.";
    return;
  }
  const used = [...question.trim()].length;
  if (used > state.maxChars) { // said under the box; nothing is sent
    ui.askStatus.textContent = `The question is ${used - state.maxChars} characters over the limit of `
      + `${state.maxChars}: shorten it to send.`;
    ui.question.focus();
    return;
  }
  ui.question.value = "";
  updateCounter();
  ask(question, options);
}

async function loadLimits() {
  try {
    const health = await api("/health");
    if (Number.isInteger(health.max_question_chars)) state.maxChars = health.max_question_chars;
  } catch { /* keep the default; /health is 503 while the store is down, with no body we need */ }
  updateCounter();
}

// ---- wiring ------------------------------------------------------------------------------------------

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const question = ui.question.value.trim();
  if (question) submitQuestion(question);
});

ui.question.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.form.requestSubmit();
  }
});
ui.question.addEventListener("input", updateCounter);
ui.stop.addEventListener("click", stopAnswer);
ui.newChat.addEventListener("click", () => {
  startNewChat();
  loadHistory(); // the previous conversation stays in the list
});
ui.historyToggle.addEventListener("click", () => {
  setHistoryOpen(ui.historyToggle.getAttribute("aria-expanded") !== "true");
});
ui.docClose.addEventListener("click", closePanel);

ui.openDocuments.addEventListener("click", () => {
  ui.documents.showModal();
  loadDocuments();
});
ui.documentsClose.addEventListener("click", () => ui.documents.close());
ui.documents.addEventListener("close", () => {
  if (state.askAfterDocuments) ui.question.focus(); // "Ask about these": typing goes into the question box
  else ui.openDocuments.focus();
  state.askAfterDocuments = false;
});
const firstPage = () => {
  state.documentsPage = 0;
  renderDocumentRows();
};
for (const field of [ui.filterSource, ui.filterFrom, ui.filterTo, ui.sortDocuments]) {
  field.addEventListener("change", firstPage);
}
ui.textSearch.addEventListener("input", firstPage);
ui.pagePrev.addEventListener("click", () => {
  state.documentsPage -= 1;
  renderDocumentRows();
});
ui.pageNext.addEventListener("click", () => {
  state.documentsPage += 1;
  renderDocumentRows();
});
ui.historySearch.addEventListener("input", renderHistory);
ui.askThese.addEventListener("click", () => {
  setFilters(chosenFilters());
  state.askAfterDocuments = true;
  ui.documents.close();
});
ui.filterClear.addEventListener("click", () => {
  setFilters(null);
  ui.question.focus();
});
ui.uploadForm.addEventListener("submit", upload);
// Drag and drop anywhere on the Documents dialog uploads the dropped files.
ui.documents.addEventListener("dragover", (event) => {
  if (![...(event.dataTransfer?.types || [])].includes("Files")) return;
  event.preventDefault();
  ui.documents.classList.add("dragging");
});
ui.documents.addEventListener("dragleave", (event) => {
  if (!ui.documents.contains(event.relatedTarget)) ui.documents.classList.remove("dragging");
});
ui.documents.addEventListener("drop", (event) => {
  ui.documents.classList.remove("dragging");
  const files = [...(event.dataTransfer?.files || [])];
  if (!files.length) return;
  event.preventDefault();
  upload(null, files);
});

ui.question.focus();
loadLimits();
loadDocuments();
loadHistory().then(() => {
  const kept = sessionStorage.getItem(CONVERSATION_KEY);
  if (kept && !ui.log.children.length) openConversation(kept);
});
