#!/usr/bin/env node
// reflect.mjs -- a grpcurl-like client that needs no .proto file: lwpd serves gRPC server
// reflection (grpc.reflection.v1alpha), so the services and message types can be fetched
// from the daemon itself (grpcurl is not packaged for Debian; this uses the example's npm
// dependencies only).
//
//   node reflect.mjs [--endpoint ADDR] list                     # services
//   node reflect.mjs [--endpoint ADDR] describe lwpd.v1.Inspect  # their methods
//   node reflect.mjs [--endpoint ADDR] [-H key:value]... call lwpd.v1.Inspect/ListProcs '{}'
//
// `call` makes one unary call with the JSON request and prints the reply as JSON (proto field
// names, enums by name, 64-bit integers as strings). -H adds metadata, e.g.
// -H lwpd-admin-token:$(cat /run/lwpd/admin.token) for the Admin service.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { defaultEndpoint } from './lwpd.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

function parseArgs(argv) {
  const a = { endpoint: defaultEndpoint(), headers: [], rest: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--endpoint') a.endpoint = argv[++i];
    else if (argv[i] === '-H') a.headers.push(argv[++i]);
    else a.rest.push(argv[i]);
  }
  return a;
}

// One reflection exchange: send `request`, resolve with the first response.
function reflect(stub, request) {
  return new Promise((resolve, reject) => {
    const call = stub.ServerReflectionInfo({ deadline: new Date(Date.now() + 10000) });
    call.on('data', (r) => { resolve(r); call.end(); });
    call.on('error', reject);
    call.on('end', () => reject(new Error('reflection stream ended without a response')));
    call.write(request);
  });
}

function varint(n) {
  const out = [];
  while (n > 0x7f) { out.push((n & 0x7f) | 0x80); n >>>= 7; }
  out.push(n);
  return Buffer.from(out);
}

// The service's file and the files it needs, as a package definition: a FileDescriptorSet is
// `repeated FileDescriptorProto file = 1`, so the reflected files are framed as field 1.
async function definitionOf(stub, symbol) {
  const r = await reflect(stub, { file_containing_symbol: symbol });
  if (r.message_response === 'error_response') {
    throw new Error(`${symbol}: ${r.error_response.error_message}`);
  }
  const parts = r.file_descriptor_response.file_descriptor_proto.flatMap(
    (fdp) => [Buffer.from([0x0a]), varint(fdp.length), fdp]);
  return protoLoader.loadFileDescriptorSetFromBuffer(Buffer.concat(parts), OPTIONS);
}

function metadataOf(headers) {
  const md = new grpc.Metadata();
  for (const h of headers) {
    const colon = h.indexOf(':');
    if (colon <= 0) throw new Error(`-H ${h}: expected key:value`);
    md.set(h.slice(0, colon).trim(), h.slice(colon + 1).trim());
  }
  return md;
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const pkg = grpc.loadPackageDefinition(
    protoLoader.loadSync(path.join(here, 'reflection.proto'), OPTIONS));
  const stub = new pkg.grpc.reflection.v1alpha.ServerReflection(
    a.endpoint, grpc.credentials.createInsecure());
  const [verb, target, json] = a.rest;
  try {
    if (verb === 'list') {
      const r = await reflect(stub, { list_services: '' });
      for (const s of r.list_services_response.service) console.log(s.name);
    } else if (verb === 'describe' && target) {
      const def = await definitionOf(stub, target);
      if (!def[target]) throw new Error(`${target} is not a service`);
      for (const [name, m] of Object.entries(def[target])) {
        const io = (stream, t) => `${stream ? 'stream ' : ''}${t.type.name}`;
        console.log(`rpc ${name}(${io(m.requestStream, m.requestType)}) returns ` +
                    `(${io(m.responseStream, m.responseType)})`);
      }
    } else if (verb === 'call' && target?.includes('/')) {
      const [service, method] = target.split('/');
      const def = await definitionOf(stub, service);
      const m = def[service]?.[method];
      if (!m || m.requestStream || m.responseStream) throw new Error(`${target} is not a unary method`);
      const Client = grpc.makeGenericClientConstructor({ [method]: m }, service);
      const client = new Client(a.endpoint, grpc.credentials.createInsecure());
      const reply = await new Promise((resolve, reject) => client[method](
        JSON.parse(json ?? '{}'), metadataOf(a.headers), { deadline: new Date(Date.now() + 10000) },
        (err, res) => (err ? reject(err) : resolve(res))));
      console.log(JSON.stringify(reply, null, 2));
      client.close();
    } else {
      console.error('usage: reflect.mjs [--endpoint ADDR] [-H key:value]... ' +
                    'list | describe SERVICE | call SERVICE/METHOD [JSON]');
      process.exitCode = 2;
    }
  } finally {
    stub.close();
  }
}

main().catch((err) => { console.error(`reflect: ${err.message}`); process.exitCode = 1; });
