// Upload page: drag-and-drop upload with per-file progress, and live status bars that poll the
// JSON API while any document is still being processed. User data only ever goes through
// textContent, never innerHTML.
(function () {
  "use strict";
  const API = "/api/v1/documents";
  const ACTIVE = new Set(["queued", "parsing", "chunking", "embedding", "indexing"]);
  const rows = document.getElementById("document-rows");
  const empty = document.getElementById("empty");
  const notice = document.getElementById("notice");
  const dropzone = document.getElementById("dropzone");
  const input = document.getElementById("file-input");
  const csrf = document.querySelector("[name=csrfmiddlewaretoken]").value;
  let documents = JSON.parse(document.getElementById("initial-documents").textContent);
  const uploads = new Map(); // temporary rows for files still being sent
  let pollTimer = null;
  const outdatedBox = document.getElementById("outdated");
  const outdatedText = document.getElementById("outdated-text");

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
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

  function statusCell(doc) {
    const label = el("div", { class: "status-line" },
      el("span", { class: "badge status-" + doc.status, textContent: doc.status }),
      ACTIVE.has(doc.status) ? el("span", { class: "muted", textContent: " " + doc.progress + "% · " + (doc.stage || "") }) : null);
    const cell = el("td", { class: "status" }, label);
    if (ACTIVE.has(doc.status)) cell.append(progressBar(doc.progress, doc.status));
    if (doc.status === "failed" && doc.error) cell.append(el("div", { class: "error", textContent: doc.error }));
    if (doc.status === "duplicate") cell.append(el("div", { class: "muted", textContent: doc.stage }));
    if (doc.warnings && doc.warnings.length) cell.append(el("div", { class: "warning", textContent: doc.warnings.length + " warning(s): " + doc.warnings.slice(0, 3).join("; ") }));
    return cell;
  }

  function actions(doc) {
    const cell = el("td", { class: "actions" });
    if (doc.status !== "duplicate" && !ACTIVE.has(doc.status) && doc.sha256) {
      cell.append(el("button", { type: "button", class: "link", textContent: "Re-index", onclick: () => reindex(doc) }));
    }
    cell.append(el("button", { type: "button", class: "link danger", textContent: "Delete", onclick: () => remove(doc) }));
    return cell;
  }

  function render() {
    rows.replaceChildren();
    for (const upload of uploads.values()) {
      rows.append(el("tr", { class: "uploading" },
        el("td", { textContent: upload.name }), el("td", { textContent: upload.collection }),
        el("td", { class: "status" }, el("div", { class: "status-line" }, el("span", { class: "badge status-queued", textContent: "uploading" }), el("span", { class: "muted", textContent: " " + upload.percent + "%" })), progressBar(upload.percent, "uploading")),
        el("td"), el("td"), el("td")));
    }
    for (const doc of documents) {
      const name = doc.sha256
        ? el("a", { href: "/documents/" + doc.id + "/file", target: "_blank", rel: "noopener", textContent: doc.name })
        : document.createTextNode(doc.name);
      rows.append(el("tr", { "data-id": String(doc.id), "data-status": doc.status },
        el("td", { class: "name" }, name), el("td", { textContent: doc.collection }), statusCell(doc),
        el("td", { class: "num", textContent: doc.pages ?? "–" }), el("td", { class: "num", textContent: doc.chunks ?? "–" }),
        actions(doc)));
    }
    empty.hidden = documents.length > 0 || uploads.size > 0;
    const outdated = documents.filter((d) => d.outdated).length;
    outdatedBox.hidden = outdated === 0;
    outdatedText.textContent = outdated === 1
      ? "1 document was indexed by an older version of the pipeline: re-index it so search finds it as well as the newer ones."
      : outdated + " documents were indexed by an older version of the pipeline: re-index them so search finds them as well as the newer ones.";
  }

  function say(message, isError) {
    notice.textContent = message;
    notice.className = "notice" + (isError ? " error" : "");
  }

  async function refresh() {
    try {
      const response = await fetch(API, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) throw new Error("status " + response.status);
      documents = (await response.json()).documents;
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

  async function mutate(method, url, doc, verb) {
    const response = await fetch(url, { method, headers: { "X-CSRFToken": csrf, Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) {
      let message = "status " + response.status;
      try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
      say(doc.name + ": " + verb + " failed (" + message + ")", true);
    } else {
      say(doc.name + ": " + verb + (verb === "delete" ? "d" : " queued"), false);
    }
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
