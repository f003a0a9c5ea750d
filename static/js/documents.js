// Documents page: drag-and-drop upload with per-file progress; one page of documents (filtered
// by the form above it) whose status bars poll that same page of the JSON API while any of its
// documents is still being processed; bulk re-index / delete of the rows ticked, after a
// confirmation that names them. User data only ever goes through textContent, never innerHTML.
(function () {
  "use strict";
  const API = "/api/v1/documents";
  const ACTIVE = new Set(["queued", "parsing", "chunking", "embedding", "indexing"]);
  const rows = document.getElementById("document-rows");
  const empty = document.getElementById("empty");
  const notice = document.getElementById("notice");
  const dropzone = document.getElementById("dropzone");
  const input = document.getElementById("file-input");
  const pager = document.getElementById("pager");
  const selectPage = document.getElementById("select-page");
  const bulkBar = document.getElementById("bulk-bar");
  const bulkCount = document.getElementById("bulk-count");
  const dialog = document.getElementById("bulk-confirm");
  const csrf = document.querySelector("[name=csrfmiddlewaretoken]").value;
  let listing = JSON.parse(document.getElementById("initial-documents").textContent);
  let documents = listing.documents;
  const uploads = new Map(); // temporary rows for files still being sent
  const selected = new Set(); // ids ticked on this page
  let pollTimer = null;
  const outdatedBox = document.getElementById("outdated");
  const outdatedText = document.getElementById("outdated-text");

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key.startsWith("data-") || key.startsWith("aria-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  }

  function progressBar(percent, status) {
    const bar = el("div", { class: "bar bar-" + status, role: "progressbar" });
    bar.setAttribute("aria-valuenow", String(percent));
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    const fill = el("div", { class: "fill" });
    fill.style.width = percent + "%";
    bar.append(fill);
    return bar;
  }

  function size(bytes) {
    if (bytes < 1024) return bytes + " B";
    if (bytes < 1024 * 1024) return Math.round(bytes / 1024) + " KB";
    return (bytes / 1048576).toFixed(1) + " MB";
  }

  function ordinal(n) {
    const tens = n % 100, ones = n % 10;
    const suffix = tens >= 11 && tens <= 13 ? "th" : ones === 1 ? "st" : ones === 2 ? "nd" : ones === 3 ? "rd" : "th";
    return n + suffix;
  }

  // Nothing when nothing has been measured yet: no guess passed off as an estimate.
  function estimate(seconds) {
    if (seconds == null) return "";
    if (seconds < 60) return "under a minute";
    const minutes = Math.ceil(seconds / 60);
    return minutes < 90 ? "about " + minutes + " min" : "about " + Math.round(minutes / 60) + " h";
  }

  // The badge says the status; the line after it only adds what the badge does not.
  function statusDetail(doc) {
    if (doc.status === "queued") {
      const parts = [];
      if (doc.queue_position) parts.push(doc.queue_position === 1 ? "next in the queue" : ordinal(doc.queue_position) + " in the queue");
      const wait = estimate(doc.estimate_seconds);
      if (wait) parts.push(wait);
      if (doc.stage && doc.stage !== "queued") parts.push(doc.stage);
      return parts.join(" · ");
    }
    if (ACTIVE.has(doc.status)) return doc.progress + "%" + (doc.stage && doc.stage !== doc.status ? " · " + doc.stage : "");
    return "";
  }

  function statusCell(doc) {
    const detail = statusDetail(doc);
    const label = el("div", { class: "status-line" },
      el("span", { class: "badge status-" + doc.status, textContent: doc.status }),
      detail ? el("span", { class: "muted status-detail", textContent: " " + detail }) : null);
    const cell = el("td", { class: "status" }, label);
    if (ACTIVE.has(doc.status) && doc.status !== "queued") cell.append(progressBar(doc.progress, doc.status));
    if (doc.status === "failed" && doc.error) cell.append(el("div", { class: "error", textContent: doc.error }));
    if (doc.status === "duplicate") cell.append(el("div", { class: "muted", textContent: doc.stage }));
    if (doc.warnings && doc.warnings.length) cell.append(el("div", { class: "warning", textContent: doc.warnings.length + " warning(s): " + doc.warnings.slice(0, 3).join("; ") }));
    return cell;
  }

  function reindexable(doc) {
    return doc.status !== "duplicate" && !ACTIVE.has(doc.status) && doc.sha256;
  }

  function actions(doc) {
    const cell = el("td", { class: "actions" });
    if (reindexable(doc)) {
      cell.append(el("button", { type: "button", class: "link", textContent: "Re-index", "aria-label": "Re-index " + doc.name, onclick: () => reindex(doc) }));
    }
    cell.append(el("button", { type: "button", class: "link danger", textContent: "Delete", "aria-label": "Delete " + doc.name, onclick: () => remove(doc) }));
    return cell;
  }

  function nameCell(doc) {
    const name = doc.sha256
      ? el("a", { href: "/documents/" + doc.id + "/file", target: "_blank", rel: "noopener", textContent: doc.name })
      : document.createTextNode(doc.name);
    const uploaded = new Date(doc.created_at);
    const when = el("time", { dateTime: doc.created_at, textContent: uploaded.toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) });
    const meta = el("div", { class: "doc-meta muted" }, size(doc.size) + " · " + (doc.uploaded_by || "unknown uploader") + " · ", when);
    return el("td", { class: "name" }, name, meta);
  }

  function checkbox(doc) {
    const box = el("input", { type: "checkbox", checked: selected.has(doc.id), "aria-label": "Select " + doc.name });
    box.addEventListener("change", () => {
      if (box.checked) selected.add(doc.id); else selected.delete(doc.id);
      renderBulk();
    });
    return el("td", { class: "select" }, box);
  }

  function render() {
    rows.replaceChildren();
    for (const upload of uploads.values()) {
      rows.append(el("tr", { class: "uploading" }, el("td", { class: "select" }),
        el("td", { class: "name", textContent: upload.name }), el("td", { textContent: upload.collection }),
        el("td", { class: "status" }, el("div", { class: "status-line" }, el("span", { class: "badge status-queued", textContent: "uploading" }), el("span", { class: "muted", textContent: " " + upload.percent + "%" })), progressBar(upload.percent, "uploading")),
        el("td"), el("td"), el("td")));
    }
    const shown = new Set(documents.map((d) => d.id));
    for (const id of [...selected]) if (!shown.has(id)) selected.delete(id); // gone from the page
    for (const doc of documents) {
      rows.append(el("tr", { "data-id": String(doc.id), "data-status": doc.status },
        checkbox(doc), nameCell(doc), el("td", { class: "collection", textContent: doc.collection }), statusCell(doc),
        el("td", { class: "num", "data-label": "pages", textContent: doc.pages ?? "–" }),
        el("td", { class: "num", "data-label": "passages", textContent: doc.chunks ?? "–" }),
        actions(doc)));
    }
    empty.hidden = documents.length > 0 || uploads.size > 0;
    const outdated = documents.filter((d) => d.outdated).length;
    outdatedBox.hidden = outdated === 0;
    outdatedText.textContent = outdated === 1
      ? "1 document was indexed by an older version of the pipeline: re-index it so search finds it as well as the newer ones."
      : outdated + " documents were indexed by an older version of the pipeline: re-index them so search finds them as well as the newer ones.";
    renderPager();
    renderBulk();
  }

  function pageUrl(page) {
    const params = new URLSearchParams(location.search);
    params.set("page", String(page));
    return "?" + params.toString();
  }

  function renderPager() {
    const pages = Math.max(1, Math.ceil(listing.total / listing.page_size));
    pager.replaceChildren();
    if (listing.total <= listing.page_size && listing.page === 1) return;
    const first = (listing.page - 1) * listing.page_size + 1;
    const last = Math.min(listing.total, listing.page * listing.page_size);
    if (listing.page > 1) pager.append(el("a", { href: pageUrl(listing.page - 1), rel: "prev", textContent: "← Newer" }));
    pager.append(el("span", { class: "muted", textContent: (first <= last ? first + "–" + last : "none") + " of " + listing.total.toLocaleString() + " · page " + listing.page + " of " + pages }));
    if (listing.page < pages) pager.append(el("a", { href: pageUrl(listing.page + 1), rel: "next", textContent: "Older →" }));
  }

  function renderBulk() {
    bulkBar.hidden = selected.size === 0;
    bulkCount.textContent = selected.size + " selected";
    selectPage.checked = documents.length > 0 && documents.every((d) => selected.has(d.id));
    selectPage.indeterminate = selected.size > 0 && !selectPage.checked;
  }

  function say(message, isError) {
    notice.textContent = message;
    notice.className = "notice" + (isError ? " error" : "");
  }

  // The page being shown, not the whole list: the same filters and page as the address.
  function listUrl() {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(listing.filters || {})) if (value) params.set(key, value);
    params.set("page", String(listing.page));
    params.set("page_size", String(listing.page_size));
    return API + "?" + params.toString();
  }

  async function refresh() {
    try {
      const response = await fetch(listUrl(), { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) throw new Error("status " + response.status);
      const fresh = await response.json();
      listing = { ...listing, total: fresh.total, page: fresh.page, page_size: fresh.page_size };
      documents = fresh.documents;
      render();
    } catch (err) {
      say("Could not refresh the list (" + err.message + "); retrying…", true);
    }
    schedule();
  }

  function schedule() {
    clearTimeout(pollTimer);
    const busy = documents.some((d) => ACTIVE.has(d.status)) || uploads.size > 0;
    if (busy) pollTimer = setTimeout(refresh, 1000);
  }

  // The server refuses a larger file too (413), but only a check here spares sending it.
  const maxUploadMb = Number(dropzone.dataset.maxUploadMb) || Infinity;

  function upload(file) {
    if (file.size > maxUploadMb * 1024 * 1024) {
      say(file.name + ": not uploaded: it is " + (file.size / 1048576).toFixed(1) + " MB, over the " + maxUploadMb + " MB limit (MAX_UPLOAD_MB).", true);
      return;
    }
    const key = Symbol(file.name);
    const collection = document.getElementById("collection").value;
    uploads.set(key, { name: file.name, collection, percent: 0 });
    render();
    const form = new FormData();
    form.append("file", file);
    form.append("collection", collection);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", API);
    xhr.setRequestHeader("X-CSRFToken", csrf);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) {
        uploads.get(key).percent = Math.round((event.loaded / event.total) * 100);
        render();
      }
    };
    xhr.onload = () => {
      uploads.delete(key);
      if (xhr.status >= 400) {
        let message = "status " + xhr.status;
        try { message = JSON.parse(xhr.responseText).error || message; } catch (e) { /* not JSON */ }
        say(file.name + ": upload failed (" + message + ")", true);
      } else if (listing.page > 1 || Object.values(listing.filters || {}).some(Boolean)) {
        say(file.name + ": uploaded; it is listed first on the unfiltered first page.", false);
      }
      refresh();
    };
    xhr.onerror = () => {
      uploads.delete(key);
      say(file.name + ": upload failed (network error); nothing was stored, try again.", true);
      render();
    };
    xhr.send(form);
  }

  async function errorOf(response) {
    try { return (await response.json()).error || "status " + response.status; } catch (e) { return "status " + response.status; }
  }

  async function mutate(method, url, doc, verb) {
    const response = await fetch(url, { method, headers: { "X-CSRFToken": csrf, Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) say(doc.name + ": " + verb + " failed (" + (await errorOf(response)) + ")", true);
    else say(doc.name + ": " + verb + (verb === "delete" ? "d" : " queued"), false);
    refresh();
  }

  async function reindexOutdated() {
    const response = await fetch(API + "/reindex-outdated", { method: "POST", headers: { "X-CSRFToken": csrf, Accept: "application/json" }, credentials: "same-origin" });
    if (response.ok) say((await response.json()).documents.length + " document(s) queued for re-indexing", false);
    else say("re-index failed (status " + response.status + ")", true);
    refresh();
  }
  document.getElementById("reindex-outdated").addEventListener("click", reindexOutdated);

  function reindex(doc) { mutate("POST", API + "/" + doc.id + "/reindex", doc, "re-index"); }
  function remove(doc) {
    if (confirm("Delete " + doc.name + "? Its passages are removed from search.")) mutate("DELETE", API + "/" + doc.id, doc, "delete");
  }

  // Bulk: the dialog names how many and which before anything is sent.
  const BULK = {
    reindex: { title: (n) => "Re-index " + n + " document" + (n === 1 ? "" : "s") + "?", text: "Each is parsed and indexed again; search keeps its current passages until then. Duplicates and documents already queued or being processed are left as they are.", ok: "Re-index", done: "queued for re-indexing" },
    delete: { title: (n) => "Delete " + n + " document" + (n === 1 ? "" : "s") + "?", text: "Their passages are removed from search and their originals from storage (unless another document has the same content). This cannot be undone.", ok: "Delete", done: "deleted" },
  };
  const NAMES_SHOWN = 10;

  function confirmBulk(action) {
    const chosen = documents.filter((d) => selected.has(d.id));
    if (!chosen.length) return;
    const words = BULK[action];
    document.getElementById("bulk-confirm-title").textContent = words.title(chosen.length);
    document.getElementById("bulk-confirm-text").textContent = words.text;
    const names = document.getElementById("bulk-confirm-names");
    names.replaceChildren(...chosen.slice(0, NAMES_SHOWN).map((d) => el("li", { textContent: d.name + " (" + d.collection + ")" })));
    if (chosen.length > NAMES_SHOWN) names.append(el("li", { class: "muted", textContent: "and " + (chosen.length - NAMES_SHOWN) + " more" }));
    const ok = document.getElementById("bulk-confirm-ok");
    ok.textContent = words.ok;
    ok.className = action === "delete" ? "primary danger" : "primary";
    dialog.returnValue = "";
    dialog.onclose = () => { if (dialog.returnValue === "confirm") bulk(action, chosen); };
    dialog.showModal();
  }

  async function bulk(action, chosen) {
    say((action === "delete" ? "Deleting " : "Queuing ") + chosen.length + " document(s)…", false);
    const response = await fetch(API + "/bulk", {
      method: "POST",
      headers: { "X-CSRFToken": csrf, Accept: "application/json", "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ action, ids: chosen.map((d) => d.id) }),
    });
    if (!response.ok) {
      say(BULK[action].ok + " failed (" + (await errorOf(response)) + ")", true);
    } else {
      const results = (await response.json()).results;
      const names = new Map(chosen.map((d) => [d.id, d.name]));
      const failed = results.filter((r) => !r.ok);
      let message = (results.length - failed.length) + " of " + results.length + " " + BULK[action].done;
      if (failed.length) message += "; not done: " + failed.slice(0, 5).map((r) => (names.get(r.id) || "#" + r.id) + " (" + r.error + ")").join("; ") + (failed.length > 5 ? "; …" : "");
      say(message, failed.length > 0);
      selected.clear();
    }
    refresh();
  }

  document.getElementById("bulk-reindex").addEventListener("click", () => confirmBulk("reindex"));
  document.getElementById("bulk-delete").addEventListener("click", () => confirmBulk("delete"));
  document.getElementById("bulk-clear").addEventListener("click", () => { selected.clear(); render(); });
  selectPage.addEventListener("change", () => {
    for (const doc of documents) if (selectPage.checked) selected.add(doc.id); else selected.delete(doc.id);
    render();
  });

  function take(files) {
    say("", false);
    for (const file of files) upload(file);
  }

  dropzone.addEventListener("click", () => input.click());
  dropzone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  input.addEventListener("change", () => { take(input.files); input.value = ""; });
  for (const type of ["dragenter", "dragover"]) dropzone.addEventListener(type, (e) => { e.preventDefault(); dropzone.classList.add("over"); });
  for (const type of ["dragleave", "drop"]) dropzone.addEventListener(type, (e) => { e.preventDefault(); dropzone.classList.remove("over"); });
  dropzone.addEventListener("drop", (e) => take(e.dataTransfer.files));

  render();
  schedule();
})();
