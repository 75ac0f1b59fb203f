// Hive Gateway (runtime as a library): composes meshauth's subgraph SDL with
// @theguild/federation-composition and forwards the client's Authorization
// header to the subgraph, and its address: X-Forwarded-For as the client sent
// it, with the client's address (the gateway's TCP peer) appended, as a proxy does.
//
//   MESHAUTH_URL=http://127.0.0.1:4000/graphql PORT=4200 node hive.mjs
import { createServer } from 'node:http';
import { createGatewayRuntime } from '@graphql-hive/gateway-runtime';
import { composeServices, compositionHasErrors } from '@theguild/federation-composition';
import { parse } from 'graphql';
import { fetchSdl } from './lib.mjs';

const subgraphUrl = process.env.MESHAUTH_URL ?? 'http://127.0.0.1:4000/graphql';
const port = Number(process.env.PORT ?? 4200);

const sdl = await fetchSdl(subgraphUrl);
const composed = composeServices([{ name: 'meshauth', typeDefs: parse(sdl), url: subgraphUrl }]);
if (compositionHasErrors(composed)) {
  for (const e of composed.errors) console.error('composition error:', e.message);
  process.exit(1);
}

const gateway = createGatewayRuntime({
  supergraph: composed.supergraphSdl,
  logging: process.env.LOG_LEVEL ?? 'warn',
  propagateHeaders: {
    fromClientToSubgraphs({ request, context }) {
      // context.req is node:http's request (createServer(gateway) below).
      const forwardedFor = [request.headers.get('x-forwarded-for'), context.req?.socket?.remoteAddress];
      return {
        authorization: request.headers.get('authorization'),
        'x-forwarded-for': forwardedFor.filter(Boolean).join(', ') || null,
      };
    },
  },
});

const server = createServer(gateway);
server.listen(port, '127.0.0.1', () => {
  console.log(`hive gateway ready at http://127.0.0.1:${port}${gateway.graphqlEndpoint}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, async () => {
    server.close();
    server.closeAllConnections?.();
    await Promise.resolve(gateway.dispose?.()).catch((err) => console.error('dispose:', err));
    process.exit(0);
  });
}
