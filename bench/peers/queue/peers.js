// The PostgreSQL job queues cairn's queue is compared with, driven the same
// way: `node peers.js <graphile|pgboss> <throughput|latency> <url> <jobs> <workers>`.
// throughput: enqueue <jobs> no-op jobs, then time draining them with
// <workers> concurrent workers. latency: workers idle and waiting, jobs
// enqueued one by one (2 ms apart); enqueue→start per job.
// Prints one JSON line. Each library runs with its defaults otherwise, but
// pg-boss fetches 100 jobs at a time and polls every 0.5 s (its fastest):
// with its defaults (one job per fetch, a 2 s poll) it drains a few jobs a
// second.
"use strict";
const [, , lib, mode, url, jobsArg, workersArg] = process.argv;
const jobs = Number(jobsArg);
const workers = Number(workersArg);
const now = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function quantile(values, q) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

async function graphile() {
  const { run, makeWorkerUtils } = require("graphile-worker");
  const utils = await makeWorkerUtils({ connectionString: url });
  await utils.migrate();
  let done = 0;
  let finished;
  const allDone = new Promise((r) => (finished = r));
  const starts = [];
  const taskList = {
    noop: async () => {
      done += 1;
      if (done === jobs) finished();
    },
    lat: async (payload) => {
      starts.push(now() - payload.t);
      if (starts.length === jobs) finished();
    },
  };
  if (mode === "throughput") {
    for (let i = 0; i < jobs; i += 1000) {
      const n = Math.min(1000, jobs - i);
      await utils.addJobs(Array.from({ length: n }, () => ({ identifier: "noop", payload: {} })));
    }
    const t = now();
    const runner = await run({ connectionString: url, concurrency: workers, taskList, noHandleSignals: true, logger: quiet() });
    await allDone;
    const secs = (now() - t) / 1000;
    await runner.stop();
    await utils.release();
    return { jobs_per_s: jobs / secs };
  }
  const runner = await run({ connectionString: url, concurrency: workers, taskList, noHandleSignals: true, logger: quiet() });
  await sleep(500);
  for (let i = 0; i < jobs; i++) {
    await utils.addJob("lat", { t: now() });
    await sleep(2);
  }
  await allDone;
  await runner.stop();
  await utils.release();
  return { p50_ms: quantile(starts, 0.5), p99_ms: quantile(starts, 0.99) };
}

function quiet() {
  const { Logger } = require("graphile-worker");
  return new Logger(() => () => {});
}

async function pgboss() {
  const PgBoss = require("pg-boss");
  const boss = new PgBoss({ connectionString: url });
  boss.on("error", () => {});
  await boss.start();
  await boss.createQueue("noop");
  await boss.createQueue("lat");
  let done = 0;
  let finished;
  const allDone = new Promise((r) => (finished = r));
  const starts = [];
  if (mode === "throughput") {
    for (let i = 0; i < jobs; i += 1000) {
      const n = Math.min(1000, jobs - i);
      await boss.insert(Array.from({ length: n }, () => ({ name: "noop", data: {} })));
    }
    const t = now();
    for (let w = 0; w < workers; w++) {
      await boss.work("noop", { batchSize: 100, pollingIntervalSeconds: 0.5 }, async (batch) => {
        done += batch.length;
        if (done >= jobs) finished();
      });
    }
    await allDone;
    const secs = (now() - t) / 1000;
    await boss.stop({ graceful: false, wait: false });
    return { jobs_per_s: jobs / secs };
  }
  for (let w = 0; w < workers; w++) {
    await boss.work("lat", { batchSize: 100, pollingIntervalSeconds: 0.5 }, async (batch) => {
      for (const j of batch) starts.push(now() - j.data.t);
      if (starts.length >= jobs) finished();
    });
  }
  await sleep(500);
  for (let i = 0; i < jobs; i++) {
    await boss.send("lat", { t: now() });
    await sleep(2);
  }
  await allDone;
  await boss.stop({ graceful: false, wait: false });
  return { p50_ms: quantile(starts, 0.5), p99_ms: quantile(starts, 0.99) };
}

(lib === "graphile" ? graphile() : pgboss())
  .then((r) => {
    console.log(JSON.stringify(r));
    process.exit(0);
  })
  .catch((e) => {
    console.error(e);
    process.exit(1);
  });
