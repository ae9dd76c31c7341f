import type { ExecutionContext } from '@nestjs/common';
import type { SessionRequest } from './session.decorators.js';
import type { SessionCookieResponse } from './session-cookies.js';

/** @internal The HTTP request behind a guarded call, and its response when reachable. */
export interface HttpExchange {
  request: SessionRequest;
  /** Missing only for a GraphQL context that carries neither `res` nor `reply` nor an Express `req.res`. */
  response: SessionCookieResponse | undefined;
}

/** @internal What GraphQL servers put in their context: Nest's Apollo driver `req` (and `res` when asked), Mercurius `reply`. */
interface GraphQLHttpContext {
  req?: SessionRequest & { res?: SessionCookieResponse };
  res?: SessionCookieResponse;
  reply?: SessionCookieResponse & { request?: SessionRequest };
  request?: SessionRequest;
}

/**
 * @internal The HTTP request and response behind a guarded call: a controller's, or a
 * GraphQL resolver's over HTTP, whose request sits in the GraphQL context (the third
 * resolver argument; read here without importing `@nestjs/graphql`). Null when the call
 * came with no HTTP request: RPC, WebSockets, or a GraphQL context without one.
 */
export function httpExchange(context: ExecutionContext): HttpExchange | null {
  const type = context.getType<string>();
  if (type === 'http') {
    const http = context.switchToHttp();
    return { request: http.getRequest<SessionRequest>(), response: http.getResponse<SessionCookieResponse>() };
  }
  if (type !== 'graphql') return null;
  const gql = context.getArgByIndex<GraphQLHttpContext | undefined>(2);
  const request = gql?.req ?? gql?.request ?? gql?.reply?.request;
  if (!request?.headers) return null;
  // Express puts the response on its request (`req.res`), so Nest's default `{ req }` context suffices there.
  return { request, response: gql?.res ?? gql?.reply ?? gql?.req?.res };
}
