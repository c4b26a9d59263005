// The peer of tests/bench/scale.py: the official @alicloud/pop-core (pinned in
// build/npm) making the same SetReqHeaderConfig calls cdnagent sync makes, one
// after the other, as a Node program written against the SDK would.
// usage: node popcore_calls.js ENDPOINT N DOMAINS_CSV
//   ENDPOINT  http://127.0.0.1:PORT (loopback cdnsim)
// prints one JSON line: {calls, ok, cpu_calls_ms, cpu_total_ms, maxrss_kb}
//   cpu_calls_ms  user+system CPU of the calls alone (process.cpuUsage around them)
//   cpu_total_ms  the whole process, Node's start and the SDK's loading included
//   maxrss_kb     peak resident set (process.resourceUsage().maxRSS)
'use strict';
const path = require('path');
const nm = process.env.NPM_MODULES ||
  path.join(__dirname, '..', '..', 'build', 'npm', 'node_modules');
const RPCClient = require(path.join(nm, '@alicloud/pop-core'));

async function main() {
  const [endpoint, nArg, domainsCsv] = process.argv.slice(2);
  const n = parseInt(nArg, 10);
  const domains = domainsCsv.split(',');
  if (!endpoint || !(n > 0) || domains.length === 0) {
    process.stderr.write('usage: node popcore_calls.js ENDPOINT N DOMAINS_CSV\n');
    process.exit(2);
  }
  const client = new RPCClient({
    accessKeyId: process.env.ALIBABA_CLOUD_ACCESS_KEY_ID || 'testid',
    accessKeySecret: process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET || 'testsecret',
    endpoint, apiVersion: '2018-05-10',
  });
  const start = process.cpuUsage();
  let ok = 0;
  for (let i = 0; i < n; i++) {
    // the same rule the agent's benchmark queues: header X-H<i> on domain i % domains
    const params = {
      DomainName: domains[i % domains.length], Key: 'X-H' + i, Value: 'v' + i,
    };
    try {
      await client.request('SetReqHeaderConfig', params, { method: 'POST', timeout: 10000 });
      ok++;
    } catch (e) {
      process.stderr.write('call ' + i + ': ' + (e.code || e.name) + ' ' + e.message + '\n');
    }
  }
  const used = process.cpuUsage(start);
  const total = process.cpuUsage();
  process.stdout.write(JSON.stringify({
    calls: n, ok,
    cpu_calls_ms: (used.user + used.system) / 1000,
    cpu_total_ms: (total.user + total.system) / 1000,
    maxrss_kb: process.resourceUsage().maxRSS,
  }) + '\n');
}

main();
