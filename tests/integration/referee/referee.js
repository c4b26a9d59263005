// Referee: runs CDN OpenAPI calls through the OFFICIAL Alibaba Cloud SDKs against cdnsim.
// usage: node referee.js < spec.json
//   spec = {sdk: "v1"|"v3", endpoint: "127.0.0.1:PORT", protocol: "http"|"https",
//           accessKeyId, accessKeySecret, securityToken?, calls: [{action, params}]}
// prints one JSON array: [{ok: true, data} | {ok: false, code, message}] in call order.
// v1 = @alicloud/pop-core (HMAC-SHA1, form POST); v3 = @alicloud/cdn20180510
// (ACS3-HMAC-SHA256): typed methods when the SDK has them, else its generic callApi.
'use strict';
const path = require('path');
const nm = process.env.NPM_MODULES ||
  path.join(__dirname, '..', '..', '..', 'build', 'npm', 'node_modules');
const need = (m) => require(path.join(nm, m));

async function runV1(spec) {
  const RPCClient = need('@alicloud/pop-core');
  const client = new RPCClient({
    accessKeyId: spec.accessKeyId, accessKeySecret: spec.accessKeySecret,
    securityToken: spec.securityToken,
    endpoint: spec.protocol + '://' + spec.endpoint, apiVersion: '2018-05-10',
  });
  const out = [];
  for (const c of spec.calls) {
    try {
      const data = await client.request(c.action, c.params, { method: 'POST', timeout: 10000 });
      out.push({ ok: true, data });
    } catch (e) {
      out.push({ ok: false, code: e.code || e.name, message: String(e.message) });
    }
  }
  return out;
}

async function runV3(spec) {
  const cdn = need('@alicloud/cdn20180510');
  const core = need('@alicloud/openapi-core');
  const Client = cdn.default;
  const client = new Client(new core.$OpenApiUtil.Config({
    accessKeyId: spec.accessKeyId, accessKeySecret: spec.accessKeySecret,
    securityToken: spec.securityToken,
    endpoint: spec.endpoint, protocol: spec.protocol, readTimeout: 10000,
  }));
  const out = [];
  for (const c of spec.calls) {
    try {
      const method = c.action[0].toLowerCase() + c.action.slice(1);
      const Req = cdn[c.action + 'Request'];
      let body;
      if (Req && typeof client[method] === 'function') {
        const names = Req.names();
        const fields = {};
        for (const [api, v] of Object.entries(c.params)) {
          const f = Object.keys(names).find((k) => names[k] === api);
          if (!f) throw new Error('no SDK field for ' + api);
          fields[f] = v;
        }
        const resp = await client[method](new Req(fields));
        body = resp.body.toMap ? resp.body.toMap() : resp.body;
      } else {
        // e.g. SetDomainServerCertificate, dropped from the typed SDK in 5.0.0
        const params = new core.$OpenApiUtil.Params({
          action: c.action, version: '2018-05-10', protocol: spec.protocol.toUpperCase(),
          pathname: '/', method: 'POST', authType: 'AK', style: 'RPC',
          reqBodyType: 'formData', bodyType: 'json',
        });
        const req = new core.$OpenApiUtil.OpenApiRequest({ query: c.params });
        const Dara = need('@darabonba/typescript');
        const resp = await client.callApi(params, req, new Dara.RuntimeOptions({}));
        body = resp.body;
      }
      out.push({ ok: true, data: body });
    } catch (e) {
      out.push({ ok: false, code: e.code || e.name, message: String(e.message) });
    }
  }
  return out;
}

let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', async () => {
  const spec = JSON.parse(input);
  const out = spec.sdk === 'v1' ? await runV1(spec) : await runV3(spec);
  process.stdout.write(JSON.stringify(out) + '\n');
});
