// A user's own k6 script, as ci-perf may be given with --script: it reads only CI_PERF_HOST and
// CI_PERF_AUTH, tags requests with `name`, and declares thresholds on two of those sub-metrics.
import http from 'k6/http';
import { sleep } from 'k6';

const HOST = __ENV.CI_PERF_HOST;
const AUTH = JSON.parse(__ENV.CI_PERF_AUTH || '{}');
const headers = AUTH.api_key ? { 'X-API-Key': AUTH.api_key } : {};

export const options = {
  vus: 2,
  duration: '4s',
  thresholds: {
    'http_req_duration{name:/health/}': ['p(95)<5000'],
    'http_reqs{name:/health/}': [],
    'http_req_failed{name:/health/}': [],
    'http_req_duration{name:/api/v1/servers/?search}': [],
    'http_reqs{name:/api/v1/servers/?search}': [],
  },
};

export default function () {
  http.get(`${HOST}/health/`, { tags: { name: '/health/' } });
  http.get(`${HOST}/api/v1/servers/?search=x`, { headers, tags: { name: '/api/v1/servers/?search' } });
  sleep(0.1);
}
