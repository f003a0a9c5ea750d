// Chat page: streams answers from POST /api/v1/ask (server-sent events over fetch), shows the
// reasoning as it arrives in a folded panel, and opens cited passages in a side panel with the
// supporting span highlighted. Streamed answer text is a draft: muted, labelled as being checked,
// its citation chips marked as each sentence's verdict arrives (`verdict` events); at `done` the
// checked answer the server rendered replaces it entirely (it may be quotes, not the draft).
// Text from users, documents and models only ever goes through textContent; the one innerHTML is
// the answer HTML the server rendered and sanitised (nh3).
(function () {
  "use strict";
  const messagesEl = document.getElementById("messages");
  const welcome = document.getElementById("welcome");
  const form = document.getElementById("ask-form");
  const questionEl = document.getElementById("question");
  const sendButton = document.getElementById("send");
  const csrf = document.querySelector("[name=csrfmiddlewaretoken]").value;
  const liveStatus = document.getElementById("answer-status");
  const panel = {
    root: document.getElementById("source-panel"),
    title: document.getElementById("source-title"),
    meta: document.getElementById("source-meta"),
    section: document.getElementById("source-section"),
    verdict: document.getElementById("source-verdict"),
    text: document.getElementById("source-text"),
    open: document.getElementById("source-open"),
  };
  const byId = new Map(); // message id -> message JSON (for the source panel)
  let conversationId = JSON.parse(document.getElementById("conversation-id").textContent) || null;

  const STATUS_NOTES = {
    extractive: "Quoted word for word from the documents: not a verified model answer (the model's own answer could not be verified, so it is not shown).",
    abstained: "The model found no support for an answer in the documents.",
    no_sources: "Nothing relevant was found, so no model was asked.",
    withheld: "The model's answer was not supported by the passages, and none matched the question well enough to quote.",
    refused: "No model may see these documents under the data policy.",
    incomplete: "The answer stopped before it was finished: what arrived is shown, but it is incomplete.",
    error: "No answer could be produced.",
  };

  // Statuses whose answer is no model claim: the passages searched are listed for the reader.
  const SEARCHED_STATUSES = new Set(["withheld", "no_sources", "abstained"]);
  const VERDICT_ORDER = ["supported", "partial", "unsupported", "quoted"];
  const PROVISIONAL_NOTE = "Draft: checking against the sources…";

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function scrollDown() { messagesEl.scrollTop = messagesEl.scrollHeight; }

  function userBubble(text) {
    const wrap = el("div", "msg user");
    wrap.append(el("div", "bubble", text));
    return wrap;
  }

  function assistantShell() {
    const wrap = el("div", "msg assistant");
    const bubble = el("div", "bubble");
    const reasoning = el("details", "reasoning");
    reasoning.hidden = true;
    const summary = el("summary", null, "Reasoning");
    const pre = el("pre");
    reasoning.append(summary, pre);
    const note = el("div", "provisional-note", PROVISIONAL_NOTE);
    note.hidden = true;
    const answer = el("div", "answer streaming");
    answer.setAttribute("aria-busy", "true");
    const meta = el("div", "msg-meta");
    bubble.append(reasoning, note, answer, meta);
    wrap.append(bubble);
    return { wrap, bubble, reasoning, summary, pre, note, answer, meta, draft: null };
  }

  function announce(text) {
    // One polite live region for the whole page: the tokens of a draft are not read out one by
    // one (the answer is aria-busy meanwhile), its state and the checked answer are.
    liveStatus.textContent = "";
    window.setTimeout(() => { liveStatus.textContent = text; }, 50);
  }

  // --- the provisional draft ----------------------------------------------------------------
  // [1]  [1, 2]  [1;2]: the markers the server turns into chips (assistant/rendering.py).
  const MARKER = /\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]/g;

  function startDraft(shell) {
    shell.draft = { text: "", verdicts: [], frame: 0 };
    shell.answer.classList.add("provisional");
    shell.answer.setAttribute("aria-busy", "true");
    shell.note.hidden = false;
    shell.answer.replaceChildren();
    announce("Writing a draft answer. It is checked against the sources before it is shown as final.");
  }

  function dropDraft(shell) {
    shell.draft = null;
    shell.answer.classList.remove("provisional");
    shell.note.hidden = true;
  }

  function codePointsToUnits(text, points) {
    // The server counts code points; JS strings count UTF-16 units (emoji are two).
    let units = 0;
    let seen = 0;
    for (const ch of text) {
      if (seen === points) break;
      units += ch.length;
      seen += 1;
    }
    return units;
  }

  function addVerdict(shell, event) {
    const draft = shell.draft;
    if (!draft) return;
    const byMarker = new Map(event.citations.map((c) => [c.marker, c]));
    draft.verdicts.push({
      start: codePointsToUnits(draft.text, event.start),
      end: codePointsToUnits(draft.text, event.end),
      byMarker,
    });
    scheduleDraft(shell);
  }

  function scheduleDraft(shell) {
    const draft = shell.draft;
    if (draft.frame) return;
    draft.frame = window.requestAnimationFrame(() => {
      draft.frame = 0;
      if (shell.draft === draft) renderDraft(shell);
    });
  }

  function renderDraft(shell) {
    const { text, verdicts } = shell.draft;
    const nodes = [];
    let cursor = 0;
    for (const match of text.matchAll(MARKER)) {
      nodes.push(document.createTextNode(text.slice(cursor, match.index)));
      // the latest verdict on the sentence holding this marker (none yet: still pending)
      const sentence = verdicts.filter((v) => v.start <= match.index && match.index < v.end).pop();
      for (const raw of match[1].split(/[,;]/)) {
        const marker = Number(raw.trim());
        const citation = sentence ? sentence.byMarker.get(marker) : null;
        const verdict = citation ? citation.verdict : sentence ? "none" : "pending";
        const chip = el("span", "cite cite-" + verdict, String(marker) + (verdict === "unsupported" ? " ⚠" : ""));
        chip.dataset.marker = String(marker);
        chip.title = "Source " + marker + ": " + (
          verdict === "pending" ? "not checked yet" : verdict === "none" ? "no source has this number" : verdict + " (checked while the answer streams)");
        nodes.push(chip);
      }
      cursor = match.index + match[0].length;
    }
    nodes.push(document.createTextNode(text.slice(cursor)));
    shell.answer.replaceChildren(...nodes);
    scrollDown();
  }

  function fillAssistant(shell, message) {
    byId.set(message.id, message);
    shell.bubble.dataset.messageId = String(message.id);
    dropDraft(shell); // the draft is gone, not kept: what follows is the checked answer
    shell.answer.classList.remove("streaming");
    shell.answer.removeAttribute("aria-busy");
    shell.answer.innerHTML = message.html; // sanitised server-side (assistant/rendering.py)
    const list = sourceList(message);
    if (list) shell.answer.after(list);
    if (message.reasoning) {
      shell.reasoning.hidden = false;
      shell.summary.textContent = message.reasoning_source === "model" ? "Reasoning" : "Reasoning (pipeline trace)";
      shell.pre.textContent = message.reasoning;
    }
    let note = STATUS_NOTES[message.status];
    if (list && SEARCHED_STATUSES.has(message.status)) note += " The passages searched are listed below.";
    if (note || message.error) {
      const box = el("div", "status-note" + (message.status === "error" || message.status === "incomplete" ? " error" : ""),
        [note, message.error].filter(Boolean).join(" "));
      shell.answer.after(box);
    }
    if (message.cache_hit) {
      shell.answer.after(el("div", "status-note", "↺ Served from the cache: this question was answered before from the same, unchanged documents you may read."));
    }
    if (message.is_uncited) {
      shell.answer.after(el("div", "status-note", "⚠ This answer cites no source: check it against the documents before relying on it."));
    }
    if (message.has_unsupported) {
      shell.answer.after(el("div", "status-note", "⚠ Some citations are not supported by the passage they point to."));
    }
    shell.meta.replaceChildren();
    const t = message.timings_ms || {};
    const parts = [message.model || message.llm_id];
    if (t.retrieve != null) parts.push("retrieve " + Math.round(t.retrieve) + " ms");
    if (t.first_token != null) parts.push("first token " + Math.round(t.first_token) + " ms");
    if (t.total != null) parts.push("total " + Math.round(t.total) + " ms");
    if (message.usage && message.usage.total_tokens) parts.push(message.usage.total_tokens + " tokens");
    const badge = el("span", "badge", parts.join(" · "));
    if (message.route_reason) badge.title = "Route: " + message.route_reason;
    shell.meta.append(badge);
    shell.meta.append(feedbackButtons(message));
    // A quote supports itself trivially: quotes are counted apart, never as "supported".
    const counts = new Map(VERDICT_ORDER.map((v) => [v, 0]));
    for (const c of message.citations || []) {
      if (counts.has(c.verdict)) counts.set(c.verdict, counts.get(c.verdict) + 1);
    }
    for (const [verdict, count] of counts) {
      if (!count) continue;
      const badge = el("span", "verdict verdict-" + verdict, count + " " + verdict);
      if (verdict === "quoted") badge.title = "Sentences shown word for word from the documents, not a model's claims";
      shell.meta.append(badge);
    }
  }

  function finalAnnouncement(message) {
    const parts = ["Answer checked."];
    if (STATUS_NOTES[message.status]) parts.push(STATUS_NOTES[message.status]);
    const text = document.createElement("div");
    text.innerHTML = message.html; // sanitised server-side; read as text only
    parts.push(text.textContent.trim());
    return parts.join(" ");
  }

  function sourceLabel(source) {
    const parts = [source.document || "unknown document"];
    if (source.page) parts.push("page " + source.page);
    if (source.heading_path && source.heading_path.length) parts.push(source.heading_path.join(" › "));
    return parts;
  }

  function sourceEntry(source) {
    const item = el("li");
    const button = el("button", "source-entry" + (source.below_floor ? " below-floor" : ""));
    button.type = "button";
    button.dataset.marker = String(source.n);
    const [documentName, ...where] = sourceLabel(source);
    button.append(el("span", "source-n", "[" + source.n + "]"), " ", el("span", "source-doc", documentName));
    for (const part of where) button.append(el("span", "source-where", part));
    item.append(button);
    return item;
  }

  function sourceList(message) {
    // Answers list the passages they cite; answers that are no model claim (withheld, nothing
    // found, abstained) list the passages searched, so the reader can look for themselves.
    const sources = message.sources || [];
    let groups = [];
    if (SEARCHED_STATUSES.has(message.status)) {
      const evidence = sources.filter((s) => !s.below_floor);
      const closest = sources.filter((s) => s.below_floor);
      groups = [
        ["Passages searched", evidence],
        ["Closest passages (not close enough to count as evidence)", closest],
      ];
    } else {
      const cited = new Set((message.citations || []).map((c) => c.marker));
      groups = [["Sources", sources.filter((s) => cited.has(s.n))]];
    }
    groups = groups.filter(([, items]) => items.length);
    if (!groups.length) return null;
    const box = el("div", "source-list");
    for (const [title, items] of groups) {
      box.append(el("div", "source-list-title", title));
      const list = el("ol");
      for (const source of items) list.append(sourceEntry(source));
      box.append(list);
    }
    return box;
  }

  function feedbackButtons(message) {
    const box = el("span", "feedback");
    const current = message.feedback ? message.feedback.rating : null;
    for (const [rating, label, title] of [["up", "👍", "Helpful"], ["down", "👎", "Not helpful"]]) {
      const button = el("button", "link thumb" + (current === rating ? " chosen" : ""), label);
      button.type = "button";
      button.title = title;
      button.setAttribute("aria-pressed", current === rating ? "true" : "false");
      button.addEventListener("click", () => sendFeedback(message, rating, box));
      box.append(button);
    }
    return box;
  }

  async function sendFeedback(message, rating, box) {
    const comment = rating === "down" ? (prompt("What was wrong with this answer? (optional)") || "") : "";
    const response = await fetch("/api/v1/messages/" + message.id + "/feedback", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      credentials: "same-origin",
      body: JSON.stringify({ rating, comment }),
    });
    if (!response.ok) { box.append(el("span", "error", " feedback not saved")); return; }
    message.feedback = { rating, comment };
    box.replaceWith(feedbackButtons(message));
  }

  function renderExisting(messages) {
    for (const message of messages) {
      if (message.role === "user") {
        messagesEl.append(userBubble(message.content));
      } else {
        const shell = assistantShell();
        messagesEl.append(shell.wrap);
        fillAssistant(shell, message);
      }
    }
    scrollDown();
  }

  function addToSidebar(id, title) {
    const list = document.querySelector(".conversations");
    const empty = list.querySelector("li.muted");
    if (empty) empty.remove();
    for (const item of list.querySelectorAll("li.current")) item.classList.remove("current");
    const item = el("li", "current");
    const link = el("a", null, title);
    link.href = "/c/" + id;
    link.title = title;
    item.append(link);
    list.prepend(item);
  }

  // --- server-sent events over fetch (EventSource cannot POST) --------------------------------
  async function* readEvents(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        if (data) yield JSON.parse(data);
      }
    }
  }

  async function ask(question) {
    welcome.hidden = true;
    messagesEl.append(userBubble(question));
    const shell = assistantShell();
    shell.answer.append(el("span", "muted", "Searching the documents…"));
    messagesEl.append(shell.wrap);
    scrollDown();
    const body = {
      question,
      stream: true,
      model: document.getElementById("model").value || undefined,
      conversation_id: conversationId || undefined,
    };
    const collection = document.getElementById("collection").value;
    if (collection) body.collection = collection;
    try {
      const response = await fetch("/api/v1/ask", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "text/event-stream" },
        credentials: "same-origin",
        body: JSON.stringify(body),
      });
      if (!response.ok) {
        let message = "status " + response.status;
        try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
        throw new Error(message);
      }
      let finished = false;
      for await (const event of readEvents(response)) {
        if (event.event === "start") {
          if (!conversationId) {
            conversationId = event.conversation_id;
            history.replaceState(null, "", "/c/" + conversationId);
            addToSidebar(conversationId, question.length > 80 ? question.slice(0, 79) + "…" : question);
          }
        } else if (event.event === "sources") {
          shell.answer.replaceChildren(el("span", "muted", "Found " + event.sources.length + " passage(s); asking the model…"));
        } else if (event.event === "reasoning") {
          shell.reasoning.hidden = false;
          shell.summary.textContent = "Reasoning (streaming…)";
          shell.pre.textContent += event.text;
        } else if (event.event === "answer") {
          if (!shell.draft) startDraft(shell);
          shell.draft.text += event.text;
          scheduleDraft(shell);
        } else if (event.event === "verdict") {
          addVerdict(shell, event);
        } else if (event.event === "escalate") {
          // the first model's answer was not grounded: its draft goes, a stronger one answers afresh
          dropDraft(shell);
          shell.answer.replaceChildren(el("span", "muted", "Not grounded (" + event.reason + "); asking " + event.to + "…"));
        } else if (event.event === "done") {
          finished = true;
          fillAssistant(shell, event.message);
          announce(finalAnnouncement(event.message));
        }
      }
      if (!finished) throw new Error("the connection closed before the answer was complete");
    } catch (err) {
      // What streamed was never checked: it stays marked as a draft, under the error.
      shell.answer.classList.remove("streaming");
      shell.answer.removeAttribute("aria-busy");
      shell.note.textContent = "Draft, not checked against the sources";
      shell.answer.after(el("div", "status-note error", "Could not get an answer: " + err.message));
      announce("Could not get an answer: " + err.message);
    }
    scrollDown();
  }

  // --- source panel -----------------------------------------------------------------------------
  function openSource(messageId, marker) {
    const message = byId.get(messageId);
    if (!message) return;
    const source = (message.sources || []).find((s) => s.n === marker);
    const citations = (message.citations || []).filter((c) => c.marker === marker);
    panel.root.hidden = false;
    if (!source) {
      panel.title.textContent = "Source " + marker + " does not exist";
      panel.meta.textContent = "The model cited a source it was not given; the citation was dropped.";
      panel.section.hidden = true;
      panel.verdict.replaceChildren();
      panel.text.replaceChildren();
      panel.open.hidden = true;
      return;
    }
    panel.title.textContent = "[" + marker + "] " + source.document;
    const meta = [];
    if (source.page) meta.push("page " + source.page);
    if (source.collection) meta.push(source.collection);
    panel.meta.textContent = meta.join(" · ");
    const path = source.heading_path || [];
    panel.section.hidden = !path.length;
    panel.section.textContent = path.join(" › ");
    panel.verdict.replaceChildren();
    // worst first; a quote is no claim, so any verdict on a model's sentence outranks it
    const order = { quoted: -1, supported: 0, partial: 1, unsupported: 2 };
    const worst = citations.slice().sort((a, b) => (order[b.verdict] ?? 0) - (order[a.verdict] ?? 0))[0];
    if (worst && worst.verdict === "quoted") {
      panel.verdict.append(el("span", "verdict verdict-quoted", "quoted"));
      panel.verdict.append(el("span", "muted", " shown word for word from this passage, not checked as a claim"));
    } else if (worst) {
      panel.verdict.append(el("span", "verdict verdict-" + worst.verdict, worst.verdict + " (" + worst.score.toFixed(2) + ")"));
      panel.verdict.append(el("span", "muted", " for: “" + worst.sentence + "”"));
    } else if (source.below_floor) {
      panel.verdict.append(el("span", "verdict verdict-none", "closest passage"));
      panel.verdict.append(el("span", "muted", " not close enough to the question to count as evidence"));
    } else if (SEARCHED_STATUSES.has(message.status)) {
      panel.verdict.append(el("span", "verdict verdict-none", "searched"));
      panel.verdict.append(el("span", "muted", " found for the question; no verified answer cites it"));
    }
    if (source.withheld) {
      panel.text.textContent = "(" + source.withheld + ")";
      panel.open.hidden = true;
      return;
    }
    const text = source.text;
    panel.text.replaceChildren();
    if (worst && worst.quote_end > worst.quote_start) {
      // The server counts code points; JS strings count UTF-16 units (emoji are two).
      const points = Array.from(text);
      const part = (a, b) => points.slice(a, b).join("");
      panel.text.append(document.createTextNode(part(0, worst.quote_start)));
      panel.text.append(el("mark", null, part(worst.quote_start, worst.quote_end)));
      panel.text.append(document.createTextNode(part(worst.quote_end)));
    } else {
      panel.text.textContent = text;
    }
    if (source.document_id) {
      panel.open.hidden = false;
      panel.open.href = "/documents/" + source.document_id + "/file" + (source.page ? "#page=" + source.page : "");
      panel.open.textContent = source.page ? "Open the original at page " + source.page : "Open the original";
    } else {
      panel.open.hidden = true;
    }
    const mark = panel.text.querySelector("mark");
    if (mark) mark.scrollIntoView({ block: "nearest" });
  }

  messagesEl.addEventListener("click", (event) => {
    const chip = event.target.closest("button.cite, button.source-entry");
    if (!chip) return;
    const bubble = chip.closest("[data-message-id]");
    if (bubble) openSource(Number(bubble.dataset.messageId), Number(chip.dataset.marker));
  });
  document.getElementById("source-close").addEventListener("click", () => { panel.root.hidden = true; });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = questionEl.value.trim();
    if (!question) return;
    questionEl.value = "";
    sendButton.disabled = true;
    try { await ask(question); } finally { sendButton.disabled = false; questionEl.focus(); }
  });
  questionEl.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
  });

  renderExisting(JSON.parse(document.getElementById("initial-messages").textContent));
})();
