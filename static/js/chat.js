// Chat page: streams answers from POST /api/v1/ask (server-sent events over fetch), shows the
// reasoning as it arrives in a folded panel, and opens cited passages in a side panel with the
// supporting span highlighted. Streamed answer text is a draft: muted, labelled as being checked,
// its citation chips marked as each sentence's verdict arrives (`verdict` events); at `done` the
// checked answer the server rendered replaces it entirely (it may be quotes, not the draft).
// One question is in flight per conversation: while it streams, Enter does not send and the Ask
// button is a Stop button (POST /api/v1/conversations/{id}/stop). The last answer can be
// regenerated and the last question edited and asked again; every answer can be copied as plain
// text with its numbered sources. Below 700 px the conversation list is a drawer.
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
  const drawer = {
    root: document.getElementById("conversation-drawer"),
    toggle: document.getElementById("drawer-toggle"),
    close: document.getElementById("drawer-close"),
    backdrop: document.getElementById("drawer-backdrop"),
  };
  const editBanner = document.getElementById("edit-banner");
  const byId = new Map(); // message id -> message JSON (for the source panel)
  let conversationId = JSON.parse(document.getElementById("conversation-id").textContent) || null;
  // The answer being written, if any: what Stop needs, and the one-in-flight rule.
  let inFlight = null; // { controller, stopping }
  let editing = false; // the question box holds an edit of the last question
  let panelOpener = null; // where focus returns when the source panel closes

  const STATUS_NOTES = {
    extractive: "Quoted word for word from the documents: not a verified model answer (the model's own answer could not be verified, so it is not shown).",
    abstained: "The model found no support for an answer in the documents.",
    no_sources: "Nothing relevant was found, so no model was asked.",
    withheld: "The model's answer was not supported by the passages, and none matched the question well enough to quote.",
    refused: "No model may see these documents under the data policy.",
    incomplete: "The answer stopped before it was finished: what arrived is shown, but it is incomplete.",
    stopped: "You stopped this answer: what was written until then is shown.",
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

  // Icons drawn inline (24×24, stroked), so no emoji or icon font is needed.
  const ICONS = {
    copy: ["M9 9h10v10H9z", "M5 15V5h10"],
    regenerate: ["M20 12a8 8 0 1 1-2.34-5.66", "M20 4v5h-5"],
    edit: ["M4 20h4L19 9l-4-4L4 16z", "M13 7l4 4"],
    up: ["M7 11v9H4v-9z", "M7 11l4-8c1.5 0 2.5 1 2.2 2.6L12.5 9H19a2 2 0 0 1 2 2.3l-1.2 6.9A2 2 0 0 1 17.8 20H7"],
    check: ["M5 12l5 5L20 7"],
  };

  function icon(name, flip) {
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "18");
    svg.setAttribute("height", "18");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const group = document.createElementNS(NS, "g");
    group.setAttribute("fill", "none");
    group.setAttribute("stroke", "currentColor");
    group.setAttribute("stroke-width", "2");
    group.setAttribute("stroke-linecap", "round");
    group.setAttribute("stroke-linejoin", "round");
    if (flip) group.setAttribute("transform", "rotate(180 12 12)");
    for (const d of ICONS[name]) {
      const path = document.createElementNS(NS, "path");
      path.setAttribute("d", d);
      group.append(path);
    }
    svg.append(group);
    return svg;
  }

  function iconButton(name, label, className, flip) {
    const button = el("button", "icon-button" + (className ? " " + className : ""));
    button.type = "button";
    button.setAttribute("aria-label", label);
    button.title = label;
    button.append(icon(name, flip));
    return button;
  }

  function scrollDown() { messagesEl.scrollTop = messagesEl.scrollHeight; }

  function userBubble(text) {
    const wrap = el("div", "msg user");
    wrap.dataset.text = text;
    const actions = el("div", "msg-actions");
    const edit = iconButton("edit", "Edit and ask again", "edit-question");
    edit.addEventListener("click", () => startEdit(wrap));
    actions.append(edit);
    wrap.append(el("div", "bubble", text), actions);
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
    const actions = el("div", "msg-actions");
    bubble.append(reasoning, note, answer, meta);
    wrap.append(bubble, actions);
    return { wrap, bubble, reasoning, summary, pre, note, answer, meta, actions, draft: null };
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
    shell.actions.replaceChildren(...answerActions(message));
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

  function answerActions(message) {
    const copy = iconButton("copy", "Copy the answer with its sources", "copy-answer");
    copy.addEventListener("click", () => copyAnswer(message, copy));
    const regenerate = iconButton("regenerate", "Regenerate this answer", "regenerate");
    regenerate.addEventListener("click", () => { if (!inFlight) runTurn({ regenerate: true }); });
    return [copy, regenerate, el("span", "sep"), feedbackButtons(message)];
  }

  function feedbackButtons(message) {
    const box = el("span", "feedback");
    const current = message.feedback ? message.feedback.rating : null;
    for (const [rating, label] of [["up", "Helpful"], ["down", "Not helpful"]]) {
      const button = iconButton("up", label, "thumb thumb-" + rating, rating === "down");
      button.setAttribute("aria-pressed", current === rating ? "true" : "false");
      button.addEventListener("click", () => sendFeedback(message, rating, box));
      box.append(button);
    }
    return box;
  }

  // --- copy: the answer as plain text, its [n] markers kept, then the sources they number ------
  function answerText(message) {
    const lines = [message.content.trim()];
    const cited = new Set((message.citations || []).map((c) => c.marker));
    const sources = (message.sources || []).filter((s) => cited.has(s.n));
    if (sources.length) {
      lines.push("", "Sources:");
      for (const source of sources) lines.push("[" + source.n + "] " + sourceLabel(source).join(", "));
    }
    return lines.join("\n");
  }

  async function copyAnswer(message, button) {
    const text = answerText(message);
    let copied = false;
    try {
      await navigator.clipboard.writeText(text);
      copied = true;
    } catch (err) {
      // No clipboard API off a secure origin (plain http to another host): the old way.
      const area = el("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.append(area);
      area.select();
      copied = document.execCommand("copy");
      area.remove();
      button.focus();
    }
    const note = el("span", "done-note", copied ? "Copied" : "Copy failed");
    button.after(note);
    announce(copied ? "Answer copied with its sources." : "The answer could not be copied.");
    window.setTimeout(() => note.remove(), 2000);
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
      if (message.superseded) continue; // replaced by a regenerated answer or an edit
      if (message.role === "user") {
        messagesEl.append(userBubble(message.content));
      } else {
        const shell = assistantShell();
        messagesEl.append(shell.wrap);
        fillAssistant(shell, message);
      }
    }
    syncActions();
    scrollDown();
  }

  // Regenerate belongs to the last answer, Edit to the last question; neither while one streams.
  function syncActions() {
    const users = messagesEl.querySelectorAll(".msg.user");
    const answers = messagesEl.querySelectorAll(".msg.assistant");
    users.forEach((wrap, i) => {
      const button = wrap.querySelector(".edit-question");
      if (button) setHidden(button, i !== users.length - 1 || !conversationId || Boolean(inFlight));
    });
    answers.forEach((wrap, i) => {
      const button = wrap.querySelector(".regenerate");
      if (button) setHidden(button, i !== answers.length - 1 || Boolean(inFlight));
    });
  }

  function setHidden(button, hidden) {
    // .icon-button's display: inline-flex outranks the hidden attribute's display: none
    button.hidden = hidden;
    button.style.display = hidden ? "none" : "";
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

  function setBusy(busy) {
    sendButton.classList.toggle("stop", busy);
    sendButton.textContent = busy ? "Stop" : "Ask";
    sendButton.disabled = false;
    if (busy) sendButton.setAttribute("aria-label", "Stop the answer");
    else sendButton.removeAttribute("aria-label");
    syncActions();
  }

  // A new question ({question}), a regenerated last answer ({regenerate: true}) or an edited
  // last question ({edit: true, question}). What a regenerate or edit replaces is hidden at once
  // and removed when the server accepts, or shown again if it refuses.
  async function runTurn({ question = null, regenerate = false, edit = false }) {
    if (inFlight) return;
    welcome.hidden = true;
    const replaced = [];
    const lastUser = [...messagesEl.querySelectorAll(".msg.user")].pop();
    const lastAnswer = [...messagesEl.querySelectorAll(".msg.assistant")].pop();
    if (edit && lastUser) replaced.push(lastUser);
    if ((edit || regenerate) && lastAnswer) replaced.push(lastAnswer);
    for (const node of replaced) node.hidden = true;
    const added = [];
    if (question != null) {
      added.push(userBubble(question));
      messagesEl.append(added[0]);
    }
    const shell = assistantShell();
    shell.answer.append(el("span", "muted", "Searching the documents…"));
    messagesEl.append(shell.wrap);
    added.push(shell.wrap);
    scrollDown();
    const body = {
      stream: true,
      model: document.getElementById("model").value || undefined,
      conversation_id: conversationId || undefined,
    };
    if (question != null) body.question = question;
    if (regenerate) body.regenerate = true;
    if (edit) body.edit = true;
    const collection = document.getElementById("collection").value;
    if (collection) body.collection = collection;
    inFlight = { controller: new AbortController(), stopping: false };
    setBusy(true);
    let accepted = false;
    try {
      const response = await fetch("/api/v1/ask", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "text/event-stream" },
        credentials: "same-origin",
        body: JSON.stringify(body),
        signal: inFlight.controller.signal,
      });
      if (!response.ok) {
        let message = "status " + response.status;
        try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
        throw new Error(message);
      }
      let finished = false;
      for await (const event of readEvents(response)) {
        if (event.event === "start") {
          accepted = true;
          for (const node of replaced) node.remove();
          if (!conversationId) {
            conversationId = event.conversation_id;
            history.replaceState(null, "", "/c/" + conversationId);
            const title = question.length > 80 ? question.slice(0, 79) + "…" : question;
            addToSidebar(conversationId, title);
            document.querySelector(".thread-title").textContent = title;
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
        } else if (event.event === "error") {
          throw new Error(event.error || event.message || "the server could not answer");
        }
      }
      if (!finished) throw new Error("the connection closed before the answer was complete");
    } catch (err) {
      const stopped = err.name === "AbortError";
      if (!accepted && replaced.length && !stopped) {
        // refused (another answer in flight, say): the conversation is as it was
        for (const node of added) node.remove();
        for (const node of replaced) node.hidden = false;
        const box = replaced[replaced.length - 1].querySelector(".bubble") || replaced[0];
        box.append(el("div", "status-note error", "Could not ask again: " + err.message));
        announce("Could not ask again: " + err.message);
      } else {
        // What streamed was never checked: it stays marked as a draft, under the note.
        const text = stopped ? "You stopped this answer before it was checked." : "Could not get an answer: " + err.message;
        shell.answer.classList.remove("streaming");
        shell.answer.removeAttribute("aria-busy");
        shell.note.textContent = "Draft, not checked against the sources";
        shell.answer.after(el("div", "status-note error", text));
        announce(text);
      }
    } finally {
      inFlight = null;
      setBusy(false);
    }
    scrollDown();
  }

  async function stopAnswer() {
    if (!inFlight || inFlight.stopping) return;
    inFlight.stopping = true;
    sendButton.textContent = "Stopping…";
    sendButton.disabled = true;
    if (conversationId) {
      // The server stops calling the model and ends the stream with what was written (done,
      // status "stopped"), recorded like any answer.
      try {
        const response = await fetch("/api/v1/conversations/" + conversationId + "/stop", {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
          credentials: "same-origin",
          body: "{}",
        });
        if (response.ok) return;
      } catch (err) { /* the stream is cut below instead */ }
    }
    // Not started yet (no conversation to stop) or the stop was refused: cut the stream here.
    if (inFlight) inFlight.controller.abort();
  }

  // --- edit and resend the last question ----------------------------------------------------
  function startEdit(wrap) {
    if (inFlight) return;
    editing = true;
    editBanner.hidden = false;
    questionEl.value = wrap.dataset.text || "";
    questionEl.focus();
    questionEl.setSelectionRange(questionEl.value.length, questionEl.value.length);
  }

  function stopEditing() {
    editing = false;
    editBanner.hidden = true;
  }

  // --- source panel -----------------------------------------------------------------------------
  function openSource(messageId, marker) {
    const message = byId.get(messageId);
    if (!message) return;
    const source = (message.sources || []).find((s) => s.n === marker);
    const citations = (message.citations || []).filter((c) => c.marker === marker);
    if (panel.root.hidden) panelOpener = document.activeElement;
    panel.root.hidden = false;
    panel.root.focus({ preventScroll: true });
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
  function closeSource() {
    if (panel.root.hidden) return;
    panel.root.hidden = true;
    if (panelOpener && document.contains(panelOpener)) panelOpener.focus();
    panelOpener = null;
  }
  document.getElementById("source-close").addEventListener("click", closeSource);

  // --- the conversation drawer (below 700 px) ---------------------------------------------------
  function setDrawer(open) {
    drawer.root.classList.toggle("open", open);
    drawer.backdrop.hidden = !open;
    drawer.toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) drawer.root.querySelector("a").focus();
  }
  drawer.toggle.addEventListener("click", () => setDrawer(!drawer.root.classList.contains("open")));
  drawer.close.addEventListener("click", () => { setDrawer(false); drawer.toggle.focus(); });
  drawer.backdrop.addEventListener("click", () => setDrawer(false));

  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    if (drawer.root.classList.contains("open")) { setDrawer(false); drawer.toggle.focus(); } else if (!panel.root.hidden) closeSource();
    else if (editing) { stopEditing(); questionEl.value = ""; }
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (inFlight) { stopAnswer(); return; } // the button is Stop while an answer streams
    const question = questionEl.value.trim();
    if (!question) return;
    questionEl.value = "";
    const edit = editing && Boolean(conversationId);
    stopEditing();
    runTurn({ question, edit }).finally(() => questionEl.focus());
  });
  // Stop must not go through the form: the question box is required and empty while an answer
  // streams, so the browser's validation would block the submit (and Stop with it).
  sendButton.addEventListener("click", (event) => {
    if (!inFlight) return;
    event.preventDefault();
    stopAnswer();
  });
  questionEl.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (!inFlight) form.requestSubmit(); // Enter never stops nor queues a second question
    }
  });
  document.getElementById("edit-cancel").addEventListener("click", () => {
    stopEditing();
    questionEl.value = "";
    questionEl.focus();
  });
  messagesEl.addEventListener("click", (event) => {
    const example = event.target.closest("button.example");
    if (!example || inFlight) return;
    questionEl.value = example.dataset.question;
    form.requestSubmit();
  });

  renderExisting(JSON.parse(document.getElementById("initial-messages").textContent));
  questionEl.focus();
})();
