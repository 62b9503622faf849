// The original stack's per-image analysis, as a throughput peer for bench/backfill.py:
// sharp (libvips) `metadata()` then `stats()` on each image file, read from disk.
//
// Input (JSON on stdin): {"folder": "...", "names": ["a.jpg", ...], "processes": 2}
// Output (one JSON line on stdout): {"images", "seconds", "images_per_s", "processes",
// "cpu_seconds" (of the children, measured loop only), "sharp", "vips", "errors"}.
//
// One child process per requested process, each with libvips limited to one thread
// (sharp.concurrency(1)) and its operation cache off, so the figure is per core and no image
// is served from a cache. The children take the names round robin, warm up on their first
// file, wait for every sibling to be ready, then the clock runs until the last one finishes.
import { fork } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";

const self = fileURLToPath(import.meta.url);

async function analyse(file) {
  const image = sharp(file);
  const meta = await image.metadata();
  const stats = await image.stats();
  return meta.width > 0 && stats.channels.length > 0;
}

async function child() {
  sharp.concurrency(1);
  sharp.cache(false);
  process.once("message", async (job) => {
    const files = job.names.map((n) => path.join(job.folder, n));
    if (files.length > 0) await analyse(files[0]); // warm-up: libvips loaders, page cache
    process.send({ ready: true });
    process.once("message", async () => {
      let done = 0;
      const errors = [];
      const cpu = process.cpuUsage();
      for (const file of files) {
        try {
          if (await analyse(file)) done += 1;
        } catch (error) {
          errors.push(`${path.basename(file)}: ${error.message}`);
        }
      }
      const used = process.cpuUsage(cpu);
      process.send({ done, errors, cpu_seconds: (used.user + used.system) / 1e6 });
    });
  });
}

async function parent() {
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  const job = JSON.parse(input);
  const processes = Math.max(1, job.processes ?? 1);
  const children = [];
  for (let i = 0; i < processes; i += 1) {
    const names = job.names.filter((_, k) => k % processes === i);
    const worker = fork(self, ["--child"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    worker.send({ folder: job.folder, names });
    children.push(worker);
  }
  const next = (worker) => new Promise((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("exit", (code) => reject(new Error(`sharp child exited with code ${code}`)));
  });
  await Promise.all(children.map(next)); // all warmed up
  const finished = children.map(next);
  const started = process.hrtime.bigint();
  children.forEach((worker) => worker.send({ go: true }));
  const results = await Promise.all(finished);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  children.forEach((worker) => { if (worker.connected) worker.disconnect(); });
  const images = results.reduce((sum, r) => sum + r.done, 0);
  console.log(JSON.stringify({
    images, seconds, images_per_s: images / seconds, processes,
    cpu_seconds: results.reduce((sum, r) => sum + r.cpu_seconds, 0),
    sharp: sharp.versions.sharp, vips: sharp.versions.vips,
    errors: results.flatMap((r) => r.errors).slice(0, 5),
  }));
}

if (process.argv.includes("--child")) {
  child();
} else {
  parent().catch((error) => {
    console.error(`sharp-stats: ${error.message}`);
    process.exit(1);
  });
}
