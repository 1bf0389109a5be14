// ci-perf's k6 script: plays any catalog scenario (ci_perf.scenarios.catalog) with k6 built-ins only.
//
// Contract (env, set by ci_perf.runners.k6; secrets never travel in argv):
//   CI_PERF_SCENARIO      Scenario.to_json(): mix, think_time_s, stages, expected_statuses, load, and the
//                         payload table (`tasks`, `server`) that the locustfile reads too
//   CI_PERF_AUTH          Auth as JSON (headers, api key, bearer, cookies, CSRF header+cookie on writes;
//                         tokens_file: per-identity bearer tokens, contract C5, see identity.py)
//   CI_PERF_HOST          base URL of the API
//   CI_PERF_WINDOW_S      time-series window (s); widened so that a run has at most MAX_WINDOWS
//   CI_PERF_SUMMARY_FILE  where handleSummary writes k6's summary data plus a `ci_perf` block
//
// Every answer is judged as ci_perf.scenarios.answers.judge does (contract C2). k6's http_req_failed only
// sees statuses, so three custom metrics carry the rest: ci_perf_ok (Trend: durations of the right
// answers, the success-only latency), ci_perf_wrong (Counter: 2xx answers that are wrong, tagged with a
// reason code) and ci_perf_decisions (Counter: 2xx policy answers by `decision`). The first line of each
// distinct non-2xx failure text a VU meets goes to stderr (`ci-perf failure {json}`), so the result can
// name the body behind each status count.
//
// Exact statistics without per-request output: k6 itself computes every count, failure rate and
// percentile for the end-of-test summary. Requests are tagged with `name` (the endpoint name of the
// payload table) and `method`; never-failing thresholds (empty arrays) declare the per-endpoint
// sub-metrics. Windows are metrics of their own: a request adds one sample to its window's ci_perf_ok_w<i>
// (Trend: a right answer's duration) or ci_perf_failed_w<i> (Counter: a failure), each with per-endpoint
// sub-metrics, so a window's requests are the two counts together. Non-2xx answers also go to
// ci_perf_status (per endpoint and status; 429s per window). ci_perf_ok's samples carry `win` for the
// per-request output (--histogram), which the parser reads per window.
import http from 'k6/http';
import exec from 'k6/execution';
import { sleep } from 'k6';
import { SharedArray } from 'k6/data';
import { Counter, Trend } from 'k6/metrics';
import crypto from 'k6/crypto';

const FORMAT = 3; // 3: windows in metrics of their own, statuses in ci_perf_status
// k6 compares every sample's tags with every sub-metric of the sample's metric (~80 ns each, k6 1.1.0).
// Format 2 declared per-window and per-status sub-metrics on the metrics every request feeds: 8
// endpoints x 30 windows cost ~1,000 comparisons (~80 us of CPU) per request. Now a request meets the
// per-endpoint ones of the metrics it feeds (5 per endpoint for a right answer), whatever the windows;
// MAX_WINDOWS only bounds the summary's size.
const MAX_WINDOWS = 30;
// Statuses counted per endpoint so the result can say which errors happened.
const ERROR_STATUSES = [0, 400, 401, 403, 404, 405, 408, 409, 413, 415, 422, 429, 500, 501, 502, 503, 504];
const TREND_STATS = ['min', 'avg', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'];
const DECISIONS = ['allow', 'deny', 'other'];
const OTHER_2XX = [200, 201, 202, 203, 204, 206];
const MAX_IDS = 200; // ids a VU remembers for reads; bounded so long soaks don't grow memory
const BODY_CHARS = 80;
const MAX_LOGGED = 50; // distinct failure texts a VU writes to stderr

if (!__ENV.CI_PERF_SCENARIO) {
  throw new Error('CI_PERF_SCENARIO is not set: run this script through `ci-perf run --tool k6`, '
    + 'or set it to the JSON of ci_perf.scenarios.catalog.Scenario.to_json()');
}
const SC = JSON.parse(__ENV.CI_PERF_SCENARIO);
const AUTH = JSON.parse(__ENV.CI_PERF_AUTH || '{}');
const HOST = (__ENV.CI_PERF_HOST || 'http://127.0.0.1:8000').replace(/\/+$/, '');
const THINK = SC.think_time_s || [0, 0];
const GRACE_S = Math.ceil(THINK[1]) + 3; // lets a VU finish its request and think time at the end
const TOTAL_S = SC.duration_s + GRACE_S;
const WINDOW_S = Math.max(Number(__ENV.CI_PERF_WINDOW_S) || 5, Math.ceil(TOTAL_S / MAX_WINDOWS));
const N_WINDOWS = Math.ceil(TOTAL_S / WINDOW_S);
const EXPECTED = SC.expected_statuses || [];
const PAYLOADS = SC.tasks;
const SERVER = SC.server;
// Requests a task may issue besides its own: a read falls back on registering, a registration reads back.
const FALLBACK_REGISTER = { method: 'POST', path: '/api/v1/servers/', name: '/api/v1/servers/', status: 201,
  keys: ['server_id', 'status'], tools: 3, query: {}, policies: [] };
const READ_BACK = { method: 'GET', path: '/api/v1/servers/{id}', name: '/api/v1/servers/{id}', status: 200,
  keys: ['id', 'name', 'status'], query: {}, policies: [] };

const ok = new Trend('ci_perf_ok', true);
const wrong = new Counter('ci_perf_wrong');
const decisions = new Counter('ci_perf_decisions');
const statuses = new Counter('ci_perf_status'); // non-2xx answers, expected ones too (429s per window)
// Per window i: durations of right answers, and failures (error statuses + wrong answers); requests
// are the two counts together.
const okWin = [];
const failedWin = [];
for (let w = 0; w < N_WINDOWS; w++) {
  okWin.push(new Trend(`ci_perf_ok_w${w}`, true));
  failedWin.push(new Counter(`ci_perf_failed_w${w}`));
}

// --- load shape ----------------------------------------------------------------------------------

function ms(seconds) {
  return `${Math.max(1, Math.round(seconds * 1000))}ms`;
}

// Returns [executor config, planned stages as [seconds, target] for the parser's users per window].
function loadShape() {
  const users = Math.max(1, SC.users);
  const grace = { gracefulStop: `${GRACE_S}s` };
  if (SC.stages && SC.stages.length) {
    let prev = 0;
    const stages = SC.stages.map((s) => {
      const st = { duration: ms((s.until_fraction - prev) * SC.duration_s),
        target: Math.round(s.users_fraction * users) };
      prev = s.until_fraction;
      return st;
    });
    return [{ executor: 'ramping-vus', startVUs: 0, stages, gracefulRampDown: `${GRACE_S}s`, ...grace },
      { start_users: 0, stages: stages.map((s) => [parseInt(s.duration, 10) / 1000, s.target]) }];
  }
  // Locust starts its first user at once and one more every 1/spawn_rate s: start 1 VU, ramp the rest.
  const ramp = (users - 1) / Math.max(SC.spawn_rate, 0.001);
  if (ramp < 1) {
    return [{ executor: 'constant-vus', vus: users, duration: ms(SC.duration_s), ...grace },
      { start_users: users, stages: [[SC.duration_s, users]] }];
  }
  const rampS = Math.min(ramp, SC.duration_s);
  const reached = Math.round(1 + ((users - 1) * rampS) / ramp);
  const stages = [{ duration: ms(rampS), target: reached }];
  if (SC.duration_s > rampS) stages.push({ duration: ms(SC.duration_s - rampS), target: reached });
  return [{ executor: 'ramping-vus', startVUs: 1, stages, gracefulRampDown: `${GRACE_S}s`, ...grace },
    { start_users: 1, stages: stages.map((s) => [parseInt(s.duration, 10) / 1000, s.target]) }];
}

// Every request spec a run may send, by `METHOD name`.
function specs() {
  const out = new Map();
  for (const spec of Object.values(PAYLOADS)) out.set(`${spec.method} ${spec.name}`, spec);
  for (const spec of Object.values(PAYLOADS)) {
    if (spec.path.includes('{id}') && !out.has(`POST ${FALLBACK_REGISTER.name}`)) {
      out.set(`POST ${FALLBACK_REGISTER.name}`, FALLBACK_REGISTER);
    }
    if (spec.read_back && !out.has(`GET ${READ_BACK.name}`)) out.set(`GET ${READ_BACK.name}`, READ_BACK);
  }
  return out;
}

// The reasons a 2xx answer of `spec` can be wrong: [tag code, C2 text]. Tag values may not hold commas.
function reasons(spec) {
  const out = [['not_json', 'wrong answer: not JSON']];
  for (const s of OTHER_2XX) {
    if (s !== spec.status) out.push([`status_${s}`, `wrong answer: status ${s}, expected ${spec.status}`]);
  }
  for (const k of spec.keys) out.push([`missing_${k}`, `wrong answer: missing ${k}`]);
  const expects = [...new Set(spec.policies.map((p) => p.expect))];
  for (const e of expects) {
    for (const d of DECISIONS) {
      if (d !== e) out.push([`decision_${d}_expected_${e}`, `wrong answer: decision ${d}, expected ${e}`]);
    }
  }
  if (spec === READ_BACK) out.push(['id_mismatch', 'wrong answer: id mismatch']);
  return out;
}

function declareThresholds() {
  const t = {};
  const all = specs();
  const table = {};
  for (const [key, spec] of all) {
    const sel = `name:${spec.name},method:${spec.method}`;
    for (const m of ['http_reqs', 'http_req_failed', 'http_req_duration', 'ci_perf_ok', 'ci_perf_wrong']) {
      t[`${m}{${sel}}`] = [];
    }
    for (const s of ERROR_STATUSES) t[`ci_perf_status{${sel},status:${s}}`] = [];
    for (let w = 0; w < N_WINDOWS; w++) for (const m of ['ci_perf_ok', 'ci_perf_failed']) t[`${m}_w${w}{${sel}}`] = [];
    table[key] = reasons(spec);
    for (const [code] of table[key]) t[`ci_perf_wrong{${sel},reason:${code}}`] = [];
  }
  // 429s per window, counted even where they are expected (rate_limit_test's finding needs them).
  for (let w = 0; w < N_WINDOWS; w++) t[`ci_perf_status{win:${w},status:429}`] = [];
  for (const d of DECISIONS) t[`ci_perf_decisions{decision:${d}}`] = [];
  t.ci_perf_ok = [];
  t.ci_perf_wrong = [];
  const endpoints = [...all.keys()].sort().map((k) => [all.get(k).method, all.get(k).name]);
  return [t, endpoints, table];
}

const [EXECUTOR, PLAN] = loadShape();
const [THRESHOLDS, ENDPOINTS, REASONS] = declareThresholds();

export const options = {
  scenarios: { [SC.name]: EXECUTOR },
  thresholds: THRESHOLDS,
  summaryTrendStats: TREND_STATS,
};

// 2xx (and the scenario's expected statuses) pass http_req_failed; the body is judged below.
http.setResponseCallback(http.expectedStatuses({ min: 200, max: 299 }, ...EXPECTED));

// --- identities (contract C5; the same rules as ci_perf.scenarios.identity) ------------------------

// Parsed once, shared read-only by every VU: a VU decodes only its own identity's element.
const IDENTITIES = AUTH.tokens_file ? new SharedArray('ci-perf identities', () => {
  const doc = JSON.parse(open(AUTH.tokens_file));
  return doc.subjects.map((subject, i) => ({ subject, tokens: doc.tokens[i] }));
}) : null;
const USER_NAMESPACE = '6f1c2d3e8a4b5c6d9e0fa1b2c3d4e5f6';

// uuid5(USER_NAMESPACE, name), as Python's uuid.uuid5.
function uuid5(name) {
  const bytes = new Uint8Array(16 + name.length);
  for (let i = 0; i < 16; i++) bytes[i] = parseInt(USER_NAMESPACE.substr(i * 2, 2), 16);
  for (let i = 0; i < name.length; i++) bytes[16 + i] = name.charCodeAt(i); // ASCII names only
  const h = crypto.sha1(bytes.buffer, 'hex').slice(0, 32).split('');
  h[12] = '5';
  h[16] = ((parseInt(h[16], 16) & 0x3) | 0x8).toString(16);
  const x = h.join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

let identity = null; // this VU's: { userId, tokens: [[use_until, jwt], ...] | null, at }

function me() {
  if (identity === null) {
    const n = exec.vu.idInTest - 1; // global VU number, 0-based
    if (IDENTITIES) {
      const e = IDENTITIES[n % IDENTITIES.length];
      identity = { userId: e.subject, tokens: e.tokens, at: 0 };
    } else {
      identity = { userId: uuid5(`ci-perf-user-${n}`), tokens: null, at: 0 };
    }
  }
  return identity;
}

// The first token still usable now, else the last; the cursor only moves forward.
function bearer(id) {
  const now = Date.now() / 1000;
  const last = id.tokens.length - 1;
  while (id.at < last && id.tokens[id.at][0] <= now) id.at += 1;
  return id.tokens[id.at][1];
}

// --- requests ------------------------------------------------------------------------------------

function windowIndex() {
  return Math.min(Math.floor(exec.instance.currentTestRunDuration / 1000 / WINDOW_S), N_WINDOWS - 1);
}

// Tags objects, made once per endpoint and window: a fresh object (a literal with a spread) on each add
// costs k6 about as much as the add itself.
const TAGS = new Map(); // spec -> { endpoint: {name, method}, windows: [{name, method, win}, ...] }

function tagsOf(spec) {
  let t = TAGS.get(spec);
  if (t === undefined) {
    t = { endpoint: { name: spec.name, method: spec.method }, windows: [] };
    for (let w = 0; w < N_WINDOWS; w++) t.windows.push({ name: spec.name, method: spec.method, win: String(w) });
    TAGS.set(spec, t);
  }
  return t;
}

function params(tags, write) {
  const headers = Object.assign({}, AUTH.headers || {});
  const cookies = Object.assign({}, AUTH.cookies || {});
  if (AUTH.api_key) headers[AUTH.api_key_header || 'X-API-Key'] = AUTH.api_key;
  if (AUTH.bearer_token) headers.Authorization = `Bearer ${AUTH.bearer_token}`;
  const id = me();
  if (id.tokens) headers.Authorization = `Bearer ${bearer(id)}`;
  if (write) {
    headers['Content-Type'] = 'application/json';
    if (AUTH.csrf_token) { // SARK's double-submit CSRF: header and cookie, on writes only
      headers[AUTH.csrf_header || 'X-CSRF-Token'] = AUTH.csrf_token;
      cookies[AUTH.csrf_cookie || 'csrf_token'] = AUTH.csrf_token;
    }
  }
  return { headers, cookies, tags };
}

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

function decisionValue(v) {
  return v === 'allow' || v === 'deny' ? v : 'other';
}

const logged = new Set();

function logFailure(spec, text) {
  const key = `${spec.method} ${spec.name} ${text}`;
  if (logged.has(key) || logged.size >= MAX_LOGGED) return;
  logged.add(key);
  console.warn(`ci-perf failure ${JSON.stringify({ method: spec.method, name: spec.name, text })}`);
}

// [failure code or '', body]: ci_perf.scenarios.answers.judge, restated.
function judge(res, spec, expect) {
  if (EXPECTED.includes(res.status)) return ['', null];
  if (!res.status) return [null, null];
  if (res.status < 200 || res.status > 299) return [null, null];
  let body = null;
  try { body = JSON.parse(res.body); } catch (e) { body = null; }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return ['not_json', null];
  if (expect && 'decision' in body) decisions.add(1, { decision: decisionValue(body.decision) });
  if (res.status !== spec.status) return [`status_${res.status}`, body];
  for (const k of spec.keys) if (!(k in body)) return [`missing_${k}`, body];
  if (expect && decisionValue(body.decision) !== expect) {
    return [`decision_${decisionValue(body.decision)}_expected_${expect}`, body];
  }
  return ['', body];
}

// One request of the table, judged; the JSON body of a right answer, else null.
function send(spec, { path, query, body, expect, check } = {}) {
  let url = HOST + (path || spec.path);
  const q = Object.entries(query || {}).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  if (q.length) url += `?${q.join('&')}`;
  const { endpoint: tags, windows } = tagsOf(spec);
  const win = windowIndex(); // of the request's start
  const write = spec.method === 'POST';
  const res = write ? http.post(url, JSON.stringify(body), params(tags, true)) : http.get(url, params(tags, false));
  if (res.status < 200 || res.status > 299) statuses.add(1, { ...tags, status: String(res.status), win: String(win) });
  let [code, answer] = judge(res, spec, expect);
  if (code === '' && check && answer !== null) code = check(answer);
  if (code !== '') failedWin[win].add(1, tags);
  if (code === null) { // not 2xx: http_req_failed counted it; note its text once
    const text = res.status ? `HTTP ${res.status}` : `connection error: ${res.error || 'unknown'}`;
    const start = res.status && typeof res.body === 'string' ? res.body.replace(/\s+/g, ' ').trim() : '';
    logFailure(spec, start ? `${text}: ${start.slice(0, BODY_CHARS)}` : text);
    return null;
  }
  if (code) {
    wrong.add(1, { ...tags, reason: code });
    return null;
  }
  ok.add(res.timings.duration, windows[win]); // win: for the per-request output's windows (--histogram)
  okWin[win].add(res.timings.duration, tags);
  return answer;
}

function uid() {
  return `${exec.vu.idInTest}-${exec.vu.iterationInScenario}-${Math.random().toString(36).slice(2, 8)}`;
}

function fill(value, id) {
  if (typeof value === 'string') return value.split('{uid}').join(id);
  if (Array.isArray(value)) return value.map((v) => fill(v, id));
  if (value && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = fill(v, id);
    return out;
  }
  return value;
}

// A registration from the table's template (catalog.SERVER), as the locustfile builds it.
function serverBody(toolCount) {
  const body = fill(SERVER.template, uid());
  const tools = SERVER.tools;
  body.tools = [];
  for (let i = 0; i < toolCount; i++) {
    const t = tools[i % tools.length];
    body.tools.push(Object.assign({}, t, { name: t.name + (i >= tools.length ? `_${i}` : '') }));
  }
  body.sensitivity_level = pick(SERVER.sensitivity);
  body.metadata = { tags: pick(SERVER.tags), team_id: SERVER.team_id, owner_id: me().userId, source: 'ci-perf' };
  return body;
}

const ids = []; // servers this VU registered
const cursors = {}; // paging task -> next_cursor of its previous page

function register(spec) {
  const answer = send(spec, { body: serverBody(spec.tools) });
  const id = answer && answer.server_id != null ? String(answer.server_id) : null;
  if (id === null) return null;
  ids.push(id);
  if (ids.length > MAX_IDS) ids.shift();
  if (spec.read_back) {
    send(READ_BACK, { path: `/api/v1/servers/${id}`,
      check: (b) => (String(b.id) === id ? '' : 'id_mismatch') });
  }
  return id;
}

function play(task) {
  const spec = PAYLOADS[task];
  if (spec.policies.length) {
    const policy = pick(spec.policies);
    const sid = policy.on_server && ids.length ? ids[ids.length - 1] : null;
    send(spec, { expect: policy.expect, body: { user_id: me().userId, action: policy.action, tool: policy.tool,
      server_id: sid, parameters: policy.parameters } });
  } else if (spec.method === 'POST') {
    register(spec);
  } else if (spec.path.includes('{id}')) {
    const id = ids.length ? pick(ids) : register(FALLBACK_REGISTER);
    if (id) send(spec, { path: spec.path.replace('{id}', id) });
  } else {
    const query = {};
    for (const [k, values] of Object.entries(spec.query)) query[k] = pick(values);
    if (cursors[task]) query.cursor = cursors[task];
    const page = send(spec, { query });
    if (spec.paging) { // follow the cursor while there are pages; start over after the last
      cursors[task] = page && page.has_more && page.next_cursor ? String(page.next_cursor) : null;
    }
  }
}

const MIX = SC.mix.filter(([, weight]) => weight > 0);
const TOTAL_WEIGHT = MIX.reduce((sum, [, weight]) => sum + weight, 0);
for (const [task] of MIX) {
  if (!(task in PAYLOADS)) throw new Error(`unknown task ${task} in CI_PERF_SCENARIO`);
}
// Walk scenarios: the mix in order, weights as repeats reduced by their gcd (as the locustfile).
function gcd(a, b) { return b ? gcd(b, a % b) : a; }
const STEP = MIX.reduce((g, [, w]) => gcd(g, w), 0) || 1;
const SEQUENCE = [];
for (const [task, weight] of MIX) for (let i = 0; i < weight / STEP; i++) SEQUENCE.push(task);

function pickTask() {
  if (SC.walk) return SEQUENCE[exec.vu.iterationInScenario % SEQUENCE.length];
  let r = Math.random() * TOTAL_WEIGHT;
  for (const [task, weight] of MIX) {
    r -= weight;
    if (r < 0) return task;
  }
  return MIX[MIX.length - 1][0];
}

// One iteration = one weighted task, then think time (as Locust's wait_time between tasks).
export default function () {
  const task = pickTask();
  play(task);
  if (THINK[1] > 0) sleep(THINK[0] + Math.random() * (THINK[1] - THINK[0]));
}

// --- summary -------------------------------------------------------------------------------------

function fmt(v) {
  return v === undefined ? '-' : v.toFixed(1);
}

function textSummary(data) {
  const m = data.metrics;
  const lines = [`ci-perf k6 summary: ${SC.name} (${(data.state.testRunDurationMs / 1000).toFixed(1)} s)`,
    'endpoint'.padEnd(48) + 'requests'.padStart(10) + 'failed'.padStart(8) + 'p50 ms'.padStart(9)
      + 'p95 ms'.padStart(9) + 'p99 ms'.padStart(9)];
  const row = (label, sel) => {
    const n = m[`http_reqs${sel}`], f = m[`http_req_failed${sel}`], d = m[`ci_perf_ok${sel}`];
    const w = m[`ci_perf_wrong${sel}`];
    if (!n || !n.values.count) return;
    const failed = f.values.passes + (w ? w.values.count : 0);
    const v = d ? d.values : {};
    lines.push(label.padEnd(48) + String(n.values.count).padStart(10) + String(failed).padStart(8)
      + fmt(v.med).padStart(9) + fmt(v['p(95)']).padStart(9) + fmt(v['p(99)']).padStart(9));
  };
  for (const [method, name] of ENDPOINTS) row(`${method} ${name}`, `{name:${name},method:${method}}`);
  row('Aggregated', '');
  lines.push('(latency over right answers only; failed = error statuses + wrong answers)');
  return `${lines.join('\n')}\n`;
}

export function handleSummary(data) {
  data.ci_perf = {
    format: FORMAT, scenario: SC.name, window_s: WINDOW_S, windows: N_WINDOWS,
    endpoints: ENDPOINTS, error_statuses: ERROR_STATUSES, expected_statuses: EXPECTED,
    reasons: REASONS, decisions: DECISIONS,
    users: SC.users, duration_s: SC.duration_s, plan: PLAN,
    // A shard (--execution-segment) runs its share of the plan's VUs; merging shards needs to know.
    execution_segment: String(exec.test.options.executionSegment || ''),
  };
  const out = { stdout: textSummary(data) };
  if (__ENV.CI_PERF_SUMMARY_FILE) out[__ENV.CI_PERF_SUMMARY_FILE] = JSON.stringify(data);
  return out;
}
