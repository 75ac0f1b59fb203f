// Apollo Gateway (managed-federation-free): composes meshauth's subgraph SDL
// locally and forwards the client's Authorization header to the subgraph, and
// its address: X-Forwarded-For as the client sent it, with the client's
// address (the gateway's TCP peer) appended, as a proxy does.
//
//   MESHAUTH_URL=http://127.0.0.1:4000/graphql PORT=4100 node apollo.mjs
import { ApolloGateway, RemoteGraphQLDataSource } from '@apollo/gateway';
import { composeServices } from '@apollo/composition';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { parse } from 'graphql';
import { fetchSdl } from './lib.mjs';

const subgraphUrl = process.env.MESHAUTH_URL ?? 'http://127.0.0.1:4000/graphql';
const port = Number(process.env.PORT ?? 4100);

const sdl = await fetchSdl(subgraphUrl);
const composed = composeServices([{ name: 'meshauth', typeDefs: parse(sdl), url: subgraphUrl }]);
if (composed.errors?.length) {
  for (const e of composed.errors) console.error('composition error:', e.message);
  process.exit(1);
}

const gateway = new ApolloGateway({
  supergraphSdl: composed.supergraphSdl,
  buildService: ({ url }) =>
    new RemoteGraphQLDataSource({
      url,
      willSendRequest({ request, context }) {
        if (context.authorization) request.http.headers.set('authorization', context.authorization);
        if (context.forwardedFor) request.http.headers.set('x-forwarded-for', context.forwardedFor);
      },
    }),
});

const server = new ApolloServer({
  gateway,
  includeStacktraceInErrorResponses: false,
  stopOnTerminationSignals: false, // handled below, so that SIGTERM exits 0
});
const { url } = await startStandaloneServer(server, {
  listen: { host: '127.0.0.1', port },
  context: async ({ req }) => ({
    authorization: req.headers.authorization,
    forwardedFor: [req.headers['x-forwarded-for'], req.socket.remoteAddress].filter(Boolean).join(', '),
  }),
});
console.log(`apollo gateway ready at ${url}`);

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, async () => {
    await server.stop().catch((err) => console.error('stop:', err));
    process.exit(0);
  });
}
