import { type CanActivate, Controller, Get, Req, type Type, UseGuards } from '@nestjs/common';

/** What a guard leaves on the request. */
export interface GuardedRequest {
  user?: { id: string };
}

/**
 * The one route every bench app serves, `GET /me`, behind `guards`. A factory so
 * the four apps share the handler byte for byte and differ only by their guard.
 */
export function meController(...guards: Type<CanActivate>[]): Type {
  @Controller()
  class MeController {
    @Get('me')
    me(@Req() request: GuardedRequest): { id: string } {
      return { id: request.user?.id ?? 'anonymous' };
    }
  }
  if (guards.length) UseGuards(...guards)(MeController);
  return MeController;
}
