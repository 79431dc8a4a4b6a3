#!/usr/bin/env node
'use strict';
// w1.js - W1 hit throughput from the Node client, one process: C connections, each with P
// requests in flight (P = 1: not pipelined). Keys are Zipfian (s = 1.1) over [lo, hi] like
// bench/cs_load, or uniform. Prints one JSON object (same field names as cs_load where they
// mean the same). Asserts nothing.
//
//   node bench/w1.js --port 6380 [--token T] [--query w1_profile] [--keys 1:100000]
//                    [--conns 4] [--pipeline 1] [--duration 5] [--uniform] [--path SOCK]
const { Client } = require('../lib');

function args(argv) {
  const o = { host: '127.0.0.1', port: 6380, path: null, token: process.env.CACHESVC_TOKEN || null, query: 'w1_profile', keys: '1:100000', conns: 4, pipeline: 1, duration: 5, uniform: false, zipf: 1.1 };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (k === 'uniform') o.uniform = true;
    else if (k in o) o[k] = typeof o[k] === 'number' ? Number(argv[++i]) : argv[++i];
    else throw new Error(`unknown option ${argv[i]}`);
  }
  const [lo, hi] = o.keys.split(':').map(Number);
  if (!(lo >= 0 && hi >= lo)) throw new Error('--keys LO:HI');
  return { ...o, lo, hi };
}

// Zipfian over [lo, hi] (key lo hottest): a CDF table, sampled by binary search.
function sampler(o) {
  const n = o.hi - o.lo + 1;
  if (o.uniform) return () => o.lo + Math.floor(Math.random() * n);
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) cdf[i] = sum += 1 / Math.pow(i + 1, o.zipf);
  for (let i = 0; i < n; i++) cdf[i] /= sum;
  return () => {
    const u = Math.random();
    let a = 0;
    let b = n - 1;
    while (a < b) {
      const m = (a + b) >> 1;
      if (cdf[m] < u) a = m + 1;
      else b = m;
    }
    return o.lo + a;
  };
}

async function main() {
  const o = args(process.argv);
  const key = sampler(o);
  const clients = Array.from({ length: o.conns }, () =>
    new Client({ host: o.host, port: o.port, path: o.path, token: o.token, timeout: 10000 }));
  await Promise.all(clients.map((c) => c.connect()));
  const lat = [];
  const sources = { cache: 0, replica: 0, primary: 0 };
  const errors = {};
  let requests = 0;
  const t0 = process.hrtime.bigint();
  const end = Date.now() + o.duration * 1000;
  async function lane(c) {
    while (Date.now() < end) {
      const s = process.hrtime.bigint();
      try {
        const r = await c.get(o.query, [key()]);
        sources[r.meta.source]++;
        requests++;
      } catch (e) {
        errors[e.codeName || 'other'] = (errors[e.codeName || 'other'] || 0) + 1;
      }
      lat.push(Number(process.hrtime.bigint() - s) / 1000);
    }
  }
  const lanes = [];
  for (const c of clients) for (let i = 0; i < o.pipeline; i++) lanes.push(lane(c));
  await Promise.all(lanes);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  await Promise.all(clients.map((c) => c.close()));
  lat.sort((a, b) => a - b);
  const pct = (p) => (lat.length ? Math.round(lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))]) : 0);
  const out = {
    client: `node ${process.version}`,
    query: o.query,
    conns: o.conns,
    pipeline: o.pipeline,
    duration_s: Number(secs.toFixed(2)),
    requests,
    throughput: Math.round(requests / secs),
    latency_us: { p50: pct(50), p90: pct(90), p99: pct(99), p999: pct(99.9), max: Math.round(lat[lat.length - 1] || 0) },
    sources,
    hit_ratio: requests ? Number((sources.cache / requests).toFixed(4)) : 0,
    errors: Object.values(errors).reduce((a, b) => a + b, 0),
    errors_by_code: errors,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
