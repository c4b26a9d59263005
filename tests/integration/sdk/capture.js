// capture.js — drive the OFFICIAL Alibaba Cloud SDKs against a local capture
// server and print every raw request they sent.
// usage: node capture.js < spec.json
//   spec = {sdk: "v1"|"v3", accessKeyId, accessKeySecret, securityToken?,
//           calls: [{action, method: "GET"|"POST", params: {Name: value}}]}
// prints one JSON array, in call order: {method, url, headers, body}
// v1 = @alicloud/pop-core (HMAC-SHA1); v3 = @alicloud/cdn20180510's generic
// callApi (ACS3-HMAC-SHA256, parameters in the query as the typed methods do).
'use strict';
const http = require('http');
const path = require('path');
const nm = process.env.NPM_MODULES ||
  path.join(__dirname, '..', '..', '..', 'build', 'npm', 'node_modules');
const need = (m) => require(path.join(nm, m));

function startServer(captured) {
  // Large header limit: V3 puts multi-KB certificates in the request line.
  const server = http.createServer({ maxHeaderSize: 1 << 20 }, (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      captured.push({ method: req.method, url: req.url, headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8') });
      const n = captured.length;
      res.writeHead(200, { 'content-type': 'application/json;charset=utf-8' });
      res.end(JSON.stringify({ RequestId: 'CAPTURE-' + n }));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function runV1(spec, endpoint) {
  const RPCClient = need('@alicloud/pop-core');
  const client = new RPCClient({
    accessKeyId: spec.accessKeyId, accessKeySecret: spec.accessKeySecret,
    securityToken: spec.securityToken,
    endpoint: 'http://' + endpoint, apiVersion: '2018-05-10',
  });
  for (const c of spec.calls)
    await client.request(c.action, c.params, { method: c.method, timeout: 10000 });
}

async function runV3(spec, endpoint) {
  const cdn = need('@alicloud/cdn20180510');
  const core = need('@alicloud/openapi-core');
  const Dara = need('@darabonba/typescript');
  const client = new cdn.default(new core.$OpenApiUtil.Config({
    accessKeyId: spec.accessKeyId, accessKeySecret: spec.accessKeySecret,
    securityToken: spec.securityToken, endpoint, protocol: 'http', readTimeout: 10000,
  }));
  for (const c of spec.calls) {
    const params = new core.$OpenApiUtil.Params({
      action: c.action, version: '2018-05-10', protocol: 'HTTP', pathname: '/',
      method: c.method, authType: 'AK', style: 'RPC', reqBodyType: 'formData', bodyType: 'json',
    });
    const req = new core.$OpenApiUtil.OpenApiRequest({ query: c.params });
    await client.callApi(params, req, new Dara.RuntimeOptions({}));
  }
}

let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', async () => {
  const spec = JSON.parse(input);
  const captured = [];
  const server = await startServer(captured);
  const endpoint = '127.0.0.1:' + server.address().port;
  try {
    if (spec.sdk === 'v1') await runV1(spec, endpoint); else await runV3(spec, endpoint);
  } finally {
    server.close();
  }
  process.stdout.write(JSON.stringify(captured) + '\n');
});
