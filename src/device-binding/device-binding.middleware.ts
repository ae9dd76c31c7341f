import type { IncomingMessage, ServerResponse } from 'node:http';
import { Inject, Injectable, type NestMiddleware } from '@nestjs/common';
import { DeviceBinding } from './device-binding.service.js';

/**
 * @internal The DBSC endpoints as Nest middleware, which `SessionModule` mounts on the
 * configured paths (POST) when `deviceBinding` is on: paths taken from options resolved at
 * runtime (`forRootAsync` too, which a decorated controller could not do), behind the global
 * prefix as Nest mounts them, on Express and Fastify alike (the raw Node request and
 * response). They answer before any guard runs, so `AuthGuard`'s cross-origin check and the
 * app's own global guards do not apply: see docs/device-binding.md for why that is safe.
 */
@Injectable()
export class DeviceRegistrationMiddleware implements NestMiddleware {
  constructor(@Inject(DeviceBinding) private readonly binding: DeviceBinding) {}

  use(request: IncomingMessage, response: ServerResponse): Promise<void> {
    return this.binding.register(request, rawResponse(response));
  }
}

/** @internal See `DeviceRegistrationMiddleware`. */
@Injectable()
export class DeviceRefreshMiddleware implements NestMiddleware {
  constructor(@Inject(DeviceBinding) private readonly binding: DeviceBinding) {}

  use(request: IncomingMessage, response: ServerResponse): Promise<void> {
    return this.binding.refresh(request, rawResponse(response));
  }
}

/** Express hands its response (a `ServerResponse`); Fastify's middleware gets the raw one too. Unwrap a reply to be safe. */
function rawResponse(response: ServerResponse): ServerResponse {
  return (response as unknown as { raw?: ServerResponse }).raw ?? response;
}
