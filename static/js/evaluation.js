// The Evaluation page: while a run started here is queued or running, poll its progress (a small
// JSON document) and show it; when one ends, reload so the history, its chart and the gate's
// verdict include it.
(function () {
  "use strict";
  const section = document.getElementById("eval-jobs");
  if (!section || !section.hasAttribute("data-active")) return;
  const POLL_MS = 2000;

  function update(job) {
    const item = section.querySelector(`[data-job="${job.id}"]`);
    if (!item) return false;
    const wasFinished = !["queued", "running"].includes(item.dataset.status);
    item.dataset.status = job.status;
    const status = item.querySelector(".job-status");
    status.textContent = job.status;
    status.className = `status job-status status-${job.status}`;
    const bar = item.querySelector(".job-progress");
    if (bar) { bar.value = job.progress; bar.textContent = `${job.progress}%`; }
    item.querySelector(".job-stage").textContent = job.stage;
    const notice = item.querySelector(".job-notice");
    notice.textContent = job.notice;
    notice.hidden = !job.notice;
    return job.finished && !wasFinished;
  }

  async function poll() {
    try {
      const response = await fetch(section.dataset.url, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const { jobs } = await response.json();
        if (jobs.map(update).some(Boolean)) { window.location.reload(); return; }
        if (!jobs.some((job) => !job.finished)) return;
      }
    } catch (error) { /* the server restarting: try again */ }
    window.setTimeout(poll, POLL_MS);
  }
  window.setTimeout(poll, POLL_MS);
})();
