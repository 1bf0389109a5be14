// ci-perf's k6 script: plays any catalog scenario (ci_perf.scenarios.catalog) with k6 built-ins only.
//
// Contract (env, set by ci_perf.runners.k6; secrets never travel in argv):
//   CI_PERF_SCENARIO      Scenario.to_json(): mix, think_time_s, stages, expected_statuses, tasks, load
//   CI_PERF_AUTH          Auth as JSON (headers, api key, bearer, cookies, CSRF header+cookie on writes;
//                         tokens_file: per-identity bearer tokens, contract C5, see identity.py)
//   CI_PERF_HOST          base URL of the API
//   CI_PERF_WINDOW_S      time-series window (s); widened so that a run has at most MAX_WINDOWS
//   CI_PERF_SUMMARY_FILE  where handleSummary writes k6's summary data plus a `ci_perf` block
//
// Exact statistics without per-request output: every request is tagged with `name` (the endpoint
// name of catalog.TASKS) and `win` (its time window), and never-failing thresholds (empty arrays)
// declare the sub-metrics per name, per window and per (name, window), so k6 itself computes their
// counts, failure rates and percentiles for the end-of-test summary.
import http from 'k6/http';
import exec from 'k6/execution';
import { check, sleep } from 'k6';
import { SharedArray } from 'k6/data';
import crypto from 'k6/crypto';

const FORMAT = 1;
// k6 compares every sample's tags with every declared sub-metric of its metric (~80 ns each, measured
// with k6 1.1.0): 8 endpoints x 30 windows x 3 metrics adds ~70 us of k6 CPU per request, so a long
// run gets wider windows rather than more of them.
const MAX_WINDOWS = 30;
// Statuses counted per endpoint so the result can say which errors happened.
const ERROR_STATUSES = [0, 400, 401, 403, 404, 405, 408, 409, 413, 415, 422, 429, 500, 501, 502, 503, 504];
const METRICS = ['http_reqs', 'http_req_failed', 'http_req_duration'];
const TREND_STATS = ['min', 'avg', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'];
const MAX_IDS = 200; // ids a VU remembers for reads; bounded so long soaks don't grow memory

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

// Endpoint names per task; get_server and register_then_read also issue the requests of others.
const NAMES = {};
for (const [task, spec] of Object.entries(SC.tasks)) NAMES[task] = spec.name;
const READ_NAME = '/api/v1/servers/{id}';
const REGISTER_NAME = '/api/v1/servers/';

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

// Endpoints are (method, name) as in Locust: POST and GET /api/v1/servers/ share a name.
function declareThresholds() {
  const t = {};
  const eps = new Map(Object.values(SC.tasks).map((e) => [`${e.method} ${e.name}`, [e.method, e.name]]));
  if ('get_server' in NAMES) eps.set(`POST ${REGISTER_NAME}`, ['POST', REGISTER_NAME]); // first, register
  if ('register_then_read' in NAMES) eps.set(`GET ${READ_NAME}`, ['GET', READ_NAME]);
  for (const [method, name] of eps.values()) {
    const sel = `name:${name},method:${method}`;
    for (const m of METRICS) t[`${m}{${sel}}`] = [];
    for (const s of ERROR_STATUSES) t[`http_reqs{${sel},status:${s}}`] = [];
    for (let w = 0; w < N_WINDOWS; w++) for (const m of METRICS) t[`${m}{${sel},win:${w}}`] = [];
  }
  for (let w = 0; w < N_WINDOWS; w++) for (const m of METRICS) t[`${m}{win:${w}}`] = [];
  // 429s per window, counted even where they are expected (rate_limit_test's finding needs them).
  for (let w = 0; w < N_WINDOWS; w++) t[`http_reqs{win:${w},status:429}`] = [];
  return [t, [...eps.keys()].sort().map((k) => eps.get(k))];
}

const [EXECUTOR, PLAN] = loadShape();
const [THRESHOLDS, ENDPOINTS] = declareThresholds();

export const options = {
  scenarios: { [SC.name]: EXECUTOR },
  thresholds: THRESHOLDS,
  summaryTrendStats: TREND_STATS,
};

http.setResponseCallback(http.expectedStatuses({ min: 200, max: 399 }, ...EXPECTED));

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

function params(name, write) {
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
  return { headers, cookies, tags: { name, win: String(windowIndex()) } };
}

function get(path, name) {
  return http.get(HOST + path, params(name, false));
}

function post(path, body, name) {
  return http.post(HOST + path, JSON.stringify(body), params(name, true));
}

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

function uid() {
  return `${exec.vu.idInTest}-${exec.vu.iterationInScenario}-${Math.random().toString(36).slice(2, 8)}`;
}

const TOOL_NAMES = ['read_file', 'query_database', 'send_email', 'list_items', 'delete_records'];
const SENSITIVITY = ['low', 'medium', 'high'];
const ids = []; // servers this VU registered

function serverBody(toolCount) {
  const id = uid();
  const tools = [];
  for (let i = 0; i < toolCount; i++) {
    tools.push({
      name: `${TOOL_NAMES[i % TOOL_NAMES.length]}_${i}`,
      description: `Load-test tool ${i}`,
      parameters: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] },
      sensitivity_level: SENSITIVITY[i % SENSITIVITY.length],
    });
  }
  return {
    name: `ci-perf-${id}`, transport: 'http', endpoint: `http://mcp-${id}.perf.invalid:8080/mcp`,
    version: '1.0.0', description: 'Registered by a ci-perf load test', capabilities: ['tools'],
    tools, sensitivity_level: pick(SENSITIVITY), metadata: { source: 'ci-perf', tool: 'k6' },
  };
}

function register(toolCount, name) {
  const res = post('/api/v1/servers/', serverBody(toolCount), name);
  let id = null;
  if (res.status === 201 || res.status === 200) {
    try { id = res.json('server_id') || null; } catch (e) { id = null; }
  }
  if (id) {
    ids.push(id);
    if (ids.length > MAX_IDS) ids.shift();
  }
  return id;
}

function someServerId() {
  return ids.length ? pick(ids) : register(3, REGISTER_NAME);
}

const TASKS = {
  register_server: () => { register(3, NAMES.register_server); },
  register_server_many_tools: () => { register(50, NAMES.register_server_many_tools); },
  list_servers: () => {
    const limit = pick([10, 25, 50]);
    get(`/api/v1/servers/?limit=${limit}&offset=${limit * pick([0, 0, 1, 2])}`, NAMES.list_servers);
  },
  search_servers: () => {
    get(`/api/v1/servers/?search=${encodeURIComponent(pick(['ci-perf', 'mcp', 'analytics', 'db']))}`,
      NAMES.search_servers);
  },
  get_server: () => {
    const id = someServerId();
    if (id) get(`/api/v1/servers/${id}`, NAMES.get_server);
  },
  evaluate_tool_invocation: () => {
    post('/api/v1/policy/evaluate', { user_id: me().userId, action: 'tool:invoke', tool: pick(TOOL_NAMES),
      server_id: ids.length ? pick(ids) : null, parameters: {} }, NAMES.evaluate_tool_invocation);
  },
  evaluate_server_action: () => {
    post('/api/v1/policy/evaluate', { user_id: me().userId, action: 'server:register', server_name: `ci-perf-${uid()}`,
      parameters: { sensitivity_level: pick(SENSITIVITY) } }, NAMES.evaluate_server_action);
  },
  health: () => { get('/health/', NAMES.health); },
  burst_list: () => { get('/api/v1/servers/?limit=10&offset=0', NAMES.burst_list); },
  register_then_read: () => {
    const id = register(3, NAMES.register_then_read);
    const res = id ? get(`/api/v1/servers/${id}`, READ_NAME) : null;
    check(res, { 'read back what was registered': (r) => r !== null && r.status === 200
      && (() => { try { return r.json('id') === id || r.json('server_id') === id; } catch (e) { return false; } })() },
    { name: NAMES.register_then_read });
  },
};

const MIX = SC.mix.filter(([, weight]) => weight > 0);
const TOTAL_WEIGHT = MIX.reduce((sum, [, weight]) => sum + weight, 0);
for (const [task] of MIX) {
  if (!(task in TASKS)) throw new Error(`unknown task ${task} in CI_PERF_SCENARIO`);
}

function pickTask() {
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
  TASKS[task]();
  if (task !== 'burst_list' && THINK[1] > 0) sleep(THINK[0] + Math.random() * (THINK[1] - THINK[0]));
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
    const n = m[`http_reqs${sel}`], f = m[`http_req_failed${sel}`], d = m[`http_req_duration${sel}`];
    if (!n || !n.values.count) return;
    lines.push(label.padEnd(48) + String(n.values.count).padStart(10) + String(f.values.passes).padStart(8)
      + fmt(d.values.med).padStart(9) + fmt(d.values['p(95)']).padStart(9) + fmt(d.values['p(99)']).padStart(9));
  };
  for (const [method, name] of ENDPOINTS) row(`${method} ${name}`, `{name:${name},method:${method}}`);
  row('Aggregated', '');
  return `${lines.join('\n')}\n`;
}

export function handleSummary(data) {
  data.ci_perf = {
    format: FORMAT, scenario: SC.name, window_s: WINDOW_S, windows: N_WINDOWS,
    endpoints: ENDPOINTS, error_statuses: ERROR_STATUSES, expected_statuses: EXPECTED,
    users: SC.users, duration_s: SC.duration_s, plan: PLAN,
    // A shard (--execution-segment) runs its share of the plan's VUs; merging shards needs to know.
    execution_segment: String(exec.test.options.executionSegment || ''),
  };
  const out = { stdout: textSummary(data) };
  if (__ENV.CI_PERF_SUMMARY_FILE) out[__ENV.CI_PERF_SUMMARY_FILE] = JSON.stringify(data);
  return out;
}
