// pixelgrade gallery: infinite scroll, sort on change, drag-and-drop upload, re-score.
// No build step, no dependencies. Without JavaScript the pages still work: the "More
// images" link and the sort form are plain HTML.
"use strict";

(function () {
  const TOKEN_KEY = "pixelgrade-token";

  // The address printed by `pixelgrade serve` carries ?token=...: keep it for writes, and
  // take it out of the address bar (and so out of the history and of shared links).
  const here = new URL(window.location.href);
  if (here.searchParams.has("token")) {
    localStorage.setItem(TOKEN_KEY, here.searchParams.get("token"));
    here.searchParams.delete("token");
    history.replaceState(null, "", here.pathname + here.search + here.hash);
  }

  async function write(url, options) {
    for (let attempt = 0; attempt < 2; attempt++) {
      const token = localStorage.getItem(TOKEN_KEY) || "";
      const response = await fetch(url, {
        method: "POST", ...options,
        headers: { Authorization: "Bearer " + token, Accept: "application/json" },
      });
      if ((response.status === 401 || response.status === 403) && attempt === 0) {
        const given = window.prompt("API token (PIXELGRADE_API_TOKEN, printed by `pixelgrade serve`):");
        if (!given) return response;
        localStorage.setItem(TOKEN_KEY, given.trim());
        continue;
      }
      return response;
    }
  }

  async function problem(response) {
    try { return (await response.json()).detail || response.statusText; }
    catch (e) { return response.status + " " + response.statusText; }
  }

  // Sort: apply on change.
  const sort = document.querySelector("form.sort select");
  if (sort) sort.addEventListener("change", () => sort.form.submit());

  // Infinite scroll: when the "More images" link comes into view, fetch the next cards.
  const grid = document.getElementById("grid");
  if (grid && "IntersectionObserver" in window) {
    let loading = false;
    const observer = new IntersectionObserver(async (entries) => {
      if (!entries.some((e) => e.isIntersecting) || loading) return;
      const more = grid.querySelector("li.more");
      if (!more) return;
      loading = true;
      const url = new URL(more.querySelector("a").href);
      url.searchParams.set("fragment", "1");
      try {
        const response = await fetch(url);
        if (!response.ok) throw new Error(await problem(response));
        const holder = document.createElement("ul");
        holder.innerHTML = await response.text();
        more.remove();
        grid.append(...holder.children);
        const next = grid.querySelector("li.more");
        if (next) observer.observe(next);
      } catch (e) {
        more.querySelector("a").textContent = "More images (loading failed: " + e.message + ")";
      } finally {
        loading = false;
      }
    }, { rootMargin: "800px" });
    const first = grid.querySelector("li.more");
    if (first) observer.observe(first);
  }

  // Upload: drag and drop or the file picker, several files at once (three in flight).
  const zone = document.querySelector(".dropzone");
  const input = document.getElementById("files");
  const results = document.querySelector(".upload-results");
  if (zone && input && results) {
    const line = (name) => {
      const li = document.createElement("li");
      li.textContent = name + ": uploading…";
      results.prepend(li);
      return li;
    };
    const show = (li, name, image) => {
      li.textContent = "";
      const link = document.createElement("a");
      link.href = image.page;
      const img = document.createElement("img");
      img.src = image.thumbnail; img.alt = name;
      const badge = document.createElement("span");
      badge.className = "badge " + (image.band ? "band-" + image.band : "neutral");
      badge.textContent = image.score === null ? "N/A" : image.score;
      link.append(img);
      li.append(link, badge, document.createTextNode(" " + name + (image.band ? " · " + image.band : "")));
      // Scored by another process (pixelgrade watch) first: its score is the one kept.
      if (image.note) li.append(document.createTextNode(" (" + image.note + ")"));
    };
    // The chips' counts, as the table now stands (uploads add rows).
    const refreshCounts = async () => {
      try {
        const response = await fetch("/api/counts", { credentials: "same-origin" });
        if (!response.ok) return;
        const counts = await response.json();
        for (const [band, count] of Object.entries(counts)) {
          const span = document.querySelector("a.chip-" + band + " .count");
          if (span) span.textContent = Number(count).toLocaleString("en-US");
        }
      } catch (e) { /* the counts are a convenience: the next page load shows them */ }
    };
    const uploadOne = async (file) => {
      const li = line(file.name);
      const body = new FormData();
      body.append("file", file);
      try {
        const response = await write("/api/images", { body });
        if (response.status === 201) show(li, file.name, await response.json());
        else { li.className = "failed"; li.textContent = file.name + ": " + await problem(response); }
      } catch (e) {
        li.className = "failed"; li.textContent = file.name + ": " + e.message;
      }
    };
    const uploadAll = async (files) => {
      const queue = Array.from(files);
      const workers = Array.from({ length: Math.min(3, queue.length) }, async () => {
        while (queue.length) await uploadOne(queue.shift());
      });
      await Promise.all(workers);
      await refreshCounts();
      const refresh = document.createElement("li");
      refresh.innerHTML = '<a href="/?sort=newest">Show the newest images</a>';
      results.append(refresh);
    };
    input.addEventListener("change", () => { uploadAll(input.files); input.value = ""; });
    ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
      event.preventDefault(); zone.classList.add("dragging");
    }));
    ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, (event) => {
      event.preventDefault(); zone.classList.remove("dragging");
    }));
    zone.addEventListener("drop", (event) => uploadAll(event.dataTransfer.files));
  }

  // Re-score (image page): the button is busy while the image is scored again; then the
  // page's result (badge, verdict, issues, components) is replaced in place by the server's
  // new rendering of it, and a line says the new score or why there is none, or the error.
  const button = document.querySelector("button.rescore");
  if (button) {
    const status = document.querySelector(".rescore-status");
    const label = button.textContent;
    const say = (text, kind) => {
      status.textContent = text;
      status.className = "rescore-status" + (kind ? " " + kind : "");
    };
    const busy = (on) => {
      button.disabled = on;
      button.textContent = on ? "Scoring…" : label;
      if (on) button.setAttribute("aria-busy", "true"); else button.removeAttribute("aria-busy");
    };
    const outcome = (image, before) => {
      if (image.score === null) {
        return "no score, " + image.state + (image.reason ? ": " + image.reason : "");
      }
      const was = before === "" ? "" : Number(before) === image.score ? " (unchanged)"
        : " (was " + before + ")";
      return image.score + " / 100, " + image.band + was;
    };
    // The result section of this page as the server renders it now.
    const refreshResult = async () => {
      const response = await fetch(window.location.href, { credentials: "same-origin" });
      if (!response.ok) throw new Error(await problem(response));
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      const result = fresh.getElementById("result");
      if (!result) throw new Error("the page has no result section");
      document.getElementById("result").replaceWith(document.adoptNode(result));
      document.title = fresh.title;
      const picture = document.querySelector(".image-page figure img");
      if (picture) picture.src = picture.src.split("?")[0] + "?v=" + Date.now();
    };
    button.addEventListener("click", async () => {
      const before = document.getElementById("result").dataset.score;
      busy(true);
      say("Scoring the image again…");
      try {
        const response = await write(button.dataset.url, {});
        if (!response.ok) {
          say("Re-score failed: " + await problem(response), "error");
          return;
        }
        const image = await response.json();
        try {
          await refreshResult();
        } catch (e) {
          say("Re-scored: " + outcome(image, before) + ". Reload the page to see the details ("
              + e.message + ").", "ok");
          return;
        }
        say("Re-scored: " + outcome(image, before) + ".", "ok");
      } catch (e) {
        say("Re-score failed: " + e.message, "error");
      } finally {
        busy(false);
      }
    });
  }
})();
